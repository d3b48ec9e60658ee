"""YOPO's point is speed: time per training epoch of YOPO-5-3 against PGD-10 adversarial training (and
TRADES-10, standard) on the same PreAct-ResNet18 and data, measured side by side in one run.

    .venv/bin/python bench/yopo_speed.py [--width 16] [--n 512] [--threads 1]
"""
import argparse
import time

import torch

from natrob.data import load_dataset
from natrob.models import build_model
from natrob.train import TrainConfig, train


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--n", type=int, default=512, help="training images per epoch")
    p.add_argument("--dataset", default="digits")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = load_dataset(a.dataset, train_size=a.n)
    eps = 0.1
    methods = {"standard": {}, "pgd_at": {"eps": eps, "alpha": eps / 4, "steps": 10},
               "trades": {"eps": eps, "alpha": eps / 4, "steps": 10, "beta": 6.0},
               "yopo": {"eps": eps, "sigma": eps / 4, "m": 5, "n": 3}}
    times = {}
    for rep in range(a.repeats + 1):  # round 0 warms up allocators and kernels and is discarded
        for method, params in methods.items():
            torch.manual_seed(0)
            model = build_model("preact_resnet18", data, width=a.width)
            cfg = TrainConfig(epochs=1, optimizer="sgd", lr=0.05, batch_size=64, method=method, method_params=params)
            s = time.perf_counter()
            train(model, data, cfg, progress=False)
            elapsed = time.perf_counter() - s
            if rep:
                times[method] = min(times.get(method, float("inf")), elapsed)
    print(f"PreAct-ResNet18 (width {a.width}), {a.n} {a.dataset} images, one epoch, {a.threads} thread(s):")
    for m, t in times.items():
        print(f"  {m:9s} {t:7.2f} s/epoch   ratio to PGD-10 AT {t / times['pgd_at']:.3f}")
    print(f"YOPO-5-3 / PGD-10 AT time per epoch = {times['yopo'] / times['pgd_at']:.3f} (expect clearly below 1)")


if __name__ == "__main__":
    main()
