"""Evaluation protocols: the correct threat model and variants of it that are NOT the correct one.

The paper (Table 1) reports FGSM and PGD-40 (L-inf, step 0.01, uniform random start) accuracies for Neural ODEs
that natrob does not reproduce, and its PGD figure at eps = 0.5 (75.23% on MNIST) exceeds what any classifier can
score there. Notebooks 07 and 08 run protocols that could produce such numbers, each labelled for what it is:

- ``standard``: the correct threat model. Perturbations of L-inf size <= eps in [0, 1] pixel space, adversarial
  images clipped to [0, 1], crafted and judged by the model exactly as evaluated (same weights, solver, tolerance).
- the variants of :mod:`natrob.attacks.variant` (``no-clip``, ``cross-solver``, ``normalised-eps``,
  ``probabilities``): NOT the correct threat model. Each is an attack wrapper around the paper's FGSM or PGD and
  runs through the same harness (:mod:`natrob.evaluate`, :mod:`natrob.plan`) as every other attack.

:func:`variant_plan` is the attack plan of one variant: FGSM and the paper's PGD under it.
"""
from __future__ import annotations

import copy

from torch import nn

from .attacks.variant import NOT_CORRECT, VARIANTS
from .errors import ConfigError
from .models.odenet import solver_twin  # noqa: F401  (the twins that craft through another solve; re-exported)

PROTOCOLS = {"standard": {"correct": True,
                          "label": "correct threat model: L-inf eps in [0,1] pixel space, images clipped to [0,1], "
                                   "crafted and judged by the model as evaluated"}} | {
    name: {"correct": False, "label": f"{NOT_CORRECT}: {text}"} for name, text in VARIANTS.items()}


def check_protocol(name: str) -> dict:
    """The protocol's entry in :data:`PROTOCOLS` (``correct`` flag and label); ConfigError for unknown names."""
    if name not in PROTOCOLS:
        raise ConfigError("protocol", name, "one of " + ", ".join(PROTOCOLS))
    return PROTOCOLS[name]


class AsFloat64(nn.Module):
    """A float64 copy of ``model`` that takes float32 (or float64) images and returns float64 logits.

    Used as the source of a transfer attack: the loss and its input gradient are computed in float64, where a
    saturated softmax (p_y == 1.0 in float32) still has a non-zero gradient; the adversarial image is then judged
    by the float32 model as evaluated."""

    def __init__(self, model):
        super().__init__()
        self.model = copy.deepcopy(model).double().eval()

    def forward(self, x):
        """Float64 logits of a float32 (or any) input."""
        return self.model(x.double())


def variant_plan(protocol: str, paper: dict, attacks=("fgsm", "pgd"), craft_solver: dict | None = None) -> list:
    """The attack plan (:mod:`natrob.plan`) of FGSM and the paper's PGD (``paper``:
    :func:`natrob.reference.paper_attack`) under ``protocol``, both on every clean-correct point, with ids
    ``fgsm`` and ``pgd-paper`` and labels naming the protocol. ``attacks`` picks among them; ``craft_solver``
    ({"rtol", "atol"}) is the crafting twin's tolerance of ``cross-solver``. Raises ConfigError for the
    ``standard`` protocol (not a variant), an unknown one or an unknown attack."""
    if protocol not in VARIANTS:
        raise ConfigError("protocol", protocol, "a protocol variant: " + ", ".join(VARIANTS))
    unknown = [a for a in attacks if a not in ("fgsm", "pgd")]
    if unknown:
        raise ConfigError("attacks", unknown, "some of 'fgsm', 'pgd'")
    if protocol == "cross-solver" and not (isinstance(craft_solver, dict) and craft_solver):
        raise ConfigError("craft_solver", craft_solver, "{'rtol': ..., 'atol': ...} of the twin that crafts")
    extra = {"craft_solver": dict(craft_solver)} if protocol == "cross-solver" else {}
    inner = {"fgsm": ({"name": "fgsm"}, "fgsm", "FGSM"),
             "pgd": ({k: v for k, v in paper.items() if k not in ("id", "role", "label")}, paper["id"], paper["label"])}
    return [{"name": "protocol-variant", "protocol": protocol, "attack": inner[a][0], **extra, "id": inner[a][1],
             "role": "protocol-variant", "label": f"{inner[a][2]} ({protocol})"} for a in attacks]
