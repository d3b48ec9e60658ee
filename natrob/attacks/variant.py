"""Protocol variants: the paper's FGSM or PGD run under an evaluation protocol that is NOT the correct threat model.

Why: the paper's Table 1 numbers for the Neural ODE are not what natrob measures under the correct threat model
(L-inf eps in [0, 1] pixel space, images clipped to [0, 1], crafted and judged by the model as evaluated).
Notebooks 07 and 08 ask which careless protocol would produce them. Each protocol wraps a natrob FGSM or PGD (the
inner attack) and runs through the same harness as every other attack (:func:`natrob.harness.evaluate.evaluate`). The
harness judges the result with the evaluated model, counts solver failures as not robust, stores the result and
seeds the attack. It also checks each batch against the variant's own threat model (:meth:`Attack.admits`).

- ``no-clip``: the inner attack's [0, 1] box is lifted, so pixels below 0 or above 1 are fed to the model.
- ``normalised-eps``: eps and the step size are applied to the model's *normalised* input (its ``normalize``
  layer). The pixel-space radius is eps * std per channel: 0.3 * 0.3081 = 0.092 on MNIST.
- ``cross-solver``: crafted through a solver twin of the model at ``craft_solver`` (rtol/atol). The result is judged
  with the model's own settings: a transfer attack reported as a white-box one.
- ``probabilities``: crafted on ``softmax(model(x))``. This is the output a careless wrapper hands to an attack,
  which then takes the cross-entropy of probabilities, so the gradient passes two softmaxes.

(The float16 variant of notebook 08 changes the judged model, not the attack, so it is a model wrapper:
:class:`natrob.harness.precision.AtPrecision` in ``Precision.FLOAT16``, run by
:func:`natrob.study.protocols.protocol_rows`.)
"""
from __future__ import annotations

import copy

from torch import nn

from .contract import Adapted
from ..errors import ConfigError
from .base import Attack
from .fgsm import FGSM
from .pgd import PGD

NOT_CORRECT = "NOT the correct threat model"
VARIANTS = {
    "no-clip": "adversarial images not clipped to [0,1]",
    "normalised-eps": "eps applied in normalised input space (pixel radius eps * std)",
    "cross-solver": "crafted with one solver setting, judged with another (a transfer attack reported as white-box)",
    "probabilities": "cross-entropy taken of softmax outputs (the attack's gradient passes two softmaxes)",
}


class ProbabilitiesOut(nn.Module):
    """``softmax(model(x))``: what the ``probabilities`` protocol crafts on (the model itself judges)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(1)


class ProtocolVariant(Attack):
    """The inner FGSM or PGD under an evaluation protocol that is NOT the correct threat model (see the module).

    Threat model: NOT the correct one; each protocol's is in the module doc. Arguments: ``protocol`` (a key of
    :data:`VARIANTS`), ``attack`` (a natrob :class:`FGSM` or :class:`PGD`, whose ``eps`` this attack takes),
    ``craft_solver`` (``cross-solver`` only: ``{"rtol", "atol"}`` of the twin that crafts). Raises ConfigError for
    an unknown protocol, an inner attack other than FGSM or PGD, or a cross-solver variant without its solver."""
    name = "protocol-variant"

    def __init__(self, protocol: str, attack: Attack, craft_solver: dict | None = None):
        if protocol not in VARIANTS:
            raise ConfigError("protocol", protocol, "one of " + ", ".join(VARIANTS))
        if not isinstance(attack, (FGSM, PGD)):
            raise ConfigError("attack", type(attack).__name__, "natrob's FGSM or PGD (the paper's attacks)")
        if protocol == "cross-solver" and not (isinstance(craft_solver, dict) and craft_solver):
            raise ConfigError("craft_solver", craft_solver, "{'rtol': ..., 'atol': ...} of the twin that crafts")
        super().__init__(attack.eps)
        attack = copy.copy(attack)  # the variant changes its inner attack's box and scale; the caller's stays as given
        self.protocol, self.attack, self.craft_solver = protocol, attack, dict(craft_solver or {})
        self._twin = None  # (id of the model, its crafting twin): one copy per model, not one per batch
        self.label = f"{NOT_CORRECT}: {VARIANTS[protocol]}"
        if protocol == "no-clip":
            self.box = attack.box = None

    @property
    def crafts_on_judge(self) -> bool:
        """Whether the inner attack crafts on the judged model itself (its logits, or their softmax, whose argmax is
        theirs): every protocol but ``cross-solver``, whose twin crafts. Only there does the inner attack's "fooled"
        agree with the harness's judgement, so only there may the harness freeze the inner PGD's fooled points."""
        return self.protocol != "cross-solver"

    def params(self) -> dict:
        """The protocol, the inner attack's settings and (cross-solver) the crafting twin's tolerance."""
        return {"name": self.name, "protocol": self.protocol, "eps": self.eps, "inner": self.attack.params(),
                "craft_solver": self.craft_solver or None}

    def perturb(self, model, x, y):
        """The inner attack's adversarial images under the protocol (projected by the inner attack)."""
        if self.protocol == "normalised-eps":
            norm = getattr(_unwrapped(model), "normalize", None)
            if norm is None or getattr(norm, "std", None) is None:
                raise ConfigError("model", type(_unwrapped(model)).__name__,
                                  "a model with a Normalize layer (`normalize.std`) for the normalised-eps protocol")
            self.scale = self.attack.scale = norm.std.detach()
        source = self._source(model)
        x_adv = self.attack(source, x, y)
        if source is model:  # Pintor et al.'s indicators hold only where the judged model also crafted
            self.diagnostics = self.attack.diagnostics
        return x_adv

    def _source(self, model):
        if self.protocol == "probabilities":
            return ProbabilitiesOut(model)
        if self.protocol == "cross-solver":
            from ..models.odenet import solver_twin
            base = _unwrapped(model)
            if not hasattr(base, "configure_solver"):
                raise ConfigError("model", type(base).__name__,
                                  "an ODE net (a model with `configure_solver`) for the cross-solver protocol")
            if self._twin is None or self._twin[0] != id(base):
                self._twin = (id(base), solver_twin(base, **self.craft_solver))
            twin = self._twin[1]
            return Adapted(twin, model.in_dtype) if isinstance(model, Adapted) else twin
        return model


def _unwrapped(model):
    """The user's model inside the harness's contract adapter (natrob.attacks.contract.Adapted)."""
    while isinstance(model, Adapted):
        model = model.inner
    return model
