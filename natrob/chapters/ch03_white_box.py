"""Chapter 03 (notebook 03-white-box): Table 1 (FGSM and the paper's PGD) and Fig. 2 (DI²-FGSM).

Payload, figures, report sections and cost row; see :mod:`natrob.chapters`. The paper's PGD is
:func:`natrob.reference.paper_attack`, with the profile's ``PGD_STEPS``/``PGD_ALPHA``."""
from __future__ import annotations

from .. import reference
from .drawing import accuracies, dataset_name, pyplot

RESULTS = ("03-white-box", "03-table1")
PAPER_COLUMN = {"fgsm": "FGSM", "pgd-paper": "PGD"}  # attack id -> the paper's Table 1 column


def attacks(steps=None, alpha=None) -> list:
    """Table 1's attack specs: FGSM and the paper's PGD (``steps``/``alpha``: the profile's overrides or None)."""
    return [{"name": "fgsm", "id": "fgsm", "label": "FGSM"}, reference.paper_attack(steps, alpha)]


def table1_rows(label: str, res: dict, dataset: str) -> list:
    """Table 1's rows of one model from its ``evaluate`` result: counts beside the paper's figure (or None)."""
    return [{"model": label, "id": r["id"], "attack": r["attack"], "eps": r["eps"], "clean": res["clean"],
             "robust": r["robust"], "nfe_mean": r["nfe_mean"], "solver_failures": r["solver_failures"],
             "paper": reference.lookup(reference.table1(dataset, PAPER_COLUMN[r["id"]], label), r["eps"])}
            for r in res["rows"]]


def fig2_rows(label: str, res: dict) -> list:
    """Fig. 2's rows of one model from its DI²-FGSM ``evaluate`` result."""
    return [{"model": label, "eps": r["eps"], "robust": r["robust"]} for r in res["rows"]]


def payload(data, table1: list, fig2: list, clean: dict, batch_disagreement) -> dict:
    """The result payload: Table 1 and Fig. 2 rows, each model's clean test accuracy, and how often batched and
    one-at-a-time predictions of the ODE net differ (None without one)."""
    return {"dataset": data.describe(), "table1": table1, "fig2": fig2, "clean": clean,
            "batch_disagreement": batch_disagreement}


def fig2(payload, params):
    """Fig. 2: DI²-FGSM accuracy of each model against eps."""
    import seaborn as sns
    fig, ax = pyplot().subplots()
    sns.lineplot(data=accuracies(payload["fig2"], "robust"), x="eps", y="robust", hue="model", marker="o", ax=ax)
    ax.set_ylim(0, 1.02); ax.set_ylabel("accuracy"); ax.set_title(f"Fig. 2: DI²-FGSM ({dataset_name(payload)})")
    return fig


def table1(payload, params):
    """Table 1 as a plot: our FGSM and paper's-PGD accuracy of each model against eps (labels as they ran), one
    panel per model, with the paper's figures for the same model and attack beside them (black, dashed)."""
    rows = payload["table1"]
    models = list(dict.fromkeys(r["model"] for r in rows))
    fig, axes = pyplot().subplots(1, len(models), figsize=(5 * len(models), 3.8), sharey=True, squeeze=False)
    for ax, model in zip(axes[0], models):
        for i, attack in enumerate(dict.fromkeys(r["attack"] for r in rows if r["model"] == model)):
            mine = sorted((r for r in rows if r["model"] == model and r["attack"] == attack), key=lambda r: r["eps"])
            ours = [(r["eps"], r["robust"]["accuracy"]) for r in mine if r["robust"]["accuracy"] is not None]
            paper = [(r["eps"], r["paper"]) for r in mine if r.get("paper") is not None]
            color = f"C{i}"
            if ours:
                ax.plot(*zip(*ours), marker="o", color=color, label=f"{attack} (ours)")
            if paper:
                ax.plot(*zip(*paper), marker="s", color=color, ls="--", mfc="none", label=f"{attack} (paper)")
        ax.set(title=model, xlabel="eps (L-inf, pixels)", ylim=(0, 1.02))
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("accuracy")
    fig.suptitle(f"Table 1 as a plot, ours beside the paper's ({dataset_name(payload)})")
    fig.tight_layout()
    return fig


def table1_section(results, env) -> dict:
    """Report: Table 1, ours (count and interval) beside the paper's figure, per eps."""
    from ..stats import ci
    from .tables import pct, table
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


def fig2_section(results, env) -> dict:
    """Report: the DI²-FGSM figure with the paper's reading."""
    return {"paper_says": reference.numbers()["figure2"]["paper_says"]}


def cost(p: dict, u) -> dict:
    """Training ResNet50; FGSM and the paper's PGD at every Table 1 eps and DI²-FGSM on both models."""
    n, k, pgd = p["N_EVAL"], len(p["EPS_TABLE1"]), reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"])
    units = (k * (1 + pgd["steps"]) + len(p["DI2_EPS"]) * p["DI2_STEPS"], 0)
    return {"notebook": "03", "what": f"train ResNet50; FGSM + {pgd['label']} x {k} eps + DI2-FGSM on {n} points",
            "hours": u.train_h(p["RESNET50"]) + u.attack_h("odenet", n, units) + u.attack_h("resnet50", n, units)}
