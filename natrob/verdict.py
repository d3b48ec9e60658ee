"""The verdict: per model and eps, four separate findings, each with its numbers, and one sentence per model.

(a) reproduced    — is the paper's figure inside the 95% interval of our run of the paper's own attack (PGD-40)?
(b) converged     — does the paper's PGD-40 agree with PGD with many more steps and restarts (within 5 points)?
                    If not, the paper's attack had not converged: an attack-strength finding, not masking.
(c) masking       — any sign of gradient masking or randomness (checks.py): gradient-free, decision-based,
                    transfer, adaptive or random-noise attacks beating white-box ones; zero, NaN or disconnected
                    input gradients; a random forward pass; an unbounded attack short of 100%.
(d) feasible      — at eps >= 0.5 the constant 0.5 image lies in every eps-ball of a [0, 1] image, so no
                    classifier can keep more than its largest class share: a figure above that is impossible.
"""
from __future__ import annotations

from .checks import by_role, gap
from .stats import ci, constant_image_limit, wilson


def findings(model: str, eps: float, per_eps: dict, checks: list, paper, bound_share: float) -> dict:
    """The four findings at one eps. ``paper`` is the paper's accuracy in [0, 1] or None."""
    n, attacks = per_eps["n"], per_eps["attacks"]
    pgd = next(iter(by_role(attacks, "paper", cascade=False).values()), None)
    strong = by_role(attacks, "strong-white-box", cascade=False)
    # counts are count values (natrob.stats.count); the paper's attack is named by its label in the spec in use
    out = {"model": model, "eps": eps, "n": n, "clean": per_eps["clean"], "paper": paper,
           "paper_attack": pgd["robust"] if pgd else None, "paper_attack_label": pgd["label"] if pgd else None,
           "worst_case": per_eps["worst_case"]}
    if paper is None or pgd is None:
        out["reproduced"] = {"status": "no paper figure" if paper is None else "not measured", "detail": ""}
    else:
        lo, hi = wilson(pgd["robust"]["k"], n)
        inside = lo <= paper <= hi
        out["reproduced"] = {"status": "reproduced" if inside else "not reproduced",
                             "detail": f"paper {100 * paper:.2f}% {'inside' if inside else 'outside'} our {pgd['label']} "
                                       f"{ci(pgd['robust'])}"}
    if pgd and strong:
        top = min(strong.values(), key=lambda a: a["robust"]["k"])
        d = pgd["robust"]["k"] - top["robust"]["k"]
        out["converged"] = {"status": "not converged" if d > gap(n) else "converged", "points": d,
                            "detail": f"{pgd['label']} {ci(pgd['robust'])} vs {top['label']} {ci(top['robust'])}: "
                                      f"{d} points"}
    else:
        out["converged"] = {"status": "not measured", "detail": ""}
    flags = [c for c in checks if c["status"] == "flag" and c["finding"] == "masking" and c["eps"] in (eps, None, 1.0)]
    out["masking"] = {"status": "signs" if flags else "no sign", "checks": [c["check"] for c in flags],
                      "detail": "; ".join(f"{c['check']}: {c['detail']}" for c in flags)}
    if eps < 0.5:
        out["feasible"] = {"status": "not applicable", "detail": "eps < 0.5: the constant image is outside the ball"}
    else:
        limit = constant_image_limit(bound_share, n)
        if paper is None:
            out["feasible"] = {"status": "no paper figure", "detail": f"bound {100 * bound_share:.1f}% ({limit}/{n})"}
        else:
            ok = paper <= bound_share
            out["feasible"] = {"status": "feasible" if ok else "infeasible",
                               "detail": f"paper {100 * paper:.2f}% vs at most {100 * bound_share:.1f}% for any classifier"}
    return out


def _eps_list(rows):
    return ", ".join(f"{r['eps']:g}" for r in rows)


def sentence(model: str, rows: list) -> str:
    """One sentence saying which findings hold for ``model``, with numbers (``rows``: its findings per eps)."""
    if not rows:
        return f"{model}: not audited."
    n = rows[0]["n"]
    parts = [f"{model} (clean {ci(rows[0]['clean'])})"]
    rep = [r for r in rows if r["reproduced"]["status"] == "reproduced"]
    nrep = [r for r in rows if r["reproduced"]["status"] == "not reproduced"]
    if nrep:
        worst = max(nrep, key=lambda r: r["paper"] - r["paper_attack"]["k"] / n)
        parts.append(f"the paper's {worst['paper_attack_label']} figure is not reproduced at eps = {_eps_list(nrep)} "
                     f"(e.g. eps={worst['eps']:g}: paper {100 * worst['paper']:.2f}%, ours {ci(worst['paper_attack'])}, "
                     f"worst case over all attacks {ci(worst['worst_case'])})")
    if rep:
        parts.append(f"reproduced at eps = {_eps_list(rep)}")
    if not rep and not nrep:
        parts.append("the paper has no figure for it at the audited eps")
    unconv = [r for r in rows if r["converged"]["status"] == "not converged"]
    label = next((r["paper_attack_label"] for r in rows if r.get("paper_attack_label")), "the paper's attack")
    parts.append(f"{label} had not converged at eps = {_eps_list(unconv)} ("
                 + "; ".join(f"{r['converged']['points']} points at {r['eps']:g}" for r in unconv) + ")"
                 if unconv else f"{label} converged at every audited eps")
    masked = [r for r in rows if r["masking"]["status"] == "signs"]
    if masked:
        names = sorted({c for r in masked for c in r["masking"]["checks"]})
        parts.append(f"signs of gradient masking at eps = {_eps_list(masked)} ({'; '.join(names)})")
    else:
        parts.append("no sign of gradient masking")
    infeasible = [r for r in rows if r["feasible"]["status"] == "infeasible"]
    if infeasible:
        parts.append("the paper's figure is impossible at eps = " + ", ".join(
            f"{r['eps']:g} ({r['feasible']['detail']})" for r in infeasible))
    return parts[0] + ": " + "; ".join(parts[1:]) + "."


def headline(findings_by_model: dict) -> list:
    """'Does the claim hold?': one sentence per model, in the order given."""
    return [sentence(m, rows) for m, rows in findings_by_model.items()]
