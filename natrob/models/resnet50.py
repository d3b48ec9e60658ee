"""ResNet50 with bottleneck blocks (He et al. 2016), adapted to small images (3x3 stem, no max-pool),
as used for Table 1, Fig. 2 and Fig. 3. ``width`` and ``blocks`` scale it down for small profiles."""
from __future__ import annotations

from torch import nn

from .common import Normalize


class Bottleneck(nn.Module):
    """Bottleneck block: 1x1 (reduce) - 3x3 - 1x1 (expand 4x) convs with BN, plus the (projected) input, ReLU."""
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * self.expansion
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.shortcut(x) + self.body(x))


class ResNet50(nn.Module):
    """ResNet50 (He et al. 2016) for small images: 3x3 stem, no max-pool, bottleneck stages.

    Arguments: ``in_channels`` (3), ``num_classes`` (10), ``mean``/``std`` (Normalize layer), ``width`` (64:
    bottleneck width of the first stage, doubled per stage), ``blocks`` ((3, 4, 6, 3): ResNet50's blocks per
    stage)."""

    def __init__(self, in_channels=3, num_classes=10, mean=(0.5,), std=(0.25,), width=64, blocks=(3, 4, 6, 3)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for stage, n in enumerate(blocks):
            w = width * 2 ** stage
            for i in range(n):
                layers.append(Bottleneck(cin, w, 2 if (stage > 0 and i == 0) else 1))
                cin = w * Bottleneck.expansion
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, num_classes))

    def forward(self, x):
        return self.head(self.layers(self.stem(self.normalize(x))))
