"""Small helpers that turn result rows into HTML: counts with their 95% interval, and tables via pandas."""
from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd
from markupsafe import Markup

from ..stats import ci  # noqa: F401  (ch09_mechanism imports it from here; the others from natrob.stats)


def pct(v) -> str:
    """A fraction in [0, 1] as a percentage with two decimals, or '–'."""
    return "–" if v is None else f"{100 * v:.2f}"


def status(v: str) -> str:
    """A finding's status, coloured: green where the paper's claim or our evaluation holds, red where not."""
    good = v in ("reproduced", "converged", "no sign", "feasible", "pass")
    muted = v in ("not applicable", "no paper figure", "not measured")
    return html.escape(v) if muted else f'<span class="{"ok" if good else "flag"}">{html.escape(v)}</span>'


def table(rows: list, columns: list | None = None, html_columns: tuple = ()) -> str:
    """An HTML table of ``rows`` (dicts). Text is escaped except in ``html_columns``; floats get 4 digits."""
    if not rows:
        return Markup("<p><em>no rows</em></p>")
    df = pd.DataFrame(rows)
    if columns:
        df = df[[c for c in columns if c in df.columns]]

    def cell(col, v):
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        if col in html_columns:
            return str(v)
        return html.escape(f"{v:.4g}" if isinstance(v, float) else str(v))
    df = pd.DataFrame({c: [cell(c, v) for v in df[c]] for c in df.columns})
    return Markup(df.to_html(index=False, escape=False, border=0))


def image(path: Path) -> dict:
    """A figure embedded as base64, so the report is one file that opens offline."""
    return {"caption": path.stem, "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}
