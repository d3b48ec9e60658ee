"""Three ideas for the ODE net's hot path, each against what natrob does now, side by side in one run:

  - ``torch.compile`` of the vector field f's arithmetic (MNIST-128 f, batch 128, 1 thread; natrob's call
    counter and vjp hook left out, since dynamo would recompile on the counter's every value): one call, and one
    call with its backward (what every solver stage of PGD and training costs), plus the one-off compile time;
  - a fused GroupNorm + ReLU (inductor's generated kernel, through ``torch.compile``) against torch's GroupNorm
    kernel followed by an in-place ReLU, as f runs them, forward and forward + backward;
  - dopri5's first step at t1 = 100: torchdiffeq's initial-step selection (Hairer's, two f evaluations and a
    guess from the norms of y0 and f) against a fixed first step, by forward NFE, rejected steps and time of one
    solve of the MNIST-32 net (batch 100), and how far y(t1) and the predicted classes move (the first step
    is part of the model the paper defines by its solver: a faster one that moves them is a new model). Random
    weights by default; ``--checkpoint`` takes a stored net's ``final.pt`` or ``epoch-N.pt`` (a trained net takes
    more steps).

Ratios are old / new (above 1: the idea is faster). Timings are medians of interleaved rounds, as
bench/ode_speed.py measures them; outputs are compared to the eager ones (max abs difference printed).

    .venv/bin/python bench/ode_tricks.py [--rounds 5] [--only compile,norm,first_step] [--checkpoint PATH]
"""
import argparse
import os
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp, as natrob does

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchdiffeq import odeint  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from ode_speed import CPU, MNIST, interleaved  # noqa: E402

from natrob.models import build_model  # noqa: E402

CPU_DEVICE = torch.device("cpu")


def _mnist_net(channels, checkpoint=None):
    torch.manual_seed(0)
    model = build_model("odenet", spec=MNIST, channels=channels, conv_layers=4, t1=100.0).eval()
    if checkpoint:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state.get("state_dict", state))  # natrob's store: {"arch", "state_dict", ...}
    return model


def _ratio_line(res, old, new):
    return f"  ratio {old} / {new}: {res[old] / res[new]:.2f} (CPU time {CPU[old] / CPU[new]:.2f})"


def compile_f(rounds):
    model = _mnist_net(128)
    y = model.features(torch.rand(128, 1, 28, 28)).detach()
    t = torch.tensor(1.0)
    f = model.func

    def f_math(t, y):
        # ODEFunc.forward's fast branch without its call counter and vjp hook: dynamo would guard on the
        # counter's value and recompile at every call
        out = f.conv1(t, F.relu(f.norm1(y)), "fast")
        out = f.conv2(t, F.relu(f.norm2(out)), "fast")
        return f.norm3(out)
    start = time.perf_counter()
    fc = torch.compile(f_math, dynamic=False)
    with torch.no_grad(), f.solving(y):
        out_c = fc(t, y)
        out_e = f(t, y)
    compile_s = time.perf_counter() - start
    yg = y.clone().requires_grad_()
    g = torch.randn_like(y)

    def fwd(fn):
        def run():
            with torch.no_grad(), f.solving(y):
                fn(t, y)
        return run

    def fwd_bwd(fn):
        def run():
            with f.solving(yg):
                fn(t, yg).backward(g)
        return run
    res = interleaved({"eager f": fwd(f), "compiled f": fwd(fc), "eager f + vjp": fwd_bwd(f),
                       "compiled f + vjp": fwd_bwd(fc)}, rounds, CPU_DEVICE)
    print(f"torch.compile of f, MNIST ODE net 128 ch, batch 128, 1 thread (compile and first calls {compile_s:.0f} s;"
          f" max |compiled - eager| {float((out_c - out_e).abs().max()):.1e}):")
    for k, v in res.items():
        print(f"  {k:18s} {v * 1e3:7.1f} ms")
    print(_ratio_line(res, "eager f", "compiled f"))
    print(_ratio_line(res, "eager f + vjp", "compiled f + vjp"))
    return res


def fused_norm(rounds):
    torch.manual_seed(0)
    norm = torch.nn.GroupNorm(32, 128)
    y = torch.randn(128, 128, 14, 14)

    def eager(v):
        return F.relu_(norm(v))  # as f: ReLU overwrites GroupNorm's output

    fused = torch.compile(lambda v: F.relu(norm(v)), dynamic=False)
    with torch.no_grad():
        diff = float((fused(y) - eager(y)).abs().max())
    yg = y.clone().requires_grad_()
    g = torch.randn_like(y)

    def fwd(fn):
        def run():
            with torch.no_grad():
                fn(y)
        return run

    def fwd_bwd(fn):
        return lambda: fn(yg).backward(g)
    res = interleaved({"GroupNorm + relu_": fwd(eager), "fused (inductor)": fwd(fused),
                       "GroupNorm + relu_, + backward": fwd_bwd(eager), "fused, + backward": fwd_bwd(fused)},
                      rounds, CPU_DEVICE)
    print(f"GroupNorm(32, 128) + ReLU on a (128, 128, 14, 14) state, 1 thread (max |fused - eager| {diff:.1e}):")
    for k, v in res.items():
        print(f"  {k:30s} {v * 1e3:7.2f} ms")
    print(_ratio_line(res, "GroupNorm + relu_", "fused (inductor)"))
    print(_ratio_line(res, "GroupNorm + relu_, + backward", "fused, + backward"))
    return res


def first_step(rounds, checkpoint=None, steps=(None, 0.05, 0.5, 2.0)):
    model = _mnist_net(32, checkpoint)
    from sklearn.datasets import load_digits  # MNIST-shaped inputs without a download: digits upsampled to 28x28
    d = load_digits()
    x = F.interpolate(torch.tensor(d.images[:100] / 16.0, dtype=torch.float32).unsqueeze(1), size=28,
                      mode="bilinear", align_corners=False)
    with torch.no_grad():
        y0 = model.features(x)
    t = torch.tensor([model.t0, model.t1])
    stats = {}

    def solve(h):
        label = "torchdiffeq's selection" if h is None else f"first step {h:g}"
        f = model.func
        rejected = [0]
        f.callback_reject_step = lambda *a: rejected.__setitem__(0, rejected[0] + 1)

        def run():
            f.calls, rejected[0] = 0, 0
            opts = {} if h is None else {"first_step": h}
            with torch.no_grad(), f.solving(y0):
                out = odeint(f, y0, t, rtol=model.rtol, atol=model.atol, method="natrob_dopri5", options=opts)[-1]
            stats[label] = (f.calls, rejected[0], out)
        return label, run
    fns = dict(solve(h) for h in steps)
    res = interleaved(fns, rounds, CPU_DEVICE)
    del model.func.callback_reject_step
    base = "torchdiffeq's selection"
    ref = stats[base][2]
    with torch.no_grad():
        pred = model.head(ref).argmax(1)
    print(f"dopri5's first step, MNIST ODE net 32 ch, t1 = 100, rtol = atol = 1e-3, batch 100, 1 thread"
          f" ({'weights of ' + checkpoint if checkpoint else 'random weights'}):")
    for k, v in res.items():
        nfe, rej, out = stats[k]
        with torch.no_grad():
            same = int((model.head(out).argmax(1) == pred).sum())
        rel = float((out - ref).norm() / ref.norm())
        print(f"  {k:24s} {v:6.2f} s   NFE {nfe:4d}   rejected {rej:3d}   |y(t1) - default's| / |default's| "
              f"{rel:.1e}   same class {same}/{len(pred)}   default / this {res[base] / v:.2f}")
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--only", default="compile,norm,first_step")
    p.add_argument("--checkpoint", default=None, help="weights of a stored MNIST 32-channel ODE net for first_step")
    a = p.parse_args()
    torch.set_num_threads(1)
    parts = set(a.only.split(","))
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, 1 thread")
    if "compile" in parts:
        compile_f(a.rounds)
    if "norm" in parts:
        fused_norm(a.rounds)
    if "first_step" in parts:
        first_step(max(2, a.rounds // 2), a.checkpoint)


if __name__ == "__main__":
    main()
