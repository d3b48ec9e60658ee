"""The warning signs of a broken robustness evaluation (Carlini et al. 2019, "On evaluating adversarial
robustness", Sec. 5; Athalye et al. 2018; Croce & Hein 2020), checked on counts.

Every check compares integer counts of robust points out of the same ``n`` evaluated points and allows
``slack(n)`` points of noise (2% of the sample, at least one point), so that no check depends on float
rounding. Each row says how many points the two sides differ by. A row's ``finding`` names which question
of the verdict it bears on: ``masking`` (gradient masking, a randomized model, probabilities as output),
``converged`` (Pintor et al.'s indicators of attack failure), ``feasible`` (the constant-image bound),
``evaluation`` (what limits the measurement: attacks that raised or skipped components, ODE solver failures,
non-finite logits, batch dependence). Attacks are selected by their role, never by their display label.
"""
from __future__ import annotations

import math

from ..harness.notes import NONE_LEFT
from ..stats import constant_image_limit, fmt

TOL = 0.02   # slack between attacks on small samples, as a fraction of the sample (at least one point)
GAP = 0.05   # a difference this large (in points of the sample) is a finding, not noise


def _notes(a: dict) -> list:
    notes = a.get("skipped") or []
    return [notes] if isinstance(notes, str) else list(notes)


def skipped_parts(a: dict) -> list:
    """What an attack row says it skipped that limits the measurement (components the class count ruled out),
    leaving out :data:`NONE_LEFT`: nothing was left to attack, so nothing is missing."""
    return [w for w in _notes(a) if w != NONE_LEFT]


def ran(a: dict) -> bool:
    """Whether an attack row measured something itself: it raised nothing and had points left to attack."""
    return (a.get("robust") or {}).get("k") is not None and NONE_LEFT not in _notes(a)


def slack(n: int) -> int:
    """Points of noise allowed between two attacks on ``n`` points (2% of the sample, at least one point)."""
    return max(1, math.ceil(TOL * n - 1e-9))


def gap(n: int) -> int:
    """Differences strictly above this many points count (5% of the sample)."""
    return max(1, math.floor(GAP * n + 1e-9))


def _row(model, eps, check, ok, detail, finding="masking", diff=None, problem=None):
    """One check. ``problem``: how the verdict sentence names it when flagged (default: the check's name)."""
    return {"model": model, "eps": eps, "check": check, "status": "pass" if ok else "flag", "finding": finding,
            "points_differ": diff, "detail": detail, "problem": problem or check}


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
                         f"{paper['label']} {fmt(paper['robust']['k'], n)} vs FGSM {fmt(fgsm['robust']['k'], n)}",
                         diff=d))
    if paper and strong:
        top = max(strong.values(), key=lambda a: a["robust"]["k"])
        d = top["robust"]["k"] - paper["robust"]["k"]
        rows.append(_row(model, eps, "more steps/restarts never raise accuracy", d <= s,
                         f"{top['label']} {fmt(top['robust']['k'], n)} vs {paper['label']} "
                         f"{fmt(paper['robust']['k'], n)}", diff=d))
    black = by_role(attacks, "black-box", "transfer", cascade=False)
    if black and best_white:
        b = min(black.values(), key=lambda a: a["robust"]["k"])
        d = best_white["robust"]["k"] - b["robust"]["k"]
        rows.append(_row(model, eps, "black-box <= white-box success", d <= s,
                         f"best black-box {b['label']} {fmt(b['robust']['k'], n)} vs best white-box "
                         f"{best_white['label']} {fmt(best_white['robust']['k'], n)}", diff=d))
    extra = by_role(attacks, "black-box", "transfer", "adaptive", cascade=True)
    if extra:
        broke = sum(a["n_broken"] for a in extra.values())
        who = ", ".join(f"{a['label']} {a['n_broken']}" for a in extra.values() if a["n_broken"]) or "none"
        rows.append(_row(model, eps, "gradient-free, transfer and adaptive attacks add little", broke <= s,
                         f"points robust to every white-box attack but broken by them: {broke} of {n} ({who})",
                         diff=broke))
    noise = next(iter(by_role(attacks, "noise", cascade=False).values()), None)
    if noise and best_white:
        d = best_white["robust"]["k"] - noise["robust"]["k"]
        rows.append(_row(model, eps, "random noise weaker than gradient attacks", d <= s,
                         f"random noise {fmt(noise['robust']['k'], n)} vs best white-box "
                         f"{fmt(best_white['robust']['k'], n)}", diff=d))
    rows += attack_health(model, eps, attacks, n)
    if eps >= 0.5:
        rows.append(_bound_check(model, eps, attacks, worst, n, bound_share))
    return rows


def _bound_check(model: str, eps: float, attacks: dict, worst: int, n: int, bound_share: float) -> dict:
    """At eps >= 0.5 the constant 0.5 image lies in every ball: no classifier keeps more than its largest class."""
    limit = constant_image_limit(bound_share, n)
    const = next(iter(by_role(attacks, "bound", cascade=False).values()), None)
    return _row(model, eps, "worst case within the constant-image bound (eps >= 0.5)", worst <= limit,
                f"no classifier keeps more than the largest class share {100 * bound_share:.1f}% "
                f"({limit}/{n}); constant image leaves {fmt(const['robust']['k'], n) if const else '–'}, "
                f"worst case {fmt(worst, n)}", finding="feasible", diff=worst - limit)


def _listed(attacks, field, cond=lambda v: v) -> list:
    return [(a["label"], a[field]) for a in attacks.values() if a.get(field) is not None and cond(a[field])]


def attack_health(model: str, eps: float, attacks: dict, n: int) -> list:
    """Checks on the attacks themselves at one eps: Pintor et al.'s (2022) silent success and incomplete
    optimisation, AutoAttack's own warnings, components skipped, attacks that raised, solver failures and
    non-finite logits under attack (both counted as not robust)."""
    s, rows = slack(n), []
    traced = {i: a for i, a in attacks.items() if a.get("silent_success") is not None}
    if traced:
        silent = _listed(traced, "silent_success")
        rows.append(_row(model, eps, "no silent success (Pintor et al.)", not silent,
                         "points an iterate fooled but the returned point does not: " +
                         (", ".join(f"{lbl} {k}" for lbl, k in silent) or "none"), "converged",
                         diff=max((k for _, k in silent), default=0),
                         problem="silent success: " + ", ".join(f"{lbl} {k} points" for lbl, k in silent)))
        main = {i: a for i, a in traced.items() if a["role"] in ("paper", "strong-white-box", "eot")}
        rising = _listed(main, "incomplete_optimisation", lambda k: k > s)
        rows.append(_row(model, eps, "loss no longer rising at the last steps (Pintor et al.)", not rising,
                         "points whose loss still rose over the last tenth of the steps: " +
                         (", ".join(f"{a['label']} {a['incomplete_optimisation']}" for a in main.values()) or "none") +
                         f" (allowed {s})", "converged", diff=max((k for _, k in rising), default=0),
                         problem="loss still rising at the last steps: " +
                                 ", ".join(f"{lbl} {k} points" for lbl, k in rising)))
    warned = [(a["label"], w) for a in attacks.values() for w in (a.get("warnings") or [])]
    if any(i.startswith("autoattack") and ran(a) for i, a in attacks.items()):
        rows.append(_row(model, eps, "AutoAttack's own checks pass", not warned,
                         "; ".join(f"{lbl}: {w}" for lbl, w in warned) or "no warning",
                         problem="AutoAttack's own checks warn: " + "; ".join(sorted({w for _, w in warned}))))
    skipped = [(a["label"], w) for a in attacks.values() for w in skipped_parts(a)]
    failed = [(a["label"], a["error"]) for a in attacks.values() if a.get("error")]
    rows.append(_row(model, eps, "every attack ran in full", not skipped and not failed,
                     "; ".join([f"{lbl} raised {e}" for lbl, e in failed] + [f"{lbl}: {w}" for lbl, w in skipped])
                     or "all ran", "evaluation", diff=len(failed) + len(skipped)))
    for field, what in (("solver_failures", "ODE solver failures"), ("non_finite", "non-finite logits")):
        hit = _listed(attacks, field, lambda k: k > 0)
        rows.append(_row(model, eps, f"no {what} under attack", not hit,
                         (", ".join(f"{lbl} {k}" for lbl, k in hit) or "none") + " points (counted as not robust)",
                         "evaluation", diff=max((k for _, k in hit), default=0), problem=f"{what} under attack"))
    return rows


def contract_checks(model: str, probe: dict) -> list:
    """Checks on the model's output: logits rather than probabilities, finite on clean images, independent of
    the batch (``probe``: audit.probe's dict with ``output`` and ``batch``)."""
    rows, out, batch = [], probe.get("output") or {}, probe.get("batch") or {}
    if out.get("probabilities") is not None:
        k, m = out["probabilities"], out["n"]
        rows.append(_row(model, None, "output is logits, not probabilities", k == 0,
                         f"{k} of {m} clean output rows lie in [0, 1] and sum to 1: the cross-entropy of probabilities "
                         "saturates, so gradient attacks understate; return the logits (before softmax)", diff=k,
                         problem=f"the output is probabilities, not logits, on {k} of {m} clean images"))
        rows.append(_row(model, None, "finite logits on clean images", out["non_finite"] == 0,
                         f"{out['non_finite']} of {m} clean images have NaN or inf logits (counted as misclassified)",
                         "evaluation", diff=out["non_finite"],
                         problem=f"non-finite logits on {out['non_finite']} of {m} clean images"))
    if (probe.get("contract") or {}).get("writes_input"):
        rows.append(_row(model, None, "the model's writes into its input are contained", True,
                         "forward changes the tensor it is given (in-place ops such as x.sub_(mean) or "
                         "Normalize(inplace=True)); natrob hands it a copy on every call, so the attacks see the "
                         "model as written without the in-place op and the caller's images stay unchanged",
                         "evaluation"))
    if batch:
        rows.append(_row(model, None, "predictions independent of the batch", not batch.get("dependent"),
                         batch.get("detail", "") + ("; every judgement made one image at a time"
                                                    if batch.get("dependent") else ""), "evaluation",
                         problem="predictions depend on their batch-mates"))
    return rows


def model_checks(model: str, probe: dict, unbounded: dict) -> list:
    """Checks that do not depend on eps: informative gradients, determinism, an unbounded attack succeeding,
    and the output contract (:func:`contract_checks`)."""
    rows = contract_checks(model, probe)
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
