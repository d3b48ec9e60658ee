"""Notebook 07's grid: solver settings really change at test time, protocol variants are what they say, and the
worst case is a worst case. All comparisons are on integer counts."""
import pytest
import torch

from natrob.harness import evalstore
from natrob.study import grid
from natrob.chapters import ch07_grid
from natrob.errors import ConfigError
from natrob.attacks import FGSM, PGD, ProtocolVariant
from natrob.study.protocols import NOT_CORRECT

SMALL = {"model": "odenet", "kwargs": {"channels": 16, "t1": 1.0}, "train": {"epochs": 3}}
FAST = {"pgd_steps": 0, "cw": False, "square_queries": 0}


@pytest.fixture(scope="module")
def batch(digits):
    return digits.test_x[:12], digits.test_y[:12]


def _cells(**kw):
    args = dict(tols=[], grads=["direct"], t1_values=[], epochs_values=[], protocols=[], cross=())
    args.update(kw)
    return grid.build_cells(SMALL, args.pop("tols"), args.pop("grads"), args.pop("t1_values"),
                            args.pop("epochs_values"), args.pop("protocols"), args.pop("cross"))[1]


def test_tolerance_is_applied_at_test_time(small_odenet, batch):
    x, y = batch
    cells = {c["solver"]["rtol"]: c for c in _cells(tols=[0.1, 1e-5])}
    before = small_odenet.solver_config()
    loose = grid.run_cell(cells[0.1], small_odenet, x, y, [0.1], steps=2, alpha=0.05, budget=FAST)
    tight = grid.run_cell(cells[1e-5], small_odenet, x, y, [0.1], steps=2, alpha=0.05, budget=FAST)
    assert loose["solver_config"]["rtol"] == 0.1 and tight["solver_config"]["rtol"] == 1e-5
    assert tight["diagnostics"]["nfe_forward"] > loose["diagnostics"]["nfe_forward"]
    assert tight["clean_nfe"] > loose["clean_nfe"]
    assert small_odenet.solver_config() == before  # restored after the cell


def test_cells_evaluate_the_model_they_name(small_odenet, digits, batch):
    from natrob.models import build_model
    x, y = batch
    torch.manual_seed(1)
    other = build_model("odenet", digits, channels=16, t1=1.0).eval()
    cells = _cells(t1_values=[1.0])  # the base cell only, named after SMALL
    name = cells[0]["model"]
    models = {name: (small_odenet, {"key": "small"}), "other": (other, {"key": "other"})}
    res = grid.run_grid(cells, models, x, y, [0.1], steps=2, alpha=0.05, budget=FAST, float64="none", progress=False)
    assert res[0]["weights"] == evalstore.weights_fingerprint(small_odenet) != evalstore.weights_fingerprint(other)
    assert res[0]["model_key"] == "small"


def test_adjoint_cell_uses_the_adjoint(small_odenet, batch):
    x, y = batch
    cells = {c["grad"]: c for c in _cells(grads=["direct", "adjoint"])}
    adj = grid.run_cell(cells["adjoint"], small_odenet, x, y, [0.1], steps=2, alpha=0.05, budget=FAST)
    assert adj["solver_config"]["adjoint"] is True and small_odenet.adjoint is False
    # the adjoint's backward pass integrates the augmented system; direct back-propagation only calls f's VJP
    assert adj["diagnostics"]["nfe_backward"] > 0


def test_no_clip_leaves_the_box_and_is_labelled(small_odenet, batch):
    x, y = batch
    assert x.min() == 0  # digits have black background pixels, which the perturbation pushes below 0
    x_adv = ProtocolVariant("no-clip", PGD(0.3, alpha=0.1, steps=3))(small_odenet, x, y)
    assert x_adv.min() < 0 or x_adv.max() > 1
    assert (x_adv - x).abs().max() <= 0.3 + 1e-6
    clipped = PGD(0.3, alpha=0.1, steps=3)(small_odenet, x, y)
    assert clipped.min() >= 0 and clipped.max() <= 1
    cells = _cells(protocols=["no-clip"])
    variant = next(c for c in cells if c["protocol"] == "no-clip")
    assert variant["correct_threat_model"] is False and variant["threat_model"].startswith(NOT_CORRECT)
    base = next(c for c in cells if c["protocol"] == "standard")
    assert base["correct_threat_model"] is True and NOT_CORRECT not in base["threat_model"]
    ref = grid.run_cell(base, small_odenet, x, y, [0.3], steps=3, alpha=0.1, budget=FAST)
    res = grid.run_cell(variant, small_odenet, x, y, [0.3], steps=3, alpha=0.1, budget=FAST, reference_cell=ref)
    row = res["per_eps"][0]
    assert row["pgd_outside_box"] and row["fgsm_outside_box"]
    assert 0.3 - 1e-6 <= row["fgsm_max_linf_pixel"] <= 0.3 + 1e-6  # FGSM moves every pixel by eps
    assert row["errors"] == [] and row["worst"]["k"] is not None


def test_normalised_eps_is_a_smaller_pixel_ball(small_odenet, batch):
    x, y = batch
    std = float(small_odenet.normalize.std.max())
    x_adv = ProtocolVariant("normalised-eps", FGSM(0.3))(small_odenet, x, y)
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert abs(float((x_adv - x).abs().max()) - 0.3 * std) < 1e-6 and 0.3 * std < 0.3  # the whole, smaller radius


def test_worst_case_never_above_pgd_fgsm_or_clean(small_odenet, batch):
    x, y = batch
    cells = _cells(tols=[0.1], grads=["direct", "adjoint"], protocols=["no-clip", "cross-solver", "normalised-eps"],
                   cross=[[0.1, 0.001]])
    name = cells[0]["model"]
    res = grid.run_grid(cells, {name: (small_odenet, {})}, x, y, [0.3], steps=3, alpha=0.05,
                        budget={"pgd_steps": 3, "cw": True}, float64="base", progress=False)
    assert {c["protocol"] for c in res} == {"standard", "no-clip", "cross-solver", "normalised-eps"}
    for c in res:
        for r in c["per_eps"]:
            assert r["worst"]["k"] <= r["pgd"]["k"] <= c["clean"]["k"], (c["label"], r)
            assert r["worst"]["k"] <= r["fgsm"]["k"], (c["label"], r)
            assert r["worst"]["n"] == r["pgd"]["n"] == c["clean"]["n"] == len(y)
            if c["correct_threat_model"]:
                assert all(a["k"] >= r["worst"]["k"] for a in r["attacks"].values())
    text = ch07_grid.summary(res, "digits")
    assert "closest to the paper's Table 1" in text and "eps=0.3" in text


def test_bad_grid_settings_are_refused():
    with pytest.raises(ConfigError):
        grid.parse_tolerance("tight")
    with pytest.raises(ConfigError):
        grid.parse_tolerance(2.0)
    with pytest.raises(ConfigError):
        _cells(grads=["backwards"])
    with pytest.raises(ConfigError):
        _cells(protocols=["unclipped"])
    with pytest.raises(ConfigError):
        _cells(protocols=["cross-solver"])  # needs the craft/judge pair
    with pytest.raises(ConfigError):
        grid.run_grid([], {}, None, None, [0.3], float64="sometimes")
