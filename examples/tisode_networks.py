"""Stand-ins for the classes that TisODE's published MNIST checkpoints name, for natrob's audit.

TisODE (Yan et al., "On Robustness of Neural Ordinary Differential Equations", ICLR 2020; GitHub HanshuYAN/TisODE)
publishes ``checkpoints/MNIST_{CNN,ODE,tisode}_gaus_1/model_best.pth``: whole modules pickled by torch 1.0 (the
TisODE one inside ``nn.DataParallel``), whose classes the pickles name as ``networks.<Class>``. natrob.pickled
rebuilds them from their pickled state, matching each name to the class of the same name here, so no constructor
runs: this file supplies only forward passes, written for natrob from the architecture the training logs print.
Attribute names (``net``, ``odefunc``, ``_layer``, ``integration_time``, ``step_size``) are those the pickled
state carries.

    python -m natrob.audit --model examples/tisode_networks.py:ODENet_tisode \\
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


class Flatten(nn.Module):
    def forward(self, x):
        return x.reshape(len(x), -1)


class ResBlock(nn.Module):
    """x + relu(norm2(conv2(relu(norm1(conv1(x))))))."""

    def forward(self, x):
        out = self.relu(self.norm1(self.conv1(x)))
        return self.relu(self.norm2(self.conv2(out))) + x


class CNN_MNIST(nn.Module):
    def forward(self, x):
        return self.net(x)


class ConcatConv2d(nn.Module):
    """A convolution over the state with the time as one more (constant) input channel, in front."""

    def forward(self, t, x):
        return self._layer(torch.cat([torch.full_like(x[:, :1], float(t)), x], 1))


class ODEfunc(nn.Module):
    def forward(self, t, x):
        out = self.relu(self.norm1(self.conv1(t, x)))
        return self.relu(self.norm2(self.conv2(t, out)))


class ODEBlock(nn.Module):
    """The state at the last of ``integration_time`` (0 -> 1 in the checkpoint), Euler steps of ODE_STEP."""

    def forward(self, x):
        t = self.integration_time.float()
        return euler(self.odefunc, x, t[0], t[-1], ODE_STEP)


class ODENet_MNIST(nn.Module):
    def forward(self, x):
        return self.net(x)


class ODEfunc_tisode(nn.Module):
    """Time-invariant: ``t`` is not used."""

    def forward(self, t, x):
        out = self.relu(self.norm1(self.conv1(x)))
        return self.relu(self.norm2(self.conv2(out)))


class ODENet_tisode(nn.Module):
    """Logits from the state at ``integration_time[2]`` (the original's prediction; its forward also returns the
    steady-state terms of the training loss, left out here), Euler steps of the pickled ``step_size``."""

    def forward(self, x):
        t = self.integration_time.float()
        state = euler(self.feature_layers, self.downsampling_layers(x), t[0], t[2], float(self.step_size))
        return self.fc_layers(state)
