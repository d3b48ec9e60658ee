"""The quick profile's floor: how close the ODE nets' convolutions run to this CPU's attainable float32 rate, and
what share of a training step and of an attack's gradient step they take, per width of notebook 08 (16-128
channels, the digits nets: 8x8 images, a 4x4 ODE state, 4 conv layers, t1 = 100, dopri5).

Where the convolutions already run near the attainable rate and take most of a step, the time left
is the arithmetic the experiment defines (its models, points and attack budgets): only fewer or cheaper
operations (lower precision, smaller budgets) would cut it, not less overhead. Printed, side by side in one run:

  - the machine's MNIST-128 f call (batch 128, one thread), as the runner's timing table prints it;
  - the attainable float32 rate: the better of a 1024^3 matrix product and a large 3x3 conv (batch 64, 256
    channels, 8x8) (on AMD CPUs MKL's matrix product is the slower of the two);
  - per width, the 3x3 conv of f at batch 64 on a 4x4 state: forward, and forward + backward (input and weight
    gradients, as training needs), in GFLOP/s and as a share of the attainable rate;
  - per width, torch.profiler's split of one float32 training step (batch 64: forward, backward, an Adam step)
    and of one PGD gradient step (``--n`` test digits, per-sample solves, as the harness attacks) into convolution
    (forward and backward kernels) and everything else (norms, solver arithmetic, Python, autograd).

Nets have random weights (seed 0): a trained net takes more solver steps, which changes the time, not the split.

    .venv/bin/python bench/quick_floor.py [--n 40] [--threads 1]
"""
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp, as natrob does

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from quick_setup import quick_setup  # noqa: E402
from torch.profiler import ProfilerActivity, profile  # noqa: E402

from natrob.models import build_model  # noqa: E402
from natrob.run.runner import f_call_ms  # noqa: E402

CONV_OPS = ("aten::mkldnn_convolution", "aten::convolution_backward", "aten::_convolution", "aten::conv2d")


def rate(fn, flops, min_s=1.0):
    """GFLOP/s of ``fn`` (median of 5 rounds of repeated calls, each at least min_s / 5)."""
    fn()
    rounds = []
    for _ in range(5):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < min_s / 5:
            fn()
            n += 1
        rounds.append((time.perf_counter() - t0) / n)
    return flops / sorted(rounds)[2] / 1e9


def conv_rates(c, batch=64):
    """(forward, forward + backward) GFLOP/s of f's 3x3 conv at ``c`` channels on a (batch, c, 4, 4) state."""
    x = torch.randn(batch, c, 4, 4, requires_grad=True)
    w = (torch.randn(c, c, 3, 3) * 0.05).requires_grad_(True)
    flops = 2 * batch * 16 * c * c * 9

    def fwd():
        with torch.no_grad():
            F.conv2d(x, w, None, 1, 1)

    def fwd_bwd():
        torch.autograd.grad(F.conv2d(x, w, None, 1, 1).sum(), (x, w))

    return rate(fwd, flops), rate(fwd_bwd, 3 * flops)


def conv_share(fn):
    """(seconds per call, share of self CPU time in convolution kernels) of ``fn`` under torch.profiler."""
    fn()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
    events = [e for e in prof.key_averages() if e.key != "[memory]"]
    total = sum(e.self_cpu_time_total for e in events)
    conv = sum(e.self_cpu_time_total for e in events if e.key in CONV_OPS)
    return seconds, conv / max(total, 1)


def main():
    a, params, data = quick_setup(40)
    kwargs = dict(params["ODE"]["kwargs"])
    print(f"MNIST-128 f call (batch 128, {torch.get_num_threads()} thread): {f_call_ms():.0f} ms")
    big_a, big_b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    gemm = rate(lambda: torch.mm(big_a, big_b), 2 * 1024 ** 3)
    big_x, big_w = torch.randn(64, 256, 8, 8), torch.randn(256, 256, 3, 3)
    with torch.no_grad():
        big_conv = rate(lambda: F.conv2d(big_x, big_w, None, 1, 1), 2 * 64 * 64 * 256 * 256 * 9)
    ref = max(gemm, big_conv)
    print(f"attainable float32 rate: {gemm:.0f} GFLOP/s for a 1024^3 matrix product, {big_conv:.0f} GFLOP/s for a "
          f"large 3x3 conv (batch 64, 256 channels, 8x8); shares below are of {ref:.0f}")
    x, y = data.test_x[:a.n], data.test_y[:a.n]
    xt, yt = data.train_x[:64], data.train_y[:64]
    print(f"\n{'channels':>8} {'conv fwd':>16} {'conv fwd+bwd':>16} {'training step':>24} {'PGD gradient step':>26}")
    for c in params["WIDTH_CHANNELS"]:
        fwd, both = conv_rates(c)
        torch.manual_seed(0)
        model = build_model("odenet", data, **{**kwargs, "channels": c})
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)

        def train_step():
            model.train()
            opt.zero_grad()
            F.cross_entropy(model(xt), yt).backward()
            opt.step()

        def pgd_step():
            model.eval()
            model.configure_solver(per_sample=True)
            try:
                xa = x.clone().requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(xa), y), xa)
            finally:
                model.configure_solver(per_sample=False)

        st, sh_t = conv_share(train_step)
        sp, sh_p = conv_share(pgd_step)
        print(f"{c:>8} {fwd:>6.0f} GF/s {fwd / ref:>4.0%} {both:>6.0f} GF/s {both / ref:>4.0%} "
              f"{st:>8.2f} s, conv {sh_t:>4.0%} {sp:>10.2f} s, conv {sh_p:>4.0%}")


if __name__ == "__main__":
    main()
