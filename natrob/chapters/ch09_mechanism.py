"""Chapter 09 (notebook 09-why-no-gradient): training length x evaluation precision, and the paper's Table 1.

Payload (built by :func:`natrob.study.mechanism.payload` from the notebook's steps), figures, findings
(:mod:`natrob.chapters.mechanism_text`), report section and cost row; see
:mod:`natrob.chapters`. Counts are count values: per-epoch cells (clean, exactly-zero gradients per gradient setting,
FGSM per eps under float32 and AMP), the saturation map's rows, Table 1 of every pipeline and the strongest
evaluation. ``configurations`` holds percentages only: each Table 1 beside the paper's and its RMS distance.
"""
from __future__ import annotations

from ..study.fingerprint import quote_eps
from .mechanism_text import GRADIENT_NAMES, findings, k_of_n, readable_interval, robust_at  # noqa: F401  (findings)
from .drawing import dataset_name, legend_outside, pyplot

RESULT = "09-mechanism"


def saturation_map(payload, params):
    """Exactly-zero input gradients (alone, solid; batched, dashed) and the batched gradient's agreement with the
    point's own, against the median logit margin, one curve per gradient setting (precision, or CE of
    probabilities)."""
    m = payload["map"]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8))
    for proto in m["protocols"]:
        rows = sorted((r for r in m["rows"] if r["protocol"] == proto), key=lambda r: r["scale"])
        xs = [r["margin"]["p50"] for r in rows]
        line, = axes[0].plot(xs, [r["zero_alone"]["k"] / max(1, r["n_correct"]) for r in rows], marker="o",
                             label=GRADIENT_NAMES.get(proto, proto))
        axes[0].plot(xs, [r["zero_batched"]["k"] / max(1, r["n_correct"]) for r in rows], ls="--",
                     color=line.get_color())
        axes[1].plot(xs, [r["own_share"]["median"] if r["own_share"]["median"] is not None else float("nan")
                          for r in rows], marker="o", color=line.get_color(), label=GRADIENT_NAMES.get(proto, proto))
    axes[0].set(xscale="log", xlabel="median logit margin (logits x K)", ylabel="share of correct points",
                title="exactly-zero input gradient (solid: alone; dashed: batched)", ylim=(-0.03, 1.03))
    axes[1].set(xscale="log", xlabel="median logit margin (logits x K)", ylabel="median cosine",
                title="batched gradient vs the point's own (float64, alone)", ylim=(-1.05, 1.05))
    fig.suptitle(f"Where the paper's attack loses its gradient ({dataset_name(payload)})")
    legend_outside(axes[1], fig, layout=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def margin_trend(payload, params):
    """Median margin (p10 to p90 shaded) against the summed learning rate, with both fits to the paper's."""
    import numpy as np
    cells, tr = payload["cells"], payload.get("trend")
    fig, ax = pyplot().subplots(figsize=(6.5, 3.8))
    s = [c["sum_lr"] for c in cells]
    ax.fill_between(s, [c["margins"]["p10"] for c in cells], [c["margins"]["p90"] for c in cells], alpha=0.2,
                    label="p10 to p90")
    ax.plot(s, [c["margins"]["p50"] for c in cells], marker="o", color="k", label="median (measured)")
    paper_cells = (payload.get("paper_schedule") or {}).get("cells") or []
    if paper_cells:
        ax.plot([c["sum_lr"] for c in paper_cells], [c["margins"]["p50"] for c in paper_cells], marker="s",
                color="C3", label="median, the paper's schedule (Adam 1e-3, batch 32)")
    for i, ch in enumerate(sorted({w["channels"] for w in payload.get("widths") or []})):
        ws = [w for w in payload["widths"] if w["channels"] == ch and w["margins"]["p50"] is not None]
        ax.plot([w["sum_lr"] for w in ws], [w["margins"]["p50"] for w in ws], marker="^", ls=":", color=f"C{4 + i}",
                label=f"median, {ch} ch (notebook 08's net)")
    if tr:
        grid = np.geomspace(min(s), tr["target"], 50)
        for name, f in (("linear", lambda v: v), ("log", np.log)):
            fit = tr[name]
            if fit["slope"] is not None:
                ax.plot(grid, fit["intercept"] + fit["slope"] * f(grid), ls="--", label=f"{name} fit")
                if readable_interval(fit, tr["n"])[0]:
                    ax.errorbar([tr["target"]], [fit["at_target"]], yerr=[[fit["at_target"] - fit["interval"][0]],
                                                                          [fit["interval"][1] - fit["at_target"]]],
                                fmt="s", capsize=3)
        ax.axvline(tr["target"], color="grey", ls=":", lw=1, label="paper's summed lr")
    ax.set(xscale="log", xlabel="summed learning rate", ylabel="logit margin",
           title=f"Margins grow with training ({dataset_name(payload)})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fingerprint(payload, params):
    """The paper's Neural ODE FGSM and PGD curves beside the nearest real pipelines (solid) and the scaled-logit
    and assembled references (dashed)."""
    paper = payload["paper"]
    real = [c for c in payload["configurations"] if c["kind"] == "pipeline" and c["rms"] is not None][:3]
    other = [c for c in payload["configurations"] if c["kind"] != "pipeline" and c["rms"] is not None][:2]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, attack, title in ((axes[0], "fgsm", "FGSM"), (axes[1], "pgd", payload["pgd"]["label"])):
        ax.plot(paper["eps"], paper[attack], color="k", lw=2.5, marker="s", label="paper")
        for c in real + other:
            rows = [r for r in c.get(attack) or [] if r["pct"] is not None]
            ax.plot([r["eps"] for r in rows], [r["pct"] for r in rows], marker="o",
                    ls="-" if c["kind"] == "pipeline" else "--", label=f"{c['config']} (RMS {c['rms']:.0f})")
        ax.set(xlabel="eps (L-inf, pixels)", title=title, ylim=(-2, 102))
    axes[0].set_ylabel("robust accuracy (%)")
    fig.suptitle(f"Table 1: the paper and real pipelines ({dataset_name(payload)})", fontsize=9)
    legend_outside(axes[1], fig, layout=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def _trend_table(tr: dict):
    """The two fits of the median margin against the summed learning rate, extrapolated to the paper's, with the
    prediction interval where :func:`readable_interval` finds it informative (else why not)."""
    from .tables import table
    rows = []
    for name in ("linear", "log"):
        fit = tr[name]
        iv, why = readable_interval(fit, tr["n"])
        rows.append({"fit": name, "epochs": tr["n"], "slope": fit["slope"], "intercept": fit["intercept"],
                     "RSS": fit["rss"], f"median margin at sum lr {tr['target']:.0f}": fit["at_target"],
                     "95% prediction interval": f"{iv[0]:.1f} to {iv[1]:.1f}" if iv else why})
    return table(rows)


def _cells_table(r: dict):
    from .tables import ci, table
    grads, e = [g for g in r["protocols"] if any(g in c["zero_grad"] for c in r["cells"])], quote_eps(r["eps"])
    return table([{"schedule": "paper's (Table A1)" if c["id"].startswith("paper-") else "main",
                   "epoch": c["epoch"], "sum lr": round(c["sum_lr"], 2), "clean (all test, %)": _pct(c["test_acc"]),
                   "clean": ci(c["clean"]), **_margins(c["margins"]),
                   **{f"zero grad {GRADIENT_NAMES.get(g, g)}": k_of_n(c["zero_grad"].get(g)) for g in grads},
                   f"FGSM {e:g} float32": k_of_n(robust_at(c["fgsm"]["float32"], e)),
                   f"FGSM {e:g} AMP": k_of_n(robust_at(c["fgsm"]["float16-amp"], e)),
                   "cos(FGSM, PGD) median": c["fgsm_pgd_cosine"]["median"], "NFE": c["nfe"]}
                  for c in r["cells"] + ((r.get("paper_schedule") or {}).get("cells") or [])])


def _pct(v):
    return None if v is None else round(100 * v, 2)


def _margins(m: dict) -> dict:
    return {f"margin {k}": round(v, 2) if v is not None else None for k, v in m.items()}


def _configurations_table(r: dict):
    from .tables import table
    return table([{"configuration": c["config"], "kind": c["kind"], "RMS to paper (points)": c["rms"],
                   **{f"{a.upper()} {x['eps']:g} (%)": None if x["pct"] is None else round(x["pct"], 1)
                      for a in ("fgsm", "pgd") for x in c.get(a) or []}} for c in r["configurations"]])


def section(results, env) -> dict:
    """Report: the findings (the answer first), then every series as a table: the per-epoch cells, the margin
    trend, the widths' margins, the saturation thresholds, the configurations ranked and the strongest evaluation."""
    from .tables import ci, table
    paragraphs, tables = [], []
    for r in results:
        paragraphs += r.get("findings") or []
        tables.append(_cells_table(r))
        if r.get("trend"):
            tables.append(_trend_table(r["trend"]))
        if r.get("widths"):
            tables.append(table([{"channels": w["channels"], "epoch": w["epoch"], "lr": w["lr"],
                                  "sum lr": round(w["sum_lr"], 2), "clean (all test, %)": _pct(w["test_acc"]),
                                  **_margins(w["margins"])} for w in r["widths"]]))
        tables.append(table([{"gradient": GRADIENT_NAMES.get(g, g), "median margin, half zero alone": t["alone"],
                              "median margin, half zero batched": t["batched"]}
                             for g, t in r["map"]["thresholds"].items()]))
        tables.append(_configurations_table(r))
        if r.get("strongest"):
            tables.append(table([{"attack": x.get("pipeline") or x["attack"], "eps": x["eps"],
                                  "robust": ci(x["robust"]), "error": x["error"] or ""}
                                 for x in r["strongest"]["rows"]]))
    return {"paragraphs": paragraphs, "tables": tables}


def cost(p: dict, u) -> dict:
    """Training the measured net (its conv cost against the unit 128-channel net), the cells, the map and the
    pipelines' Table 1 (attacks on survivors not counted)."""
    from ..study.mechanism_params import MechanismParams
    mp = MechanismParams.from_params(p, p["N_EVAL"])
    scale = (int(mp.model["kwargs"]["channels"]) / 128) ** 2
    n, eps = p["N_EVAL"], len(mp.eps)
    epochs = int(mp.until or mp.model["train"]["epochs"])
    cells = len(mp.cell_epochs or range(epochs))
    tables = len(mp.table1_scales) + len(mp.pipelines) * len(mp.pipeline_epochs or [1])
    hours = scale * (u.train_h({"model": "odenet", "train": {"epochs": epochs}})
                     + u.attack_h("odenet", n * cells, (8, 2 + 2 * eps))
                     + u.attack_h("odenet", mp.map_n, (11 * len(mp.scales), 11))
                     + u.attack_h("odenet", n * eps * tables, (1 + mp.attack["steps"], 3)))
    return {"notebook": "09", "what": f"{epochs} epochs of one net, {cells} cells, the saturation map, {tables} "
                                      f"Table 1s", "hours": hours}
