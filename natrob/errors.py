"""Errors natrob raises for bad input: each names the parameter, the value and what is allowed."""
from __future__ import annotations


class NatrobError(Exception):
    """Base class for natrob's own errors."""


class ConfigError(NatrobError, ValueError):
    """A bad argument: ``ConfigError(param, value, allowed)`` reads "param=value is not valid; allowed: ..."."""

    def __init__(self, param: str, value, allowed: str):
        self.param, self.value, self.allowed = param, value, allowed
        super().__init__(f"{param}={value!r} is not valid; allowed: {allowed}")


class UnknownNameError(ConfigError, KeyError):
    """A name missing from a registry: ``UnknownNameError(kind, value, known)`` lists the known names."""

    def __init__(self, kind: str, value, known):
        super().__init__(kind, value, "one of " + ", ".join(sorted(known)))

    def __str__(self):  # KeyError would repr() the message
        return self.args[0]


class DataNotFoundError(NatrobError, FileNotFoundError):
    """A dataset's files are missing or unreadable; the message says where they were looked for and how to
    get them."""


class CheckpointError(NatrobError, RuntimeError):
    """A checkpoint is missing, corrupt, or holds another architecture."""


class SolverFailure(NatrobError, RuntimeError):
    """The ODE solver could not integrate (step-size underflow, non-finite state, NFE cap)."""


def check_eps(eps, param: str = "eps") -> float:
    """``eps`` as a float if it is an L-inf radius in [0, 1]; ConfigError naming ``param`` otherwise."""
    eps = float(eps)
    if not (0.0 <= eps <= 1.0):
        raise ConfigError(param, eps, "a number in [0, 1] (L-inf radius in [0,1] pixel space; 8/255 = 0.0314)")
    return eps


def check_positive_int(value, param: str) -> int:
    """``value`` as an int if it is a whole number >= 1; ConfigError naming ``param`` otherwise."""
    if int(value) != value or int(value) < 1:
        raise ConfigError(param, value, "an integer >= 1")
    return int(value)
