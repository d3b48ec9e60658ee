"""CIFAR-style ResNet (He et al. 2016, depth 6n+2, widths 16/32/64) with an explicit step size h.

Each block is one explicit Euler step of the paper's Eq. (2): y_{n+1} = P(y_n) + h * f(y_n), where f is a
pre-activation residual branch (BN-ReLU-conv-BN-ReLU-conv) and P is the parameter-free shortcut of
He et al.'s option A (identity, or stride-2 subsampling with zero-padded channels). With h = 1 this is the
usual ResNet; with h = 0 every stage passes its input through P unchanged.
"""
from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from .common import Normalize


class EulerBlock(nn.Module):
    """One explicit Euler step y + h f(y) (shortcut P in place of y when the block changes the shape)."""

    def __init__(self, cin, cout, stride, h):
        super().__init__()
        self.h = h
        self.stride, self.pad = stride, cout - cin
        self.f = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(), nn.Conv2d(cin, cout, 3, stride, 1, bias=False),
            nn.BatchNorm2d(cout), nn.ReLU(), nn.Conv2d(cout, cout, 3, 1, 1, bias=False))

    def shortcut(self, x):
        """P: identity, or stride-2 subsampling with zero channels padded on both sides. Parameter-free and
        non-expansive, which Theorem 3.1's per-block factor 1 + h K relies on."""
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        if self.pad:
            x = F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))
        return x

    def forward(self, x):
        return self.shortcut(x) + self.h * self.f(x)


class CifarResNet(nn.Module):
    """CIFAR ResNet (He et al. 2016, "Deep residual learning for image recognition") as Euler steps of size h.

    Arguments: ``in_channels`` (3), ``num_classes`` (10), ``mean``/``std`` (Normalize layer), ``depth`` (56;
    6n + 2, n blocks per stage), ``h`` (1.0: the usual ResNet), ``widths`` ((16, 32, 64): channels per
    stage). Raises ConfigError for a depth that is not 6n + 2."""

    def __init__(self, in_channels=3, num_classes=10, mean=(0.5,), std=(0.25,), depth=56, h=1.0, widths=(16, 32, 64)):
        super().__init__()
        if (depth - 2) % 6 != 0 or depth < 8:
            from ..errors import ConfigError
            raise ConfigError("depth", depth, "6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...)")
        n = (depth - 2) // 6
        self.depth, self.h = depth, h
        self.normalize = Normalize(mean, std)
        self.stem = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage, width in enumerate(widths):
            for i in range(n):
                blocks.append(EulerBlock(cin, width, 2 if (stage > 0 and i == 0) else 1, h))
                cin = width
        self.stages = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, num_classes))

    def features(self, x):
        """Stem output: the input y_0 of the Euler steps."""
        return self.stem(self.normalize(x))

    def forward(self, x):
        return self.head(self.stages(self.features(x)))
