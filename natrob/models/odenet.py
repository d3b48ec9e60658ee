"""Neural ODE classifier of the paper's Table A1 (after Chen et al. 2018's MNIST ODE net).

Layout: a convolutional stem of ``conv_layers - 2`` convs (the first stride 1, the others 4x4 stride 2),
one ODE block whose vector field f(t, y) is two time-concatenated 3x3 convs with GroupNorm, and a
norm-ReLU-pool-linear head. Table A1: MNIST 4 conv layers / 128 channels / t1 = 100; CIFAR-10 5 / 256 / 500;
dopri5; t0 = 0. Every one of these is a constructor argument.

``method='dopri5'`` runs natrob's lean Dormand-Prince implementation inside torchdiffeq's ``odeint`` (same
method and step control, less memory traffic; ``solver_impl='torchdiffeq'`` selects torchdiffeq's own).

The time input of f's convs is applied as an exact additive term (``f_impl='fast'``, default): a 3x3 conv of
the constant plane t is t times a fixed weight-dependent map, so the convs see 128 channels instead of 129.
``f_impl='concat'`` keeps the literal concatenation (same function, same parameters: checkpoints load either way).

``configure_solver(per_sample=True)`` solves dopri5 with a step size per sample (``per_sample.py``), so a batched
solve equals one-at-a-time solves; ``natrob.harness.evaluate`` switches it on while it judges an ODE net. It is a solver
setting, not a constructor argument, so model-store keys do not change.

Function evaluations (NFE) are counted for the forward solve (``nfe_forward``) and for the backward pass
(``nfe_backward``: vector field calls made by the adjoint solve, or vector-Jacobian products through f when
back-propagating directly through the solver; in per-sample mode ``nfe_forward`` counts batched calls of f, the
largest per-sample NFE, and ``nfe_per_sample`` holds each sample's). Solver breakdowns raise
:class:`natrob.errors.SolverFailure`.
"""
from __future__ import annotations

import contextlib
import copy

import torch
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import ConfigError, SolverFailure
from . import dopri5 as _dopri5  # registers natrob_dopri5 in torchdiffeq's solver table
from .common import Normalize
from .per_sample import dopri5_per_sample
from .vector_field import ODEFunc, _norm

ADAPTIVE = {"dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"}
FIXED = {"euler", "midpoint", "rk4", "explicit_adams", "implicit_adams"}


F_IMPLS = ("fast", "concat")


CONV_DTYPES = (None, "bfloat16")

_SETTINGS = {"f_impl": (F_IMPLS, "'fast' (time channel as an additive term) or 'concat' (concatenated plane)"),
             "conv_dtype": (CONV_DTYPES, "None (the state's dtype) or 'bfloat16' (the fast training path)"),
             "solver_impl": (("natrob", "torchdiffeq"), "'natrob' (lean dopri5) or 'torchdiffeq'"),
             "per_sample": ((True, False), "True or False"),
             "channels_last": ((True, False), "True or False")}


def _check_setting(name, value):
    values, text = _SETTINGS[name]
    if not any(value is v or (isinstance(value, str) and value == v) for v in values):
        raise ConfigError(name, value, text)


@contextlib.contextmanager
def solver_settings(model, **changes):
    """Apply ``ODENet.configure_solver(**changes)`` for the duration of a block, then restore the old settings.

    With ``optional=True`` a model that has no such settings (a CNN, or a wrapper whose ``configure_solver``
    refuses them with ConfigError) is yielded unchanged: the harness asks for per-sample solves of every model
    it judges, and only ODE nets have them. Otherwise such a model raises ConfigError."""
    optional = changes.pop("optional", False)
    configure = getattr(model, "configure_solver", None)
    old = None
    try:
        if configure is None:
            raise ConfigError("model", type(model).__name__, "a model with solver settings (configure_solver)")
        old = configure(**changes)
    except ConfigError:
        if not optional:
            raise
    try:
        yield model
    finally:
        if old is not None:
            configure(**{k: old[k] for k in changes})


def solver_twin(model, **changes):
    """A copy of an ODE net (same weights, eval mode) with other solver settings (``ODENet.configure_solver``
    arguments): the one way natrob builds the twins that craft through another solve (the audit's adaptive
    attacks, notebook 07's cross-solver protocol). The original is left untouched."""
    twin = copy.deepcopy(model)
    twin.configure_solver(**changes)
    return twin.eval()


class ODENet(nn.Module):
    """Neural ODE classifier (see the module doc). Arguments: data spec (in_channels, num_classes, mean, std),
    channels (128), conv_layers (4), t0 (0), t1 (100), method ('dopri5'), rtol/atol (1e-3), adjoint (False),
    step_size (fixed-step methods; default (t1 - t0)/100), max_nfe (None), solver_impl ('natrob'),
    f_impl ('fast'). Solver settings change in place with :meth:`configure_solver`."""

    def __init__(self, in_channels=1, num_classes=10, mean=(0.5,), std=(0.25,), channels=128, conv_layers=4,
                 t0=0.0, t1=100.0, method="dopri5", rtol=1e-3, atol=1e-3, adjoint=False, step_size=None,
                 max_nfe=None, solver_impl="natrob", f_impl="fast"):
        super().__init__()
        if conv_layers < 3:
            raise ConfigError("conv_layers", conv_layers, "an integer >= 3 (stem convs + the ODE function's 2 convs)")
        if method not in ADAPTIVE | FIXED:
            raise ConfigError("method", method, "one of " + ", ".join(sorted(ADAPTIVE | FIXED)))
        _check_setting("solver_impl", solver_impl)
        _check_setting("f_impl", f_impl)
        if not t1 > t0:
            raise ConfigError("t1", t1, f"a time greater than t0={t0}")
        self.normalize = Normalize(mean, std)
        stem = [nn.Conv2d(in_channels, channels, 3, 1, 1)]
        for _ in range(conv_layers - 3):
            stem += [_norm(channels), nn.ReLU(), nn.Conv2d(channels, channels, 4, 2, 1)]
        self.stem = nn.Sequential(*stem)
        self.func = ODEFunc(channels, max_nfe, f_impl)
        self.head = nn.Sequential(_norm(channels), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(channels, num_classes))
        self.t0, self.t1 = float(t0), float(t1)
        self.method, self.rtol, self.atol = method, rtol, atol
        self.adjoint, self.step_size = adjoint, step_size
        self.solver_impl = solver_impl
        self.per_sample = False
        self.nfe_forward = 0
        self.nfe_per_sample = None
        self._calls_after_forward = 0

    # -- solver configuration -----------------------------------------------------------------
    def solver_config(self) -> dict:
        """The current solver settings (the keys :meth:`configure_solver` accepts, plus t0 and t1)."""
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol, "adjoint": self.adjoint,
                "step_size": self.step_size, "t0": self.t0, "t1": self.t1, "max_nfe": self.func.max_nfe,
                "solver_impl": self.solver_impl, "per_sample": self.per_sample, "f_impl": self.func.impl,
                "channels_last": self.func.channels_last,
                "conv_dtype": None if self.func.conv_dtype is None else str(self.func.conv_dtype).split(".")[-1]}

    def configure_solver(self, **changes):
        """Change solver settings in place and return the old ones (pass them back to restore).

        Settings: method, rtol, atol, adjoint, step_size, max_nfe, solver_impl; ``per_sample`` (bool,
        default False): dopri5 with a step size per sample, so a batched solve equals one-at-a-time solves
        (used for dopri5 forward solves and direct back-propagation; an adjoint solve with gradients, other
        adaptive methods and fixed-step methods, which are batch-independent already, ignore it);
        ``f_impl`` ('fast' default, or 'concat': the literal time-channel concatenation, same function);
        ``channels_last`` (bool, default False: convs of f in channels-last memory format); ``conv_dtype``
        (None, default: the state's dtype; 'bfloat16': the convs of f take and give bfloat16 while the state,
        the norms and the solver's error estimate stay float32 -- the fast training path of
        :mod:`natrob.train.precision`, never used to evaluate or attack)."""
        old = self.solver_config()
        allowed = ("method", "rtol", "atol", "adjoint", "step_size", "max_nfe", "solver_impl", "per_sample",
                   "f_impl", "channels_last", "conv_dtype")
        for key, value in changes.items():
            if key not in allowed:
                raise ConfigError("solver setting", key, ", ".join(allowed))
            if key in ("solver_impl", "f_impl", "per_sample", "channels_last", "conv_dtype"):
                _check_setting(key, value)
        for key, value in changes.items():
            if key == "max_nfe":
                self.func.max_nfe = value
            elif key == "f_impl":
                self.func.impl = value
            elif key == "channels_last":
                self.func.channels_last = value
            elif key == "conv_dtype":
                self.func.conv_dtype = None if value is None else getattr(torch, value)
            else:
                setattr(self, key, value)
        return old

    # -- NFE ---------------------------------------------------------------------------------
    @property
    def nfe_backward(self) -> int:
        """Evaluations of f made by the last backward pass: adjoint-solve calls plus VJPs through f."""
        return (self.func.calls - self._calls_after_forward) + self.func.vjps

    # -- forward -----------------------------------------------------------------------------
    def features(self, x):
        """y(t0): the normalised image through the convolutional stem."""
        return self.stem(self.normalize(x))

    def _uses_per_sample(self):
        return (self.per_sample and self.method == "dopri5"
                and not (self.adjoint and torch.is_grad_enabled()))

    def _integrate_per_sample(self, y0):
        cap, self.func.max_nfe = self.func.max_nfe, None  # the cap applies per sample, not to batched calls
        try:
            with self.func.solving(y0):  # no adjoint here: per-sample mode back-propagates directly
                sol = dopri5_per_sample(self.func, y0, self.t0, self.t1, self.rtol, self.atol, max_nfe=cap)
        finally:
            self.func.max_nfe = cap
        self.nfe_per_sample = sol.nfe
        self.nfe_forward = self._calls_after_forward = self.func.calls
        if sol.failed.any():
            k = int(sol.failed.sum())
            exc = SolverFailure(f"ODE solver failed on {k} of {len(y0)} samples (per-sample dopri5, rtol={self.rtol}, "
                                f"atol={self.atol}, max_nfe={cap}): NFE cap, step-size underflow or non-finite state")
            exc.failed, exc.state = sol.failed, sol.y
            raise exc
        return sol.y

    def integrate(self, y0):
        """The ODE block: y(t1) from y(t0) = ``y0`` with the configured solver. Raises SolverFailure; in
        per-sample mode the exception carries ``failed`` (bool per sample) and ``state`` (NaN rows where failed)."""
        self.func.calls = self.func.vjps = 0
        self.nfe_per_sample = None
        if self._uses_per_sample():
            return self._integrate_per_sample(y0)
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
            with contextlib.nullcontext() if self.adjoint else self.func.solving(y0):
                y1 = solve(self.func, y0, t, **kwargs)[-1]
        except SolverFailure:
            raise
        except (AssertionError, RuntimeError) as exc:
            msg = str(exc)
            if "underflow" in msg or "max_num_steps" in msg or "nan" in msg.lower() or "finite" in msg:
                raise SolverFailure(f"ODE solver failed ({self.method}, rtol={self.rtol}, atol={self.atol}): "
                                    f"{msg}") from exc
            raise
        self.nfe_forward = self._calls_after_forward = self.func.calls
        if not torch.isfinite(y1).all():
            raise SolverFailure(f"ODE solver produced a non-finite state ({self.method}, t1={self.t1})")
        return y1

    def forward(self, x):
        """Logits: stem, ODE block from t0 to t1, head. A solver failure raises SolverFailure; in per-sample
        mode it carries the logits of the samples that did not fail (NaN rows where they did)."""
        try:
            return self.head(self.integrate(self.features(x)))
        except SolverFailure as exc:
            # per-sample failures: the logits of the samples that did not fail stay usable
            if getattr(exc, "state", None) is not None and getattr(exc, "logits", None) is None:
                with torch.no_grad():
                    exc.logits = self.head(exc.state.nan_to_num(0.0))
                    exc.logits[exc.failed] = float("nan")
            raise

    def euler_resnet(self, x, n_steps: int):
        """The same vector field applied as a weight-tied ResNet: n explicit Euler steps of h = (t1 - t0)/n."""
        y = self.features(x)
        h = (self.t1 - self.t0) / n_steps
        for k in range(n_steps):
            y = y + h * self.func(torch.tensor(self.t0 + k * h, dtype=y.dtype, device=y.device), y)
        return self.head(y)
