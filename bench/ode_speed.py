"""ODE net speed, the fast vector field against the current one (f_impl='concat'), side by side in one run:

  - one call of the MNIST-128 f (batch 128, 1 thread), so readers can compare machines;
  - a training step (forward + backward + Adam, batch 64) of the MNIST ODE net (28x28, 4 conv layers, t1=100,
    dopri5) at 32 and 128 channels, with the epoch of 60,000 images it extrapolates to (random weights: a trained
    net takes more solver steps, e.g. 63 -> 74 forward NFE at 32 channels over 7 epochs): float32 against the fast
    training path (bf16 convs in f, float32 state and error estimate; natrob.train.precision) and bf16 autocast of
    the whole step (goal >= 2x at 128 channels);
  - PGD-40 on the digits quick-profile ODE net (8x8, 32 channels, 4 conv layers, t1=100) (goal >= 2x);
  - the per-sample step-size solve against the shared-step solve, same model and images (goal <= 1.3x);
  - libgomp's default wait policy against OMP_WAIT_POLICY=PASSIVE (natrob's default), in child processes.

Models have random weights (seed 0; NFE is printed, it sets the cost); inputs are random tensors or
sklearn's digits, nothing is downloaded. Timings are medians of interleaved rounds; ratios are old / new.

    .venv/bin/python bench/ode_speed.py [--quick] [--threads 2] [--rounds 3] [--device cpu|cuda] [--tf32]
                                        [--only training]

``--tf32`` allows TF32 matmuls and convolutions on CUDA; evaluation-like parts (PGD, solves) stay fp32.
Where the device has no native bfloat16 the training steps run float32 only and say so.
"""
import argparse
import os
import subprocess
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads libgomp, as natrob does

import torch  # noqa: E402

from natrob.attacks import PGD  # noqa: E402
from natrob.models import build_model  # noqa: E402

MNIST = {"in_channels": 1, "num_classes": 10, "mean": (0.1307,), "std": (0.3081,)}
DIGITS = {"in_channels": 1, "num_classes": 10, "mean": (0.5,), "std": (0.25,)}


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


CPU = {}  # label -> median process CPU time of the last interleaved() call


def interleaved(fns: dict, rounds: int, device) -> dict:
    """Median wall time of each function over ``rounds`` interleaved rounds (after one warm-up call each).

    The median process CPU time (all threads) goes to ``CPU``: on a machine shared with other jobs it moves
    less than wall time, so both ratios are printed."""
    times, cpu = {k: [] for k in fns}, {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for k, fn in fns.items():
            sync(device)
            s, c = time.perf_counter(), time.process_time()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - s)
            cpu[k].append(time.process_time() - c)
    CPU.clear()
    CPU.update({k: sorted(v)[len(v) // 2] for k, v in cpu.items()})
    return {k: sorted(v)[len(v) // 2] for k, v in times.items()}


def f_call(device, rounds):
    """One evaluation of the MNIST-128 f, batch 128, 1 thread."""
    torch.manual_seed(0)
    model = build_model("odenet", spec=MNIST, channels=128, conv_layers=4, t1=100.0).to(device).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            y = model.features(torch.rand(128, 1, 28, 28, device=device))
            t = torch.tensor(1.0, device=device)

            def call(impl, cl):
                return lambda: (model.configure_solver(f_impl=impl, channels_last=cl), model.func(t, y))
            res = interleaved({"concat": call("concat", False), "fast": call("fast", False),
                               "fast, channels_last": call("fast", True)}, max(5, 2 * rounds), device)
    finally:
        torch.set_num_threads(threads)
    flop = 2 * 2 * 128 * 128 * 9 * y.shape[-1] * y.shape[-2] * 128  # the two 128->128 3x3 convs
    print(f"one call of f, MNIST ODE net 128 ch (14x14 state), batch 128, 1 thread:")
    for k, v in res.items():
        print(f"  {k:22s} {v * 1e3:7.1f} ms   {flop / v / 1e9:6.1f} GFLOP/s in its convs")
    print(f"  ratio concat / fast: {res['concat'] / res['fast']:.2f} (CPU time {CPU['concat'] / CPU['fast']:.2f})")
    return res


def training_step(channels, device, rounds, batch=64):
    """A training step (forward + backward + Adam) of the MNIST ODE net, float32 against the fast training path
    (natrob.train.precision: bf16 convs in f, float32 state and error estimate) and against bf16 autocast of
    the whole step, interleaved from the same weights. Returns float32 time / fast-path time."""
    from natrob.train.precision import bf16_supported
    torch.manual_seed(0)
    model = build_model("odenet", spec=MNIST, channels=channels, conv_layers=4, t1=100.0).to(device).train()
    x, y = torch.rand(batch, 1, 28, 28, device=device), torch.randint(0, 10, (batch,), device=device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    native = bf16_supported(device)
    nfe = {}

    def step(label, conv_dtype, autocast):
        def run():
            model.load_state_dict(state)  # every step starts from the same weights, so all do the same work
            model.configure_solver(conv_dtype=conv_dtype)
            opt = torch.optim.Adam(model.parameters(), 1e-2)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            nfe[label] = (model.nfe_forward, model.nfe_backward)
            model.configure_solver(conv_dtype=None)
        return run
    fns = {"float32": step("float32", None, False)}
    if native:
        fns["fast path (bf16 convs)"] = step("fast path (bf16 convs)", "bfloat16", False)
        fns["bf16 autocast"] = step("bf16 autocast", None, True)
    res = interleaved(fns, rounds, device)
    fast = "fast path (bf16 convs)" if native else "float32"
    print(f"training step, MNIST ODE net {channels} ch, batch {batch}"
          f"{'' if native else ' (no native bfloat16 here: the fast path falls back to float32)'}:")
    for k, v in res.items():
        print(f"  {k:24s} {v:6.2f} s   NFE fwd/bwd {nfe[k][0]}/{nfe[k][1]}   {batch / v:5.1f} images/s   "
              f"float32 / this {res['float32'] / v:.2f} (CPU time {CPU['float32'] / CPU[k]:.2f})   "
              f"one epoch of MNIST's 60,000 images at this rate: {60000 / batch * v / 60:.0f} min")
    return res["float32"] / res[fast]


def pgd(device, rounds, n):
    torch.manual_seed(0)
    model = build_model("odenet", spec=DIGITS, channels=32, conv_layers=4, t1=100.0).to(device).eval()
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images[:n] / 16.0, dtype=torch.float32, device=device).unsqueeze(1)
    y = torch.tensor(d.target[:n], device=device)
    attack = PGD(0.1, alpha=0.01, steps=40, random_start=True)

    def run(impl, per_sample):
        def go():
            model.configure_solver(f_impl=impl, per_sample=per_sample)
            torch.manual_seed(1)
            attack(model, x, y)
        return go
    res = interleaved({"concat": run("concat", False), "fast": run("fast", False),
                       "fast, per-sample": run("fast", True)}, rounds, device)
    model.configure_solver(f_impl="fast", per_sample=False)
    print(f"PGD-40 (eps 0.1), digits ODE net 32 ch t1=100 (random weights), {n} images:")
    for k, v in res.items():
        print(f"  {k:18s} {v:6.2f} s   {n / v:6.2f} images/s")
    print(f"  speedup concat / fast (shared steps): {res['concat'] / res['fast']:.2f} (goal >= 2; CPU time "
          f"{CPU['concat'] / CPU['fast']:.2f});  concat / fast per-sample: "
          f"{res['concat'] / res['fast, per-sample']:.2f}")


def per_sample(device, rounds, n):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images[:n] / 16.0, dtype=torch.float32, device=device).unsqueeze(1)
    g = torch.Generator().manual_seed(1)
    x[1::2] = (x[1::2] + 0.8 * torch.randn(x[1::2].shape, generator=g).to(device)).clamp(0, 1)  # easy + hard
    for label, spec, kwargs in [("digits ODE net 32 ch", DIGITS, {"channels": 32}),
                                ("MNIST-shaped ODE net 32 ch (28x28 noise images)", MNIST, {"channels": 32})]:
        torch.manual_seed(0)
        model = build_model("odenet", spec=spec, conv_layers=4, t1=100.0, **kwargs).to(device).eval()
        xs = x if spec is DIGITS else torch.rand(min(n, 64), 1, 28, 28, device=device)
        stats = {}

        def solve(flag):
            def go():
                model.configure_solver(per_sample=flag)
                with torch.no_grad():
                    model(xs)
                stats[flag] = (model.nfe_forward, model.nfe_per_sample)
            return go
        res = interleaved({"shared": solve(False), "per-sample": solve(True)}, max(3, rounds), device)
        nfe = stats[True][1].float()
        print(f"per-sample vs shared-step solve, {label}, {len(xs)} images (no grad): "
              f"shared {res['shared'] * 1e3:.0f} ms "
              f"(NFE {stats[False][0]}), per-sample {res['per-sample'] * 1e3:.0f} ms (NFE per sample "
              f"{int(nfe.min())}-{int(nfe.max())}, mean {nfe.mean():.1f});  "
              f"ratio {res['per-sample'] / res['shared']:.2f} "
              f"(goal <= 1.3; CPU time {CPU['per-sample'] / CPU['shared']:.2f})")


_CHILD = """
import resource, time, torch
from natrob.models import build_model
torch.manual_seed(0); torch.set_num_threads({threads})
m = build_model("odenet", spec={spec}, channels=32, conv_layers=4, t1=100.0).eval()
x = torch.rand(64, 1, 8, 8)
with torch.no_grad():
    m(x); s = time.perf_counter()
    for _ in range(3): m(x)
r = resource.getrusage(resource.RUSAGE_SELF)
print(time.perf_counter() - s, r.ru_utime, r.ru_stime)
"""


def omp_policy(threads, rounds):
    """A digits forward solve in child processes, libgomp's default wait policy vs PASSIVE, interleaved."""
    if threads < 2:
        return
    env_default = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    code = _CHILD.format(threads=threads, spec=DIGITS)
    times = {"default": [], "PASSIVE": []}
    for _ in range(max(3, rounds)):
        for k, env in (("default", env_default), ("PASSIVE", dict(env_default, OMP_WAIT_POLICY="PASSIVE"))):
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            times[k].append([float(v) for v in out.stdout.split()[-3:]])
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}  # the round with the median wall time
    print(f"OpenMP wait policy, 3 digits solves (batch 64) on {threads} threads in a child process (whole process "
          f"user/system CPU): default {med['default'][0]:.2f} s ({med['default'][1]:.1f}/{med['default'][2]:.2f} s), "
          f"PASSIVE {med['PASSIVE'][0]:.2f} s ({med['PASSIVE'][1]:.1f}/{med['PASSIVE'][2]:.2f} s);  ratio "
          f"{med['default'][0] / med['PASSIVE'][0]:.2f} "
          f"(depends on the other load: load average {os.getloadavg()[0]:.1f})")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="fewer rounds and images (about a minute or two)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds per comparison (default 3, quick 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--only", choices=["training"], help="only the f call and the training steps")
    p.add_argument("--tf32", action="store_true", help="allow TF32 matmuls and convolutions (CUDA)")
    a = p.parse_args()
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = a.tf32
    rounds = a.rounds or (1 if a.quick else 3)
    torch.set_num_threads(a.threads)
    from natrob.train.precision import bf16_supported
    print(f"torch {torch.__version__}, device {device}, {a.threads} thread(s), OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY')}, {rounds} round(s){', quick' if a.quick else ''}; CPU capability "
          f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {bf16_supported(device)}")
    f_call(device, rounds)
    if a.only is None:
        per_sample(device, rounds, 64 if a.quick else 256)
        pgd(device, rounds, 8 if a.quick else 16)
    training_step(32, device, rounds)
    ratio128 = training_step(128, device, rounds)
    if device.type == "cpu" and a.only is None:
        omp_policy(a.threads, rounds)
    print(f"training-step speedup at 128 channels: {ratio128:.2f} (float32 / fast path, goal >= 2; "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}"
          f"{'' if bf16_supported(device) else ', no native bfloat16: float32 on both sides'})")


if __name__ == "__main__":
    main()
