"""Chapter 07 (notebook 07-what-produces-the-papers-numbers): which configuration or protocol produces the
paper's Table 1 numbers for the Neural ODE, and does it survive the strongest evaluation?

Payload, the prose written from the measured counts (scope, summary, distances to the paper), the table, the
figure, the report section and the cost row; see :mod:`natrob.chapters`. The measurements are
:mod:`natrob.study.grid`'s; nothing here imports it (the report renders the result file alone)."""
from __future__ import annotations


from .. import reference
from ..eps import EPS_TOL, at_eps, same_eps
from ..study.fingerprint import distance, paper_row, percentages
from .drawing import dataset_name, frame, legend_outside, pyplot
from ..stats import fmt, wilson

RESULT = "07-grid"


# the full grid of the paper profile (notebook 07's question at the paper's 4 eps); smaller profiles run a subset
FULL_GRID = {"tolerances": [0.1, 0.001, 1e-05, "default"], "gradient": ["direct", "adjoint"], "t1": [1.0, 10.0, 100.0],
             "epochs up to": 100, "protocols": ["no-clip", "cross-solver", "normalised-eps"], "eps": 4}


def _words(values, fmt_one=str) -> str:
    values = [fmt_one(v) for v in values]
    return "none" if not values else values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]


def _tol_word(t) -> str:
    return "torchdiffeq's default (rtol 1e-7, atol 1e-9)" if t == "default" else f"{t:g}"


def scope_text(profile: str, n_cells: int, n_points: int, eps, tols, grads, t1_values, epochs, protocols, max_nfe,
               budget: dict) -> str:
    """What part of the grid a profile runs, in plain words (no Python literals), and what it leaves out of
    :data:`FULL_GRID`."""
    from ..audit.budgets import grid_settings  # the grid's defaults, as the grid applies them
    budget = grid_settings(budget)
    more = int(budget["pgd_steps"])
    extra = [f"PGD-{more}x{budget['pgd_restarts']}"] * (more > 0) + ["Square"] * (int(budget["square_queries"]) > 0)
    text = (f"{n_cells} cells on {n_points} test points at eps {_words(eps, lambda e: f'{e:g}')}; tolerances "
            f"{_words(tols, _tol_word)}; gradients {_words(grads)}; t1 {_words(t1_values, lambda t: f'{t:g}')}; "
            f"{_words(epochs)} training epochs; protocols {_words(protocols)}; an NFE cap of {max_nfe} per solve; "
            f"the worst case adds {_words(extra) if extra else 'no stronger attack'} on the points that survive")
    reduced = [k for k, full, ours in (("tolerances", map(str, FULL_GRID["tolerances"]), map(str, tols)),
                                       ("t1", FULL_GRID["t1"], map(float, t1_values)),
                                       ("protocols", FULL_GRID["protocols"], protocols)) if set(full) - set(ours)]
    reduced += ["epochs"] * (max(epochs) < FULL_GRID["epochs up to"]) + ["eps"] * (len(eps) < FULL_GRID["eps"])
    if reduced:
        text += (f". The {profile} profile runs a subset of the full grid (tolerances "
                 f"{_words(FULL_GRID['tolerances'], _tol_word)}; t1 {_words(FULL_GRID['t1'], lambda t: f'{t:g}')}; "
                 "up to "
                 f"{FULL_GRID['epochs up to']} epochs; protocols {_words(FULL_GRID['protocols'])}; the paper's "
                 f"{FULL_GRID['eps']} eps): fewer {_words(reduced)}")
    return text


# ------------------------------------------------------------------------------------------- the paper
def paper_table1(dataset: str) -> dict:
    """{eps: {"fgsm", "pgd"}} of the paper's Neural ODE (Table 1) for the paper dataset ``dataset`` stands in for."""
    f, p = reference.table1(dataset, "FGSM", "Neural ODE"), reference.table1(dataset, "PGD", "Neural ODE")
    return {e: {"fgsm": f[e], "pgd": p[e]} for e in f}


def compare_to_paper(cells: list, dataset: str) -> list:
    """Per cell: points between ours and the paper per eps (FGSM and PGD-40) and the RMS distance over both
    columns and every eps the paper and the grid share (:func:`natrob.study.fingerprint.distance`, the one distance
    notebooks 07, 08 and 09 use)."""
    paper = paper_table1(dataset)
    rows = []
    for c in cells:
        gaps = []
        for r in c["per_eps"]:
            p = reference.lookup(paper, r["eps"])
            if p is None:
                continue
            d_f, d_p = 100 * (r["fgsm"]["accuracy"] - p["fgsm"]), 100 * (r["pgd"]["accuracy"] - p["pgd"])
            gaps.append({"eps": r["eps"], "fgsm_pts": d_f, "pgd_pts": d_p, "paper_fgsm": p["fgsm"],
                         "paper_pgd": p["pgd"]})
        ours = {a: percentages([{"eps": r["eps"], "robust": r[a]} for r in c["per_eps"]]) for a in ("fgsm", "pgd")}
        rows.append({"id": c["id"], "label": c["label"], "correct_threat_model": c["correct_threat_model"],
                     "gaps": gaps, "distance_pts": distance(ours, paper_row(dataset))["rms"] if gaps else None})
    return rows


def closest(cells: list, dataset: str, correct_only: bool = False) -> dict | None:
    """The cell with the smallest distance to the paper's Table 1 (optionally among correct-threat-model cells)."""
    rows = [r for r in compare_to_paper(cells, dataset) if r["distance_pts"] is not None
            and (r["correct_threat_model"] or not correct_only)]
    return min(rows, key=lambda r: r["distance_pts"]) if rows else None


def breaks(row: dict, paper_pgd: float) -> bool:
    """The strongest evaluation breaks a figure when the paper's PGD accuracy lies above the worst case's 95%
    interval."""
    return paper_pgd > wilson(row["worst"]["k"], row["worst"]["n"])[1]


def summary(cells: list, dataset: str, note: str = "") -> str:
    """The closing paragraph, written from the measured counts: the closest configuration per the paper's Table 1
    (in points, per eps), whether the strongest evaluation breaks it, the closest correct-threat-model cell, and
    NFE cap hits."""
    by_id = {c["id"]: c for c in cells}
    best = closest(cells, dataset)
    if best is None:
        return "No grid cell shares an eps with the paper's Table 1; nothing to compare."
    parts = []

    def describe(row, intro):
        c = by_id[row["id"]]
        pgd = c.get("pgd_label", "PGD")
        gaps = "; ".join(f"eps={g['eps']:g}: FGSM {g['fgsm_pts']:+.1f} pts, {pgd} {g['pgd_pts']:+.1f} pts"
                         for g in row["gaps"])
        text = (f"{intro} is {c['label']} ({c['threat_model']}), RMS {row['distance_pts']:.1f} points from the paper "
                f"({gaps}; ours minus paper).")
        verdicts = []
        for g in row["gaps"]:
            r = at_eps(c["per_eps"], g["eps"])
            w = r["worst"]
            verdicts.append(f"at eps={g['eps']:g} the worst case is {fmt(w['k'], w['n'])} against {pgd} "
                            f"{fmt(r['pgd']['k'], r['pgd']['n'])} and the paper's {100 * g['paper_pgd']:.2f}%: "
                            + ("the strongest evaluation breaks it" if breaks(r, g["paper_pgd"])
                               else "the paper's figure lies within or below the worst case's 95% interval"))
        return text + " Under the strongest evaluation of that cell, " + "; ".join(verdicts) + "."

    parts.append(describe(best, "The configuration closest to the paper's Table 1 (Neural ODE)"))
    if not best["correct_threat_model"]:
        ok = closest(cells, dataset, correct_only=True)
        if ok is not None:
            parts.append(describe(ok, "Among correct-threat-model cells the closest"))
    capped = [c for c in cells if c.get("nfe_cap_hit")]
    if capped:
        parts.append("The NFE cap (" + ", ".join(f"{c['max_nfe']}" for c in capped[:1]) + ") was hit in: " +
                     "; ".join(f"{c['label']} ({c['solver_failures']} solver failures, counted as not robust)"
                               for c in capped) + ".")
    if note:
        parts.append(note)
    return " ".join(parts)


def table(cells: list) -> list:
    """Flat rows (cell x eps) for display and the report: accuracies in %, counts, diagnostics, NFE, wall time."""
    rows = []
    for c in cells:
        d = c["diagnostics"]
        for r in c["per_eps"]:
            rows.append({"cell": c["id"], "configuration": c["label"], "axes": ", ".join(c["axes"]),
                         "threat model": "correct" if c["correct_threat_model"] else "NOT correct", "eps": r["eps"],
                         "clean": fmt(c["clean"]["k"], c["clean"]["n"]), "FGSM": fmt(r["fgsm"]["k"], r["fgsm"]["n"]),
                         "PGD (paper settings)": fmt(r["pgd"]["k"], r["pgd"]["n"]),
                         "worst": fmt(r["worst"]["k"], r["worst"]["n"]),
                         "noise": fmt(r["noise"]["k"], r["noise"]["n"]),
                         "zero grad": (None if d.get("zero_grad") is None
                                       else f"{d['zero_grad']['k']}/{d['zero_grad']['n']}"),
                         "median margin": d.get("median_margin"), "NFE fwd": d.get("nfe_forward"),
                         "NFE bwd": d.get("nfe_backward"), "solver failures": c["solver_failures"],
                         "wall s": round(c["wall_s"], 1)})
    return rows


def payload(data, scope: str, eps: list, cells: list, models: dict) -> dict:
    """The result payload: the measured cells (``natrob.study.grid.run_grid``), the paper's Table 1 at the grid's eps,
    the distances to it, the closest cells, the summary, and per model its store key and clean accuracy
    (``models``: name -> (model, store record))."""
    name = data.name
    return {"dataset": data.describe(), "scope": scope, "eps": eps,
            "paper": {str(e): v for e, v in paper_table1(name).items()}, "cells": cells,
            "comparison": compare_to_paper(cells, name), "closest": closest(cells, name),
            "closest_correct": closest(cells, name, correct_only=True),
            "summary": summary(cells, name),  # the scope is shown once, beside it
            "models": {k: {"key": v[1].get("key"), "clean_acc": v[1].get("clean_acc")} for k, v in models.items()}}


def grid(payload, params):
    """Notebook 07: FGSM, the paper's PGD and worst-case accuracy of every grid cell, with the paper's Table 1 as
    lines (each attack labelled as it ran)."""
    import seaborn as sns
    cells, eps_list = payload["cells"], payload["eps"]
    long = []
    for c in cells:
        for r in c["per_eps"]:
            for key, name in (("fgsm", "FGSM"), ("pgd", c.get("pgd_label", "PGD")), ("worst", "worst case")):
                flag = "" if c["correct_threat_model"] else " [NOT correct threat model]"
                long.append({"cell": f"{c['id']} {c['label']}{flag}",
                             "eps": r["eps"], "evaluation": name, "accuracy (%)": 100 * r[key]["accuracy"]})
    long = frame(long)
    fig, axes = pyplot().subplots(1, len(eps_list), figsize=(5.5 * len(eps_list), 0.32 * len(cells) + 1.8),
                                  sharey=True, squeeze=False)
    paper = {float(k): v for k, v in payload.get("paper", {}).items()}
    for ax, eps in zip(axes[0], eps_list):
        sns.scatterplot(data=long[(long.eps - eps).abs() < EPS_TOL], x="accuracy (%)", y="cell", hue="evaluation",
                        style="evaluation", s=60, ax=ax)
        p = next((v for k, v in paper.items() if same_eps(k, eps)), None)
        if p is not None:
            ax.axvline(100 * p["fgsm"], color="C0", ls=":", lw=1, label="paper FGSM")
            ax.axvline(100 * p["pgd"], color="C1", ls="--", lw=1, label=f"paper {reference.paper_attack()['label']}")
        ax.set_xlim(-2, 102); ax.set_title(f"eps = {eps:g}")
        ax.get_legend() and ax.get_legend().remove()
    n = cells[0]["n"] if cells else 0
    fig.suptitle(f"Neural ODE grid vs the paper's Table 1 ({dataset_name(payload)}, n = {n})")
    # one legend, beside the last panel, off the cells' points (the long cell labels leave tight_layout no room)
    legend_outside(axes[0][-1], fig, layout=False, fontsize=7)
    return fig


def section(results, env) -> dict:
    """Report: one table per dataset of every grid cell, with the notebook's summary and scope."""
    from .tables import table as html_table
    cols = ["cell", "configuration", "threat model", "eps", "clean", "FGSM", "PGD (paper settings)", "worst", "noise",
            "zero grad", "median margin", "NFE fwd", "NFE bwd", "solver failures", "wall s"]
    return {"grids": [{"dataset": g.get("dataset", {}).get("name", "?"), "summary": g.get("summary", ""),
                       "scope": g.get("scope", ""), "table": html_table(table(g.get("cells", [])), cols)}
                      for g in results]}


def cost(p: dict, u) -> dict:
    """Training the grid's extra ODE nets and every cell at the base cell's cost: FGSM and the paper's PGD (twice
    with float64 everywhere) and the noise query per point and eps; stronger attacks on survivors not counted."""
    specs, cells = u.grid_cells(p)
    extra = [s for s in specs.values() if s is not p["ODE"]]
    from ..audit.budgets import grid_settings
    g, pgd = grid_settings(p["GRID_BUDGET"]), reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"])
    cell_units = (2 * (1 + pgd["steps"]) * (2 if g["float64"] == "all" else 1), 1)
    return {"notebook": "07",
            "what": f"train {len(extra)} more ODE nets; {len(cells)} cells x {len(p['GRID_EPS'])} eps "
                    f"x {p['GRID_N']} points (cells at the base cell's cost; PGD-{g['pgd_steps']}"
                    f"x{g['pgd_restarts']} and Square on surviving points not counted)",
            "hours": sum(u.train_h(s) for s in extra)
            + u.attack_h("odenet", p["GRID_N"] * len(p["GRID_EPS"]) * len(cells), cell_units)}
