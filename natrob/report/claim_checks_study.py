"""The claims' checks on notebooks 09 and 10: why the paper's attack saw no gradient (float16 AMP saturating first,
the real pipelines' distance to the paper's Table 1, the strongest evaluation of the nearest, the saturated nets
nearer it, the margins of the training natrob ran) and TisODE's published models (its log against our replay and
the paper's PGD). Each takes ``results`` ({file template: JSON}) and returns ``(holds, numbers)``; each threshold
is a constant here, named in its claim's text.
"""
from __future__ import annotations

from ..stats import wilson
from .claim_reading import (MECHANISM, PUBLISHED_ODES, Missing, at_most, count_of, get_path, in_file, k_of_n,
                            robust_count, rows_of, select_rows)


# ------------------------------------------------------------------------- why no gradient (notebook 09)
AMP_FACTOR = 2  # at least one step of the map's grid of K (x2 on mnist, x4 on digits): a retrained run measured 4.0x


def amp_saturates_first(results: dict) -> tuple:
    """The saturation map (notebook 09, ``map.thresholds``): the median logit margin at which half the correctly
    classified points have an exactly-zero input gradient, each point solved alone, under float16 AMP and float32.
    None means no K of the map's grid got there (float32: beyond the grid, so the ordering holds)."""
    amp = in_file(results, MECHANISM, "map", "thresholds", "float16-amp", "alone")
    f32 = in_file(results, MECHANISM, "map", "thresholds", "float32", "alone")
    holds = amp is not None and (f32 is None or f32 >= AMP_FACTOR * amp)
    def show(v):
        return "beyond the grid" if v is None else f"{v:.1f}"
    ratio = f" ({f32 / amp:.1f}x)" if amp and f32 else ""
    return holds, f"median margin at half exactly zero (alone): float16 AMP {show(amp)}, float32 {show(f32)}{ratio}"


RMS_MIN = 50  # points


def pipelines_far_from_paper(results: dict) -> tuple:
    """The distance table of notebook 09 (``configurations`` of kind ``pipeline``: float32, float16 AMP, bfloat16 at
    the stored epochs, crafted and judged through the pipeline): RMS over the eight numbers of the paper's Table 1
    (Neural ODE), in percentage points."""
    rows = rows_of(results, MECHANISM, "configurations", kind="pipeline")
    rms = [(r.get("config", "?"), r.get("rms")) for r in rows]
    if any(not isinstance(v, (int, float)) for _, v in rms):
        raise Missing(f"{MECHANISM}: a pipeline without its rms")
    name, near = min(rms, key=lambda cv: cv[1])
    return near > RMS_MIN, f"{len(rms)} pipelines, nearest RMS {near:.1f} ({name})"


STRONGEST_LIMIT = 4  # of 40


def strongest_breaks_nearest(results: dict) -> tuple:
    """The strongest evaluation of the real pipeline nearest the paper's Table 1 (notebook 09, ``strongest``:
    AutoAttack through that pipeline and PGD-40 in float64) at ε = 0.3."""
    rows = select_rows(in_file(results, MECHANISM, "strongest", "rows"), f"{MECHANISM}: strongest.rows", eps=0.3)
    kn = [(r.get("pipeline") or r.get("attack", "?"), robust_count(r, MECHANISM)) for r in rows]
    holds = all(at_most(k, n, STRONGEST_LIMIT, 40) for _, (k, n) in kn)
    return holds, "ε 0.3: " + ", ".join(f"{a} {k_of_n(k, n)}" for a, (k, n) in kn)


SATURATION_SLACK = 0.99  # the scaled net's margin and the map's threshold are one grid point: equal up to rounding


def nearest_are_saturated(results: dict) -> tuple:
    """Notebook 09's distance table against its saturation map: every configuration nearer the paper's Table 1
    than the nearest real pipeline (the assembled no-gradient row aside) is a logit-scaled net (``table1`` key
    ``scaled-<K>``) whose median margin, K times the last epoch's, is at or past float32's threshold (the map's median
    margin at which half the points' gradients are exactly zero, each solved alone)."""
    configs = in_file(results, MECHANISM, "configurations")
    pipes = [get_path(c, MECHANISM, "rms") for c in configs if isinstance(c, dict) and c.get("kind") == "pipeline"]
    if not pipes:
        raise Missing(f"{MECHANISM}: configurations: no real pipeline")
    near_pipe = min(pipes)
    nearer = [c for c in configs if c.get("kind") not in ("assembled", "pipeline") and c.get("rms", 1e9) < near_pipe]
    scales = [float(k.split("-", 1)[1]) for k in in_file(results, MECHANISM, "table1") if k.startswith("scaled-")]
    margin = in_file(results, MECHANISM, "map", "margins", "p50")
    f32 = in_file(results, MECHANISM, "map", "thresholds", "float32", "alone")
    if len(scales) != 1 or any(c.get("kind") != "scaled" for c in nearer):
        return False, f"{len(nearer)} configurations nearer than the nearest pipeline (RMS {near_pipe:.1f}), " \
                      f"{len(scales)} scaled nets measured"
    reach = scales[0] * margin
    holds = bool(nearer) and f32 is not None and reach >= SATURATION_SLACK * f32
    f32_text = "beyond the grid" if f32 is None else f"{f32:.1f}"
    return holds, (f"nearest pipeline RMS {near_pipe:.1f}; logits x {scales[0]:g}: RMS "
                   f"{min(c['rms'] for c in nearer) if nearer else float('nan'):.1f}, median margin {reach:.1f} "
                   f"against float32's threshold {f32_text}")


MARGIN_FACTOR = 8


def margins_below_float32(results: dict) -> tuple:
    """The saturation map's margins (notebook 09, the last trained epoch, ``map.margins.p50``) against float32's
    threshold on the same map: how far the training natrob ran is from float32's saturation."""
    margin = in_file(results, MECHANISM, "map", "margins", "p50")
    f32 = in_file(results, MECHANISM, "map", "thresholds", "float32", "alone")
    holds = f32 is None or f32 >= MARGIN_FACTOR * margin
    shown = "beyond the grid" if f32 is None else f"{f32:.1f} ({f32 / margin:.0f}x)"
    return holds, f"median margin {margin:.1f} at the last epoch; float32's threshold {shown}"


# ------------------------------------------------------------------------- published models (notebook 10)
LOG_SHARE = 2  # the paper's PGD keeps at most half of the log's figure


def log_is_its_own_attack(results: dict) -> tuple:
    """TisODE's log: every figure it gives for the published models inside the 95% interval of the log's attack
    replayed here on the images its script drew (``logged``)."""
    rows = [r for r in in_file(results, PUBLISHED_ODES, "logged") if r.get("log") is not None]
    if not rows:
        raise Missing(f"{PUBLISHED_ODES}: no logged figure")
    seen, ok = [], True
    for r in rows:
        k, n = count_of(r.get("replayed"), f"{PUBLISHED_ODES}: {r.get('model')} ε {r.get('eps')}")
        lo, hi = wilson(k, n)
        ok &= lo <= r["log"] <= hi
        seen.append(f"{r['model']} ε {r['eps']:g}: log {r['log']:.3f}, ours {k_of_n(k, n)}")
    return ok, "; ".join(seen)


def pgd_halves_the_log(results: dict) -> tuple:
    """TisODE at ε = 0.3: the paper's PGD (``pgd``) against the log's figure (``logged``)."""
    log = rows_of(results, PUBLISHED_ODES, "logged", model="TisODE", eps=0.3)[0].get("log")
    if not isinstance(log, (int, float)):
        raise Missing(f"{PUBLISHED_ODES}: no logged figure for TisODE at ε 0.3")
    k, n = robust_count(rows_of(results, PUBLISHED_ODES, "pgd", model="TisODE", eps=0.3)[0], PUBLISHED_ODES)
    return wilson(k, n)[1] * LOG_SHARE <= log, f"TisODE ε 0.3: PGD {k_of_n(k, n)}, log {log:.3f}"
