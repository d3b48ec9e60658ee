"""Drawing helpers the chapters' figure functions share: headless pyplot, frames of result rows, the legend
beside the axes. Only matplotlib and pandas, imported on first use (the report imports chapters without them)."""
from __future__ import annotations

import os
import sys


def pyplot():
    """matplotlib.pyplot, headless (Agg) unless a notebook already chose its backend."""
    import matplotlib
    if "matplotlib.pyplot" not in sys.modules and not os.environ.get("MPLBACKEND"):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def frame(rows):
    """A pandas DataFrame of ``rows`` (dicts)."""
    import pandas as pd
    return pd.DataFrame(rows)


def dataset_name(payload) -> str:
    """The dataset name a payload describes ('?' when it does not)."""
    return payload.get("dataset", {}).get("name", "?")


def accuracies(rows, *fields):
    """A DataFrame of ``rows`` with each count-value field replaced by its accuracy in [0, 1] (None where not
    measured): what a plot draws; the counts stay in the result file."""
    return frame([r | {f: (r[f] or {}).get("accuracy") for f in fields} for r in rows])


def legend_outside(ax, fig, layout: bool = True, **kw):
    """The axes' legend beside them (right, top-aligned), never on the data; with ``layout`` the figure is laid
    out again to fit it (figures are saved with a tight bounding box either way, legend included)."""
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kw)
    if layout:
        fig.tight_layout()
