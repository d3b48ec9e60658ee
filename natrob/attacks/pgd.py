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

import math

import torch
import torch.nn.functional as F

from .contract import predicted
from ..errors import ConfigError, check_positive_int
from .base import Attack, cw_margin, input_grad


WINDOW = 0.1      # incomplete optimisation: the trailing tenth of the steps (at least 2) ...
RISE = 0.05       # ... whose mean loss is still 5% above the tenth before it (Pintor et al. 2022)


class PGD(Attack):
    """Projected Gradient Descent (Madry et al. 2017), L-inf, with random start, restarts and early stop.

    Threat model: L-inf, radius ``eps``, white-box. Arguments (defaults are the paper's Table 1 settings):
    ``eps`` (0.3), ``alpha`` (0.01, step size, in the units of ``eps``), ``steps`` (40), ``random_start`` (True:
    uniform in the ball),
    ``restarts`` (1; later restarts run only on points earlier ones did not break), ``loss`` ('ce' or 'cw'),
    ``early_stop`` (False; True freezes each point at its first fooling iterate and skips it afterwards),
    ``eot_iter`` (1; > 1 averages each gradient over that many forward passes, for randomized models),
    ``return_best`` (True: a point returns its last iterate if that fools the model, else the latest iterate
    that did; False: always the last iterate, as torchattacks and the paper's code), ``freeze_fooled`` (False;
    True stops attacking a point at its first fooling iterate and returns that iterate: with ``return_best`` a
    fooled point counts as broken whatever its later iterates do, so its later steps change no count. Only valid
    where the model's prediction of a point does not depend on the rest of the batch (the evaluation harness
    sets it there: per-sample ODE solves, or one image at a time) and the model is deterministic; it has no
    effect with ``return_best=False``, ``eot_iter > 1`` or ``early_stop``), ``stop_stalled`` (False; True ends the
    run at a step that moved no point and fooled no new one: every later step would compute exactly the same
    gradients on the same batch, so the result is the one all ``steps`` would give. Only valid for a deterministic
    model (the harness sets it where its probe found two forward passes equal); no effect with ``eot_iter > 1``).

    After each call (without ``early_stop``) ``diagnostics`` holds two bool masks (n,) for Pintor et al.'s
    (NeurIPS 2022) indicators of attack failure: ``seen_adversarial`` (an iterate on the path fooled the
    model; where the returned point does not, the success was silent) and ``incomplete`` (not fooled, and the
    mean loss of the last tenth of the steps is still more than 5% above that of the tenth before: more
    steps would likely help)."""
    name = "pgd"

    def __init__(self, eps: float = 0.3, alpha: float = 0.01, steps: int = 40, random_start: bool = True,
                 restarts: int = 1, loss: str = "ce", early_stop: bool = False, eot_iter: int = 1,
                 return_best: bool = True, freeze_fooled: bool = False, stop_stalled: bool = False):
        super().__init__(eps)
        if not alpha > 0:
            raise ConfigError("alpha", alpha, "a positive step size (paper: 0.01)")
        self.alpha, self.steps = float(alpha), check_positive_int(steps, "steps")
        self.random_start, self.restarts = bool(random_start), check_positive_int(restarts, "restarts")
        if loss not in ("ce", "cw"):
            raise ConfigError("loss", loss, "'ce' (cross-entropy) or 'cw' (margin)")
        self.loss, self.early_stop = loss, bool(early_stop)
        self.eot_iter = check_positive_int(eot_iter, "eot_iter")
        self.return_best, self.freeze_fooled = bool(return_best), bool(freeze_fooled)
        self.stop_stalled = bool(stop_stalled)
        self.steps_run = None  # gradient steps the last call took (all restarts), for benchmarks and tests
        if self.early_stop and self.eot_iter > 1:
            raise ConfigError("early_stop", early_stop, "False when eot_iter > 1 (a random model's first fooling "
                                                        "iterate need not fool it again)")

    def _step(self, x):
        # the step size in pixels: alpha, or alpha * scale per channel when eps is not in pixels
        return self.alpha if self.scale is None else self.radius(x) * (self.alpha / max(self.eps, 1e-12))

    def _per_sample_loss(self, logits, y):
        z = logits.detach().float()
        return F.cross_entropy(z, y, reduction="none") if self.loss == "ce" else cw_margin(z, y)

    def _run(self, model, x, y):
        """One PGD run: (returned points, which fool the model, seen_adversarial, incomplete)."""
        x_adv = x.clone()
        if self.random_start:
            start = (torch.empty_like(x).uniform_(-self.eps, self.eps) if self.scale is None
                     else torch.empty_like(x).uniform_(-1, 1) * self.radius(x))
            x_adv = self.project(x, x_adv + start)
        if self.early_stop:
            return self._run_early_stop(model, x, y, x_adv)
        # the feasible box (eps-ball intersected with [0,1]) is fixed: one clamp per step projects onto it
        lo, hi = x - self.radius(x), x + self.radius(x)
        if self.box is not None:
            lo, hi = lo.clamp_(min=self.box[0]), hi.clamp_(max=self.box[1])
        seen = torch.zeros(len(y), dtype=torch.bool, device=x.device)
        found, trace = x_adv.clone(), []
        if self.freeze_fooled and self.return_best and self.eot_iter == 1:
            return self._run_frozen(model, x, y, x_adv, lo, hi, seen, found, trace)
        stall = self.stop_stalled and self.eot_iter == 1
        for _ in range(self.steps):
            grad, logits = input_grad(model, x_adv, y, self.loss, self.eot_iter, with_logits=True)
            self._count()
            with torch.no_grad():
                fooled = predicted(logits) != y
                found[fooled] = x_adv[fooled]  # the latest iterate that fooled the model
                seen |= fooled
                trace.append(self._per_sample_loss(logits, y))
                step = grad.sign_() if self.scale is None else grad.sign_() * self._step(x)
                before = x_adv.clone() if stall else None
                x_adv = torch.clamp(x_adv.add_(step, alpha=self.alpha if self.scale is None else 1.0), lo, hi)
                if stall and torch.equal(x_adv, before):
                    break  # a fixed point: every later step repeats this one exactly
        return self._finish(model, x, y, x_adv, seen, found, self._padded(trace))

    def _run_frozen(self, model, x, y, x_adv, lo, hi, seen, found, trace):
        # a fooled point stops at its first fooling iterate (found = x_adv there); the others step on exactly as in
        # the loop above. Fooled points leave the batch once they are a quarter of it (a new batch shape costs a
        # cheap CNN more than the gradients it saves); until then their step is masked. Frozen points' losses are
        # NaN in the trace: the "incomplete" indicator only reads points never fooled, whose traces are whole
        active = torch.arange(len(y), device=x.device)
        done = torch.zeros(len(y), dtype=torch.bool, device=x.device)  # fooled, still in the batch
        for _ in range(self.steps):
            xa, ya = x_adv[active], y[active]
            grad, logits = input_grad(model, xa, ya, self.loss, 1, with_logits=True)
            self._count()
            with torch.no_grad():
                fooled = (predicted(logits) != ya) & ~done
                hit = active[fooled]
                found[hit], seen[hit] = xa[fooled], True
                done |= fooled
                loss = torch.full((len(y),), float("nan"), device=x.device)
                trace.append(loss.index_put_((active[~done],), self._per_sample_loss(logits, ya)[~done]))
                if done.all():
                    break
                step = grad.sign_() if self.scale is None else grad.sign_() * self._step(x)
                step[done] = 0
                before = xa.clone() if self.stop_stalled else None
                moved = xa.add_(step, alpha=self.alpha if self.scale is None else 1.0)
                moved = torch.max(torch.min(moved, hi[active]), lo[active])
                x_adv[active] = moved
                if self.stop_stalled and not fooled.any() and torch.equal(moved, before):
                    break  # nothing moved and nothing new was fooled: every later step repeats this one exactly
                if 4 * int(done.sum()) >= len(active):
                    active, done = active[~done], done[~done]
        return self._finish(model, x, y, x_adv, seen, found, self._padded(trace))

    def _finish(self, model, x, y, x_adv, seen, found, trace):
        with torch.no_grad():
            last = predicted(model(x_adv)) != y
            seen |= last
            out = (torch.where((~last & seen).view(-1, *[1] * (x.dim() - 1)), found, x_adv) if self.return_best
                   else x_adv)
            fooled = last | (seen & self.return_best)
        return out, fooled, seen, ~seen & _still_rising(trace)

    def _run_early_stop(self, model, x, y, x_adv):
        # a point is frozen at the first iterate that fools the model (the final iterate of plain PGD may have
        # walked back out); only still-correct points keep costing gradient evaluations
        active = torch.arange(len(y), device=x.device)
        for step in range(self.steps + 1):
            xa = x_adv[active].detach().requires_grad_(True)
            logits = model(xa)
            still = predicted(logits) == y[active]
            if not still.any() or step == self.steps:  # the last iterate only needs checking, not a gradient
                break
            active, xa_keep = active[still], xa[still]
            loss = self._loss_value(logits, y[active], still)
            grad = torch.autograd.grad(loss, xa, allow_unused=True)[0] if loss.requires_grad else None
            grad = torch.zeros_like(xa) if grad is None else grad.nan_to_num(0.0, 0.0, 0.0)  # disconnected input
            self._count()
            moved = self.project(x[active], xa_keep.detach() + self._step(x) * grad[still].sign())
            x_adv[active] = moved
            if self.stop_stalled and bool(still.all()) and torch.equal(moved, xa_keep.detach()):
                break  # the same points at the same iterates: every later step repeats this one exactly
        with torch.no_grad():
            fooled = predicted(model(x_adv)) != y
        return x_adv, fooled, None, None

    def _count(self):
        self.steps_run = (self.steps_run or 0) + 1

    def _padded(self, trace):
        # a run that ended at a fixed point: its remaining steps would have repeated the last losses
        return trace + [trace[-1]] * (self.steps - len(trace)) if trace else trace

    def _loss_value(self, logits, y_active, still):
        z = logits[still]
        return F.cross_entropy(z, y_active, reduction="sum") if self.loss == "ce" else cw_margin(z, y_active).sum()

    def perturb(self, model, x, y):
        """Run ``restarts`` PGD runs; each point keeps the first run's result that fools the model (else the
        last run's). Fills ``diagnostics`` (see the class doc) unless ``early_stop``."""
        best = x.clone()
        self.steps_run = 0
        todo = torch.ones(len(y), dtype=torch.bool, device=x.device)
        seen, incomplete = torch.zeros_like(todo), torch.zeros_like(todo)
        traced = not self.early_stop
        for _ in range(self.restarts):
            idx = todo.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            cand, fooled, run_seen, run_incomplete = self._run(model, x[idx], y[idx])
            best[idx] = cand
            todo[idx[fooled]] = False
            if traced:
                seen[idx] |= run_seen
                incomplete[idx] = run_incomplete
        if traced:
            self.diagnostics = {"seen_adversarial": seen, "incomplete": incomplete & todo}
        return best


def _still_rising(trace) -> torch.Tensor:
    """Per sample: is the mean loss of the last window more than RISE above that of the window before?"""
    losses = torch.stack(trace, 1)
    if losses.shape[1] < 4:  # too few steps for two windows: nothing to say
        return torch.zeros(len(losses), dtype=torch.bool, device=losses.device)
    w = max(2, math.ceil(WINDOW * losses.shape[1]))
    w = min(w, losses.shape[1] // 2)
    last, before = losses[:, -w:].mean(1), losses[:, -2 * w:-w].mean(1)
    return (last - before) > RISE * before.abs().clamp_min(1e-2)
