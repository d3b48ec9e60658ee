"""The warning signs of a broken robustness evaluation (Carlini et al. 2019, "On evaluating adversarial
robustness", Sec. 5; Athalye et al. 2018; Croce & Hein 2020), checked on counts.

Every check compares integer counts of robust points out of the same ``n`` evaluated points and allows
``slack(n)`` points of noise (2% of the sample, at least one point), so that no check depends on float
rounding. Each row says how many points the two sides differ by. A row's ``finding`` names which question
of the verdict it bears on: ``masking`` (gradient masking or a randomized model), ``feasible`` (the
constant-image bound). Attacks are selected by their role, never by their display label.
"""
from __future__ import annotations

import math

from .stats import constant_image_limit, fmt

TOL = 0.02   # slack between attacks on small samples, as a fraction of the sample (at least one point)
GAP = 0.05   # a difference this large (in points of the sample) is a finding, not noise


def slack(n: int) -> int:
    """Points of noise allowed between two attacks on ``n`` points (2% of the sample, at least one point)."""
    return max(1, math.ceil(TOL * n - 1e-9))


def gap(n: int) -> int:
    """Differences strictly above this many points count (5% of the sample)."""
    return max(1, math.floor(GAP * n + 1e-9))


def _row(model, eps, check, ok, detail, finding="masking", diff=None):
    return {"model": model, "eps": eps, "check": check, "status": "pass" if ok else "flag", "finding": finding,
            "points_differ": diff, "detail": detail}


def by_role(attacks: dict, *roles, cascade=None) -> dict:
    """The attacks (id -> counted row) of the given roles that ran without error."""
    return {i: a for i, a in attacks.items() if a["role"] in roles and a["robust"]["k"] is not None
            and (cascade is None or a["cumulative"] == cascade)}


def eps_checks(model: str, eps: float, attacks: dict, worst: dict, n: int, bound_share: float) -> list:
    """Checks at one eps. ``attacks``: id -> {"role", "label", "robust" (a count value), "cumulative", "n_broken"};
    ``worst`` the count value of the worst case."""
    s, rows = slack(n), []
    worst = worst["k"]
    paper = next(iter(by_role(attacks, "paper", cascade=False).values()), None)
    fgsm = next(iter(by_role(attacks, "single-step", cascade=False).values()), None)
    strong = by_role(attacks, "strong-white-box", cascade=False)
    white = [a for a in [paper, fgsm, *strong.values()] if a is not None]
    best_white = min(white, key=lambda a: a["robust"]["k"]) if white else None
    if paper and fgsm:
        d = paper["robust"]["k"] - fgsm["robust"]["k"]
        rows.append(_row(model, eps, "iterative >= single-step success", d <= s,
                         f"{paper['label']} {fmt(paper['robust']['k'], n)} vs FGSM {fmt(fgsm['robust']['k'], n)}", diff=d))
    if paper and strong:
        top = max(strong.values(), key=lambda a: a["robust"]["k"])
        d = top["robust"]["k"] - paper["robust"]["k"]
        rows.append(_row(model, eps, "more steps/restarts never raise accuracy", d <= s,
                         f"{top['label']} {fmt(top['robust']['k'], n)} vs {paper['label']} {fmt(paper['robust']['k'], n)}", diff=d))
    black = by_role(attacks, "black-box", "transfer", cascade=False)
    if black and best_white:
        b = min(black.values(), key=lambda a: a["robust"]["k"])
        d = best_white["robust"]["k"] - b["robust"]["k"]
        rows.append(_row(model, eps, "black-box <= white-box success", d <= s,
                         f"best black-box {b['label']} {fmt(b['robust']['k'], n)} vs best white-box {best_white['label']} "
                         f"{fmt(best_white['robust']['k'], n)}", diff=d))
    extra = by_role(attacks, "black-box", "transfer", "adaptive", cascade=True)
    if extra:
        broke = sum(a["n_broken"] for a in extra.values())
        who = ", ".join(f"{a['label']} {a['n_broken']}" for a in extra.values() if a["n_broken"]) or "none"
        rows.append(_row(model, eps, "gradient-free, transfer and adaptive attacks add little", broke <= s,
                         f"points robust to every white-box attack but broken by them: {broke} of {n} ({who})", diff=broke))
    noise = next(iter(by_role(attacks, "noise", cascade=False).values()), None)
    if noise and best_white:
        d = best_white["robust"]["k"] - noise["robust"]["k"]
        rows.append(_row(model, eps, "random noise weaker than gradient attacks", d <= s,
                         f"random noise {fmt(noise['robust']['k'], n)} vs best white-box {fmt(best_white['robust']['k'], n)}", diff=d))
    if eps >= 0.5:
        limit = constant_image_limit(bound_share, n)
        const = next(iter(by_role(attacks, "bound", cascade=False).values()), None)
        rows.append(_row(model, eps, "worst case within the constant-image bound (eps >= 0.5)", worst <= limit,
                         f"no classifier keeps more than the largest class share {100 * bound_share:.1f}% ({limit}/{n}); "
                         f"constant image leaves {fmt(const['robust']['k'], n) if const else '–'}, worst case {fmt(worst, n)}",
                         finding="feasible", diff=worst - limit))
    return rows


def model_checks(model: str, probe: dict, unbounded: dict) -> list:
    """Checks that do not depend on eps: informative gradients, determinism, an unbounded attack succeeding."""
    rows = []
    gs = probe["gradient"]
    if gs.get("error"):
        rows.append(_row(model, None, "gradients at the inputs are informative", False,
                         f"computing the input gradient raised {gs['error']}"))
    else:
        bad = gs["nan"] + gs["zero"] + gs["tiny"]
        rows.append(_row(model, None, "gradients at the inputs are informative",
                         gs["connected"] and bad <= 0.05 * gs["n"],
                         ("input not connected to the output in autograd (detached or non-torch preprocessing); "
                          if not gs["connected"] else "") +
                         f"{gs['zero']} zero, {gs['tiny']} tiny (<1e-10), {gs['nan']} NaN of {gs['n']}; "
                         f"median norm {gs['median_norm']:.3g}", diff=bad))
    r = probe["randomness"]
    rows.append(_row(model, None, "deterministic forward pass", not r["randomized"],
                     r["detail"] + ("; attacked with EOT and AutoAttack's rand version, judged by majority vote over "
                                    f"{probe['draws']} draws" if r["randomized"] else "")))
    if unbounded["robust"] is None:
        rows.append(_row(model, 1.0, "unbounded attack reaches ~100% success", False,
                         f"PGD at eps=1 raised {unbounded['error']}"))
    else:
        left = unbounded["robust"]
        rows.append(_row(model, 1.0, "unbounded attack reaches ~100% success", left <= unbounded["allowed"],
                         f"PGD at eps=1 leaves {left} of {unbounded['n']} clean-correct points robust "
                         f"(allowed {unbounded['allowed']}: 1% of them)", diff=left))
    return rows
