"""Table 1's fingerprint as numbers: a configuration's rows in percent, the paper's Neural ODE row, and one
distance between them (RMS in percentage points over the numbers both have), used by notebooks 07, 08 and 09
alike; and which eps their sentences quote. Measuring a model's Table 1 is :func:`natrob.study.protocols.table1`."""
from __future__ import annotations

from ..eps import same_eps


def quote_eps(eps_list) -> float:
    """The radius sentences quote: the paper's headline 0.3 where it was run, else the largest."""
    eps = [float(e) for e in eps_list]
    return 0.3 if any(same_eps(e, 0.3) for e in eps) else max(eps)


def percentages(rows) -> list:
    """[{eps, pct}] of rows holding count values ({eps, robust}); pct None where not measured."""
    return [{"eps": r["eps"], "pct": None if r["robust"]["k"] is None or not r["robust"]["n"]
             else 100 * r["robust"]["k"] / r["robust"]["n"]} for r in rows or []]


def paper_row(dataset: str) -> dict:
    """The paper's Neural ODE Table 1 (percent) for the paper dataset ``dataset`` stands in for:
    {"eps": [...], "fgsm": [% per eps], "pgd": [% per eps]} (lists, so the payload survives JSON)."""
    from .. import reference
    fgsm = reference.table1(dataset, "FGSM", "Neural ODE")
    pgd = reference.table1(dataset, "PGD", "Neural ODE")
    eps = sorted(fgsm)
    return {"eps": eps, "fgsm": [100 * fgsm[e] for e in eps], "pgd": [100 * pgd[e] for e in eps]}


def paper_at(paper: dict, attack: str, eps: float):
    """The paper's percentage for ``attack`` ('fgsm' or 'pgd') at ``eps``, or None where it has none."""
    return next((v for e, v in zip(paper["eps"], paper[attack]) if same_eps(e, eps)), None)


def distance(rows: dict, paper: dict) -> dict:
    """RMS distance in percentage points between a configuration's Table 1 ({"fgsm": [{eps, pct}], "pgd":
    [...]}, see :func:`percentages`) and the paper's, over the numbers both have: {"rms": float or None,
    "numbers": how many}."""
    diffs = []
    for attack in ("fgsm", "pgd"):
        for r in rows.get(attack) or []:
            ref = paper_at(paper, attack, float(r["eps"]))
            if ref is not None and r.get("pct") is not None:
                diffs.append(r["pct"] - ref)
    if not diffs:
        return {"rms": None, "numbers": 0}
    return {"rms": (sum(d * d for d in diffs) / len(diffs)) ** 0.5, "numbers": len(diffs)}
