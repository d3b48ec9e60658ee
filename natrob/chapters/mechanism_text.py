"""Notebook 09's sentences: its answer, its findings (written from the result payload's numbers; series are the
section's tables, never a sentence) and the rule that decides whether an extrapolation's interval is shown.
"""
from __future__ import annotations

from ..eps import at_eps
from ..study.fingerprint import quote_eps

GRADIENT_NAMES = {"float32": "float32 (paper's attack)", "probabilities": "CE of probabilities",
                  "bfloat16-autocast": "bfloat16 autocast", "float16-amp": "float16 AMP",
                  "float16-amp-cpu-kernels": "float16 AMP, CPU kernels", "float64": "float64"}
INTERVAL_MIN_POINTS = 5  # a prediction interval from fewer fitted epochs rests on 2 residual degrees of freedom or less
INTERVAL_MAX_REL = 0.5  # ... and one whose half-width exceeds half the extrapolated value says nothing about its size


def k_of_n(c) -> str:
    """A count value as 'k/n' ('–' where none was measured)."""
    return "–" if c is None or c["k"] is None else f"{c['k']}/{c['n']}"


def robust_at(rows, eps):
    """The robust count of the row at radius ``eps`` (None where there is none)."""
    row = at_eps(rows, eps)
    return None if row is None else row["robust"]


def readable_interval(fit: dict, n: int):
    """(interval, None) where a fit's 95% prediction interval at the paper's summed rate is informative: at least
    :data:`INTERVAL_MIN_POINTS` fitted epochs and a half-width at most :data:`INTERVAL_MAX_REL` of the extrapolated
    value; else (None, why it is not shown)."""
    iv, at = fit.get("interval"), fit.get("at_target")
    if iv is None or at is None:
        return None, f"no interval from {n} epochs"
    if n < INTERVAL_MIN_POINTS:
        return None, f"no interval shown: {n} epochs, fewer than {INTERVAL_MIN_POINTS}"
    if (iv[1] - iv[0]) / 2 > INTERVAL_MAX_REL * abs(at):
        return None, f"no interval shown: its half-width exceeds {INTERVAL_MAX_REL:.0%} of the value"
    return iv, None


def answer(p: dict) -> str:
    """The chapter's answer in one sentence: the real pipeline nearest the paper's Table 1 and where its precision
    stops giving a gradient."""
    real = [c for c in p["configurations"] if c["kind"] == "pipeline" and c["rms"] is not None]
    if not real:
        return "No real pipeline's Table 1 could be compared with the paper's."
    best, th = real[0], p["map"]["thresholds"]
    at = (th.get(best["protocol"]) or {}).get("alone")
    where = (f"half its correctly classified points get an exactly-zero input gradient from a median logit margin "
             f"of {at:.1f}" if at is not None else "no measured logit scale took half its gradients to exactly zero")
    return (f"Answer: of the real pipelines, {best['config']} comes nearest the paper's Table 1 (RMS {best['rms']:.1f} "
            f"percentage points over {best['numbers']} numbers); in {best['protocol']}, {where}.")


def _training_sentence(p: dict, cells: list, e: float) -> str:
    first, last = cells[0], cells[-1]
    return (f"Over {p['training']['epochs_done']} of {p['training']['epochs_scheduled']} scheduled epochs (summed "
            f"learning rate {first['sum_lr']:.1f} to {last['sum_lr']:.1f}), the median logit margin of correctly "
            f"classified points went from {first['margins']['p50']:.2f} to {last['margins']['p50']:.2f} (p2 "
            f"{last['margins']['p2']:.2f}, max {last['margins']['max']:.2f}); FGSM at eps = {e:g} left "
            f"{k_of_n(robust_at(last['fgsm']['float32'], e))} under float32 and "
            f"{k_of_n(robust_at(last['fgsm']['float16-amp'], e))} under float16 AMP at the last epoch (every epoch: "
            f"the cells table).")


def _paper_schedule_sentence(p: dict, cells: list, e: float) -> list:
    """The paper's own schedule beside the main one, at the nearest summed learning rate the main one has."""
    ps = p.get("paper_schedule")
    if not ps or not ps.get("cells"):
        return []
    pc, last = ps["cells"], ps["cells"][-1]
    near = min(cells, key=lambda c: abs(c["sum_lr"] - last["sum_lr"]))
    return [f"The paper's own schedule (Adam 1e-3, batch 32), {ps['epochs_done']} of {ps['epochs_scheduled']} epochs "
            f"(summed learning rate {pc[0]['sum_lr']:.3g} to {last['sum_lr']:.3g}): median margin "
            f"{pc[0]['margins']['p50']:.2f} to {last['margins']['p50']:.2f}, test accuracy "
            f"{100 * (last['test_acc'] or 0):.1f}%, FGSM at eps = {e:g} "
            f"{k_of_n(robust_at(last['fgsm']['float32'], e))} (float32); the main schedule at summed rate "
            f"{near['sum_lr']:.3g}: median {near['margins']['p50']:.2f}."]


def _width_sentence(p: dict, cells: list) -> list:
    """Notebook 08's widths beside this chapter's net at the same summed learning rate (the series: the widths
    table): does margin per unit of summed rate carry over across widths?"""
    ws = [w for w in p.get("widths") or [] if w["margins"]["p50"] is not None]
    if not ws:
        return []
    main = {round(c["sum_lr"], 6): c for c in cells if c["margins"]["p50"]}
    same = [w for w in ws if round(w["sum_lr"], 6) in main]
    if not same:
        return [f"Notebook 08's widths ({len(ws)} stored epochs; the widths table): no epoch of this chapter's net "
                "sits at the same summed rate, so no ratio is given."]
    w = max(same, key=lambda v: (v["channels"], v["sum_lr"]))
    c = main[round(w["sum_lr"], 6)]
    return [f"At summed rate {w['sum_lr']:.3g}, the {w['channels']}-channel net of notebook 08 has a median margin "
            f"{w['margins']['p50'] / c['margins']['p50']:.2f}x this chapter's {p['model']['kwargs']['channels']}"
            f"-channel net's ({w['margins']['p50']:.2f} against {c['margins']['p50']:.2f}; every width and epoch: "
            f"the widths table)."]


def _trend_sentence(tr: dict | None) -> list:
    if not tr:
        return []
    if tr["linear"]["at_target"] is None:
        return [f"Only {tr['n']} epoch(s) are stored: too few for an extrapolation."]
    parts = []
    for name, words in (("linear", "if it grows linearly"), ("log", "if it grows with the logarithm")):
        fit = tr[name]
        iv, why = readable_interval(fit, tr["n"])
        parts.append(f"{fit['at_target']:.1f} {words} "
                     + (f"(95% prediction interval {iv[0]:.1f} to {iv[1]:.1f})" if iv else f"({why})"))
    return [f"Extrapolated to the paper's summed learning rate of {tr['target']:.0f} from {tr['n']} epochs, the median "
            f"margin would be " + ", ".join(parts) + f"; residual sums of squares {tr['linear']['rss']:.2g} (linear) "
            f"and {tr['log']['rss']:.2g} (logarithmic)."]


def _first_zero(m: dict, key: str, words: str) -> str:
    """Where half the correct points first get an exactly-zero gradient (``key``: 'alone' or 'batched'), the
    earliest setting and float32's; every setting is a row of the thresholds table."""
    reached = sorted((th[key], g) for g, th in m["thresholds"].items() if th[key] is not None)
    if not reached:
        top = max((r["margin"]["p50"] or 0) for r in m["rows"])
        return (f"{words}, no gradient setting has half of the correctly classified points at an exactly-zero "
                f"gradient up to a median margin of {top:.0f} (the thresholds table).")
    at, g = reached[0]
    f32 = m["thresholds"].get("float32", {}).get(key)
    return (f"{words}, half of the correctly classified points first get an exactly-zero gradient under "
            f"{GRADIENT_NAMES.get(g, g)}, at a median margin of {at:.1f}"
            + ("" if g == "float32" else f"; under float32 at {f32:.1f}" if f32 is not None
               else "; under float32 not at any measured scale")
            + " (every setting: the thresholds table).")


def _threshold_sentences(m: dict) -> list:
    share = [r for r in m["rows"] if r["protocol"] == "float32" and r["own_share"]["median"] is not None]
    low = next((r for r in share if r["own_share"]["median"] < 0.5), None)
    out = [_first_zero(m, "alone", "Each point alone"), _first_zero(m, "batched", "In a batch (one shared step size)")]
    if low:
        out.append(f"From a median margin of {low['margin']['p50']:.1f} on, the median cosine between a point's "
                   f"batched float32 gradient and its own (float64, alone) is {low['own_share']['median']:.2f}: FGSM "
                   "steps mostly along its batch-mates' gradients.")
    return out


def _ranking_sentences(p: dict) -> list:
    out = []
    real = [c for c in p["configurations"] if c["kind"] == "pipeline" and c["rms"] is not None]
    if len(real) > 1:
        out.append(f"The next real pipeline is {real[1]['config']}, RMS {real[1]['rms']:.1f}.")
    ref = next((c for c in p["configurations"] if c["kind"] == "assembled"), None)
    scaled = [c for c in p["configurations"] if c["kind"] == "scaled" and c["rms"] is not None]
    if ref is not None:
        out.append(f"For reference, the assembled 'no usable gradient' row is at RMS {ref['rms']:.1f}"
                   + (", and the same net with its logits scaled to longer-training margins at "
                      + ", ".join(f"{c['scale']:g}x: {c['rms']:.1f}" for c in scaled) if scaled else "") + ".")
    s = p.get("strongest")
    if s:
        parts = [f"{r['attack']} leaves {k_of_n(r['robust'])} at eps = {r['eps']:g}" for r in s["rows"]]
        out.append(f"The strongest evaluation of {s['config']} on {s['n']} points: " + "; ".join(parts) + ".")
    return out


def findings(p: dict) -> list:
    """Sentences written from the payload's numbers, the answer first: the training, the trend, the thresholds,
    the batch, the ranking and what the strongest evaluation made of the nearest pipeline. Series are in the
    section's tables, not here."""
    cells, e = p["cells"], quote_eps(p["eps"])
    return ([answer(p), _training_sentence(p, cells, e)] + _paper_schedule_sentence(p, cells, e)
            + _width_sentence(p, cells) + _trend_sentence(p.get("trend")) + _threshold_sentences(p["map"])
            + _ranking_sentences(p))
