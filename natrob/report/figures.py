"""Every figure of the study, drawn from a result file's payload (what a notebook writes with ``ctx.write``).

Notebooks and published results draw the same figures from the same numbers: a notebook builds its payload,
draws the figure from it and writes it; ``python -m natrob.report.figures --profile P`` redraws every figure of a
profile from its result files, and ``--published`` from the committed ``reference-results/<profile>/`` (the report's
``--published`` mode uses that). Figures are always generated, never edited.

:func:`registry` maps a figure name (its file is ``figures/<profile>/<name>-<dataset>.png``) to the prefix of the
result file it reads and the function that draws it, as the chapter records say (:mod:`natrob.chapters`); the
drawing functions live in the chapter modules. Each takes ``(payload, params)``: the result's payload and the
notebook's parameters (a written result carries them as ``provenance.params``) and returns a Figure.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import chapters, paths
from . import plots
from ..chapters.drawing import dataset_name, pyplot
from ..errors import UnknownNameError
from ..results import read_json


def registry() -> dict:
    """{figure name: (result-file prefix, draw(payload, params))}, derived from :data:`natrob.chapters.CHAPTERS`
    (the drawing function lives in the chapter's module)."""
    return {name: (prefix, ch.figures[name].draw) for name, (prefix, ch) in chapters.figure_table().items()}


def save(name: str, payload: dict, params: dict, profile: str | None = None) -> Path:
    """Draw figure ``name`` of ``FIGURES`` from ``payload`` (its result's payload, or the part the figure reads plus
    ``dataset``) and save it as ``figures/<profile>/<name>-<dataset>.png`` (``profile``: default the one
    ``params`` name); returns the path. Outside a notebook kernel the figure is closed once saved."""
    known = registry()
    if name not in known:
        raise UnknownNameError("figure", name, known)
    fig = known[name][1](payload, params)
    path = plots.save(fig, f"{name}-{dataset_name(payload)}", profile or paths.of(params))
    if "ipykernel" not in sys.modules:
        pyplot().close(fig)
    return path


def save_for(result_prefix: str, payload: dict, params: dict, profile: str | None = None) -> list:
    """Draw and save every figure read from a result with this prefix; returns their paths. Notebooks call it
    with the payload they are about to write, so the figure comes from exactly the numbers written."""
    return [save(name, payload, params, profile) for name, (prefix, _) in registry().items() if prefix == result_prefix]


def render_all(results_dir: Path, profile: str) -> list:
    """Redraw every figure from the result files in ``results_dir`` into ``figures/<profile>/``."""
    plots.setup()
    out = []
    for prefix in dict.fromkeys(p for p, _ in registry().values()):
        for path in sorted(Path(results_dir).glob(f"{prefix}-*.json")):
            payload = read_json(path)
            params = payload.get("provenance", {}).get("params", {})
            out += save_for(prefix, payload, params, profile)
    return out


def main(argv=None) -> int:
    """Command line: redraw a profile's figures from its result files (or the published ones)."""
    ap = argparse.ArgumentParser(prog="python -m natrob.report.figures",
                                 description="Redraw every figure from result files.")
    ap.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    ap.add_argument("--published", action="store_true",
                    help="read reference-results/<profile>/ and draw into figures/<profile>-published/")
    a = ap.parse_args(argv)
    src = paths.PUBLISHED / a.profile if a.published else paths.results_dir(a.profile)
    if not any(src.glob("*.json")):
        print(f"no result files in {src}", file=sys.stderr)
        return 1
    for p in render_all(src, a.profile + ("-published" if a.published else "")):
        print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
