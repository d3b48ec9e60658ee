"""Chapter 06 (notebook 06-robustness-audit): does robustness survive the strongest evaluation?

Payload, figure, report section and cost row; see :mod:`natrob.chapters`. The audit itself is
:mod:`natrob.audit`; its plan runs the paper's PGD as the profile does (:func:`natrob.reference.paper_attack`)."""
from __future__ import annotations

from .drawing import dataset_name, frame, legend_outside, pyplot

RESULT = "06-audit"
PRIVATE = ("findings", "checks", "roles")  # kept once, at the top of the payload, not under each model


def payload(data, n: int, results: dict, headline: list, constant_image: dict, roles: dict) -> dict:
    """The result payload from ``{label: audit_model(...) result}``: the headline, every finding and check, the
    constant-image bound, the roles, and per model its probe and per-eps counts."""
    checks = [c for r in results.values() for c in r["checks"]]
    return {"dataset": data.describe(), "n": n, "headline": headline,
            "findings": [f for r in results.values() for f in r["findings"]], "checks": checks,
            "constant_image": constant_image, "roles": roles,
            "models": {k: {kk: vv for kk, vv in v.items() if kk not in PRIVATE} for k, v in results.items()}}


def audit(payload, params):
    """The audit: paper vs our run of the paper's attack vs the worst case over every attack, with 95% intervals,
    per model and eps (the attack's label is the one the profile ran, e.g. PGD-5 in tiny)."""
    import seaborn as sns
    points = []
    for f in payload["findings"]:
        ours = f"{f.get('paper_attack_label') or 'paper attack'} (ours)"
        for what, c in ((ours, f["paper_attack"]), ("worst case", f["worst_case"])):
            if c is not None and c["k"] is not None:
                points.append({"model": f["model"], "eps": f["eps"], "evaluation": what, "accuracy": c["accuracy"],
                               "lo": c["ci95"][0], "hi": c["ci95"][1]})
        if f["paper"] is not None:
            points.append({"model": f["model"], "eps": f["eps"], "evaluation": "paper", "accuracy": f["paper"],
                           "lo": f["paper"], "hi": f["paper"]})
    points = frame(points)
    fig, ax = pyplot().subplots(figsize=(9, 4.5))
    sns.lineplot(data=points, x="eps", y="accuracy", hue="model", style="evaluation", marker="o", ax=ax)
    ax.vlines(points.eps, points.lo, points.hi, color="0.5", lw=0.8)  # 95% intervals
    ax.axhline(payload["constant_image"]["bound"], color="k", lw=0.8, ls=":", label="largest class share")
    ax.set_ylim(0, 1.02)
    has_paper = any(f["paper"] is not None for f in payload["findings"])
    ax.set_title(("Paper vs the paper's attack vs worst case" if has_paper else "The paper's attack vs the worst case")
                 + f", 95% intervals ({dataset_name(payload)}, n={payload['n']})")
    ax.set_xticks(sorted(points.eps.unique()))  # the audited radii, not a continuous axis between them
    legend_outside(ax, fig, fontsize=7)
    return fig


def _labelled(label, c) -> str:
    from ..stats import ci
    return "–" if c is None else f"{label}: {ci(c)}" if label else ci(c)


def section(results, env) -> dict:
    """Report: the headline sentences, four findings per model and eps, and the sanity checks."""
    from ..stats import ci
    from .tables import pct, status, table
    audits = []
    for a in results:
        rows = [{"model": f["model"], "eps": f["eps"], "clean": ci(f["clean"]), "paper (%)": pct(f["paper"]),
                 "paper's attack (ours)": _labelled(f.get("paper_attack_label"), f["paper_attack"]),
                 "worst case": ci(f["worst_case"]),
                 **{k: status(f[k]["status"]) for k in ("reproduced", "converged", "masking", "feasible")}}
                for f in a.get("findings", [])]
        checks = a.get("checks", [])
        flagged = [c for c in checks if c.get("status") == "flag"]
        cols = ["model", "eps", "check", "finding", "points_differ", "detail"]
        errors = [e | {"model": m} for m, r in a.get("models", {}).items() for pe in r.get("per_eps", [])
                  for e in pe.get("errors", [])]
        audits.append({"dataset": a.get("dataset", {}).get("name", "?"), "headline": a.get("headline", []),
                       "n": a.get("n"),
                       "findings": table(rows, html_columns=("reproduced", "converged", "masking", "feasible")),
                       "n_flagged": len(flagged), "n_checks": len(checks),
                       "flagged": table(flagged, cols) if flagged else "",
                       "checks": table(checks, ["status"] + cols),
                       "errors": table(errors, ["model", "eps", "attack", "error"]) if errors else ""})
    return {"audits": audits}


def cost(p: dict, u) -> dict:
    """The attacks on every point of five models at every audit eps; the cascade on surviving points is not
    counted (none of a broken model's points, most of a robust one's)."""
    at = p["AT_MODEL"]["model"]
    units = u.audit_units(p)
    n = p["AUDIT_N"] * len(p["AUDIT_EPS"])
    return {"notebook": "06", "what": f"audit of 5 models, {p['AUDIT_N']} points x {len(p['AUDIT_EPS'])} eps "
                                      "(attacks on every point; the cascade on surviving points not counted)",
            "hours": sum(u.attack_h(m, n, units) for m in ["odenet", "resnet50", at, at, at])}
