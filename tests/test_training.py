import os
import subprocess
import sys

import pytest
import torch

from natrob.models import build_model
from natrob.train import TrainConfig, get_model, train
from natrob.errors import ConfigError


def test_small_resnet_reaches_90_percent_on_digits(digits):
    torch.manual_seed(0)
    model = build_model("resnet", digits, depth=8)
    cfg = TrainConfig(epochs=6, optimizer="sgd", lr=0.1, weight_decay=5e-4, milestones=(0.5, 0.75), batch_size=64)
    history = train(model, digits, cfg, progress=False)
    assert history[-1]["test_acc"] >= 0.90
    assert {"loss", "train_acc", "test_acc", "wall_s", "lr"} <= set(history[-1])


def test_small_odenet_reaches_90_percent_on_digits(digits):
    torch.manual_seed(0)
    model = build_model("odenet", digits, channels=32, t1=1.0)
    history = train(model, digits, TrainConfig(epochs=8, lr=1e-2, batch_size=64, halve_every=4), progress=False)
    assert history[-1]["test_acc"] >= 0.90
    assert history[-1]["nfe_forward_mean"] >= 6


def test_kill_and_resume_equals_uninterrupted(digits, tmp_path):
    cfg = TrainConfig(epochs=3, lr=3e-3, batch_size=64)
    torch.manual_seed(0)
    ref = build_model("cnn", digits)
    train(ref, digits, cfg, seed=7, progress=False)
    torch.manual_seed(0)
    model = build_model("cnn", digits)
    with pytest.raises(KeyboardInterrupt):  # killed in the middle of epoch 2
        train(model, digits, cfg, checkpoint_dir=tmp_path, seed=7, progress=False, stop_after_batches=30)
    torch.manual_seed(123)  # a fresh process: different RNG, fresh weights
    resumed = build_model("cnn", digits)
    history = train(resumed, digits, cfg, checkpoint_dir=tmp_path, seed=7, progress=False)
    assert len(history) == 3
    for a, b in zip(ref.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)


def test_lr_schedules():
    from natrob.train.loop import lr_at
    from natrob.train import table_a1, he_et_al
    a1 = table_a1("mnist")
    assert (a1.lr, a1.batch_size, a1.epochs) == (1e-3, 32, 100)
    assert [lr_at(a1, e) for e in (0, 49, 50, 99)] == [1e-3, 1e-3, 5e-4, 5e-4]
    he = he_et_al(epochs=100)
    assert lr_at(he, 0) == 0.1 and abs(lr_at(he, 50) - 0.01) < 1e-12 and abs(lr_at(he, 75) - 0.001) < 1e-12
    with pytest.raises(ConfigError, match="optimizer='rmsprop'"):
        TrainConfig(optimizer="rmsprop")


def test_store_reuses_trained_models(digits, tmp_path):
    cfg = TrainConfig(epochs=1, lr=3e-3)
    m1, rec1 = get_model("cnn", digits, cfg, store_dir=tmp_path, progress=False)
    m2, rec2 = get_model("cnn", digits, cfg, store_dir=tmp_path, progress=False)
    assert rec1["key"] == rec2["key"] and len(list(tmp_path.iterdir())) == 1
    for a, b in zip(m1.state_dict().values(), m2.state_dict().values()):
        assert torch.equal(a, b)
    assert set(rec1["provenance"]) >= {"params", "seed", "git_commit", "versions", "device", "wall_time_s"}
    _, rec3 = get_model("cnn", digits, cfg, seed=1, store_dir=tmp_path, progress=False)
    assert rec3["key"] != rec1["key"]



def test_a_longer_run_serves_a_shorter_one_of_the_same_schedule(digits, tmp_path):
    """Epoch 2 of a 3-epoch run with a constant rate is a 2-epoch run: the store hands it over instead of training
    again, and says so; a schedule that differs in those epochs (milestones move with the epoch count) trains."""
    from natrob.train.checkpoint import load_checkpoint
    long_cfg, short_cfg = TrainConfig(epochs=3, lr=3e-3), TrainConfig(epochs=2, lr=3e-3)
    _, rec_long = get_model("cnn", digits, long_cfg, store_dir=tmp_path, progress=False, keep_epochs=True)
    long_dir = tmp_path / f"cnn-{digits.name}-{rec_long['key']}"
    short, rec = get_model("cnn", digits, short_cfg, store_dir=tmp_path, progress=False)
    assert rec["from_longer_run"] == {"key": rec_long["key"], "epoch": 2} and rec["epochs_done"] == 2
    assert rec["history"] == rec_long["history"][:2]
    epoch2 = load_checkpoint(long_dir / "epoch-2.pt")["state_dict"]
    assert all(torch.equal(v, epoch2[k]) for k, v in short.state_dict().items())
    fresh, _ = get_model("cnn", digits, short_cfg, store_dir=tmp_path / "alone", progress=False)
    for a, b in zip(fresh.state_dict().values(), short.state_dict().values()):  # what training it would give
        assert torch.allclose(a.float(), b.float(), atol=1e-4)
    stepped = TrainConfig(epochs=2, lr=3e-3, milestones=[0.5])
    _, rec_stepped = get_model("cnn", digits, stepped, store_dir=tmp_path, progress=False)
    assert "from_longer_run" not in rec_stepped
    at1, rec1 = get_model("cnn", digits, long_cfg, store_dir=tmp_path / "alone", progress=False, keep_epochs=True,
                          until_epoch=1)  # the first call trains one epoch and stops
    _, rec_more = get_model("cnn", digits, long_cfg, store_dir=tmp_path / "alone", progress=False, keep_epochs=True,
                            until_epoch=2)
    again, rec_again = get_model("cnn", digits, long_cfg, store_dir=tmp_path / "alone", progress=False,
                                 keep_epochs=True, until_epoch=1)  # the run went on: epoch 1 itself comes back
    assert rec_more["epochs_done"] == 2 and rec_again["epochs_done"] == 1
    assert all(torch.equal(a, b) for a, b in zip(at1.state_dict().values(), again.state_dict().values()))


def test_load_model_rebuilds_a_stored_model_from_its_folder(digits, tmp_path):
    """load_model needs only the store folder: architecture, arguments and BatchNorm statistics come back."""
    from natrob.train import load_model
    cfg = TrainConfig(epochs=1, lr=3e-3)
    model, rec = get_model("resnet", digits, cfg, model_kwargs={"depth": 8, "h": 0.5}, store_dir=tmp_path,
                           device="cpu", progress=False)
    loaded = load_model(tmp_path / f"resnet-{digits.name}-{rec['key']}")
    assert not loaded.training and loaded.h == 0.5 and loaded.depth == 8
    x = digits.test_x[:64]
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))

def test_ddp_two_processes_gloo(tmp_path):
    """torchrun with two CPU processes (gloo): both ranks end with identical weights and the model learns."""
    import socket
    with socket.socket() as sock:  # a free local port for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
           "--master_addr=127.0.0.1",
           "-m", "natrob.train.ddp", "--model", "cnn", "--dataset", "digits", "--epochs", "3", "--lr", "3e-3",
           "--out", str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    w0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    w1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in w0:
        assert torch.allclose(w0[k], w1[k]), k
    assert "test_acc" in proc.stdout
    acc = float(proc.stdout.strip().split("test_acc=")[-1].split()[0])
    assert acc > 0.8
