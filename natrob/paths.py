"""Every path natrob reads or writes, in one place (showyourwork style).

Build artifacts are kept per profile, so that a run of one profile never writes another's files:
``results/<profile>/``, ``figures/<profile>/``, ``report/<profile>/index.html`` and
``notebooks/executed/<profile>/``. The profile is the ``NATROB_PROFILE`` environment variable, which the
runner sets for every notebook it executes and a notebook's setup sets from its ``PROFILE`` parameter
(default ``quick``). Trained models and finished evaluations are content-addressed (keyed by what produced
them), so the model store and the evaluation cache are shared by all profiles without collisions.

Environment overrides let tests and users redirect artifacts without touching code:
NATROB_ARTIFACTS (results, checkpoints, executed notebooks, report, cache), NATROB_FIGURES,
NATROB_DATA (dataset roots; default ./data).
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
NOTEBOOKS = REPO / "notebooks"
PROFILES = REPO / "profiles"
REFERENCE_NUMBERS = PACKAGE / "reference_numbers.json"
PUBLISHED = REPO / "reference-results"  # committed result files of finished runs, one folder per profile
DEFAULT_PROFILE = "quick"
_PROFILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def profile() -> str:
    """The profile whose artifacts are being read or written (``NATROB_PROFILE``, default ``quick``)."""
    name = os.environ.get("NATROB_PROFILE") or DEFAULT_PROFILE
    if not _PROFILE_NAME.match(name):
        raise ConfigError("NATROB_PROFILE", name, "a profile name of letters, digits, '-', '_' or '.'")
    return name


def set_profile(name: str) -> str:
    """Direct this process's (and its children's) artifacts to profile ``name``; returns it."""
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        raise ConfigError("profile", name, "a profile name of letters, digits, '-', '_' or '.'")
    os.environ["NATROB_PROFILE"] = name
    return name


def artifacts() -> Path:
    """Root of every build artifact (``NATROB_ARTIFACTS``, default the checkout)."""
    return _env_path("NATROB_ARTIFACTS", REPO)


def results_dir(name: str | None = None) -> Path:
    """``results/<profile>/``: the profile's result files."""
    return artifacts() / "results" / (name or profile())


def checkpoints_dir() -> Path:
    """The model store (shared by profiles: keyed by model, data, training config and seed)."""
    return artifacts() / "checkpoints"


def eval_cache_dir() -> Path:
    """Finished evaluations (model x attack x eps x points x seed), so a killed notebook resumes."""
    return artifacts() / "cache" / "evaluations"


def executed_notebooks_dir(name: str | None = None) -> Path:
    """``notebooks/executed/<profile>/``: executed copies of the notebooks."""
    base = artifacts() / "notebooks" / "executed" if "NATROB_ARTIFACTS" in os.environ else NOTEBOOKS / "executed"
    return base / (name or profile())


def report_dir(name: str | None = None) -> Path:
    """``report/<profile>/``: the HTML report."""
    return artifacts() / "report" / (name or profile())


def figures_dir(name: str | None = None) -> Path:
    """``figures/<profile>/``: generated figures."""
    return _env_path("NATROB_FIGURES", artifacts() / "figures") / (name or profile())


def data_root() -> Path:
    """Where datasets are looked for: ``NATROB_DATA``; else ``./data`` of the checkout when it exists; else the
    shared data folder beside the checkout (``../shared/data``, see :func:`shared_mnist_root`) when it exists;
    else ``./data``."""
    if os.environ.get("NATROB_DATA"):
        return _env_path("NATROB_DATA", REPO / "data")
    local = REPO / "data"
    return local if local.is_dir() or shared_mnist_root() is None else shared_mnist_root()


def shared_mnist_root() -> Path | None:
    """The developers' machines carry the official MNIST (both splits) beside the checkout; users don't."""
    candidate = REPO.parent / "shared" / "data"
    return candidate if (candidate / "MNIST" / "raw").is_dir() else None
