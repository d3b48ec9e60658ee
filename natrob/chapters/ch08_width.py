"""Chapter 08 (notebook 08-the-papers-width): ODE nets by width and training length, and Table 1's fingerprint.

The sentences about the payload built by :func:`natrob.width.build_payload`, figures, report section and cost row; see
:mod:`natrob.chapters`. Counts are count values: per-epoch cells (clean, exactly-zero input gradients in
float32 and float64, FGSM per eps), Table 1 of each width's last model, the worst case and the protocol variants
of the widest one. ``configurations`` holds percentages only (no counts): each configuration's Table 1 beside the
paper's and its RMS distance to it.
"""
from __future__ import annotations

from .. import reference
from ..fingerprint import paper_at, quote_eps
from .drawing import dataset_name, legend_outside, pyplot

RESULT = "08-width"


def _pct(r) -> str:
    from ..stats import ci
    return ci(r["robust"]) if r and r["robust"]["k"] is not None else "not measured"


def _at(rows, eps):
    return next((r for r in rows or [] if abs(float(r["eps"]) - eps) < 1e-9), None)


def findings(payload: dict, eps: float | None = None) -> list:
    """The chapter's conclusions as sentences written from the payload's numbers: per width the last model's
    FGSM/PGD at ``eps`` and what decides FGSM (zero gradients, margins), the training-length trend of FGSM,
    the configuration nearest the paper's Table 1 and whether the worst case breaks it."""
    out = []
    eps = quote_eps(payload["eps"]) if eps is None else eps
    paper = payload["paper"]
    pgd_label = payload["pgd"]["label"]
    for w in payload["widths"]:
        ch = w["channels"]
        t = payload["table1"][str(ch)]
        cells = [c for c in payload["cells"] if c["channels"] == ch]
        last = cells[-1] if cells else None
        partial = "" if w["epochs_done"] >= w["epochs_scheduled"] else \
            f" (trained {w['epochs_done']} of its {w['epochs_scheduled']} scheduled epochs)"
        acc = w["history"][-1]["test_acc"] if w["history"] else None
        s = (f"{ch} channels ({w['params']:,} parameters){partial}: clean accuracy {100 * acc:.1f}% on the "
             f"eval images; at eps = {eps:g} FGSM leaves {_pct(_at(t['rows']['fgsm'], eps))}, {pgd_label} "
             f"{_pct(_at(t['rows']['pgd'], eps))} and its random start alone {_pct(_at(t['rows']['noise'], eps))} "
             + (f"(paper: FGSM {paper_at(paper, 'fgsm', eps):.2f}%, PGD {paper_at(paper, 'pgd', eps):.2f}%)."
                if paper_at(paper, "fgsm", eps) is not None else "(the paper has no figure at this eps)."))
        if last is not None:
            s += (f" Its input gradient is exactly zero on {last['zero_grad_float32']['k']} of "
                  f"{last['zero_grad_float32']['n']} points in float32 and {last['zero_grad_float64']['k']} in "
                  f"float64; median logit margin {last['margin_median']:.3g}, largest {last['margin_max']:.3g}.")
        out.append(s)
        fg = [(c["epoch"], _at(c["fgsm"], eps)) for c in cells]
        if len(fg) >= 2:  # every epoch is a row of the cell table; the sentence names the ends
            (e0, r0), (e1, r1) = fg[0], fg[-1]
            out.append(f"{ch} channels, FGSM at eps = {eps:g}: {r0['robust']['k']}/{r0['robust']['n']} at epoch {e0}, "
                       f"{r1['robust']['k']}/{r1['robust']['n']} at epoch {e1} ({len(fg)} epochs in the cell table).")
    out += _same_length(payload, eps)
    configs = [c for c in payload["configurations"] if c["rms"] is not None]
    full = [c for c in configs if c["numbers"] == max(c["numbers"] for c in configs)] if configs else []
    if full:
        best = full[0]
        out.append(f"Nearest to the paper's Table 1 over all {best['numbers']} numbers: {best['config']} "
                   f"({best['protocol']}), RMS distance {best['rms']:.1f} points.")
        correct = [c for c in full if c["correct"]]
        if correct and correct[0] is not best:
            out.append(f"Nearest under the correct threat model: {correct[0]['config']}, RMS {correct[0]['rms']:.1f} "
                       "points.")
    wc = payload.get("worst_case")
    if wc:
        out.append(f"The strongest evaluation of the {wc['channels']}-channel net (epoch {wc['epoch']}; "
                   + ", ".join(r["attack"] for r in wc["rows"] if r["eps"] == wc["worst"][0]["eps"])
                   + "): worst case " + "; ".join(f"{_pct(w)} at eps = {w['eps']:g}" for w in wc["worst"])
                   + (". Attacks that failed: " + ", ".join(sorted({a for w in wc["worst"] for a in w["attacks_failed"]}))
                      if any(w["attacks_failed"] for w in wc["worst"]) else "") + ".")
    return out


def _same_length(payload: dict, eps: float) -> list:
    """One sentence comparing FGSM across widths at the longest training length every width has a cell for."""
    widths = [w["channels"] for w in payload["widths"]]
    epochs = [{c["epoch"] for c in payload["cells"] if c["channels"] == ch} for ch in widths]
    common = set.intersection(*epochs) if len(widths) > 1 else set()
    if not common:
        return []
    e = max(common)
    rows = [(ch, _at(next(c for c in payload["cells"] if c["channels"] == ch and c["epoch"] == e)["fgsm"], eps))
            for ch in widths]
    if any(r is None or r["robust"]["k"] is None for _, r in rows):
        return []
    ks = [r["robust"]["k"] for _, r in rows]
    trend = ("rises with width" if ks == sorted(ks) and ks[0] < ks[-1] else
             "falls with width" if ks == sorted(ks, reverse=True) and ks[0] > ks[-1] else "is not monotone in width")
    return [f"At the same training length (epoch {e}), FGSM at eps = {eps:g} leaves "
            + ", ".join(f"{r['robust']['k']}/{r['robust']['n']} at {ch} channels" for ch, r in rows)
            + f": the count {trend} (95% intervals in the cell table)."]


def width_training(payload, params):
    """Clean accuracy and FGSM (at eps 0.3, or the largest run) of every width by training epoch."""
    cells, eps = payload["cells"], quote_eps(payload["eps"])
    fig, axes = pyplot().subplots(1, 2, figsize=(10, 3.6))
    for ch in sorted({c["channels"] for c in cells}):
        mine = [c for c in cells if c["channels"] == ch]
        ep = [c["epoch"] for c in mine]
        axes[0].plot(ep, [100 * (c["test_acc"] or 0) for c in mine], marker="o", label=f"{ch} ch")
        fg = [next(r["robust"] for r in c["fgsm"] if abs(r["eps"] - eps) < 1e-9) for c in mine]
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
                              f"FGSM {eps:g}": ci(next(f["robust"] for f in c["fgsm"] if abs(f["eps"] - eps) < 1e-9)),
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
    return {"paragraphs": paragraphs, "tables": tables}


def cost(p: dict, u) -> dict:
    """Training every width (conv cost scales with channels squared against the unit 128-channel net), the
    per-epoch cells (two gradients and a forward per FGSM eps), Table 1 per width, and the worst case and
    protocols on the widest (attacks on survivors not counted)."""
    pgd = reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"])
    n, eps = p["N_EVAL"], len(p["EPS_TABLE1"])
    hours = 0.0
    for ch in p["WIDTH_CHANNELS"]:
        scale = (int(ch) / 128) ** 2
        epochs = int(p["WIDTH_TRAIN"]["epochs"])
        hours += scale * (u.train_h({"model": "odenet", "train": {"epochs": epochs}})
                          + u.attack_h("odenet", n * epochs, (3, 1 + eps))
                          + u.attack_h("odenet", n * eps, (1 + pgd["steps"], 3)))
    proto = u.attack_h("odenet", p["WIDTH_PROTOCOL_N"], (5 * (eps + pgd["steps"] * len(p["WIDTH_PROTOCOL_PGD_EPS"])),
                                                         5 * eps))
    return {"notebook": "08", "what": f"{len(p['WIDTH_CHANNELS'])} widths x {p['WIDTH_TRAIN']['epochs']} epochs: "
                                      f"training, per-epoch cells, Table 1; protocols on the widest",
            "hours": hours + proto}
