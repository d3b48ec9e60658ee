"""Evaluation protocols: the correct threat model and variants of it that are NOT the correct one.

The paper (Table 1) reports FGSM and PGD-40 (L-inf, step 0.01, uniform random start) accuracies for Neural ODEs
that natrob does not reproduce, and its PGD figure at eps = 0.5 (75.23% on MNIST) exceeds what any classifier can
score there. Notebooks 07 and 08 run protocols that could produce such numbers, each labelled for what it is:

- ``standard``: the correct threat model. Perturbations of L-inf size <= eps in [0, 1] pixel space, adversarial
  images clipped to [0, 1], crafted and judged by the model exactly as evaluated (same weights, solver, tolerance).
- the variants of :mod:`natrob.attacks.variant` (``no-clip``, ``cross-solver``, ``normalised-eps``,
  ``probabilities``): NOT the correct threat model. Each is an attack wrapper around the paper's FGSM or PGD and
  runs through the same harness (:mod:`natrob.harness.evaluate`, :mod:`natrob.harness.plan`) as every other attack.

:func:`variant_plan` is the attack plan of one variant: FGSM and the paper's PGD under it.
"""
from __future__ import annotations

from ..attacks.variant import NOT_CORRECT, VARIANTS
from ..eps import same_eps
from ..errors import ConfigError
from ..harness.precision import AtPrecision, Precision
from ..models.odenet import solver_twin  # noqa: F401  (the twins that craft through another solve; re-exported)

PROTOCOLS = {"standard": {"correct": True,
                          "label": "correct threat model: L-inf eps in [0,1] pixel space, images clipped to [0,1], "
                                   "crafted and judged by the model as evaluated"}} | {
    name: {"correct": False, "label": f"{NOT_CORRECT}: {text}"} for name, text in VARIANTS.items()}


def check_protocol(name: str) -> dict:
    """The protocol's entry in :data:`PROTOCOLS` (``correct`` flag and label); ConfigError for unknown names."""
    if name not in PROTOCOLS:
        raise ConfigError("protocol", name, "one of " + ", ".join(PROTOCOLS))
    return PROTOCOLS[name]


def variant_plan(protocol: str, paper: dict, attacks=("fgsm", "pgd"), craft_solver: dict | None = None) -> list:
    """The attack plan (:mod:`natrob.harness.plan`) of FGSM and the paper's PGD (``paper``:
    :func:`natrob.reference.paper_attack`) under ``protocol``, both on every clean-correct point, with ids
    ``fgsm`` and ``pgd-paper`` and labels naming the protocol. ``attacks`` picks among them; ``craft_solver``
    ({"rtol", "atol"}) is the crafting twin's tolerance of ``cross-solver``. Raises ConfigError for the
    ``standard`` protocol (not a variant), an unknown one or an unknown attack."""
    if protocol not in VARIANTS:
        raise ConfigError("protocol", protocol, "a protocol variant: " + ", ".join(VARIANTS))
    unknown = [a for a in attacks if a not in ("fgsm", "pgd")]
    if unknown:
        raise ConfigError("attacks", unknown, "some of 'fgsm', 'pgd'")
    if protocol == "cross-solver" and not (isinstance(craft_solver, dict) and craft_solver):
        raise ConfigError("craft_solver", craft_solver, "{'rtol': ..., 'atol': ...} of the twin that crafts")
    extra = {"craft_solver": dict(craft_solver)} if protocol == "cross-solver" else {}
    inner = {"fgsm": ({"name": "fgsm"}, "fgsm", "FGSM"),
             "pgd": ({k: v for k, v in paper.items() if k not in ("id", "role", "label")}, paper["id"], paper["label"])}
    return [{"name": "protocol-variant", "protocol": protocol, "attack": inner[a][0], **extra, "id": inner[a][1],
             "role": "protocol-variant", "label": f"{inner[a][2]} ({protocol})"} for a in attacks]


# Table 1 of one model under the correct threat model (notebooks 08, 09)
def table1_specs(paper_attack: dict, early_stop: bool) -> list:
    """Table 1's attacks as harness specs: FGSM, the paper's PGD (``paper_attack``, from
    :func:`natrob.reference.paper_attack`; ``early_stop`` freezes a point at its first fooling iterate: fewer
    gradient steps, but that iterate sits at the decision boundary and, judged again in another batch, may
    round back to the right side, so the count can be a little higher than natrob's PGD, which counts a point
    broken when any iterate fooled the model), and that random start alone (``uniform-noise``, one draw): what
    PGD scores when its gradient is of no use."""
    pgd = dict(paper_attack, id="pgd")
    if early_stop:
        pgd |= {"early_stop": True, "label": pgd["label"] + " (first fooling iterate)"}
    return [{"name": "fgsm", "id": "fgsm", "label": "FGSM"}, pgd,
            {"name": "uniform-noise", "id": "noise", "trials": 1, "label": "uniform noise (PGD's random start)"}]


def table1(model, x, y, eps_list, paper_attack: dict, early_stop: bool, seed: int = 0,
           name: str | None = None) -> dict:
    """Table 1 of one model at every radius: {"clean": count, "rows": {attack id: [{eps, robust: count, error}]},
    "labels": {attack id: label}} (standalone attacks on the clean-correct points, through the harness)."""
    from ..harness.evaluate import evaluate
    specs = table1_specs(paper_attack, early_stop)
    res = evaluate(model, x, y, list(eps_list), specs, cascade=False, seed=seed, model_name=name)
    rows = {}
    for r in res["rows"]:
        rows.setdefault(r["id"], []).append({"eps": r["eps"], "robust": r["robust"], "error": r["error"]})
    return {"clean": res["clean"], "rows": rows, "labels": {s["id"]: s["label"] for s in specs}}


# the protocol variants of one model's Table 1 (notebook 08), each through the harness
MEASURED = ("no-clip", "normalised-eps", "cross-solver", "probabilities", "float16")
TABLE1_VARIANTS = {
    **VARIANTS,
    "cross-solver": "crafted at a loose solver tolerance, judged at the model's own",
    "no-usable-gradient": "an attack whose gradient is of no use: FGSM returns the clean image, PGD its random start",
    "float16": "crafted and judged in float16",
}


def _protocol_plan(proto: str, attacks: list, paper_attack: dict, cross_tol: float) -> list:
    """The plan of one protocol at one radius: an attack-wrapper variant, or (float16) the plain attacks, whose
    model is the one that changes."""
    if proto == "float16":
        pgd = {**paper_attack, "label": f"{paper_attack['label']} (float16)"}
        return [{"name": "fgsm", "id": "fgsm", "label": "FGSM (float16)"} if a == "fgsm" else pgd for a in attacks]
    return variant_plan(proto, paper_attack, attacks, craft_solver={"rtol": cross_tol, "atol": cross_tol})


def protocol_rows(model, x, y, eps_list, pgd_eps, paper_attack: dict, cross_tol: float, seed: int = 0,
                  base: dict | None = None, progress: bool = True, protocols=None) -> dict:
    """Table 1 (FGSM at every radius of ``eps_list``, the paper's PGD ``paper_attack`` at those of ``pgd_eps``)
    under each protocol of :data:`TABLE1_VARIANTS`, none of which is the correct threat model, each run through the
    harness (:func:`natrob.harness.plan.run_plan`): {protocol: {"fgsm": [{eps, robust: count}], "pgd": [...], "label",
    "failures" (solver failures in attacks), "clean_failures", "not_evaluable", "errors"}}; an attack that
    raised has its count not measured (``k`` None) and its error listed. Where the harness cannot evaluate a
    protocol at all (every clean solve fails), every point counts as not robust, as a failed solve does, and
    ``not_evaluable`` says why. ``base`` (a :func:`table1` output) gives the no-usable-gradient rows for free.
    ``protocols`` (None: all) picks among the measured ones (:data:`MEASURED`). Raises ConfigError for an unknown
    protocol."""
    from tqdm.auto import tqdm

    from ..harness.plan import run_plan
    from ..stats import count
    unknown = [p for p in protocols or () if p not in MEASURED]
    if unknown:
        raise ConfigError("WIDTH_PROTOCOLS", unknown, "some of " + ", ".join(MEASURED))
    radii = sorted({float(e) for e in list(eps_list) + list(pgd_eps)})
    jobs = [(p, e) for p in (protocols or MEASURED) for e in radii]
    # the float16 variant changes the judged model, not the attack: a float16 copy, its solver hidden from the harness
    judges = {"float16": AtPrecision(model, Precision.FLOAT16, solver=False)} if "float16" in (protocols or MEASURED) \
        else {}
    out = {}
    for proto, eps in tqdm(jobs, desc="protocols", disable=not progress):
        row = out.setdefault(proto, {"label": TABLE1_VARIANTS[proto], "fgsm": [], "pgd": [], "failures": 0,
                                     "clean_failures": 0, "not_evaluable": None, "errors": []})
        attacks = [a for a, radii_a in (("fgsm", eps_list), ("pgd", pgd_eps))
                   if any(same_eps(eps, e) for e in radii_a)]
        plan = _protocol_plan(proto, attacks, paper_attack, cross_tol)
        res = run_plan(judges.get(proto, model), x, y, eps, plan, seed=seed)
        for a, spec in zip(attacks, plan):
            robust = res["rows"][spec["id"]]["robust"] if res["evaluable"] else count(0, len(y))
            row[a].append({"eps": eps, "robust": robust})
        # the clean images are solved once per radius with the same result: counted once per protocol
        row["failures"] += res["solver_failures"] if res["evaluable"] else 0
        row["clean_failures"] = res["clean_solver_failures"] if res["evaluable"] else len(y)
        row["not_evaluable"] = row["not_evaluable"] or (None if res["evaluable"] else res["not_evaluable"])
        row["errors"] += [f"eps {eps:g}, {e['attack']}: {e['error']}" for e in res.get("errors", [])]
    if base is not None:
        out["no-usable-gradient"] = {
            "label": TABLE1_VARIANTS["no-usable-gradient"], "failures": 0, "clean_failures": 0, "not_evaluable": None,
            "errors": [],
            "fgsm": [{"eps": e, "robust": base["clean"]} for e in eps_list],
            "pgd": [{"eps": r["eps"], "robust": r["robust"]} for r in base["rows"]["noise"]]}
    return out
