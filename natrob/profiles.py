"""Profiles: parameter files that run_all passes to every notebook (papermill parameters)."""
from __future__ import annotations

import yaml

from . import paths
from .errors import ConfigError, UnknownNameError

RUNNER_KEYS = ("CELL_TIMEOUT",)  # profile values the runner reads and no notebook declares


def available() -> list:
    """Profiles a user can run (``base`` is only the parent the others extend)."""
    return sorted(p.stem for p in paths.PROFILES.glob("*.yaml") if p.stem != "base")


def _read(name: str, seen: tuple = ()) -> dict:
    path = paths.PROFILES / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError("profile", name, available())
    if name in seen:
        chain = " -> ".join(seen + (name,))
        raise ConfigError("extends", name, f"a profile that does not extend itself (chain {chain})")
    own = yaml.safe_load(path.read_text()) or {}
    parent = own.pop("extends", None if name == "base" else "base")
    if parent is None:
        return own
    merged = _read(parent, seen + (name,))
    unknown = sorted(set(own) - set(merged))
    if unknown:  # a key the parent lacks is a typo or a parameter no notebook declares
        raise ConfigError(f"profiles/{name}.yaml keys", unknown, "parameters defined in profiles/base.yaml")
    return {**merged, **own}  # a profile's entry replaces the parent's whole entry


def load_profile(name: str) -> dict:
    """The parameters of profile ``name``: ``profiles/base.yaml`` with the profile's own entries replacing whole
    entries (a profile may ``extends:`` another, e.g. paper-cifar10 extends paper), plus ``PROFILE``."""
    if name == "base" or name not in available():
        raise UnknownNameError("profile", name, available())
    params = _read(name)
    params["PROFILE"] = name
    return params
