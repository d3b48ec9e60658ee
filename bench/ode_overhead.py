"""ODE solver overhead: wall(forward) / (NFE x wall(one call of f)) for the paper's MNIST ODE net (Table A1:
4 conv layers, 128 channels, dopri5, t1 = 100) at batch 128 on CPU. 1.0 is the limit; goal <= 1.15.

    .venv/bin/python bench/ode_overhead.py [--batch 128] [--repeats 3] [--threads 1]
"""
import argparse
import time

import torch

from natrob.models import build_model


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 gives stable figures on shared cores)")
    p.add_argument("--t1", type=float, default=100.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10, "mean": (0.1307,), "std": (0.3081,)},
                        channels=128, conv_layers=4, t1=a.t1).eval()
    x = torch.rand(a.batch, 1, 28, 28)
    with torch.no_grad():
        y0 = model.features(x)
        t = torch.tensor(1.0)
        model.func(t, y0)  # warm-up
        f_times = []
        for _ in range(max(5, a.repeats * 3)):
            s = time.perf_counter(); model.func(t, y0); f_times.append(time.perf_counter() - s)
        f_call = sorted(f_times)[len(f_times) // 2]
        results = {}
        for impl in ("torchdiffeq", "natrob"):  # side by side, same weights and inputs
            model.configure_solver(solver_impl=impl)
            fwd, nfe = [], []
            for _ in range(a.repeats):
                s = time.perf_counter(); model.integrate(y0); fwd.append(time.perf_counter() - s)
                nfe.append(model.nfe_forward)
            best = min(range(a.repeats), key=lambda i: fwd[i])
            results[impl] = (fwd[best], nfe[best], fwd[best] / (nfe[best] * f_call))
    print(f"MNIST ODE net (128 ch, dopri5, t1={a.t1}), batch {a.batch}, {a.threads} thread(s)")
    print(f"  one call of f: {f_call * 1e3:.1f} ms (median of {len(f_times)})")
    for impl, (w, n, r) in results.items():
        print(f"  {impl:12s} forward solve {w:6.2f} s  NFE {n:4d}  overhead wall(forward)/(NFE x wall(f)) = {r:.3f}"
              + ("   (goal <= 1.15)" if impl == "natrob" else ""))


if __name__ == "__main__":
    main()
