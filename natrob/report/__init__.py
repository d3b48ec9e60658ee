"""The HTML report of one profile: ``report/<profile>/index.html``.

One self-contained file (figures embedded as base64) rendered from Jinja2 templates, built only from that
profile's result files and figures (the chapter records, :mod:`natrob.chapters`, declare which section reads which
file), plus
its executed notebooks rendered by nbconvert and linked from it. Every accuracy is shown with its count and
95% Wilson interval; the provenance section says which profile and commit produced each result file.

    python -m natrob.report [--profile quick] [--published]

``--published`` renders the committed results of a profile (``reference-results/<profile>/``) instead of a local
run: figures are redrawn from them (:mod:`natrob.report.figures`) and the report goes to
``report/<profile>-published/``.
"""
from __future__ import annotations

import argparse
import html
import sys
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from .. import paths
from ..provenance import provenance
from ..results import read_json, write_text
from .sections import Section, sections
from ..chapters.tables import image

TEMPLATES = Path(__file__).resolve().parent / "templates"


def _env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True)


def results(prefix: str, folder: Path) -> list:
    """The result files in ``folder`` whose names start with ``prefix``."""
    folder = Path(folder)
    return [read_json(p) | {"_file": p.name} for p in sorted(folder.glob(f"{prefix}*.json"))]


def _figures(prefixes, folder: Path) -> list:
    return [image(p) for prefix in prefixes for p in sorted(folder.glob(f"{prefix}*.png"))]


def _render_notebooks(out: Path, profile: str) -> list:
    from nbconvert import HTMLExporter
    import nbformat
    links, exporter = [], HTMLExporter()
    for nb_path in sorted(paths.executed_notebooks_dir(profile).glob("[0-9][0-9]-*.ipynb")):
        if nb_path.stem.endswith(".failed"):
            continue
        try:
            body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
        except Exception as exc:  # a half-written notebook must not stop the report
            body = f"<p>could not render {nb_path.name}: {html.escape(str(exc))}</p>"
        target = out / "notebooks" / (nb_path.stem + ".html")
        write_text(target, body)
        links.append((nb_path.stem, f"notebooks/{target.name}"))
    return links


def _result_files(profile: str, folder: Path) -> list:
    rows = []
    for p in sorted(folder.glob("*.json")):
        if p.name.startswith("_"):
            continue
        content = read_json(p)
        prov = content.get("provenance", {})
        made_by = prov.get("profile") or prov.get("params", {}).get("PROFILE")
        commit = str(prov.get("git_commit") or "?")
        ds = content.get("dataset")
        data = ds.get("protocol") if isinstance(ds, dict) else None
        shown = (html.escape(str(made_by)) if made_by == profile else
                 f'<span class="flag">{html.escape(str(made_by))} (not {html.escape(profile)})</span>')
        rows.append({"file": p.name, "data": str(data) if data else "", "profile": shown,
                     "commit": commit[:12] + ("+dirty" if commit.endswith("+dirty") else ""),
                     "created": prov.get("created"), "device": prov.get("device"), "wall (s)": prov.get("wall_time_s")})
    return rows


def data_used(found: list) -> list:
    """The datasets a section's result files were measured on, each once, as {"name", "protocol", "paper"}:
    ``paper`` is False where the file's protocol says it is not the paper's (e.g. ``mnist-testsplit``), so the page
    can flag it. Files that record no dataset (Table 1's per-model files, beside 03's) add nothing."""
    seen = {}
    for r in found:
        ds = r.get("dataset")
        if isinstance(ds, dict) and ds.get("name"):
            protocol = str(ds.get("protocol") or "")
            seen.setdefault((ds["name"], protocol), {"name": ds["name"], "protocol": protocol,
                                                     "paper": not protocol.upper().startswith("NOT")})
    return list(seen.values())


def render_section(section: Section, env: dict, jinja: Environment) -> dict:
    """One section's HTML: its template rendered with the context its entry computes from the result files, and
    the data its numbers come from (:func:`data_used`)."""
    found = results(section.results, env["results_dir"]) if section.results else []
    context = section.context(found, env)
    body = jinja.get_template(section.template).render(results=found, profile=env["profile"], **context)
    return {"id": section.id, "title": section.title, "nav": section.nav, "body": Markup(body),
            "data": data_used(found), "figures": _figures(section.figures, env["figures_dir"])}


def build_report(profile: str = paths.DEFAULT_PROFILE, params: dict | None = None, timings: dict | None = None,
                 published: bool = False, runs: dict | None = None) -> Path:
    """Render ``report/<profile>/index.html`` from that profile's results, figures and executed notebooks; with
    ``published``, ``report/<profile>-published/index.html`` from ``reference-results/<profile>/`` and figures
    redrawn from those files (no executed notebooks: they are not published). ``timings``: seconds per notebook
    (``_runs.json``'s ``_timings``); ``runs``: its ``_last_run`` and ``_machine`` entries, for the provenance
    section's timing table (:func:`natrob.report.timings.timing_rows`)."""
    profile = paths.checked(profile)
    folder = paths.PUBLISHED / profile if published else paths.results_dir(profile)
    shown = profile + "-published" if published else profile  # the published files' figures and report, apart
    if published:
        from .figures import render_all
        render_all(folder, shown)
    out = paths.report_dir(shown)
    out.mkdir(parents=True, exist_ok=True)
    run = provenance({"profile": profile})
    env = {"profile": profile, "params": params, "timings": timings, "runs": runs or {},
           "links": [] if published else _render_notebooks(out, profile),
           "files": _result_files(profile, folder), "run": run, "results_dir": folder,
           "figures_dir": paths.figures_dir(shown)}
    jinja = _env()
    rendered = [render_section(s, env, jinja) for s in sections()]
    page = jinja.get_template("page.html.j2").render(profile=profile, commit=run["git_commit"][:12], sections=rendered)
    return write_text(out / "index.html", page)


def main(argv=None) -> int:
    """Command line: rebuild one profile's report from its result files."""
    p = argparse.ArgumentParser(description="Build the HTML report of one profile from its result files.")
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    p.add_argument("--published", action="store_true",
                   help="render reference-results/<profile>/ (the committed results) into report/<profile>-published/")
    a = p.parse_args(argv)
    from ..profiles import load_profile
    stamps = (paths.PUBLISHED / a.profile if a.published else paths.results_dir(a.profile)) / "_runs.json"
    recorded = read_json(stamps) if stamps.exists() else {}
    runs = {k: recorded[k] for k in ("_last_run", "_machine") if k in recorded}
    print(build_report(a.profile, load_profile(a.profile), recorded.get("_timings"), published=a.published, runs=runs))
    return 0

