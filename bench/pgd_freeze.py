"""PGD with fooled points frozen (``PGD.freeze_fooled``, what the evaluation harness runs) against PGD that keeps
stepping every point for all its steps, side by side in one run, on the quick profile's Neural ODE (digits, 32
channels, t1 = 100, dopri5, per-sample step sizes as in every natrob evaluation) and on its ResNet50.

Prints, per model and eps: wall time of each (interleaved rounds, median), the ratio, and both robust counts, which
must be equal (a fooled point counts as broken whatever its later iterates do; the returned images differ).
Loads (or trains) the quick profile's models from the model store.

    .venv/bin/python bench/pgd_freeze.py [--n 100] [--eps 0.1 0.3] [--rounds 1] [--threads 1]
"""
import time

import torch

from natrob.attacks import PGD
from natrob.harness.prediction import per_sample_solves, predict
from natrob.study.profile_models import model_loaders
from quick_setup import quick_setup  # bench/ is on the path of a benchmark run as a script


def run(model, x, y, eps, freeze, seed=0):
    torch.manual_seed(seed)
    attack = PGD(eps, alpha=0.01, steps=40, random_start=True, freeze_fooled=freeze)
    t0 = time.perf_counter()
    x_adv = attack(model, x, y)
    wall = time.perf_counter() - t0
    pred, _ = predict(model, x_adv, len(y), False, 1)
    return wall, int((pred == y).sum())


def main():
    a, params, data = quick_setup(n=100, eps=[0.1, 0.3], rounds=True)
    x, y = data.test_x[: a.n], data.test_y[: a.n]
    for label, load in model_loaders(params, data, params["SEED"], ["Neural ODE", "ResNet50"]).items():
        model = load()[0].eval()
        with per_sample_solves(model):
            for eps in a.eps:
                times = {False: [], True: []}
                counts = {}
                for _ in range(a.rounds):
                    for freeze in (False, True):
                        wall, robust = run(model, x, y, eps, freeze)
                        times[freeze].append(wall)
                        counts[freeze] = robust
                med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
                print(f"{label}, eps {eps:g}, PGD-40 on {a.n} points, {a.threads} thread(s): every step "
                      f"{med[False]:.1f} s, fooled points frozen {med[True]:.1f} s, ratio "
                      f"{med[False] / med[True]:.2f}x; robust {counts[False]} / {counts[True]} of {a.n}")


if __name__ == "__main__":
    main()
