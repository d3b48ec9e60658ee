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

from ..errors import check_positive_int
from .base import Attack


@dataclass
class BoundaryResult:
    x_adv: torch.Tensor
    success: torch.Tensor   # an adversarial example was found (at any size)
    linf: torch.Tensor      # its L-inf distance (inf where none was found)
    l2: torch.Tensor
    queries: int

    def robust_at(self, eps: float) -> torch.Tensor:
        return ~(self.success & (self.linf <= eps + 1e-7))


def robust_curve(result: BoundaryResult, clean_correct: torch.Tensor, eps_list) -> list:
    """Per eps, how many points are clean-correct and had no adversarial example within eps (an integer count)."""
    return [int((clean_correct & result.robust_at(e)).sum()) for e in eps_list]


class BoundaryAttack(Attack):
    name = "boundary"
    uses_gradients = False

    def __init__(self, eps: float = 1.0, queries: int = 1000, spherical_step: float = 0.1, source_step: float = 0.1,
                 step_adaptation: float = 1.5, init_tries: int = 50, seed: int | None = 0):
        super().__init__(eps)
        self.queries = check_positive_int(queries, "queries")
        self.spherical_step, self.source_step = float(spherical_step), float(source_step)
        self.step_adaptation, self.init_tries, self.seed = float(step_adaptation), int(init_tries), seed

    @torch.no_grad()
    def _is_adv(self, model, x, y):
        return model(x).argmax(1) != y

    @torch.no_grad()
    def run(self, model, x, y) -> BoundaryResult:
        gen = torch.Generator(device=x.device)
        gen.manual_seed(self.seed if self.seed is not None else int(torch.seed() % 2**31))
        n, flat = len(y), (lambda t: t.reshape(len(t), -1))
        used = 1
        adv = x.clone()
        success = self._is_adv(model, x, y)  # already misclassified: distance 0
        # initialisation: uniform noise that is misclassified, then binary search towards x
        need = ~success
        for _ in range(self.init_tries):
            if not need.any() or used >= self.queries:
                break
            noise = torch.rand(x.shape, generator=gen, device=x.device)
            ok = self._is_adv(model, noise, y) & need
            used += 1
            adv[ok], success, need = noise[ok], success | ok, need & ~ok
        lo, hi = torch.zeros(n, device=x.device), torch.ones(n, device=x.device)
        active = success & (flat(adv - x).abs().amax(1) > 0)
        for _ in range(10):
            if used >= self.queries:
                break
            mid = (lo + hi) / 2
            cand = x + mid.view(-1, 1, 1, 1) * (adv - x)
            ok = self._is_adv(model, cand, y)
            used += 1
            hi = torch.where(active & ok, mid, hi)
            lo = torch.where(active & ~ok, mid, lo)
        adv = torch.where(active.view(-1, 1, 1, 1), x + hi.view(-1, 1, 1, 1) * (adv - x), adv)
        # main loop
        sph = torch.full((n,), self.spherical_step, device=x.device)
        src = torch.full((n,), self.source_step, device=x.device)
        window = torch.zeros(n, device=x.device)
        k = 0
        while used < self.queries and active.any():
            diff = flat(x - adv)
            dist = diff.norm(dim=1).clamp_min(1e-12)
            unit = diff / dist[:, None]
            eta = torch.randn(diff.shape, generator=gen, device=x.device)
            eta = eta - (eta * unit).sum(1, keepdim=True) * unit
            eta = eta / eta.norm(dim=1, keepdim=True).clamp_min(1e-12) * (sph * dist)[:, None]
            cand = flat(adv) + eta
            to_x = flat(x) - cand
            cand = flat(x) - to_x / to_x.norm(dim=1, keepdim=True).clamp_min(1e-12) * dist[:, None]  # back on the sphere
            cand = cand + src[:, None] * (flat(x) - cand)  # towards the original
            cand = cand.clamp(0, 1).view_as(x)
            ok = self._is_adv(model, cand, y) & active
            used += 1
            adv[ok] = cand[ok]
            window += ok.float()
            k += 1
            if k % 10 == 0:
                rate = window / 10
                up, down = rate > 0.5, rate < 0.2
                sph = torch.where(up, sph * self.step_adaptation, torch.where(down, sph / self.step_adaptation, sph))
                src = torch.where(up, src * self.step_adaptation, torch.where(down, src / self.step_adaptation, src))
                src, sph = src.clamp(max=0.5), sph.clamp(max=1.0)
                window.zero_()
        d = flat(adv - x)
        inf = torch.full((n,), float("inf"), device=x.device)
        return BoundaryResult(adv, success, torch.where(success, d.abs().amax(1), inf),
                              torch.where(success, d.norm(dim=1), inf), used)

    def perturb(self, model, x, y):
        res = self.run(model, x, y)
        keep = ~res.robust_at(self.eps)
        return torch.where(keep.view(-1, 1, 1, 1), res.x_adv, x)
