"""Boundary Attack — Brendel, Rauber & Bethge 2017, "Decision-based adversarial attacks".

Threat model: decision-based black box (only the predicted label is observed), minimises the L2 distance.
Starts from a uniform-noise image that is already misclassified (blended towards x by binary search), then
alternates an orthogonal ("spherical") step on the sphere around x and a step towards x ("source step"),
keeping a candidate only when it is still adversarial. Step sizes adapt to the recent success rate.
Paper (Fig. 3): 1000 queries, initial source and orthogonal step 0.1. ``queries`` counts every model call
per image, initialisation included (one call checks one candidate per image; images are batched).

``run`` returns the adversarial example it found and its L-inf and L2 sizes, so accuracy-vs-eps curves
follow without re-running (``robust_curve``). Called as an attack with ``eps`` it returns the found
example where its L-inf size is <= eps and the clean image otherwise (no adversarial example within eps).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .contract import predicted
from ..errors import check_positive_int
from .base import Attack

ADAPT_EVERY = 10       # steps between step-size adaptations (the success rate is measured over this window)
BISECTIONS = 10        # binary-search steps that blend the noise start towards x


@dataclass
class BoundaryResult:
    """What :meth:`BoundaryAttack.run` found, per image.

    ``x_adv``: the adversarial example (the clean image where none was found); ``success``: one was found at
    any size (a clean misclassification counts, at size 0); ``linf``/``l2``: its distance to the clean image
    (inf where none was found); ``queries``: model calls made per image."""
    x_adv: torch.Tensor
    success: torch.Tensor
    linf: torch.Tensor
    l2: torch.Tensor
    queries: int

    def robust_at(self, eps: float) -> torch.Tensor:
        """Boolean per image: no adversarial example of L-inf size <= ``eps`` was found."""
        return ~(self.success & (self.linf <= eps + 1e-7))


def robust_curve(result: BoundaryResult, clean_correct: torch.Tensor, eps_list) -> list:
    """Per eps, how many points are clean-correct and had no adversarial example within eps (an integer count)."""
    return [int((clean_correct & result.robust_at(e)).sum()) for e in eps_list]


@dataclass
class _Walk:
    """The state of one batched run between steps: current adversarial images and per-image step sizes."""
    adv: torch.Tensor
    success: torch.Tensor
    active: torch.Tensor    # has a non-zero adversarial example that the walk can shrink
    used: int               # model calls so far (each checks one candidate per image)
    sph: torch.Tensor       # orthogonal step, relative to the distance to x
    src: torch.Tensor       # step towards x, relative to the distance
    window: torch.Tensor    # accepted steps since the last adaptation
    steps: int = 0


def _flat(t):
    return t.reshape(len(t), -1)


class BoundaryAttack(Attack):
    """Boundary Attack (Brendel et al. 2017): a decision-based random walk along the decision boundary.

    Threat model: decision-based black box (predicted labels only), minimising L2; judged at L-inf radius
    ``eps``. Arguments: ``eps`` (1.0: any example found counts), ``queries`` (1000, the paper's Fig. 3; model
    calls per image, initialisation included), ``spherical_step`` (0.1) and ``source_step`` (0.1): initial
    orthogonal and towards-x step sizes relative to the current distance, ``step_adaptation`` (1.5): factor
    applied every 10 steps when more than half (or fewer than a fifth) of the steps were accepted,
    ``init_tries`` (50): uniform-noise draws to find a misclassified start, ``seed`` (0; None draws one).

    Called as ``attack(model, x, y)`` it returns the example where its L-inf size is <= eps and the clean image
    otherwise; :meth:`run` returns every size (:class:`BoundaryResult`)."""
    name = "boundary"

    def __init__(self, eps: float = 1.0, queries: int = 1000, spherical_step: float = 0.1, source_step: float = 0.1,
                 step_adaptation: float = 1.5, init_tries: int = 50, seed: int | None = 0):
        super().__init__(eps)
        self.queries = check_positive_int(queries, "queries")
        self.spherical_step, self.source_step = float(spherical_step), float(source_step)
        self.step_adaptation, self.init_tries, self.seed = float(step_adaptation), int(init_tries), seed

    @torch.no_grad()
    def _is_adv(self, model, x, y):
        return predicted(model(x)) != y

    @torch.no_grad()
    def run(self, model, x, y) -> BoundaryResult:
        """Run the attack on a batch for ``queries`` model calls per image; returns a :class:`BoundaryResult`."""
        gen = torch.Generator(device=x.device)
        gen.manual_seed(self.seed if self.seed is not None else int(torch.seed() % 2**31))
        walk = self._initialise(model, x, y, gen)
        while walk.used < self.queries and walk.active.any():
            self._step(model, x, y, walk, gen)
            if walk.steps % ADAPT_EVERY == 0:
                self._adapt_step_sizes(walk)
        d = _flat(walk.adv - x)
        inf = torch.full((len(y),), float("inf"), device=x.device)
        return BoundaryResult(walk.adv, walk.success, torch.where(walk.success, d.abs().amax(1), inf),
                              torch.where(walk.success, d.norm(dim=1), inf), walk.used)

    def _initialise(self, model, x, y, gen) -> _Walk:
        """A misclassified uniform-noise image per point, blended towards x by binary search on the label.

        A point that is misclassified already is its own adversarial example (distance 0) and is not walked."""
        n = len(y)
        used = 1
        adv = x.clone()
        success = self._is_adv(model, x, y)
        need = ~success
        for _ in range(self.init_tries):
            if not need.any() or used >= self.queries:
                break
            noise = torch.rand(x.shape, generator=gen, device=x.device)
            ok = self._is_adv(model, noise, y) & need
            used += 1
            adv[ok], success, need = noise[ok], success | ok, need & ~ok
        lo, hi = torch.zeros(n, device=x.device), torch.ones(n, device=x.device)
        active = success & (_flat(adv - x).abs().amax(1) > 0)
        for _ in range(BISECTIONS):
            if used >= self.queries:
                break
            mid = (lo + hi) / 2
            ok = self._is_adv(model, x + mid.view(-1, 1, 1, 1) * (adv - x), y)
            used += 1
            hi = torch.where(active & ok, mid, hi)
            lo = torch.where(active & ~ok, mid, lo)
        adv = torch.where(active.view(-1, 1, 1, 1), x + hi.view(-1, 1, 1, 1) * (adv - x), adv)
        return _Walk(adv, success, active, used,
                     sph=torch.full((n,), self.spherical_step, device=x.device),
                     src=torch.full((n,), self.source_step, device=x.device),
                     window=torch.zeros(n, device=x.device))

    def _step(self, model, x, y, walk: _Walk, gen):
        """One model call: an orthogonal step on the sphere around x, then a step towards x; kept where the
        candidate is still adversarial."""
        fx = _flat(x)
        diff = fx - _flat(walk.adv)
        dist = diff.norm(dim=1).clamp_min(1e-12)
        unit = diff / dist[:, None]
        eta = torch.randn(diff.shape, generator=gen, device=x.device)
        eta = eta - (eta * unit).sum(1, keepdim=True) * unit
        eta = eta / eta.norm(dim=1, keepdim=True).clamp_min(1e-12) * (walk.sph * dist)[:, None]
        cand = _flat(walk.adv) + eta
        to_x = fx - cand
        cand = fx - to_x / to_x.norm(dim=1, keepdim=True).clamp_min(1e-12) * dist[:, None]  # back on the sphere
        cand = cand + walk.src[:, None] * (fx - cand)
        cand = cand.clamp(0, 1).view_as(x)
        ok = self._is_adv(model, cand, y) & walk.active
        walk.used += 1
        walk.adv[ok] = cand[ok]
        walk.window += ok.float()
        walk.steps += 1

    def _adapt_step_sizes(self, walk: _Walk):
        """Brendel et al.'s rule: larger steps where most recent steps were accepted, smaller where few were.
        Capped so that one step never goes more than half the way to x, nor sideways by more than the distance."""
        rate = walk.window / ADAPT_EVERY
        up, down = rate > 0.5, rate < 0.2
        f = self.step_adaptation
        sph = torch.where(up, walk.sph * f, torch.where(down, walk.sph / f, walk.sph))
        src = torch.where(up, walk.src * f, torch.where(down, walk.src / f, walk.src))
        walk.src, walk.sph = src.clamp(max=0.5), sph.clamp(max=1.0)
        walk.window.zero_()

    def perturb(self, model, x, y):
        """The found example where its L-inf size is <= eps, else the clean image."""
        res = self.run(model, x, y)
        keep = ~res.robust_at(self.eps)
        return torch.where(keep.view(-1, 1, 1, 1), res.x_adv, x)
