"""The strongest evaluation of one model outside the audit (notebooks 08 and 09): the audit's own attacks
(:func:`natrob.audit.attack_plan`), selected by id and run as one cascade, never written a second time."""
from __future__ import annotations

from . import budgets

_PLAN_ONLY = ("role", "on")  # keys that place an attack in the audit's plan, not what it computes


def audit_attacks(budget: dict, paper_attack: dict, ids=None) -> dict:
    """{id: spec} of the audit's attacks at ``budget`` with ``paper_attack`` as the paper's PGD (``ids``: keep
    those, in that order). Raises KeyError naming an id the plan lacks."""
    from . import attack_plan
    plan = {s["id"]: {k: v for k, v in s.items() if k not in _PLAN_ONLY}
            for s in attack_plan(budget, {}, paper_attack=paper_attack)}
    return plan if ids is None else {i: plan[i] for i in ids}


def worst_case_specs(budget: dict, paper_attack: dict) -> list:
    """The audit's strongest attacks as a cascade (each runs on the points all earlier ones left): the paper's
    PGD, PGD with the most steps x restarts (step eps/4), AutoAttack and Square, at ``budget``; the PGDs stop a
    point at its first fooling iterate."""
    b = budgets.audit_settings(budget)
    strongest_pgd = budgets.pgd_id(b["pgd_steps"][-1], b["pgd_restarts"])
    specs = audit_attacks(budget, paper_attack, [paper_attack["id"], strongest_pgd, "autoattack", "square"])
    return [dict(s, early_stop=True) if s["name"] == "pgd" else s for s in specs.values()]


def worst_case(model, x, y, eps_list, budget: dict, paper_attack: dict, seed: int = 0, name=None) -> dict:
    """Per radius, the points no attack of :func:`worst_case_specs` broke: {"clean": count, "rows": [{eps, id,
    attack, robust: count, error}], "worst": [{eps, robust: count, attacks_failed}]} (a cascade: each row
    counts what remains after it and every attack before it)."""
    from ..harness.evaluate import evaluate
    res = evaluate(model, x, y, list(eps_list), worst_case_specs(budget, paper_attack), cascade=True, seed=seed,
                   model_name=name)
    return {"clean": res["clean"],
            "rows": [{"eps": r["eps"], "id": r["id"], "attack": r["attack"], "robust": r["robust"],
                      "error": r["error"]} for r in res["rows"]],
            "worst": [{"eps": w["eps"], "robust": w["robust"], "attacks_failed": w["attacks_failed"]}
                      for w in res["worst_case"]]}
