"""FGSM — Goodfellow, Shlens & Szegedy 2014, "Explaining and harnessing adversarial examples".

Threat model: L-inf, radius ``eps`` in [0,1] pixel space, white-box (one input gradient).
x_adv = clip_[0,1](x + eps * sign(grad_x CE(f(x), y))).
"""
from __future__ import annotations

from .base import Attack, input_grad


class FGSM(Attack):
    """Fast Gradient Sign Method (Goodfellow et al. 2014): one signed-gradient step of size ``eps``.

    Threat model: L-inf, radius ``eps``, white-box (one input gradient). Arguments: ``eps`` (0.3); ``loss``
    ('ce', cross-entropy, the paper's; or 'cw', the Carlini-Wagner margin). Table 1 of the paper reports it
    at eps 0.2-0.5 on MNIST."""
    name = "fgsm"

    def __init__(self, eps: float = 0.3, loss: str = "ce"):
        super().__init__(eps)
        self.loss = loss

    def perturb(self, model, x, y):
        """x + eps * sign(grad_x loss): one gradient evaluation."""
        return x + self.radius(x) * input_grad(model, x, y, self.loss).sign()
