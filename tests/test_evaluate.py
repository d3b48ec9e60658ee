import csv
import json
import os
import platform
import re

import pytest

import torch

from natrob import paths
from natrob.harness.evaluate import Status, csv_rows, evaluate
from natrob.harness.prediction import batch_disagreement, per_sample_solves, predict
from natrob.report.schemas import write_result


def test_solver_failures_are_counted_not_raised(small_odenet, digits):
    from natrob.attacks import FGSM
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
            single = len(xb) == 1 and (xb - self.x_clean).abs().flatten(1).amax(1).min() > 0
            if single and xb.sum() > self.x_clean.sum() / len(self.x_clean):
                raise SolverFailure("underflow in dt (provoked, single)")
            return self.inner(xb)

    model = FailOnPerturbed(small_odenet, x)
    res = evaluate(model, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    assert res["rows"][0]["solver_failures"] > 0
    assert res["worst_case"][0]["counts"]["solver_failure"] == res["rows"][0]["solver_failures"]


def test_batch_vs_per_sample(small_odenet, digits):
    """With per-sample step sizes an ODE net is batch-independent: its logits in a batch equal its logits alone,
    so the batched and the one-at-a-time judgements of the harness agree on every point."""
    x, y = digits.test_x[:30], digits.test_y[:30]
    report = batch_disagreement(small_odenet, x)
    assert report["n"] == 30 and report["disagree_per_sample"] == 0 and report["max_logit_diff_per_sample"] < 1e-5
    # the shared step size (the solver's default) does make the logits depend on the batch: the report sees it
    assert report["max_logit_diff"] > 100 * report["max_logit_diff_per_sample"]
    assert report["rate"] == report["disagree"] / 30
    with per_sample_solves(small_odenet), torch.no_grad():  # what the harness runs ODE nets under
        batched = small_odenet(x)
        alone = torch.cat([small_odenet(x[i:i + 1]) for i in range(len(x))])
    assert (batched - alone).abs().max() < 1e-5
    assert torch.equal(predict(small_odenet, x)[0], predict(small_odenet, x, per_sample=True)[0])
    spec = [{"name": "fgsm"}]
    auto = evaluate(small_odenet, x, y, [0.1], spec, progress=False, cache=False)
    single = evaluate(small_odenet, x, y, [0.1], spec, per_sample=True, progress=False, cache=False)
    assert auto["per_sample"] is False and auto["batch_dependence"]["dependent"] is False and single["per_sample"]
    assert auto["clean"] == single["clean"] and auto["worst_case"] == single["worst_case"]
    assert [r["robust"] for r in auto["rows"]] == [r["robust"] for r in single["rows"]]
    assert torch.equal(auto["_robust"][0.1], single["_robust"][0.1])  # the same points, not only the same count


class BatchSizeBias(torch.nn.Module):
    """Batch-dependent on purpose: class 0 gains a logit of 2 per batch-mate. Alone, an image gets ``inner``'s
    logits exactly (the bias is 0)."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        z = self.inner(x)
        return z + 2.0 * (len(x) - 1) * torch.nn.functional.one_hot(torch.zeros_like(z[:, 0], dtype=torch.long),
                                                                   z.shape[1]).to(z.dtype)


def test_batch_dependent_model_is_judged_one_image_at_a_time(trained_cnn, digits):
    from natrob.attacks import FGSM
    x, y = digits.test_x[:30], digits.test_y[:30]
    model = BatchSizeBias(trained_cnn).eval()
    with torch.no_grad():
        alone = torch.cat([model(x[i:i + 1]) for i in range(len(x))]).argmax(1)
    assert not torch.equal(predict(model, x)[0], alone)  # judged in one batch, the model says something else
    assert torch.equal(predict(model, x, per_sample=True)[0], alone)
    res = evaluate(model, x, y, [0.1], [{"name": "fgsm"}], progress=False, cache=False)
    assert res["batch_dependence"]["dependent"] is True and res["per_sample"] is True
    # every point evaluated by itself, as if it were the only one: clean, attacked alone, judged alone
    correct = alone == y
    robust = torch.zeros_like(correct)
    for i in correct.nonzero().squeeze(1).tolist():
        x_adv = FGSM(0.1)(model, x[i:i + 1], y[i:i + 1])
        with torch.no_grad():
            robust[i] = model(x_adv).argmax(1)[0] == y[i]
    assert res["clean"]["k"] == int(correct.sum()) and res["rows"][0]["robust"]["k"] == int(robust.sum())
    assert torch.equal(res["_robust"][0.1], robust.cpu())
    assert res["worst_case"][0]["counts"] == {"robust": int(robust.sum()), "broken": int((correct & ~robust).sum()),
                                              "misclassified": int((~correct).sum()), "solver_failure": 0,
                                              "non_finite": 0}


def test_results_written_with_provenance(trained_cnn, digits):
    from natrob.attacks import FGSM
    x, y = digits.test_x[:30], digits.test_y[:30]
    res = evaluate(trained_cnn, x, y, [0.1], [{"name": "fgsm"}], progress=False)
    path = write_result("03-table1-test-cnn", res, {"eps": [0.1]}, seed=0, device="cpu", wall_time_s=res["wall_s"],
                        csv_rows=csv_rows(res))  # its schema
    assert path.name == "03-table1-test-cnn.json" and paths.artifacts() / "results" in path.parents
    data = json.loads(path.read_text())
    prov = data["provenance"]
    assert prov["params"] == {"eps": [0.1]} and prov["seed"] == 0 and "profile" in prov
    assert re.fullmatch(r"[0-9a-f]{40}(\+dirty)?", prov["git_commit"]), prov["git_commit"]
    assert prov["versions"]["python"] == platform.python_version()
    assert prov["versions"]["torch"] == torch.__version__.split("+")[0]
    assert prov["versions"]["natrob"] and prov["device"].startswith("cpu:")
    assert prov["wall_time_s"] == res["wall_s"] > 0
    assert data["output"]["dtype"] == "torch.float32" and data["output"]["input_cast"] is None  # the precision
    # the exact counts, computed here the way the harness must: FGSM on the clean-correct points, judged once more
    with torch.no_grad():
        correct = trained_cnn(x).argmax(1) == y
    idx = correct.nonzero().squeeze(1)
    x_adv = FGSM(0.1)(trained_cnn, x[idx], y[idx])
    with torch.no_grad():
        k = int((trained_cnn(x_adv).argmax(1) == y[idx]).sum())
    clean = int(correct.sum())
    assert data["clean"]["k"] == clean and data["clean"]["n"] == 30
    row = data["rows"][0]
    assert (row["robust"]["k"], row["robust"]["n"], row["n_attacked"], row["n_broken"]) == (k, 30, clean, clean - k)
    assert data["worst_case"][0]["counts"] == {"robust": k, "broken": clean - k, "misclassified": 30 - clean,
                                               "solver_failure": 0, "non_finite": 0}
    with open(path.parent / "03-table1-test-cnn.csv") as f:
        written = list(csv.DictReader(f))
    assert list(written[0])[:7] == ["model", "eps", "attack", "id", "robust", "n", "accuracy"]
    assert len(written) == 1 and (written[0]["robust"], written[0]["n"], written[0]["clean_correct"]) == (
        str(k), "30", str(clean))



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


def test_one_attack_under_two_names_is_computed_once(trained_cnn, digits):
    """Two notebooks that run the same attack under their own id, role and label (notebook 03's ``pgd-paper``,
    notebook 08's ``pgd``) share one stored evaluation: the second is served from the store with the same counts;
    a spec that computes something else (another step count) is not."""
    x, y = digits.test_x[:24], digits.test_y[:24]
    first = evaluate(trained_cnn, x, y, [0.1], [{"name": "pgd", "steps": 3, "alpha": 0.05, "id": "pgd-paper",
                                                  "role": "paper", "label": "PGD-3"}], cascade=False, progress=False)
    second = evaluate(trained_cnn, x, y, [0.1], [{"name": "pgd", "steps": 3, "alpha": 0.05, "id": "pgd",
                                                   "label": "PGD-3 (Table 1)"}], cascade=False, progress=False)
    other = evaluate(trained_cnn, x, y, [0.1], [{"name": "pgd", "steps": 4, "alpha": 0.05, "id": "pgd"}],
                     cascade=False, progress=False)
    assert [r["cached"] for r in first["rows"] + second["rows"] + other["rows"]] == [False, True, False]
    assert second["rows"][0]["robust"] == first["rows"][0]["robust"] and second["rows"][0]["id"] == "pgd"


def test_a_failing_model_is_recorded_not_raised(digits):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("weights not loaded")

    res = evaluate(Broken(), digits.test_x[:8], digits.test_y[:8], [0.1], [{"name": "fgsm"}], progress=False)
    assert "weights not loaded" in res["clean_error"] and res["clean"]["k"] is None
    assert all(r["robust"]["k"] is None and "not run" in r["error"] for r in res["rows"])
    assert res["evaluable"] is False and "weights not loaded" in res["not_evaluable"]
    assert res["worst_case"][0]["robust"]["k"] is None  # unmeasured, not 0


def test_one_row_schema_and_named_statuses(trained_cnn, digits):
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("weights not loaded")

    x, y, spec = digits.test_x[:8], digits.test_y[:8], [{"name": "fgsm"}]
    ran = evaluate(trained_cnn, x, y, [0.1], spec, progress=False, cache=False)
    not_run = evaluate(Broken(), x, y, [0.1], spec, progress=False, cache=False)
    assert set(ran["rows"][0]) == set(not_run["rows"][0])  # a not-evaluable row has every field a measured one has
    assert list(ran["worst_case"][0]["counts"]) == [s.key for s in Status] == [
        "robust", "broken", "misclassified", "solver_failure", "non_finite"]
    assert [int(s) for s in Status] == [0, 1, 2, 3, 4]


def test_randomized_model_judged_by_majority_vote(trained_cnn, digits):
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


def test_speed_switches_are_given_to_the_pgd_a_spec_builds():
    """The harness hands PGD its speed switches when it builds it: the spec's own PGD, a protocol variant's inner
    PGD where it crafts on the judged model, never the attack a transfer runs on its source."""
    from natrob.harness.attack_runs import build_attack
    from natrob.attacks import PGD
    pgd = build_attack({"name": "pgd", "steps": 2}, 0.1, freeze_fooled=True, stop_stalled=True)
    assert isinstance(pgd, PGD) and pgd.freeze_fooled and pgd.stop_stalled
    plain = build_attack({"name": "pgd", "steps": 2}, 0.1)
    assert not plain.freeze_fooled and not plain.stop_stalled
    inner = {"name": "pgd", "steps": 2}
    judged = build_attack({"name": "protocol-variant", "protocol": "no-clip", "attack": inner}, 0.1, freeze_fooled=True)
    assert judged.attack.freeze_fooled
    twin = build_attack({"name": "protocol-variant", "protocol": "cross-solver", "craft_solver": {"rtol": 1e-3},
                         "attack": inner}, 0.1, freeze_fooled=True)
    assert not twin.attack.freeze_fooled
    source = build_attack({"name": "transfer", "source": None, "attack": inner}, 0.1, freeze_fooled=True)
    assert not source.attack.freeze_fooled
    assert not hasattr(build_attack({"name": "fgsm"}, 0.1, freeze_fooled=True), "freeze_fooled")
