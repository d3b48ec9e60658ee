import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp: see natrob/__init__.py

import pytest  # noqa: E402
import torch  # noqa: E402

# one thread per pytest-xdist worker (./run_tests.sh starts one per core); two in a single process
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)


@pytest.fixture(autouse=True)
def _artifacts(tmp_path, monkeypatch):
    """Every test writes results/checkpoints under its own tmp dir, never into the checkout."""
    monkeypatch.setenv("NATROB_ARTIFACTS", str(tmp_path / "artifacts"))
    yield


@pytest.fixture(scope="session")
def digits():
    from natrob.data import load_dataset
    return load_dataset("digits")


@pytest.fixture(scope="session")
def trained_cnn(digits):
    from natrob.models import build_model
    from natrob.train import TrainConfig, train
    torch.manual_seed(0)
    model = build_model("cnn", digits)
    train(model, digits, TrainConfig(epochs=8, lr=3e-3, batch_size=64), progress=False)
    return model.eval()


@pytest.fixture(scope="session")
def small_odenet(digits):
    """A small digits ODE net at t1 = 1 (trained briefly): for attack/solver plumbing, not for the claim."""
    from natrob.models import build_model
    from natrob.train import TrainConfig, train
    torch.manual_seed(0)
    model = build_model("odenet", digits, channels=16, t1=1.0)
    train(model, digits, TrainConfig(epochs=3, lr=1e-2, batch_size=64), progress=False)
    return model.eval()
