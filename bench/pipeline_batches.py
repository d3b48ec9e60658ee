"""Notebook 09's Table 1 of a pipeline, judged one image at a time (what the harness did while a pipeline hid its
net's solver settings) against in batches with a step size per image (what it does now that
``AtPrecision.configure_solver`` reaches the net), side by side in one run: the quick profile's Neural ODE (digits, 32
channels, t1 = 100), float32 and float16 AMP, FGSM, the paper's PGD-40 (first fooling iterate) and its random start
at every eps of the profile's Table 1, through the harness (``natrob.study.protocols.table1``), no evaluation store.

Prints, per pipeline: the wall time of each way, the ratio, and both ways' robust counts per attack and eps. FGSM and
PGD count the same points up to rounding (each image is solved as in a batch of one either way, but a batch of 50
rounds otherwise than a batch of one); the noise row differs by design: one image at a time, every image got the
same seeded draw. Loads (or trains) the quick profile's Neural ODE from the model store.

    .venv/bin/python bench/pipeline_batches.py [--n 50] [--threads 1]
"""
import time

import torch

from natrob.harness.evaluate import evaluate
from natrob.harness.precision import AtPrecision
from natrob.study.protocols import table1_specs
from natrob.reference import paper_attack
from natrob.study.profile_models import get_profile_model
from quick_setup import quick_setup  # bench/ is on the path of a benchmark run as a script


def table(pipe, x, y, eps, one_at_a_time):
    specs = table1_specs(paper_attack(None, None), early_stop=True)
    t0 = time.perf_counter()
    res = evaluate(pipe, x, y, eps, specs, cascade=False, per_sample=one_at_a_time, progress=False, cache=False)
    wall = time.perf_counter() - t0
    counts = {}
    for r in res["rows"]:
        counts.setdefault(r["id"], []).append(r["robust"]["k"])
    return wall, counts


def main():
    a, params, data = quick_setup(n=50)
    ode, _ = get_profile_model(params["ODE"], data, params["SEED"], progress=False)
    x, y = data.test_x[:a.n], data.test_y[:a.n]
    eps = [float(e) for e in params["EPS_TABLE1"]]
    print(f"{a.n} points, eps {eps}, {a.threads} thread(s); robust counts per eps")
    for proto in ("float32", "float16-amp"):
        pipe = AtPrecision(ode, proto).eval()
        w1, c1 = table(pipe, x, y, eps, one_at_a_time=True)
        wb, cb = table(pipe, x, y, eps, one_at_a_time=False)
        print(f"{proto}: one image at a time {w1:.1f} s, in batches {wb:.1f} s, ratio {w1 / wb:.1f}x")
        for k in c1:
            print(f"  {k:<6} one at a time {c1[k]}  in batches {cb[k]}")


if __name__ == "__main__":
    main()
