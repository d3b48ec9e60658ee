"""Dormand-Prince 5(4) with its own step size for every sample of a batch.

An adaptive solver that shares one step size over a batch measures the error of the whole batch at once, so
an image's solution (its prediction, its adversarial example) depends on which images share its batch. This
solver runs the method of natrob's shared-step dopri5 (``dopri5.py``: same Butcher tableau, error estimate,
RMS error norm, initial step selection, step-size controller and dense output at the end time) with a time,
step size, error norm and accept/reject decision per sample, so a batched solve equals solving each image on
its own, up to floating-point summation order. A sample that reaches the end time leaves the active set, so it
costs nothing more; rejected samples keep their state while their batch-mates move on.

It is differentiable by direct back-propagation (PGD attacks through it). As in torchdiffeq, the first step
size keeps its dependence on the initial state and later step sizes are chosen under ``no_grad``.

A sample fails (and only that sample) when it would need more than ``max_nfe`` evaluations of f, when its
step size underflows, or when its state becomes non-finite; its row of the result is NaN and ``failed`` marks it.

Backward integration (t1 < t0) runs the same method in the elapsed time s = t0 - t, on y'(s) = -f(t0 - s, y),
as torchdiffeq does; bad times or tolerances raise ConfigError naming the parameter.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU as _TAB
from torchdiffeq._impl.dopri5 import DPS_C_MID

from ..errors import ConfigError
from .dopri5 import _combine

_ALPHA = [float(a) for a in _TAB.alpha]
_BETA = [[float(b) for b in row] for row in _TAB.beta]
_C_ERROR = [float(c) for c in _TAB.c_error]
_MID = [float(c) for c in DPS_C_MID]
ORDER = 5
SAFETY, IFACTOR, DFACTOR = 0.9, 10.0, 0.2  # torchdiffeq's defaults, the shared-step solver's controller


class PerSampleSolution(NamedTuple):
    """``y``: the state at t1 (NaN rows where failed); ``nfe``: evaluations of f per sample (int64);
    ``failed``: bool per sample; ``calls``: batched calls of f (= the largest per-sample NFE)."""
    y: torch.Tensor
    nfe: torch.Tensor
    failed: torch.Tensor
    calls: int


def _rms(x):
    """RMS norm of each sample (torchdiffeq's default norm, taken over one sample instead of the batch)."""
    return x.flatten(1).square().mean(1).sqrt()


def _col(v, like):
    """A per-sample vector as a (n, 1, ..., 1) column that broadcasts against the state ``like`` (masks stay bool)."""
    v = v.reshape(-1, *([1] * (like.dim() - 1)))
    return v if v.dtype == torch.bool else v.to(like.dtype)


def _initial_step(call, y0, f0, rtol, atol):
    """Hairer, Norsett & Wanner's initial step (torchdiffeq's ``_select_initial_step``, order 4), per sample."""
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    tiny = torch.full_like(d0, 1e-6)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), tiny, 0.01 * d0 / d1).abs()
    f1 = call(h0.double(), y0 + _col(h0, y0) * f0)
    d2 = (_rms((f1 - f0) / scale) / h0).abs()
    h1 = torch.where((d1 <= 1e-15) & (d2 <= 1e-15), torch.maximum(tiny, h0 * 1e-3),
                     (0.01 / torch.maximum(d1, d2)) ** (1.0 / ORDER))
    return torch.minimum(100 * h0, h1.abs()).double()


@torch.no_grad()
def _next_step(dt, error_ratio):
    """torchdiffeq's ``_optimal_step_size`` with safety 0.9, ifactor 10, dfactor 0.2, per sample."""
    err = error_ratio.double()
    dfactor = torch.where(err < 1, torch.ones_like(err), torch.full_like(err, DFACTOR))
    factor = torch.clamp(torch.maximum(SAFETY / err ** (1.0 / ORDER), dfactor), max=IFACTOR)
    return dt.detach() * torch.where(err == 0, torch.full_like(err, IFACTOR), factor)


def _dense_output(y0, y1, ks, dt, t0, t_end):
    """The 4th-order interpolant of an accepted step (torchdiffeq's ``_interp_fit``/``_interp_evaluate``) at t_end."""
    dt_y = _col(dt, y0)
    y_mid = _combine(y0, ks, _MID, dt_y)
    f0, f1 = ks[0], ks[-1]
    a = 2 * dt_y * (f1 - f0) - 8 * (y1 + y0) + 16 * y_mid
    b = dt_y * (5 * f0 - 3 * f1) + 18 * y0 + 14 * y1 - 32 * y_mid
    c = dt_y * (f1 - 4 * f0) - 11 * y0 - 5 * y1 + 16 * y_mid
    x = _col((t_end - t0) / dt, y0)
    return y0 + x * (dt_y * f0 + x * (c + x * (b + x * a)))


def _check(t0, t1, rtol, atol, max_nfe) -> tuple:
    """The times as floats; ConfigError naming the parameter for a non-finite time or a tolerance <= 0."""
    out = []
    for name, v in (("t0", t0), ("t1", t1)):
        try:
            v = float(v)
        except (TypeError, ValueError):
            raise ConfigError(name, v, "a finite number (the integration's start or end time)") from None
        if not math.isfinite(v):
            raise ConfigError(name, v, "a finite number (the integration's start or end time)")
        out.append(v)
    for name, v in (("rtol", rtol), ("atol", atol)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ConfigError(name, v, "a finite tolerance > 0")
    if max_nfe is not None and not (isinstance(max_nfe, (int, float)) and max_nfe >= 0):
        raise ConfigError("max_nfe", max_nfe, "None (no cap) or a number of evaluations >= 0")
    return tuple(out)


def _clock(func, t0: float, sign: float):
    """f in the elapsed time s = sign * (t - t0) >= 0: integrating backward (t1 < t0) is integrating
    ds/dt-reflected dynamics forward, y'(s) = -f(t0 - s, y). Times are formed in float64, then cast to y's dtype."""
    def call(s, y):
        out = func((t0 + sign * s).to(y.dtype), y)
        return out if sign > 0 else -out
    return call


class _Active:
    """The samples still integrating: their batch rows ``idx``, state ``y``, derivative ``f``, elapsed time
    ``t`` and next step ``dt`` (float64, per sample)."""

    def __init__(self, idx, y, f, t, dt):
        self.idx, self.y, self.f, self.t, self.dt = idx, y, f, t, dt

    def keep(self, mask):
        self.idx, self.y, self.f, self.t, self.dt = (v[mask] for v in (self.idx, self.y, self.f, self.t, self.dt))


def _drop_failures(a: _Active, nfe, failed, cap) -> None:
    """A sample fails where the shared-step solver would raise on it alone: NFE cap, step underflow, non-finite
    state."""
    a.dt = torch.where(torch.isfinite(a.dt), a.dt, torch.zeros_like(a.dt)).clamp(min=0)
    bad = (nfe[a.idx] + 6 > cap) | ~(a.t + a.dt > a.t) | ~torch.isfinite(a.y.flatten(1)).all(1)
    if bad.any():
        failed[a.idx[bad]] = True
        a.keep(~bad)


def _step(call, a: _Active, rtol, atol):
    """One Dormand-Prince step of every active sample: (stages, y at t + dt, error ratio per sample)."""
    t_next = a.t + a.dt
    dt_y = _col(a.dt, a.y)
    ks, yi = [a.f], a.y
    for alpha, beta in zip(_ALPHA, _BETA):
        ti = t_next if alpha == 1.0 else a.t + alpha * a.dt
        yi = _combine(a.y, ks, beta, dt_y)
        ks.append(call(ti, yi))
    with torch.no_grad():  # the error estimate only steers the step size, as in the shared-step solver
        err = _combine(torch.zeros_like(a.y), ks, _C_ERROR, dt_y)
        error_ratio = _rms(err / (atol + rtol * torch.maximum(a.y.abs(), yi.abs())))
    return ks, yi, error_ratio


def _advance(a: _Active, ks, y1, error_ratio, span, rows_out, vals_out) -> None:
    """Accept or reject each sample's step, record the samples that reached the end, drop them."""
    t_next = a.t + a.dt
    accept = error_ratio <= 1
    done = accept & (t_next >= span)
    dt_next = _next_step(a.dt, error_ratio)
    any_done = bool(done.any())
    if any_done:
        d = done.nonzero().squeeze(1)
        exact = t_next[d] == span
        y_end = _dense_output(a.y[d], y1[d], [k[d] for k in ks], t_next[d] - a.t[d], a.t[d],
                              torch.full_like(a.t[d], span))
        rows_out.append(a.idx[d]), vals_out.append(torch.where(_col(exact, y_end), y1[d], y_end))
    if bool(accept.all()):
        a.y, a.f, a.t = y1, ks[-1], t_next
    else:
        m = _col(accept, a.y)
        a.y, a.f, a.t = torch.where(m, y1, a.y), torch.where(m, ks[-1], a.f), torch.where(accept, t_next, a.t)
    a.dt = dt_next
    if any_done:
        a.keep(~done)


def dopri5_per_sample(func, y0, t0: float, t1: float, rtol: float, atol: float, max_nfe=None) -> PerSampleSolution:
    """Solve dy/dt = func(t, y) from t0 to t1 for every sample of ``y0`` (first dim) with its own steps.

    ``t1 < t0`` integrates backward in time; ``t1 == t0`` returns ``y0`` with no evaluation. ``func(t, y)`` is
    called with ``t`` a scalar tensor (first call) or one time per row of ``y`` (float dtype of y). ``rtol``,
    ``atol`` > 0; ``max_nfe`` (default None: no cap) bounds the evaluations of f per sample. Raises ConfigError
    (naming the parameter) for a non-finite time or a tolerance <= 0; solver failures never raise, they are
    marked per sample in ``failed``."""
    t0, t1 = _check(t0, t1, rtol, atol, max_nfe)
    n, dev = y0.shape[0], y0.device
    nfe = torch.zeros(n, dtype=torch.long, device=dev)
    failed = torch.zeros(n, dtype=torch.bool, device=dev)
    cap = float("inf") if max_nfe is None else max_nfe
    if n == 0 or t1 == t0:
        return PerSampleSolution(y0.clone(), nfe, failed, 0)
    if cap < 2:  # the initial step already needs two evaluations
        failed[:] = True
        return PerSampleSolution(torch.full_like(y0, float("nan")), nfe, failed, 0)
    span, call = abs(t1 - t0), _clock(func, t0, 1.0 if t1 > t0 else -1.0)
    f = call(torch.zeros((), dtype=torch.float64, device=dev), y0)
    a = _Active(torch.arange(n, device=dev), y0, f, torch.zeros(n, dtype=torch.float64, device=dev),
                _initial_step(call, y0, f, rtol, atol))
    calls, nfe[:], rows_out, vals_out = 2, 2, [], []
    while len(a.idx):
        _drop_failures(a, nfe, failed, cap)
        if not len(a.idx):
            break
        ks, y1, error_ratio = _step(call, a, rtol, atol)
        calls += 6
        nfe[a.idx] += 6
        _advance(a, ks, y1, error_ratio, span, rows_out, vals_out)
    result = torch.full_like(y0, float("nan"))
    if rows_out:
        rows, vals = torch.cat(rows_out), torch.cat(vals_out)
        failed[rows[~torch.isfinite(vals.flatten(1)).all(1)]] = True
        result = result.index_put((rows,), vals)
    return PerSampleSolution(result, nfe, failed, calls)
