"""The report's sections, one entry each, next to the schema of the result file it reads (RobustBench style: the
report only renders result files). Adding a notebook's section = one ``Section`` here + one template in
``templates/``; the navigation is generated from this list.

A section's ``context(results, env)`` turns the profile's result files whose names start with ``results`` into the
variables of its template; ``env`` holds the profile, its parameters, timings and the executed-notebook links.
``schema`` names the keys of the result file the section reads (a test checks them on the tiny profile's files).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from .. import reference
from .tables import ci, pct, status, table


@dataclass(frozen=True)
class Section:
    """One section of the report: anchor, titles, template, context function, result files and figures it reads."""
    id: str
    title: str
    nav: str
    template: str
    context: Callable
    results: str | None = None   # result-file prefix, e.g. "03-white-box"
    figures: tuple = ()          # figure-file prefixes shown in the section
    schema: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------------------- contexts
def _labelled(label, c) -> str:
    """A count named by the attack that produced it ('PGD-5: 12.5% [...] (1/8)'), or '–' when not measured."""
    return "–" if c is None else f"{label}: {ci(c)}" if label else ci(c)


def claim(results, env) -> dict:
    """Notebook 06: the headline sentences, four findings per model and eps, and the sanity checks."""
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
                       "n": a.get("n"), "findings": table(rows, html_columns=("reproduced", "converged", "masking", "feasible")),
                       "n_flagged": len(flagged), "n_checks": len(checks), "flagged": table(flagged, cols) if flagged else "",
                       "checks": table(checks, ["status"] + cols),
                       "errors": table(errors, ["model", "eps", "attack", "error"]) if errors else ""})
    return {"audits": audits}


def table1(results, env) -> dict:
    """Notebook 03: Table 1, ours (count and interval) beside the paper's figure, per eps."""
    rows = []
    for r in results:
        groups = {}
        for row in r["table1"]:
            key = (r["dataset"]["name"], row["attack"], row["model"])
            g = groups.setdefault(key, {"dataset": key[0], "attack": key[1], "model": key[2],
                                        "clean (ours)": ci(row["clean"]), "solver failures": 0})
            g[f"eps={row['eps']:.4g}: ours / paper (%)"] = f"{ci(row['robust'])} / {pct(row['paper'])}"
            g["solver failures"] += row.get("solver_failures") or 0
        rows += list(groups.values())
    return {"table": table(rows)}


def fig1(results, env) -> dict:
    """Notebook 02: accuracy per step size h and setting."""
    tables = []
    for r in results:
        pivot = {}
        for row in r["rows"]:
            pivot.setdefault(row["h"], {"h": row["h"]})[row["setting"]] = ci(row["robust"])
        tables.append(table(list(pivot.values())))
    return {"paper_says": reference.numbers()["figure1"]["paper_says"], "tables": tables}


def fig2(results, env) -> dict:
    """Notebook 03: the DI2-FGSM figure with the paper's reading."""
    return {"paper_says": reference.numbers()["figure2"]["paper_says"]}


def fig3(results, env) -> dict:
    """Notebook 04: Boundary Attack summary per model."""
    tables = [table([{"model": x["model"], "clean": ci(x["clean"]),
                      "adversarial example found": ci(x["found"]), "median L-inf": x.get("median_linf"),
                      "median L2": x.get("median_l2"), "queries": x.get("queries")} for x in r["summary"]])
              for r in results]
    return {"paper_says": reference.numbers()["figure3"]["paper_says"], "tables": tables}


def table2(results, env) -> dict:
    """Notebook 05: clean and PGD-20 accuracy per training method."""
    tables = [table([{"model": x["model"], "training": x["training"], "eps": x["eps"],
                      "clean": ci(x["clean"]), "robust (PGD-20)": ci(x["robust"]),
                      "paper clean (%)": pct(x.get("paper clean")), "paper robust (%)": pct(x.get("paper robust")),
                      "train s/epoch": x.get("train_s_per_epoch")} for x in r["rows"]])
              for r in results]
    return {"tables": tables}


def grid(results, env) -> dict:
    """Notebook 07's section: one table per dataset of every grid cell, with the notebook's summary."""
    from ..grid import table as grid_rows
    cols = ["cell", "configuration", "threat model", "eps", "clean", "FGSM", "PGD (paper settings)", "worst", "noise",
            "zero grad", "median margin", "NFE fwd", "NFE bwd", "solver failures", "wall s"]
    return {"grids": [{"dataset": g.get("dataset", {}).get("name", "?"), "summary": g.get("summary", ""),
                       "scope": g.get("scope", ""), "table": table(grid_rows(g.get("cells", [])), cols)} for g in results]}


def lipschitz(results, env) -> dict:
    """Notebook 01: violations of each bound and the growth factor at each t1."""
    rows = [{"dataset": r["dataset"]["name"], "Eq.12 violations": r["eq12"]["violations"],
             "Thm 3.1 violations": r["thm31_violations"], "Thm 3.2 violations": r["thm32_violations"],
             **{f"log10 e^(bK) {k}": v for k, v in next(iter(r["thm32"].values()))["log10_growth_factor"].items()}}
            for r in results]
    return {"table": table(rows)}


def table_a1(results, env) -> dict:
    """The paper's Table A1 beside this profile's ODE net."""
    a1 = reference.numbers()["table_a1_neural_ode_training"]
    rows = [{"setting": k, "paper MNIST": a1["mnist"].get(k), "paper CIFAR-10": a1["cifar10"].get(k)} for k in a1["mnist"]]
    return {"table": table(rows), "ode": json.dumps((env["params"] or {}).get("ODE", {})), "lr_schedule": a1["lr_schedule"]}


def provenance_section(results, env) -> dict:
    """Which profile and commit produced each result file; parameters and timings."""
    return {"files": table(env["files"], html_columns=("profile",)), "timings": json.dumps(env["timings"] or {}),
            "params": json.dumps(env["params"] or {}, indent=1), "run": json.dumps(env["run"], indent=1),
            "links": env["links"]}


SECTIONS = [
    Section("claim", "Does the claim hold?", "Verdict", "claim.html.j2", claim, results="06-audit", figures=("06-",),
            schema={"headline": "one sentence per model", "findings": "four findings per model and eps",
                    "checks": "sanity checks with points_differ", "models": "per model: per_eps counts and errors"}),
    Section("table1", "Table 1 — FGSM and the paper's PGD", "Table 1", "table1.html.j2", table1, results="03-white-box",
            figures=("03-table1",), schema={"table1": "rows: model, attack, eps, robust, n, clean_correct, paper",
                                            "dataset": "the dataset's description"}),
    Section("fig1", "Fig. 1 — ResNet step size sweep", "Fig 1", "fig1.html.j2", fig1, results="02-fig1",
            figures=("02-fig1",), schema={"rows": "h, setting, robust, n"}),
    Section("fig2", "Fig. 2 — DI²-FGSM", "Fig 2", "fig2.html.j2", fig2, results="03-white-box", figures=("03-fig2",),
            schema={"fig2": "model, eps, robust, n"}),
    Section("fig3", "Fig. 3 — Boundary Attack", "Fig 3", "fig3.html.j2", fig3, results="04-fig3", figures=("04-fig3",),
            schema={"summary": "model, n, clean_correct, found, median_linf, median_l2, queries",
                    "curves": "model, eps, robust, n"}),
    Section("table2", "Table 2 — vs adversarial training", "Table 2", "table2.html.j2", table2, results="05-table2",
            figures=("05-",), schema={"rows": "model, training, eps, n, clean_correct, robust_count, paper clean/robust"}),
    Section("grid", "What produces the paper's numbers? (notebook 07)", "07 grid", "grid.html.j2", grid,
            results="07-grid", figures=("07-grid",),
            schema={"summary": "which configuration comes closest to Table 1 and whether the strongest evaluation breaks it",
                    "scope": "which part of the full grid this profile runs", "cells": "per cell: counts per eps"}),
    Section("lipschitz", "§3 — Lipschitz bounds", "§3", "lipschitz.html.j2", lipschitz, results="01-lipschitz",
            figures=("01-",), schema={"eq12": "violations", "thm31_violations": "count", "thm32_violations": "count",
                                      "thm32": "per perturbation: log10_growth_factor"}),
    Section("tablea1", "Table A1 — Neural ODE training configuration", "Table A1", "tablea1.html.j2", table_a1),
    Section("provenance", "Profile and provenance", "Provenance", "provenance.html.j2", provenance_section),
]
