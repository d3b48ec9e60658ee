"""Every path natrob reads or writes, in one place (showyourwork style).

Build artifacts are kept per profile, so that a run of one profile never writes another's files:
``results/<profile>/``, ``figures/<profile>/``, ``report/<profile>/index.html`` and
``notebooks/executed/<profile>/``. The profile travels as a value: each of these functions takes its name (a
notebook's comes from its ``PROFILE`` parameter, :func:`of`), and nothing reads it from the environment. Trained
models and finished evaluations are content-addressed (keyed by what produced them), so the model store and the
evaluation cache are shared by all profiles without collisions.

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


def checked(name) -> str:
    """A profile name as given (the value every artifact folder is named by; it travels as a value, never through
    the environment); raises ConfigError unless it is letters, digits, '-', '_' or '.'."""
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        raise ConfigError("profile", name, "a profile name of letters, digits, '-', '_' or '.'")
    return name


def of(params: dict | None) -> str:
    """The profile a notebook's parameters name (``PROFILE``; the quick profile's when they name none)."""
    return checked((params or {}).get("PROFILE") or DEFAULT_PROFILE)


def artifacts() -> Path:
    """Root of every build artifact (``NATROB_ARTIFACTS``, default the checkout)."""
    return _env_path("NATROB_ARTIFACTS", REPO)


def results_dir(name: str) -> Path:
    """``results/<profile>/``: the profile's result files."""
    return artifacts() / "results" / checked(name)


def checkpoints_dir() -> Path:
    """The model store (shared by profiles: keyed by model, data, training config and seed)."""
    return artifacts() / "checkpoints"


def eval_cache_dir() -> Path:
    """Finished evaluations (model x attack x eps x points x seed), so a killed notebook resumes."""
    return artifacts() / "cache" / "evaluations"


def executed_notebooks_dir(name: str) -> Path:
    """``notebooks/executed/<profile>/``: executed copies of the notebooks."""
    base = artifacts() / "notebooks" / "executed" if "NATROB_ARTIFACTS" in os.environ else NOTEBOOKS / "executed"
    return base / checked(name)


def report_dir(name: str) -> Path:
    """``report/<profile>/``: the HTML report."""
    return artifacts() / "report" / checked(name)


def figures_dir(name: str) -> Path:
    """``figures/<profile>/``: generated figures."""
    return _env_path("NATROB_FIGURES", artifacts() / "figures") / checked(name)


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
