"""The study's chapters: one record per notebook, from which every registry is derived.

A chapter is a numbered notebook and its module (``natrob.chapters.chNN_*``). The module holds what turns the
notebook's measurements into its result file and what presents that file: ``payload(...)`` builds the result
payload, one function per figure draws it from the payload, one function per report section turns the result
files into the section's context, and ``cost(p, unit)`` estimates the chapter's device-hours under profile ``p``
(:mod:`natrob.gpu_check`). Its record in :data:`CHAPTERS` names them, with the counts its result files hold (the
declared schema, :mod:`natrob.schemas`). These registries are derived from :data:`CHAPTERS`, never written twice:

- ``natrob.schemas.schemas()``: result-file prefix -> count patterns (``verify`` compares what is declared there);
- ``natrob.figures.registry()``: figure name -> (result prefix, drawing function);
- ``natrob.report.sections.sections()``: the report's sections, in order, and its navigation;
- ``natrob.costs.paper_estimate``: one cost row per chapter (its ``cost(p, units)`` with a :class:`natrob.costs.Units`).

Adding notebook 08 touches three files: the notebook, its module (``natrob/chapters/ch08_*.py``), and one
:class:`Chapter` entry here. A section without a template of its own is rendered by ``chapter.html.j2`` from
the ``paragraphs`` and ``tables`` its context returns.

Chapter modules import no compute module at import time (the report imports them to render result files; a test
checks that ``natrob.report`` pulls in neither torch nor the harness); ``cost`` imports what it needs inside.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Section:
    """A report section of a chapter: anchor ``id``, ``title``, ``nav`` label, the context function's name in the
    chapter module, the result prefix and figure prefixes it shows, the template (default ``chapter.html.j2``),
    its place in the report (``order``, ascending) and ``schema``: the payload keys it reads, with what they hold."""
    id: str
    title: str
    nav: str
    context: str
    results: str | None = None
    figures: tuple = ()
    template: str = "chapter.html.j2"
    order: int = 50
    schema: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Chapter:
    """One notebook. ``number`` ('07'); ``module`` its module's dotted name; ``results`` {result-file prefix: the
    key patterns of its counts}; ``figures`` {figure name: (result prefix, drawing function's name)};
    ``sections`` its report sections; ``cost`` the name of its cost-row function (None: no device cost);
    ``payload`` the name of the function that builds its result payload from the notebook's measurements (None
    where a compute module builds it and the chapter only adds the sentences: 08 :mod:`natrob.width`, 09
    :mod:`natrob.mechanism`)."""
    number: str
    module: str
    results: dict
    figures: dict = field(default_factory=dict)
    sections: tuple = ()
    cost: str | None = "cost"
    payload: str | None = "payload"

    def function(self, name: str):
        """A function of the chapter's module by name (the module is imported on first use)."""
        return getattr(importlib.import_module(self.module), name)


_M = "natrob.chapters."
CHAPTERS = (
    Chapter("01", _M + "ch01_lipschitz", {"01-lipschitz": ()},  # bound violations only, asserted 0 by the notebook
            {"01-thm31": ("01-lipschitz", "thm31"), "01-thm32": ("01-lipschitz", "thm32"),
             "01-skipnets": ("01-lipschitz", "skipnets")},
            (Section("lipschitz", "§3 — Lipschitz bounds", "§3", "section", "01-lipschitz", ("01-",),
                     "lipschitz.html.j2", 80, {"eq12": "violations", "thm31_violations": "count",
                                               "thm32_violations": "count",
                                               "thm32": "per perturbation: log10_growth_factor"}),)),
    Chapter("02", _M + "ch02_step_size", {"02-fig1": ("rows[].robust",)}, {"02-fig1": ("02-fig1", "fig1")},
            (Section("fig1", "Fig. 1 — ResNet step size sweep", "Fig 1", "section", "02-fig1", ("02-fig1",),
                     "fig1.html.j2", 30, {"rows": "h, setting, robust (a count)"}),)),
    Chapter("03", _M + "ch03_white_box",
            {"03-table1": ("clean", "rows[].robust", "worst_case[].robust"),
             "03-white-box": ("table1[].clean", "table1[].robust", "fig2[].robust")},
            {"03-fig2": ("03-white-box", "fig2"), "03-table1": ("03-white-box", "table1")},
            (Section("table1", "Table 1 — FGSM and the paper's PGD", "Table 1", "table1_section", "03-white-box",
                     ("03-table1",), "table1.html.j2", 20,
                     {"table1": "rows: model, id, attack, eps, clean and robust (counts), paper",
                      "dataset": "the dataset's description"}),
             Section("fig2", "Fig. 2 — DI²-FGSM", "Fig 2", "fig2_section", "03-white-box", ("03-fig2",),
                     "fig2.html.j2", 40, {"fig2": "model, eps, robust (a count)"}))),
    Chapter("04", _M + "ch04_black_box", {"04-fig3": ("curves[].robust", "summary[].clean", "summary[].found")},
            {"04-fig3": ("04-fig3", "fig3")},
            (Section("fig3", "Fig. 3 — Boundary Attack", "Fig 3", "section", "04-fig3", ("04-fig3",), "fig3.html.j2",
                     45, {"summary": "model, clean and found (counts), median_linf, median_l2, queries",
                          "curves": "model, eps, robust (a count)"}),)),
    Chapter("05", _M + "ch05_table2", {"05-table2": ("rows[].clean", "rows[].robust")},
            {"05-table2": ("05-table2", "table2")},
            (Section("table2", "Table 2 — vs adversarial training", "Table 2", "section", "05-table2", ("05-",),
                     "table2.html.j2", 50, {"rows": "model, training, eps, clean and robust (counts), the paper's CIFAR-10 clean/robust"}),)),
    Chapter("06", _M + "ch06_audit",
            {"06-audit": ("findings[].clean", "findings[].paper_attack", "findings[].worst_case",
                          "models.*.per_eps[].clean", "models.*.per_eps[].attacks.*.robust",
                          "models.*.per_eps[].worst_case")},
            {"06-audit": ("06-audit", "audit")},
            (Section("claim", "Does the claim hold?", "Verdict", "section", "06-audit", ("06-",), "claim.html.j2", 10,
                     {"headline": "one sentence per model", "findings": "four findings per model and eps",
                      "checks": "sanity checks with points_differ", "models": "per model: per_eps counts and errors"}),)),
    Chapter("07", _M + "ch07_grid",
            {"07-grid": ("cells[].clean", "cells[].diagnostics.zero_grad", "cells[].diagnostics.zero_grad_float64",
                         "cells[].per_eps[].attacks.*", "cells[].per_eps[].fgsm", "cells[].per_eps[].pgd",
                         "cells[].per_eps[].noise", "cells[].per_eps[].worst", "cells[].per_eps[].correct_worst")},
            {"07-grid": ("07-grid", "grid")},
            (Section("grid", "What produces the paper's numbers? (notebook 07)", "07 grid", "section", "07-grid",
                     ("07-grid",), "grid.html.j2", 60,
                     {"summary": "which configuration comes closest to Table 1 and whether the strongest evaluation "
                                 "breaks it", "scope": "which part of the full grid this profile runs",
                      "cells": "per cell: counts per eps"}),)),
    Chapter("08", _M + "ch08_width",
            {"08-width": ("cells[].clean", "cells[].zero_grad_float32", "cells[].zero_grad_float64",
                          "cells[].fgsm[].robust", "table1.*.clean", "table1.*.rows.*[].robust", "worst_case.clean",
                          "worst_case.rows[].robust", "worst_case.worst[].robust",
                          "protocols.variants.*.fgsm[].robust", "protocols.variants.*.pgd[].robust")},
            {"08-width-training": ("08-width", "width_training"),
             "08-width-fingerprint": ("08-width", "width_fingerprint")},
            (Section("width", "The paper's width (notebook 08)", "08 width", "section", "08-width", ("08-width",),
                     order=65, schema={"findings": "sentences written from the numbers",
                                       "cells": "per width and epoch: probes and FGSM counts",
                                       "configurations": "Table 1 per configuration (percent) and RMS to the paper"}),),
            payload=None),
    Chapter("09", _M + "ch09_mechanism",
            {"09-mechanism": ("cells[].clean", "cells[].zero_grad.*", "cells[].fgsm.*[].robust", "map.clean",
                              "map.rows[].zero_alone", "map.rows[].zero_batched", "map.rows[].fgsm[].alone",
                              "map.rows[].fgsm[].batched", "table1.*.clean", "table1.*.rows.*[].robust",
                              "strongest.clean", "strongest.rows[].robust", "paper_schedule.cells[].clean",
                              "paper_schedule.cells[].zero_grad.*", "paper_schedule.cells[].fgsm.*[].robust")},
            {"09-saturation-map": ("09-mechanism", "saturation_map"), "09-margin-trend": ("09-mechanism", "margin_trend"),
             "09-fingerprint": ("09-mechanism", "fingerprint")},
            (Section("mechanism", "Why the paper's attack saw no gradient (notebook 09)", "09 mechanism", "section",
                     "09-mechanism", ("09-",), order=67,
                     schema={"findings": "sentences written from the numbers",
                             "cells": "per stored epoch: summed lr, margins, zero gradients per protocol, FGSM",
                             "map": "per protocol and logit scale: zero gradients alone and batched, FGSM",
                             "widths": "per width of notebook 08 and stored epoch: summed lr, margins",
                             "configurations": "Table 1 per pipeline (percent) and RMS to the paper"}),),
            payload=None),
    Chapter("10", _M + "ch10_published",
            {"10-published-odes": ("clean[].clean", "subnormal[].logits_identical", "logged[].replayed",
                                   "logged[].fgsm", "pgd[].robust", "audit.findings[].clean",
                                   "audit.findings[].paper_attack", "audit.findings[].worst_case",
                                   "audit.models.*.per_eps[].clean", "audit.models.*.per_eps[].attacks.*.robust",
                                   "audit.models.*.per_eps[].worst_case")},
            {"10-published-odes": ("10-published-odes", "published_odes")},
            (Section("published", "Published Neural-ODE models under the audit (notebook 10)", "10 published",
                     "section", "10-published-odes", ("10-published",), order=70,
                     schema={"verdict": "one sentence on TisODE's claim", "findings": "sentences from the numbers",
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
    return {name: (prefix, ch) for ch in (chapters or CHAPTERS) for name, (prefix, _) in ch.figures.items()}


def sections(chapters=None) -> list:
    """[(chapter, Section)] of every chapter, in report order."""
    return sorted(((ch, s) for ch in (chapters or CHAPTERS) for s in ch.sections), key=lambda cs: cs[1].order)
