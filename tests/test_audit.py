import pytest
import torch

from natrob import audit
from natrob.attacks import ConstantImage
from natrob.evaluate import evaluate

BUDGET = {"pgd_steps": [60], "pgd_restarts": 1, "square_queries": 200, "aa_iter": 10, "aa_square_queries": 50,
          "aa_targets": 2, "boundary_queries": 100, "adaptive_steps": 5, "noise_trials": 5, "unbounded_steps": 30}


class Quantized(torch.nn.Module):
    """A deliberately masked model: non-differentiable quantisation (zero input gradient) in front of a CNN."""

    def __init__(self, inner, levels=4):
        super().__init__()
        self.inner, self.levels = inner, levels

    def forward(self, x):
        return self.inner(torch.round(x * self.levels) / self.levels)


@pytest.fixture(scope="module")
def points(digits):
    return digits.test_x[:40], digits.test_y[:40]


def test_masked_model_is_flagged(trained_cnn, points):
    x, y = points
    masked = Quantized(trained_cnn).eval()
    res = audit.audit_model(masked, x, y, [0.3], BUDGET, "quantized CNN", progress=False)
    flagged = {c["check"] for c in res["checks"] if c["status"] == "flag"}
    assert "gradients at the inputs are informative" in flagged
    assert "black-box <= white-box success" in flagged
    assert all(v["verdict"] == "masking suspected" for v in res["verdict"])
    v = res["verdict"][0]
    assert v["pgd"] - v["worst_case"] > audit.GAP  # PGD-40 overstates the robustness


def test_plain_cnn_is_not_flagged(trained_cnn, points):
    x, y = points
    res = audit.audit_model(trained_cnn, x, y, [0.05, 0.1], BUDGET, "plain CNN", progress=False)
    masking_checks = [c for c in res["checks"] if c["check"] in (
        "gradients at the inputs are informative", "black-box <= white-box success", "iterative >= single-step success",
        "random noise weaker than gradient attacks", "unbounded attack reaches ~100% success")]
    assert masking_checks and all(c["status"] == "pass" for c in masking_checks), masking_checks
    for p in res["per_eps"]:  # the worst case is never above any single attack's accuracy
        assert all(p["worst_case"] <= acc + 1e-9 for acc in p["accuracies"].values())


def test_worst_case_is_minimum_over_attacks(trained_cnn, points):
    x, y = points
    res = evaluate(trained_cnn, x, y, [0.05, 0.1], [{"name": "fgsm"}, {"name": "random-noise", "trials": 3},
                                                     {"name": "pgd", "steps": 10, "alpha": 0.02}],
                   cascade=False, progress=False)
    for w in res["worst_case"]:
        per = [r["accuracy"] for r in res["rows"] if r["eps"] == w["eps"]]
        assert w["accuracy"] <= min(per) + 1e-9


def test_constant_image_bound_from_class_shares():
    assert audit.constant_image_bound([0.1, 0.3, 0.6], paper_value=0.75) == {
        "bound": 0.6, "paper": 0.75, "paper_exceeds_bound": True}

    class AlwaysThree(torch.nn.Module):
        def forward(self, x):
            out = torch.zeros(len(x), 5)
            out[:, 3] = 1 + x.flatten(1).mean(1) * 0  # depends on x only trivially
            return out

    y = torch.tensor([3] * 7 + [1] * 13)  # class 3 has share 0.35
    x = torch.rand(20, 1, 4, 4)
    x_adv = ConstantImage(0.5)(AlwaysThree(), x, y)
    assert torch.all(x_adv == 0.5)
    assert (AlwaysThree()(x_adv).argmax(1) == y).float().mean().item() == pytest.approx(0.35)
    assert torch.equal(ConstantImage(0.3)(AlwaysThree(), x, y), x)  # below 0.5 the constant image is out of reach
