"""Figure helpers shared by the notebooks: seaborn style and saving under figures/ (always generated)."""
from __future__ import annotations

from pathlib import Path

from .. import paths


def setup():
    """Seaborn's whitegrid theme and the figure size and resolutions every notebook figure uses."""
    import matplotlib
    import seaborn as sns
    matplotlib.rcParams.update({"figure.dpi": 100, "savefig.dpi": 120, "figure.figsize": (6.4, 4.0)})
    sns.set_theme(style="whitegrid", context="notebook")


def save(fig, name: str, profile: str) -> Path:
    """Save ``fig`` as ``figures/<profile>/<name>.png`` (``NATROB_FIGURES`` moves ``figures/``); returns the path."""
    folder = paths.figures_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    fig.savefig(path, bbox_inches="tight")
    return path
