"""The ODE block's vector field f(t, y) of the paper's Neural ODE (Table A1): two time-concatenated 3x3 convs with
GroupNorm, the time input applied as an exact additive term (``impl='fast'``) or as a concatenated plane
(``impl='concat'``); it counts its calls (NFE) and vector-Jacobian products, and stops a solve that exceeds
``max_nfe`` with :class:`natrob.errors.SolverFailure`."""
from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import SolverFailure


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
