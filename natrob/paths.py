"""Every path natrob reads or writes, in one place (showyourwork style).

Environment overrides let tests and profiles redirect artifacts without touching code:
NATROB_ARTIFACTS (results, checkpoints, executed notebooks, report), NATROB_FIGURES,
NATROB_DATA (dataset roots; default ./data).
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
NOTEBOOKS = REPO / "notebooks"
PROFILES = REPO / "profiles"
REFERENCE_NUMBERS = PACKAGE / "reference_numbers.json"


def _env_path(var: str, default: Path) -> Path:
    value = os.environ.get(var)
    return Path(value).expanduser().resolve() if value else default


def artifacts() -> Path:
    return _env_path("NATROB_ARTIFACTS", REPO)


def results_dir() -> Path:
    return artifacts() / "results"


def checkpoints_dir() -> Path:
    return artifacts() / "checkpoints"


def executed_notebooks_dir() -> Path:
    return artifacts() / "notebooks" / "executed" if "NATROB_ARTIFACTS" in os.environ else NOTEBOOKS / "executed"


def report_dir() -> Path:
    return artifacts() / "report"


def figures_dir() -> Path:
    return _env_path("NATROB_FIGURES", artifacts() / "figures")


def data_root() -> Path:
    return _env_path("NATROB_DATA", REPO / "data")


def shared_mnist_root() -> Path | None:
    """The developers' machines carry the MNIST test split beside the checkout; users don't."""
    candidate = REPO.parent / "shared" / "data"
    return candidate if (candidate / "MNIST" / "raw").is_dir() else None
