"""Markdown for the findings pages: count values, percentages and numbers as text, tables, prose wrapping.

The value helpers give '–' (or 'not measured') for what a result file lacks, so a page renders from partial files.
"""
from __future__ import annotations

import textwrap


def kn(c) -> str:
    """A count value as ``k/n``; 'not measured' when its k is None, '–' for no count."""
    if not isinstance(c, dict) or c.get("n") is None:
        return "–"
    return "not measured" if c.get("k") is None else f"{c['k']}/{c['n']}"


def pct(frac, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage; '–' for None."""
    return "–" if not isinstance(frac, (int, float)) else f"{100 * frac:.{digits}f}%"


def num(v, spec: str = ".1f") -> str:
    return "–" if not isinstance(v, (int, float)) else format(v, spec)


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(header: list, rows: list) -> list:
    """A markdown table's lines."""
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


WIDTH_COLS = 118


def wrap(lines: list) -> list:
    """Prose lines wrapped at WIDTH_COLS (list items and quotes keep their prefix); tables and headings as they are."""
    out = []
    for line in lines:
        if len(line) <= WIDTH_COLS or line.startswith(("|", "#")):
            out.append(line)
            continue
        first, rest = ("- ", "  ") if line.startswith("- ") else ("> ", "> ") if line.startswith("> ") else ("", "")
        out += textwrap.wrap(line[len(first):], WIDTH_COLS, initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False)
    return out


def series(values, sep: str = " / ") -> str:
    return sep.join(values)


def pcts(rows) -> str:
    return series(num(x.get("pct"), ".0f") for x in rows or []) or "–"
