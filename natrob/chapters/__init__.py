"""The study's chapters: one record per notebook, from which every registry is derived.

A chapter is a numbered notebook and its module (``natrob.chapters.chNN_*``). The module holds what turns the
notebook's measurements into its result file and what presents that file: ``payload(...)`` builds the result
payload, one function per figure draws it from the payload, one function per report section turns the result
files into the section's context, and ``cost(p, unit)`` estimates the chapter's device-hours under profile ``p``
(:mod:`natrob.run.gpu_check`). Its record in :data:`CHAPTERS` holds them (the functions themselves, so an editor's
go-to-definition reaches them), with the counts its result files hold (the declared schema,
:mod:`natrob.report.schemas`). These registries are derived from :data:`CHAPTERS`, never written twice:

- ``natrob.report.schemas.schemas()``: result-file prefix -> count patterns (``verify`` compares what is declared
  there);
- ``natrob.report.figures.registry()``: figure name -> (result prefix, drawing function);
- ``natrob.report.sections.sections()``: the report's sections, in order, and its navigation;
- ``natrob.run.costs.paper_estimate``: one cost row per chapter (its ``cost(p, units)`` with a
  :class:`natrob.run.costs.Units`);
- ``natrob.run.runner.training_jobs``: the training jobs a side-by-side run starts first (a record's ``jobs``).

Adding notebook 10 touches three files: the notebook, its module (``natrob/chapters/ch10_*.py``), and one
:class:`Chapter` entry here (imported beside the others, appended to :data:`CHAPTERS`, every field by keyword).
A section without a template of its own is rendered by ``chapter.html.j2`` from the ``paragraphs`` and ``tables``
its context returns.

Chapter modules import no compute module at import time (the report imports them to render result files; a test
checks that ``natrob.report`` pulls in neither torch nor the harness), so this module imports them all at import
time; ``cost`` and any ``jobs`` import what they need inside.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from . import jobs
from . import (ch01_lipschitz, ch02_step_size, ch03_white_box, ch04_black_box, ch05_table2, ch06_audit, ch07_grid,
               ch08_width, ch09_mechanism, ch10_published)

# context(result files found for the section, env) -> the template's variables (natrob.report.sections)
Context = Callable[[list, dict], dict]
# draw(payload, params) -> a matplotlib figure (natrob.report.figures)
Draw = Callable[[dict, dict], object]


@dataclass(frozen=True, kw_only=True)
class Section:
    """A section of the report (a chapter's, or one of the report's own, :data:`natrob.report.sections.GENERAL`):
    anchor ``id``, ``title``, ``nav`` label, ``context`` (the function that turns the result files into the
    template's variables), the result prefix and figure prefixes it shows, the template (default
    ``chapter.html.j2``), its place among the chapters' sections (``order``, ascending) and ``schema``: the payload
    keys it reads, with what they hold."""
    id: str
    title: str
    nav: str
    context: Context
    results: str | None = None
    figures: tuple[str, ...] = ()
    template: str = "chapter.html.j2"
    order: int = 50
    schema: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Figure:
    """A figure of a chapter: the result-file prefix whose payload it reads and the function that draws it."""
    result: str
    draw: Draw


@dataclass(frozen=True, kw_only=True)
class Chapter:
    """One notebook. ``number`` ('07'); ``results`` {result-file prefix: the key patterns of its counts};
    ``figures`` {figure name: :class:`Figure`}; ``sections`` its report sections; ``cost`` its cost-row function
    ``cost(p, units) -> row`` (None: no device cost); ``payload`` the function that builds its result payload from
    the notebook's measurements (None where a compute module builds it and the chapter only adds the sentences: 08
    :mod:`natrob.study.width`, 09 :mod:`natrob.study.mechanism`); ``jobs`` the function ``jobs(params, profile) ->
    [(label, command)]`` naming the models a side-by-side run trains as jobs of their own before the notebook
    (:mod:`natrob.chapters.jobs`; None: none)."""
    number: str
    results: dict[str, tuple[str, ...]]
    figures: dict[str, Figure] = field(default_factory=dict)
    sections: tuple[Section, ...] = ()
    cost: Callable[[dict, object], dict] | None = None
    payload: Callable[..., dict] | None = None
    jobs: Callable[[dict, str], list] | None = None


CHAPTERS = (
    Chapter(
        number="01", payload=ch01_lipschitz.payload, cost=ch01_lipschitz.cost,
        results={"01-lipschitz": ()},  # bound violations only, asserted 0 by the notebook
        figures={"01-thm31": Figure(result="01-lipschitz", draw=ch01_lipschitz.thm31),
                 "01-thm32": Figure(result="01-lipschitz", draw=ch01_lipschitz.thm32),
                 "01-skipnets": Figure(result="01-lipschitz", draw=ch01_lipschitz.skipnets)},
        sections=(Section(id="lipschitz", title="§3 — Lipschitz bounds", nav="§3", context=ch01_lipschitz.section,
                          results="01-lipschitz", figures=("01-",), template="lipschitz.html.j2", order=80,
                          schema={"eq12": "violations", "thm31_violations": "count", "thm32_violations": "count",
                                  "thm32": "per perturbation: log10_growth_factor"}),)),
    Chapter(
        number="02", payload=ch02_step_size.payload, cost=ch02_step_size.cost,
        results={"02-fig1": ("rows[].robust",)},
        figures={"02-fig1": Figure(result="02-fig1", draw=ch02_step_size.fig1)},
        sections=(Section(id="fig1", title="Fig. 1 — ResNet step size sweep", nav="Fig 1",
                          context=ch02_step_size.section, results="02-fig1", figures=("02-fig1",),
                          template="fig1.html.j2", order=30, schema={"rows": "h, setting, robust (a count)"}),)),
    Chapter(
        number="03", payload=ch03_white_box.payload, cost=ch03_white_box.cost,
        results={"03-table1": ("clean", "rows[].robust", "worst_case[].robust"),
                 "03-white-box": ("table1[].clean", "table1[].robust", "fig2[].robust")},
        figures={"03-fig2": Figure(result="03-white-box", draw=ch03_white_box.fig2),
                 "03-table1": Figure(result="03-white-box", draw=ch03_white_box.table1)},
        sections=(Section(id="table1", title="Table 1 — FGSM and the paper's PGD", nav="Table 1",
                          context=ch03_white_box.table1_section, results="03-white-box", figures=("03-table1",),
                          template="table1.html.j2", order=20,
                          schema={"table1": "rows: model, id, attack, eps, clean and robust (counts), paper",
                                  "dataset": "the dataset's description"}),
                  Section(id="fig2", title="Fig. 2 — DI²-FGSM", nav="Fig 2", context=ch03_white_box.fig2_section,
                          results="03-white-box", figures=("03-fig2",), template="fig2.html.j2", order=40,
                          schema={"fig2": "model, eps, robust (a count)"}))),
    Chapter(
        number="04", payload=ch04_black_box.payload, cost=ch04_black_box.cost,
        results={"04-fig3": ("curves[].robust", "summary[].clean", "summary[].found")},
        figures={"04-fig3": Figure(result="04-fig3", draw=ch04_black_box.fig3)},
        sections=(Section(id="fig3", title="Fig. 3 — Boundary Attack", nav="Fig 3", context=ch04_black_box.section,
                          results="04-fig3", figures=("04-fig3",), template="fig3.html.j2", order=45,
                          schema={"summary": "model, clean and found (counts), median_linf, median_l2, queries",
                                  "curves": "model, eps, robust (a count)"}),)),
    Chapter(
        number="05", payload=ch05_table2.payload, cost=ch05_table2.cost,
        results={"05-table2": ("rows[].clean", "rows[].robust")},
        figures={"05-table2": Figure(result="05-table2", draw=ch05_table2.table2)},
        sections=(Section(id="table2", title="Table 2 — vs adversarial training", nav="Table 2",
                          context=ch05_table2.section, results="05-table2", figures=("05-",),
                          template="table2.html.j2", order=50,
                          schema={"rows": "model, training, eps, clean and robust (counts), the paper's CIFAR-10 "
                                          "clean/robust"}),)),
    Chapter(
        number="06", payload=ch06_audit.payload, cost=ch06_audit.cost,
        results={"06-audit": ("findings[].clean", "findings[].paper_attack", "findings[].worst_case",
                              "models.*.per_eps[].clean", "models.*.per_eps[].attacks.*.robust",
                              "models.*.per_eps[].worst_case")},
        figures={"06-audit": Figure(result="06-audit", draw=ch06_audit.audit)},
        sections=(Section(id="claim", title="Does the claim hold?", nav="Verdict", context=ch06_audit.section,
                          results="06-audit", figures=("06-",), template="claim.html.j2", order=10,
                          schema={"headline": "one sentence per model", "findings": "four findings per model and eps",
                                  "checks": "sanity checks with points_differ",
                                  "models": "per model: per_eps counts and errors"}),)),
    Chapter(
        number="07", payload=ch07_grid.payload, cost=ch07_grid.cost,
        results={"07-grid": ("cells[].clean", "cells[].diagnostics.zero_grad", "cells[].diagnostics.zero_grad_float64",
                             "cells[].per_eps[].attacks.*", "cells[].per_eps[].fgsm", "cells[].per_eps[].pgd",
                             "cells[].per_eps[].noise", "cells[].per_eps[].worst", "cells[].per_eps[].correct_worst")},
        figures={"07-grid": Figure(result="07-grid", draw=ch07_grid.grid)},
        sections=(Section(id="grid", title="What produces the paper's numbers? (notebook 07)", nav="07 grid",
                          context=ch07_grid.section, results="07-grid", figures=("07-grid",),
                          template="grid.html.j2", order=60,
                          schema={"summary": "which configuration comes closest to Table 1 and whether the strongest "
                                             "evaluation breaks it",
                                  "scope": "which part of the full grid this profile runs",
                                  "cells": "per cell: counts per eps"}),)),
    Chapter(
        number="08", cost=ch08_width.cost, jobs=jobs.width_training,
        results={"08-width": ("cells[].clean", "cells[].zero_grad_float32", "cells[].zero_grad_float64",
                              "cells[].fgsm[].robust", "table1.*.clean", "table1.*.rows.*[].robust",
                              "worst_case.clean", "worst_case.rows[].robust", "worst_case.worst[].robust",
                              "protocols.variants.*.fgsm[].robust", "protocols.variants.*.pgd[].robust")},
        figures={"08-width-training": Figure(result="08-width", draw=ch08_width.width_training),
                 "08-width-fingerprint": Figure(result="08-width", draw=ch08_width.width_fingerprint)},
        sections=(Section(id="width", title="The paper's width (notebook 08)", nav="08 width",
                          context=ch08_width.section, results="08-width", figures=("08-width",), order=65,
                          schema={"findings": "sentences written from the numbers",
                                  "cells": "per width and epoch: probes and FGSM counts",
                                  "configurations": "Table 1 per configuration (percent) and RMS to the paper"}),)),
    Chapter(
        number="09", cost=ch09_mechanism.cost,
        results={"09-mechanism": ("cells[].clean", "cells[].zero_grad.*", "cells[].fgsm.*[].robust", "map.clean",
                                  "map.rows[].zero_alone", "map.rows[].zero_batched", "map.rows[].fgsm[].alone",
                                  "map.rows[].fgsm[].batched", "table1.*.clean", "table1.*.rows.*[].robust",
                                  "strongest.clean", "strongest.rows[].robust", "paper_schedule.cells[].clean",
                                  "paper_schedule.cells[].zero_grad.*", "paper_schedule.cells[].fgsm.*[].robust")},
        figures={"09-saturation-map": Figure(result="09-mechanism", draw=ch09_mechanism.saturation_map),
                 "09-margin-trend": Figure(result="09-mechanism", draw=ch09_mechanism.margin_trend),
                 "09-fingerprint": Figure(result="09-mechanism", draw=ch09_mechanism.fingerprint)},
        sections=(Section(id="mechanism", title="Why the paper's attack saw no gradient (notebook 09)",
                          nav="09 mechanism", context=ch09_mechanism.section, results="09-mechanism",
                          figures=("09-",), order=67,
                          schema={"findings": "sentences written from the numbers",
                                  "cells": "per stored epoch: summed lr, margins, zero gradients per protocol, FGSM",
                                  "map": "per protocol and logit scale: zero gradients alone and batched, FGSM",
                                  "widths": "per width of notebook 08 and stored epoch: summed lr, margins",
                                  "configurations": "Table 1 per pipeline (percent) and RMS to the paper"}),)),
    Chapter(
        number="10", payload=ch10_published.payload, cost=ch10_published.cost,
        results={"10-published-odes": ("clean[].clean", "subnormal[].logits_identical", "logged[].replayed",
                                       "logged[].fgsm", "pgd[].robust", "audit.findings[].clean",
                                       "audit.findings[].paper_attack", "audit.findings[].worst_case",
                                       "audit.models.*.per_eps[].clean", "audit.models.*.per_eps[].attacks.*.robust",
                                       "audit.models.*.per_eps[].worst_case")},
        figures={"10-published-odes": Figure(result="10-published-odes", draw=ch10_published.published_odes)},
        sections=(Section(id="published", title="Published Neural-ODE models under the audit (notebook 10)",
                          nav="10 published", context=ch10_published.section, results="10-published-odes",
                          figures=("10-published",), order=70,
                          schema={"verdict": "one sentence on TisODE's claim",
                                  "findings": "sentences written from the numbers",
                                  "source": "repository, commit, and per checkpoint its sha256",
                                  "logged": "per model and eps: the log, its attack replayed, FGSM (counts)",
                                  "pgd": "per model and eps: the paper's PGD (a count)",
                                  "audit": "the audit's findings, checks and per-model counts"}),)),
)


def schemas(chapters=None) -> dict:
    """{result-file prefix: count key patterns} of every chapter."""
    return {prefix: tuple(patterns) for ch in (chapters or CHAPTERS) for prefix, patterns in ch.results.items()}


def figure_table(chapters=None) -> dict:
    """{figure name: (result prefix, chapter)} of every chapter, in chapter order."""
    return {name: (fig.result, ch) for ch in (chapters or CHAPTERS) for name, fig in ch.figures.items()}


def sections(chapters=None) -> list:
    """[(chapter, Section)] of every chapter, in report order."""
    return sorted(((ch, s) for ch in (chapters or CHAPTERS) for s in ch.sections), key=lambda cs: cs[1].order)
