"""The audit's named budgets: how hard :func:`natrob.audit.audit_model` attacks, written down once.

A budget sizes the attacks of the audit's plan (:func:`natrob.audit.attack_plan`); every budget runs every attack
of the plan (FGSM, the paper's PGD-40, random noise, the constant image, PGD with restarts, Square, then on the
points that survived all of those AutoAttack, a decision-based Boundary attack, transfer and, for ODE nets, the
adaptive attacks through other solves of the same vector field). Only their sizes differ:

========== ============== ========= ===================== ========== ======== ==========================
budget     PGD             Square    AutoAttack            Boundary   adaptive  meant for
========== ============== ========= ===================== ========== ======== ==========================
quick      100 steps x 2   300       20 iters, 3 targets   300        20 steps  a first look; the quick profile
standard   100 steps x 5   1,000     100 iters, 9 targets  1,000      40 steps  a reviewer's audit
strong     100 and 1,000   5,000     100 iters, 9 targets  5,000      100 steps AutoAttack's standard sizes
           steps x 10                (Square 5,000)
========== ============== ========= ===================== ========== ======== ==========================

"AutoAttack" is natrob's cascade of APGD-CE, APGD-T (the targets), FAB-T and Square (natrob.attacks.autoattack).
Measured cost on 2 cores (``bench/audit_budgets.py``, one eps, 100 digits test points, a 2-conv CNN and the quick
profile's 32-channel ODE net at t1 = 100) is in the README's "Audit your own model"; an attack's cost scales with
the points still robust when it starts, so a robust model costs far more than a broken one.

Any dict with the same keys is a budget too (the profiles' ``AUDIT_BUDGET``); missing keys take
:data:`AUDIT_DEFAULTS` (:func:`audit_settings`). Notebook 07's grid has budgets of its own keys
(``GRID_BUDGET``), whose missing keys take :data:`GRID_DEFAULTS` (:func:`grid_settings`). Every default of both
lives here, and so does the id of the audit's PGD with restarts (:func:`pgd_id`), which the strongest
evaluation (:mod:`natrob.audit.strongest`) selects by.
"""
from __future__ import annotations

from ..errors import ConfigError

BUDGETS = {
    "quick": {"pgd_steps": [100], "pgd_restarts": 2, "square_queries": 300, "aa_iter": 20, "aa_square_queries": 200,
              "aa_targets": 3, "boundary_queries": 300, "adaptive_steps": 20, "fixed_steps": 20, "noise_trials": 10,
              "unbounded_steps": 50},
    "standard": {"pgd_steps": [100], "pgd_restarts": 5, "square_queries": 1000, "aa_iter": 100,
                 "aa_square_queries": 1000, "aa_targets": 9, "boundary_queries": 1000, "adaptive_steps": 40,
                 "fixed_steps": 20, "noise_trials": 20, "unbounded_steps": 100},
    "strong": {"pgd_steps": [100, 1000], "pgd_restarts": 10, "square_queries": 5000, "aa_iter": 100,
               "aa_square_queries": 5000, "aa_targets": 9, "boundary_queries": 5000, "adaptive_steps": 100,
               "fixed_steps": 50, "noise_trials": 100, "unbounded_steps": 200},
}
KEYS = frozenset(k for b in BUDGETS.values() for k in b) | {"eot_iter", "eot_steps", "draws", "random_passes",
                                                            "adaptive"}

# what an audit budget that leaves a key out gets (a name of BUDGETS sets all but the last five)
AUDIT_DEFAULTS = {"pgd_steps": [100], "pgd_restarts": 1, "square_queries": 5000, "aa_iter": 100,
                  "aa_square_queries": 5000, "aa_targets": 9, "boundary_queries": 1000, "adaptive_steps": 20,
                  "fixed_steps": 20, "noise_trials": 10, "unbounded_steps": 50, "eot_iter": 10, "eot_steps": 40,
                  "draws": 5, "random_passes": 16, "adaptive": True}
# AutoAttack's rand version draws twice as many samples per step as EOT-PGD when the budget names no eot_iter
# (one eot_iter, when given, sizes both)
AA_EOT_ITER = 20

# the grid's budget (notebook 07, GRID_BUDGET): PGD steps x restarts and Square queries on the survivors (0: none),
# the CW-loss variants, and which cells also attack through a float64 copy ("base", "all")
GRID_DEFAULTS = {"pgd_steps": 100, "pgd_restarts": 1, "square_queries": 0, "cw": True, "float64": "base"}


def audit_settings(budget: dict) -> dict:
    """Every setting of audit budget ``budget`` (a dict; :func:`resolve` checks its keys): its own values, and
    :data:`AUDIT_DEFAULTS` for those it leaves out, plus ``aa_eot_iter`` (the rand AutoAttack's draws per step:
    ``eot_iter`` when given, else :data:`AA_EOT_ITER`)."""
    return {**AUDIT_DEFAULTS, **budget, "aa_eot_iter": budget.get("eot_iter", AA_EOT_ITER)}


def grid_settings(budget: dict | None) -> dict:
    """Every setting of grid budget ``budget`` (a dict of :data:`GRID_DEFAULTS`' keys, or None): its own values
    and the defaults for those it leaves out. Raises ConfigError naming a key the grid does not know."""
    unknown = sorted(set(budget or {}) - set(GRID_DEFAULTS))
    if unknown:
        raise ConfigError("GRID_BUDGET", f"a dict with keys {unknown}", "keys among " + ", ".join(GRID_DEFAULTS))
    return {**GRID_DEFAULTS, **(budget or {})}


def pgd_id(steps: int, restarts: int) -> str:
    """The id of the audit's PGD with ``steps`` steps and ``restarts`` restarts in its plan and result files."""
    return f"pgd{steps}x{restarts}"


def resolve(budget) -> dict:
    """The budget dict for a name of :data:`BUDGETS` or a dict of the same keys (returned as a copy).
    Raises ConfigError naming the value and what is allowed."""
    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise ConfigError("budget", budget, "one of " + ", ".join(BUDGETS) + ", or a dict of their keys")
        return dict(BUDGETS[budget])
    if isinstance(budget, dict):
        unknown = sorted(set(budget) - KEYS)
        if unknown:
            raise ConfigError("budget", f"a dict with keys {unknown}", "keys among " + ", ".join(sorted(KEYS)))
        return dict(budget)
    raise ConfigError("budget", budget, "one of " + ", ".join(BUDGETS) + ", or a dict of their keys")
