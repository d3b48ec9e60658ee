"""The report's sections, derived from the chapter records (:mod:`natrob.chapters`), plus the two that belong to
no notebook (Table A1, provenance). RobustBench style: the report only renders result files; it imports no compute
module (each chapter module's section function reads the result files alone).

A section's ``context(results, env)`` turns the profile's result files whose names start with ``results`` into the
variables of its template; ``env`` holds the profile, its parameters, timings and the executed-notebook links.
``schema`` names the keys of the result file the section reads (a test checks them on the tiny profile's files).
The navigation is generated from :func:`sections`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Callable

from .. import chapters, reference
from .tables import table


@dataclass(frozen=True)
class Section:
    """One section of the report: anchor, titles, template, context function, result files and figures it reads."""
    id: str
    title: str
    nav: str
    template: str
    context: Callable
    results: str | None = None   # result-file prefix, e.g. "03-white-box"
    figures: tuple = ()          # figure-file prefixes shown in the section
    schema: dict = field(default_factory=dict)


def table_a1(results, env) -> dict:
    """The paper's Table A1 beside this profile's ODE net."""
    a1 = reference.numbers()["table_a1_neural_ode_training"]
    rows = [{"setting": k, "paper MNIST": a1["mnist"].get(k), "paper CIFAR-10": a1["cifar10"].get(k)} for k in a1["mnist"]]
    return {"table": table(rows), "ode": json.dumps((env["params"] or {}).get("ODE", {})), "lr_schedule": a1["lr_schedule"]}


def provenance_section(results, env) -> dict:
    """Which profile and commit produced each result file; parameters and timings."""
    return {"files": table(env["files"], html_columns=("profile",)), "timings": json.dumps(env["timings"] or {}),
            "params": json.dumps(env["params"] or {}, indent=1), "run": json.dumps(env["run"], indent=1),
            "links": env["links"]}


GENERAL = [
    Section("tablea1", "Table A1 — Neural ODE training configuration", "Table A1", "tablea1.html.j2", table_a1),
    Section("provenance", "Profile and provenance", "Provenance", "provenance.html.j2", provenance_section),
]


def _context(ch, name):
    return lambda results, env: ch.function(name)(results, env)


def sections(records=None) -> list:
    """Every section of the report in order: the chapters' (:func:`natrob.chapters.sections`), then
    :data:`GENERAL`. ``records`` (default :data:`natrob.chapters.CHAPTERS`) the chapter records to derive from."""
    return [Section(s.id, s.title, s.nav, s.template, _context(ch, s.context), s.results, s.figures, s.schema)
            for ch, s in chapters.sections(records)] + GENERAL
