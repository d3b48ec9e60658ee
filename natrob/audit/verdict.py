"""The verdict: per model and eps, four separate findings, each with its numbers, and one sentence per model.

(a) reproduced    — is the paper's figure inside the 95% interval of our run of the paper's own attack (its PGD)?
(b) converged     — does the paper's PGD agree with PGD with many more steps and restarts (within 5 points),
                    and do Pintor et al.'s indicators (silent success, loss still rising) stay quiet? If not,
                    the paper's attack had not converged: an attack-strength finding, not masking.
(c) masking       — any sign of gradient masking or randomness (checks.py): gradient-free, decision-based,
                    transfer, adaptive or random-noise attacks beating white-box ones; zero, NaN or disconnected
                    input gradients; a random forward pass; probabilities as output; AutoAttack's own warnings;
                    an unbounded attack short of 100%.
(d) feasible      — at eps >= 0.5 the constant 0.5 image lies in every eps-ball of a [0, 1] image, so no
                    classifier can keep more than its largest class share: a figure above that is impossible.

Nothing unmeasured is claimed: a finding whose attack raised is "not measured" and the sentence names the
attack and its error; a model that could not be evaluated gets "not evaluated" everywhere and no finding about
the paper; what limits the measurement (components skipped, solver failures and non-finite logits counted as
not robust, batch dependence) is named with its counts.
"""
from __future__ import annotations

from .checks import by_role, gap, skipped_parts
from ..eps import same_eps
from ..stats import ci, constant_image_limit, count, wilson

FINDINGS = ("reproduced", "converged", "masking", "feasible")


def _first(attacks, role):
    """The first attack of ``role`` (standalone), ran or not."""
    return next((a for a in attacks.values() if a["role"] == role and not a["cumulative"]), None)


def _k(a):
    """The robust count of an attack row (a count value), None where it did not run."""
    return (a.get("robust") or {}).get("k") if a else None


def _raised(a) -> str:
    return f"{a['label']} raised {a['error']}"


def _reproduced(paper, pgd, pgd_any, n) -> dict:
    if paper is None:
        return {"status": "no paper figure", "detail": ""}
    if pgd is None:
        why = _raised(pgd_any) if pgd_any else "the paper's attack was not run"
        return {"status": "not measured", "detail": f"paper {100 * paper:.2f}% not checked: {why}"}
    lo, hi = wilson(_k(pgd), n)
    inside = lo <= paper <= hi
    return {"status": "reproduced" if inside else "not reproduced",
            "detail": f"paper {100 * paper:.2f}% {'inside' if inside else 'outside'} our {pgd['label']} "
                      f"{ci(pgd['robust'])}"}


def _converged(pgd, pgd_any, strong, attacks, flags, n) -> dict:
    if not (pgd and strong):
        missing = [_raised(a) for a in attacks.values() if a["role"] in ("paper", "strong-white-box") and a["error"]]
        if pgd_any is None and not missing:
            missing = ["the paper's attack was not run"]
        return {"status": "not measured", "detail": "; ".join(missing) or "no stronger white-box attack ran",
                "checks": []}
    top = min(strong.values(), key=_k)
    d = _k(pgd) - _k(top)
    detail = f"{pgd['label']} {ci(pgd['robust'])} vs {top['label']} {ci(top['robust'])}: {d} points"
    detail += "".join(f"; {c['check']}: {c['detail']}" for c in flags)
    return {"status": "not converged" if d > gap(n) or flags else "converged", "points": d, "detail": detail,
            "checks": [c["check"] for c in flags], "problems": [c.get("problem", c["check"]) for c in flags]}


def _flags(checks, eps, finding):
    # a check at eps None or 1.0 (a whole-model check) applies at every eps
    return [c for c in checks if c["status"] == "flag" and c["finding"] == finding
            and (c["eps"] is None or same_eps(c["eps"], eps) or same_eps(c["eps"], 1.0))]


def findings(model: str, eps: float, per_eps: dict, checks: list, paper, bound_share: float) -> dict:
    """The four findings at one eps, plus ``evaluation`` (what limits the measurement). ``paper`` is the
    paper's accuracy in [0, 1] or None; ``per_eps`` one row of audit_model's ``per_eps``."""
    n, attacks = per_eps["n"], per_eps["attacks"]
    pgd_any = _first(attacks, "paper")
    pgd = pgd_any if _k(pgd_any) is not None else None
    strong = by_role(attacks, "strong-white-box", cascade=False)
    # counts are count values (natrob.stats.count); the paper's attack is named by its label in the spec in use,
    # and its count has k None when it raised (not measured); None only when the plan had no such attack
    out = {"model": model, "eps": eps, "n": n, "clean": per_eps["clean"], "paper": paper,
           "paper_attack": (pgd_any or {}).get("robust"),
           "paper_attack_label": (pgd_any or {}).get("label"), "worst_case": per_eps["worst_case"], "evaluable": True,
           "errors": [{"attack": e["attack"], "error": e["error"]} for e in per_eps.get("errors", [])],
           "skipped": sorted({f"{a['label']}: {w}" for a in attacks.values() for w in skipped_parts(a)}),
           "clean_solver_failures": per_eps.get("clean_solver_failures", 0),
           "clean_non_finite": per_eps.get("clean_non_finite", 0)}
    out["reproduced"] = _reproduced(paper, pgd, pgd_any, n)
    out["converged"] = _converged(pgd, pgd_any, strong, attacks, [c for c in _flags(checks, eps, "converged")
                                                                 if same_eps(c["eps"], eps)], n)
    flags = _flags(checks, eps, "masking")
    out["masking"] = {"status": "signs" if flags else "no sign", "checks": [c["check"] for c in flags],
                      "problems": [c.get("problem", c["check"]) for c in flags],
                      "detail": "; ".join(f"{c['check']}: {c['detail']}" for c in flags)}
    out["feasible"] = _feasible(eps, paper, bound_share, n)
    limits = [c for c in _flags(checks, eps, "evaluation") if c["eps"] is None or same_eps(c["eps"], eps)]
    out["evaluation"] = {"status": "limited" if limits else "complete", "checks": [c["check"] for c in limits],
                         "limits": [c for c in limits if c["check"] != "every attack ran in full"],
                         "detail": "; ".join(f"{c['check']}: {c['detail']}" for c in limits)}
    return out


def _feasible(eps, paper, bound_share, n) -> dict:
    if eps < 0.5:
        return {"status": "not applicable", "detail": "eps < 0.5: the constant image is outside the ball"}
    limit = constant_image_limit(bound_share, n)
    if paper is None:
        return {"status": "no paper figure", "detail": f"bound {100 * bound_share:.1f}% ({limit}/{n})"}
    ok = paper <= bound_share
    return {"status": "feasible" if ok else "infeasible",
            "detail": f"paper {100 * paper:.2f}% vs at most {100 * bound_share:.1f}% for any classifier"}


def not_evaluated(model: str, eps: float, n: int, reason: str, paper) -> dict:
    """The findings of a model that could not be evaluated: none, with the reason; its counts are "not
    measured" (``k`` None of ``n``)."""
    row = {"status": "not evaluated", "detail": reason}
    return {"model": model, "eps": eps, "n": n, "clean": count(None, n), "paper": paper,
            "paper_attack": count(None, n), "paper_attack_label": None, "worst_case": count(None, n),
            "evaluable": False, "not_evaluable": reason, "errors": [], "skipped": [],
            **{k: dict(row) for k in FINDINGS}, "evaluation": dict(row)}


def _eps_list(rows):
    return ", ".join(f"{r['eps']:g}" for r in rows)


def _reproduction_parts(rows, n) -> list:
    parts = []
    nrep = [r for r in rows if r["reproduced"]["status"] == "not reproduced"]
    rep = [r for r in rows if r["reproduced"]["status"] == "reproduced"]
    unmeasured = [r for r in rows if r["reproduced"]["status"] == "not measured"]
    if nrep:
        worst = max(nrep, key=lambda r: r["paper"] - r["paper_attack"]["k"] / n)
        parts.append(f"the paper's {worst['paper_attack_label']} figure is not reproduced at eps = {_eps_list(nrep)} "
                     f"(e.g. eps={worst['eps']:g}: paper {100 * worst['paper']:.2f}%, "
                     f"ours {ci(worst['paper_attack'])}, "
                     f"worst case over all attacks {ci(worst['worst_case'])})")
    if rep:
        parts.append(f"reproduced at eps = {_eps_list(rep)}")
    if unmeasured:
        parts.append(f"the paper's figure could not be checked at eps = {_eps_list(unmeasured)} "
                     f"({unmeasured[0]['reproduced']['detail']})")
    if all(r["reproduced"]["status"] == "no paper figure" for r in rows):
        parts.append("worst case over every attack " + ", ".join(f"{ci(r['worst_case'])} at eps = {r['eps']:g}"
                                                                for r in rows))
    return parts


def _convergence_parts(rows) -> list:
    unconv = [r for r in rows if r["converged"]["status"] == "not converged"]
    unmeasured = [r for r in rows if r["converged"]["status"] == "not measured"]
    conv = [r for r in rows if r["converged"]["status"] == "converged"]
    parts = []
    label = next((r["paper_attack_label"] for r in rows if r.get("paper_attack_label")), "the paper's attack")
    if unconv:
        parts.append(f"{label} had not converged at eps = {_eps_list(unconv)} (" + "; ".join(
            f"{r['converged']['points']} points at {r['eps']:g}" +
            "".join(f", {p}" for p in r["converged"].get("problems", [])) for r in unconv) + ")")
    if unmeasured:
        parts.append(f"convergence not measured at eps = {_eps_list(unmeasured)} "
                     f"({unmeasured[0]['converged']['detail']})")
    if conv:
        parts.append(f"{label} converged at every audited eps" if len(conv) == len(rows)
                     else f"{label} converged at eps = {_eps_list(conv)}")
    return parts


def _limit_parts(rows) -> list:
    """Attacks that raised (named with their error) and every other limit of the measurement, with counts."""
    parts, seen = [], set()
    for r in rows:
        for e in r.get("errors", []):
            key = (e["attack"], e["error"])
            if key not in seen:
                seen.add(key)
                parts.append(f"{e['attack']} raised {e['error']} at eps = {r['eps']:g} and is left out")
    skipped = sorted({w for r in rows for w in r.get("skipped", [])})
    if skipped:
        parts.append("; ".join(skipped))
    by_problem = {}
    for r in rows:  # attacks that raised or skipped a component are named above, attack by attack
        for c in r["evaluation"].get("limits", []):
            by_problem.setdefault(c["problem"], []).append((r, c))
    for problem, hits in by_problem.items():
        where = "" if hits[0][1]["eps"] is None else f" at eps = {_eps_list([r for r, _ in hits])}"
        parts.append(f"{problem}{where} ({hits[0][1]['detail']})")
    if rows and rows[0].get("clean_solver_failures"):
        parts.append(f"the ODE solver failed on {rows[0]['clean_solver_failures']} of {rows[0]['n']} clean images "
                     "(counted as misclassified)")
    return parts


def sentence(model: str, rows: list) -> str:
    """One sentence saying which findings hold for ``model``, with numbers (``rows``: its findings per eps)."""
    if not rows:
        return f"{model}: not audited."
    if not rows[0].get("evaluable", True):
        return f"{model}: could not be evaluated: {rows[0]['not_evaluable']}; no finding about the paper."
    n = rows[0]["n"]
    parts = [f"{model} (clean {ci(rows[0]['clean'])})"]
    parts += _reproduction_parts(rows, n)
    parts += _convergence_parts(rows)
    masked = [r for r in rows if r["masking"]["status"] == "signs"]
    if masked:
        names = list(dict.fromkeys(c for r in masked for c in r["masking"].get("problems", r["masking"]["checks"])))
        parts.append(f"signs of gradient masking at eps = {_eps_list(masked)} ({'; '.join(names)})")
    else:
        parts.append("no sign of gradient masking")
    infeasible = [r for r in rows if r["feasible"]["status"] == "infeasible"]
    if infeasible:
        parts.append("the paper's figure is impossible at eps = " + ", ".join(
            f"{r['eps']:g} ({r['feasible']['detail']})" for r in infeasible))
    parts += _limit_parts(rows)
    return parts[0] + ": " + "; ".join(parts[1:]) + "."


def headline(findings_by_model: dict) -> list:
    """'Does the claim hold?': one sentence per model, in the order given."""
    return [sentence(m, rows) for m, rows in findings_by_model.items()]
