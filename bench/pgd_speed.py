"""PGD-40 speed, measured side by side in one run:
  natrob PGD-40 time / torchattacks PGD-40 time on the same model and inputs (goal <= 1.0), and
  images per second of natrob PGD-40 for a small ResNet and a small ODE net on CPU (digits).

    .venv/bin/python bench/pgd_speed.py [--n 128] [--threads 1]
"""
import argparse
import time

import torch

from natrob.attacks import PGD
from natrob.data import load_dataset
from natrob.models import build_model


def timed(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        s = time.perf_counter(); fn(); best = min(best, time.perf_counter() - s)
    return best


def main():
    import torchattacks
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=128)
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    data = load_dataset("digits")
    x, y = data.test_x[: a.n], data.test_y[: a.n]
    resnet = build_model("resnet", data, depth=8).eval()
    ode = build_model("odenet", data, channels=32, t1=100.0).eval()
    ours = PGD(0.1, alpha=0.01, steps=40, random_start=True)
    theirs = torchattacks.PGD(resnet, eps=0.1, alpha=0.01, steps=40, random_start=True)
    # interleaved rounds, so both see the same machine state; the median ratio is reported
    ours(resnet, x, y), theirs(x, y)  # warm-up
    rounds = []
    for _ in range(a.repeats):
        rounds.append((timed(lambda: ours(resnet, x, y), 1), timed(lambda: theirs(x, y), 1)))
    ratios = sorted(o / t for o, t in rounds)
    t_ours, t_theirs = sorted(o for o, _ in rounds)[len(rounds) // 2], sorted(t for _, t in rounds)[len(rounds) // 2]
    print(f"PGD-40 on a depth-8 ResNet, {a.n} digits images, {a.threads} thread(s):")
    print(f"  natrob {t_ours:.3f} s   torchattacks {t_theirs:.3f} s (medians of {a.repeats} interleaved rounds)")
    print(f"  ratio natrob/torchattacks: median {ratios[len(ratios) // 2]:.3f}, "
          f"range {ratios[0]:.3f}-{ratios[-1]:.3f} (goal <= 1.0)")
    print(f"  natrob PGD-40 throughput, small ResNet: {a.n / t_ours:.1f} images/s")
    n_ode = min(a.n, 32)
    t_ode = timed(lambda: ours(ode, x[:n_ode], y[:n_ode]), 1)
    print(f"  natrob PGD-40 throughput, small ODE net (32 ch, dopri5, t1=100): {n_ode / t_ode:.2f} images/s")


if __name__ == "__main__":
    main()
