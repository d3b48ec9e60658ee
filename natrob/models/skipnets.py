"""Small blocks of the skip-connection architectures of the paper's §3.3, each written as one ODE step of size h:

- PolyNet (Zhang et al. 2017):   y + h F(y) + (h F)^2(y)          -- 2nd-order truncation of backward Euler (Eq. 15-18)
- FractalNet (Larsson et al. 2016): (1/2)(f o f)(y) + (1/2) f(y)  -- the expansion rule (Eq. 19); with step h we use
  y + (h/2)(F(y) + F(y + h F(y))), Heun's method (Eq. 20), of which Eq. 19 drops the identity terms
- RevNet (Gomez et al. 2017):    X' = X + h f1(Y), Y' = Y + h f2(X')   -- Euler on a coupled system (Eq. 21-22)
- ResNet:                         y + h F(y)                        -- explicit Euler (Eq. 2)

Used by notebook 01 to measure how the output change |z_n - y_n| grows with h.
"""
from __future__ import annotations

import torch
from torch import nn


def _branch(c):
    return nn.Sequential(nn.Conv2d(c, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 3, 1, 1))


class StepBlock(nn.Module):
    """Base of the §3.3 blocks: ``channels`` in and out, step size ``h`` (1.0)."""

    def __init__(self, channels, h=1.0):
        super().__init__()
        self.h = h


class ResNetStep(StepBlock):
    """ResNet block as explicit Euler: y + h F(y) (Eq. 2)."""

    def __init__(self, channels, h=1.0):
        super().__init__(channels, h)
        self.F = _branch(channels)

    def forward(self, y):
        return y + self.h * self.F(y)


class PolyNetStep(StepBlock):
    """PolyNet block (Zhang et al. 2017): y + h F(y) + h F(h F(y)), the second-order truncation of backward
    Euler (Eq. 15-18)."""

    def __init__(self, channels, h=1.0):
        super().__init__(channels, h)
        self.F = _branch(channels)

    def forward(self, y):
        hf = self.h * self.F(y)
        return y + hf + self.h * self.F(hf)


class FractalNetStep(StepBlock):
    """FractalNet's expansion rule (Larsson et al. 2016) with step h: y + (h/2)(F(y) + F(y + h F(y))), Heun's
    method (Eq. 20)."""

    def __init__(self, channels, h=1.0):
        super().__init__(channels, h)
        self.F = _branch(channels)

    def forward(self, y):
        k1 = self.F(y)
        return y + 0.5 * self.h * (k1 + self.F(y + self.h * k1))


class RevNetStep(StepBlock):
    """RevNet block (Gomez et al. 2017): channels split into X and Y, X' = X + h f1(Y), Y' = Y + h f2(X'),
    explicit Euler on a coupled system (Eq. 21-22). ``channels`` must be even."""

    def __init__(self, channels, h=1.0):
        super().__init__(channels, h)
        if channels % 2:
            raise ValueError("RevNetStep needs an even channel count (it splits channels into X and Y)")
        self.f1, self.f2 = _branch(channels // 2), _branch(channels // 2)

    def forward(self, y):
        x1, y1 = torch.chunk(y, 2, dim=1)
        x2 = x1 + self.h * self.f1(y1)
        y2 = y1 + self.h * self.f2(x2)
        return torch.cat([x2, y2], 1)


SKIP_BLOCKS = {"resnet": ResNetStep, "polynet": PolyNetStep, "fractalnet": FractalNetStep, "revnet": RevNetStep}
