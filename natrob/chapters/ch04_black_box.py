"""Chapter 04 (notebook 04-black-box): Fig. 3, the decision-based Boundary Attack.

Payload, figure, report section and cost row; see :mod:`natrob.chapters`."""
from __future__ import annotations

from .. import reference
from .drawing import accuracies, dataset_name, pyplot
from ..stats import count

RESULT = "04-fig3"


def model_rows(label: str, found_mask, clean_mask, robust_counts: list, eps_grid: list, linf, l2, queries: int,
               wall_s: float) -> tuple:
    """(curve rows, summary row) of one model: per eps of ``eps_grid`` the count of points clean-correct with no
    example within eps (``robust_counts``), and the clean and found counts (bool masks over the n attacked
    points) with the median L-inf / L2 size of the examples found (None when none was)."""
    n = len(clean_mask)
    curves = [{"model": label, "eps": e, "robust": count(k, n)} for e, k in zip(eps_grid, robust_counts)]
    found = found_mask & clean_mask
    summary = {"model": label, "clean": count(int(clean_mask.sum()), n), "found": count(int(found.sum()), n),
               "median_linf": float(linf[found].median()) if found.any() else None,
               "median_l2": float(l2[found].median()) if found.any() else None, "queries": queries, "wall_s": wall_s}
    return curves, summary


def payload(data, curves: list, summary: list, per_sample: bool) -> dict:
    """The result payload: robust-accuracy curves and one summary row per model (:func:`model_rows`)."""
    return {"dataset": data.describe(), "curves": curves, "summary": summary, "per_sample": per_sample}


def fig3(payload, params):
    """Fig. 3: Boundary Attack, robust accuracy against the L∞ size of the example found."""
    import seaborn as sns
    fig, ax = pyplot().subplots()
    sns.lineplot(data=accuracies(payload["curves"], "robust"), x="eps", y="robust", hue="model", ax=ax)
    ax.set_ylim(0, 1.02); ax.set_xlabel("ε (L∞ size of the example found)"); ax.set_ylabel("accuracy")
    ax.set_title(f"Fig. 3: Boundary Attack, {params['BOUNDARY_QUERIES']} queries ({dataset_name(payload)})")
    return fig


def section(results, env) -> dict:
    """Report: Boundary Attack summary per model."""
    from ..stats import ci
    from .tables import table
    tables = [table([{"model": x["model"], "clean": ci(x["clean"]), "adversarial example found": ci(x["found"]),
                      "median L-inf": x.get("median_linf"), "median L2": x.get("median_l2"),
                      "queries": x.get("queries")} for x in r["summary"]])
              for r in results]
    return {"paper_says": reference.numbers()["figure3"]["paper_says"], "tables": tables}


def cost(p: dict, u) -> dict:
    """BOUNDARY_QUERIES forward queries per point on both models."""
    b = (0, p["BOUNDARY_QUERIES"])
    return {"notebook": "04",
            "what": f"Boundary, {p['BOUNDARY_QUERIES']} queries x {p['BOUNDARY_N']} points x 2 models",
            "hours": u.attack_h("odenet", p["BOUNDARY_N"], b) + u.attack_h("resnet50", p["BOUNDARY_N"], b)}
