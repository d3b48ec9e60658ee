"""A plain small CNN and a linear classifier: baselines for tests and for the audit's sanity checks."""
from __future__ import annotations

from torch import nn

from .common import Normalize


class SmallCNN(nn.Module):
    """Two 3x3 convs (the second stride 2), adaptive average pooling to 2x2 and two linear layers: a quick,
    non-residual baseline. Arguments: ``in_channels`` (1), ``num_classes`` (10), ``mean``/``std`` (Normalize layer),
    ``width`` (32: channels of the first conv, doubled in the second)."""

    def __init__(self, in_channels=1, num_classes=10, mean=(0.5,), std=(0.25,), width=32):
        super().__init__()
        self.net = nn.Sequential(
            Normalize(mean, std), nn.Conv2d(in_channels, width, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
            nn.Linear(8 * width, 128), nn.ReLU(), nn.Linear(128, num_classes))

    def forward(self, x):
        return self.net(x)


class Linear(nn.Module):
    """Logits = W x + b on raw [0,1] pixels (no normalisation), so L-inf distances to the decision
    boundary have a closed form (used as an exact reference for attacks)."""

    def __init__(self, in_channels=1, num_classes=10, mean=None, std=None, image_size=8):
        super().__init__()
        self.fc = nn.Linear(in_channels * image_size * image_size, num_classes)

    def forward(self, x):
        return self.fc(x.flatten(1))
