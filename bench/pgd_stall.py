"""PGD that ends at a fixed point (``PGD.stop_stalled``, what the evaluation harness runs on a model whose two
forward passes of one batch are bit-identical) against PGD that takes all its steps, side by side in one run, on
notebook 09's pipelines: the quick profile's Neural ODE (digits, 32 channels, t1 = 100) solved with one step size
per batch (natrob.harness.precision.AtPrecision, as the paper's code), its logits as trained and x 64 (saturated: the
cross-entropy's gradient is exactly zero for most points), float32 and float16 AMP, with PGD's early stop as
notebook 09 runs it.

Prints, per pipeline and eps: gradient steps and wall time of each (interleaved rounds, median), the ratio, both
robust counts and whether the returned images are identical (they must be: a step that moves no point and fools no
new one repeats forever). Loads (or trains) the quick profile's Neural ODE from the model store.

    .venv/bin/python bench/pgd_stall.py [--n 50] [--eps 0.2 0.5] [--rounds 1] [--threads 1]
"""
import statistics
import time

import torch

from natrob.attacks import PGD
from natrob.harness.precision import AtPrecision
from natrob.study.profile_models import get_profile_model
from quick_setup import quick_setup  # bench/ is on the path of a benchmark run as a script


def run(model, x, y, eps, stall, seed=0):
    torch.manual_seed(seed)
    attack = PGD(eps, alpha=0.01, steps=40, random_start=True, early_stop=True, stop_stalled=stall)
    t0 = time.perf_counter()
    x_adv = attack(model, x, y)
    wall = time.perf_counter() - t0
    with torch.no_grad():
        robust = int((model(x_adv).argmax(1) == y).sum())
    return wall, attack.steps_run, robust, x_adv


def main():
    a, params, data = quick_setup(n=50, eps=[0.2, 0.5], rounds=True)
    ode, _ = get_profile_model(params["ODE"], data, params["SEED"], progress=False)
    x, y = data.test_x[:a.n], data.test_y[:a.n]
    print(f"{a.n} points, PGD-40 (alpha 0.01, random start, early stop), {a.threads} thread(s)")
    print(f"{'pipeline':<28} {'eps':>4} {'steps all/stall':>16} {'s all':>7} {'s stall':>8} {'ratio':>6} "
          f"{'robust':>9} {'same x':>6}")
    for proto, scale in (("float32", 1.0), ("float32", 64.0), ("float16-amp", 1.0), ("float16-amp", 64.0)):
        pipe = AtPrecision(ode, proto, scale).eval()
        for eps in a.eps:
            walls = {False: [], True: []}
            for _ in range(a.rounds):
                for stall in (False, True):
                    wall, steps, robust, x_adv = run(pipe, x, y, eps, stall)
                    walls[stall].append(wall)
                    if stall:
                        s1, r1, x1 = steps, robust, x_adv
                    else:
                        s0, r0, x0 = steps, robust, x_adv
            w0, w1 = statistics.median(walls[False]), statistics.median(walls[True])
            print(f"{f'{proto}, logits x {scale:g}':<28} {eps:>4g} {f'{s0}/{s1}':>16} {w0:>7.1f} {w1:>8.1f} "
                  f"{w0 / w1:>5.2f}x "
                  f"{f'{r0}/{r1}':>9} {str(torch.equal(x0, x1)):>6}", flush=True)


if __name__ == "__main__":
    main()
