"""Transfer attack: adversarial examples crafted on a *source* model, evaluated on the target.

Threat model: black box for the target (no gradients or queries of it). Fig. 1 of the paper uses FGSM
crafted on a network with three residual blocks. The perturbation obeys the inner attack's eps-ball.
"""
from __future__ import annotations

from .base import Attack


class Transfer(Attack):
    """Transfer attack: ``attack`` run on ``source``; the target model only sees the result.

    Threat model: black box for the target (no gradients, no queries), inside the inner attack's eps-ball.
    Arguments: ``source`` (the model the examples are crafted on; Fig. 1: a three-block ResNet), ``attack``
    (any natrob attack; its ``eps`` is this attack's). No defaults."""
    name = "transfer"

    def __init__(self, source, attack: Attack):
        super().__init__(attack.eps)
        self.source, self.attack = source, attack

    def params(self) -> dict:
        """The inner attack's settings and the source's registry name (its class name outside the registry)."""
        return {"name": self.name, "eps": self.eps, "inner": self.attack.params(),
                "source": getattr(self.source, "natrob_arch", {}).get("name", type(self.source).__name__)}

    def perturb(self, model, x, y):
        """The source model's adversarial examples; the target ``model`` is not queried."""
        return self.attack(self.source, x, y)
