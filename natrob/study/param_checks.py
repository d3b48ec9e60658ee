"""Checks of a notebook's parameters, each raising ConfigError that names the parameter, its value and what is
allowed (the typed parameters of notebooks 08 and 09: :class:`natrob.study.width.WidthParams`,
:class:`natrob.study.mechanism_params.MechanismParams`).
"""
from __future__ import annotations

from ..errors import ConfigError


def size(name: str, value, default: int) -> int:
    if value is None:
        return int(default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(name, value, "a positive whole number of eval points, or null")
    return value


def positive(name: str, values) -> tuple:
    out = tuple(float(v) for v in values or ())
    if any(not v > 0 for v in out):
        raise ConfigError(name, list(values), "positive numbers")
    return out


def epochs(name: str, values):
    if values is None:
        return None
    if any(isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in values):
        raise ConfigError(name, list(values), "epochs (whole numbers from 1), or null")
    return tuple(values)
