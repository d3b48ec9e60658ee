"""Dormand-Prince 5(4) for torchdiffeq's ``odeint`` with less memory traffic per step.

torchdiffeq's RK steps keep the stages in one tensor with the stage index *last* and combine them with
``torch.sum(k * coeffs, dim=-1)``: every stage combination materialises a (state x stages) temporary and
reduces over a strided axis, and every accepted step also fits the dense-output polynomial. On a 128-channel
MNIST state that is about 30% of a forward solve on CPU (bench/ode_overhead.py). This solver is the same method
(same Butcher tableau, error estimate, step-size controller, initial step and failure checks, inherited from
torchdiffeq's ``Dopri5Solver``) with the stages kept as separate contiguous tensors, combined by fused
``addcmul`` calls, and the interpolating polynomial fitted only for the step that reaches an output time.
It is registered in torchdiffeq's solver table as ``natrob_dopri5`` and is what ``ODENet(method='dopri5')``
uses unless ``solver_impl='torchdiffeq'``. Only ``step_t``/``jump_t`` options are not supported.
"""
from __future__ import annotations

import importlib

import torch
from torchdiffeq._impl.dopri5 import Dopri5Solver
from torchdiffeq._impl.interp import _interp_evaluate, _interp_fit
from torchdiffeq._impl.misc import Perturb, _compute_error_ratio, _optimal_step_size
from torchdiffeq._impl.rk_common import _RungeKuttaState


def _combine(y0, ks, coeffs, dt):
    """y0 + dt * sum_j coeffs[j] * ks[j], one fused pass per non-zero coefficient.

    ``dt`` is a tensor (a scalar, or a per-sample column) or a Python float; a float saves the small tensor
    product per coefficient, which is most of the cost on small states. A dt that carries a gradient (the first
    step, as in torchdiffeq) must stay a tensor."""
    out = y0
    for c, k in zip(coeffs, ks):
        if c != 0:
            out = torch.add(out, k, alpha=dt * c) if isinstance(dt, float) else torch.addcmul(out, k, dt * c)
    return out


class NatrobDopri5(Dopri5Solver):
    """torchdiffeq's Dormand-Prince 5(4) with a leaner Runge-Kutta step (same tableau, step-size controller and
    interpolation; fewer intermediate tensors). Registered in torchdiffeq as ``natrob_dopri5``; ``ODENet``
    uses it for ``method='dopri5'`` unless ``solver_impl='torchdiffeq'``. Accepts torchdiffeq's dopri5 options
    except ``step_t``/``jump_t``."""
    def __init__(self, *args, **kwargs):
        if kwargs.get("step_t") is not None or kwargs.get("jump_t") is not None:
            raise ValueError("natrob_dopri5 does not support step_t/jump_t; use method='dopri5' of torchdiffeq")
        super().__init__(*args, **kwargs)
        tab = self.tableau
        self._alpha = [float(a) for a in tab.alpha]
        self._beta = [[float(b) for b in row] for row in tab.beta]
        self._c_error = [float(c) for c in tab.c_error]
        self._mid = [float(c) for c in self.mid]
        self._last = None

    def _rk_step(self, y0, f0, t0, dt, t1):
        ks = [f0]
        dt_y = dt.to(y0.dtype)
        if not dt_y.requires_grad:
            dt_y = float(dt_y)
        yi = y0
        for i, (alpha_i, beta_i) in enumerate(zip(self._alpha, self._beta)):
            if alpha_i == 1.0:
                ti, perturb = t1, Perturb.PREV
            else:
                ti, perturb = t0 + alpha_i * dt, Perturb.NONE
            yi = _combine(y0, ks, beta_i, dt_y)
            ks.append(self.func(ti.to(y0.dtype), yi, perturb=perturb))
        # Dormand-Prince is FSAL: the last stage is evaluated at the solution, y1 = the last yi
        with torch.no_grad():  # the error estimate only steers the step size (chosen under no_grad anyway)
            y1_error = _combine(torch.zeros_like(y0), ks, self._c_error, dt_y)
        return yi, ks[-1], y1_error, ks

    def _adaptive_step(self, rk_state):
        y0, f0, _, t0, dt, interp_coeff = rk_state
        if not torch.isfinite(dt):
            dt = self.min_step
        dt = dt.clamp(self.min_step, self.max_step)
        self.func.callback_step(t0, y0, dt)
        t1 = t0 + dt
        assert t0 + dt > t0, "underflow in dt {}".format(dt.item())
        assert torch.isfinite(y0).all(), "non-finite values in state `y`: {}".format(y0)
        y1, f1, y1_error, ks = self._rk_step(y0, f0, t0, dt, t1)
        with torch.no_grad():
            error_ratio = _compute_error_ratio(y1_error, self.rtol, self.atol, y0, y1, self.norm)
        accept_step = bool(error_ratio <= 1) and not bool(dt > self.max_step)
        if dt <= self.min_step:
            accept_step = True
        if accept_step:
            self.func.callback_accept_step(t0, y0, dt)
            self._last = (y0, y1, ks, dt)
            state = (y1, f1, t0, t1)
        else:
            self.func.callback_reject_step(t0, y0, dt)
            state = (y0, f0, t0, t0)
        dt_next = _optimal_step_size(dt, error_ratio, self.safety, self.ifactor, self.dfactor, self.order)
        dt_next = dt_next.clamp(self.min_step, self.max_step)
        return _RungeKuttaState(state[0], state[1], state[2], state[3], dt_next, interp_coeff)

    def _advance(self, next_t):
        n_steps = 0
        while next_t > self.rk_state.t1:
            assert n_steps < self.max_num_steps, "max_num_steps exceeded ({}>={})".format(n_steps, self.max_num_steps)
            self.rk_state = self._adaptive_step(self.rk_state)
            n_steps += 1
        if next_t == self.rk_state.t1:
            return self.rk_state.y1
        y0, y1, ks, dt = self._last
        dt_y = dt.to(y0.dtype)
        y_mid = _combine(y0, ks, self._mid, dt_y)
        coeff = _interp_fit(y0, y1, y_mid, ks[0], ks[-1], dt_y)
        return _interp_evaluate(coeff, self.rk_state.t0, self.rk_state.t1, next_t)


importlib.import_module("torchdiffeq._impl.odeint").SOLVERS.setdefault("natrob_dopri5", NatrobDopri5)
