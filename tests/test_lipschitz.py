import pytest
import torch

from natrob.study import lipschitz
from natrob.models import build_model


def _net_and_pair(**solver):
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=2.0).eval()
    model.configure_solver(**solver)
    x = torch.rand(3, 1, 8, 8)
    return model, x, (x + 0.1 * torch.randn_like(x)).clamp(0, 1)


def _gap(a, b) -> float:
    return float((a - b).flatten(1).norm(dim=1).max())


@pytest.mark.parametrize("solver", [dict(method="euler", step_size=0.05), dict(method="rk4", step_size=0.1),
                                    dict(rtol=1e-7, atol=1e-7), dict(rtol=1e-7, atol=1e-7, solver_impl="torchdiffeq")])
def test_ode_error_propagation_measures_the_models_own_solution(solver):
    """Theorem 3.2's measurement starts from the model's own features and ends where the model's own solve (its
    solver, step size and tolerance) ends: |z(t0) - y(t0)| and |z(t1) - y(t1)| computed the way the model does."""
    model, x, x_pert = _net_and_pair(**solver)
    got = lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)
    with torch.no_grad():
        y0, z0 = model.features(x), model.features(x_pert)
        start, end = _gap(z0, y0), _gap(model.integrate(z0), model.integrate(y0))
    assert got["rows"][0]["t"] == model.t0 and got["rows"][-1]["t"] == pytest.approx(model.t1)
    assert got["rows"][0]["measured_max"] == pytest.approx(start, rel=1e-5)
    # fixed steps: the same steps; adaptive: two solves to 1e-7, which may step differently in between
    assert got["rows"][-1]["measured_max"] == pytest.approx(end, rel=1e-4 if "step_size" in solver else 1e-2)
    assert got["K_observed"] > 0 and got["log10_growth_factor"].keys() == {"t1=2", "t1=100", "t1=500"}
    growth = got["log10_growth_factor"]
    assert growth["t1=2"] < growth["t1=100"] < growth["t1=500"]  # e^((b - t0) K) grows with the horizon b


def test_a_solver_change_reaches_the_measurement():
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=2.0).eval()
    x = torch.rand(3, 1, 8, 8)
    x_pert = (x + 0.01 * torch.randn_like(x)).clamp(0, 1)
    adaptive = lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)
    model.configure_solver(method="euler", step_size=0.5)
    assert lipschitz.ode_error_propagation(model, x, x_pert, n_times=6)["rows"] != adaptive["rows"]
