"""DI²-FGSM / M-DI²-FGSM — Xie et al. 2019, "Improving transferability of adversarial examples with input diversity".

Threat model: L-inf, radius ``eps``, white-box. Iterative FGSM (step ``eps/steps`` unless ``alpha`` is given)
where, with probability ``diversity_prob``, each gradient is taken on a randomly resized-and-padded copy of
the input (resized to a random size in [resize_rate * W, W), zero-padded back to W at a random offset, so the
model always sees its own input size). ``decay`` > 0 adds momentum (M-DI²-FGSM, Dong et al. 2018).
Defaults follow torchattacks' DIFGSM: resize_rate 0.9, diversity_prob 0.5, bilinear resizing, 10 steps,
no momentum (Xie et al.'s own code resizes with nearest neighbour: ``mode='nearest'``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError, check_positive_int
from .base import Attack


class DI2FGSM(Attack):
    """DI²-FGSM (Xie et al. 2019): iterative FGSM on randomly resized-and-padded inputs.

    Threat model: L-inf, radius ``eps``, white-box. Arguments: ``eps`` (0.3), ``steps`` (10), ``alpha`` (None:
    eps / steps), ``decay`` (0.0; > 0 adds M-DI²-FGSM's momentum), ``resize_rate`` (0.9: smallest resized width
    as a fraction of the image width), ``diversity_prob`` (0.5: chance that a step's input is transformed),
    ``mode`` ('bilinear' as torchattacks; 'nearest' as Xie et al.'s code)."""
    name = "di2fgsm"

    def __init__(self, eps: float = 0.3, steps: int = 10, alpha: float | None = None, decay: float = 0.0,
                 resize_rate: float = 0.9, diversity_prob: float = 0.5, mode: str = "bilinear"):
        super().__init__(eps)
        self.steps = check_positive_int(steps, "steps")
        self.alpha = float(alpha) if alpha is not None else self.eps / self.steps
        if not 0 < resize_rate <= 1:
            raise ConfigError("resize_rate", resize_rate, "a number in (0, 1] (the image is shrunk, then padded)")
        if not 0 <= diversity_prob <= 1:
            raise ConfigError("diversity_prob", diversity_prob, "a probability in [0, 1]")
        if mode not in ("nearest", "bilinear"):
            raise ConfigError("mode", mode, "'nearest' (Xie et al.'s TensorFlow code) or 'bilinear' (torchattacks)")
        self.decay, self.resize_rate, self.diversity_prob = float(decay), float(resize_rate), float(diversity_prob)
        self.mode = mode

    def diverse(self, x):
        """The input diversity transform: with probability ``diversity_prob``, ``x`` resized to a random width in
        [resize_rate * W, W) and zero-padded back to W at a random offset; otherwise ``x`` itself. Draws from
        torch's global generator."""
        if self.diversity_prob == 0 or torch.rand(1).item() >= self.diversity_prob:
            return x
        w = x.shape[-1]
        low = max(1, int(w * self.resize_rate))
        if low >= w:
            return x
        rnd = int(torch.randint(low, w, (1,)).item())
        corners = {"align_corners": False} if self.mode == "bilinear" else {}
        small = F.interpolate(x, size=(rnd, rnd), mode=self.mode, **corners)
        rem = w - rnd
        # offsets in [0, rem), as torchattacks draws them, so the two implementations share one distribution
        top, left = int(torch.randint(0, rem, (1,))), int(torch.randint(0, rem, (1,)))
        return F.pad(small, (left, rem - left, top, rem - top), value=0)

    def perturb(self, model, x, y):
        """``steps`` signed-gradient steps on the cross-entropy of the transformed input, each projected onto
        the eps-ball and [0, 1]."""
        momentum = torch.zeros_like(x)
        x_adv = x.clone()
        for _ in range(self.steps):
            x_in = x_adv.detach().requires_grad_(True)
            loss = F.cross_entropy(model(self.diverse(x_in)), y, reduction="sum")
            grad = torch.autograd.grad(loss, x_in, allow_unused=True)[0] if loss.requires_grad else None
            grad = torch.zeros_like(x_in) if grad is None else grad.nan_to_num(0.0, 0.0, 0.0)  # disconnected input
            if self.decay:
                grad = self.decay * momentum + grad / grad.abs().mean((1, 2, 3), keepdim=True).clamp_min(1e-12)
                momentum = grad
            x_adv = self.project(x, x_adv + self.alpha * grad.sign())
        return x_adv
