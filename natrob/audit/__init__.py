"""Robustness audit: does a model's robustness survive the strongest evaluation?

For each model and eps it runs (sized by the caller's budget) FGSM, the paper's PGD-40, PGD with many steps and
restarts, AutoAttack, Square, a decision-based Boundary Attack, transfer from a ResNet, random noise inside the
ball, the constant-image attack, and for ODE nets adaptive attacks: gradients through fixed-step (Euler, RK4)
solves of the same vector field, through the adjoint, and through looser and tighter tolerances. Adversarial
examples are always judged by the model exactly as evaluated (its own solver and tolerance).

No model can crash the audit. Before attacking, natrob.attacks.contract checks the model's output (a tensor of
logits of shape (n, classes)): a model that cannot be evaluated (its forward pass raises, it returns a tuple, every
clean ODE solve fails) gets a result that says so and why, and no finding about the paper. A probe
(:mod:`natrob.audit.probes`) then asks whether the forward pass is random (16 passes on the same input), whether the
input gradient exists and is informative, whether the output looks like probabilities or is non-finite, and whether
predictions depend on their batch-mates (then every judgement is made one image at a time). A randomized model is
attacked with EOT-PGD and AutoAttack's ``rand`` version as well, and judged by majority vote over several draws; a
model whose input is disconnected from autograd still gets every gradient-free attack; any exception inside an
attack is recorded in its row, named in the verdict, and the audit goes on.

Attack specs carry a stable ``id`` and a ``role`` (``ROLES``); checks (natrob.audit.checks) select attacks by role,
and the verdict (natrob.audit.verdict) separates four findings: reproduced, converged, masking, feasible, and names
what limits the evaluation (attacks that raised, components skipped, solver failures, non-finite logits,
batch dependence).
"""
from __future__ import annotations

from . import checks as checks_mod
from . import verdict as verdict_mod
from ..attacks.contract import as_labels, check_images, prepare
from ..harness.evaluate import evaluate
from ..harness.prediction import model_device as _device, per_sample_solves
from ..models.odenet import solver_twin
from ..harness.plan import run_plan
from ..stats import class_shares, count
from .. import reference
from . import budgets
# gradient_stats, output_stats and randomness stay importable here, where the audit's callers found them
from .probes import gradient_stats, output_stats, probe, randomness  # noqa: F401
from ..errors import ConfigError
from ..reference import lookup

ROLES = {
    "paper": "the paper's own attack (PGD-40, step 0.01, random start)",
    "single-step": "FGSM",
    "strong-white-box": "PGD with many steps and restarts; AutoAttack",
    "black-box": "score- or decision-based attacks that never see a gradient (Square, Boundary)",
    "transfer": "examples crafted on another model",
    "adaptive": "gradients through another solve of the same ODE (fixed-step, adjoint, other tolerances)",
    "noise": "random corners of the eps-ball",
    "bound": "the constant 0.5 image",
    "eot": "Expectation over Transformation, for randomized models",
    "protocol-variant": "FGSM or the paper's PGD under a protocol that is NOT the correct threat model (07, 08)",
}


def ode_surrogates(model, fixed_steps: int = 20) -> dict:
    """Copies of an ODE net with the same weights but another way of solving/differentiating it."""
    if not hasattr(model, "configure_solver"):
        return {}
    span = model.t1 - model.t0
    out = {}
    for slug, (label, changes) in {
        "euler": (f"Euler, {fixed_steps} steps", {"method": "euler", "step_size": span / fixed_steps}),
        "rk4": (f"RK4, {fixed_steps} steps", {"method": "rk4", "step_size": span / fixed_steps}),
        "adjoint": ("adjoint", {"adjoint": True}),
        "tol1e-1": ("loose tol 1e-1", {"rtol": 1e-1, "atol": 1e-1}),
        "tol1e-5": ("tight tol 1e-5", {"rtol": 1e-5, "atol": 1e-5}),
    }.items():
        out[slug] = (label, solver_twin(model, **changes))
    return out


def attack_plan(budget: dict, surrogates: dict, resnet=None, randomized: bool = False, paper_attack=None) -> list:
    """The audit's attack plan (:mod:`natrob.harness.plan`): attacks on every clean-correct point (the checks compare
    them), then attacks only on points that survived everything before (``on: survivors``: they only lower the
    worst case).
    ``paper_attack``: the paper's PGD as the profile runs it (default :func:`natrob.reference.paper_attack`)."""
    b = budgets.audit_settings(budget)
    restarts = b["pgd_restarts"]
    standalone = [
        {"name": "fgsm", "id": "fgsm", "role": "single-step", "label": "FGSM"},
        dict(paper_attack or reference.paper_attack()),
        {"name": "random-noise", "trials": b["noise_trials"], "id": "noise", "role": "noise",
         "label": "random noise"},
        {"name": "constant-image", "id": "constant-image", "role": "bound", "label": "constant 0.5 image"},
    ]
    for steps in b["pgd_steps"]:
        standalone.append({"name": "pgd", "steps": steps, "alpha_rel": 0.25, "restarts": restarts,
                           "id": budgets.pgd_id(steps, restarts), "role": "strong-white-box",
                           "label": f"PGD-{steps}x{restarts}"})
    standalone.append({"name": "square", "n_queries": b["square_queries"], "id": "square",
                       "role": "black-box", "label": "Square"})
    if randomized:
        k = b["eot_iter"]
        standalone.append({"name": "pgd", "steps": b["eot_steps"], "alpha_rel": 0.25, "eot_iter": k,
                           "id": "pgd-eot", "role": "eot", "label": f"EOT-PGD ({k} draws per step)"})
    cascade = [{"name": "autoattack", "n_iter": b["aa_iter"], "n_queries": b["aa_square_queries"],
                "n_target_classes": b["aa_targets"], "id": "autoattack", "role": "strong-white-box",
                "label": "AutoAttack"}]
    if randomized:
        cascade.append({"name": "autoattack-rand", "n_iter": b["aa_iter"],
                        "eot_iter": b["aa_eot_iter"], "id": "autoattack-rand", "role": "eot",
                        "label": "AutoAttack (rand version)"})
    cascade.append({"name": "boundary", "queries": b["boundary_queries"], "id": "boundary",
                    "role": "black-box", "label": "Boundary (decision-based)"})
    if resnet is not None:
        cascade.append({"name": "transfer", "source": resnet, "attack": {"name": "pgd", "steps": 20, "alpha_rel": 0.25},
                        "id": "transfer-resnet", "role": "transfer", "label": "transfer from ResNet"})
    for slug, (label, twin) in surrogates.items():
        cascade.append({"name": "transfer", "source": twin, "id": f"adaptive-{slug}", "role": "adaptive",
                        "attack": {"name": "pgd", "steps": b["adaptive_steps"], "alpha_rel": 0.25},
                        "label": f"adaptive: PGD via {label}"})
    return standalone + [dict(s, on="survivors") for s in cascade]


# ------------------------------------------------------------------------------------------- attacks
ROW_FIELDS = ("attack", "role", "robust", "cumulative", "n_broken", "n_attacked", "error",
              "solver_failures", "non_finite", "silent_success", "incomplete_optimisation", "warnings", "skipped",
              "wall_s", "nfe_mean")


def _counted(rows: list) -> dict:
    return {r["id"]: {k: r.get(k) for k in ROW_FIELDS} | {"label": r["attack"]} for r in rows}


def attack_at_eps(model, x, y, eps, plan, draws, label, progress, seed, per_sample=False) -> dict:
    """Every attack of ``plan`` at one eps (:func:`natrob.harness.plan.run_plan`): standalone counts, then the
    cascade on the points still robust. ``evaluable`` False (with ``not_evaluable``, the reason) when the clean pass
    left nothing to measure."""
    res = run_plan(model, x, y, eps, plan, seed=seed, draws=draws, label=label, progress=progress,
                   per_sample=per_sample)
    if not res["evaluable"]:
        return {"eps": eps, "n": len(y), "evaluable": False, "not_evaluable": res["not_evaluable"]}
    return {"eps": eps, "n": len(y), "evaluable": True, "clean": res["clean"],
            "attacks": _counted(res["rows"].values()), "worst_case": res["worst_case"],
            "solver_failures": res["solver_failures"], "clean_solver_failures": res["clean_solver_failures"],
            "clean_non_finite": res["clean_non_finite"], "errors": res["errors"], "cache": res["cache"]}


def unbounded_attack(model, x, y, budget, label, draws, per_sample=False) -> dict:
    """PGD at eps = 1 (the whole image space): any working attack must break ~every clean-correct point."""
    steps = budgets.audit_settings(budget)["unbounded_steps"]
    res = evaluate(model, x, y, [1.0], [{"name": "pgd", "steps": steps, "alpha": 0.05,
                                         "id": "pgd-unbounded", "label": "PGD eps=1"}],
                   cascade=False, progress=False, model_name=label, draws=draws, per_sample=per_sample)
    row = res["rows"][0]
    return {"robust": row["robust"]["k"], "n": res["clean"]["k"], "error": row["error"],
            "allowed": int(0.01 * res["clean"]["k"])}


# ------------------------------------------------------------------------------------------- audit
def audit_model(model, x, y=None, eps_list=(0.1, 0.3), budget="standard", label: str = "model",
                paper: dict | None = None, resnet=None, num_classes: int | None = None, progress: bool = True,
                seed: int = 0, paper_attack: dict | None = None, n: int | None = None, root=None) -> dict:
    """Audit one model: does its robustness at each eps survive the strongest evaluation the budget buys?

    Example (a user's model on MNIST's official test images)::

        import natrob
        result = natrob.audit_model(my_net.eval(), "mnist", eps_list=[0.1, 0.3], n=200, budget="standard")
        print(result["sentence"])

    Arguments: ``model`` any ``torch.nn.Module`` mapping (n, C, H, W) images in [0, 1] to (n, classes) logits
    (natrob.attacks.contract copes with tuples, probabilities, half precision, DataParallel, batch statistics, random
    passes and models that write into their input, and says so in the checks); ``x`` either (n, C, H, W)
    floating images in [0, 1] with ``y`` (n,) labels of any integer dtype, or a dataset name of
    :data:`natrob.data.DATASETS` (then the first ``n`` test images, default 200, from ``root``); ``eps_list``
    L-inf radii in pixel units of [0, 1]; ``budget`` a name of :data:`natrob.audit.budgets.BUDGETS` ("quick",
    "standard", "strong") or a dict of their keys; ``label`` names the model in every row; ``paper`` maps eps ->
    the paper's accuracy in [0, 1] (or None); ``resnet`` a source for the transfer attack; ``num_classes``
    (None: the model's output count); ``paper_attack`` the paper's PGD as a profile runs it (default
    :func:`natrob.reference.paper_attack`, PGD-40 of step 0.01, Yan et al. 2020).

    Returns a dict: ``per_eps`` (counts per attack id with 95% Wilson intervals, the worst case), ``checks``
    (warning signs, Carlini et al. 2019), ``findings`` (reproduced / converged / masking / feasible per eps),
    ``probe`` and ``sentence``. Raises ConfigError for bad arguments (``x``, ``y``, ``budget``, ``eps_list``,
    labels outside the model's classes), never for what the model does: a model that cannot be evaluated
    (natrob.attacks.contract) gets ``evaluable`` False, its reason, and no finding about the paper."""
    budget = budgets.resolve(budget)
    eps_list = _eps_list(eps_list)
    if isinstance(x, str):
        x, y, num_classes = _dataset_points(x, y, n, root, seed, num_classes)
    elif y is None:
        raise ConfigError("y", None, "labels (n,) beside images x, or a dataset name as x")
    with per_sample_solves(model):  # probes see the model as the harness judges it (ODE nets batch-independent)
        return _audit(model, x, y, eps_list, budget, label, paper, resnet, num_classes, progress, seed, paper_attack)


def _eps_list(eps_list, param: str = "eps_list") -> list:
    values = [eps_list] if isinstance(eps_list, (int, float)) else list(eps_list)
    bad = [e for e in values if not isinstance(e, (int, float)) or not 0 < float(e) <= 1]
    if not values or bad:
        raise ConfigError(param, eps_list, "one or more L-inf radii in (0, 1] (pixel units of [0, 1] images)")
    return [float(e) for e in values]


def _dataset_points(name, y, n, root, seed, num_classes):
    from ..data import load_dataset
    if y is not None:
        raise ConfigError("y", "labels", "None when x names a dataset (its test labels are used)")
    n = 200 if n is None else n
    if not isinstance(n, int) or n < 1:
        raise ConfigError("n", n, "a positive number of test images")
    data = load_dataset(name, root=root, seed=seed, download=False)
    return data.test_x[:n], data.test_y[:n], num_classes or data.num_classes


def _audit(model, x, y, eps_list, budget, label, paper, resnet, num_classes, progress, seed, paper_attack) -> dict:
    check_images(x)
    y = as_labels(y)
    dev = _device(model, x)
    x, y = x.to(dev), y.to(dev)
    prep = prepare(model, x, y, num_classes)
    num_classes = num_classes or prep.output.get("classes") or (int(y.max()) + 1 if len(y) else 2)
    shares = class_shares(y, num_classes)
    bound = max(shares) if len(y) else 0.0
    if not prep.evaluable:
        return _not_evaluated(label, eps_list, len(y), prep.reason, paper, shares, {"output": prep.output})
    b = budgets.audit_settings(budget)
    p = probe(prep.model, x, y, b["draws"], b["random_passes"])
    p |= {"batch": prep.batch, "contract": prep.output}
    per_sample = prep.batch_dependent  # a batch-dependent model is judged one image at a time
    surrogates = ode_surrogates(model, b["fixed_steps"]) if b["adaptive"] else {}
    plan = attack_plan(budget, surrogates, resnet, p["randomness"]["randomized"], paper_attack)
    per_eps, checks = [], []
    for eps in eps_list:
        row = attack_at_eps(model, x, y, eps, plan, p["draws"], label, progress, seed, per_sample)
        if not row["evaluable"]:
            return _not_evaluated(label, eps_list, len(y), row["not_evaluable"], paper, shares, p)
        per_eps.append(row)
        checks += checks_mod.eps_checks(label, eps, row["attacks"], row["worst_case"], row["n"], bound)
    unbounded = unbounded_attack(model, x, y, budget, label, p["draws"], per_sample)
    checks += checks_mod.model_checks(label, p, unbounded)
    findings = [verdict_mod.findings(label, r["eps"], r, checks, lookup(paper, r["eps"]) if paper else None, bound)
                for r in per_eps]
    return {"model": label, "evaluable": True, "not_evaluable": None, "probe": p, "per_eps": per_eps,
            "checks": checks, "findings": findings, "sentence": verdict_mod.sentence(label, findings),
            "class_shares": shares, "surrogates": [lbl for lbl, _ in surrogates.values()], "roles": ROLES,
            "budget": budget}


def _not_evaluated(label, eps_list, n, reason, paper, shares, probe_info) -> dict:
    """An audit that measured nothing: every finding 'not evaluated', the reason in the sentence, every count
    "not measured" (``k`` None of ``n``)."""
    findings = [verdict_mod.not_evaluated(label, eps, n, reason, lookup(paper, eps) if paper else None)
                for eps in eps_list]
    return {"model": label, "evaluable": False, "not_evaluable": reason, "probe": probe_info,
            "per_eps": [{"eps": e, "n": n, "evaluable": False, "not_evaluable": reason, "clean": count(None, n),
                         "attacks": {}, "worst_case": count(None, n), "errors": []} for e in eps_list],
            "checks": [], "findings": findings, "sentence": verdict_mod.sentence(label, findings),
            "class_shares": shares, "surrogates": [], "roles": ROLES}


def constant_image_bound(class_shares, paper_value=None) -> dict:
    """The most any classifier can score at eps >= 0.5 on [0,1] images, and whether a reported figure exceeds it."""
    bound = max(class_shares)
    return {"bound": bound, "paper": paper_value,
            "paper_exceeds_bound": None if paper_value is None else paper_value > bound}
