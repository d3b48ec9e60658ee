"""Stand-ins for the classes that TisODE's published MNIST checkpoints name, for natrob's audit.

TisODE (Yan et al., "On Robustness of Neural Ordinary Differential Equations", ICLR 2020; GitHub HanshuYAN/TisODE)
publishes ``checkpoints/MNIST_{CNN,ODE,tisode}_gaus_1/model_best.pth``: whole modules pickled by torch 1.0 (the
TisODE one inside ``nn.DataParallel``), whose classes the pickles name as ``networks.<Class>``. natrob.audit.pickled
rebuilds them from their pickled state, matching each name to the class of the same name here, so no constructor
runs when a checkpoint is read: the forward passes are what matters, written for natrob from the architecture the
training logs print. Attribute names (``net``, ``odefunc``, ``_layer``, ``integration_time``, ``step_size``) are
those the pickled state carries. The constructors (``channels`` wide, for ``in_channels``-channel images) build the
same architecture afresh: notebook 10 trains small ones as a stand-in where the published checkpoints are absent.

    python -m natrob.run.audit --model examples/tisode_networks.py:ODENet_tisode \\
        --checkpoint TisODE/checkpoints/MNIST_tisode_gaus_1/model_best.pth --dataset mnist

Inputs: (N, 1, 28, 28) images in [0, 1] (TisODE trains on ``ToTensor()`` images, no normalisation); outputs (N, 10)
logits. The ODE blocks integrate with fixed-step Euler on the grid torchdiffeq 0.0.x builds from ``step_size``.
"""
import torch
from torch import nn

ODE_STEP = 0.1  # MNIST_ODE_gaus_1 was trained with --step_size 0.1 (its train_result.txt); not in its pickle


def euler(func, y, t0, t1, step: float):
    """``y`` (N, C, H, W) carried from time ``t0`` to ``t1`` (0-d tensors) by Euler steps of ``step`` on the grid
    ``t0 + k * step`` (last point clipped to ``t1``): ``y <- y + dt * func(t, y)``. Returns the state at ``t1``."""
    n = int(torch.ceil((t1 - t0) / step + 1).item())
    grid = torch.arange(n, dtype=t0.dtype) * step + t0
    grid[-1] = torch.minimum(grid[-1], t1)
    for a, b in zip(grid[:-1], grid[1:]):
        y = y + (b - a).to(y) * func(a.to(y), y)
    return y


def norm(channels: int) -> nn.Module:
    """Group normalisation with at most 32 groups, as the checkpoints carry."""
    return nn.GroupNorm(min(32, channels), channels)


def downsampling(in_channels: int, channels: int) -> list:
    """A 3x3 convolution (no padding) and a stride-2 4x4 one, each normalised: 28 x 28 -> 13 x 13 on MNIST."""
    return [nn.Conv2d(in_channels, channels, 3, 1), norm(channels), nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, 4, 2, 1), norm(channels), nn.ReLU(inplace=True)]


def head(channels: int, classes: int) -> list:
    """Global average pooling and a linear layer to the logits."""
    return [nn.AdaptiveAvgPool2d((1, 1)), Flatten(), nn.Linear(channels, classes)]


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(len(x), -1)


class ResBlock(nn.Module):
    """x + relu(norm2(conv2(relu(norm1(conv1(x))))))."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm1 = norm(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.norm2 = norm(channels)

    def forward(self, x):
        out = self.relu(self.norm1(self.conv1(x)))
        return self.relu(self.norm2(self.conv2(out))) + x


class CNN_MNIST(nn.Module):
    def __init__(self, channels: int = 64, in_channels: int = 1, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(*downsampling(in_channels, channels), ResBlock(channels), *head(channels, classes))

    def forward(self, x):
        return self.net(x)


class ConcatConv2d(nn.Module):
    """A convolution over the state with the time as one more (constant) input channel, in front."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self._layer = nn.Conv2d(channels + 1, channels, 3, 1, 1)

    def forward(self, t, x):
        return self._layer(torch.cat([torch.full_like(x[:, :1], float(t)), x], 1))


class ODEfunc(nn.Module):
    def __init__(self, channels: int = 64):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1, self.norm1 = ConcatConv2d(channels), norm(channels)
        self.conv2, self.norm2 = ConcatConv2d(channels), norm(channels)

    def forward(self, t, x):
        out = self.relu(self.norm1(self.conv1(t, x)))
        return self.relu(self.norm2(self.conv2(t, out)))


class ODEBlock(nn.Module):
    """The state at the last of ``integration_time`` (0 -> 1 in the checkpoint), Euler steps of ODE_STEP."""

    def __init__(self, odefunc: nn.Module):
        super().__init__()
        self.odefunc = odefunc
        self.integration_time = torch.tensor([0.0, 1.0])

    def forward(self, x):
        t = self.integration_time.float()
        return euler(self.odefunc, x, t[0], t[-1], ODE_STEP)


class ODENet_MNIST(nn.Module):
    def __init__(self, channels: int = 64, in_channels: int = 1, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(*downsampling(in_channels, channels), ODEBlock(ODEfunc(channels)),
                                 *head(channels, classes))

    def forward(self, x):
        return self.net(x)


class ODEfunc_tisode(nn.Module):
    """Time-invariant: ``t`` is not used."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.relu = nn.ReLU(inplace=True)
        self.conv1, self.norm1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False), norm(channels)
        self.conv2, self.norm2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False), norm(channels)

    def forward(self, t, x):
        out = self.relu(self.norm1(self.conv1(x)))
        return self.relu(self.norm2(self.conv2(out)))


class ODENet_tisode(nn.Module):
    """Logits from the state at ``integration_time[2]`` (the original's prediction; its forward also returns the
    steady-state terms of the training loss, left out here), Euler steps of the pickled ``step_size``."""

    def __init__(self, channels: int = 64, in_channels: int = 1, classes: int = 10, step_size: float = 0.05):
        super().__init__()
        self.integration_time = torch.tensor([0.0, 0.75, 1.0, 1.05])  # TisODE's --TimePeriod 0_0.75_1_1.05
        self.step_size = step_size
        self.downsampling_layers = nn.Sequential(*downsampling(in_channels, channels))
        self.feature_layers = ODEfunc_tisode(channels)
        self.fc_layers = nn.Sequential(*head(channels, classes))

    def forward(self, x):
        t = self.integration_time.float()
        state = euler(self.feature_layers, self.downsampling_layers(x), t[0], t[2], float(self.step_size))
        return self.fc_layers(state)
