"""One audit as a self-contained HTML page (``python -m natrob.run.audit``), rendered by the report's own templates:
the headline sentence, the four findings per eps, the checks that flagged (all of them folded), every attack's
count with its 95% interval, and the figure of the paper vs the paper's attack vs the worst case."""
from __future__ import annotations

import base64
import io
from pathlib import Path

from ..chapters import ch06_audit
from ..results import write_text
from markupsafe import Markup

from . import _env
from ..chapters.tables import table
from ..stats import ci


def attack_rows(payload: dict) -> list:
    """Every attack's row of every model and eps: its robust count with interval, and which points it attacked."""
    return [{"model": m, "eps": pe["eps"], "attack": a["label"], "role": a["role"],
             "attacked": "survivors of the attacks above" if a.get("cumulative") else "every clean-correct point",
             "robust": ci(a["robust"]), "error": a.get("error")}
            for m, r in payload["models"].items() for pe in r.get("per_eps", [])
            for a in pe.get("attacks", {}).values()] + \
           [{"model": m, "eps": pe["eps"], "attack": "worst case (per point, over every attack)", "role": "",
             "attacked": "", "robust": ci(pe.get("worst_case")), "error": None}
            for m, r in payload["models"].items() for pe in r.get("per_eps", [])]


def _figure(payload: dict) -> dict:
    from .plots import setup
    setup()
    fig = ch06_audit.audit(payload, {})
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt
    plt.close(fig)
    return {"caption": "the paper's attack (and the paper's figure, where it has one) vs the worst case, 95% intervals",
            "src": "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()}


def render_audit_page(payload: dict, path, title: str, commit: str) -> Path:
    """Write the page for an audit payload (:func:`natrob.chapters.ch06_audit.payload`) to ``path`` atomically."""
    jinja = _env()
    claim = Markup(jinja.get_template("claim.html.j2").render(results=[payload], profile=title,
                                                              **ch06_audit.section([payload], {})))
    attacks = table(attack_rows(payload), ["model", "eps", "attack", "role", "attacked", "robust", "error"])
    sections = [{"id": "verdict", "title": "Does its robustness survive the strongest evaluation?", "nav": "Verdict",
                 "body": claim, "figures": [_figure(payload)] if any(
                     f["worst_case"] and f["worst_case"].get("k") is not None for f in payload["findings"]) else []},
                {"id": "attacks", "title": "Every attack", "nav": "Attacks", "body": attacks, "figures": []}]
    page = jinja.get_template("page.html.j2").render(profile=title, subject=title[:1].upper() + title[1:],
                                                     commit=commit[:12], sections=sections)
    return write_text(Path(path), page)
