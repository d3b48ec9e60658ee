"""Robust-accuracy harness: models x epsilons x attacks, batched, cascaded, failure-tolerant, with provenance.

Attack specs are dicts such as ``{"name": "pgd", "steps": 40, "alpha": 0.01}`` (``eps`` is filled in per
radius), ``{"name": "transfer", "source": model, "attack": {"name": "fgsm"}}``, or a label for display
(``"label": "PGD-40"``). With ``cascade=True`` (AutoAttack style) a later attack only runs on points still
robust and each row reports the accuracy remaining after it; with ``cascade=False`` every attack runs on
every clean-correct point and rows report standalone accuracy. ``worst`` is the per-point minimum.

ODE nets (models with ``configure_solver``) are switched to per-sample step sizes for the duration of
``evaluate`` and ``predict`` (and switched back after), so an image's prediction and its adversarial example
never depend on its batch-mates.

ODE solver failures (step-size underflow, non-finite state, NFE cap) never stop an evaluation: the batch
is retried one image at a time and an image whose solve still fails gets status ``solver_failure`` and
counts as not robust.
"""
from __future__ import annotations

import contextlib
import csv
import io
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from . import paths
from .attacks import make_attack
from .attacks.base import check_batch
from .errors import ConfigError, SolverFailure, check_eps
from .provenance import provenance, write_json, write_text

STATUSES = ("robust", "broken", "misclassified", "solver_failure")


# ------------------------------------------------------------------------------------------- prediction
def _nfe(model):
    return getattr(model, "nfe_forward", None)


@contextlib.contextmanager
def per_sample_solves(model):
    """Within this block an ODE net solves with a step size per sample (batch-independent); other models as is."""
    configure = getattr(model, "configure_solver", None)
    try:
        old = configure(per_sample=True) if configure is not None else None
    except ConfigError:  # a model with its own solver settings but no per-sample mode
        old = None
    try:
        yield model
    finally:
        if old is not None:
            configure(per_sample=old["per_sample"])


@torch.no_grad()
def predict(model, x, batch_size=256, per_sample=False):
    """Predicted labels; -1 where the ODE solver failed on that image. Returns (labels, nfe list).

    ``per_sample=True`` feeds one image at a time; ODE nets solve with per-sample step sizes either way."""
    with per_sample_solves(model):
        return _predict(model, x, batch_size, per_sample)


def _predict(model, x, batch_size, per_sample):
    model.eval()
    preds, nfes = [], []
    step = 1 if per_sample else batch_size
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        try:
            preds.append(model(xb).argmax(1))
            nfes.append(_nfe(model))
        except SolverFailure as exc:
            if getattr(exc, "logits", None) is not None:  # per-sample solve: only the failed images lost
                preds.append(exc.logits.argmax(1).masked_fill(exc.failed, -1))
                nfes.append(_nfe(model))
                continue
            if len(xb) == 1:
                preds.append(torch.full((1,), -1, dtype=torch.long, device=x.device))
                continue
            p, n = _predict(model, xb, batch_size, per_sample=True)
            preds.append(p), nfes.extend(n)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long), [n for n in nfes if n is not None]


def batch_disagreement(model, x, batch_size=256) -> dict:
    """How often batched and one-at-a-time predictions differ (adaptive solvers share a step size per batch)."""
    batched, _ = predict(model, x, batch_size)
    single, _ = predict(model, x, per_sample=True)
    return {"n": len(x), "disagree": int((batched != single).sum()), "rate": float((batched != single).float().mean())}


# ------------------------------------------------------------------------------------------- attacks
def attack_label(spec: dict) -> str:
    if "label" in spec:
        return spec["label"]
    if spec["name"] == "transfer":
        return f"transfer({attack_label(spec.get('attack', {'name': 'fgsm'}))})"
    if spec["name"] == "pgd":
        return f"pgd-{spec.get('steps', 40)}" + (f"x{spec['restarts']}" if spec.get("restarts", 1) > 1 else "")
    return spec["name"]


def build_attack(spec: dict, eps: float):
    spec = dict(spec)
    name = spec.pop("name")
    spec.pop("label", None)
    if name == "transfer":
        inner = dict(spec.pop("attack", {"name": "fgsm"}))
        return make_attack("transfer", source=spec.pop("source"), attack=build_attack(inner, eps))
    return make_attack(name, eps=eps, **spec)


def _spec_params(spec):
    return {k: (v if isinstance(v, (int, float, str, bool, list, dict, type(None))) else type(v).__name__)
            for k, v in spec.items()}


def _run_attack(attack, model, x, y, per_sample):
    """x_adv and a mask of solver failures; falls back to one image at a time when a batch fails."""
    failed = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    if not per_sample:
        try:
            return attack(model, x, y), failed
        except SolverFailure:
            pass
    out = x.clone()
    for i in range(len(y)):
        try:
            out[i:i + 1] = attack(model, x[i:i + 1], y[i:i + 1])
        except SolverFailure:
            failed[i] = True
    return out, failed


# ------------------------------------------------------------------------------------------- evaluation
def validate(x, y, eps_list, attacks):
    check_batch(x, y)
    eps_list = [check_eps(e, "eps_list entry") for e in eps_list]
    if not attacks:
        raise ConfigError("attacks", attacks, "a non-empty list of attack specs")
    for spec in attacks:
        if not isinstance(spec, dict) or "name" not in spec:
            raise ConfigError("attacks entry", spec, "a dict with at least a 'name' key")
        for e in eps_list or [0.0]:
            build_attack(spec, e)  # constructs (and so validates) every attack before any work
    return eps_list


def evaluate(model, x, y, eps_list, attacks, batch_size=128, cascade=True, per_sample=False, progress=True,
             seed=0, model_name=None):
    """Robust accuracy of ``model`` on (x, y) for each eps and attack. Returns a result dict (see module doc)."""
    with per_sample_solves(model):
        return _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name)


def _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name):
    eps_list = validate(x, y, eps_list, attacks)
    device = next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    t_start = time.time()
    torch.manual_seed(seed)
    clean_pred, clean_nfe = predict(model, x, batch_size, per_sample)
    correct = clean_pred == y
    rows, worst, masks = [], {}, {}
    bar = tqdm(total=len(eps_list) * len(attacks), desc=f"evaluate {model_name or type(model).__name__}",
               disable=not progress)
    for eps in eps_list:
        status = torch.where(correct, 0, torch.where(clean_pred < 0, 3, 2))  # index into STATUSES
        alive_all = correct.clone()
        for spec in attacks:
            t0 = time.time()
            attack = build_attack(spec, eps)
            alive = alive_all if cascade else correct.clone()
            idx = alive.nonzero().squeeze(1)
            broken = torch.zeros(len(y), dtype=torch.bool, device=device)
            failures = torch.zeros(len(y), dtype=torch.bool, device=device)
            nfes = []
            for i in range(0, len(idx), batch_size):
                b = idx[i:i + batch_size]
                x_adv, fail = _run_attack(attack, model, x[b], y[b], per_sample)
                assert (x_adv - x[b]).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
                pred, n = predict(model, x_adv, batch_size, per_sample)
                nfes += n
                fail = fail | (pred < 0)
                broken[b] = (pred != y[b]) | fail
                failures[b] = fail
            alive_all &= ~broken
            status[failures & (status == 0)] = 3
            status[broken & ~failures & (status == 0)] = 1
            acc_here = float((correct & ~broken).float().mean()) if not cascade else float(alive_all.float().mean())
            rows.append({"eps": eps, "attack": attack_label(spec), "params": _spec_params(spec) | {"eps": eps},
                         "accuracy": acc_here, "cumulative": cascade, "n_attacked": int(len(idx)),
                         "n_broken": int(broken.sum()), "solver_failures": int(failures.sum()),
                         "nfe_mean": (sum(nfes) / len(nfes)) if nfes else None,
                         "nfe_max": max(nfes) if nfes else None, "wall_s": time.time() - t0})
            bar.update(1)
        masks[eps] = alive_all.cpu()
        worst[eps] = {"accuracy": float(alive_all.float().mean()),
                      "counts": {s: int((status == k).sum()) for k, s in enumerate(STATUSES)}}
    bar.close()
    result = {
        "model": model_name or type(model).__name__, "n": len(y), "clean_accuracy": float(correct.float().mean()),
        "clean_solver_failures": int((clean_pred < 0).sum()),
        "clean_nfe_mean": (sum(clean_nfe) / len(clean_nfe)) if clean_nfe else None,
        "eps": eps_list, "cascade": cascade, "per_sample": per_sample, "rows": rows,
        "worst_case": [{"eps": e, **w} for e, w in worst.items()],
        "solver_failures_total": int(sum(r["solver_failures"] for r in rows)),
        "wall_s": time.time() - t_start,
    }
    result["_robust"] = masks  # per-point robust mask per eps (not written to JSON)
    return result


def accuracy_table(result) -> list:
    """Rows of (eps, attack, accuracy) plus the worst case, ready for pandas."""
    table = [{"eps": r["eps"], "attack": r["attack"], "accuracy": r["accuracy"]} for r in result["rows"]]
    table += [{"eps": w["eps"], "attack": "worst-case", "accuracy": w["accuracy"]} for w in result["worst_case"]]
    return table


def save_result(result, name: str, params: dict, seed=0, device=None, folder=None) -> Path:
    """Write ``<name>.json`` (full result + provenance) and ``<name>.csv`` (one row per eps x attack)."""
    folder = Path(folder or paths.results_dir())
    clean = {k: v for k, v in result.items() if not k.startswith("_")}
    clean["provenance"] = provenance(params, seed=seed, device=device, wall_time_s=result.get("wall_s"))
    path = write_json(folder / f"{name}.json", clean)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["model", "eps", "attack", "accuracy", "clean_accuracy", "n",
                                             "solver_failures", "nfe_mean", "wall_s"])
    writer.writeheader()
    for r in result["rows"]:
        writer.writerow({"model": result["model"], "eps": r["eps"], "attack": r["attack"], "accuracy": r["accuracy"],
                         "clean_accuracy": result["clean_accuracy"], "n": result["n"],
                         "solver_failures": r["solver_failures"], "nfe_mean": r["nfe_mean"], "wall_s": r["wall_s"]})
    write_text(folder / f"{name}.csv", buf.getvalue())
    return path
