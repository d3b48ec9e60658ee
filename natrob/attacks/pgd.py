"""PGD — Madry et al. 2017, "Towards deep learning models resistant to adversarial attacks".

Threat model: L-inf, radius ``eps``, white-box. ``steps`` signed-gradient ascent steps of size ``alpha`` on
the loss, each followed by projection onto the eps-ball and [0,1]; optional uniform random start and
``restarts`` (a point counts as broken if any restart breaks it). Paper defaults (Table 1): alpha = 0.01,
40 steps, random start. ``loss``: ``'ce'`` (cross-entropy) or ``'cw'`` (Carlini-Wagner margin, which does not
saturate with the softmax). ``eot_iter > 1`` averages each gradient over that many forward passes
(Expectation over Transformation, Athalye et al. 2018), for randomized models; ``early_stop`` freezes a point
at the first iterate that fools the model.
"""
from __future__ import annotations

import torch

from ..errors import ConfigError, check_positive_int
from .base import Attack, input_grad


class PGD(Attack):
    """Projected Gradient Descent (Madry et al. 2017), L-inf, with random start, restarts and early stop.

    Threat model: L-inf, radius ``eps``, white-box. Arguments (defaults are the paper's Table 1 settings):
    ``eps`` (0.3), ``alpha`` (0.01, step size), ``steps`` (40), ``random_start`` (True: uniform in the ball),
    ``restarts`` (1; later restarts run only on points earlier ones did not break), ``loss`` ('ce' or 'cw'),
    ``early_stop`` (False: plain PGD returns its last iterate; True freezes each point at its first fooling
    iterate), ``eot_iter`` (1; > 1 averages each gradient over that many forward passes, for randomized
    models). See the module doc for the algorithm."""
    name = "pgd"

    def __init__(self, eps: float = 0.3, alpha: float = 0.01, steps: int = 40, random_start: bool = True,
                 restarts: int = 1, loss: str = "ce", early_stop: bool = False, eot_iter: int = 1):
        super().__init__(eps)
        if not alpha > 0:
            raise ConfigError("alpha", alpha, "a positive step size (paper: 0.01)")
        self.alpha, self.steps = float(alpha), check_positive_int(steps, "steps")
        self.random_start, self.restarts = bool(random_start), check_positive_int(restarts, "restarts")
        if loss not in ("ce", "cw"):
            raise ConfigError("loss", loss, "'ce' (cross-entropy) or 'cw' (margin)")
        self.loss, self.early_stop = loss, bool(early_stop)
        self.eot_iter = check_positive_int(eot_iter, "eot_iter")
        if self.early_stop and self.eot_iter > 1:
            raise ConfigError("early_stop", early_stop, "False when eot_iter > 1 (a random model's first fooling "
                                                        "iterate need not fool it again)")

    def _run(self, model, x, y):
        x_adv = x.clone()
        if self.random_start:
            x_adv = (x_adv + torch.empty_like(x).uniform_(-self.eps, self.eps)).clamp(0, 1)
        if not self.early_stop:
            # the feasible box (eps-ball intersected with [0,1]) is fixed: one clamp per step projects onto it
            lo, hi = (x - self.eps).clamp_(min=0.0), (x + self.eps).clamp_(max=1.0)
            for _ in range(self.steps):
                grad = input_grad(model, x_adv, y, self.loss, self.eot_iter)
                with torch.no_grad():
                    x_adv = torch.clamp(x_adv.add_(grad.sign_(), alpha=self.alpha), lo, hi)
            return x_adv
        # early stop: a point is frozen at the first iterate that fools the model (the final iterate of plain
        # PGD may have walked back out); only still-correct points keep costing gradient evaluations
        active = torch.arange(len(y), device=x.device)
        for _ in range(self.steps + 1):
            xa = x_adv[active].detach().requires_grad_(True)
            logits = model(xa)
            still = logits.argmax(1) == y[active]
            if not still.any():
                break
            if _ == self.steps:  # the last iterate only needs checking, not a gradient
                break
            active, xa_keep = active[still], xa[still]
            loss = self._loss_value(logits, y[active], still)
            grad = torch.autograd.grad(loss, xa, allow_unused=True)[0] if loss.requires_grad else None
            grad = torch.zeros_like(xa) if grad is None else grad.nan_to_num(0.0, 0.0, 0.0)  # disconnected input
            x_adv[active] = self.project(x[active], xa_keep.detach() + self.alpha * grad[still].sign())
        return x_adv

    def _loss_value(self, logits, y_active, still):
        import torch.nn.functional as F
        from .base import cw_margin
        z = logits[still]
        return F.cross_entropy(z, y_active, reduction="sum") if self.loss == "ce" else cw_margin(z, y_active).sum()

    def perturb(self, model, x, y):
        """Run ``restarts`` PGD runs; each point keeps the first run's result that fools the model (else the
        last run's)."""
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
