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

Any dict with the same keys is a budget too (the profiles' ``AUDIT_BUDGET``); missing keys take the audit's
defaults.
"""
from __future__ import annotations

from .errors import ConfigError

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
