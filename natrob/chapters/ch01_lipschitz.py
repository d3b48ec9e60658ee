"""Chapter 01 (notebook 01-lipschitz-bounds): the paper's §3 bounds measured on trained networks.

Payload, figures (Theorem 3.1, Theorem 3.2, the skip architectures), report section and cost row; see
:mod:`natrob.chapters`. The computations are :mod:`natrob.study.lipschitz`'s."""
from __future__ import annotations

import math

from .drawing import frame, legend_outside, pyplot

RESULT = "01-lipschitz"


def payload(data, eq12: dict, thm31: list, thm32: dict, skipnets: list, ode_clean_acc: float) -> dict:
    """The result payload: Eq. (12) trials, Theorem 3.1 rows (one per h, perturbation, layer), Theorem 3.2 per
    perturbation, the skip-architecture rows, and the violation totals the notebook asserts to be 0."""
    return {"dataset": data.describe(), "eq12": eq12, "thm31": thm31,
            "thm31_violations": int(sum(r["violations"] for r in thm31)), "thm32": thm32,
            "thm32_violations": int(sum(r["violations"] for r in thm32.values())), "skipnets": skipnets,
            "ode_clean_acc": ode_clean_acc}


def thm31(payload, params):
    """Theorem 3.1 on a trained ResNet: measured |z_n - y_n| (solid) against the bound (dashed), per h."""
    fig, ax = pyplot().subplots()
    for (h, kind), g in frame(payload["thm31"]).groupby(["h", "perturbation"]):
        line, = ax.plot(g.layer, g.measured_max, marker="o", label=f"measured, h={h:g}, {kind}")
        ax.plot(g.layer, g.bound_min, ls="--", color=line.get_color())
    ax.set_yscale("log"); ax.set_xlabel("residual block n"); ax.set_ylabel("|z_n − y_n| (solid) vs bound (dashed)")
    fig.set_size_inches(9, 4.8)
    ax.set_title("Theorem 3.1 on a trained ResNet"); legend_outside(ax, fig, fontsize=7)
    return fig


def thm32(payload, params):
    """Theorem 3.2 along the ODE solution: log10 of the measured error and of the bound over t."""
    fig, ax = pyplot().subplots()
    for kind, r in payload["thm32"].items():
        df = frame(r["rows"])
        line, = ax.plot(df.t, [math.log10(max(v, 1e-30)) for v in df.measured_max], marker="o",
                        label=f"measured, {kind}")
        ax.plot(df.t, df.log10_bound_min, ls="--", color=line.get_color(), label=f"bound, {kind}")
    fig.set_size_inches(9, 4.8)
    ax.set_xlabel("t"); ax.set_ylabel("log10 |z(t) − y(t)|"); ax.set_title("Theorem 3.2 along the ODE solution")
    legend_outside(ax, fig, fontsize=7)
    return fig


def skipnets(payload, params):
    """§3.3: mean amplification of a small perturbation by each skip architecture, against its step size h."""
    fig, ax = pyplot().subplots()
    for name, g in frame(payload["skipnets"]).groupby("block"):
        ax.plot(g.h, g.amplification_mean, marker="o", label=name)
    ax.set_xscale("log"); ax.set_xlabel("step size h"); ax.set_ylabel("mean amplification of a small ε")
    ax.set_title("§3.3 skip architectures as one ODE step"); ax.legend()
    return fig


def section(results, env) -> dict:
    """Report: violations of each bound and the growth factor at each t1."""
    from .tables import table
    rows = [{"dataset": r["dataset"]["name"], "Eq.12 violations": r["eq12"]["violations"],
             "Thm 3.1 violations": r["thm31_violations"], "Thm 3.2 violations": r["thm32_violations"],
             **{f"log10 e^(bK) {k}": v for k, v in next(iter(r["thm32"].values()))["log10_growth_factor"].items()}}
            for r in results]
    return {"table": table(rows)}


def cost(p: dict, u) -> dict:
    """Training the Neural ODE and one ResNet per h in LIP_H (their measurements cost little beside)."""
    lip = len(p["LIP_H"])
    return {"notebook": "01", "what": f"train Neural ODE + {lip} {p['FIG1_RESNET']['model']} (h in LIP_H)",
            "hours": u.train_h(p["ODE"], "ode") + lip * u.train_h(p["FIG1_RESNET"])}
