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
solve equals one-at-a-time solves; ``natrob.evaluate`` switches it on while it judges an ODE net. It is a solver
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
import functools

import torch
import torch.nn.functional as F
from torch import nn
from torchdiffeq import odeint, odeint_adjoint

from ..errors import ConfigError, SolverFailure
from . import dopri5 as _dopri5  # registers natrob_dopri5 in torchdiffeq's solver table
from .per_sample import dopri5_per_sample
from .common import Normalize

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


def _norm(c):
    return nn.GroupNorm(min(32, c), c)


@functools.lru_cache(maxsize=64)
def _tap_mask(h: int, w: int, dtype, device) -> torch.Tensor:
    """(9, h*w) 0/1 map: whether tap (ki, kj) of a zero-padded 3x3 conv reads inside an h x w image at (i, j).

    A 3x3 conv of a constant plane t equals t * (time weight slice (C, 9) @ this mask): the zero padding is
    what makes the map vary at the border, so the time channel is an exact additive term, not a bias."""
    k = torch.arange(3)[:, None] - 1
    rows = (torch.arange(h)[None, :] + k).ge(0) & (torch.arange(h)[None, :] + k).lt(h)   # (3, h)
    cols = (torch.arange(w)[None, :] + k).ge(0) & (torch.arange(w)[None, :] + k).lt(w)   # (3, w)
    return (rows[:, None, :, None] & cols[None, :, None, :]).reshape(9, h * w).to(dtype=dtype, device=device)


def _time_column(t, x):
    """t as a (1 or batch, 1, 1, 1) tensor: a scalar time for a shared-step solve, one time per sample otherwise."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    return t.reshape(-1, 1, 1, 1)


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


class ConcatConv2d(nn.Module):
    """3x3 conv that sees the time t as an extra constant input channel (input channel 0 of its weight).

    ``impl='concat'`` concatenates the plane literally (the original formulation); ``impl='fast'`` (default)
    convolves only the state and adds t times the conv of a plane of ones. Its weight slices and time map come
    from :meth:`prepare`, on every call or once per solve (``prepared``); either way they are computed from the
    current weight inside the autograd graph, so gradients w.r.t. every weight stay exact and nothing goes
    stale when weights change. ``t`` is a scalar or one time per sample (per-sample solver)."""

    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin + 1, cout, 3, 1, 1)

    def prepare(self, h, w, dtype, device, memory_format=torch.contiguous_format, conv_dtype=None):
        """(state weight, time map (1, C, h, w), bias (1, C, 1, 1)) for an h x w state; the state weight in
        ``conv_dtype`` (None: the weight's own), the time map and bias in ``dtype``."""
        weight, bias = self.conv.weight, self.conv.bias
        cout = weight.shape[0]
        tmap = (weight[:, 0].reshape(cout, 9) @ _tap_mask(h, w, dtype, device)).view(1, cout, h, w)
        w_state = weight[:, 1:] if conv_dtype is None else weight[:, 1:].to(conv_dtype)
        return w_state.contiguous(memory_format=memory_format), tmap, bias.view(1, cout, 1, 1)

    def forward(self, t, x, impl: str = "fast", memory_format=torch.contiguous_format, prepared=None,
                conv_dtype=None):
        if impl == "concat":
            tt = torch.ones_like(x[:, :1]) * _time_column(t, x)
            inp = torch.cat([tt, x], 1)
            if conv_dtype is None:
                return self.conv(inp)
            return F.conv2d(inp.to(conv_dtype), self.conv.weight.to(conv_dtype), None, 1, 1).to(x.dtype) \
                + self.conv.bias.view(1, -1, 1, 1)
        w_state, tmap, bias = prepared or self.prepare(x.shape[-2], x.shape[-1], x.dtype, x.device, memory_format,
                                                       conv_dtype)
        xc = x.contiguous(memory_format=memory_format)
        # low-precision convs only: the state, the norms, the time term and the solver's error estimate stay in
        # the state's dtype, so the step-size controller sees one rounding of each conv's output, not a drifting state
        out = F.conv2d(xc if conv_dtype is None else xc.to(conv_dtype), w_state, None, 1, 1).to(x.dtype)
        # in place: conv2d's backward does not need its output, so this saves a pass and an allocation
        return out.add_(torch.addcmul(bias, _time_column(t, x), tmap))


class ODEFunc(nn.Module):
    """f(t, y) of the ODE block: GroupNorm-ReLU-ConcatConv twice, then GroupNorm.

    ``impl`` picks how the time channel is applied ('fast' or 'concat', same function); ``channels_last``
    (default False) runs the convs in channels-last memory format while GroupNorm stays contiguous (its CPU
    channels-last kernel is several times slower). On the 2-core AMD EPYC CPU this was developed on, the format
    conversions cost more than the convs save (bench/ode_speed.py prints the f call both ways); it is there for
    GPUs, where channels-last feeds tensor cores."""

    def __init__(self, channels, max_nfe=None, impl="fast"):
        super().__init__()
        self.norm1, self.conv1 = _norm(channels), ConcatConv2d(channels, channels)
        self.norm2, self.conv2 = _norm(channels), ConcatConv2d(channels, channels)
        self.norm3 = _norm(channels)
        self.relu = nn.ReLU()
        self.max_nfe = max_nfe
        self.impl = impl
        self.channels_last = False
        self.conv_dtype = None  # None or torch.bfloat16: the fast training path (configure_solver(conv_dtype=...))
        self.calls = 0  # every evaluation of f, forward solve and adjoint solve alike
        self.vjps = 0   # backward passes through f when differentiating the solver directly
        self._prepared = None

    @contextlib.contextmanager
    def solving(self, y0):
        """Within a solve the weights are fixed: the convs' weight slices and time maps are computed once and
        shared by every call of f (they stay in the autograd graph, so weight gradients sum over all calls).
        Not for the adjoint method, whose backward solve differentiates f w.r.t. the weights call by call."""
        if self.impl != "fast":
            yield
            return
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        h, w, cd = y0.shape[-2], y0.shape[-1], self.conv_dtype
        self._prepared = ((h, w, y0.dtype, y0.device, fmt, cd),
                          self.conv1.prepare(h, w, y0.dtype, y0.device, fmt, cd),
                          self.conv2.prepare(h, w, y0.dtype, y0.device, fmt, cd))
        try:
            yield
        finally:
            self._prepared = None

    def _count_vjp(self, grad):
        self.vjps += 1
        return grad

    def forward(self, t, y):
        """f(t, y); counts the call and raises SolverFailure past ``max_nfe``."""
        self.calls += 1
        if self.max_nfe is not None and self.calls > self.max_nfe:
            raise SolverFailure(f"NFE cap exceeded: more than max_nfe={self.max_nfe} evaluations of f")
        cd = self.conv_dtype
        if self.impl == "concat":
            out = self.conv1(t, self.relu(self.norm1(y)), "concat", conv_dtype=cd)
            out = self.conv2(t, self.relu(self.norm2(out)), "concat", conv_dtype=cd)
            out = self.norm3(out)
        else:
            fmt = torch.channels_last if self.channels_last else torch.contiguous_format
            key, p1, p2 = self._prepared or (None, None, None)
            if key != (y.shape[-2], y.shape[-1], y.dtype, y.device, fmt, cd):
                p1 = p2 = None
            # GroupNorm's output is not needed by its backward, so ReLU may overwrite it
            out = self.conv1(t, F.relu_(self.norm1(y.contiguous())), "fast", fmt, p1, cd)
            out = self.conv2(t, F.relu_(self.norm2(out.contiguous())), "fast", fmt, p2, cd)
            out = self.norm3(out.contiguous())
        if out.requires_grad and torch.is_grad_enabled():
            out.register_hook(self._count_vjp)
        return out


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
                raise SolverFailure(f"ODE solver failed ({self.method}, rtol={self.rtol}, atol={self.atol}): {msg}") from exc
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
