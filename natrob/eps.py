"""One rule for "the same ε" (an L-inf radius in pixel units of [0, 1] images).

Radii travel as floats: parsed from YAML, summed in loops, written to JSON and read back, so two radii are the same
radius when they differ by less than :data:`EPS_TOL`. 1e-6 is far below the finest radius grid of the study (0.01
apart) and far above float32/float64 rounding of values in [0, 1] (about 6e-8 relative).
"""
from __future__ import annotations

EPS_TOL = 1e-6


def same_eps(a, b) -> bool:
    """Whether radii ``a`` and ``b`` (numbers; anything else is never the same) are one radius."""
    return isinstance(a, (int, float)) and isinstance(b, (int, float)) and abs(float(a) - float(b)) < EPS_TOL


def at_eps(rows, eps, key: str = "eps"):
    """The first mapping of ``rows`` whose ``key`` is radius ``eps`` (:func:`same_eps`), or None when there is none
    (``rows`` None counts as empty)."""
    return next((r for r in rows or () if same_eps(r.get(key), eps)), None)
