"""Chapter 09 (notebook 09-why-no-gradient): training length x evaluation precision, and the paper's Table 1.

Payload (built by :func:`natrob.mechanism.build_payload`), figures, findings, report section and cost row; see
:mod:`natrob.chapters`. Counts are count values: per-epoch cells (clean, exactly-zero gradients per protocol,
FGSM per eps under float32 and AMP), the saturation map's rows, Table 1 of every pipeline and the strongest
evaluation. ``configurations`` holds percentages only: each Table 1 beside the paper's and its RMS distance.
"""
from __future__ import annotations

import re

from .. import reference
from ..fingerprint import quote_eps
from .drawing import dataset_name, legend_outside, pyplot

RESULT = "09-mechanism"
PROTOCOL_NAMES = {"float32": "float32 (paper's attack)", "probabilities": "CE of probabilities",
                  "bfloat16-autocast": "bfloat16 autocast", "float16-amp": "float16 AMP",
                  "float16-amp-cpu-kernels": "float16 AMP, CPU kernels", "float64": "float64"}


def _k(c) -> str:
    return "–" if c is None or c["k"] is None else f"{c['k']}/{c['n']}"


def _at(rows, eps):
    return next((r["robust"] for r in rows if abs(r["eps"] - eps) < 1e-9), None)


def _paper_schedule_sentence(p: dict, cells: list, e: float) -> list:
    """The paper's own schedule beside the main one, at the nearest summed learning rate the main one has."""
    ps = p.get("paper_schedule")
    if not ps or not ps.get("cells"):
        return []
    pc = ps["cells"]
    last = pc[-1]
    near = min(cells, key=lambda c: abs(c["sum_lr"] - last["sum_lr"]))
    return [f"The paper's own schedule (Adam 1e-3, batch 32), {ps['epochs_done']} of {ps['epochs_scheduled']} epochs "
            f"(summed learning rate {pc[0]['sum_lr']:.3g} to {last['sum_lr']:.3g}): median margin "
            f"{pc[0]['margins']['p50']:.2f} to {last['margins']['p50']:.2f}, test accuracy "
            f"{100 * (last['test_acc'] or 0):.1f}%, FGSM at eps = {e:g} {_k(_at(last['fgsm']['float32'], e))} "
            f"(float32); the main schedule at summed rate {near['sum_lr']:.3g}: median {near['margins']['p50']:.2f}."]


def _width_sentence(p: dict, cells: list) -> list:
    """Notebook 08's widths beside this chapter's net at the same summed learning rates: does margin per unit of
    summed rate carry over across widths?"""
    ws = [w for w in p.get("widths") or [] if w["margins"]["p50"] is not None]
    if not ws:
        return []
    main = {round(c["sum_lr"], 6): c for c in cells if c["margins"]["p50"]}
    per_width = [f"{ch} ch " + ", ".join(f"{w['margins']['p50']:.2f} at {w['sum_lr']:.3g}"
                                          for w in ws if w["channels"] == ch)
                 for ch in sorted({w["channels"] for w in ws})]
    same = [w for w in ws if round(w["sum_lr"], 6) in main]
    out = (f"Median margin against summed learning rate across the widths of notebook 08 (every epoch in the model "
           f"store, the same {p['n']['cells']} points): " + "; ".join(per_width) + ".")
    if same:
        w = max(same, key=lambda v: (v["channels"], v["sum_lr"]))
        c = main[round(w["sum_lr"], 6)]
        out += (f" At summed rate {w['sum_lr']:.3g}, the {w['channels']}-channel net's median is "
                f"{w['margins']['p50'] / c['margins']['p50']:.2f}x this chapter's {p['model']['kwargs']['channels']}"
                f"-channel net's ({w['margins']['p50']:.2f} against {c['margins']['p50']:.2f}).")
    else:
        out += " No epoch of this chapter's net sits at the same summed rate, so no ratio is given."
    return [out]


def findings(p: dict) -> list:
    """Sentences written from the payload's numbers: the trend, the thresholds, the batch, the nearest real
    pipeline and what the strongest evaluation made of it."""
    out = []
    cells, tr, e = p["cells"], p.get("trend"), quote_eps(p["eps"])
    first, last = cells[0], cells[-1]
    out.append(f"Over {p['training']['epochs_done']} of {p['training']['epochs_scheduled']} scheduled epochs "
               f"(summed learning rate {first['sum_lr']:.1f} to {last['sum_lr']:.1f}), the median logit margin of "
               f"correctly classified points went from {first['margins']['p50']:.2f} to {last['margins']['p50']:.2f} "
               f"(p2 {last['margins']['p2']:.2f}, max {last['margins']['max']:.2f}); FGSM at eps = {e:g} left "
               + ", ".join(f"{_k(_at(c['fgsm']['float32'], e))}" for c in cells)
               + " under float32 and " + ", ".join(f"{_k(_at(c['fgsm']['float16-amp'], e))}" for c in cells)
               + " under float16 AMP, epoch by epoch.")
    out += _paper_schedule_sentence(p, cells, e)
    out += _width_sentence(p, cells)
    if tr and tr["log"]["interval"] and tr["linear"]["interval"]:
        lin, log = tr["linear"], tr["log"]
        out.append(f"Extrapolated to the paper's summed learning rate of {tr['target']:.0f} from {tr['n']} epochs, "
                   f"the median margin would be {lin['at_target']:.1f} (95% prediction interval "
                   f"{lin['interval'][0]:.1f} to {lin['interval'][1]:.1f}) if it grows linearly, "
                   f"{log['at_target']:.1f} ({log['interval'][0]:.1f} to {log['interval'][1]:.1f}) if it grows with "
                   f"the logarithm; residual sums of squares {lin['rss']:.2g} (linear) and {log['rss']:.2g} (logarithmic)"
                   + (f": {tr['n']} epochs cannot tell the two apart." if tr["n"] < 5 else "."))
    elif tr:
        out.append(f"Only {tr['n']} epochs are stored: too few for an extrapolation with an interval.")
    m = p["map"]
    said = []
    for proto, th in m["thresholds"].items():
        name = PROTOCOL_NAMES.get(proto, proto)
        top = max(r["margin"]["p50"] or 0 for r in m["rows"] if r["protocol"] == proto)
        said.append(f"{name} at a median margin of {th['alone']:.1f}" if th["alone"] is not None
                    else f"{name} not up to {top:.0f}")
    out.append("Half of the correctly classified points get an exactly-zero input gradient, each point alone: "
               + "; ".join(said) + ".")
    batched = [f"{PROTOCOL_NAMES.get(proto, proto)} at {th['batched']:.1f}" for proto, th in m["thresholds"].items()
               if th["batched"] is not None]
    share = [r for r in m["rows"] if r["protocol"] == "float32" and r["own_share"]["median"] is not None]
    low = next((r for r in share if r["own_share"]["median"] < 0.5), None)
    out.append("In a batch (one shared step size), " + ("half of them are exactly zero for "
               + "; ".join(batched) if batched else "no protocol reached half exactly-zero gradients")
               + (f"; from a median margin of {low['margin']['p50']:.1f} on, the median cosine between a point's "
                  f"batched float32 gradient and its own (float64, alone) is {low['own_share']['median']:.2f}: FGSM "
                  f"steps mostly along its batch-mates' gradients" if low else "") + ".")
    real = [c for c in p["configurations"] if c["kind"] == "pipeline" and c["rms"] is not None]
    if real:
        best = real[0]
        out.append(f"The real pipeline nearest the paper's Table 1 is {best['config']}: RMS {best['rms']:.1f} "
                   f"percentage points over {best['numbers']} numbers"
                   + (f" (the next: {real[1]['config']}, RMS {real[1]['rms']:.1f})" if len(real) > 1 else "") + ".")
    ref = next((c for c in p["configurations"] if c["kind"] == "assembled"), None)
    scaled = [c for c in p["configurations"] if c["kind"] == "scaled" and c["rms"] is not None]
    if ref is not None:
        out.append(f"For reference, the assembled 'no usable gradient' row is at RMS {ref['rms']:.1f}"
                   + (f", and the same net with its logits scaled to longer-training margins at "
                      + ", ".join(f"{re.search(r'logits x ([^ ,]+)', c['config']).group(1)}x: {c['rms']:.1f}"
                                  for c in scaled) if scaled else "") + ".")
    s = p.get("strongest")
    if s:
        parts = [f"{r['attack']} leaves {_k(r['robust'])} at eps = {r['eps']:g}" for r in s["rows"]]
        out.append(f"The strongest evaluation of {s['config']} on {s['n']} points: " + "; ".join(parts) + ".")
    return out


def saturation_map(payload, params):
    """Exactly-zero input gradients (alone, solid; batched, dashed) and the batched gradient's agreement with the
    point's own, against the median logit margin, one curve per protocol."""
    m = payload["map"]
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 3.8))
    for proto in m["protocols"]:
        rows = sorted((r for r in m["rows"] if r["protocol"] == proto), key=lambda r: r["scale"])
        xs = [r["margin"]["p50"] for r in rows]
        line, = axes[0].plot(xs, [r["zero_alone"]["k"] / max(1, r["n_correct"]) for r in rows], marker="o",
                             label=PROTOCOL_NAMES.get(proto, proto))
        axes[0].plot(xs, [r["zero_batched"]["k"] / max(1, r["n_correct"]) for r in rows], ls="--",
                     color=line.get_color())
        axes[1].plot(xs, [r["own_share"]["median"] if r["own_share"]["median"] is not None else float("nan")
                          for r in rows], marker="o", color=line.get_color(), label=PROTOCOL_NAMES.get(proto, proto))
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
                if fit["interval"]:
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


def section(results, env) -> dict:
    """Report: the findings, the per-epoch cells, the saturation thresholds and the configurations ranked."""
    from .tables import ci, table
    paragraphs, tables = [], []
    for r in results:
        paragraphs += r.get("findings") or []
        protos, e = [p for p in r["protocols"] if any(p in c["zero_grad"] for c in r["cells"])], quote_eps(r["eps"])
        tables.append(table([{"schedule": "paper's (Table A1)" if c["id"].startswith("paper-") else "main",
                              "epoch": c["epoch"], "sum lr": round(c["sum_lr"], 2),
                              "clean (all test, %)": None if c["test_acc"] is None else round(100 * c["test_acc"], 2),
                              "clean": ci(c["clean"]), **{f"margin {k}": round(v, 2) if v is not None else None
                                                          for k, v in c["margins"].items()},
                              **{f"zero grad {PROTOCOL_NAMES.get(p, p)}": _k(c["zero_grad"].get(p)) for p in protos},
                              f"FGSM {e:g} float32": _k(_at(c["fgsm"]["float32"], e)),
                              f"FGSM {e:g} AMP": _k(_at(c["fgsm"]["float16-amp"], e)),
                              "cos(FGSM, PGD) median": c["fgsm_pgd_cosine"]["median"], "NFE": c["nfe"]}
                             for c in r["cells"] + ((r.get("paper_schedule") or {}).get("cells") or [])]))
        if r.get("widths"):
            tables.append(table([{"channels": w["channels"], "epoch": w["epoch"], "lr": w["lr"],
                                  "sum lr": round(w["sum_lr"], 2),
                                  "clean (all test, %)": None if w["test_acc"] is None else round(100 * w["test_acc"], 2),
                                  **{f"margin {k}": round(v, 2) if v is not None else None
                                                              for k, v in w["margins"].items()}}
                                 for w in r["widths"]]))
        tables.append(table([{"protocol": PROTOCOL_NAMES.get(p, p), "median margin, half zero alone": t["alone"],
                              "median margin, half zero batched": t["batched"]}
                             for p, t in r["map"]["thresholds"].items()]))
        rows = []
        for c in r["configurations"]:
            row = {"configuration": c["config"], "kind": c["kind"], "RMS to paper (points)": c["rms"]}
            for a in ("fgsm", "pgd"):
                for x in c.get(a) or []:
                    row[f"{a.upper()} {x['eps']:g} (%)"] = None if x["pct"] is None else round(x["pct"], 1)
            rows.append(row)
        tables.append(table(rows))
        if r.get("strongest"):
            tables.append(table([{"attack": x.get("pipeline") or x["attack"], "eps": x["eps"], "robust": ci(x["robust"]),
                                  "error": x["error"] or ""} for x in r["strongest"]["rows"]]))
    return {"paragraphs": paragraphs, "tables": tables}


def cost(p: dict, u) -> dict:
    """Training the measured net (its conv cost against the unit 128-channel net), the cells, the map and the
    pipelines' Table 1 (attacks on survivors not counted)."""
    pgd = reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"])
    entry = p.get("SAT_MODEL") or p["ODE"]
    scale = (int(entry["kwargs"]["channels"]) / 128) ** 2
    n, eps = p["N_EVAL"], len(p["EPS_TABLE1"])
    epochs = int(p.get("SAT_UNTIL") or entry["train"]["epochs"])
    cells = len(p.get("SAT_CELL_EPOCHS") or range(epochs))
    tables = len(p.get("SAT_TABLE1_SCALES") or []) + len(p.get("SAT_PIPELINES") or []) * len(
        p.get("SAT_PIPELINE_EPOCHS") or [1])
    hours = scale * (u.train_h({"model": "odenet", "train": {"epochs": epochs}})
                     + u.attack_h("odenet", n * cells, (8, 2 + 2 * eps))
                     + u.attack_h("odenet", p.get("SAT_MAP_N") or n, (11 * len(p["SAT_SCALES"]), 11))
                     + u.attack_h("odenet", n * eps * tables, (1 + pgd["steps"], 3)))
    return {"notebook": "09", "what": f"{epochs} epochs of one net, {cells} cells, the saturation map, {tables} "
                                      f"Table 1s", "hours": hours}
