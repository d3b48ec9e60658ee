"""The fast training path (natrob.train.precision): bf16 convs in f for training only."""
import importlib
import warnings

import pytest
import torch

from natrob.errors import ConfigError
from natrob.models import build_model
from natrob.train import TrainConfig, train
from natrob.train.precision import bf16_supported, resolve

# the quick profile's 32-channel ODE architecture at t1 = 1 for 5 epochs (about 30 s per precision on one core,
# where the quick profile's t1 = 100 and 15 epochs took 150 s): the property is the same, the NFE is not
SMALL_ODE = dict(channels=32, conv_layers=4, t1=1.0)
SMALL_TRAIN = dict(epochs=5, lr=0.01, batch_size=64, halve_every=2)


def test_fast_path_reaches_the_float32_clean_accuracy(digits):
    """Same weights at the start, same data order: the bf16-conv net ends within 2 points of the float32 one."""
    if not bf16_supported("cpu"):
        pytest.skip("no native bfloat16 on this CPU: the fast path is float32 here (test_fallback covers it)")
    accs, precisions = {}, {}
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        model = build_model("odenet", digits, **SMALL_ODE)
        history = train(model, digits, TrainConfig(precision=precision, **SMALL_TRAIN), progress=False)
        accs[precision], precisions[precision] = history[-1]["test_acc"], history[-1]["precision_used"]
        assert model.solver_config()["conv_dtype"] is None  # evaluation after training is float32
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert precisions == {"float32": "float32", "bfloat16": "bfloat16"}
    n = len(digits.test_y)
    assert accs["float32"] >= 0.9 and accs["bfloat16"] >= 0.9, accs
    assert abs(round(accs["bfloat16"] * n) - round(accs["float32"] * n)) <= 0.02 * n, accs


def test_bf16_convs_keep_the_state_and_the_output_float32(digits):
    torch.manual_seed(0)
    model = build_model("odenet", digits, channels=16, t1=1.0).eval()
    x = digits.test_x[:8]
    with torch.no_grad():
        ref = model(x)
        model.configure_solver(conv_dtype="bfloat16")
        fast = model(x)
    assert fast.dtype == torch.float32 and torch.isfinite(fast).all()
    assert (fast.argmax(1) == ref.argmax(1)).sum() >= 6  # a rounding of the convs, not another function
    with pytest.raises(ConfigError, match="conv_dtype"):
        model.configure_solver(conv_dtype="float16")


def test_unknown_precision_is_refused_and_missing_bf16_falls_back(monkeypatch):
    with pytest.raises(ConfigError, match="precision='fp8'"):
        TrainConfig(precision="fp8")
    assert "precision" not in TrainConfig().to_dict()  # float32 models keep their model-store keys
    precision_module = importlib.import_module("natrob.train.precision")
    monkeypatch.setattr(precision_module, "bf16_supported", lambda device: False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert resolve("bfloat16", "cpu") == "float32"
    assert any("training in float32" in str(w.message) for w in caught)
