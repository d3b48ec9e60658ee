"""Robustness audit: does a model's robustness survive the strongest evaluation?

For each model and eps it runs (sized by the caller's budget) FGSM, the paper's PGD-40, PGD with many steps and
restarts, AutoAttack, Square, a decision-based Boundary Attack, transfer from a ResNet, random noise inside the
ball, the constant-image attack, and for ODE nets adaptive attacks: gradients through fixed-step (Euler, RK4)
solves of the same vector field, through the adjoint, and through looser and tighter tolerances. Adversarial
examples are always judged by the model exactly as evaluated (its own solver and tolerance).

Then the warning signs of gradient masking (Carlini et al. 2019, Athalye et al. 2018, Croce & Hein 2020) are
checked, one row each with its numbers and pass/flag, and a verdict per model and eps sets the worst case
over all attacks beside the paper's figure and plain PGD: "masking suspected" where PGD or the paper's figure
overstates the worst case by more than 5 points, or a check flags.
"""
from __future__ import annotations

import copy

import torch

from .attacks import input_grad
from .evaluate import evaluate

GAP = 0.05   # PGD vs worst-case gap that signals masking (5 points)
TOL = 0.02   # slack for comparisons between attacks on small samples


def ode_surrogates(model, fixed_steps: int = 20) -> dict:
    """Copies of an ODE net with the same weights but another way of solving/differentiating it."""
    if not hasattr(model, "configure_solver"):
        return {}
    span = model.t1 - model.t0
    out = {}
    for label, changes in {
        f"Euler, {fixed_steps} steps": {"method": "euler", "step_size": span / fixed_steps},
        f"RK4, {fixed_steps} steps": {"method": "rk4", "step_size": span / fixed_steps},
        "adjoint": {"adjoint": True},
        "loose tol 1e-1": {"rtol": 1e-1, "atol": 1e-1},
        "tight tol 1e-5": {"rtol": 1e-5, "atol": 1e-5},
    }.items():
        twin = copy.deepcopy(model)
        twin.configure_solver(**changes)
        out[label] = twin.eval()
    return out


def attack_plan(budget: dict, surrogates: dict, resnet=None) -> tuple:
    """(standalone attacks, cascade attacks). Standalone ones run on every clean-correct point (the checks
    compare them); cascade ones only on points that survived everything before (they only lower the worst case)."""
    pgd40 = {"name": "pgd", "steps": 40, "alpha": 0.01, "random_start": True, "label": "PGD-40 (paper)"}
    standalone = [{"name": "fgsm", "label": "FGSM"}, pgd40,
                  {"name": "random-noise", "trials": budget.get("noise_trials", 10), "label": "random noise"},
                  {"name": "constant-image", "label": "constant 0.5 image"}]
    for steps in budget.get("pgd_steps", [100]):
        standalone.append({"name": "pgd", "steps": steps, "alpha": "eps/4", "restarts": budget.get("pgd_restarts", 1),
                           "label": f"PGD-{steps}x{budget.get('pgd_restarts', 1)}"})
    standalone.append({"name": "square", "n_queries": budget.get("square_queries", 5000), "label": "Square"})
    cascade = [{"name": "autoattack", "n_iter": budget.get("aa_iter", 100), "n_queries": budget.get("aa_square_queries", 5000),
                "n_target_classes": budget.get("aa_targets", 9), "label": "AutoAttack"},
               {"name": "boundary", "queries": budget.get("boundary_queries", 1000), "label": "Boundary (decision-based)"}]
    if resnet is not None:
        cascade.append({"name": "transfer", "source": resnet, "attack": {"name": "pgd", "steps": 20, "alpha": "eps/4"},
                        "label": "transfer from ResNet"})
    for label, twin in surrogates.items():
        cascade.append({"name": "transfer", "source": twin,
                        "attack": {"name": "pgd", "steps": budget.get("adaptive_steps", 20), "alpha": "eps/4"},
                        "label": f"adaptive: PGD via {label}"})
    return standalone, cascade


def _resolve(specs, eps):
    out = []
    for s in specs:
        s = dict(s)
        for key in ("alpha",):
            if s.get(key) == "eps/4":
                s[key] = max(eps / 4, 1e-4)
        if "attack" in s:
            s["attack"] = _resolve([s["attack"]], eps)[0]
        out.append(s)
    return out


def gradient_stats(model, x, y) -> dict:
    g = input_grad(model, x, y).flatten(1)
    norms = g.norm(dim=1)
    return {"n": len(y), "nan": int(torch.isnan(g).any(1).sum()), "zero": int((g == 0).all(1).sum()),
            "tiny": int((norms < 1e-10).sum()), "median_norm": float(norms.nan_to_num().median())}


def audit_model(model, x, y, eps_list, budget: dict, label: str, paper: dict | None = None, resnet=None,
                num_classes: int = 10, progress: bool = True, seed: int = 0) -> dict:
    """Audit one model. ``paper`` maps eps -> the paper's accuracy (or is None). Returns a dict with per-attack
    accuracies, checks, verdict rows and gradient statistics."""
    surrogates = ode_surrogates(model, budget.get("fixed_steps", 20)) if budget.get("adaptive", True) else {}
    standalone, cascade = attack_plan(budget, surrogates, resnet)
    shares = torch.bincount(y.cpu(), minlength=num_classes).float() / len(y)
    per_eps, checks, verdict = [], [], []
    for eps in eps_list:
        solo = evaluate(model, x, y, [eps], _resolve(standalone, eps), cascade=False, progress=progress,
                        model_name=label, seed=seed)
        accs = {r["attack"]: r["accuracy"] for r in solo["rows"]}
        # the cascade only sees points still robust after every standalone attack
        robust_idx = solo["_robust"][eps].nonzero().squeeze(1).to(x.device)
        worst = solo["worst_case"][0]["accuracy"]
        if len(robust_idx):
            casc = evaluate(model, x[robust_idx], y[robust_idx], [eps], _resolve(cascade, eps), cascade=True,
                            progress=progress, model_name=label, seed=seed)
            n = len(y)
            for r in casc["rows"]:
                accs[r["attack"] + " (cascade)"] = r["accuracy"] * len(robust_idx) / n
            worst = casc["worst_case"][0]["accuracy"] * len(robust_idx) / n
        else:
            casc = None
        clean = solo["clean_accuracy"]
        per_eps.append({"eps": eps, "clean": clean, "accuracies": accs, "worst_case": worst,
                        "solver_failures": solo["solver_failures_total"] + (casc["solver_failures_total"] if casc else 0)})
        pgd = accs["PGD-40 (paper)"]
        many = [v for k, v in accs.items() if k.startswith("PGD-") and k != "PGD-40 (paper)"]
        rows = _checks(label, eps, accs, many, pgd, worst, shares, clean, tol=max(TOL, 1.0 / len(y)) + 1e-6)  # accuracies are float32 means
        checks += rows
        paper_v = None
        if paper:
            paper_v = next((v for e, v in paper.items() if abs(e - eps) < 1e-4), None)
        flagged = [c["check"] for c in rows if c["status"] == "flag"]
        reasons = []
        if pgd - worst > GAP + 1e-6:
            reasons.append(f"PGD-40 overstates the worst case by {100 * (pgd - worst):.1f} pts")
        if paper_v is not None and paper_v - worst > GAP + 1e-6:
            reasons.append(f"the paper's figure exceeds the worst case by {100 * (paper_v - worst):.1f} pts")
        verdict.append({"model": label, "eps": eps, "clean": clean, "paper": paper_v, "pgd": pgd, "worst_case": worst,
                        "pgd_minus_worst": pgd - worst,
                        "paper_minus_worst": None if paper_v is None else paper_v - worst,
                        "verdict": "masking suspected" if (reasons or flagged) else "consistent",
                        "reasons": "; ".join(reasons + [f"check flagged: {f}" for f in flagged])})
    # checks that do not depend on eps
    unb = evaluate(model, x, y, [1.0], [{"name": "pgd", "steps": budget.get("unbounded_steps", 50), "alpha": 0.05,
                                         "label": "PGD eps=1"}], cascade=False, progress=False, model_name=label)
    success = 1 - unb["rows"][0]["accuracy"] / max(unb["clean_accuracy"], 1e-12)
    checks.append({"model": label, "eps": 1.0, "check": "unbounded attack reaches ~100% success",
                   "status": "pass" if success >= 0.99 else "flag",
                   "detail": f"PGD at eps=1 breaks {100 * success:.1f}% of clean-correct points (expect >= 99%)"})
    gs = gradient_stats(model, x, y)
    bad = gs["nan"] + gs["zero"] + gs["tiny"]
    checks.append({"model": label, "eps": None, "check": "gradients at the inputs are informative",
                   "status": "pass" if bad <= 0.05 * gs["n"] else "flag",
                   "detail": f"{gs['zero']} zero, {gs['tiny']} tiny (<1e-10), {gs['nan']} NaN of {gs['n']}; median norm {gs['median_norm']:.3g}"})
    if any(c["status"] == "flag" and c["eps"] in (1.0, None) for c in checks):
        for v in verdict:
            extra = [c["check"] for c in checks if c["status"] == "flag" and c["eps"] in (1.0, None)]
            v["verdict"] = "masking suspected"
            v["reasons"] = "; ".join(filter(None, [v["reasons"]] + [f"check flagged: {e}" for e in extra]))
    return {"model": label, "per_eps": per_eps, "checks": checks, "verdict": verdict, "gradient_stats": gs,
            "class_shares": shares.tolist(), "surrogates": list(surrogates)}


def _checks(label, eps, accs, many, pgd, worst, shares, clean, tol=TOL) -> list:
    """One row per check. ``tol`` is the slack between attacks: TOL, or one point of the sample when that is more."""
    rows = []
    fgsm = accs["FGSM"]
    rows.append({"model": label, "eps": eps, "check": "iterative >= single-step success",
                 "status": "pass" if pgd <= fgsm + tol else "flag",
                 "detail": f"PGD-40 {100 * pgd:.1f}% vs FGSM {100 * fgsm:.1f}%"})
    if many:
        strongest = min(many)
        raised = max(many) > pgd + tol
        unconverged = pgd - strongest > GAP + 1e-6
        rows.append({"model": label, "eps": eps, "check": "more steps/restarts do not change accuracy",
                     "status": "flag" if (raised or unconverged) else "pass",
                     "detail": f"PGD-40 {100 * pgd:.1f}% vs more steps/restarts {', '.join(f'{100 * m:.1f}%' for m in many)}"})
    black = {k: v for k, v in accs.items() if k.startswith(("Square", "Boundary", "transfer", "random noise"))
             and "(cascade)" not in k}
    white = min([pgd, fgsm] + many)
    if black:
        best_black = min(black.values())
        rows.append({"model": label, "eps": eps, "check": "black-box <= white-box success",
                     "status": "flag" if best_black < white - tol else "pass",
                     "detail": f"best black-box {100 * best_black:.1f}% ({min(black, key=black.get)}) vs best white-box {100 * white:.1f}%"})
    noise = accs.get("random noise")
    if noise is not None:
        rows.append({"model": label, "eps": eps, "check": "random noise weaker than gradient attacks",
                     "status": "flag" if noise < white - tol else "pass",
                     "detail": f"random noise {100 * noise:.1f}% vs best white-box {100 * white:.1f}%"})
    if eps >= 0.5:
        bound = float(shares.max())
        const = accs.get("constant 0.5 image")
        rows.append({"model": label, "eps": eps, "check": "constant-image bound (eps >= 0.5)",
                     "status": "pass" if worst <= bound + 1e-9 else "flag",
                     "detail": f"no classifier exceeds the largest class share {100 * bound:.1f}%; constant image "
                               f"leaves {100 * const:.1f}%, worst case {100 * worst:.1f}%"})
        rows.append({"model": label, "eps": eps, "check": "accuracy falls to chance as eps grows",
                     "status": "pass" if worst <= bound + GAP else "flag",
                     "detail": f"worst case {100 * worst:.1f}% at eps={eps:g} vs chance (largest class share) {100 * bound:.1f}%"})
    return rows


def constant_image_bound(class_shares, paper_value=None) -> dict:
    """The most any classifier can score at eps >= 0.5 on [0,1] images, and whether a reported figure exceeds it."""
    bound = max(class_shares)
    return {"bound": bound, "paper": paper_value,
            "paper_exceeds_bound": None if paper_value is None else paper_value > bound}
