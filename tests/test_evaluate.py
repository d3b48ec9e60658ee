import json

import torch

from natrob.evaluate import batch_disagreement, evaluate, save_result


def test_solver_failures_are_counted_not_raised(small_odenet, digits):
    x, y = digits.test_x[:12], digits.test_y[:12]
    old = small_odenet.configure_solver(max_nfe=None)
    evaluate(small_odenet, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    nfe = small_odenet.nfe_forward  # NFE of the last clean solve
    try:
        # a cap just above a clean solve: the perturbed inputs need more steps and some solves fail
        small_odenet.configure_solver(max_nfe=max(6, nfe))
        capped = evaluate(small_odenet, x, y, [0.3], [{"name": "pgd", "steps": 3, "alpha": 0.1}], progress=False)
    finally:
        small_odenet.configure_solver(**{"max_nfe": old["max_nfe"]})
    assert sum(capped["worst_case"][0]["counts"].values()) == len(y)  # every point got a status, nothing raised
    # force failures for certain: a cap below one dopri5 step
    small_odenet.configure_solver(max_nfe=3)
    try:
        res = evaluate(small_odenet, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    finally:
        small_odenet.configure_solver(max_nfe=None)
    assert res["clean_solver_failures"] == len(y)
    assert res["worst_case"][0]["accuracy"] == 0.0
    assert res["worst_case"][0]["counts"]["solver_failure"] == len(y)


def test_solver_failure_mid_attack(small_odenet, digits):
    """Clean solves pass, but the attack's backward/forward solves exceed the cap: counted per point."""
    x, y = digits.test_x[:8], digits.test_y[:8]

    class FailOnPerturbed(torch.nn.Module):
        def __init__(self, inner, x_clean):
            super().__init__()
            self.inner, self.x_clean = inner, x_clean

        def forward(self, xb):
            from natrob.errors import SolverFailure
            if len(xb) > 1 and not any(torch.equal(xb[0], xc) for xc in self.x_clean):
                raise SolverFailure("underflow in dt (provoked)")
            if len(xb) == 1 and (xb - self.x_clean).abs().flatten(1).amax(1).min() > 0 and xb.sum() > self.x_clean.sum() / len(self.x_clean):
                raise SolverFailure("underflow in dt (provoked, single)")
            return self.inner(xb)

    model = FailOnPerturbed(small_odenet, x)
    res = evaluate(model, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    assert res["rows"][0]["solver_failures"] > 0
    assert res["worst_case"][0]["counts"]["solver_failure"] == res["rows"][0]["solver_failures"]


def test_batch_vs_per_sample(small_odenet, digits):
    report = batch_disagreement(small_odenet, digits.test_x[:30])
    assert report["n"] == 30 and 0 <= report["rate"] <= 1


def test_results_written_with_provenance(trained_cnn, digits, tmp_path):
    res = evaluate(trained_cnn, digits.test_x[:30], digits.test_y[:30], [0.1], [{"name": "fgsm"}], progress=False)
    path = save_result(res, "cnn-fgsm", {"eps": [0.1]}, seed=0, folder=tmp_path)
    data = json.loads(path.read_text())
    assert set(data["provenance"]) >= {"params", "seed", "git_commit", "versions", "device", "wall_time_s"}
    assert (tmp_path / "cnn-fgsm.csv").read_text().startswith("model,eps,attack,accuracy")
    assert 0 <= data["rows"][0]["accuracy"] <= data["clean_accuracy"] <= 1
