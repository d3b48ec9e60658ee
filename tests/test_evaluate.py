import json
import os

import pytest

import torch

from natrob import paths
from natrob.evaluate import batch_disagreement, csv_rows, evaluate
from natrob.results import write_result


def test_solver_failures_are_counted_not_raised(small_odenet, digits):
    from natrob.attacks import FGSM
    from natrob.evaluate import per_sample_solves
    x, y = digits.test_x[:24], digits.test_y[:24]
    with per_sample_solves(small_odenet), torch.no_grad():  # each image's own NFE, clean and after FGSM (uncapped)
        small_odenet(x)
        clean_nfe = small_odenet.nfe_per_sample.clone()
    cap = int(clean_nfe.min())
    keep = clean_nfe == cap  # points whose clean solve fits the cap exactly
    x, y = x[keep], y[keep]
    with per_sample_solves(small_odenet):
        x_adv = FGSM(0.3)(small_odenet, x, y)
        with torch.no_grad():
            small_odenet(x_adv)
        over = small_odenet.nfe_per_sample > cap  # these adversarial solves cannot fit the cap
    old = small_odenet.configure_solver(max_nfe=cap)
    try:
        capped = evaluate(small_odenet, x, y, [0.3], [{"name": "fgsm"}], progress=False, cache=False)
    finally:
        small_odenet.configure_solver(max_nfe=old["max_nfe"])
    # the cap bit where it must: clean solves passed, exactly the adversarial solves over the cap failed, and each
    # failed point counts as not robust
    row, status = capped["rows"][0], capped["worst_case"][0]["counts"]
    assert over.any(), "FGSM at eps 0.3 moved no image past its clean NFE: the cap cannot be tested on these points"
    assert capped["clean_solver_failures"] == 0 and capped["clean"]["k"] == int(keep.sum()) - status["misclassified"]
    with per_sample_solves(small_odenet), torch.no_grad():
        correct = (small_odenet(x).argmax(1) == y).cpu()
    assert row["solver_failures"] == int((over.cpu() & correct).sum())
    assert status["solver_failure"] == row["solver_failures"] and status["robust"] == row["robust"]["k"]
    assert row["robust"]["k"] <= capped["clean"]["k"] - row["solver_failures"]
    # force failures for certain: a cap below one dopri5 step
    small_odenet.configure_solver(max_nfe=3)
    try:
        res = evaluate(small_odenet, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    finally:
        small_odenet.configure_solver(max_nfe=None)
    assert res["clean_solver_failures"] == len(y)
    # nothing can be measured when every clean solve fails: no count is claimed, the reason is named
    assert res["evaluable"] is False and f"failed on every clean image ({len(y)} of {len(y)})" in res["not_evaluable"]
    assert res["worst_case"][0]["robust"]["k"] is None and res["rows"][0]["robust"]["k"] is None


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
    assert report["n"] == 30 and 0 <= report["disagree"] <= 30
    assert report["disagree_per_sample"] == 0 and report["max_logit_diff_per_sample"] < 1e-3  # how the harness judges


def test_results_written_with_provenance(trained_cnn, digits):
    res = evaluate(trained_cnn, digits.test_x[:30], digits.test_y[:30], [0.1], [{"name": "fgsm"}], progress=False)
    path = write_result("03-table1-test-cnn", res, {"eps": [0.1]}, seed=0, csv_rows=csv_rows(res))  # its schema
    assert path.parent == paths.results_dir()
    data = json.loads(path.read_text())
    assert set(data["provenance"]) >= {"params", "seed", "git_commit", "versions", "device", "wall_time_s", "profile"}
    assert (path.parent / "03-table1-test-cnn.csv").read_text().startswith("model,eps,attack,id,robust,n,accuracy")
    robust, clean = data["rows"][0]["robust"], data["clean"]
    assert robust["n"] == clean["n"] == 30 and 0 <= robust["k"] <= clean["k"] <= 30
    assert robust["ci95"][0] <= robust["k"] / 30 <= robust["ci95"][1]




class Counting(torch.nn.Module):
    """Counts forward passes; raises KeyboardInterrupt (as a kill would) once NATROB_TEST_KILL_AFTER is reached.
    The kill switch lives outside the model (the store keys on the model's attributes and the globals its code
    names), so that the killed and the resumed run evaluate the same model."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        if self.calls > int(os.environ.get("NATROB_TEST_KILL_AFTER", 10 ** 9)):
            raise KeyboardInterrupt
        return self.inner(x)


def test_killed_evaluation_resumes_with_what_was_missing(trained_cnn, digits, monkeypatch):
    x, y = digits.test_x[:40], digits.test_y[:40]
    attacks = [{"name": "fgsm", "id": "fgsm"}, {"name": "random-noise", "trials": 3, "id": "noise"},
               {"name": "pgd", "steps": 5, "alpha": 0.05, "id": "pgd5"}]
    reference = evaluate(Counting(trained_cnn), x, y, [0.1], attacks, cascade=False, progress=False, cache=False)
    # the contract probe (5 passes), 1 clean pass, 2 for FGSM (gradient + judgement), then the kill inside noise
    monkeypatch.setenv("NATROB_TEST_KILL_AFTER", "9")
    with pytest.raises(KeyboardInterrupt):
        evaluate(Counting(trained_cnn), x, y, [0.1], attacks, cascade=False, progress=False)
    monkeypatch.delenv("NATROB_TEST_KILL_AFTER")
    rerun_model = Counting(trained_cnn)
    resumed = evaluate(rerun_model, x, y, [0.1], attacks, cascade=False, progress=False)
    assert [r["cached"] for r in resumed["rows"]] == [True, False, False]  # FGSM finished before the kill
    fresh = Counting(trained_cnn)
    evaluate(fresh, x, y, [0.1], attacks, cascade=False, progress=False, cache=False)
    assert rerun_model.calls == fresh.calls - 2  # everything but FGSM's two passes was recomputed
    assert [r["robust"] for r in resumed["rows"]] == [r["robust"] for r in reference["rows"]]
    again = evaluate(Counting(trained_cnn), x, y, [0.1], attacks, cascade=False, progress=False)
    assert all(r["cached"] for r in again["rows"])
    assert [r["robust"] for r in again["rows"]] == [r["robust"] for r in reference["rows"]]


def test_a_failing_model_is_recorded_not_raised(digits):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("weights not loaded")

    res = evaluate(Broken(), digits.test_x[:8], digits.test_y[:8], [0.1], [{"name": "fgsm"}], progress=False)
    assert "weights not loaded" in res["clean_error"] and res["clean"]["k"] is None
    assert res["evaluable"] is False and "weights not loaded" in res["not_evaluable"]
    assert res["worst_case"][0]["robust"]["k"] is None  # unmeasured, not 0


def test_randomized_model_judged_by_majority_vote(trained_cnn, digits):
    from natrob.evaluate import predict

    class Flip(torch.nn.Module):
        """Right on 2 of every 3 passes, then a wrong label: a majority vote over 3 draws is always right."""

        def __init__(self, inner):
            super().__init__()
            self.inner, self.k = inner, 0

        def forward(self, x):
            self.k += 1
            z = self.inner(x)
            return z.roll(1, dims=1) if self.k % 3 == 0 else z

    x = digits.test_x[:20]
    base, _ = predict(trained_cnn, x)
    voted, _ = predict(Flip(trained_cnn), x, draws=3)
    assert torch.equal(voted, base)
