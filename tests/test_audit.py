import pytest
import torch

from natrob import audit
from natrob.audit import checks
from natrob.attacks import ConstantImage
from natrob.harness.evaluate import evaluate
from natrob.stats import class_shares, constant_image_limit, count, wilson

BUDGET = {"pgd_steps": [60], "pgd_restarts": 1, "square_queries": 200, "aa_iter": 10, "aa_square_queries": 50,
          "aa_targets": 2, "boundary_queries": 100, "adaptive_steps": 5, "noise_trials": 5, "unbounded_steps": 30,
          "eot_iter": 4, "eot_steps": 10, "draws": 5}
MASKING = ("gradients at the inputs are informative", "black-box <= white-box success",
           "iterative >= single-step success",
           "random noise weaker than gradient attacks", "unbounded attack reaches ~100% success",
           "more steps/restarts never raise accuracy", "deterministic forward pass")


class Quantized(torch.nn.Module):
    """A deliberately masked model: non-differentiable quantisation (zero input gradient) in front of a CNN."""

    def __init__(self, inner, levels=4):
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x):
        return self.inner(torch.round(x * self.levels) / self.levels)


class Detached(torch.nn.Module):
    """Preprocessing outside autograd: the input never reaches the graph."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x.detach())


class Noisy(torch.nn.Module):
    """Gaussian noise added at test time: a randomized model."""

    def __init__(self, inner, sigma=0.3):
        super().__init__()
        self.inner, self.sigma = inner, sigma

    def forward(self, x):
        return self.inner((x + self.sigma * torch.randn_like(x)).clamp(0, 1))


class NoAutograd(torch.nn.Module):
    """A model that cannot be differentiated at all: it raises whenever its input requires grad."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        if x.requires_grad:
            raise RuntimeError("this model only runs in inference mode")
        return self.inner(x)


@pytest.fixture(scope="module")
def points(digits):
    return digits.test_x[:40], digits.test_y[:40]


def _flagged(res):
    return {c["check"] for c in res["checks"] if c["status"] == "flag"}


def _worst_below_every_attack(res):
    for p in res["per_eps"]:
        for a in p["attacks"].values():
            if a["robust"]["k"] is not None:
                assert p["worst_case"]["k"] <= a["robust"]["k"], (a["label"], p["worst_case"], a["robust"])
                assert a["robust"]["n"] == p["worst_case"]["n"] == p["n"]


def test_masked_model_is_flagged(trained_cnn, points):
    x, y = points
    res = audit.audit_model(Quantized(trained_cnn).eval(), x, y, [0.3], BUDGET, "quantized CNN", progress=False)
    assert {"gradients at the inputs are informative", "black-box <= white-box success"} <= _flagged(res)
    f = res["findings"][0]
    assert f["masking"]["status"] == "signs"
    assert f["paper_attack"]["k"] - f["worst_case"]["k"] > checks.gap(f["n"])  # the paper's PGD overstates it
    _worst_below_every_attack(res)


def test_plain_cnn_is_not_flagged(trained_cnn, points):
    x, y = points
    res = audit.audit_model(trained_cnn, x, y, [0.05, 0.1], BUDGET, "plain CNN", progress=False)
    rows = [c for c in res["checks"] if c["check"] in MASKING]
    assert rows and all(c["status"] == "pass" for c in rows), [c for c in rows if c["status"] == "flag"]
    assert all(f["masking"]["status"] == "no sign" for f in res["findings"])
    _worst_below_every_attack(res)


def test_detached_input_is_flagged_and_does_not_crash(trained_cnn, points):
    x, y = points
    res = audit.audit_model(Detached(trained_cnn).eval(), x, y, [0.1], BUDGET, "detached CNN", progress=False)
    assert res["probe"]["gradient"]["connected"] is False
    assert "gradients at the inputs are informative" in _flagged(res)
    attacks = res["per_eps"][0]["attacks"]
    assert attacks["square"]["robust"]["k"] is not None and attacks["square"]["error"] is None  # gradient-free ran
    assert attacks["pgd-paper"]["robust"]["k"] is not None  # zero gradient: PGD runs, it just learns nothing
    assert res["findings"][0]["masking"]["status"] == "signs"
    _worst_below_every_attack(res)


def test_randomized_model_is_flagged_and_attacked_with_eot(trained_cnn, points):
    x, y = points
    torch.manual_seed(0)
    res = audit.audit_model(Noisy(trained_cnn).eval(), x, y, [0.1], BUDGET, "noisy CNN", progress=False)
    assert res["probe"]["randomness"]["randomized"] and res["probe"]["draws"] == BUDGET["draws"]
    assert "deterministic forward pass" in _flagged(res)
    attacks = res["per_eps"][0]["attacks"]
    assert attacks["pgd-eot"]["role"] == "eot" and attacks["pgd-eot"]["robust"]["k"] is not None
    rand = attacks["autoattack-rand"]  # it ran (or had no survivor to attack), and did not raise
    assert rand["error"] is None and rand["robust"]["k"] is not None, rand
    assert rand["n_attacked"] > 0 or rand.get("skipped")
    assert res["findings"][0]["masking"]["status"] == "signs"
    _worst_below_every_attack(res)


def test_model_exceptions_are_recorded_not_raised(trained_cnn, points):
    x, y = points
    res = audit.audit_model(NoAutograd(trained_cnn).eval(), x[:20], y[:20], [0.1], BUDGET, "no-autograd CNN",
                            progress=False)
    attacks = res["per_eps"][0]["attacks"]
    assert "RuntimeError" in attacks["pgd-paper"]["error"] and attacks["pgd-paper"]["robust"]["k"] is None
    assert attacks["noise"]["error"] is None and attacks["noise"]["robust"]["k"] is not None
    assert any("RuntimeError" in e["error"] for e in res["per_eps"][0]["errors"])
    assert res["probe"]["gradient"]["error"] and "gradients at the inputs are informative" in _flagged(res)


def test_worst_case_is_minimum_over_attacks(trained_cnn, points):
    x, y = points
    res = evaluate(trained_cnn, x, y, [0.05, 0.1], [{"name": "fgsm"}, {"name": "random-noise", "trials": 3},
                                                     {"name": "pgd", "steps": 10, "alpha": 0.02}],
                   cascade=False, progress=False)
    for w in res["worst_case"]:
        per = [r["robust"]["k"] for r in res["rows"] if r["eps"] == w["eps"]]
        assert isinstance(w["robust"]["k"], int) and w["robust"]["k"] <= min(per) and w["robust"]["n"] == len(y)


def test_wilson_interval():
    lo, hi = wilson(20, 40)
    assert lo < 0.5 < hi and hi - lo == pytest.approx(0.2960, abs=5e-4)  # 2 z sqrt(1/160 + z^2/6400) / (1 + z^2/40)
    assert wilson(0, 40)[0] == 0.0 and wilson(40, 40)[1] == 1.0 and wilson(0, 40)[1] > 0.05
    assert all(wilson(0, n)[0] == 0.0 and wilson(n, n)[1] == 1.0 for n in range(1, 200))
    widths = [wilson(k, n)[1] - wilson(k, n)[0] for k, n in ((5, 10), (50, 100), (500, 1000))]
    assert widths[0] > widths[1] > widths[2]
    with pytest.raises(ValueError, match="k, n"):
        wilson(41, 40)
    with pytest.raises(ValueError, match="integer counts"):
        wilson(0.5, 40)
    import numpy as np
    assert wilson(np.int64(20), np.int64(40)) == (lo, hi)  # counts straight from pandas


def test_findings_name_what_failed():
    from natrob.audit.verdict import findings, sentence
    n = 40
    row = {"n": n, "clean": count(38, n), "worst_case": count(0, n),
           "attacks": {"pgd-paper": {"role": "paper", "robust": count(4, n), "cumulative": False, "label": "PGD-40"},
                       "pgd100x2": {"role": "strong-white-box", "robust": count(0, n), "cumulative": False,
                                    "label": "PGD-100x2"}}}
    f = findings("M", 0.5, row, [], paper=0.7523, bound_share=0.15)
    assert f["reproduced"]["status"] == "not reproduced"
    assert f["converged"]["status"] == "not converged" and f["converged"]["points"] == 4
    assert f["masking"]["status"] == "no sign"
    assert f["feasible"]["status"] == "infeasible"
    inside = findings("M", 0.2, row, [], paper=0.1, bound_share=0.15)  # 4/40 has 0.1 inside its interval
    assert inside["reproduced"]["status"] == "reproduced" and inside["feasible"]["status"] == "not applicable"
    s = sentence("M", [f])
    assert s.startswith("M (clean 95.0%") and "not reproduced" in s and "not converged" in s and "impossible" in s


def test_constant_image_bound_from_class_shares():
    # 20 labels over 5 classes, counted by hand: class 0 five, class 2 nine, class 4 six -> shares .25/0/.45/0/.3
    y = torch.tensor([2, 0, 4, 2, 2, 4, 0, 2, 4, 2, 0, 2, 4, 2, 0, 4, 2, 0, 4, 2], dtype=torch.uint8)
    shares = class_shares(y, 5)
    assert shares == pytest.approx([5 / 20, 0.0, 9 / 20, 0.0, 6 / 20], abs=1e-12)
    assert constant_image_limit(shares[2], 20) == 9  # at most the 9 points of the largest class
    for paper, exceeds in ((0.5, True), (0.46, True), (0.45, False), (0.3, False), (None, None)):
        b = audit.constant_image_bound(shares, paper_value=paper)
        assert b["bound"] == pytest.approx(0.45, abs=1e-12) and b["paper"] == paper, b
        assert b["paper_exceeds_bound"] is exceeds, (paper, b)  # 45% itself is attainable: not above the bound
    b = audit.constant_image_bound(class_shares([1, 1, 1, 0], 3), paper_value=0.8)  # shares .25/.75/0
    assert b["bound"] == pytest.approx(0.75) and b["paper_exceeds_bound"] is True
    assert audit.constant_image_bound(class_shares([1, 1, 1, 0], 3), 0.7)["paper_exceeds_bound"] is False

    class AlwaysThree(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 5)
            out[:, 3] = 1 + x.flatten(1).mean(1) * 0  # depends on x only trivially
            return out

    y = torch.tensor([3] * 13 + [1] * 7)  # class 3, the one the model always answers, has the largest share 13/20
    x = torch.rand(20, 1, 4, 4)
    x_adv = ConstantImage(0.5)(AlwaysThree(), x, y)
    assert torch.all(x_adv == 0.5)
    assert int((AlwaysThree()(x_adv).argmax(1) == y).sum()) == 13 == constant_image_limit(max(class_shares(y, 5)), 20)
    assert torch.equal(ConstantImage(0.3)(AlwaysThree(), x, y), x)  # below 0.5 the constant image is out of reach
    # the check holds a worst case of 13 of 20 (the constant image's share) and flags 14, one above what is possible
    def bound_check(worst):
        rows = checks.eps_checks("M", 0.5, {}, count(worst, 20), 20, bound_share=class_shares(y, 5)[3])
        return next(c for c in rows if c["finding"] == "feasible")
    assert bound_check(13)["status"] == "pass" and bound_check(14)["status"] == "flag"
    assert bound_check(14)["points_differ"] == 1 and bound_check(20)["points_differ"] == 7
