"""The GPU check runs on a bare GPU machine: what it imports, how it sizes training, and its extrapolation."""
import subprocess
import sys

import pytest

from natrob import chapters, paths
from natrob.run import costs, gpu_check
from natrob.data import load_dataset
from natrob.profiles import load_profile

BLOCKED = ("papermill", "pyautoattack", "nbconvert", "nbformat", "jupyter_client", "ipywidgets", "seaborn", "pandas")


def test_imports_without_notebook_or_attack_libraries():
    # what the lent GPU machine lacks (papermill, pyautoattack) and what the check must not need
    blocker = ("import sys\n"
               "class Block:\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               f"        if name.split('.')[0] in {BLOCKED!r}:\n"
               "            raise ImportError('blocked: ' + name)\n"
               "sys.meta_path.insert(0, Block())\n"
               "import natrob.run.gpu_check\n")
    out = subprocess.run([sys.executable, "-c", blocker], cwd=paths.REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_attack_units_count_steps_and_queries():
    assert costs.attack_units({"name": "pgd", "steps": 100, "restarts": 2}) == (200, 0)
    assert costs.attack_units({"name": "square", "n_queries": 300}) == (0, 300)
    assert costs.attack_units({"name": "boundary", "queries": 50}) == (0, 50)
    assert costs.attack_units({"name": "transfer", "attack": {"name": "pgd", "steps": 20}}) == (20, 0)


def test_paper_estimate_adds_up_the_chapters_own_counts():
    """One row per chapter with a device cost, and hours that are exact sums of the chapters' unit counts: with
    one second per ODE training image and nothing else, notebook 01 costs its ODE epochs x 60,000 images; with one
    second per ODE attack step only, notebook 06 costs its audit's gradient steps, counted by hand below."""
    p = load_profile("paper")
    cnn0 = {p[k]["model"]: 0.0 for k in ("RESNET50", "FIG1_RESNET", "FIG1_SOURCE", "AT_MODEL")}
    rows = costs.paper_estimate(p, {"train": 1.0, "step": 0.0, "query": 0.0}, cnn0, chapters.CHAPTERS)
    assert [r["notebook"] for r in rows] == [ch.number for ch in chapters.CHAPTERS if ch.cost]
    hours = {r["notebook"]: r["hours"] for r in rows}
    assert hours["01"] == pytest.approx(p["ODE"]["train"]["epochs"] * 60000 / 3600)
    assert hours["02"] == hours["04"] == 0.0  # ResNets only: their unit cost is zero here
    quick = load_profile("quick")
    # the quick budget's attacks on every point with the paper's PGD-40: FGSM 1 step, PGD-40 40, PGD-100x2 200;
    # queries: noise 10 trials, the constant image 1, Square 300
    assert costs.Units.audit_units(quick) == (241, 311)
    cnn_quick = {quick[k]["model"]: 0.0 for k in ("RESNET50", "FIG1_RESNET", "FIG1_SOURCE", "AT_MODEL")}
    steps_only = costs.paper_estimate(quick, {"train": 0.0, "step": 1.0, "query": 0.0}, cnn_quick, chapters.CHAPTERS)
    six = next(r for r in steps_only if r["notebook"] == "06")
    odes = 1  # of the five audited models only the Neural ODE is an ODE net; the CNNs cost nothing here
    assert six["hours"] == pytest.approx(odes * 241 * quick["AUDIT_N"] * len(quick["AUDIT_EPS"]) / 3600)


def _hours(p, ode=None):
    models = {p[k]["model"] for k in ("RESNET50", "FIG1_RESNET", "FIG1_SOURCE", "AT_MODEL")}
    rows = costs.paper_estimate(p, ode or {"train": 2e-3, "step": 5e-4, "query": 1e-4}, {m: 1e-4 for m in models},
                                chapters.CHAPTERS)
    return {r["notebook"]: r["hours"] for r in rows}


def test_each_chapter_costs_what_its_parameters_ask():
    p = load_profile("paper")
    base = _hours(p)
    train = {**p["ODE"]["train"], "epochs": 2 * p["ODE"]["train"]["epochs"]}
    longer = _hours({**p, "ODE": {**p["ODE"], "train": train}})
    assert longer["01"] > base["01"] and longer["07"] > base["07"]  # the chapters that train ODE nets
    assert all(longer[k] == base[k] for k in ("02", "03", "04", "05", "06"))
    fewer = _hours({**p, "PGD_STEPS": 5})  # the paper's PGD shortened: the chapters that run it cost less
    assert all(fewer[k] < base[k] for k in ("03", "06", "07"))
    assert all(fewer[k] == base[k] for k in ("01", "02", "04", "05"))
    queries = _hours({**p, "BOUNDARY_QUERIES": 10 * p["BOUNDARY_QUERIES"]})
    assert queries["04"] > base["04"] and all(queries[k] == base[k] for k in base if k != "04")


def test_training_stops_after_the_epoch_that_exhausts_the_budget():
    data = load_dataset("synthetic", train_size=64, test_size=16)
    model, history = gpu_check.train_ode(data, channels=4, budget_s=0.0, device=gpu_check.torch.device("cpu"),
                                         progress=False)
    assert len(history) == 1 and not model.training
    assert history[0]["nfe_forward_mean"] > 0


def test_untrained_unit_costs_are_measured():
    """Each unit cost is its own measurement (a query is timed, not derived from the step)."""
    import math
    data = load_dataset("synthetic", train_size=64, test_size=16)
    unit = gpu_check.untrained_ode_costs(data, channels=4, x=data.test_x[:8], device=gpu_check.torch.device("cpu"))
    assert all(math.isfinite(v) and v > 0 for v in unit.values()), unit
    assert unit["query"] != unit["step"] / 3


def test_amp_numerics_compares_both_cpu_float16_paths_with_the_device(small_odenet, digits):
    """On a CPU 'device' the emulation is compared with itself: every cosine 1 and the zero counts equal; the CPU
    kernels' row is there too (the GPU run is the one that tests the claim)."""
    import torch
    x, y = digits.test_x[:6], digits.test_y[:6]
    out = gpu_check.amp_numerics(small_odenet, x, y, torch.device("cpu"), scales=(1.0, 1e4))
    assert set(out) == {"float16-amp", "float16-amp-cpu-kernels"}
    for k, r in out["float16-amp"].items():
        assert r["zero_gpu"] == r["zero_cpu"] and (r["zero_gpu"] == 6 or r["cos_median"] > 0.9999)
    assert out["float16-amp"][1e4]["zero_gpu"] >= out["float16-amp"][1.0]["zero_gpu"]
