"""AutoAttack — Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks", from ``pyautoattack`` (the official code packaged on PyPI), behind natrob's interface.

The standard version is APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square (5000 queries), 100 iterations
each, run as a cascade (each attack only sees the points the previous ones left robust). Components can be run
on their own (``apgd-ce``, ``apgd-t``, ``fab-t``, ``square``). For randomized defenses AutoAttack's ``rand``
version (``autoattack-rand``) runs APGD-CE and APGD-DLR with Expectation over Transformation (gradients averaged
over ``eot_iter`` = 20 draws). ``n_iter``, ``n_queries`` and ``n_target_classes`` below the standard values make
a *reduced* AutoAttack, and the name says so (``autoattack-reduced``) so results never pass it off as the
standard one.
"""
from __future__ import annotations

import contextlib
import logging
import re
import warnings

import torch

from ..errors import check_positive_int
from .base import Attack

STANDARD = {"n_iter": 100, "n_queries": 5000, "n_target_classes": 9}
COMPONENTS = ("apgd-ce", "apgd-t", "fab-t", "square")
# the DLR loss divides by z_(1) - z_(3) (needs 3 classes); its targeted form by z_(1) - (z_(3) + z_(4)) / 2 (4)
MIN_CLASSES = {"apgd-t": 4, "apgd-dlr": 3, "apgd-ce": 2, "fab-t": 2, "square": 2}
logging.getLogger("auto-attack").setLevel(logging.WARNING)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def captured_warnings():
    """Collect AutoAttack's own checks (randomness, probabilities, zero gradients, Square beating APGD, dynamic
    defenses, class count), which it only logs or warns, into a list of messages instead of printing them."""
    logger, handler = logging.getLogger("auto-attack"), _Collect()
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield handler.messages
        handler.messages += [str(w.message) for w in caught if "flags_doc" in str(w.message)]
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
        handler.messages[:] = [_short(m) for m in handler.messages]


def _short(msg: str) -> str:
    """AutoAttack's warning in a few words (its flags_doc.md explains each)."""
    m = re.search(r"there are (\d+) points with zero gradient", msg)
    if m:
        return f"{m.group(1)} points with zero gradient"
    m = re.search(r"Square Attack has decreased the robust accuracy of ([\d.]+%)", msg)
    if m:
        return f"Square lowered robust accuracy by {m.group(1)} after APGD"
    for key, short in (("randomized", "the forward pass looks random"),
                       ("probability distribution", "the output looks like probabilities"),
                       ("dynamic defense", "a dynamic defense (autograd inside forward)")):
        if key in msg:
            return short
    return re.sub(r"\s*See \S*flags_doc\.md for details\.?", "", msg).strip()


def runnable(components, n_classes: int) -> tuple:
    """(components that can run on ``n_classes`` classes, messages naming the ones skipped and why)."""
    keep = [c for c in components if n_classes >= MIN_CLASSES.get(c, 2)]
    skipped = [f"{c.upper()} skipped: it needs at least {MIN_CLASSES[c]} classes, the model has {n_classes}"
               for c in components if c not in keep]
    return keep, skipped


class _Logits(torch.nn.Module):
    """pyautoattack needs float32 logits from a module (it writes them into float32 buffers); keeps natrob
    models untouched."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.float()).float()


def _build(model, eps, attacks, n_iter, n_queries, n_target_classes, seed, device):
    from pyautoattack import AutoAttack as _AA
    version = "standard" if attacks is None else "custom"
    aa = _AA(_Logits(model), attacks=attacks, device=device, eps=eps, norm="Linf", seed=seed, version=version)
    aa.verbose = False
    for atk in (aa.apgd, aa.apgd_targeted, aa.fab):
        atk.n_iter = n_iter
    aa.square.n_queries = n_queries
    aa.apgd_targeted.n_target_classes = aa.fab.n_target_classes = n_target_classes
    return aa


class AutoAttack(Attack):
    """AutoAttack (Croce & Hein 2020): APGD-CE, APGD-T, FAB-T and Square as a cascade (official code).

    Threat model: L-inf, radius ``eps``, white-box (APGD, FAB) and score-based black-box (Square); a point
    counts as broken if any component breaks it. Arguments: ``eps`` (0.3), ``attacks`` (None: all four
    components, else a list of their names), ``n_iter`` (100: APGD and FAB iterations), ``n_queries`` (5000:
    Square), ``n_target_classes`` (9: targets of APGD-T and FAB-T, capped at the number of classes - 1),
    ``seed`` (0). Below the standard values the attack is named ``autoattack-reduced``; ``standard`` says
    whether it is the standard version."""
    name = "autoattack"

    def __init__(self, eps: float = 0.3, attacks=None, n_iter: int = 100, n_queries: int = 5000,
                 n_target_classes: int = 9, seed: int = 0):
        super().__init__(eps)
        self.n_iter, self.n_queries = check_positive_int(n_iter, "n_iter"), check_positive_int(n_queries, "n_queries")
        self.n_target_classes, self.seed = check_positive_int(n_target_classes, "n_target_classes"), seed
        self.attacks = list(attacks) if attacks is not None else None
        reduced = (self.n_iter, self.n_queries, self.n_target_classes) != tuple(STANDARD.values())
        if self.attacks is None:
            self.name = "autoattack-reduced" if reduced else "autoattack"
        self.standard = self.attacks is None and not reduced

    def params(self) -> dict:
        """The scalar settings, plus the components run and whether this is the standard version."""
        return super().params() | {"attacks": self.attacks or list(COMPONENTS), "standard": self.standard}

    def perturb(self, model, x, y):
        """One cascade over the whole batch (``batch_size=len(y)``); unbroken points come back unchanged.
        Components the model's class count rules out are skipped; ``diagnostics`` names them (``skipped``)
        and holds AutoAttack's own warnings (``warnings``)."""
        with torch.no_grad():
            n_classes = int(model(x[:1]).shape[1])
        attacks, skipped = runnable(self.attacks if self.attacks is not None else list(COMPONENTS), n_classes)
        self.diagnostics = {"skipped": skipped, "warnings": []}
        if not attacks:
            return x
        aa = _build(model, self.eps, attacks, self.n_iter, self.n_queries,
                    min(self.n_target_classes, n_classes - 1), self.seed, x.device)
        with captured_warnings() as messages:
            x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(y))
        self.diagnostics["warnings"] = messages
        return x_adv


class _Component(AutoAttack):
    """One AutoAttack component alone; subclasses name it in ``component``."""
    component = ""

    def __init__(self, eps: float = 0.3, **kw):
        super().__init__(eps, attacks=[self.component], **kw)
        self.name = self.component  # set on the instance so that params() lists it where it always has


class APGD_CE(_Component):
    """APGD-CE (Croce & Hein 2020) alone: Auto-PGD on the cross-entropy, step size adapted from the progress
    of the loss, no step size to tune. Threat model: L-inf, radius ``eps``, white-box. Arguments as
    :class:`AutoAttack` (``eps`` 0.3, ``n_iter`` 100, ``seed`` 0)."""
    name = component = "apgd-ce"


class APGD_T(_Component):
    """APGD-T (Croce & Hein 2020) alone: Auto-PGD on the targeted DLR loss, run once per target class (the
    ``n_target_classes`` (9) highest-scoring other classes). Threat model: L-inf, radius ``eps``, white-box.
    Arguments as :class:`AutoAttack` (``eps`` 0.3, ``n_iter`` 100, ``n_target_classes`` 9, ``seed`` 0)."""
    name = component = "apgd-t"


class FAB_T(_Component):
    """FAB-T (Croce & Hein 2020, "Minimally distorted adversarial examples with a fast adaptive boundary
    attack") alone: targeted, steps to the linearised decision boundary. Threat model: L-inf, radius ``eps``,
    white-box. Arguments as :class:`AutoAttack` (``eps`` 0.3, ``n_iter`` 100, ``n_target_classes`` 9,
    ``seed`` 0)."""
    name = component = "fab-t"


class Square(_Component):
    """Square Attack (Andriushchenko et al. 2020) alone: random search over square-shaped updates. Threat
    model: L-inf, radius ``eps``, score-based black box (logits only, no gradients). Arguments as
    :class:`AutoAttack` (``eps`` 0.3, ``n_queries`` 5000, ``seed`` 0)."""
    name = component = "square"


class AutoAttackRand(Attack):
    """AutoAttack's version for randomized defenses (Croce & Hein 2020, Sec. 5; Athalye et al. 2018's EOT).

    Threat model: L-inf, radius ``eps``, white-box on a model whose forward pass is random. APGD-CE then APGD-DLR,
    each with gradients averaged over ``eot_iter`` forward passes. Arguments: ``eps`` (0.3), ``n_iter`` (100, the
    standard), ``eot_iter`` (20, the standard), ``seed`` (0). Fewer iterations name it ``autoattack-rand-reduced``."""
    name = "autoattack-rand"

    def __init__(self, eps: float = 0.3, n_iter: int = 100, eot_iter: int = 20, seed: int = 0):
        super().__init__(eps)
        self.n_iter, self.eot_iter = check_positive_int(n_iter, "n_iter"), check_positive_int(eot_iter, "eot_iter")
        self.seed = seed
        if (self.n_iter, self.eot_iter) != (100, 20):
            self.name = "autoattack-rand-reduced"

    def perturb(self, model, x, y):
        """One run of the ``rand`` version over the whole batch; unbroken points come back unchanged.
        ``diagnostics`` as :meth:`AutoAttack.perturb`."""
        from pyautoattack import AutoAttack as _AA
        with torch.no_grad():
            n_classes = int(model(x[:1]).shape[1])
        aa = _AA(_Logits(model), device=x.device, eps=self.eps, norm="Linf", seed=self.seed, version="rand")
        aa.verbose = False
        aa.apgd.n_iter, aa.apgd.eot_iter = self.n_iter, self.eot_iter
        aa.attacks_to_run, skipped = runnable(list(aa.attacks_to_run), n_classes)
        self.diagnostics = {"skipped": skipped, "warnings": []}
        if not aa.attacks_to_run:
            return x
        with captured_warnings() as messages:
            x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=len(y))
        self.diagnostics["warnings"] = messages
        return x_adv
