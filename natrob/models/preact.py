"""PreAct-ResNet18 (He et al. 2016, identity mappings), the architecture of the paper's Table 2 baselines.

``first_layer`` is exposed separately because YOPO (Zhang et al. 2019a) couples the adversary to it."""
from __future__ import annotations

from torch import nn

from .common import Normalize


class PreActBlock(nn.Module):
    """Pre-activation basic block: BN-ReLU-conv3x3-BN-ReLU-conv3x3 plus the input (a 1x1 conv on the
    activated input when the shape changes)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.relu = nn.ReLU()
        self.shortcut = None if stride == 1 and cin == cout else nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x):
        out = self.relu(self.bn1(x))
        sc = x if self.shortcut is None else self.shortcut(out)
        out = self.conv1(out)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + sc


class PreActResNet18(nn.Module):
    """PreAct-ResNet18 (He et al. 2016, "Identity mappings in deep residual networks").

    Arguments: ``in_channels`` (3), ``num_classes`` (10), ``mean``/``std`` (Normalize layer), ``width`` (64:
    channels of the first stage, doubled per stage), ``blocks`` ((2, 2, 2, 2): blocks per stage; the quick
    profile uses (1, 1, 1, 1) and width 8)."""

    def __init__(self, in_channels=3, num_classes=10, mean=(0.5,), std=(0.25,), width=64, blocks=(2, 2, 2, 2)):
        super().__init__()
        self.normalize = Normalize(mean, std)
        self.first_layer = nn.Conv2d(in_channels, width, 3, 1, 1, bias=False)
        layers, cin = [], width
        for stage, n in enumerate(blocks):
            w = width * 2 ** stage
            for i in range(n):
                layers.append(PreActBlock(cin, w, 2 if (stage > 0 and i == 0) else 1))
                cin = w
        self.layers = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(cin, num_classes))

    def embed(self, x):
        """Output of the first layer (YOPO's costate is the gradient with respect to this)."""
        return self.first_layer(self.normalize(x))

    def rest(self, z):
        """Logits from the first layer's output ``z``: ``forward(x) == rest(embed(x))``."""
        return self.head(self.layers(z))

    def forward(self, x):
        return self.rest(self.embed(x))
