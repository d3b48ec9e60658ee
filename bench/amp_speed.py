"""Float16 AMP on a CPU: natrob.harness.amp (a GPU's numerics with float32 kernels, what the float16-amp protocol runs)
against torch's own CPU float16 kernels (the float16-amp-cpu-kernels protocol), with float32 and bfloat16 autocast
beside them, side by side in one run.

One input gradient of the summed cross-entropy through a batch (``--batch``, one shared step size: a pipeline's PGD
step) of the quick profile's Neural ODE (digits, 32 channels, t1 = 100), or with ``--profile mnist`` of the mnist
profile's (MNIST, 32 channels). Prints per protocol: wall time (interleaved rounds, median), the ratio to float32,
forward NFE, and how many points' gradients are exactly zero with the logits scaled by ``--scale``; and the MNIST-128
f call of the machine. Loads (or trains) the profile's ODE net from the model store.

    .venv/bin/python bench/amp_speed.py [--profile quick] [--batch 20] [--rounds 3] [--threads 1] [--scale 4]
"""
import argparse
import time

import torch

from natrob.data import load_profile_dataset
from natrob.profiles import load_profile
from natrob.harness.precision import Precision
from natrob.study.saturation import input_gradients
from natrob.study.profile_models import model_loaders

PRECISIONS = (Precision.FLOAT32, Precision.BFLOAT16, Precision.FLOAT16_AMP, Precision.FLOAT16_AMP_CPU)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--profile", default="quick")
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--scale", type=float, default=4.0)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    params = load_profile(a.profile)
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    model = model_loaders(params, data, params["SEED"], ["Neural ODE"])["Neural ODE"]()[0].eval()
    x, y = data.test_x[: a.batch], data.test_y[: a.batch]
    times, zeros, nfe = {p: [] for p in PRECISIONS}, {}, {}
    for _ in range(a.rounds):
        for proto in PRECISIONS:
            t0 = time.perf_counter()
            g, _ = input_gradients(model, x, y, [1.0, a.scale], proto, alone=False, batch_size=a.batch)
            times[proto].append(time.perf_counter() - t0)
            nfe[proto] = getattr(model, "nfe_forward", None)
            zeros[proto] = int((g[a.scale].flatten(1) == 0).all(1).sum())
    med = {p: sorted(v)[len(v) // 2] for p, v in times.items()}
    print(f"{a.profile} Neural ODE, batch of {a.batch}, one input gradient (forward and backward), {a.threads} "
          f"thread(s), median of {a.rounds}:")
    for proto in PRECISIONS:
        print(f"  {proto.value:26s} {med[proto]:6.2f} s  {med[proto] / med[Precision.FLOAT32]:5.2f}x float32  "
              f"NFE {nfe[proto]}  exactly-zero gradients at logits x {a.scale:g}: {zeros[proto]} of {a.batch}")
    speedup = med[Precision.FLOAT16_AMP_CPU] / med[Precision.FLOAT16_AMP]
    print(f"  natrob.harness.amp is {speedup:.1f}x faster than torch's CPU float16 kernels")
    from natrob.run.fcall import f_call_ms
    print(f"  MNIST-128 f call (batch 128, 1 thread): {f_call_ms():.0f} ms")


if __name__ == "__main__":
    main()
