"""Notebook 09's parameters as one typed value: :class:`MechanismParams`, built once from the parameters cell.

Every default a null parameter stands for is resolved here, once (``SAT_SCALED_N`` null: ``SAT_TABLE1_N``; a null
size: every eval point; ``SAT_STRONG_N`` null: 40), so no step re-derives a size. Each field names its parameter.
"""
from __future__ import annotations

from dataclasses import dataclass

from .param_checks import epochs as _epochs, positive as _positive, size as _size
from ..harness.precision import check_precision

STRONG_N = 40  # SAT_STRONG_N null: AutoAttack's cost on an ODE net bounds the strongest evaluation's points


@dataclass(frozen=True)
class MechanismParams:
    """Notebook 09's parameters, typed and resolved. Sizes are numbers of eval points (the first ones); radii are
    L-inf in pixel units of [0, 1] images; ``pipelines`` are :class:`natrob.harness.precision.Precision` values."""
    seed: int                      # SEED
    eps: tuple                     # EPS_TABLE1
    pgd_steps: int | None          # PGD_STEPS (None: the paper's 40)
    pgd_alpha: float | None        # PGD_ALPHA (None: the paper's 0.01)
    audit_budget: dict             # AUDIT_BUDGET (AutoAttack's iterations in the strongest evaluation)
    model: dict                    # SAT_MODEL, null: ODE
    until: int | None              # SAT_UNTIL
    cell_epochs: tuple | None      # SAT_CELL_EPOCHS (None: every stored epoch)
    cell_n: int                    # SAT_CELL_N
    cos_n: int                     # SAT_COS_N
    map_n: int                     # SAT_MAP_N
    scales: tuple                  # SAT_SCALES
    table1_n: int                  # SAT_TABLE1_N
    scaled_n: int                  # SAT_SCALED_N, null: SAT_TABLE1_N
    table1_scales: tuple           # SAT_TABLE1_SCALES
    pipelines: tuple               # SAT_PIPELINES
    pipeline_epochs: tuple | None  # SAT_PIPELINE_EPOCHS (None: the last)
    strong_n: int                  # SAT_STRONG_N
    strong_eps: tuple              # SAT_STRONG_EPS
    paper_model: dict | None       # SAT_PAPER_MODEL
    paper_until: int | None        # SAT_PAPER_UNTIL
    widths: tuple                  # ((channels, model entry) per WIDTH_CHANNELS): notebook 08's nets, margins read
    width_cell_epochs: tuple | None  # WIDTH_CELL_EPOCHS

    @classmethod
    def from_params(cls, params: dict, n_eval: int) -> "MechanismParams":
        """From the parameters cell's values (``params``: name -> value) and the number of eval points. Raises
        ConfigError naming the parameter, its value and what is allowed."""
        from .pipelines import PIPELINE_PRECISIONS
        from .width import width_entry
        g = params.get
        table1_n = _size("SAT_TABLE1_N", g("SAT_TABLE1_N"), n_eval)
        until, paper_until = g("SAT_UNTIL"), g("SAT_PAPER_UNTIL")
        return cls(
            seed=int(g("SEED", 0)), eps=tuple(float(e) for e in params["EPS_TABLE1"]), pgd_steps=g("PGD_STEPS"),
            pgd_alpha=g("PGD_ALPHA"), audit_budget=dict(params["AUDIT_BUDGET"]), model=g("SAT_MODEL") or params["ODE"],
            until=int(until) if until else None, cell_epochs=_epochs("SAT_CELL_EPOCHS", g("SAT_CELL_EPOCHS")),
            cell_n=_size("SAT_CELL_N", g("SAT_CELL_N"), n_eval), cos_n=_size("SAT_COS_N", g("SAT_COS_N", 20), 20),
            map_n=_size("SAT_MAP_N", g("SAT_MAP_N"), n_eval), scales=_positive("SAT_SCALES", params["SAT_SCALES"]),
            table1_n=table1_n, scaled_n=_size("SAT_SCALED_N", g("SAT_SCALED_N"), table1_n),
            table1_scales=_positive("SAT_TABLE1_SCALES", g("SAT_TABLE1_SCALES")),
            pipelines=tuple(check_precision(p, PIPELINE_PRECISIONS, "SAT_PIPELINES")
                            for p in g("SAT_PIPELINES") or ["float32"]),
            pipeline_epochs=_epochs("SAT_PIPELINE_EPOCHS", g("SAT_PIPELINE_EPOCHS")),
            strong_n=_size("SAT_STRONG_N", g("SAT_STRONG_N"), STRONG_N),
            strong_eps=tuple(float(e) for e in g("SAT_STRONG_EPS") or [0.3]),
            paper_model=g("SAT_PAPER_MODEL"), paper_until=int(paper_until) if paper_until else None,
            widths=tuple((int(c), width_entry(params, c)) for c in g("WIDTH_CHANNELS") or ()),
            width_cell_epochs=_epochs("WIDTH_CELL_EPOCHS", g("WIDTH_CELL_EPOCHS") or None))

    @property
    def attack(self) -> dict:
        """The paper's PGD as this profile runs it (:func:`natrob.reference.paper_attack` of ``pgd_steps``,
        ``pgd_alpha``), the spec every step takes."""
        from ..reference import paper_attack
        return paper_attack(self.pgd_steps, self.pgd_alpha)

    def sizes(self) -> dict:
        """The result file's "n": the points each step ran on."""
        return {"cells": self.cell_n, "map": self.map_n, "table1": self.table1_n, "scaled": self.scaled_n,
                "strongest": self.strong_n}
