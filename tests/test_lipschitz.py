import math

import pytest
import torch

from natrob import lipschitz
from natrob.models import build_model


@torch.no_grad()
def _reference_ode_error_propagation(model, x, x_pert, n_times=21) -> dict:
    """lipschitz.ode_error_propagation as it was when it read the solver settings one attribute at a time
    (commit 2a71458), kept verbatim to check that reading them from solver_config() changed nothing."""
    from torchdiffeq import odeint
    model.eval()
    y0, z0 = model.features(x), model.features(x_pert)
    ts = torch.linspace(model.t0, model.t1, n_times)
    opts = dict(rtol=model.rtol, atol=model.atol, method=model.method)
    if model.method not in ("dopri5", "dopri8", "bosh3", "fehlberg2", "adaptive_heun"):
        opts["options"] = {"step_size": model.step_size or (model.t1 - model.t0) / 100}
    ys, zs = odeint(model.func, y0, ts, **opts), odeint(model.func, z0, ts, **opts)
    ratios = []
    for t, yt, zt in zip(ts, ys, zs):
        d = (zt - yt).flatten(1).norm(dim=1).clamp_min(1e-12)
        ratios.append(float(((model.func(t, zt) - model.func(t, yt)).flatten(1).norm(dim=1) / d).max()))
    K = max(ratios)
    e0 = (z0 - y0).flatten(1).norm(dim=1)
    rows, violations = [], 0
    for t, yt, zt in zip(ts, ys, zs):
        err = (zt - yt).flatten(1).norm(dim=1)
        log_bound = (float(t) - model.t0) * K + torch.log(e0)
        violations += int((torch.log(err.clamp_min(1e-30)) > log_bound + 1e-3).sum())
        rows.append({"t": float(t), "measured_max": float(err.max()), "measured_mean": float(err.mean()),
                     "log10_bound_min": float(log_bound.min() / math.log(10))})
    return {"K_observed": K, "rows": rows, "violations": violations,
            "log10_growth_factor": {f"t1={b:g}": (b - model.t0) * K / math.log(10) for b in (model.t1, 100.0, 500.0)}}


@pytest.mark.parametrize("solver", [{}, dict(rtol=1e-5, atol=1e-5), dict(method="rk4"),
                                    dict(method="euler", step_size=0.05), dict(solver_impl="torchdiffeq")])
def test_ode_error_propagation_follows_the_models_solver(solver):
    """Theorem 3.2's measurement integrates with the ODE net's own solver settings, as it always did."""
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=2.0).eval()
    model.configure_solver(**solver)
    x = torch.rand(3, 1, 8, 8)
    x_pert = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    got = lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)
    assert got == _reference_ode_error_propagation(model, x, x_pert, n_times=6)
    assert got["log10_growth_factor"].keys() == {"t1=2", "t1=100", "t1=500"}


def test_a_solver_change_reaches_the_measurement():
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=2.0).eval()
    x = torch.rand(3, 1, 8, 8)
    x_pert = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    adaptive = lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)
    model.configure_solver(method="euler", step_size=0.5)
    assert lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)["rows"] != adaptive["rows"]
