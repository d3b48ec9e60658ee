"""Issue 17: the common pitfalls of robustness evaluation become clear errors or named findings.

One section per kind of the issue's table; small CNNs on digits, 8-24 points, small budgets. Every test
asserts a property on counts or a named finding, never a float of one machine.
"""
import copy
import math

import pytest
import torch

from natrob import audit, reference
from natrob.audit import checks, verdict
from natrob.harness import evalstore
from natrob.attacks import PGD, make_attack
from natrob.attacks.contract import prepare
from natrob.errors import CheckpointError, ConfigError
from natrob.harness.evaluate import evaluate
from natrob.stats import count

BUDGET = {"pgd_steps": [40], "pgd_restarts": 1, "square_queries": 100, "aa_iter": 5, "aa_square_queries": 30,
          "aa_targets": 2, "boundary_queries": 50, "adaptive_steps": 5, "noise_trials": 3, "unbounded_steps": 20,
          "eot_iter": 2, "eot_steps": 5, "draws": 3}
PGD10 = [{"name": "pgd", "steps": 10, "alpha": 0.02, "id": "pgd10"}]


@pytest.fixture(scope="module")
def pts(digits):
    return digits.test_x[:24], digits.test_y[:24]


class Wrap(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner


# ------------------------------------------------------------------------------------------- output contract
class Pair(Wrap):
    def forward(self, x):
        z = self.inner(x)
        return z, z.detach()


class AsDict(Wrap):
    def forward(self, x):
        return {"logits": self.inner(x)}


class Flat(Wrap):
    def forward(self, x):
        return self.inner(x).flatten()


class Labels(Wrap):
    def forward(self, x):
        return torch.nn.functional.one_hot(self.inner(x).argmax(1), 10)


class Softmax(Wrap):
    def forward(self, x):
        return torch.softmax(20 * self.inner(x), 1)


class OffGrid(Wrap):
    """NaN (or inf) logits wherever the image leaves the data's 1/16 pixel grid (any perturbation)."""

    def __init__(self, inner, value=float("nan")):
        super().__init__(inner)
        self.value = value

    def forward(self, x):
        z = self.inner(x)
        off = ((x * 16).round() / 16 - x).abs().flatten(1).amax(1) > 1e-6
        return torch.where(off[:, None], torch.full_like(z, self.value), z)


@pytest.mark.parametrize("wrapper, words", [(Pair, "tuple of 2"), (AsDict, "dict"), (Flat, "shape"),
                                            (Labels, "dtype torch.int64")])
def test_outputs_that_are_not_logits_make_the_model_unevaluable(trained_cnn, pts, wrapper, words):
    x, y = pts
    res = evaluate(wrapper(trained_cnn).eval(), x, y, [0.1], PGD10, progress=False)
    assert res["evaluable"] is False and words in res["not_evaluable"]
    assert res["rows"][0]["robust"]["k"] is None and res["worst_case"][0]["robust"]["k"] is None
    assert res["clean"]["k"] is None and res["rows"][0]["robust"]["n"] == len(y)


def test_tuple_output_audit_makes_no_finding(trained_cnn, pts):
    x, y = pts
    res = audit.audit_model(Pair(trained_cnn).eval(), x, y, [0.1], BUDGET, "pair", paper={0.1: 0.9}, progress=False)
    assert res["evaluable"] is False
    assert "could not be evaluated" in res["sentence"] and "tuple" in res["sentence"]
    assert "no finding about the paper" in res["sentence"]
    assert all(f[k]["status"] == "not evaluated" for f in res["findings"] for k in verdict.FINDINGS)
    # every count "not measured": k None of the n points, never 0
    assert all(f[c] == count(None, len(y)) for f in res["findings"] for c in ("clean", "paper_attack", "worst_case"))
    assert all(r["worst_case"] == count(None, len(y)) for r in res["per_eps"])


def test_probability_outputs_are_a_named_finding_with_their_count(trained_cnn, pts):
    x, y = pts
    res = audit.audit_model(Softmax(trained_cnn).eval(), x, y, [0.1], BUDGET, "softmax", progress=False)
    row = next(c for c in res["checks"] if c["check"] == "output is logits, not probabilities")
    assert row["status"] == "flag" and row["points_differ"] == len(y)
    assert f"probabilities, not logits, on {len(y)} of {len(y)}" in res["sentence"]
    aa = next(c for c in res["checks"] if c["check"] == "AutoAttack's own checks pass")
    assert aa["status"] == "flag" and "probabilities" in aa["detail"]  # AutoAttack's own warning, captured


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_logits_are_never_robust(trained_cnn, pts, value):
    x, y0 = pts
    y = torch.zeros_like(y0)  # argmax of a NaN row is 0: every label-0 point used to count as robust
    model = OffGrid(trained_cnn, value).eval()
    res = evaluate(model, x, y, [0.1], PGD10 + [{"name": "random-noise", "trials": 2, "id": "noise"}],
                   cascade=False, progress=False)
    for row in res["rows"]:
        assert row["robust"]["k"] == 0 and row["non_finite"] == res["clean"]["k"] > 0, row
    assert res["worst_case"][0]["counts"]["non_finite"] == res["clean"]["k"]
    aud = audit.audit_model(model, x, y, [0.1], BUDGET, "nan", progress=False)
    assert "non-finite logits under attack" in aud["sentence"]
    assert aud["per_eps"][0]["worst_case"]["k"] == 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_precisions_are_evaluated_and_cached(trained_cnn, pts, dtype):
    x, y = pts
    low = copy.deepcopy(trained_cnn).to(dtype).eval()
    for model in (low, _CastIO(low, dtype)):  # raw, and wrapped to take and return float32
        first = evaluate(model, x, y, [0.1], PGD10, progress=False)
        again = evaluate(model, x, y, [0.1], PGD10, progress=False)
        assert first["evaluable"] and first["errors"] == [] and first["cache"] == "on"
        assert first["clean"]["k"] >= len(y) - 3 and isinstance(first["rows"][0]["robust"]["k"], int)
        assert again["rows"][0]["cached"] and again["rows"][0]["robust"]["k"] == first["rows"][0]["robust"]["k"]


class _CastIO(Wrap):
    def __init__(self, inner, dtype):
        super().__init__(inner)
        self.dtype = dtype

    def forward(self, x):
        return self.inner(x.to(self.dtype)).float()


# ------------------------------------------------------------------------------------------- inputs
def _audit_counts(aud) -> dict:
    """What an audit measured, as integers: per eps the clean and worst-case counts and every attack's count,
    the finding statuses, the class shares and the checks' statuses."""
    return {"per_eps": [(r["eps"], r["clean"]["k"], r["worst_case"]["k"], r["n"],
                         {a: (row["robust"]["k"], row["error"]) for a, row in r["attacks"].items()})
                        for r in aud["per_eps"]],
            "findings": [{k: f[k]["status"] for k in f if isinstance(f[k], dict) and "status" in f[k]}
                         for f in aud["findings"]],
            "checks": sorted(((c["finding"], c["check"], c["eps"], c["status"], c.get("points_differ"))
                              for c in aud["checks"]), key=repr),
            "class_shares": aud["class_shares"]}


@pytest.fixture(scope="module")
def int64_reference(trained_cnn, pts):
    """evaluate and audit_model on the int64 labels: what every other integer dtype must give."""
    x, y = pts
    assert y.dtype == torch.int64
    ref = evaluate(trained_cnn, x, y, [0.1], PGD10, progress=False, cache=False)
    aud = audit.audit_model(trained_cnn, x, y, [0.1], BUDGET, "cnn", paper={0.1: 0.9}, progress=False)
    return ref, _audit_counts(aud)


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int8, torch.uint8])
def test_labels_of_any_integer_dtype(trained_cnn, pts, int64_reference, dtype):
    """The same labels in any integer dtype: the same counts, findings and checks as int64 (seeded attacks)."""
    x, y = pts
    ref, ref_audit = int64_reference
    assert 0 < ref["rows"][0]["robust"]["k"] < len(y)  # the comparison is between counts that could differ
    res = evaluate(trained_cnn, x, y.to(dtype), [0.1], PGD10, progress=False, cache=False)
    assert res["errors"] == []
    assert res["clean"]["k"] == ref["clean"]["k"]
    assert [w["robust"]["k"] for w in res["worst_case"]] == [w["robust"]["k"] for w in ref["worst_case"]]
    assert [(r["id"], r["robust"]["k"], r["n_attacked"]) for r in res["rows"]] == \
        [(r["id"], r["robust"]["k"], r["n_attacked"]) for r in ref["rows"]]
    aud = audit.audit_model(trained_cnn, x, y.to(dtype), [0.1], BUDGET, "cnn", paper={0.1: 0.9}, progress=False)
    assert all(a["error"] is None for a in aud["per_eps"][0]["attacks"].values())
    assert _audit_counts(aud) == ref_audit
    assert aud["class_shares"] == [float((y == c).sum()) / len(y) for c in range(10)]  # shares of the labels
    assert "raised" not in aud["sentence"]


@pytest.mark.parametrize("param, make", [("y", lambda x, y: (x, y.float())), ("y", lambda x, y: (x, y.bool())),
                                         ("x", lambda x, y: ((x * 255).to(torch.uint8), y)),
                                         ("y", lambda x, y: (x, y + 10))])
def test_bad_label_or_image_dtypes_are_named(trained_cnn, pts, param, make):
    x, y = make(*pts)
    with pytest.raises(ConfigError) as info:
        evaluate(trained_cnn, x, y, [0.1], PGD10, progress=False)
    assert info.value.param == param
    if not (param == "y" and y.dtype == torch.int64):  # a dtype problem: the attacks name it too
        with pytest.raises(ConfigError):
            make_attack("fgsm", eps=0.1)(trained_cnn, x, y)


# ------------------------------------------------------------------------------------------- nothing unmeasured
class Raises(Wrap):
    def forward(self, x):
        raise RuntimeError("expected channels-last input (N, H, W, C)")


class NoAutograd(Wrap):
    def forward(self, x):
        if x.requires_grad:
            raise RuntimeError("inference only")
        return self.inner(x)


def test_a_model_that_never_runs_gets_no_finding(trained_cnn, pts):
    x, y = pts
    res = audit.audit_model(Raises(trained_cnn), x, y, [0.1, 0.5], BUDGET, "nhwc", paper={0.1: 0.9, 0.5: 0.5},
                            progress=False)
    assert res["evaluable"] is False and "channels-last" in res["not_evaluable"]
    assert res["sentence"].startswith("nhwc: could not be evaluated: forward raised RuntimeError")
    for word in ("reproduced", "converged", "masking", "impossible", "clean"):
        assert word not in res["sentence"]


def test_every_clean_solve_failing_gets_no_finding(small_odenet, digits):
    x, y = digits.test_x[:8], digits.test_y[:8]
    old = small_odenet.configure_solver(max_nfe=3)
    try:
        res = audit.audit_model(small_odenet, x, y, [0.1], BUDGET | {"adaptive": False}, "ode", paper={0.1: 0.9},
                                progress=False)
    finally:
        small_odenet.configure_solver(max_nfe=old["max_nfe"])
    assert res["evaluable"] is False
    assert "ODE solver failed on every clean image (8 of 8)" in res["sentence"]


def test_an_attack_that_raised_is_named_and_not_claimed(trained_cnn, pts):
    x, y = pts
    res = audit.audit_model(NoAutograd(trained_cnn).eval(), x[:12], y[:12], [0.1], BUDGET, "inference-only",
                            paper={0.1: 0.9}, progress=False)
    f, s = res["findings"][0], res["sentence"]
    label = reference.paper_attack()["label"]  # the paper's attack, labelled by the spec in use
    assert f["reproduced"]["status"] == "not measured" and f["converged"]["status"] == "not measured"
    assert f["paper_attack"] == count(None, 12) and f["paper_attack_label"] == label  # not measured, not 0
    assert f"{label} raised RuntimeError" in s and "could not be checked" in s
    assert f"{label} converged" not in s and "has no figure" not in s


def test_no_survivor_left_is_no_limit_and_no_claim(trained_cnn, pts):
    x, y = pts[0][:12], pts[1][:12]
    res = audit.audit_model(trained_cnn, x, y, [0.5], BUDGET | {"adaptive": False}, "cnn", progress=False)
    row = res["per_eps"][0]
    assert row["worst_case"]["k"] == 0  # eps 0.5 breaks every point of a plain CNN: no survivor to attack
    later = [a for a in row["attacks"].values() if a["cumulative"]]
    assert later and all(a["skipped"] == [checks.NONE_LEFT] and a["robust"]["k"] == 0 for a in later)
    full = next(c for c in res["checks"] if c["check"] == "every attack ran in full")
    assert full["status"] == "pass" and full["points_differ"] == 0  # nothing is missing from the measurement
    assert not any(c["check"] == "AutoAttack's own checks pass" for c in res["checks"])  # it never ran
    assert res["findings"][0]["skipped"] == [] and checks.NONE_LEFT not in res["sentence"]


# ------------------------------------------------------------------------------------------- few classes
def _small_cnn(digits, classes):
    from natrob.models import build_model, data_spec
    torch.manual_seed(0)
    return build_model("cnn", spec=data_spec(digits) | {"num_classes": classes}).eval()


@pytest.mark.parametrize("classes, attack, skipped", [(3, "autoattack", "APGD-T"), (2, "autoattack", "APGD-T"),
                                                      (2, "autoattack-rand", "APGD-DLR")])
def test_few_classes_skip_what_cannot_run_and_say_so(digits, classes, attack, skipped):
    model = _small_cnn(digits, classes)
    keep = digits.test_y < classes
    x, y = digits.test_x[keep][:8], digits.test_y[keep][:8]
    spec = {"name": attack, "n_iter": 3, **({"n_queries": 20, "n_target_classes": 2} if attack == "autoattack"
                                            else {"eot_iter": 2})}
    res = evaluate(model, x, y, [0.1], [spec], progress=False)
    row = res["rows"][0]
    assert row["error"] is None and isinstance(row["robust"]["k"], int)
    assert any(skipped in s and f"the model has {classes}" in s for s in row["skipped"])


def test_few_classes_named_in_the_sentence(digits):
    model = _small_cnn(digits, 3)
    keep = digits.test_y < 3
    x, y = digits.test_x[keep][:8], digits.test_y[keep][:8]
    res = audit.audit_model(model, x, y, [0.1], BUDGET | {"adaptive": False}, "3-class", num_classes=3,
                            progress=False)
    assert "APGD-T skipped: it needs at least 4 classes, the model has 3" in res["sentence"]


# ------------------------------------------------------------------------------------------- batch statistics
class BatchStats(Wrap):
    """BatchNorm on batch statistics (no running statistics) in front of the CNN."""

    def __init__(self, inner):
        super().__init__(inner)
        self.bn = torch.nn.BatchNorm2d(1, track_running_stats=False, affine=False)

    def forward(self, x):
        return self.inner(self.bn(x) * 0.3 + 0.3)


def test_batch_dependent_model_is_flagged_and_judged_one_at_a_time(trained_cnn, pts):
    x, y = pts[0][:12], pts[1][:12]
    model = BatchStats(trained_cnn).eval()
    spec = [{"name": "pgd", "steps": 10, "alpha": 0.02}]
    counts = set()
    for bs in (12, 5, 4):
        res = evaluate(model, x, y, [0.1], spec, batch_size=bs, progress=False, cache=False)
        assert res["batch_dependence"]["dependent"] and res["per_sample"]
        counts.add(res["rows"][0]["robust"]["k"])
    assert len(counts) == 1  # the same points score the same whatever the batching
    aud = audit.audit_model(model, x, y, [0.1], BUDGET | {"adaptive": False}, "bn", progress=False)
    flag = next(c for c in aud["checks"] if c["check"] == "predictions independent of the batch")
    assert flag["status"] == "flag" and "depend on their batch-mates" in aud["sentence"]


def test_batch_independent_models_are_not_flagged(trained_cnn, small_odenet, pts):
    x, y = pts
    for model in (trained_cnn, small_odenet):
        res = evaluate(model, x[:8], y[:8], [0.1], [{"name": "fgsm"}], progress=False)
        assert res["batch_dependence"]["probed"] and not res["batch_dependence"]["dependent"]
        assert res["per_sample"] is False


# ------------------------------------------------------------------------------------------- randomness
class SometimesNoisy(Wrap):
    """Noise on the logits on 30% of its forward passes."""

    def forward(self, x):
        z = self.inner(x)
        return z + torch.randn_like(z) if torch.rand(()) < 0.3 else z


def test_randomness_probe_finds_a_model_random_on_30_percent_of_passes(trained_cnn, pts):
    x = pts[0][:8]
    found = 0
    for seed in range(20):
        torch.manual_seed(seed)
        found += audit.randomness(SometimesNoisy(trained_cnn).eval(), x)["randomized"]
    assert found >= 19
    assert not audit.randomness(trained_cnn, x)["randomized"]


# ------------------------------------------------------------------------------------------- stale cache
class Scaled(Wrap):
    def __init__(self, inner, k):
        super().__init__(inner)
        self.k = k

    def forward(self, x):
        return self.inner(x) * self.k


class Shifted(Scaled):  # same attributes, other forward code
    def forward(self, x):
        return self.inner(x) * self.k + torch.arange(10.0) * 100


class Opaque:
    __slots__ = ("v",)  # no __dict__: the store cannot see inside it

    def __init__(self, v):
        self.v = v


class WithOpaque(Wrap):
    def __init__(self, inner):
        super().__init__(inner)
        self.cfg = Opaque(3)

    def forward(self, x):
        return self.inner(x) * self.cfg.v


def test_store_never_serves_another_models_result(trained_cnn, pts):
    x, y = pts
    a = evaluate(Scaled(trained_cnn, 1.0), x, y, [0.1], PGD10, progress=False)
    b = evaluate(Scaled(trained_cnn, 1e4), x, y, [0.1], PGD10, progress=False)
    c = evaluate(Shifted(trained_cnn, 1.0), x, y, [0.1], PGD10, progress=False)
    assert not a["rows"][0]["cached"] and not b["rows"][0]["cached"] and not c["rows"][0]["cached"]
    assert evaluate(Scaled(trained_cnn, 1.0), x, y, [0.1], PGD10, progress=False)["rows"][0]["cached"]
    fps = {evalstore.model_fingerprint(m) for m in (Scaled(trained_cnn, 1.0), Scaled(trained_cnn, 1e4),
                                                    Shifted(trained_cnn, 1.0))}
    assert len(fps) == 3


def test_a_model_the_store_cannot_fingerprint_is_evaluated_uncached(trained_cnn, pts):
    x, y = pts
    model = WithOpaque(trained_cnn)
    first = evaluate(model, x, y, [0.1], PGD10, progress=False)
    again = evaluate(model, x, y, [0.1], PGD10, progress=False)
    assert first["cache"].startswith("off:") and "cfg" in first["cache"]
    assert not again["rows"][0]["cached"]


def test_fingerprints_cover_half_precision_and_ignore_solver_counters(trained_cnn, small_odenet, digits):
    for dtype in (torch.bfloat16, torch.float16):
        low = copy.deepcopy(trained_cnn).to(dtype)
        other = copy.deepcopy(low)
        with torch.no_grad():
            next(other.parameters()).view(-1)[0] += 1
        assert evalstore.model_fingerprint(low) != evalstore.model_fingerprint(other) is not None
        assert evalstore.tensor_hash(next(low.parameters()))
    before = evalstore.model_fingerprint(small_odenet)
    with torch.no_grad():
        small_odenet(digits.test_x[:2])
    assert evalstore.model_fingerprint(small_odenet) == before


# ------------------------------------------------------------------------------------------- checkpoints
def test_data_parallel_checkpoints_save_the_inner_module(digits, tmp_path):
    from natrob.models import build_model
    from natrob.train import load_checkpoint, load_into, save_checkpoint
    from natrob.train.store import load_model
    torch.manual_seed(0)
    model = build_model("cnn", digits).eval()
    save_checkpoint(tmp_path / "final.pt", torch.nn.DataParallel(model))
    ckpt = load_checkpoint(tmp_path / "final.pt")
    assert ckpt["arch"]["name"] == "cnn" and not any(k.startswith("module.") for k in ckpt["state_dict"])
    loaded = load_model(tmp_path)
    assert torch.equal(loaded(digits.test_x[:4]).argmax(1), model(digits.test_x[:4]).argmax(1))
    # an older checkpoint: prefixed weights and a record written with tuples
    old = {"arch": {**ckpt["arch"], "spec": {k: tuple(v) if isinstance(v, list) else v
                                             for k, v in ckpt["arch"]["spec"].items()}},
           "state_dict": {f"module.{k}": v for k, v in ckpt["state_dict"].items()}}
    load_into(torch.nn.DataParallel(build_model("cnn", digits)), old)
    load_into(build_model("cnn", digits), old)
    torch.save({"arch": None, "state_dict": ckpt["state_dict"]}, tmp_path / "final.pt")
    with pytest.raises(CheckpointError, match="no architecture record"):
        load_model(tmp_path)


# ------------------------------------------------------------------------------------------- solver domain
def _t_col(t, y):
    return t.reshape(-1, *[1] * (y.dim() - 1)) if t.dim() else t


# (f, exact solution y(t1) from y(t0) = y0): decay, forcing by cos t, and y' = t y (Hull et al.-style problems)
PROBLEMS = [
    (lambda t, y: -0.1 * y, lambda y0, t0, t1: y0 * math.exp(-0.1 * (t1 - t0))),
    (lambda t, y: torch.cos(_t_col(t, y)).expand_as(y), lambda y0, t0, t1: y0 + math.sin(t1) - math.sin(t0)),
    (lambda t, y: _t_col(t, y) * y, lambda y0, t0, t1: y0 * math.exp((t1 ** 2 - t0 ** 2) / 2)),
]


@pytest.mark.parametrize("problem", range(len(PROBLEMS)))
@pytest.mark.parametrize("t0, t1", [(8.0, 1.0), (1.5, -0.5), (0.0, 2.0)])
def test_per_sample_dopri5_integrates_backward(problem, t0, t1):
    from natrob.models.per_sample import dopri5_per_sample
    f, exact = PROBLEMS[problem]
    if problem == 2 and max(abs(t0), abs(t1)) > 3:
        t0, t1 = t0 / 4, t1 / 4  # keep exp(t^2 / 2) in range
    y0 = torch.tensor([[1.0], [2.0], [-0.5]], dtype=torch.float64)
    sol = dopri5_per_sample(f, y0, t0, t1, rtol=1e-7, atol=1e-7)
    want = exact(y0, t0, t1)
    assert not sol.failed.any()
    assert float(((sol.y - want).abs() / want.abs().clamp_min(1e-3)).max()) < 1e-5


def test_per_sample_dopri5_refuses_bad_times():
    from natrob.models.per_sample import dopri5_per_sample
    y0 = torch.ones(2, 1)
    same = dopri5_per_sample(lambda t, y: y, y0, 3.0, 3.0, 1e-3, 1e-3)
    assert torch.equal(same.y, y0) and int(same.nfe.sum()) == 0
    for kw, param in ((dict(t0=float("nan")), "t0"), (dict(t1=float("inf")), "t1"), (dict(rtol=0.0), "rtol")):
        with pytest.raises(ConfigError) as info:
            dopri5_per_sample(lambda t, y: y, y0, **(dict(t0=0.0, t1=1.0, rtol=1e-3, atol=1e-3) | kw))
        assert info.value.param == param


# ------------------------------------------------------------------------------------------- Pintor et al.
class WrongUnderAutograd(Wrap):
    """Misclassifies whenever its input requires grad (the attack's passes), right when judged: every point
    is fooled on the attack's path and none by the returned point (a silent success)."""

    def forward(self, x):
        z = self.inner(x)
        return z.roll(1, dims=1) if x.requires_grad else z


def test_silent_success_is_recorded(trained_cnn, pts):
    x, y = pts
    res = evaluate(WrongUnderAutograd(trained_cnn).eval(), x, y, [0.05], PGD10, progress=False)
    row = res["rows"][0]
    assert row["silent_success"] == row["robust"]["k"] > 0  # every point still robust was fooled on the path
    rows = checks.attack_health("m", 0.05, {"pgd10": row | {"label": "PGD-10"}}, len(y))
    flag = next(r for r in rows if r["check"] == "no silent success (Pintor et al.)")
    assert flag["status"] == "flag" and flag["finding"] == "converged"


def test_pgd_returns_the_best_iterate(trained_cnn, pts):
    x, y = pts
    torch.manual_seed(0)
    last = PGD(0.3, alpha=0.1, steps=10)
    torch.manual_seed(0)
    best = PGD(0.3, alpha=0.1, steps=10, return_best=True)
    fooled_last = (trained_cnn(last(trained_cnn, x, y)).argmax(1) != y)
    torch.manual_seed(0)
    fooled_best = (trained_cnn(best(trained_cnn, x, y)).argmax(1) != y)
    assert bool((fooled_best >= fooled_last).all())  # never worse than the last iterate
    assert int(best.diagnostics["seen_adversarial"].sum()) == int(fooled_best.sum())  # no silent success left


def test_incomplete_optimisation_is_recorded_and_breaks_convergence(trained_cnn, pts):
    x, y = pts
    crawl = [{"name": "pgd", "steps": 10, "alpha": 0.002, "random_start": False, "id": "crawl"}]
    row = evaluate(trained_cnn, x, y, [0.3], crawl, progress=False)["rows"][0]
    assert row["robust"]["k"] > 0 and row["incomplete_optimisation"] >= row["robust"]["k"] // 2
    n = len(y)
    attacks = {"pgd-paper": {"role": "paper", "robust": row["robust"], "cumulative": False, "label": "PGD-40",
                             "silent_success": 0, "incomplete_optimisation": row["incomplete_optimisation"],
                             "error": None},
               "pgd100x1": {"role": "strong-white-box", "robust": row["robust"], "cumulative": False,
                            "label": "PGD-100x1", "silent_success": 0, "incomplete_optimisation": 0, "error": None}}
    rows = checks.attack_health("m", 0.3, attacks, n)
    f = verdict.findings("m", 0.3, {"n": n, "clean": count(n, n), "worst_case": row["robust"], "attacks": attacks},
                         rows, None, 0.2)
    assert f["converged"]["status"] == "not converged"
    assert "loss still rising" in verdict.sentence("m", [f])


def test_contract_probe_is_cheap_and_keeps_plain_models(trained_cnn, pts):
    x, y = pts
    prep = prepare(trained_cnn, x, y)
    assert prep.evaluable and prep.output["classes"] == 10 and prep.output["input_cast"] is None
    assert prep.output["probabilities"] == 0 and prep.output["non_finite"] == 0
