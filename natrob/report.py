"""The HTML report: one self-contained file (figures embedded as base64) built only from result files and
figures, plus the executed notebooks rendered by nbconvert and linked from it."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from . import paths, reference
from .provenance import provenance, read_json, write_text

CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{border-bottom:2px solid #333}h2{margin-top:2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8em 0;font-size:.9em}td,th{border:1px solid #bbb;padding:.25em .6em;text-align:right}
th{background:#eee}td:first-child,th:first-child{text-align:left}.flag{color:#b00;font-weight:bold}.ok{color:#070}
.note{background:#fff8e0;border-left:4px solid #e0a800;padding:.5em 1em}img{max-width:100%;border:1px solid #ddd;margin:.5em 0}
nav a{margin-right:1em}code,pre{background:#f4f4f4;padding:0 .3em}pre{padding:.5em;overflow-x:auto;font-size:.8em}"""


def _table(rows, columns=None, fmt=None) -> str:
    if not rows:
        return "<p><em>no rows</em></p>"
    columns = columns or list(rows[0])
    fmt = fmt or {}

    def cell(c, v):
        if v is None or (isinstance(v, float) and v != v):
            return "–"
        if c in fmt:
            return fmt[c](v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return html.escape(str(v))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(c, r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _pivot(rows, index, columns, value) -> list:
    out = {}
    for r in rows:
        out.setdefault(r[index], {index: r[index]})[f"{r[columns]} (%)"] = _pct(r[value])
    return list(out.values())


def _pct(v):
    return "–" if v is None else f"{100 * v:.2f}"


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _results(prefix: str) -> list:
    folder = paths.results_dir()
    return [read_json(p) | {"_file": p.name} for p in sorted(folder.glob(f"{prefix}*.json"))]


def _figures(prefix: str) -> str:
    folder = paths.figures_dir()
    return "".join(_img(p, p.stem) for p in sorted(folder.glob(f"{prefix}*.png")))


def _render_notebooks(out: Path) -> list:
    from nbconvert import HTMLExporter
    import nbformat
    links = []
    exporter = HTMLExporter()
    (out / "notebooks").mkdir(parents=True, exist_ok=True)
    for nb_path in sorted(paths.executed_notebooks_dir().glob("[0-9][0-9]-*.ipynb")):
        try:
            body, _ = exporter.from_notebook_node(nbformat.read(nb_path, as_version=4))
        except Exception as exc:  # a half-written notebook must not stop the report
            body = f"<p>could not render {nb_path.name}: {html.escape(str(exc))}</p>"
        target = out / "notebooks" / (nb_path.stem + ".html")
        write_text(target, body)
        links.append(f'<li><a href="notebooks/{target.name}">{nb_path.stem}</a></li>')
    return links


def _verdict_section() -> str:
    audits = _results("06-audit")
    if not audits:
        return ('<p class="note">No audit results yet (notebook 06). Until the audit has run, the numbers below are '
                'the paper\'s own attacks only and say nothing about gradient masking.</p>')
    parts = []
    for a in audits:
        parts.append(f"<h3>{html.escape(a.get('dataset', {}).get('name', '?'))}</h3>")
        if a.get("summary"):
            parts.append(f'<p class="note">{html.escape(a["summary"])}</p>')
        rows = [dict(v, verdict=(f'<span class="flag">{v["verdict"]}</span>' if v["verdict"] != "consistent"
                                 else f'<span class="ok">{v["verdict"]}</span>')) for v in a.get("verdict", [])]
        parts.append("<p>Accuracy in %: the paper's figure, our PGD-40 (the paper's attack), and the worst case over "
                     "every attack of the audit, per model and eps.</p>")
        parts.append(_table(rows, ["model", "eps", "clean", "paper", "pgd", "worst_case", "verdict", "reasons"],
                            fmt={**{c: _pct for c in ("clean", "paper", "pgd", "worst_case")}, "verdict": str}))
        checks = a.get("checks", [])
        flagged = [c for c in checks if c.get("status") == "flag"]
        parts.append(f"<p>{len(flagged)} of {len(checks)} sanity checks flagged.</p>")
        if flagged:
            parts.append(_table(flagged, ["model", "eps", "check", "status", "detail"]))
        parts.append("<details><summary>all checks</summary>" + _table(checks, ["model", "eps", "check", "status", "detail"]) +
                     "</details>")
    return "".join(parts)


def _grid_section() -> str:
    """Notebook 07: which configuration comes closest to the paper's Table 1, and the strongest evaluation of it."""
    grids = _results("07-grid")
    if not grids:
        return "<p><em>notebook 07 has not run</em></p>"
    from .grid import table
    parts = []
    for g in grids:
        parts.append(f"<h3>{html.escape(g.get('dataset', {}).get('name', '?'))}</h3>"
                     f'<p class="note">{html.escape(g.get("summary", ""))}</p>'
                     f"<p>Scope: {html.escape(g.get('scope', ''))}. Accuracies: k/n with 95% Wilson intervals; cells "
                     f"marked NOT correct are evaluation protocols outside the threat model, shown only to see whether "
                     f"they produce the paper's numbers.</p>")
        parts.append(_figures(f"07-grid-{g.get('dataset', {}).get('name', '')}"))
        parts.append(_table(table(g.get("cells", [])), ["cell", "configuration", "threat model", "eps", "clean", "FGSM",
                                                        "PGD (paper settings)", "worst", "noise", "zero grad",
                                                        "median margin", "NFE fwd", "NFE bwd", "solver failures",
                                                        "wall s"]))
    return "".join(parts)


def build_report(profile: str = "quick", params: dict | None = None, timings: dict | None = None) -> Path:
    out = paths.report_dir()
    out.mkdir(parents=True, exist_ok=True)
    links = _render_notebooks(out)
    sec = []
    sec.append("<h2 id='claim'>Does the claim hold?</h2>" + _verdict_section())
    # Table 1: one row per (dataset, attack, model), "ours / paper" per eps
    t1 = []
    for r in _results("03-white-box"):
        groups = {}
        for row in r["table1"]:
            key = (r["dataset"]["name"], row["attack"], row["model"])
            g = groups.setdefault(key, {"dataset": key[0], "attack": key[1], "model": key[2],
                                        "clean (ours)": _pct(row["clean (ours)"])})
            g[f"eps={row['eps']:.4g}: ours / paper"] = f"{_pct(row['ours'])} / {_pct(row['paper'])}"
            g["_failures"] = g.get("_failures", 0) + (row.get("solver_failures") or 0)
        for g in groups.values():
            g["solver failures"] = g.pop("_failures")
        t1 += list(groups.values())
    sec.append("<h2 id='table1'>Table 1 — FGSM and PGD-40 (accuracy, %)</h2>"
               "<p>Ours / paper. The paper's column is its MNIST table for digits and MNIST runs, its CIFAR-10 table for "
               "CIFAR-10; our clean accuracy is on the same evaluated points.</p>" + _table(t1) + _figures("03-table1"))
    sec.append("<h2 id='fig1'>Fig. 1 — ResNet step size sweep</h2>" +
               f"<p>Paper: {html.escape(reference.numbers()['figure1']['paper_says'])}</p>" + _figures("02-fig1") +
               "".join(_table(_pivot(r["rows"], "h", "setting", "accuracy")) for r in _results("02-fig1")))
    sec.append("<h2 id='fig2'>Fig. 2 — DI²-FGSM</h2>" + f"<p>Paper: {html.escape(reference.numbers()['figure2']['paper_says'])}</p>" +
               _figures("03-fig2"))
    sec.append("<h2 id='fig3'>Fig. 3 — Boundary Attack</h2>" + f"<p>Paper: {html.escape(reference.numbers()['figure3']['paper_says'])}</p>" +
               _figures("04-fig3") + "".join(_table(r["summary"]) for r in _results("04-fig3")))
    t2 = _results("05-table2")
    sec.append("<h2 id='table2'>Table 2 — vs adversarial training</h2>" +
               ("".join(_table(r["rows"], fmt={c: _pct for c in ("clean", "robust", "paper clean", "paper robust")}) + _figures("05-")
                        for r in t2) if t2 else "<p><em>notebook 05 has not run</em></p>"))
    sec.append("<h2 id='grid'>What produces the paper's numbers? (notebook 07)</h2>" + _grid_section())
    lip = []
    for r in _results("01-lipschitz"):
        lip.append({"dataset": r["dataset"]["name"], "Eq.12 violations": r["eq12"]["violations"],
                    "Thm 3.1 violations": r["thm31_violations"], "Thm 3.2 violations": r["thm32_violations"],
                    **{f"log10 e^(bK) {k}": v for k, v in next(iter(r["thm32"].values()))["log10_growth_factor"].items()}})
    sec.append("<h2 id='lipschitz'>§3 — Lipschitz bounds</h2>" + _table(lip) + _figures("01-"))
    a1 = reference.numbers()["table_a1_neural_ode_training"]
    ode = (params or {}).get("ODE", {})
    sec.append("<h2 id='tablea1'>Table A1 — Neural ODE training configuration</h2>" +
               _table([{"setting": k, "paper MNIST": a1["mnist"].get(k), "paper CIFAR-10": a1["cifar10"].get(k)}
                       for k in a1["mnist"]]) +
               f"<p>This profile's ODE net: <code>{html.escape(json.dumps(ode))}</code> (LR schedule in the paper: "
               f"{html.escape(a1['lr_schedule'])}).</p>")
    sec.append("<h2 id='provenance'>Profile and provenance</h2>" +
               f"<p>Profile <b>{html.escape(profile)}</b>; per-notebook times (s): {html.escape(json.dumps(timings or {}))}</p>"
               f"<pre>{html.escape(json.dumps(params or {}, indent=1))}</pre>"
               f"<pre>{html.escape(json.dumps(provenance({'profile': profile}), indent=1))}</pre>"
               f"<h3>Executed notebooks</h3><ul>{''.join(links)}</ul>")
    nav = "".join(f'<a href="#{i}">{t}</a>' for i, t in [("claim", "Verdict"), ("table1", "Table 1"), ("fig1", "Fig 1"),
                  ("fig2", "Fig 2"), ("fig3", "Fig 3"), ("table2", "Table 2"), ("grid", "07 grid"), ("lipschitz", "§3"), ("tablea1", "Table A1"),
                  ("provenance", "Provenance")])
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>natrob report — {html.escape(profile)}</title>"
            f"<style>{CSS}</style></head><body><h1>natrob: Towards Natural Robustness — reproduction and audit</h1>"
            f"<nav>{nav}</nav>{''.join(sec)}</body></html>")
    return write_text(out / "index.html", page)
