"""Chapter 02 (notebook 02-step-size-sweep): Fig. 1, ResNets of step size h under a transferred FGSM.

Payload, figure, report section and cost row; see :mod:`natrob.chapters`."""
from __future__ import annotations

from .. import reference
from .drawing import accuracies, dataset_name, pyplot

RESULT = "02-fig1"


def rows_for(h: float, res: dict) -> list:
    """One row per setting of the ResNet with step size ``h`` from its ``evaluate`` result: clean, then the
    transferred FGSM per eps; each ``robust`` is a count value."""
    return [{"h": h, "setting": "clean", "robust": res["clean"]}] + [
        {"h": h, "setting": f"FGSM transfer eps={r['eps']:g}", "robust": r["robust"]} for r in res["rows"]]


def payload(data, source_clean_acc: float, rows: list) -> dict:
    """The result payload: the rows of every h (:func:`rows_for`) and the paper's reading of its Fig. 1."""
    return {"dataset": data.describe(), "source_clean_acc": source_clean_acc, "rows": rows,
            "paper_says": reference.numbers()["figure1"]["paper_says"]}


def fig1(payload, params):
    """Fig. 1: clean and transferred-FGSM accuracy of ResNets against their step size h."""
    import seaborn as sns
    fig, ax = pyplot().subplots()
    sns.lineplot(data=accuracies(payload["rows"], "robust"), x="h", y="robust", hue="setting", marker="o", ax=ax)
    ax.set_xscale("log"); ax.invert_xaxis(); ax.set_ylim(0, 1.02); ax.set_ylabel("accuracy")
    ax.set_title(f"Fig. 1: ResNet step size h ({dataset_name(payload)}, {params['FIG1_RESNET']['model']})")
    return fig


def section(results, env) -> dict:
    """Report: accuracy per step size h and setting."""
    from ..stats import ci
    from .tables import table
    tables = []
    for r in results:
        pivot = {}
        for row in r["rows"]:
            pivot.setdefault(row["h"], {"h": row["h"]})[row["setting"]] = ci(row["robust"])
        tables.append(table(list(pivot.values())))
    return {"paper_says": reference.numbers()["figure1"]["paper_says"], "tables": tables}


def cost(p: dict, u) -> dict:
    """Training the ResNets of FIG1_H not trained in chapter 01, and the transfer source."""
    rest = [h for h in p["FIG1_H"] if h not in p["LIP_H"]]
    return {"notebook": "02", "what": f"train {len(rest)} more {p['FIG1_RESNET']['model']} + transfer source",
            "hours": len(rest) * u.train_h(p["FIG1_RESNET"]) + u.train_h(p["FIG1_SOURCE"])}
