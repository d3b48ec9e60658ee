"""Notebooks side by side on CPU cores: how many run at once, in which order, and the two files they share (the
model store, ``_runs.json``) written safely when they do. No notebook is executed here."""
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import pytest
import torch

from natrob.run import runner
from natrob.data import load_dataset
from natrob.train import store
from natrob.train.config import TrainConfig


def test_jobs_follow_the_cores_and_the_profiles_threads():
    assert runner.jobs_for({"THREADS": 1}, gpus=0, cpus=2) == 2
    assert runner.jobs_for({"THREADS": 2}, gpus=0, cpus=2) == 1
    assert runner.jobs_for({"THREADS": 3}, gpus=0, cpus=2) == 1
    assert runner.jobs_for({"THREADS": None}, gpus=0, cpus=16) == 1  # the paper profile: torch's own threads
    assert runner.jobs_for({"THREADS": 1}, gpus=4, cpus=2) == 4
    assert runner.jobs_for({"THREADS": 1}, gpus=1, cpus=16) == 1  # one GPU: notebooks in turn, as before


def test_longest_notebook_starts_first_and_unknown_ones_before_it():
    pending = [(Path(f"0{i}-x.ipynb"), "s") for i in range(1, 5)]
    timings = {"01-x.ipynb": 10.0, "02-x.ipynb": 300.0, "04-x.ipynb": 50.0}
    assert [nb.name[:2] for nb, _ in runner.ordered(pending, timings)] == ["03", "02", "04", "01"]


def test_bad_jobs_is_refused(capsys):
    assert runner.main(["--profile", "tiny", "--jobs", "0", "--no-report"]) == 2
    assert runner.main(["--profile", "tiny", "--jobs", "-1", "--no-report"]) == 2
    assert "--jobs -1" in capsys.readouterr().err


def test_runs_json_keeps_what_another_process_recorded_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setenv("NATROB_ARTIFACTS", str(tmp_path))
    early = runner.Stamps("tiny")  # loaded before the other notebook finished
    other = runner.Stamps("tiny")
    other.done({"notebook": "02-b.ipynb", "ok": True, "wall_s": 2.0}, "stamp-b")
    early.done({"notebook": "01-a.ipynb", "ok": True, "wall_s": 1.0}, "stamp-a")
    data = json.loads(early.path.read_text())
    assert data["01-a.ipynb"] == "stamp-a" and data["02-b.ipynb"] == "stamp-b"
    assert data["_timings"] == {"01-a.ipynb": 1.0, "02-b.ipynb": 2.0}


def _train_once(store_dir, log, start):
    """In a child process: ask the store for a tiny model at the same moment as a sibling; each real training
    appends a line to ``log``. Returns the weights' sum."""
    real = store.train

    def logged(*args, **kwargs):
        with open(log, "a") as fh:
            fh.write("trained\n")
        time.sleep(1.0)  # long enough that the sibling asks while this one trains
        return real(*args, **kwargs)

    store.train = logged
    torch.set_num_threads(1)
    data = load_dataset("digits")
    while time.time() < start:
        time.sleep(0.01)
    model, _ = store.get_model("cnn", data, TrainConfig(epochs=1, batch_size=256), seed=0, store_dir=store_dir,
                               progress=False)
    return float(sum(p.sum() for p in model.parameters()))


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    log = tmp_path / "trainings.log"
    start = time.time() + 2.0
    with mp.get_context("fork").Pool(2) as pool:
        sums = pool.starmap(_train_once, [(tmp_path / "store", log, start)] * 2)
    assert log.read_text().count("trained") == 1
    assert sums[0] == sums[1]  # the waiting process loaded the very weights the other trained


@pytest.mark.parametrize("gpus", [0, 2])
def test_side_by_side_holds_each_slot_once(monkeypatch, gpus):
    """Never more notebooks at once than jobs, each with its own GPU where there are GPUs (none set on CPUs), and
    every notebook run once; a failing one is named."""
    import threading
    lock, running, seen, trained = threading.Lock(), [], [], threading.Event()
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)

    def fake_run(cmd, env):
        nb = cmd[cmd.index("--only") + 1] if "--only" in cmd else "training"
        if nb != "training":
            trained.wait(10)  # a loaded machine may start the notebook's thread first: record the training first
        with lock:
            running.append(env.get("CUDA_VISIBLE_DEVICES"))
            seen.append((nb, len(running), list(running)))
        if nb == "training":
            trained.set()
        time.sleep(0.05)
        with lock:
            running.remove(env.get("CUDA_VISIBLE_DEVICES"))
        return type("Done", (), {"returncode": 1 if nb == "03" else 0})()

    monkeypatch.setattr(runner.subprocess, "run", fake_run)
    pending = [(Path(f"0{i}-x.ipynb"), "s") for i in range(1, 7)]
    training = [("train a net", [sys.executable, "-m", "natrob.study.width"])]
    failed, trained = runner._run_side_by_side(pending, "tiny", False, 2, gpus, training=training)
    assert seen[0][0] == "training"  # training jobs start first
    assert list(trained) == ["train a net"] and trained["train a net"] >= 0.05
    assert sorted(nb for nb, _, _ in seen if nb != "training") == ["01", "02", "03", "04", "05", "06"]
    assert max(k for _, k, _ in seen) <= 2
    for _, _, devices in seen:
        if gpus:
            assert len(set(devices)) == len(devices) and set(devices) <= {"0", "1"}
        else:
            assert devices.count(None) == len(devices)
    assert failed["notebook"] == "03-x.ipynb"


def test_notebook_08s_widths_train_as_jobs_of_their_own():
    from natrob.profiles import load_profile
    params = load_profile("quick")
    nb08 = [(Path("08-the-papers-width.ipynb"), "s")]
    jobs = runner.training_jobs(params, "quick", nb08)
    assert [cmd[cmd.index("--channels") + 1] for _, cmd in jobs] == ["128", "64", "32", "16"]  # longest first
    assert all(cmd[cmd.index("--threads") + 1] == "1" and "natrob.study.width" in cmd for _, cmd in jobs)
    assert runner.training_jobs(params, "quick", [(Path("03-white-box.ipynb"), "s")]) == []
    assert runner.training_jobs(params, "quick", nb08, overrides=["WIDTH_CHANNELS=[16]"]) == []


def test_publish_keeps_the_runs_timing_table_for_a_fresh_clones_order(tmp_path, monkeypatch):
    """verify --publish writes the run's timings beside the published results (ignored by verify), and the runner
    orders a checkout without its own _runs.json by them."""
    from natrob import paths
    from natrob.report import verify
    monkeypatch.setenv("NATROB_ARTIFACTS", str(tmp_path / "art"))
    monkeypatch.setattr(paths, "PUBLISHED", tmp_path / "published")
    monkeypatch.setattr(verify, "PUBLISHED", tmp_path / "published")
    results = paths.results_dir("tiny")
    results.mkdir(parents=True)
    (results / "_runs.json").write_text(json.dumps({"_timings": {"09-x.ipynb": 500.0, "01-x.ipynb": 20.0},
                                                    "09-x.ipynb": "stamp"}))
    out = verify.publish("tiny")
    assert json.loads((out / "_timings.json").read_text())["_timings"] == {"09-x.ipynb": 500.0, "01-x.ipynb": 20.0}
    assert runner.published_timings("tiny") == {"09-x.ipynb": 500.0, "01-x.ipynb": 20.0}
    pending = [(Path("01-x.ipynb"), "s"), (Path("09-x.ipynb"), "s")]
    assert [nb.name for nb, _ in runner.ordered(pending, runner.published_timings("tiny"))] == ["09-x.ipynb",
                                                                                               "01-x.ipynb"]
    assert runner.published_timings("quick-never-published") == {}
