"""Non-adaptive baselines used by the audit's sanity checks (Carlini et al. 2019).

- RandomNoise: random corners of the eps-ball (each pixel +-eps), the best of ``trials`` draws per image.
  Gradient attacks that do worse than this are not working.
- UniformNoise: one uniform draw in the eps-ball, i.e. PGD's random start alone (Madry et al. 2017) with no
  gradient step. Where PGD scores about what its random start scores, the gradient steps did nothing.
- ConstantImage: replaces every image by the constant image ``value`` (0.5). It lies inside the eps-ball of
  every [0,1] image once eps >= max(value, 1 - value), so no classifier can be robust above the share of the
  class it assigns to that one image (for eps < 0.5 the attack leaves the images unchanged).
"""
from __future__ import annotations

import torch

from ..errors import check_positive_int
from .base import Attack


class RandomNoise(Attack):
    name = "random-noise"
    uses_gradients = False

    def __init__(self, eps: float = 0.3, trials: int = 10, seed: int = 0):
        super().__init__(eps)
        self.trials, self.seed = check_positive_int(trials, "trials"), seed

    @torch.no_grad()
    def perturb(self, model, x, y):
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        todo = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for _ in range(self.trials):
            sign = torch.randint(0, 2, x.shape, generator=gen, device=x.device).float() * 2 - 1
            cand = self.project(x, x + self.eps * sign)
            fooled = (model(cand).argmax(1) != y) & todo
            best[fooled] = cand[fooled]
            todo &= ~fooled
        return best


class UniformNoise(Attack):
    """PGD's random start alone: x + U(-eps, eps) per pixel, clipped to [0, 1]; ``trials`` seeded draws, the
    first that fools the model is kept (default 1: exactly the start point of one PGD run)."""
    name = "uniform-noise"
    uses_gradients = False

    def __init__(self, eps: float = 0.3, trials: int = 1, seed: int = 0):
        super().__init__(eps)
        self.trials, self.seed = check_positive_int(trials, "trials"), seed

    @torch.no_grad()
    def perturb(self, model, x, y):
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        todo = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for _ in range(self.trials):
            u = torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1
            cand = self.project(x, x + self.eps * u)
            fooled = (model(cand).argmax(1) != y) & todo
            best[fooled] = cand[fooled]
            todo &= ~fooled
        return best


class ConstantImage(Attack):
    name = "constant-image"
    uses_gradients = False

    def __init__(self, eps: float = 0.5, value: float = 0.5):
        super().__init__(eps)
        self.value = float(value)

    def perturb(self, model, x, y):
        const = torch.full_like(x, self.value)
        inside = (const - x).abs().flatten(1).amax(1) <= self.eps + 1e-7
        return torch.where(inside.view(-1, 1, 1, 1), const, x)
