"""The result of one evaluation (:func:`natrob.harness.evaluate.evaluate`) in its one schema: a row per (attack, eps)
(:func:`row`, also for an attack that never ran or had nothing left to attack), the whole result
(:func:`result_of`, or :func:`not_evaluable` when the model could not be evaluated) and its CSV rows.

``run`` is the evaluation's fixed inputs (``natrob.harness.evaluate``'s ``_Run``: ``n``, ``y``, ``x``, ``cascade``,
``per_sample``, ``draws``, ``prep``, ``cache_note``); ``entry`` what an attack left (:func:`natrob.harness.attack_runs.
attack_points`, the evaluation store, or :func:`not_run`); ``marks`` its points as boolean masks (n,).
"""
from __future__ import annotations

import time

import torch

from .attack_runs import attack_id, attack_label, spec_params
from ..attacks.contract import NON_FINITE, SOLVER_FAILED
from ..stats import count


def marks_of(entry, n, device) -> dict:
    """The points an attack's entry lists as broken, as solver failures and as non-finite: boolean masks (n,)."""
    marks = {}
    for part in ("broken", "failures", "non_finite"):
        marks[part] = torch.zeros(n, dtype=torch.bool, device=device)
        marks[part][entry.get(part, [])] = True
    return marks


def _indicator_counts(entry, marks) -> tuple:
    """(silent successes, incomplete optimisations), or (None, None) where the attack does not trace its path.
    A silent success is a point that some iterate fooled but that the returned point leaves robust."""
    ind = entry.get("indicators") or {}
    if not ind.get("tracked") or entry["error"] is not None:
        return None, None
    broken = set(torch.nonzero(marks["broken"]).squeeze(1).tolist())
    silent = sum(1 for i in set(ind["seen_adversarial"]) if i not in broken)
    incomplete = sum(1 for i in set(ind["incomplete"]) if i not in broken)
    return silent, incomplete


def row(spec, eps, run, entry, marks, robust=None, n_attacked=0, cached=False) -> dict:
    """The one result row of (attack ``spec``, ``eps``), for an attack that ran and for one that did not: ``entry``
    is what the attack left (:func:`natrob.harness.attack_runs.attack_points`, the store, or :func:`not_run`), ``marks``
    its points as masks (:func:`marks_of`), ``robust`` the count ``k`` (None: not measured)."""
    nfes = entry["nfes"]
    silent, incomplete = _indicator_counts(entry, marks)
    return {"eps": eps, "attack": attack_label(spec), "id": attack_id(spec), "role": spec.get("role"),
            "params": spec_params(spec) | {"eps": eps}, "robust": count(robust, run.n), "cumulative": run.cascade,
            "n_attacked": int(n_attacked), "n_broken": int(marks["broken"].sum()),
            "solver_failures": int(marks["failures"].sum()), "non_finite": int(marks["non_finite"].sum()),
            "silent_success": silent, "incomplete_optimisation": incomplete,
            "warnings": entry.get("warnings", []), "skipped": entry.get("skipped", []),
            "max_linf_pixel": entry.get("max_linf_pixel"), "outside_box": entry.get("outside_box"),
            "nfe_mean": (sum(nfes) / len(nfes)) if nfes else None, "nfe_max": max(nfes) if nfes else None,
            "wall_s": entry["wall_s"], "error": entry["error"], "cached": cached}


def unattacked_row(spec: dict, eps: float, n: int, skipped: list) -> dict:
    """The row of an attack that had no point left to attack (``skipped`` says why, e.g.
    :data:`natrob.harness.notes.NONE_LEFT`): 0 of ``n`` robust by implication, in the schema of every row
    (:func:`row`)."""
    from types import SimpleNamespace
    entry = not_run(None) | {"skipped": list(skipped)}
    return row(spec, eps, SimpleNamespace(n=n, cascade=True), entry, marks_of(entry, n, "cpu"), robust=0)


def not_run(note) -> dict:
    """The entry of an attack that never ran (``note`` says why): nothing attacked, nothing measured."""
    return {"error": note, "broken": [], "failures": [], "non_finite": [], "nfes": [], "wall_s": 0.0,
            "indicators": {"tracked": False}, "warnings": [], "skipped": []}


def _common(name, run, eps_list, t_start) -> dict:
    return {"model": name, "n": run.n, "eps": eps_list, "cascade": run.cascade, "per_sample": run.per_sample,
            "draws": run.draws, "output": run.prep.output, "batch_dependence": run.prep.batch,
            "cache": run.cache_note, "wall_s": time.time() - t_start}


def result_of(name, run, eps_list, rows, worst, clean_pred, clean_nfe, clean_error, t_start) -> dict:
    correct = int((clean_pred == run.y).sum())
    n = run.n
    return _common(name, run, eps_list, t_start) | {
        "evaluable": True, "not_evaluable": None, "clean": count(correct, n),
        "clean_error": clean_error, "clean_solver_failures": int((clean_pred == SOLVER_FAILED).sum()),
        "clean_non_finite": int((clean_pred == NON_FINITE).sum()),
        "clean_nfe_mean": (sum(clean_nfe) / len(clean_nfe)) if clean_nfe else None, "rows": rows,
        "worst_case": worst, "solver_failures_total": int(sum(r["solver_failures"] for r in rows)),
        "non_finite_total": int(sum(r["non_finite"] for r in rows)),
        "errors": [{"eps": r["eps"], "attack": r["attack"], "error": r["error"]} for r in rows if r["error"]]}


def not_evaluable(name, run, eps_list, attacks, reason, clean_pred, t_start) -> dict:
    """A result that measures nothing and says why: every count ``k`` None (not measured), every attack row
    'not run'."""
    n, note = run.n, f"not run: the model could not be evaluated ({reason})"
    entry = not_run(note)
    marks = marks_of(entry, n, run.x.device)
    rows = [row(s, e, run, entry, marks) for e in eps_list for s in attacks]
    failures = int((clean_pred == SOLVER_FAILED).sum()) if clean_pred is not None else 0
    result = _common(name, run, eps_list, t_start) | {
        "evaluable": False, "not_evaluable": reason, "clean": count(None, n), "clean_error": reason,
        "clean_solver_failures": failures,
        "clean_non_finite": int((clean_pred == NON_FINITE).sum()) if clean_pred is not None else 0,
        "clean_nfe_mean": None, "rows": rows, "solver_failures_total": 0, "non_finite_total": 0,
        "worst_case": [{"eps": e, "robust": count(None, n), "attacks_failed": [], "counts": {}} for e in eps_list],
        "errors": [{"eps": e, "attack": "clean images", "error": note} for e in eps_list]}
    result["_robust"] = {e: torch.zeros(n, dtype=torch.bool) for e in eps_list}
    return result


def csv_rows(result) -> list:
    """One flat row per (eps, attack) for a CSV beside the result JSON."""
    return [{"model": result["model"], "eps": r["eps"], "attack": r["attack"], "id": r["id"],
             "robust": r["robust"]["k"], "n": r["robust"]["n"], "accuracy": r["robust"]["accuracy"],
             "ci95_low": (r["robust"]["ci95"] or [None])[0], "ci95_high": (r["robust"]["ci95"] or [None, None])[1],
             "clean_correct": result["clean"]["k"], "solver_failures": r["solver_failures"],
             "nfe_mean": r["nfe_mean"], "wall_s": r["wall_s"], "error": r["error"]}
            for r in result["rows"]]
