"""The GPU check runs on a bare GPU machine: what it imports, how it sizes training, and its extrapolation."""
import subprocess
import sys

import pytest

from natrob import chapters, gpu_check, paths
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
               "import natrob.gpu_check\n")
    out = subprocess.run([sys.executable, "-c", blocker], cwd=paths.REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]


def test_attack_units_count_steps_and_queries():
    assert gpu_check._attack_units({"name": "pgd", "steps": 100, "restarts": 2}) == (200, 0)
    assert gpu_check._attack_units({"name": "square", "n_queries": 300}) == (0, 300)
    assert gpu_check._attack_units({"name": "boundary", "queries": 50}) == (0, 50)
    assert gpu_check._attack_units({"name": "transfer", "attack": {"name": "pgd", "steps": 20}}) == (20, 0)


def test_paper_estimate_is_linear_in_the_unit_costs():
    p = load_profile("paper")
    models = {p[k]["model"] for k in ("RESNET50", "FIG1_RESNET", "FIG1_SOURCE", "AT_MODEL")}
    ode = {"train": 2e-3, "step": 5e-4, "query": 1e-4}
    one = gpu_check.paper_estimate(p, ode, {m: 1e-4 for m in models})
    two = gpu_check.paper_estimate(p, {k: 2 * v for k, v in ode.items()}, {m: 2e-4 for m in models})
    # one cost row per chapter with a device cost, in the chapters' order (01-07 at least; records add more)
    assert [r["notebook"] for r in one] == [ch.number for ch in chapters.CHAPTERS if ch.cost]
    assert {"01", "02", "03", "04", "05", "06", "07"} <= {r["notebook"] for r in one}
    assert all(r["hours"] > 0 for r in one)
    for a, b in zip(one, two):
        assert b["hours"] == pytest.approx(2 * a["hours"], rel=1e-9)


def _hours(p, ode=None):
    models = {p[k]["model"] for k in ("RESNET50", "FIG1_RESNET", "FIG1_SOURCE", "AT_MODEL")}
    rows = gpu_check.paper_estimate(p, ode or {"train": 2e-3, "step": 5e-4, "query": 1e-4}, {m: 1e-4 for m in models})
    return {r["notebook"]: r["hours"] for r in rows}


def test_each_chapter_costs_what_its_parameters_ask():
    p = load_profile("paper")
    base = _hours(p)
    longer = _hours({**p, "ODE": {**p["ODE"], "train": {**p["ODE"]["train"], "epochs": 2 * p["ODE"]["train"]["epochs"]}}})
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


def test_untrained_unit_costs_are_positive_and_a_query_is_a_third_of_a_step():
    data = load_dataset("synthetic", train_size=64, test_size=16)
    costs = gpu_check.untrained_ode_costs(data, channels=4, x=data.test_x[:8], device=gpu_check.torch.device("cpu"))
    assert costs["train"] > 0 and costs["step"] > 0
    assert 0 < costs["query"] < costs["step"]  # a forward query is cheaper than a gradient step
