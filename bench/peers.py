"""natrob beside its peers, measured side by side in one run on the same models, points and settings; each row is
the ratio peer time / natrob time (above 1: natrob is faster) with both results beside it:

  1. ODE solve: natrob's dopri5 (``ODENet.integrate``, natrob_dopri5) against torchdiffeq's ``odeint(method="dopri5")``
     on the same vector field ``model.func`` from the same state ``model.features(x)`` over [0, t1], same rtol/atol;
     forward only, and forward + gradient w.r.t. the input; the paper's MNIST architecture (Table A1: 4 conv layers,
     28x28 inputs, t1 = 100) at 32 and 128 channels with RANDOM weights (seed 0, the same for both: no trained
     weights are needed for timing, but the NFE depends on them). NFE of each and the max |difference| of the logits.
  2. PGD-40 at the paper's settings (natrob/reference_numbers.json ``table1.pgd_settings``: eps 0.3, 40 steps of
     0.01, random start): ``natrob.attacks.PGD`` against ``torchattacks.PGD`` on the quick profile's Neural ODE and
     ResNet50, the same random start for both (same seed); the attack object alone on the model as loaded (one
     shared-step batch solve), and the harness (``natrob.harness.evaluate``: contract probes, per-sample solves,
     frozen PGD) against the same torchattacks call. Robust counts: natrob counts a point broken when any iterate
     fooled it, so its count must be equal or lower.
  3. The audit: ``natrob.audit_model(budget="standard")`` against AutoAttack's standard version alone
     (``pyautoattack.AutoAttack(model, norm="Linf", eps=0.3, version="standard")``) on the quick Neural ODE at
     eps 0.3, same points (an empty evaluation store: nothing is read from a cache): time, worst-case robust count.
  4. The quick Neural ODE's labels with natrob's per-sample step sizes (how the harness judges a point: as if
     alone) against one batched torchdiffeq dopri5 solve, and against torchdiffeq one image at a time (the peer's
     way to the same batch independence): time and the number of labels that differ.

Rounds are interleaved (peer and natrob alternate, the order flipping each round) so both see the same machine
state; times are medians of the rounds and the ratio is the median of the rounds' ratios. The PGD rows run round r
with seed r on both sides (the attack object alone: the same random start; the harness seeds each attack from its
own seed) and show each round's robust count: a count differs from seed to seed by a point or two. Prints one
markdown table (a footnote under it for every row where natrob is slower: why, and what it buys), the machine's
MNIST-128 f call (``natrob.run.fcall.f_call_ms``), the CPU, threads and sizes; ``--out`` writes the same as JSON.
Loads (or trains) the quick profile's nets from the model store (``NATROB_ARTIFACTS``). About 5 minutes on one
thread of a 2-core machine (the other core busy); ``--quick`` is a smoke run of about a minute (tiny sizes, one
round).

    .venv/bin/python bench/peers.py [--n 64] [--n-audit 32] [--ode-batch 16] [--rounds 3] [--threads 1]
                                    [--quick] [--out peers.json]
"""
import argparse
import json
import os
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F

from natrob.attacks import PGD
from natrob.data import STATS, load_profile_dataset
from natrob.harness.evaluate import evaluate
from natrob.models import build_model, solver_settings
from natrob.profiles import load_profile
from natrob.provenance import device_description
from natrob.reference import numbers, paper_attack
from natrob.run.fcall import f_call_ms
from natrob.study.profile_models import get_profile_model

MNIST_SPEC = {"in_channels": 1, "num_classes": 10, "mean": STATS["mnist"][0], "std": STATS["mnist"][1]}

# why natrob is slower where it is, and what that buys: printed under the table for every row with ratio < 1
WHY = {
    "ode": "natrob's dopri5 is the same method (tableau, controller, initial step) with fewer temporaries per step; "
           "it buys nothing but speed, so a ratio below 1 here is machine noise or a regression.",
    "pgd": "natrob's PGD judges every iterate (it keeps each point's latest fooling iterate and Pintor et al.'s "
           "failure indicators) and its last iterate once more (one forward pass more than torchattacks): a point "
           "any iterate fooled stays broken, so on the same random start its count is never above torchattacks'.",
    "harness": "the harness probes the model's contract and batch dependence, predicts the clean points, and solves "
               "each image with its own step sizes: a point's label and its adversarial example do not depend on "
               "its batch-mates (frozen PGD stops a point at its first fooling iterate, which pays part of it back).",
    "audit": "the audit runs every attack of its plan (FGSM, the paper's PGD-40, noise, the constant image, PGD "
             "with restarts, Square, then AutoAttack, Boundary and the adaptive attacks through other solves of the "
             "same vector field on the survivors), each standalone count reported, plus probes for gradient "
             "masking and randomness, all with per-sample solves: it buys per-attack counts, warning signs and "
             "findings, not one number.",
    "per_sample": "a step size per image: each label equals the image's label solved alone, whatever its batch "
                  "(one batched solve shares one step size, so a label can change with its batch-mates).",
}


def clock(fn):
    """(wall seconds, result) of one call."""
    s = time.perf_counter()
    out = fn()
    return time.perf_counter() - s, out


def side_by_side(peer, ours, rounds, warmup=False, vary_seed=False):
    """Interleaved rounds of two callables ``fn(seed)`` (the order flips each round; torch's seed is set to the
    round's seed before each call, so both draw the same random start; the seed is 0, or the round's index with
    ``vary_seed``): (median peer s, median natrob s, median ratio peer/natrob, peer's results, natrob's results),
    the results one per round."""
    if warmup:
        torch.manual_seed(0); peer(0)
        torch.manual_seed(0); ours(0)
    tp, to, rp, ro = [], [], [], []
    for r in range(rounds):
        seed = r if vary_seed else 0
        for side in (("peer", "ours") if r % 2 == 0 else ("ours", "peer")):
            torch.manual_seed(seed)
            t, out = clock(lambda: (peer if side == "peer" else ours)(seed))
            (tp if side == "peer" else to).append(t)
            (rp if side == "peer" else ro).append(out)
    ratio = statistics.median(p / o for p, o in zip(tp, to))
    return statistics.median(tp), statistics.median(to), ratio, rp, ro


def counts(ks, n, what="robust") -> str:
    """Robust counts of the rounds (seeds 0, 1, ...) as one text."""
    seeds = " (seed 0)" if len(ks) == 1 else f" (seeds 0-{len(ks) - 1}: sum {sum(ks)})"
    return f"{what} {', '.join(str(k) for k in ks)} of {n}{seeds}"


def row(rows, what, peer, natrob, timing, peer_res, natrob_res, why, rounds):
    tp, to, ratio = timing[:3]
    rows.append({"what": what, "peer": peer, "natrob": natrob, "peer_s": tp, "natrob_s": to, "ratio": ratio,
                 "peer_result": peer_res, "natrob_result": natrob_res, "rounds": rounds,
                 "why": WHY[why] if ratio < 1 else None})
    print(f"  {what}: peer {tp:.2f} s, natrob {to:.2f} s, ratio {ratio:.2f}  [{peer_res} | {natrob_res}]", flush=True)


# -- 1. ODE solve ---------------------------------------------------------------------------------------------
def ode_rows(rows, channels, batch, rounds):
    from torchdiffeq import odeint
    torch.manual_seed(0)
    model = build_model("odenet", spec=MNIST_SPEC, channels=channels, conv_layers=4, t1=100.0).eval()
    x, y = torch.rand(batch, 1, 28, 28), torch.randint(0, 10, (batch,))
    t = torch.tensor([model.t0, model.t1])

    def peer_logits(xx):
        model.func.calls = model.func.vjps = 0
        return model.head(odeint(model.func, model.features(xx), t, rtol=model.rtol, atol=model.atol,
                                 method="dopri5")[-1])

    def ours_logits(xx):
        return model(xx)  # stem, natrob_dopri5 over [t0, t1] (ODENet.integrate), head

    def forward(logits_fn):
        def run(_):
            with torch.no_grad():
                z = logits_fn(x)
            return z, model.func.calls
        return run

    def with_grad(logits_fn):
        def run(_):
            xx = x.clone().requires_grad_(True)
            z = logits_fn(xx)
            nfe = model.func.calls
            g, = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), xx)
            return z.detach(), nfe, g, model.func.vjps
        return run

    arch = f"MNIST {channels} ch, batch {batch}"
    tp, to, ratio, rp, ro = side_by_side(forward(peer_logits), forward(ours_logits), rounds, warmup=True)
    (zp, np_), (zo, no) = rp[-1], ro[-1]
    d = (zp - zo).abs().max().item()
    row(rows, f"ODE solve, forward ({arch})", "torchdiffeq dopri5", "natrob dopri5", (tp, to, ratio),
        f"NFE {np_}", f"NFE {no}; max abs diff of logits {d:.1e}", "ode", rounds)
    tp, to, ratio, rp, ro = side_by_side(with_grad(peer_logits), with_grad(ours_logits), rounds, warmup=True)
    (zp, np_, gp, vp), (zo, no, go, vo) = rp[-1], ro[-1]
    d, dg = (zp - zo).abs().max().item(), ((gp - go).abs().max() / gp.abs().max()).item()
    row(rows, f"ODE solve, forward + input gradient ({arch})", "torchdiffeq dopri5", "natrob dopri5",
        (tp, to, ratio), f"NFE {np_} + {vp} VJPs", f"NFE {no} + {vo} VJPs; max abs diff of logits {d:.1e}, "
        f"of the gradient {dg:.1e} (relative to its max)", "ode", rounds)


# -- 2. PGD-40 ------------------------------------------------------------------------------------------------
def robust_of(model, x_adv, y, clean_ok):
    with torch.no_grad():
        return clean_ok & (model(x_adv).argmax(1) == y)


def pgd_rows(rows, label, model, x, y, rounds, harness_rounds):
    import torchattacks
    s = numbers()["table1"]["pgd_settings"]
    eps, alpha, steps, rs = 0.3, float(s["step_size"]), int(s["steps"]), bool(s["random_start"])
    with torch.no_grad():
        clean_ok = model(x).argmax(1) == y
    ours = PGD(eps, alpha=alpha, steps=steps, random_start=rs)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=rs)

    def peer(_):
        return int(robust_of(model, theirs(x, y), y, clean_ok).sum())

    def natrob(_):
        adv = ours(model, x, y)  # a point any iterate fooled is broken (diagnostics' seen_adversarial)
        return int((robust_of(model, adv, y, clean_ok) & ~ours.diagnostics["seen_adversarial"]).sum())

    n, k = len(y), int(clean_ok.sum())
    settings = f"PGD-{steps}, eps {eps}, step {alpha}, {'random start' if rs else 'no random start'}"
    tp, to, ratio, kp, ko = side_by_side(peer, natrob, rounds, vary_seed=True)
    row(rows, f"{settings}, attack object alone ({label}, {n} points, {k} clean-correct)", "torchattacks.PGD",
        "natrob.attacks.PGD", (tp, to, ratio), counts(kp, n), counts(ko, n), "pgd", rounds)

    spec = paper_attack(None, None)

    def harness(seed):  # the harness seeds each attack from (seed, attack, eps): another random start than the peer's
        res = evaluate(model, x, y, [eps], [spec], cascade=False, progress=False, cache=False, seed=seed)
        return res["rows"][0]["robust"]["k"]
    tp, to, ratio, kp, ko = side_by_side(peer, harness, harness_rounds, vary_seed=True)
    row(rows, f"{settings}, harness path ({label}, {n} points)", "torchattacks.PGD",
        "natrob.harness.evaluate (per-sample solves, frozen PGD)", (tp, to, ratio), counts(kp, n), counts(ko, n),
        "harness", harness_rounds)


# -- 3. the audit ---------------------------------------------------------------------------------------------
def audit_row(rows, model, x, y, eps, rounds):
    from pyautoattack import AutoAttack
    from natrob import audit_model
    n = len(y)

    def peer(_):
        aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=0)
        aa.verbose = False
        _, y_adv = aa.run_standard_evaluation(x, y, batch_size=n)
        return int((y_adv == y).sum())

    def natrob(_):
        saved = os.environ.get("NATROB_ARTIFACTS")
        with tempfile.TemporaryDirectory() as tmp:
            os.environ["NATROB_ARTIFACTS"] = tmp  # an empty evaluation store: every attack runs
            try:
                r = audit_model(model, x, y, [eps], "standard", "Neural ODE", progress=False)
            finally:
                if saved is None:
                    os.environ.pop("NATROB_ARTIFACTS")
                else:
                    os.environ["NATROB_ARTIFACTS"] = saved
        pe = r["per_eps"][0]
        return pe["worst_case"]["k"], len(pe["attacks"])

    tp, to, ratio, kp, ko = side_by_side(peer, natrob, rounds)
    row(rows, f"robustness audit at eps {eps} (Neural ODE, {n} points)", "AutoAttack standard (pyautoattack)",
        'natrob.audit_model(budget="standard")', (tp, to, ratio), f"worst case {kp[-1]} of {n}",
        f"worst case {ko[-1][0]} of {n} ({ko[-1][1]} attacks)", "audit", rounds)


# -- 4. per-sample solves -------------------------------------------------------------------------------------
def per_sample_rows(rows, model, x, rounds):
    from torchdiffeq import odeint
    t = torch.tensor([model.t0, model.t1])

    @torch.no_grad()
    def batched(xx):
        return model.head(odeint(model.func, model.features(xx), t, rtol=model.rtol, atol=model.atol,
                                 method="dopri5")[-1])

    @torch.no_grad()
    def per_sample(_):
        with solver_settings(model, per_sample=True):
            return model(x)

    def one_at_a_time(_):
        return torch.cat([batched(x[i:i + 1]) for i in range(len(x))])

    n = len(x)
    for peer, how, name in ((lambda _: batched(x), "one batch", "torchdiffeq dopri5, one batched solve"),
                            (one_at_a_time, "one image per solve", "torchdiffeq dopri5, one image per solve")):
        tp, to, ratio, zp, zo = side_by_side(peer, per_sample, rounds, warmup=True)
        zp, zo = zp[-1], zo[-1]
        k = int((zp.argmax(1) != zo.argmax(1)).sum())
        d = (zp - zo).abs().max().item()
        row(rows, f"labels of {n} points, quick Neural ODE: per-sample steps vs {how}", name,
            "natrob per-sample dopri5 (one batch)", (tp, to, ratio), f"{n} labels",
            f"{k}/{n} differ from the peer's; max abs diff of logits {d:.1e}", "per_sample", rounds)


def table(rows) -> str:
    lines = ["| what | peer | natrob | peer time | natrob time | ratio peer/natrob | results (peer / natrob) |",
             "|---|---|---|---|---|---|---|"]
    notes = []
    for r in rows:
        mark = ""
        if r["why"]:
            if r["why"] not in notes:
                notes.append(r["why"])
            mark = f" [{notes.index(r['why']) + 1}]"
        res = f"{r['peer_result']} / {r['natrob_result']}" if r["peer_result"] else r["natrob_result"]
        lines.append(f"| {r['what']} | {r['peer']} | {r['natrob']} | {r['peer_s']:.2f} s | {r['natrob_s']:.2f} s | "
                     f"{r['ratio']:.2f}{mark} | {res} |")
    lines += [""] + [f"[{i}] natrob slower: {w}" for i, w in enumerate(notes, 1)]
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=64, help="points for PGD and the per-sample rows")
    p.add_argument("--n-audit", type=int, default=32, help="points for the audit row")
    p.add_argument("--ode-batch", type=int, default=16, help="batch of the ODE-solve rows (28x28 random images)")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every row but the audit's (1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 gives stable figures on shared cores)")
    p.add_argument("--quick", action="store_true", help="a smoke run of about a minute (tiny sizes, one round)")
    p.add_argument("--out", default=None, help="also write the table as JSON here")
    a = p.parse_args()
    if a.quick:
        a.n, a.n_audit, a.ode_batch, a.rounds = min(a.n, 8), min(a.n_audit, 4), min(a.ode_batch, 2), 1
    torch.set_num_threads(a.threads)
    t_start = time.perf_counter()
    f_ms = f_call_ms()
    machine = {"f_call_ms": f_ms, "device": device_description(), "threads": a.threads}
    print(f"# {machine['device']}, {a.threads} thread(s); MNIST-128 f call {f_ms:.1f} ms", flush=True)

    params = load_profile("quick")
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    ode, _ = get_profile_model(params["ODE"], data, params["SEED"], progress=False)
    r50, _ = get_profile_model(params["RESNET50"], data, params["SEED"], progress=False)
    ode, r50 = ode.eval(), r50.eval()
    x, y = data.test_x[:a.n], data.test_y[:a.n]

    rows = []
    for channels in (32, 128):
        ode_rows(rows, channels, a.ode_batch, a.rounds)
    pgd_rows(rows, "quick Neural ODE", ode, x, y, a.rounds, a.rounds)
    pgd_rows(rows, "quick ResNet50", r50, x, y, a.rounds, a.rounds)
    audit_row(rows, ode, x[:a.n_audit], y[:a.n_audit], 0.3, 1)
    per_sample_rows(rows, ode, x, a.rounds)

    wall = time.perf_counter() - t_start
    print()
    print(table(rows))
    print()
    print(f"MNIST-128 f call {f_ms:.1f} ms; {machine['device']}; {a.threads} thread(s); n {a.n} (PGD, labels), "
          f"{a.n_audit} (audit), ODE-solve batch {a.ode_batch}; rounds {a.rounds} "
          f"(audit row 1); {'--quick; ' if a.quick else ''}{wall:.0f} s in all; "
          f"{time.strftime('%Y-%m-%d')}")
    if a.out:
        with open(a.out, "w") as fh:
            json.dump({"date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": machine, "n": a.n,
                       "n_audit": a.n_audit, "ode_batch": a.ode_batch, "rounds": a.rounds,
                       "quick": a.quick, "wall_s": wall, "rows": rows, "table": table(rows)}, fh, indent=1)
        print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
