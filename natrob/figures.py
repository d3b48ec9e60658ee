"""Every figure of the study, drawn from a result file's payload (what a notebook writes with ``ctx.write``).

Notebooks and published results draw the same figures from the same numbers: a notebook builds its payload,
draws the figure from it and writes it; ``python -m natrob.figures --profile P`` redraws every figure of a profile
from its result files, and ``--published`` from the committed ``reference-results/<profile>/`` (the report's
``--published`` mode uses that). Figures are always generated, never edited.

``FIGURES`` maps a figure name (its file is ``figures/<profile>/<name>-<dataset>.png``) to the prefix of the result
file it reads and the function that draws it. Each function takes ``(payload, params)``: the result's payload and
the notebook's parameters (a written result carries them as ``provenance.params``) and returns a Figure.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

from . import paths, plots
from .errors import UnknownNameError
from .results import read_json
from .reference import paper_attack


def _plt():
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")  # headless unless a notebook already chose its backend
    import matplotlib.pyplot as plt
    return plt


def _frame(rows):
    import pandas as pd
    return pd.DataFrame(rows)


def _dataset(payload) -> str:
    return payload.get("dataset", {}).get("name", "?")


def _acc(rows, *fields):
    """Rows with each count-value field replaced by its accuracy in [0, 1] (None where not measured), to plot."""
    return _frame([r | {f: (r[f] or {}).get("accuracy") for f in fields} for r in rows])


# ------------------------------------------------------------------------------------------- notebook 01
def thm31(payload, params):
    """Theorem 3.1 on a trained ResNet: measured |z_n - y_n| (solid) against the bound (dashed), per h."""
    fig, ax = _plt().subplots()
    for (h, kind), g in _frame(payload["thm31"]).groupby(["h", "perturbation"]):
        line, = ax.plot(g.layer, g.measured_max, marker="o", label=f"measured, h={h:g}, {kind}")
        ax.plot(g.layer, g.bound_min, ls="--", color=line.get_color())
    ax.set_yscale("log"); ax.set_xlabel("residual block n"); ax.set_ylabel("|z_n − y_n| (solid) vs bound (dashed)")
    ax.set_title("Theorem 3.1 on a trained ResNet"); ax.legend(fontsize=7)
    return fig


def thm32(payload, params):
    """Theorem 3.2 along the ODE solution: log10 of the measured error and of the bound over t."""
    fig, ax = _plt().subplots()
    for kind, r in payload["thm32"].items():
        df = _frame(r["rows"])
        line, = ax.plot(df.t, [math.log10(max(v, 1e-30)) for v in df.measured_max], marker="o", label=f"measured, {kind}")
        ax.plot(df.t, df.log10_bound_min, ls="--", color=line.get_color(), label=f"bound, {kind}")
    ax.set_xlabel("t"); ax.set_ylabel("log10 |z(t) − y(t)|"); ax.set_title("Theorem 3.2 along the ODE solution")
    ax.legend(fontsize=7)
    return fig


def skipnets(payload, params):
    """§3.3: mean amplification of a small perturbation by each skip architecture, against its step size h."""
    fig, ax = _plt().subplots()
    for name, g in _frame(payload["skipnets"]).groupby("block"):
        ax.plot(g.h, g.amplification_mean, marker="o", label=name)
    ax.set_xscale("log"); ax.set_xlabel("step size h"); ax.set_ylabel("mean amplification of a small ε")
    ax.set_title("§3.3 skip architectures as one ODE step"); ax.legend()
    return fig


# ------------------------------------------------------------------------------------------- notebooks 02-05
def fig1(payload, params):
    """Fig. 1: clean and transferred-FGSM accuracy of ResNets against their step size h."""
    import seaborn as sns
    fig, ax = _plt().subplots()
    sns.lineplot(data=_acc(payload["rows"], "robust"), x="h", y="robust", hue="setting", marker="o", ax=ax)
    ax.set_ylabel("accuracy")
    ax.set_xscale("log"); ax.invert_xaxis(); ax.set_ylim(0, 1.02)
    ax.set_title(f"Fig. 1: ResNet step size h ({_dataset(payload)}, {params['FIG1_RESNET']['model']})")
    return fig


def fig2(payload, params):
    """Fig. 2: DI²-FGSM accuracy of each model against eps."""
    import seaborn as sns
    fig, ax = _plt().subplots()
    sns.lineplot(data=_acc(payload["fig2"], "robust"), x="eps", y="robust", hue="model", marker="o", ax=ax)
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02); ax.set_title(f"Fig. 2: DI²-FGSM ({_dataset(payload)})")
    return fig


def table1(payload, params):
    """Table 1 as a plot: our FGSM and PGD accuracy of each model against eps."""
    import seaborn as sns
    fig, ax = _plt().subplots()
    sns.lineplot(data=_acc(payload["table1"], "robust"), x="eps", y="robust", hue="model", style="attack", marker="o",
                 ax=ax)
    ax.set_ylim(0, 1.02); ax.set_ylabel("accuracy"); ax.set_title(f"Table 1 as a plot ({_dataset(payload)})")
    return fig


def fig3(payload, params):
    """Fig. 3: Boundary Attack, robust accuracy against the L∞ size of the example found."""
    import seaborn as sns
    fig, ax = _plt().subplots()
    sns.lineplot(data=_acc(payload["curves"], "robust"), x="eps", y="robust", hue="model", ax=ax)
    ax.set_ylim(0, 1.02); ax.set_xlabel("ε (L∞ size of the example found)"); ax.set_ylabel("accuracy")
    ax.set_title(f"Fig. 3: Boundary Attack, {params['BOUNDARY_QUERIES']} queries ({_dataset(payload)})")
    return fig


def table2(payload, params):
    """Table 2: clean and PGD-20 accuracy per training method, ours beside the paper's."""
    import seaborn as sns
    fig, ax = _plt().subplots(figsize=(9, 4))
    long = _acc(payload["rows"], "clean", "robust").melt(
        id_vars=["training"], value_vars=["clean", "robust", "paper clean", "paper robust"], var_name="what",
        value_name="accuracy")
    sns.barplot(data=long, y="training", x="accuracy", hue="what", ax=ax)
    ax.set_xlim(0, 1)
    # beside the axes, not on them: the bars reach across the whole [0, 1] range
    ax.legend(title=None, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    ax.set_title(f"Table 2 ({_dataset(payload)}, PGD-20 at eps={params['AT_EPS']:.4g}; paper: CIFAR-10, 8/255)")
    return fig


# ------------------------------------------------------------------------------------------- notebooks 06-07
def audit(payload, params):
    """The audit: paper vs our run of the paper's attack vs the worst case over every attack, with 95% intervals,
    per model and eps (the attack's label is the one the profile ran, e.g. PGD-5 in tiny)."""
    import seaborn as sns
    points = []
    for f in payload["findings"]:
        ours = f"{f.get('paper_attack_label') or 'paper attack'} (ours)"
        for what, c in ((ours, f["paper_attack"]), ("worst case", f["worst_case"])):
            if c is not None and c["k"] is not None:
                lo, hi = c["ci95"]
                points.append({"model": f["model"], "eps": f["eps"], "evaluation": what, "accuracy": c["accuracy"],
                               "lo": lo, "hi": hi})
        if f["paper"] is not None:
            points.append({"model": f["model"], "eps": f["eps"], "evaluation": "paper", "accuracy": f["paper"],
                           "lo": f["paper"], "hi": f["paper"]})
    points = _frame(points)
    fig, ax = _plt().subplots(figsize=(7, 4))
    sns.lineplot(data=points, x="eps", y="accuracy", hue="model", style="evaluation", marker="o", ax=ax)
    ax.vlines(points.eps, points.lo, points.hi, color="0.5", lw=0.8)  # 95% intervals
    shares = next(iter(payload["models"].values()))["class_shares"]
    ax.axhline(max(shares), color="k", lw=0.8, ls=":", label="largest class share")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Paper vs the paper's attack vs worst case, 95% intervals ({_dataset(payload)}, n={payload['n']})")
    ax.legend(fontsize=7, ncol=2)
    return fig


def grid(payload, params):
    """Notebook 07: FGSM, PGD-40 and worst-case accuracy of every grid cell, with the paper's Table 1 as lines."""
    import seaborn as sns
    cells, eps_list = payload["cells"], payload["eps"]
    long = []
    for c in cells:
        for r in c["per_eps"]:
            for key, name in (("fgsm", "FGSM"), ("pgd", c.get("pgd_label", "PGD")), ("worst", "worst case")):
                long.append({"cell": f"{c['id']} {c['label']}" + ("" if c["correct_threat_model"] else " [NOT correct threat model]"),
                             "eps": r["eps"], "evaluation": name, "accuracy (%)": 100 * r[key]["accuracy"]})
    long = _frame(long)
    fig, axes = _plt().subplots(1, len(eps_list), figsize=(5.5 * len(eps_list), 0.32 * len(cells) + 1.8), sharey=True,
                                squeeze=False)
    paper = {float(k): v for k, v in payload.get("paper", {}).items()}
    for ax, eps in zip(axes[0], eps_list):
        sns.scatterplot(data=long[long.eps == eps], x="accuracy (%)", y="cell", hue="evaluation", style="evaluation",
                        s=60, ax=ax)
        p = next((v for k, v in paper.items() if abs(k - eps) < 1e-9), None)
        if p is not None:
            ax.axvline(100 * p["fgsm"], color="C0", ls=":", lw=1, label="paper FGSM")
            ax.axvline(100 * p["pgd"], color="C1", ls="--", lw=1, label=f"paper {paper_attack()['label']}")
        ax.set_xlim(-2, 102); ax.set_title(f"eps = {eps:g}"); ax.legend(fontsize=7)
    n = cells[0]["n"] if cells else 0
    fig.suptitle(f"Neural ODE grid vs the paper's Table 1 ({_dataset(payload)}, n = {n})")
    return fig


FIGURES = {  # figure name -> (result-file prefix, draw(payload, params))
    "01-thm31": ("01-lipschitz", thm31),
    "01-thm32": ("01-lipschitz", thm32),
    "01-skipnets": ("01-lipschitz", skipnets),
    "02-fig1": ("02-fig1", fig1),
    "03-fig2": ("03-white-box", fig2),
    "03-table1": ("03-white-box", table1),
    "04-fig3": ("04-fig3", fig3),
    "05-table2": ("05-table2", table2),
    "06-audit": ("06-audit", audit),
    "07-grid": ("07-grid", grid),
}


def save(name: str, payload: dict, params: dict) -> Path:
    """Draw figure ``name`` of ``FIGURES`` from ``payload`` (its result's payload, or the part the figure reads plus
    ``dataset``) and save it as ``figures/<profile>/<name>-<dataset>.png``; returns the path. Outside a notebook
    kernel the figure is closed once saved."""
    if name not in FIGURES:
        raise UnknownNameError("figure", name, FIGURES)
    fig = FIGURES[name][1](payload, params)
    path = plots.save(fig, f"{name}-{_dataset(payload)}")
    if "ipykernel" not in sys.modules:
        _plt().close(fig)
    return path


def save_for(result_prefix: str, payload: dict, params: dict) -> list:
    """Draw and save every figure read from a result with this prefix; returns their paths. Notebooks call it
    with the payload they are about to write, so the figure comes from exactly the numbers written."""
    return [save(name, payload, params) for name, (prefix, _) in FIGURES.items() if prefix == result_prefix]


def render_all(results_dir: Path) -> list:
    """Redraw every figure from the result files in ``results_dir`` into the current profile's figures folder."""
    plots.setup()
    out = []
    for prefix in dict.fromkeys(p for p, _ in FIGURES.values()):
        for path in sorted(Path(results_dir).glob(f"{prefix}-*.json")):
            payload = read_json(path)
            params = payload.get("provenance", {}).get("params", {})
            out += save_for(prefix, payload, params)
    return out


def main(argv=None) -> int:
    """Command line: redraw a profile's figures from its result files (or the published ones)."""
    ap = argparse.ArgumentParser(prog="python -m natrob.figures", description="Redraw every figure from result files.")
    ap.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    ap.add_argument("--published", action="store_true",
                    help="read reference-results/<profile>/ and draw into figures/<profile>-published/")
    a = ap.parse_args(argv)
    src = paths.PUBLISHED / a.profile if a.published else paths.results_dir(a.profile)
    if not any(src.glob("*.json")):
        print(f"no result files in {src}", file=sys.stderr)
        return 1
    paths.set_profile(a.profile + ("-published" if a.published else ""))
    for p in render_all(src):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
