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
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torchdiffeq._impl.dopri5 import _DORMAND_PRINCE_SHAMPINE_TABLEAU as _TAB
from torchdiffeq._impl.dopri5 import DPS_C_MID

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


def _initial_step(func, t0, y0, f0, rtol, atol):
    """Hairer, Norsett & Wanner's initial step (torchdiffeq's ``_select_initial_step``, order 4), per sample."""
    scale = atol + y0.abs() * rtol
    d0, d1 = _rms(y0 / scale), _rms(f0 / scale)
    tiny = torch.full_like(d0, 1e-6)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), tiny, 0.01 * d0 / d1).abs()
    f1 = func((t0 + h0.double()).to(y0.dtype), y0 + _col(h0, y0) * f0)
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


def dopri5_per_sample(func, y0, t0: float, t1: float, rtol: float, atol: float, max_nfe=None) -> PerSampleSolution:
    """Solve dy/dt = func(t, y) from t0 to t1 > t0 for every sample of ``y0`` (first dim) with its own steps.

    ``func(t, y)`` is called with ``t`` a scalar tensor (first call) or one time per row of ``y`` (float dtype of
    y). ``max_nfe`` (default None: no cap) bounds the evaluations of f per sample."""
    n = y0.shape[0]
    dev = y0.device
    nfe = torch.zeros(n, dtype=torch.long, device=dev)
    failed = torch.zeros(n, dtype=torch.bool, device=dev)
    rows_out, vals_out = [], []
    cap = float("inf") if max_nfe is None else max_nfe
    if n == 0:
        return PerSampleSolution(y0.clone(), nfe, failed, 0)
    if cap < 2:  # the initial step already needs two evaluations
        failed[:] = True
        return PerSampleSolution(torch.full_like(y0, float("nan")), nfe, failed, 0)
    t_start = torch.tensor(t0, dtype=torch.float64, device=dev)
    f = func(t_start.to(y0.dtype), y0)
    dt = _initial_step(func, t_start, y0, f, rtol, atol)
    calls, nfe[:] = 2, 2
    y = y0
    t = torch.full((n,), float(t0), dtype=torch.float64, device=dev)
    idx = torch.arange(n, device=dev)  # batch rows of the active samples
    while len(idx):
        # a sample fails where the shared-step solver would raise on it alone: NFE cap, step underflow, non-finite state
        dt = torch.where(torch.isfinite(dt), dt, torch.zeros_like(dt)).clamp(min=0)
        bad = (nfe[idx] + 6 > cap) | ~(t + dt > t) | ~torch.isfinite(y.flatten(1)).all(1)
        if bad.any():
            failed[idx[bad]] = True
            keep = ~bad
            idx, y, f, t, dt = idx[keep], y[keep], f[keep], t[keep], dt[keep]
            if not len(idx):
                break
        t_next = t + dt
        dt_y = _col(dt, y)
        ks, yi = [f], y
        for alpha, beta in zip(_ALPHA, _BETA):
            ti = t_next if alpha == 1.0 else t + alpha * dt
            yi = _combine(y, ks, beta, dt_y)
            ks.append(func(ti.to(y.dtype), yi))
        calls += 6
        nfe[idx] += 6
        y1, f1 = yi, ks[-1]
        with torch.no_grad():  # the error estimate only steers the step size, as in the shared-step solver
            err = _combine(torch.zeros_like(y), ks, _C_ERROR, dt_y)
            error_ratio = _rms(err / (atol + rtol * torch.maximum(y.abs(), y1.abs())))
        accept = error_ratio <= 1
        done = accept & (t_next >= t1)
        dt_next = _next_step(dt, error_ratio)
        any_done = bool(done.any())
        if any_done:
            d = done.nonzero().squeeze(1)
            exact = t_next[d] == t1
            y_end = _dense_output(y[d], y1[d], [k[d] for k in ks], t_next[d] - t[d], t[d], torch.full_like(t[d], t1))
            y_end = torch.where(_col(exact, y_end), y1[d], y_end)
            rows_out.append(idx[d]), vals_out.append(y_end)
        if bool(accept.all()):
            y, f, t = y1, f1, t_next
        else:
            a = _col(accept, y)
            y, f, t = torch.where(a, y1, y), torch.where(a, f1, f), torch.where(accept, t_next, t)
        dt = dt_next
        if any_done:
            keep = ~done
            idx, y, f, t, dt = idx[keep], y[keep], f[keep], t[keep], dt[keep]
    result = torch.full_like(y0, float("nan"))
    if rows_out:
        rows = torch.cat(rows_out)
        vals = torch.cat(vals_out)
        ok = torch.isfinite(vals.flatten(1)).all(1)
        failed[rows[~ok]] = True
        result = result.index_put((rows,), vals)
    return PerSampleSolution(result, nfe, failed, calls)
