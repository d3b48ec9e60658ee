"""Chapter 05 (notebook 05-adversarial-training): Table 2, adversarially trained baselines against the Neural ODE.

Payload, figure, report section and cost row; see :mod:`natrob.chapters`."""
from __future__ import annotations

from .. import reference
from .drawing import accuracies, dataset_name, legend_outside, pyplot

RESULT = "05-table2"
PAPER_CLEAN, PAPER_ROBUST = "paper CIFAR-10 clean", "paper CIFAR-10 robust"  # the paper's Table 2: CIFAR-10, 8/255


def row(model: str, training: str, res: dict, eps: float, train_s_per_epoch: float) -> dict:
    """One Table 2 row from an ``evaluate`` result of PGD-20: clean and robust counts beside the paper's figures
    for that training (None where the paper has none). The paper's Table 2 is on CIFAR-10 at ε = 8/255, whatever
    data this row is on, and its keys say so."""
    paper = {r["training"]: r for r in reference.table2()}.get(training, {})
    return {"model": model, "training": training, "eps": eps, "clean": res["clean"], "robust": res["rows"][0]["robust"],
            "train_s_per_epoch": train_s_per_epoch,
            PAPER_CLEAN: paper["clean"] / 100 if "clean" in paper else None,
            PAPER_ROBUST: paper["pgd20"] / 100 if "pgd20" in paper else None}


def payload(data, rows: list) -> dict:
    """The result payload: one row per trained model (:func:`row`)."""
    return {"dataset": data.describe(), "rows": rows}


def table2(payload, params):
    """Table 2: clean and PGD-20 accuracy per training method, ours beside the paper's."""
    import seaborn as sns
    fig, ax = pyplot().subplots(figsize=(9, 4))
    long = accuracies(payload["rows"], "clean", "robust").melt(
        id_vars=["training"], value_vars=["clean", "robust", PAPER_CLEAN, PAPER_ROBUST], var_name="what",
        value_name="accuracy")
    sns.barplot(data=long, y="training", x="accuracy", hue="what", ax=ax)
    ax.set_xlim(0, 1)
    ax.set_title(f"Table 2 ({dataset_name(payload)}, PGD-20 at eps={params['AT_EPS']:.4g}; paper: CIFAR-10, 8/255)")
    legend_outside(ax, fig, title=None, fontsize=8)  # the bars reach across the whole [0, 1] range
    return fig


def section(results, env) -> dict:
    """Report: clean and PGD-20 accuracy per training method."""
    from ..stats import ci
    from .tables import pct, table
    tables = [table([{"model": x["model"], "training": x["training"], "eps": x["eps"], "clean": ci(x["clean"]),
                      "robust (PGD-20)": ci(x["robust"]), "paper, CIFAR-10 clean (%)": pct(x.get(PAPER_CLEAN)),
                      "paper, CIFAR-10 robust (%)": pct(x.get(PAPER_ROBUST)),
                      "train s/epoch": x.get("train_s_per_epoch")}
                     for x in r["rows"]])
              for r in results]
    return {"tables": tables}


def cost(p: dict, u) -> dict:
    """The four Table 2 trainers (their adversarial steps per batch counted) and PGD-20 on five models."""
    from ..train import table2_configs
    at, n = p["AT_MODEL"], p["N_EVAL"]
    factors = {"standard": 1, "pgd_at": 1 + p["AT_STEPS"], "trades": 2 + p["AT_STEPS"], "yopo": p["YOPO_M"]}
    at_h = sum(u.train_h(at) * factors[m] for m in table2_configs(at, p["AT_EPS"], p["AT_ALPHA"], p["AT_STEPS"],
                                                                    p["TRADES_BETA"], p["YOPO_M"], p["YOPO_N"]))
    return {"notebook": "05", "what": "4 Table 2 trainers (adversarial steps per batch counted) + PGD-20 on 5 models",
            "hours": at_h + 4 * u.attack_h(at["model"], n, (20, 0)) + u.attack_h("odenet", n, (20, 0))}
