"""Counts and their uncertainty: every accuracy natrob stores is ``k`` robust points out of ``n`` evaluated.

Wilson's score interval (Wilson 1927) is used rather than the normal approximation because audit samples are
small (40-100 points) and accuracies sit near 0 or 1, where ``p ± 1.96 sqrt(p(1-p)/n)`` leaves [0, 1] or
collapses to a single point.
"""
from __future__ import annotations

import math
import operator

from .errors import ConfigError

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson(k: int, n: int, z: float = Z95) -> tuple:
    """95% Wilson score interval ``(low, high)`` for ``k`` successes out of ``n`` trials.

    Arguments: ``k`` and ``n`` integers with ``0 <= k <= n``; ``z`` the normal quantile (default 95%).
    ``n == 0`` gives ``(0.0, 1.0)``: nothing was measured, so nothing is excluded."""
    try:  # numpy and torch integers are counts too (pandas hands them out); floats are not
        if isinstance(k, bool) or isinstance(n, bool):
            raise TypeError
        k, n = operator.index(k), operator.index(n)
    except TypeError:
        raise ConfigError("k, n", (k, n), "integer counts (robust points, evaluated points)") from None
    if n < 0 or not 0 <= k <= max(n, 0):
        raise ConfigError("k, n", (k, n), "0 <= k <= n")
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # the bounds at k = 0 and k = n are exactly 0 and 1; float rounding would leave ~1e-17 and exclude p itself
    return (0.0 if k == 0 else max(0.0, centre - half)), (1.0 if k == n else min(1.0, centre + half))


COUNT_KEYS = ("k", "n", "accuracy", "ci95")


def count(k, n: int) -> dict:
    """The one shape of every stored accuracy: ``{"k", "n", "accuracy", "ci95"}``.

    ``k`` robust (or correct) points out of ``n`` evaluated, both integers; ``k = None`` means "not measured"
    (the attack raised), and then ``accuracy`` and ``ci95`` are None too. ``accuracy`` is ``k / n`` (None when
    ``n == 0``) for display only; ``ci95`` the 95% Wilson interval ``[low, high]`` in [0, 1]. Every comparison
    (verify, checks, tests) uses ``k`` and ``n``. Raises ConfigError unless ``0 <= k <= n`` are integers."""
    if k is None:
        return {"k": None, "n": int(n), "accuracy": None, "ci95": None}
    lo, hi = wilson(k, n)
    k, n = int(k), int(n)
    return {"k": k, "n": n, "accuracy": (k / n) if n else None, "ci95": [lo, hi]}


def is_count(obj) -> bool:
    """Whether ``obj`` is a count value as :func:`count` writes it (read back from JSON)."""
    return (isinstance(obj, dict) and "k" in obj and "n" in obj and set(obj) <= set(COUNT_KEYS)
            and isinstance(obj["n"], int) and not isinstance(obj["n"], bool)
            and (obj["k"] is None or (isinstance(obj["k"], int) and not isinstance(obj["k"], bool))))


def ci(c) -> str:
    """A count value as text (:func:`fmt`), '– (not measured)' when its ``k`` is None, '–' for no count at all."""
    if c is None:
        return "–"
    if c["k"] is None:
        return "– (not measured)"
    return fmt(c["k"], c["n"])


def class_shares(y, num_classes: int) -> list:
    """Each class's share of the labels ``y`` (a 1-D integer tensor or sequence), a list of ``num_classes``
    floats: the largest is the constant-image bound's share."""
    labels = y.tolist() if hasattr(y, "tolist") else list(y)
    counts = [0] * num_classes
    for label in labels:
        counts[int(label)] += 1
    return [c / len(labels) if labels else 0.0 for c in counts]


def constant_image_limit(share: float, n: int) -> int:
    """The most of ``n`` points any classifier keeps robust at eps >= 0.5 on [0, 1] images, where the constant
    0.5 image lies in every eps-ball: at most the points of one class, ``floor(share * n)`` for the largest class
    share ``share`` (the float rounding of ``share * n`` never costs a point). The one place this bound is computed."""
    return math.floor(share * n + 1e-9)


def fmt(k: int, n: int) -> str:
    """'12.5% [5.0, 26.8] (5/40)': accuracy in %, its 95% interval, and the counts behind it."""
    lo, hi = wilson(k, n)
    k, n = int(k), int(n)
    if n == 0:
        return "– (0/0)"
    return f"{100 * k / n:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] ({k}/{n})"
