"""PGD — Madry et al. 2017, "Towards deep learning models resistant to adversarial attacks".

Threat model: L-inf, radius ``eps``, white-box. ``steps`` signed-gradient ascent steps of size ``alpha`` on
the loss, each followed by projection onto the eps-ball and [0,1]; optional uniform random start and
``restarts`` (a point counts as broken if any restart breaks it). Paper defaults (Table 1): alpha = 0.01,
40 steps, random start.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, check_positive_int
from .base import Attack, input_grad


class PGD(Attack):
    name = "pgd"

    def __init__(self, eps: float = 0.3, alpha: float = 0.01, steps: int = 40, random_start: bool = True,
                 restarts: int = 1, loss: str = "ce"):
        super().__init__(eps)
        if not alpha > 0:
            raise ConfigError("alpha", alpha, "a positive step size (paper: 0.01)")
        self.alpha, self.steps = float(alpha), check_positive_int(steps, "steps")
        self.random_start, self.restarts = bool(random_start), check_positive_int(restarts, "restarts")
        self.loss = loss

    def _run(self, model, x, y):
        x_adv = x.clone()
        if self.random_start:
            x_adv = (x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps)).clamp(0, 1)
        for _ in range(self.steps):
            x_adv = x_adv + self.alpha * input_grad(model, x_adv, y, self.loss).sign()
            x_adv = self.project(x, x_adv)
        return x_adv

    def perturb(self, model, x, y):
        best = x.clone()
        todo = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for _ in range(self.restarts):
            idx = todo.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            cand = self._run(model, x[idx], y[idx])
            with torch.no_grad():
                fooled = model(cand).argmax(1) != y[idx]
            best[idx] = cand
            todo[idx[fooled]] = False
        return best
