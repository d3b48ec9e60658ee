"""Subnormal weights: one input-gradient pass with and without them, side by side in one run.

TisODE's published MNIST checkpoints hold 27-34% of their parameters as subnormal float32 values (below 1.2e-38;
notebook 10), and CPU arithmetic on subnormals is slow. This builds TisODE's classes (``examples/tisode_networks.py``,
64 channels, random weights), makes the same share of each weight tensor subnormal (entries multiplied by 1e-40),
and times the pass notebook 10's attacks repeat (forward and input gradient on MNIST-sized images, 20 by default: a
subnormal pass of the ODE nets takes seconds per image; interleaved rounds, median) before and after
:func:`natrob.study.published_odes.flush_subnormal`, with the count of images whose logits stay bit-identical.

    .venv/bin/python bench/subnormal.py [--share 0.3] [--n 20] [--rounds 3] [--threads 1]
"""
import argparse
import statistics
import time

import torch

from natrob.paths import REPO
from natrob.study.published_odes import _networks, flush_subnormal


def grad_pass(model, x, y):
    x = x.clone().requires_grad_(True)
    t0 = time.perf_counter()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--share", type=float, default=0.3)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    networks = _networks(REPO / "examples" / "tisode_networks.py")
    x, y = torch.rand(a.n, 1, 28, 28), torch.randint(0, 10, (a.n,))
    print(f"{a.n} images, {a.threads} thread(s), {a.share:.0%} of each weight tensor subnormal; ms per image")
    for cls in ("CNN_MNIST", "ODENet_MNIST", "ODENet_tisode"):
        slow = getattr(networks, cls)().eval().requires_grad_(False)
        with torch.no_grad():
            for w in slow.parameters():
                w.mul_(torch.where(torch.rand_like(w) < a.share, 1e-40, 1.0))
        fast = getattr(networks, cls)().eval().requires_grad_(False)
        fast.load_state_dict(slow.state_dict())
        flushed = flush_subnormal(fast)
        times = {"subnormal": [], "flushed": []}
        for _ in range(a.rounds):
            times["subnormal"].append(grad_pass(slow, x, y))
            times["flushed"].append(grad_pass(fast, x, y))
        with torch.no_grad():
            same = int((slow(x) == fast(x)).all(1).sum())
        med = {k: 1000 * statistics.median(v) / a.n for k, v in times.items()}
        print(f"{cls:14s} subnormal {med['subnormal']:7.2f}  flushed {med['flushed']:6.2f}  ratio "
              f"{med['subnormal'] / med['flushed']:5.1f}x  ({flushed['subnormal']} of {flushed['entries']} flushed; "
              f"logits bit-identical on {same}/{a.n})")


if __name__ == "__main__":
    main()
