"""GPU check: the paper's MNIST Neural ODE on one GPU, sized to a few minutes of a lent machine.

It trains the Table A1 ODE net (128 channels, 4 conv layers, t1 = 100, dopri5, Adam 1e-3, batch 32) on
MNIST's official training split ('mnist'; 'mnist-testsplit' where a machine holds only the test files) for as
many whole epochs as fit in its budget, runs Table 1's FGSM and PGD-40 rows on
``--n-eval`` eval points (clean accuracy beside them), and extrapolates the GPU-hours of the full ``paper`` profile
notebook by notebook from the unit costs it measured (one training image, one attack step per image, one
forward query per image, for the ODE net and for each CNN of the profile). The extrapolation is an estimate:
its assumptions are printed with it.

Needs only what a bare GPU machine has (torch, torchvision, torchdiffeq, pyyaml, tqdm): natrob from the checkout
(``PYTHONPATH=.``), no papermill, no pyautoattack. Data: ``NATROB_DATA`` (default ``./data``) must hold
``MNIST/raw`` with both official splits (or the t10k files alone: then the test split's 8k/2k fallback).
``scripts/gpu_check.sh`` wraps it.

    python -m natrob.run.gpu_check [--budget-s 420] [--n-eval 500] [--channels 128] [--train-size N] [--out FILE]
    python -m natrob.run.gpu_check --estimate-only     # unit costs and the extrapolation only, any device
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time

import torch

from .. import chapters, paths, reference
from ..data import load_profile_dataset
from ..errors import ConfigError
from ..harness.evaluate import evaluate
from ..models import build_model
from ..profiles import load_profile
from ..provenance import provenance
from .costs import paper_estimate
from ..results import write_json
from ..stats import ci
from ..train import accuracy, table_a1, train

EPS = sorted(reference.table1("mnist", "PGD", "Neural ODE"))  # the paper's MNIST eps (Table 1)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_step_seconds(model, opt, x, y, device, steps, warmup=2) -> float:
    """Seconds per image of one optimiser step (forward + backward) on the batch (x, y), averaged over ``steps``
    after ``warmup`` untimed steps (cuDNN autotuning, allocator)."""
    model.train()
    x, y = x.to(device), y.to(device)
    for i in range(warmup + steps):
        if i == warmup:
            _sync(device)
            t0 = time.time()
        opt.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    _sync(device)
    return (time.time() - t0) / (steps * len(y))


def cnn_step_seconds(name, kwargs, data, batch_size, device, steps=6) -> float:
    """Seconds per training image of one SGD step (forward + backward) of a profile CNN at its batch size."""
    torch.manual_seed(0)
    model = build_model(name, data, **kwargs).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    return train_step_seconds(model, opt, data.train_x[:batch_size], data.train_y[:batch_size], device, steps)


def train_ode(data, channels, budget_s, device, progress):
    """Whole epochs of Table A1 training while the next one still fits in ``budget_s``; returns (model, history)."""
    torch.manual_seed(0)
    model = build_model("odenet", data, channels=channels, conv_layers=4, t1=100.0).to(device)
    history, t_start = [], time.time()
    with tempfile.TemporaryDirectory() as folder:
        for epoch in range(1, 101):
            cfg = table_a1("mnist", epochs=epoch)  # resumes from last.pt: only epoch `epoch` runs
            history = train(model, data, cfg, checkpoint_dir=folder, seed=0, device=device, progress=progress)
            h = history[-1]
            print(f"epoch {epoch}: {h['wall_s']:.1f} s (incl. {len(data.test_y)} eval images), mean forward NFE "
                  f"{h['nfe_forward_mean']:.1f}, train accuracy {h['train_acc']:.4f}, "
                  f"eval accuracy {h['test_acc']:.4f}",
                  flush=True)
            if time.time() - t_start + h["wall_s"] > budget_s:
                break
    return model.eval(), history


def table1_rows(model, x, y, paper: dict, seed=0):
    """Table 1's FGSM and ``paper`` (the paper's PGD as the paper profile runs it) rows at the paper's MNIST eps,
    per-sample solves, as evaluate() returns them."""
    attacks = [{"name": "fgsm", "id": "fgsm", "label": "FGSM"}, paper]
    return evaluate(model, x, y, EPS, attacks, cascade=False, model_name="Neural ODE", seed=seed, progress=False)


def measure_cnns(p: dict, data, device) -> dict:
    """Seconds per training image of each CNN of profile ``p`` (ResNet50, the Fig. 1 ResNets, the Table 2 net)."""
    print("unit costs of the paper profile's CNNs (s per training image, batch as in the profile):", flush=True)
    cnn = {}
    for spec in (p["RESNET50"], p["FIG1_RESNET"], p["FIG1_SOURCE"], p["AT_MODEL"]):
        if spec["model"] not in cnn:
            cnn[spec["model"]] = cnn_step_seconds(spec["model"], spec["kwargs"], data, spec["train"]["batch_size"],
                                                  device)
            print(f"  {spec['model']}: {cnn[spec['model']] * 1e3:.3f} ms", flush=True)
    return cnn


def input_grad_seconds(model, x, device, reps=1) -> float:
    """Seconds of one forward + input-gradient pass over ``x`` (one PGD step on those images)."""
    xs = x.to(device).requires_grad_(True)
    _sync(device)
    t0 = time.time()
    for _ in range(reps):
        torch.autograd.grad(model(xs).sum(), xs)
    _sync(device)
    return (time.time() - t0) / reps


def untrained_ode_costs(data, channels, x, device) -> dict:
    """ODE unit costs without training (``--estimate-only``): one Adam step on a batch of 32, one PGD step and one
    forward query per image, on a freshly initialised net. A trained net takes more solver steps (measured on MNIST
    at 32 channels: 63 forward NFE at the start, 74 after 7 epochs), so these are lower bounds."""
    torch.manual_seed(0)
    model = build_model("odenet", data, channels=channels, conv_layers=4, t1=100.0).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_s = train_step_seconds(model, opt, data.train_x[:32], data.train_y[:32], device, steps=2, warmup=1)
    step = input_grad_seconds(model.eval(), x, device) / len(x)
    return {"train": train_s, "step": step, "query": forward_seconds(model, x, device) / len(x)}


@torch.no_grad()
def forward_seconds(model, x, device, reps=1) -> float:
    """Seconds of one forward pass over ``x`` (one query of a score-based attack on those images)."""
    xs = x.to(device)
    _sync(device)
    t0 = time.time()
    for _ in range(reps):
        model(xs)
    _sync(device)
    return (time.time() - t0) / reps


def print_table1(res, history, channels, n_train):
    """Table 1's rows for the trained net, ours beside the paper's (reference_numbers.json), with clean accuracy
    beside each row; each row is labelled with the attack that ran."""
    rows = {(r["id"], r["eps"]): r for r in res["rows"]}
    labels = {r["id"]: r["attack"] for r in res["rows"]}
    clean = ci(res["clean"])
    print(f"\nTable 1, Neural ODE ({channels} ch, t1 = 100, {len(history)} epochs of {n_train} images), "
          f"{res['n']} eval points, clean {clean}; ours / paper:")
    for attack_id, column in (("fgsm", "FGSM"), ("pgd-paper", "PGD")):
        paper = reference.table1("mnist", column, "Neural ODE")
        cells = [f"eps={e:g}: {ci(rows[(attack_id, e)]['robust'])} / {100 * reference.lookup(paper, e):.2f}%"
                 for e in EPS]
        print(f"  {labels[attack_id]} (clean {clean}): " + "; ".join(cells))


def trained_ode_costs(model, data, history, res, device, steps: int) -> dict:
    """ODE unit costs from the check's own training epochs and its rows of the paper's PGD (``steps`` steps; the
    epoch's eval pass taken out of the training cost and timed as the query cost)."""
    pgd_rows = [r for r in res["rows"] if r["id"] == "pgd-paper"]
    step_s = sum(r["wall_s"] for r in pgd_rows) / (steps * res["n"] * len(pgd_rows))
    _sync(device)
    t0 = time.time()
    accuracy(model, data.test_x, data.test_y, device=device)
    _sync(device)
    epoch_eval_s = time.time() - t0
    train_s = max(sum(h["wall_s"] for h in history) / len(history) - epoch_eval_s, 0.0) / len(data.train_y)
    # the eval pass queries each test image once
    return {"train": train_s, "step": step_s, "query": epoch_eval_s / len(data.test_y)}


def amp_numerics(model, x, y, device, scales=(1.0, 10.0, 100.0, 1e3, 1e4)) -> dict:
    """Float16 AMP on this GPU against natrob.harness.amp's CPU emulation of it (float16 storage, float32 sums) and
    torch's CPU float16 kernels: per logit scale K, the points whose input gradient (batched, as a pipeline's PGD
    step) is exactly zero, and the median cosine of each CPU gradient with the GPU's. natrob's float16-amp precision
    rests on the emulation computing what a GPU computes."""
    import copy

    from ..harness.precision import Precision
    from ..study.saturation import input_gradients
    cpu = copy.deepcopy(model).cpu().eval()
    ref, _ = input_gradients(model.eval(), x.to(device), y.to(device), scales, Precision.FLOAT16_AMP, alone=False,
                             batch_size=len(y))
    out = {}
    for proto in (Precision.FLOAT16_AMP, Precision.FLOAT16_AMP_CPU):
        g, _ = input_gradients(cpu, x.cpu(), y.cpu(), scales, proto, alone=False, batch_size=len(y))
        out[proto.value] = {}
        for k in g:
            a, b = ref[k].cpu().flatten(1), g[k].flatten(1)
            cos = torch.nn.functional.cosine_similarity(a, b, dim=1)
            out[proto.value][k] = {"zero_gpu": int((a == 0).all(1).sum()), "zero_cpu": int((b == 0).all(1).sum()),
                                   "cos_median": float(cos.nan_to_num(0.0).median())}
    return out


def _parse(argv):
    ap = argparse.ArgumentParser(prog="python -m natrob.run.gpu_check", description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-s", type=float, default=420.0, help="wall-clock budget of the whole check (420)")
    ap.add_argument("--n-eval", type=int, default=500, help="eval points for Table 1's rows (500)")
    ap.add_argument("--channels", type=int, default=128, help="ODE net width (Table A1: 128)")
    ap.add_argument("--train-size", type=int, default=None, help="training images (default: all 8,000)")
    ap.add_argument("--estimate-only", action="store_true",
                    help="no training: unit costs of an untrained net (lower bounds) and the extrapolation only")
    ap.add_argument("--out", default=None, help="JSON result (default results/gpu-check/gpu-check.json)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    if args.n_eval < 1:
        raise ConfigError("--n-eval", args.n_eval, "a positive number of eval points")
    return args


def _device():
    """The device and its name as the check prints it (with the TF32 settings that move its timings)."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; cuDNN TF32 {torch.backends.cudnn.allow_tf32}, matmul TF32 "
          f"{torch.backends.cuda.matmul.allow_tf32}", flush=True)
    return device, name


def _trained_ode(args, data, x, y, paper, device, t_start):
    """Train the ODE net in what the budget leaves after Table 1's reserve, evaluate Table 1 and time it:
    (model, history, Table 1's result, unit costs)."""
    # Table 1 is sized from one PGD step on the eval points, twice over for a trained net's NFE
    probe = build_model("odenet", data, channels=args.channels, conv_layers=4, t1=100.0).to(device).eval()
    eval_reserve = 2 * (len(EPS) * (1 + paper["steps"]) + 10) * input_grad_seconds(probe, x, device) + 10
    train_budget = args.budget_s - (time.time() - t_start) - eval_reserve
    print(f"reserving {eval_reserve:.0f} s for Table 1; training budget {train_budget:.0f} s", flush=True)
    model, history = train_ode(data, args.channels, max(train_budget, 1.0), device, not args.no_progress)
    res = table1_rows(model, x.to(device), y.to(device), paper)
    print_table1(res, history, args.channels, len(data.train_y))
    return model, history, res, trained_ode_costs(model, data, history, res, device, paper["steps"])


def _amp(args, model, data, x, y, device):
    """float16 AMP's exactly-zero gradients on this GPU against the CPU; None on a CPU-only machine."""
    if device.type != "cuda":
        return None
    trained = model if not args.estimate_only else build_model("odenet", data, channels=args.channels,
                                                                conv_layers=4, t1=100.0).to(device)
    amp = amp_numerics(trained, x[:8], y[:8], device)  # torch's CPU float16 kernels are slow at 128 channels
    print("\nfloat16 AMP, exactly-zero input gradients of 8 points (batched) on this GPU and on the CPU:")
    for proto, rows in amp.items():
        print(f"  {proto}: " + "; ".join(f"K {k:g}: GPU {r['zero_gpu']}, CPU {r['zero_cpu']}, cosine "
                                        f"{r['cos_median']:.3f}" for k, r in rows.items()), flush=True)
    return amp


def _print_estimate(args, name, ode, est):
    """The unit costs and the paper profile's device-hours extrapolated from them; their total."""
    print(f"\nunit costs, Neural ODE ({args.channels} ch): {ode['train'] * 1e3:.3f} ms per training image, "
          f"{ode['step'] * 1e3:.3f} ms per PGD step per image, {ode['query'] * 1e3:.3f} ms per query"
          + (" (untrained net: lower bounds)" if args.estimate_only else ""))
    print(f"device-hours of the full 'paper' profile on this device ({name}), extrapolated (MNIST 60k train; "
          "attacks that run on every point; CNN queries at a third of a step; grid cells and t1 < 100 nets at the "
          "base net's cost):")
    for r in est:
        print(f"  {r['notebook']}: {r['hours']:8.1f} h  {r['what']}")
    total = sum(r["hours"] for r in est)
    print(f"  total: {total:.1f} device-hours")
    return total


def main(argv=None):
    """Command line (see the module docstring)."""
    args = _parse(argv)
    t_start = time.time()
    device, name = _device()
    data = load_profile_dataset("mnist", fallback="mnist-testsplit", train_size=args.train_size)
    x, y = data.test_x[:args.n_eval], data.test_y[:args.n_eval]
    p = load_profile("paper")
    paper = reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"])  # the paper's PGD, as the paper profile runs it
    cnn = measure_cnns(p, data, device)
    model, history, res = None, [], None
    if args.estimate_only:
        ode = untrained_ode_costs(data, args.channels, x[:128], device)
    else:
        model, history, res, ode = _trained_ode(args, data, x, y, paper, device, t_start)
    amp = _amp(args, model, data, x, y, device)
    est = paper_estimate(p, ode, cnn, chapters.CHAPTERS)
    total = _print_estimate(args, name, ode, est)
    out = args.out or (paths.artifacts() / "results" / "gpu-check" / "gpu-check.json")
    payload = {"channels": args.channels, "n_train": len(data.train_y), "history": history,
               "table1": res["rows"] if res else None, "clean": res["clean"] if res else None,
               "n": res["n"] if res else None, "unit_costs_s": {"ode": ode, "cnn_train": cnn},
               "paper_estimate_h": est, "paper_total_h": total, "amp_numerics": amp,
               "provenance": provenance(vars(args), seed=0, device=device, wall_time_s=time.time() - t_start)}
    write_json(out, payload)
    print(f"\nwritten {out}; {time.time() - t_start:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
