"""Chapter 08 (notebook 08-the-papers-width): ODE nets by width and training length, and Table 1's fingerprint.

Payload (built by :func:`natrob.width.build_payload`), figures, report section and cost row; see
:mod:`natrob.chapters`. Counts are count values: per-epoch cells (clean, exactly-zero input gradients in
float32 and float64, FGSM per eps), Table 1 of each width's last model, the worst case and the protocol variants
of the widest one. ``configurations`` holds percentages only (no counts): each configuration's Table 1 beside the
paper's and its RMS distance to it.
"""
from __future__ import annotations

from .. import reference
from ..figures import dataset_name, legend_outside, pyplot

RESULT = "08-width"


def payload(params: dict, data, x, y, progress: bool = True) -> dict:
    """The result payload (:func:`natrob.width.build_payload`)."""
    from ..width import build_payload
    return build_payload(params, data, x, y, progress)


def _say_eps(payload) -> float:
    return 0.3 if any(abs(e - 0.3) < 1e-9 for e in payload["eps"]) else max(payload["eps"])


def width_training(payload, params):
    """Clean accuracy and FGSM (at eps 0.3, or the largest run) of every width by training epoch."""
    cells, eps = payload["cells"], _say_eps(payload)
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


def section(results, env) -> dict:
    """Report: the chapter's findings (sentences from the numbers), the cells and the nearest configurations."""
    from ..report.tables import ci, table
    paragraphs, tables = [], []
    for r in results:
        paragraphs += r.get("findings") or []
        eps = _say_eps(r)
        tables.append(table([{"width": c["channels"], "epoch": c["epoch"], "clean (all eval)": c["test_acc"],
                              "clean": ci(c["clean"]),
                              f"FGSM {eps:g}": ci(next(f["robust"] for f in c["fgsm"] if abs(f["eps"] - eps) < 1e-9)),
                              "zero grad float32": ci(c["zero_grad_float32"]),
                              "zero grad float64": ci(c["zero_grad_float64"]), "margin p2": (c.get("margins") or {}).get("p2"), "margin median": c["margin_median"],
                              "margin max": c["margin_max"], "|y(t1)| median": c["state_norm_median"],
                              "NFE": c["nfe_forward_mean"]} for c in r["cells"]]))
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
