"""The stability analysis of the paper's §3, measured: Eq. (12), Theorem 3.1 (ResNet with step h),
Theorem 3.2 (the ODE net along its solution) and the §3.3 skip-connection blocks."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


# ------------------------------------------------------------------------------------------- Eq. (12)
def relu_contraction(n_trials=2000, dim=64, seed=0) -> dict:
    """||relu(Wx+b) - relu(W(x+e)+b)|| <= ||W e|| <= ||W|| ||e|| for random W, b, x, e (Eq. 12)."""
    g = torch.Generator().manual_seed(seed)
    worst_first, worst_second, violations = 0.0, 0.0, 0
    for _ in range(n_trials):
        W = torch.randn(dim, dim, generator=g) / math.sqrt(dim)
        b, x = torch.randn(dim, generator=g), torch.randn(dim, generator=g)
        e = torch.randn(dim, generator=g) * float(torch.rand(1, generator=g)) * 2
        lhs = (F.relu(W @ x + b) - F.relu(W @ (x + e) + b)).norm()
        mid = (W @ e).norm()
        rhs = torch.linalg.matrix_norm(W, ord=2) * e.norm()
        violations += int(lhs > mid * (1 + 1e-5) or mid > rhs * (1 + 1e-5))
        worst_first, worst_second = max(worst_first, float(lhs / mid)), max(worst_second, float(mid / rhs))
    return {"trials": n_trials, "violations": violations, "max_lhs_over_We": worst_first,
            "max_We_over_normW_e": worst_second}


# ------------------------------------------------------------------------------------------- Theorem 3.1
def conv_spectral_norm(conv: nn.Conv2d, input_shape, iters=200, seed=0) -> float:
    """Largest singular value of the conv as a linear operator on inputs of ``input_shape`` (C,H,W), by power
    iteration on W^T W. Power iteration approaches from below; we report the Rayleigh quotient after ``iters``."""
    g = torch.Generator().manual_seed(seed)
    v = torch.randn((1, *input_shape), generator=g)
    lin = lambda u: F.conv2d(u, conv.weight, None, conv.stride, conv.padding)
    with torch.enable_grad():
        for _ in range(iters):
            v = v / v.norm()
            u = v.clone().requires_grad_(True)
            out = lin(u)
            (grad,) = torch.autograd.grad(out, u, out)  # W^T W v
            v = grad.detach()
        v = v / v.norm()
    return float(lin(v).norm())


def _bn_lipschitz(bn: nn.BatchNorm2d) -> float:
    return float((bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)).max())


def euler_block_lipschitz(block, input_shape, iters=200) -> float:
    """Upper bound on the Lipschitz constant (L2) of an EulerBlock's branch f: BN-ReLU-conv-BN-ReLU-conv in eval
    mode."""
    bn1, _, conv1, bn2, _, conv2 = block.f
    s1 = conv_spectral_norm(conv1, input_shape, iters)
    with torch.no_grad():
        mid_shape = conv1(torch.zeros(1, *input_shape)).shape[1:]
    s2 = conv_spectral_norm(conv2, tuple(mid_shape), iters)
    return _bn_lipschitz(bn1) * s1 * _bn_lipschitz(bn2) * s2


@torch.no_grad()
def resnet_error_propagation(model, x, x_pert, iters=200) -> list:
    """Layer by layer: measured |z_n - y_n| against the Theorem 3.1 bound prod_k (1 + h K_k) |e_0|, where K_k
    bounds the k-th branch's Lipschitz constant (spectral norms) and the parameter-free shortcut is
    non-expansive. Also the largest observed ratio |f(z) - f(y)| / |z - y| per block. One row per block."""
    model.eval()
    y, z = model.features(x), model.features(x_pert)
    e0 = (z - y).flatten(1).norm(dim=1)
    bound = e0.clone()
    rows = []
    for n, block in enumerate(model.stages):
        K = euler_block_lipschitz(block, tuple(y.shape[1:]), iters)
        fy, fz = block.f(y), block.f(z)
        k_obs = float(((fz - fy).flatten(1).norm(dim=1) / (z - y).flatten(1).norm(dim=1).clamp_min(1e-12)).max())
        y, z = block(y), block(z)
        bound = bound * (1 + block.h * K)
        err = (z - y).flatten(1).norm(dim=1)
        rows.append({"layer": n + 1, "h": block.h, "K_spectral": K, "K_observed": k_obs,
                     "measured_max": float(err.max()), "measured_mean": float(err.mean()),
                     "bound_min": float(bound.min()), "violations": int((err > bound * (1 + 1e-4)).sum()),
                     "looseness_median": float((bound / err.clamp_min(1e-30)).median())})
    return rows


# ------------------------------------------------------------------------------------------- Theorem 3.2
@torch.no_grad()
def ode_error_propagation(model, x, x_pert, n_times=21) -> dict:
    """|z(t) - y(t)| along the ODE net's solution (its own solver and tolerance) against the Theorem 3.2
    bound e^{(t - t0) K} |e_0|, with K the largest observed ratio |f(t,z) - f(t,y)| / |z - y| along the
    pair of trajectories (Gronwall: with that K the bound holds for the exact solutions)."""
    from torchdiffeq import odeint

    from ..models.odenet import ADAPTIVE
    model.eval()
    cfg = model.solver_config()
    t0, t1 = cfg["t0"], cfg["t1"]
    y0, z0 = model.features(x), model.features(x_pert)
    ts = torch.linspace(t0, t1, n_times)
    # torchdiffeq's own solver whatever cfg["solver_impl"] says: it is the same method, and the measured
    # trajectories stay those of every earlier run of notebook 01
    opts = dict(rtol=cfg["rtol"], atol=cfg["atol"], method=cfg["method"])
    if cfg["method"] not in ADAPTIVE:
        opts["options"] = {"step_size": cfg["step_size"] or (t1 - t0) / 100}
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
        log_bound = (float(t) - t0) * K + torch.log(e0)
        violations += int((torch.log(err.clamp_min(1e-30)) > log_bound + 1e-3).sum())
        rows.append({"t": float(t), "measured_max": float(err.max()), "measured_mean": float(err.mean()),
                     "log10_bound_min": float(log_bound.min() / math.log(10))})
    return {"K_observed": K, "rows": rows, "violations": violations,
            "log10_growth_factor": {f"t1={b:g}": (b - t0) * K / math.log(10) for b in (t1, 100.0, 500.0)}}


# ------------------------------------------------------------------------------------------- §3.3
@torch.no_grad()
def skip_block_growth(blocks: dict, h_list, channels=8, depth=10, size=8, n=32, eps_scale=1e-3, seed=0) -> list:
    """For each skip architecture (§3.3) and step h: a chain of ``depth`` randomly initialised blocks, and the
    amplification |out(x + e) - out(x)| / |e| for small random e."""
    rows = []
    for name, cls in blocks.items():
        for h in h_list:
            torch.manual_seed(seed)
            chain = nn.Sequential(*[cls(channels, h) for _ in range(depth)]).eval()
            x = torch.randn(n, channels, size, size)
            e = torch.randn_like(x) * eps_scale
            amp = (chain(x + e) - chain(x)).flatten(1).norm(dim=1) / e.flatten(1).norm(dim=1)
            rows.append({"block": name, "h": h, "amplification_mean": float(amp.mean()),
                         "amplification_max": float(amp.max())})
    return rows
