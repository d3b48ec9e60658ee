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

from .contract import predicted
from ..errors import check_positive_int
from .base import Attack


class _SeededNoise(Attack):
    """``trials`` seeded random points of the eps-ball per image; the first that fools the model is kept."""

    def __init__(self, eps: float = 0.3, trials: int = 10, seed: int = 0):
        super().__init__(eps)
        self.trials, self.seed = check_positive_int(trials, "trials"), seed

    def draw(self, x, gen):
        """A perturbation direction in [-1, 1] per pixel (scaled by eps and projected by the caller)."""
        raise NotImplementedError

    @torch.no_grad()
    def perturb(self, model, x, y):
        """Up to ``trials`` seeded draws per image; an image keeps the first draw that fools the model."""
        gen = torch.Generator(device=x.device).manual_seed(self.seed)
        best = x.clone()
        todo = torch.ones(len(y), dtype=torch.bool, device=x.device)
        for _ in range(self.trials):
            cand = self.project(x, x + self.eps * self.draw(x, gen))
            fooled = (predicted(model(cand)) != y) & todo
            best[fooled] = cand[fooled]
            todo &= ~fooled
        return best


class RandomNoise(_SeededNoise):
    """Random corners of the eps-ball (each pixel +-eps), the best of ``trials`` draws per image.

    Threat model: L-inf, radius ``eps``, no gradients and no adaptivity. Arguments: ``eps`` (0.3), ``trials``
    (10), ``seed`` (0). A gradient attack that does worse than this is not working (Carlini et al. 2019)."""
    name = "random-noise"

    def draw(self, x, gen):
        return torch.randint(0, 2, x.shape, generator=gen, device=x.device).float() * 2 - 1


class UniformNoise(_SeededNoise):
    """PGD's random start alone: x + U(-eps, eps) per pixel, clipped to [0, 1]; ``trials`` seeded draws, the
    first that fools the model is kept (default 1: exactly the start point of one PGD run)."""
    name = "uniform-noise"

    def __init__(self, eps: float = 0.3, trials: int = 1, seed: int = 0):
        super().__init__(eps, trials, seed)

    def draw(self, x, gen):
        return torch.rand(x.shape, generator=gen, device=x.device, dtype=x.dtype) * 2 - 1


class ConstantImage(Attack):
    """Every image replaced by the constant image ``value`` where that image lies inside its eps-ball.

    Threat model: L-inf, radius ``eps``; no model access at all. Arguments: ``eps`` (0.5), ``value`` (0.5). At
    eps >= 0.5 it reaches every [0, 1] image, so no classifier keeps more than one class's share of the points."""
    name = "constant-image"

    def __init__(self, eps: float = 0.5, value: float = 0.5):
        super().__init__(eps)
        self.value = float(value)

    def perturb(self, model, x, y):
        const = torch.full_like(x, self.value)
        inside = (const - x).abs().flatten(1).amax(1) <= self.eps + 1e-7
        return torch.where(inside.view(-1, 1, 1, 1), const, x)
