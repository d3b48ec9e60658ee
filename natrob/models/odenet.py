"""Neural ODE classifier of the paper's Table A1 (after Chen et al. 2018's MNIST ODE net).

Layout: a convolutional stem of ``conv_layers - 2`` convs (the first stride 1, the others 4x4 stride 2),
one ODE block whose vector field f(t, y) is two time-concatenated 3x3 convs with GroupNorm, and a
norm-ReLU-pool-linear head. Table A1: MNIST 4 conv layers / 128 channels / t1 = 100; CIFAR-10 5 / 256 / 500;
dopri5; t0 = 0. Every one of these is a constructor argument.

``method='dopri5'`` runs natrob's lean Dormand-Prince implementation inside torchdiffeq's ``odeint`` (same
method and step control, less memory traffic; ``solver_impl='torchdiffeq'`` selects torchdiffeq's own).

Function evaluations (NFE) are counted for the forward solve (``nfe_forward``) and for the backward pass
(``nfe_backward``: vector field calls made by the adjoint solve, or vector-Jacobian products through f when
back-propagating directly through the solver). Solver breakdowns raise :class:`natrob.errors.SolverFailure`.
"""
from __future__ import annotations

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import ConfigError, SolverFailure
from . import dopri5 as _dopri5  # registers natrob_dopri5 in torchdiffeq's solver table
from .common import Normalize

ADAPTIVE = {"dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"}
FIXED = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams"}


def _norm(c):
    return nn.GroupNorm(min(32, c), c)


class ConcatConv2d(nn.Module):
    """3x3 conv that sees the time t as an extra constant input channel."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin + 1, cout, 3, 1, 1)

    def forward(self, t, x):
        tt = torch.ones_like(x[:, :1]) * t
        return self.conv(torch.cat([tt, x], 1))


class ODEFunc(nn.Module):
    def __init__(self, channels, max_nfe=None):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), ConcatConv2d(channels, channels)
        self.norm2, self.conv2 = _norm(channels), ConcatConv2d(channels, channels)
        self.norm3 = _norm(channels)
        self.relu = nn.ReLU()
        self.max_nfe = max_nfe
        self.calls = 0  # every evaluation of f, forward solve and adjoint solve alike
        self.vjps = 0   # backward passes through f when differentiating the solver directly

    def _count_vjp(self, grad):
        self.vjps += 1
        return grad

    def forward(self, t, y):
        self.calls += 1
        if self.max_nfe is not None and self.calls > self.max_nfe:
            raise SolverFailure(f"NFE cap exceeded: more than max_nfe={self.max_nfe} evaluations of f")
        out = self.conv1(t, self.relu(self.norm1(y)))
        out = self.conv2(t, self.relu(self.norm2(out)))
        out = self.norm3(out)
        if out.requires_grad and torch.is_grad_enabled():
            out.register_hook(self._count_vjp)
        return out


class ODENet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, mean=(0.5,), std=(0.25,), channels=128, conv_layers=4,
                 t0=0.0, t1=100.0, method="dopri5", rtol=1e-3, atol=1e-3, adjoint=False, step_size=None,
                 max_nfe=None, solver_impl="natrob"):
        super().__init__()
        if conv_layers < 3:
            raise ConfigError("conv_layers", conv_layers, "an integer >= 3 (stem convs + the ODE function's 2 convs)")
        if method not in ADAPTIVE | FIXED:
            raise ConfigError("method", method, "one of " + ", ".join(sorted(ADAPTIVE | FIXED)))
        if solver_impl not in ("natrob", "torchdiffeq"):
            raise ConfigError("solver_impl", solver_impl, "'natrob' (lean dopri5) or 'torchdiffeq'")
        if not t1 > t0:
            raise ConfigError("t1", t1, f"a time greater than t0={t0}")
        self.normalize = Normalize(mean, std)
        stem = [nn.Conv2d(in_channels, channels, 3, 1, 1)]
        for _ in range(conv_layers - 3):
            stem += [_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 4, 2, 1)]
        self.stem = nn.Sequential(*stem)
        self.func = ODEFunc(channels, max_nfe)
        self.head = nn.Sequential(_norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, num_classes))
        self.t0, self.t1 = float(t0), float(t1)
        self.method, self.rtol, self.atol = method, rtol, atol
        self.adjoint, self.step_size = adjoint, step_size
        self.solver_impl = solver_impl
        self.nfe_forward = 0
        self._calls_after_forward = 0

    # -- solver configuration -----------------------------------------------------------------
    def solver_config(self) -> dict:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "adjoint": self.adjoint,
                "step_size": self.step_size, "t0": self.t0, "t1": self.t1, "max_nfe": self.func.max_nfe,
                "solver_impl": self.solver_impl}

    def configure_solver(self, **changes):
        """Change solver settings in place (method, rtol, atol, adjoint, step_size, max_nfe); returns the old ones."""
        old = self.solver_config()
        for key, value in changes.items():
            if key == "max_nfe":
                self.func.max_nfe = value
            elif key in ("method", "rtol", "atol", "adjoint", "step_size", "solver_impl"):
                setattr(self, key, value)
            else:
                raise ConfigError("solver setting", key, "method, rtol, atol, adjoint, step_size, max_nfe, solver_impl")
        return old

    # -- NFE ---------------------------------------------------------------------------------
    @property
    def nfe_backward(self) -> int:
        return (self.func.calls - self._calls_after_forward) + self.func.vjps

    def reset_nfe(self):
        self.func.calls = self.func.vjps = 0
        self.nfe_forward = self._calls_after_forward = 0

    # -- forward -----------------------------------------------------------------------------
    def features(self, x):
        return self.stem(self.normalize(x))

    def integrate(self, y0):
        self.func.calls = self.func.vjps = 0
        t = torch.tensor([self.t0, self.t1], dtype=y0.dtype, device=y0.device)
        options = {}
        if self.method in FIXED:
            options["step_size"] = self.step_size if self.step_size is not None else (self.t1 - self.t0) / 100
        solve = odeint_adjoint if self.adjoint else odeint
        method = "natrob_dopri5" if (self.method == "dopri5" and self.solver_impl == "natrob") else self.method
        kwargs = dict(rtol=self.rtol, atol=self.atol, method=method, options=options)
        if self.adjoint:
            kwargs["adjoint_params"] = tuple(self.func.parameters())
        try:
            y1 = solve(self.func, y0, t, **kwargs)[-1]
        except SolverFailure:
            raise
        except (AssertionError, RuntimeError) as exc:
            msg = str(exc)
            if "underflow" in msg or "max_num_steps" in msg or "nan" in msg.lower() or "finite" in msg:
                raise SolverFailure(f"ODE solver failed ({self.method}, rtol={self.rtol}, atol={self.atol}): {msg}") from exc
            raise
        self.nfe_forward = self._calls_after_forward = self.func.calls
        if not torch.isfinite(y1).all():
            raise SolverFailure(f"ODE solver produced a non-finite state ({self.method}, t1={self.t1})")
        return y1

    def forward(self, x):
        return self.head(self.integrate(self.features(x)))

    def euler_resnet(self, x, n_steps: int):
        """The same vector field applied as a weight-tied ResNet: n explicit Euler steps of h = (t1 - t0)/n."""
        y = self.features(x)
        h = (self.t1 - self.t0) / n_steps
        for k in range(n_steps):
            y = y + h * self.func(torch.tensor(self.t0 + k * h, dtype=y.dtype, device=y.device), y)
        return self.head(y)
