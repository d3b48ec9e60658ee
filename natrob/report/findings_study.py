"""The findings page's sections on the study's own notebooks: what produces the paper's numbers (07, the grid),
the paper's width (08) and why the paper's attack saw no gradient (09, the mechanism). Each takes a
:class:`~natrob.report.published_files.Run` and returns markdown lines, or a line saying its file is absent.
"""
from __future__ import annotations

from ..study.fingerprint import quote_eps
from .markdown import kn, num, pct, pcts, series, table
from .published_files import GRID, MECHANISM, WIDTH, Run, absent, row_at


def grid_section(run: Run) -> list:
    grid = run.get(GRID)
    if grid is None:
        return absent(run, GRID)
    rms = {c.get("id"): c.get("distance_pts") for c in grid.get("comparison") or []}
    eps = [e for e in grid.get("eps") or [] if isinstance(e, (int, float))]
    cells = grid.get("cells") or []
    pgd = next((c.get("pgd_label") for c in cells if c.get("pgd_label")), "PGD")
    header = ["cell", "configuration", "correct threat model", "clean", "solver failures"]
    header += [f"{a} ε = {e:g}" for e in eps for a in ("FGSM", pgd, "worst case")] + ["RMS to the paper"]
    body = []
    for c in cells:
        per = [(row_at(c.get("per_eps"), e) or {}) for e in eps]
        body.append([c.get("id", "?"), c.get("label", "?"), "yes" if c.get("correct_threat_model") else "no",
                     kn(c.get("clean")), num(c.get("solver_failures"), "d"),
                     *(kn(p.get(k)) for p in per for k in ("fgsm", "pgd", "worst")), num(rms.get(c.get("id")))])
    out = [f"Scope, as the file states it: {grid.get('scope', '–')}", ""] + table(header, body)
    out += ["", "RMS: distance in percentage points to the paper's Table 1 over the numbers measured. The file's "
                "summary:", "", f"> {grid.get('summary', '–')}"]
    return out


def _width_rows(width: dict, e: float) -> list:
    """Per width: channels, parameters, epochs, test accuracy, and its last net's clean, FGSM, PGD, worst case."""
    t1, wc = width.get("table1") or {}, width.get("worst_case") or {}
    body = []
    for w in width.get("widths") or []:
        ch = str(w.get("channels"))
        last = (w.get("history") or [{}])[-1]
        rows = (t1.get(ch) or {}).get("rows") or {}
        worst = (row_at(wc.get("worst"), e) or {}).get("robust") if str(wc.get("channels")) == ch else None
        body.append([ch, num(w.get("params"), ","), f"{w.get('epochs_done', '?')} of {w.get('epochs_scheduled', '?')}",
                     pct(last.get("test_acc"), 1), kn((t1.get(ch) or {}).get("clean")),
                     kn((row_at(rows.get("fgsm"), e) or {}).get("robust")),
                     kn((row_at(rows.get("pgd"), e) or {}).get("robust")), kn(worst)])
    return body


def _width_epochs(width: dict, e: float) -> list:
    """FGSM at ``e`` per epoch (rows) and width (columns), from the cell table."""
    cells = width.get("cells") or []
    widths = list(dict.fromkeys(c.get("channels") for c in cells))
    epochs = sorted({c.get("epoch") for c in cells if isinstance(c.get("epoch"), int)})
    at = {(c.get("channels"), c.get("epoch")): kn((row_at(c.get("fgsm"), e) or {}).get("robust")) for c in cells}
    body = [[str(ep), *(at.get((w, ep), "") for w in widths)] for ep in epochs]
    return table(["epoch", *(f"{w} ch" for w in widths)], body)


def _width_worst(width: dict) -> list:
    wc = width.get("worst_case") or {}
    rows = wc.get("rows") or []
    attacks = list(dict.fromkeys(r.get("attack") for r in rows))
    body = []
    for w in wc.get("worst") or []:
        by = {r.get("attack"): kn(r.get("robust")) for r in rows if row_at([r], w.get("eps", -1))}
        body.append([num(w.get("eps"), "g"), *(by.get(a, "–") for a in attacks), kn(w.get("robust"))])
    out = [f"The strongest evaluation of the {wc.get('channels', '?')}-channel net (epoch {wc.get('epoch', '?')}; "
           f"clean {kn(wc.get('clean'))}):", ""]
    return out + table(["ε", *attacks, "worst case"], body)


def _nearest(width: dict, configs: list) -> list:
    """The configurations nearest the paper's Table 1 (over all and under the correct threat model), with the
    paper's row above them."""
    most = max(c.get("numbers", 0) for c in configs)
    full = [c for c in configs if c.get("numbers") == most]
    picks = [("nearest", min(full, key=lambda c: c["rms"]))]
    correct = [c for c in full if c.get("correct")]
    picks += [("nearest, correct threat model", min(correct, key=lambda c: c["rms"]))] if correct else []
    paper = width.get("paper") or {}
    eps = "/".join(f"{e:g}" for e in paper.get("eps") or [])
    body = [["the paper's Table 1", "Neural ODE, MNIST", "–", series(num(v, ".2f") for v in paper.get("fgsm") or []),
             series(num(v, ".2f") for v in paper.get("pgd") or []), "–"]]
    body += [[what, c.get("config", "?"), c.get("protocol", "–"), pcts(c.get("fgsm")), pcts(c.get("pgd")),
              num(c.get("rms"))] for what, c in picks]
    out = [f"The configurations nearest the paper's Table 1 (RMS over {most} numbers, percentage points):", ""]
    return out + table(["", "configuration", "what it is", f"FGSM % (ε {eps})", f"PGD % (ε {eps})", "RMS"], body)


def width_section(run: Run) -> list:
    width = run.get(WIDTH)
    if width is None:
        return absent(run, WIDTH)
    e = quote_eps(width.get("eps") or [0.3])
    pgd = (width.get("pgd") or {}).get("label", "PGD")
    out = [f"Per width, the last net (Table 1 on the evaluated points; test accuracy on all "
           f"{num(run.dataset.get('n_test'), ',')} test images) at ε = {e:g}:", ""]
    out += table(["channels", "parameters", "epochs trained", "test accuracy", "clean", f"FGSM ε = {e:g}",
                  f"{pgd} ε = {e:g}", f"worst case ε = {e:g}"], _width_rows(width, e))
    out += ["", f"FGSM at ε = {e:g} after each epoch:", ""] + _width_epochs(width, e)
    out += [""] + _width_worst(width)
    configs = [c for c in width.get("configurations") or [] if isinstance(c.get("rms"), (int, float))]
    if configs:
        most = max(c.get("numbers", 0) for c in configs)
        out += [""] + _nearest(width, configs)
        shown = [c for c in configs if c.get("numbers") == most or not c.get("correct")]
        out += ["", "Distance to the paper's Table 1 of each width's Table 1 and each protocol variant (RMS, "
                    "percentage points, over the numbers measured):", ""]
        out += table(["configuration", "threat model", "numbers", "RMS"],
                     [[c.get("config", "?"), c.get("protocol", "–"), c.get("numbers", "?"), num(c.get("rms"))]
                      for c in sorted(shown, key=lambda c: c["rms"])])
    return out


def _mech_epochs(mech: dict, e: float) -> list:
    """Per stored epoch: Σ lr, accuracy, margins, exactly-zero gradients per protocol, FGSM under float32 and AMP."""
    cells = mech.get("cells") or []
    protos = list(dict.fromkeys(p for c in cells for p in (c.get("zero_grad") or {})))
    fgsm = list(dict.fromkeys(p for c in cells for p in (c.get("fgsm") or {})))
    body = []
    for c in cells:
        m, zero = c.get("margins") or {}, c.get("zero_grad") or {}
        n = next((z.get("n") for z in zero.values() if isinstance(z, dict)), "?")
        body.append([num(c.get("epoch"), "d"), num(c.get("sum_lr")), pct(c.get("test_acc")), kn(c.get("clean")),
                     num(m.get("p2"), ".2f"), num(m.get("p50"), ".2f"), num(m.get("max"), ".2f"),
                     series(str((zero.get(p) or {}).get("k", "–")) for p in protos) + f" of {n}",
                     *(kn((row_at((c.get("fgsm") or {}).get(p), e) or {}).get("robust")) for p in fgsm)])
    header = ["epoch", "Σ lr", "test accuracy", "clean", "margin p2", "p50", "max",
              "exactly-zero gradient (" + series(protos) + ")", *(f"FGSM ε = {e:g}, {p}" for p in fgsm)]
    return table(header, body)


def _mech_trend(mech: dict) -> list:
    trend = mech.get("trend") or {}
    body = [[fit, num((trend.get(fit) or {}).get("at_target"), ".2f"),
             series((num(v, ".2f") for v in (trend.get(fit) or {}).get("interval") or []), " to "),
             num((trend.get(fit) or {}).get("rss"), ".3g")] for fit in ("log", "linear") if fit in trend]
    out = [f"The median margin against Σ lr over {trend.get('n', '?')} epochs, extrapolated to the paper's summed "
           f"learning rate ({num(trend.get('target'), '.1f')}):", ""]
    return out + table(["fit", "median margin there", "95% prediction interval", "residual sum of squares"], body)


def _mech_thresholds(mech: dict) -> list:
    sat = mech.get("map") or {}
    scales = [s for s in sat.get("scales") or [] if isinstance(s, (int, float))]
    grid = f"K from {min(scales):g} to {max(scales):g}, {len(scales)} values" if scales else "K"
    out = [f"The saturation map ({num(sat.get('n'), 'd')} points, clean {kn(sat.get('clean'))}; the last net's "
           f"logits multiplied by K, {grid}): the median margin at which half the correctly classified points "
           "have an exactly-zero input gradient, each point solved alone and in batches (one shared step size); "
           "'beyond the grid' where no K got there:", ""]
    body = [[p, *(("beyond the grid" if v.get(k) is None else num(v.get(k))) for k in ("alone", "batched"))]
            for p, v in (sat.get("thresholds") or {}).items() if isinstance(v, dict)]
    return out + table(["protocol", "alone", "batched"], body)


def _mech_distances(mech: dict) -> list:
    configs = sorted((c for c in mech.get("configurations") or [] if isinstance(c.get("rms"), (int, float))),
                     key=lambda c: c["rms"])
    eps = "/".join(f"{e:g}" for e in (mech.get("paper") or {}).get("eps") or [])
    body = [[c.get("config", "?"), c.get("kind", "?"), pcts(c.get("fgsm")), pcts(c.get("pgd")), num(c.get("rms"))]
            for c in configs]
    out = ["Distance of each configuration's Table 1 to the paper's (RMS, percentage points, over the numbers "
           "measured); only the kind `pipeline` is a real pipeline (crafted and judged through it), the others "
           "are reference lines:", ""]
    return out + table(["configuration", "kind", f"FGSM % (ε {eps})", f"PGD % (ε {eps})", "RMS"], body)


def _mech_strongest(mech: dict) -> list:
    s = mech.get("strongest") or {}
    out = [f"The strongest evaluation through the nearest pipeline, {s.get('config', '?')} "
           f"({num(s.get('n'), 'd')} points, clean {kn(s.get('clean'))}):", ""]
    return out + table(["attack", "ε", "robust"], [[r.get("pipeline") or r.get("attack", "?"), num(r.get("eps"), "g"),
                                                    kn(r.get("robust"))] for r in s.get("rows") or []])


def _mech_schedule(mech: dict, e: float) -> list:
    ps = mech.get("paper_schedule") or {}
    if not ps:
        return []
    last = (ps.get("history") or [{}])[-1]
    cell = (ps.get("cells") or [{}])[-1]
    f32 = kn((row_at((cell.get("fgsm") or {}).get("float32"), e) or {}).get("robust"))
    train = (ps.get("model") or {}).get("train") or {}
    return [f"The paper's own schedule (Adam {num(train.get('lr'), 'g')}, batch {train.get('batch_size', '?')}): "
            f"{ps.get('epochs_done', '?')} of {ps.get('epochs_scheduled', '?')} epochs, Σ lr "
            f"{num((ps.get('sum_lr') or [None])[-1], '.2f')}, test accuracy {pct(last.get('test_acc'), 1)}, median "
            f"margin {num((cell.get('margins') or {}).get('p50'), '.2f')}, FGSM at ε = {e:g} {f32} (float32)."]


def mechanism_section(run: Run) -> list:
    mech = run.get(MECHANISM)
    if mech is None:
        return absent(run, MECHANISM)
    e = quote_eps(mech.get("eps") or [0.3])
    model, tr = mech.get("model") or {}, mech.get("training") or {}
    kw, train, lrs = model.get("kwargs") or {}, tr.get("train") or model.get("train") or {}, tr.get("sum_lr") or []
    out = [f"The net: {model.get('model', '?')}, {kw.get('channels', '?')} channels, t1 = "
           f"{num(kw.get('t1'), 'g')}, trained {tr.get('epochs_done', '?')} of {tr.get('epochs_scheduled', '?')} "
           f"epochs (Adam {num(train.get('lr'), 'g')}, batch {train.get('batch_size', '?')}), Σ lr "
           f"{num(lrs[0] if lrs else None)} to {num(lrs[-1] if lrs else None)}. Per stored epoch, on "
           f"{num((mech.get('n') or {}).get('cells'), 'd')} points:", ""]
    out += _mech_epochs(mech, e)
    for part in (_mech_trend(mech), _mech_schedule(mech, e), _mech_thresholds(mech), _mech_distances(mech),
                 _mech_strongest(mech)):
        out += [""] + part if part else []
    return out
