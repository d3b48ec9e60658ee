"""Chapter 08 (notebook 08-the-papers-width): ODE nets by width and training length, and Table 1's fingerprint.

The sentences about the payload built by :func:`natrob.study.width.payload` from the notebook's steps, figures, report
section and cost row; see
:mod:`natrob.chapters`. Counts are count values: per-epoch cells (clean, exactly-zero input gradients in
float32 and float64, FGSM per eps), Table 1 of each width's last model, the worst case and the protocol variants
of the widest one. ``configurations`` holds percentages only (no counts): each configuration's Table 1 beside the
paper's and its RMS distance to it.
"""
from __future__ import annotations

from ..eps import at_eps, same_eps
from ..study.fingerprint import paper_at, quote_eps
from .drawing import dataset_name, legend_outside, pyplot

RESULT = "08-width"


def _pct(r) -> str:
    from ..stats import ci
    return ci(r["robust"]) if r and r["robust"]["k"] is not None else "not measured"


def _width_sentences(payload: dict, w: dict, eps: float) -> list:
    """The last model of one width at ``eps`` (FGSM, the paper's PGD, its random start) and what decides FGSM there;
    FGSM at the first and last stored epochs (every epoch: the cell table)."""
    ch, paper = w["channels"], payload["paper"]
    rows = payload["table1"][str(ch)]["rows"]
    cells = [c for c in payload["cells"] if c["channels"] == ch]
    partial = "" if w["epochs_done"] >= w["epochs_scheduled"] else \
        f" (trained {w['epochs_done']} of its {w['epochs_scheduled']} scheduled epochs)"
    acc = w["history"][-1]["test_acc"] if w["history"] else None
    s = (f"{ch} channels ({w['params']:,} parameters){partial}: clean accuracy {100 * acc:.1f}% on the "
         f"eval images; at eps = {eps:g} FGSM leaves {_pct(at_eps(rows['fgsm'], eps))}, {payload['pgd']['label']} "
         f"{_pct(at_eps(rows['pgd'], eps))} and its random start alone {_pct(at_eps(rows['noise'], eps))} "
         + (f"(paper: FGSM {paper_at(paper, 'fgsm', eps):.2f}%, PGD {paper_at(paper, 'pgd', eps):.2f}%)."
            if paper_at(paper, "fgsm", eps) is not None else "(the paper has no figure at this eps)."))
    if cells:
        last = cells[-1]
        s += (f" Its input gradient is exactly zero on {last['zero_grad_float32']['k']} of "
              f"{last['zero_grad_float32']['n']} points in float32 and {last['zero_grad_float64']['k']} in "
              f"float64; median logit margin {last['margin_median']:.3g}, largest {last['margin_max']:.3g}.")
    out = [s]
    if len(cells) >= 2:
        (e0, r0), (e1, r1) = [(c["epoch"], at_eps(c["fgsm"], eps)) for c in (cells[0], cells[-1])]
        out.append(f"{ch} channels, FGSM at eps = {eps:g}: {r0['robust']['k']}/{r0['robust']['n']} at epoch {e0}, "
                   f"{r1['robust']['k']}/{r1['robust']['n']} at epoch {e1} ({len(cells)} epochs in the cell table).")
    return out


def _nearest_sentences(payload: dict) -> list:
    configs = [c for c in payload["configurations"] if c["rms"] is not None]
    full = [c for c in configs if c["numbers"] == max(c["numbers"] for c in configs)] if configs else []
    if not full:
        return []
    best = full[0]
    out = [f"Nearest to the paper's Table 1 over all {best['numbers']} numbers: {best['config']} "
           f"({best['protocol']}), RMS distance {best['rms']:.1f} points."]
    correct = [c for c in full if c["correct"]]
    if correct and correct[0] is not best:
        out.append(f"Nearest under the correct threat model: {correct[0]['config']}, RMS {correct[0]['rms']:.1f} "
                   "points.")
    return out


def _worst_case_sentences(wc: dict | None) -> list:
    if not wc:
        return []
    failed = sorted({a for w in wc["worst"] for a in w["attacks_failed"]})
    first = wc["worst"][0]["eps"]
    return [f"The strongest evaluation of the {wc['channels']}-channel net (epoch {wc['epoch']}; "
            + ", ".join(r["attack"] for r in wc["rows"] if same_eps(r["eps"], first))
            + f"): worst case {_pct(wc['worst'][-1])} at eps = {wc['worst'][-1]['eps']:g} (every radius: the "
            f"worst-case table)" + (". Attacks that failed: " + ", ".join(failed) if failed else "") + "."]


def findings(payload: dict, eps: float | None = None) -> list:
    """The chapter's conclusions as sentences written from the payload's numbers: per width the last model's
    FGSM/PGD at ``eps`` and what decides FGSM (zero gradients, margins), the training-length trend of FGSM,
    the configuration nearest the paper's Table 1 and whether the worst case breaks it. Series are the section's
    tables, not sentences."""
    eps = quote_eps(payload["eps"]) if eps is None else eps
    out = [s for w in payload["widths"] for s in _width_sentences(payload, w, eps)]
    return out + _same_length(payload, eps) + _nearest_sentences(payload) + \
        _worst_case_sentences(payload.get("worst_case"))


def _same_length(payload: dict, eps: float) -> list:
    """One sentence comparing FGSM across widths at the longest training length every width has a cell for: the
    narrowest and the widest, and the direction (every width: the cell table)."""
    widths = [w["channels"] for w in payload["widths"]]
    epochs = [{c["epoch"] for c in payload["cells"] if c["channels"] == ch} for ch in widths]
    common = set.intersection(*epochs) if len(widths) > 1 else set()
    if not common:
        return []
    e = max(common)
    rows = [(ch, at_eps(next(c for c in payload["cells"] if c["channels"] == ch and c["epoch"] == e)["fgsm"], eps))
            for ch in widths]
    if any(r is None or r["robust"]["k"] is None for _, r in rows):
        return []
    ks = [r["robust"]["k"] for _, r in rows]
    trend = ("rises with width" if ks == sorted(ks) and ks[0] < ks[-1] else
             "falls with width" if ks == sorted(ks, reverse=True) and ks[0] > ks[-1] else "is not monotone in width")
    (c0, r0), (c1, r1) = rows[0], rows[-1]
    return [f"At the same training length (epoch {e}), FGSM at eps = {eps:g} leaves {r0['robust']['k']}/"
            f"{r0['robust']['n']} at {c0} channels and {r1['robust']['k']}/{r1['robust']['n']} at {c1}: the count "
            f"{trend} (every width, with 95% intervals: the cell table)."]


def width_training(payload, params):
    """Clean accuracy and FGSM (at eps 0.3, or the largest run) of every width by training epoch."""
    cells, eps = payload["cells"], quote_eps(payload["eps"])
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.6))
    for ch in sorted({c["channels"] for c in cells}):
        mine = [c for c in cells if c["channels"] == ch]
        ep = [c["epoch"] for c in mine]
        axes[0].plot(ep, [100 * (c["test_acc"] or 0) for c in mine], marker="o", label=f"{ch} ch")
        fg = [at_eps(c["fgsm"], eps)["robust"] for c in mine]
        axes[1].plot(ep, [100 * r["k"] / r["n"] for r in fg], marker="o", label=f"{ch} ch")
    paper = dict(zip(payload["paper"]["eps"], payload["paper"]["fgsm"]))
    if paper.get(eps) is not None:
        axes[1].axhline(paper[eps], color="k", ls=":", lw=1, label="paper")
    axes[0].set(xlabel="epoch", ylabel="clean accuracy (%)", title="clean accuracy (all eval images)")
    axes[1].set(xlabel="epoch", ylabel="robust (%)", title=f"FGSM at eps = {eps:g}", ylim=(-2, 102))
    fig.suptitle(f"ODE nets by width and training length ({dataset_name(payload)})")
    legend_outside(axes[1], fig, layout=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))  # room for the suptitle above the panel titles
    return fig


def width_fingerprint(payload, params):
    """The paper's Neural ODE FGSM and PGD curves over eps beside the four nearest configurations' (dashed: NOT
    the correct threat model)."""
    paper = payload["paper"]
    configs = [c for c in payload["configurations"] if c["rms"] is not None and c.get("pgd")][:4]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for ax, attack, title in ((axes[0], "fgsm", "FGSM"), (axes[1], "pgd", payload["pgd"]["label"])):
        ax.plot(paper["eps"], paper[attack], color="k", lw=2.5, marker="s", label="paper")
        for c in configs:
            rows = [r for r in c.get(attack) or [] if r["pct"] is not None]
            ax.plot([r["eps"] for r in rows], [r["pct"] for r in rows], marker="o",
                    ls="-" if c["correct"] else "--", label=f"{c['config']} (RMS {c['rms']:.0f})")
        ax.set(xlabel="eps (L-inf, pixels)", title=title, ylim=(-2, 102))
    axes[0].set_ylabel("robust accuracy (%)")
    fig.suptitle(f"Table 1's shape: the paper's Neural ODE and the nearest configurations ({dataset_name(payload)})",
                 fontsize=9)
    legend_outside(axes[1], fig, layout=False, fontsize=7)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return fig


def _g(v) -> str:
    return "–" if v is None else f"{v:.3g}"


def section(results, env) -> dict:
    """Report: the chapter's findings (sentences from the numbers), the cells and the nearest configurations."""
    from .tables import ci, table
    paragraphs, tables = [], []
    for r in results:
        paragraphs += r.get("findings") or []
        eps = quote_eps(r["eps"])
        tables.append(table([{"width": c["channels"], "epoch": c["epoch"],
                              "clean (all eval, %)": None if c["test_acc"] is None else f"{100 * c['test_acc']:.1f}",
                              "clean": ci(c["clean"]),
                              f"FGSM {eps:g}": ci(at_eps(c["fgsm"], eps)["robust"]),
                              "zero grad float32": ci(c["zero_grad_float32"]),
                              "zero grad float64": ci(c["zero_grad_float64"]),
                              **{k: _g(v) for k, v in (("margin p2", (c.get("margins") or {}).get("p2")),
                                                       ("margin median", c["margin_median"]),
                                                       ("margin max", c["margin_max"]),
                                                       ("|y(t1)| median", c["state_norm_median"]),
                                                       ("NFE", c["nfe_forward_mean"]))}} for c in r["cells"]]))
        rows = []
        for c in r["configurations"][:10]:
            row = {"configuration": c["config"], "protocol": c["protocol"],
                   "RMS to paper (points)": c["rms"], "numbers": c["numbers"]}
            for a in ("fgsm", "pgd"):
                for x in c.get(a) or []:
                    row[f"{a.upper()} {x['eps']:g} (%)"] = None if x["pct"] is None else round(x["pct"], 1)
            if any(c.get("note") for c in r["configurations"][:10]):
                row["note"] = c.get("note") or ""
            rows.append(row)
        tables.append(table(rows))
        if r.get("worst_case"):
            tables.append(table([{"width": r["worst_case"]["channels"], "epoch": r["worst_case"]["epoch"],
                                  "eps": w["eps"], "worst case": ci(w["robust"]),
                                  "attacks that failed": ", ".join(w["attacks_failed"]) or ""}
                                 for w in r["worst_case"]["worst"]]))
    return {"paragraphs": paragraphs, "tables": tables}


def cost(p: dict, u) -> dict:
    """Training every width (conv cost scales with channels squared against the unit 128-channel net), the
    per-epoch cells (two gradients and a forward per FGSM eps), Table 1 per width, and the worst case and
    protocols on the widest (attacks on survivors not counted)."""
    from ..study.width import WidthParams
    wp = WidthParams.from_params(p, p["N_EVAL"])
    steps, n, eps = wp.attack["steps"], p["N_EVAL"], len(wp.eps)
    epochs = int(p["WIDTH_TRAIN"]["epochs"])
    hours = sum((ch / 128) ** 2 * (u.train_h({"model": "odenet", "train": {"epochs": epochs}})
                                   + u.attack_h("odenet", n * epochs, (3, 1 + eps))
                                   + u.attack_h("odenet", n * eps, (1 + steps, 3))) for ch in wp.channels)
    proto = u.attack_h("odenet", p["WIDTH_PROTOCOL_N"], (5 * (eps + steps * len(wp.protocol_pgd_eps)), 5 * eps))
    return {"notebook": "08", "what": f"{len(wp.channels)} widths x {epochs} epochs: training, per-epoch cells, "
                                      f"Table 1; protocols on the widest", "hours": hours + proto}
