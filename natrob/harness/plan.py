"""One attack plan, shared by the audit (notebook 06) and the grid (notebook 07), run through one harness.

A plan is a list of attack specs (:mod:`natrob.harness.evaluate`'s), each with a stable ``id``, a ``role`` and ``on``:

- ``"all"`` (the default): run on every clean-correct point. Its count is a standalone accuracy that the checks
  compare with the others' (FGSM against PGD, noise against gradient attacks).
- ``"survivors"``: run only on the points that every attack before it left robust (AutoAttack-style cascade). Its
  count is what remains after it; it can only lower the worst case, and costs nothing on a broken model.

:func:`run_plan` runs a plan at one eps: one standalone evaluation, then one cascade on the survivors. When no
point survives, each survivors-only attack still gets its row, with ``skipped`` saying why (``[NONE_LEFT]``, a list
like every row's ``skipped``) and the count 0 of n that the empty cascade implies, so a result file never lacks a
row because nothing was left to attack. The checks (:mod:`natrob.audit.checks`) do not count that note as a limit of
the measurement: nothing is missing.
"""
from __future__ import annotations

from .attack_runs import attack_id
from ..errors import ConfigError
from .evaluate import evaluate, unattacked_row
from .notes import NONE_LEFT
from ..stats import count

PLACES = ("all", "survivors")


def _on(spec: dict) -> str:
    on = spec.get("on", "all")
    if on not in PLACES:
        raise ConfigError("attack spec 'on'", on, "'all' (every clean-correct point) or 'survivors'")
    return on


def standalone(plan: list) -> list:
    """The attacks of ``plan`` that run on every clean-correct point."""
    return [s for s in plan if _on(s) == "all"]


def on_survivors(plan: list) -> list:
    """The attacks of ``plan`` that run only on points every attack before them left robust."""
    return [s for s in plan if _on(s) == "survivors"]


def _harness(specs: list) -> list:
    return [{k: v for k, v in s.items() if k != "on"} for s in specs]  # "on" is the plan's, not the attack's


def _skipped_row(spec: dict, eps: float, n: int) -> dict:
    return unattacked_row(spec, eps, n, [NONE_LEFT])


def run_plan(model, x, y, eps: float, plan: list, seed: int = 0, draws: int = 1, label: str | None = None,
             progress: bool = False, batch_size: int = 128, per_sample: bool = False) -> dict:
    """Run ``plan`` on (x, y) at radius ``eps``: standalone attacks on every clean-correct point, then the
    survivors-only attacks as one cascade on the points still robust.

    Returns ``{"clean": count, "rows": {id: evaluate row, counts over all n points}, "worst_case": count,
    "worst": bool mask (n,) on the CPU, "solver_failures": int (in attacks, and in re-solving survivors),
    "clean_solver_failures": int, "clean_non_finite": int, "errors": [...], "cache": the store's note,
    "evaluable": True}``, or ``{"evaluable": False, "not_evaluable": reason}`` when the model cannot be evaluated
    (:mod:`natrob.attacks.contract`). ``per_sample`` judges one image per forward pass (batch-dependent models).
    Raises ConfigError for a bad plan."""
    n = len(y)
    solo, rest = standalone(plan), on_survivors(plan)
    if not solo:
        raise ConfigError("plan", [attack_id(s) for s in plan], "at least one attack on every point ('on': 'all')")
    kw = dict(progress=progress, model_name=label, seed=seed, draws=draws, batch_size=batch_size,
              per_sample=per_sample)
    res = evaluate(model, x, y, [eps], _harness(solo), cascade=False, **kw)
    if not res["evaluable"]:
        return {"evaluable": False, "not_evaluable": res["not_evaluable"]}
    rows = {r["id"]: r for r in res["rows"]}
    worst = res["_robust"][eps].cpu().clone()
    failures, errors = res["solver_failures_total"], list(res["errors"])
    idx = worst.nonzero().squeeze(1)
    if rest and len(idx):
        casc = evaluate(model, x[idx.to(x.device)], y[idx.to(y.device)], [eps], _harness(rest), cascade=True, **kw)
        if not casc["evaluable"]:  # the survivors alone cannot be evaluated: say so, keep the standalone counts
            errors.append({"eps": eps, "attack": "attacks on the surviving points", "error": casc["not_evaluable"]})
            rows.update({attack_id(s): _skipped_row(s, eps, n) for s in rest})
            return _plan_result(res, rows, worst, failures, errors, n)
        for r in casc["rows"]:  # points outside idx are already broken: counts on the subset are counts on all n
            rows[r["id"]] = r | {"robust": count(r["robust"]["k"], n)}
        worst[idx] = casc["_robust"][eps].cpu()
        failures += casc["solver_failures_total"] + casc["clean_solver_failures"]
        errors += casc["errors"]
    else:
        rows.update({attack_id(s): _skipped_row(s, eps, n) for s in rest})
    return _plan_result(res, rows, worst, failures, errors, n)


def _plan_result(res, rows, worst, failures, errors, n) -> dict:
    return {"evaluable": True, "clean": res["clean"], "rows": rows, "worst_case": count(int(worst.sum()), n),
            "worst": worst, "solver_failures": failures, "clean_solver_failures": res["clean_solver_failures"],
            "clean_non_finite": res.get("clean_non_finite", 0), "errors": errors, "cache": res.get("cache")}
