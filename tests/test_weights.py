"""Published weights (natrob.run.weights): publish exactly what a run read, install only what the manifest's sha256
vouches for, and a run on published weights trains nothing. Also the store's message for a damaged checkpoint."""
import json
import shutil

import pytest
import torch

from natrob import paths
from natrob.errors import CheckpointError
from natrob.run.weights import MODE_ENV, READS_ENV, WeightsError, check, install, publish, sha256


def _entry(store, digits, name="cnn", epochs=2):
    """A store entry as get_model leaves it: spec.json, meta.json, every epoch's weights and final.pt."""
    from natrob.train import TrainConfig, get_model
    cfg = TrainConfig(epochs=epochs, lr=3e-3, batch_size=256)
    model, record = get_model(name, digits, cfg, store_dir=store, progress=False, keep_epochs=True)
    return store / f"{name}-digits-{record['key']}", model, cfg


@pytest.fixture
def published(tmp_path, monkeypatch, digits):
    """A 'tiny' profile whose published weights are one small CNN, published from a store whose run read two of
    its three checkpoints."""
    monkeypatch.setattr(paths, "PUBLISHED", tmp_path / "reference-results")
    store = tmp_path / "store"
    folder, model, cfg = _entry(store, digits)
    log = tmp_path / "reads.jsonl"
    monkeypatch.setenv(READS_ENV, str(log))
    from natrob.train import load_checkpoint
    load_checkpoint(folder / "final.pt")
    load_checkpoint(folder / "epoch-1.pt")
    load_checkpoint(folder / "last.pt")  # resumes training: never published
    monkeypatch.delenv(READS_ENV)
    m = publish("tiny", store, log)
    return {"manifest": m, "store": store, "folder": folder, "model": model, "cfg": cfg}


def test_publish_copies_what_the_run_read_with_its_sha256(published, digits):
    m, folder = published["manifest"], published["folder"]
    files = sorted(r["file"] for r in m["weights"])
    assert files == sorted(f"{folder.name}/{n}" for n in ("epoch-1.pt", "final.pt", "meta.json", "spec.json"))
    wdir = paths.PUBLISHED / "tiny" / "weights"
    for r in m["weights"]:
        assert sha256(wdir / r["file"]) == sha256(folder / r["file"].split("/")[1]) == r["sha256"]
        assert r["bytes"] == (wdir / r["file"]).stat().st_size
    rec = m["models"][folder.name]
    assert rec["files"]["epoch-1.pt"]["epoch"] == 1 and rec["files"]["final.pt"]["epoch"] == 2
    assert rec["test_n"] == len(digits.test_y) and 0 < rec["files"]["final.pt"]["clean_acc_test"] <= 1
    assert m["total_bytes"] == sum(r["bytes"] for r in m["weights"])


def test_install_serves_the_published_model_without_training(published, tmp_path, monkeypatch, digits):
    from natrob.train import get_model
    fresh = tmp_path / "fresh-store"
    r = install("tiny", fresh)
    assert r["copied"] == r["files"] == 4
    assert install("tiny", fresh)["copied"] == 0  # already there, byte for byte
    monkeypatch.setenv(MODE_ENV, "published")
    model, _ = get_model("cnn", digits, published["cfg"], store_dir=fresh, progress=False, keep_epochs=True)
    for a, b in zip(model.state_dict().values(), published["model"].state_dict().values()):
        assert torch.equal(a, b)
    assert not any(fresh.rglob("last.pt"))  # nothing trained
    other = published["cfg"].__class__(epochs=1, lr=1e-2, batch_size=256)
    with pytest.raises(CheckpointError, match="--weights train"):  # not published: refused, not trained
        get_model("cnn", digits, other, store_dir=fresh, progress=False)
    assert not any(fresh.rglob("last.pt"))


def test_an_altered_or_missing_weight_is_refused_before_anything_is_copied(published, tmp_path):
    wdir = paths.PUBLISHED / "tiny" / "weights"
    target = wdir / published["manifest"]["weights"][0]["file"]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the weights changed
    target.write_bytes(bytes(data))
    fresh = tmp_path / "fresh-store"
    with pytest.raises(WeightsError) as err:
        install("tiny", fresh)
    assert str(target) in str(err.value) and "--weights train" in str(err.value) and "git checkout" in str(err.value)
    assert not fresh.exists()
    target.unlink()
    with pytest.raises(WeightsError, match="is missing"):
        check("tiny")


def test_the_runner_exits_2_on_an_altered_weight_and_runs_nothing(published, capsys):
    from natrob.run.runner import main as run_all
    wdir = paths.PUBLISHED / "tiny" / "weights"
    target = wdir / published["manifest"]["weights"][-1]["file"]
    target.write_text(target.read_text() + " ")
    assert run_all(["--profile", "tiny", "--only", "01", "--no-report"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0] and "sha256" in err[0]
    assert not list(paths.results_dir("tiny").glob("*.json"))  # no notebook ran
    assert run_all(["--profile", "mnist", "--weights", "published", "--only", "01"]) == 2  # none published


def test_publish_refuses_half_precision_weights(tmp_path, monkeypatch, digits):
    monkeypatch.setattr(paths, "PUBLISHED", tmp_path / "reference-results")
    store = tmp_path / "store"
    folder, model, _ = _entry(store, digits, epochs=1)
    ckpt = torch.load(folder / "final.pt", weights_only=True)
    ckpt["state_dict"] = {k: v.half() for k, v in ckpt["state_dict"].items()}
    torch.save(ckpt, folder / "final.pt")
    log = tmp_path / "reads.jsonl"
    log.write_text(json.dumps({"file": f"{folder.name}/final.pt"}) + "\n")
    with pytest.raises(WeightsError, match="not a float32 state dict"):
        publish("tiny", store, log)
    assert not (paths.PUBLISHED / "tiny" / "weights").exists()


def test_a_truncated_checkpoint_names_the_command_that_mends_it(tmp_path, digits):
    from natrob.train import load_checkpoint
    folder, _, _ = _entry(tmp_path / "store", digits, epochs=1)
    final = folder / "final.pt"
    final.write_bytes(final.read_bytes()[:200])
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(final)
    msg = str(err.value)
    assert str(final) in msg and f"mv {final} {final}.damaged" in msg and "--weights published" in msg
    shutil.move(final, f"{final}.damaged")  # the mend: the store trains that entry again
    from natrob.train import TrainConfig, get_model
    model, record = get_model("cnn", digits, TrainConfig(epochs=1, lr=3e-3, batch_size=256),
                              store_dir=tmp_path / "store", progress=False, keep_epochs=True)
    assert final.exists() and (folder / "final.pt.damaged").exists()


def test_every_published_profile_lists_every_file_it_holds():
    """The repository's own published weights: each file listed with a sha256 that matches, nothing unlisted, and
    all profiles together under 50 MB."""
    total = 0
    for profile_dir in sorted(paths.PUBLISHED.iterdir()):
        wdir = profile_dir / "weights"
        if not wdir.is_dir():
            continue
        m = check(profile_dir.name)
        listed = {r["file"] for r in m["weights"]}
        held = {p.relative_to(wdir).as_posix() for p in wdir.rglob("*") if p.is_file() and p.name != "manifest.json"}
        assert held == listed, profile_dir.name
        total += m["total_bytes"]
    assert total < 50e6


def test_the_store_alone_names_its_folders(tmp_path):
    """One folder rule: the store's root honours store_dir, an entry's folder is <model>-<dataset>-<key>, and the
    key read back from a folder is the key it was made with (weights and the store's longer-run search use both)."""
    from natrob import paths
    from natrob.train.store import entry_folder, entry_key, store_root
    assert store_root() == paths.checkpoints_dir() and store_root(tmp_path) == tmp_path
    folder = entry_folder("odenet", "digits", "0123abcd", tmp_path)
    assert folder.parent == tmp_path and folder.name == "odenet-digits-0123abcd"
    assert entry_key(folder) == "0123abcd"
    assert entry_key(entry_folder("resnet-wide", "mnist-split", "ff00")) == "ff00"  # dashes in names stay apart
