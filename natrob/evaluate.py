"""Robust-accuracy harness: models x epsilons x attacks, batched, cascaded, failure-tolerant, resumable.

Attack specs are dicts such as ``{"name": "pgd", "steps": 40, "alpha": 0.01}`` (``eps`` is filled in per
radius; ``"alpha_rel": 0.25`` sets the step size to 0.25 * eps), ``{"name": "transfer", "source": model,
"attack": {"name": "fgsm"}}``, with optional ``"id"`` (a stable name checks select by), ``"role"`` (what the
attack is for: see ``natrob.audit.ROLES``) and ``"label"`` (for display). With ``cascade=True`` (AutoAttack
style) a later attack only runs on points still robust and each row reports what remains after it; with
``cascade=False`` every attack runs on every clean-correct point and rows report standalone accuracy.
``worst_case`` is the per-point minimum over the attacks.

Every accuracy is stored as a count value (:func:`natrob.stats.count`: ``k`` of ``n`` points, the display-only
``accuracy`` and the 95% Wilson interval ``ci95``): ``clean`` of the result, ``robust`` of each row and of each
``worst_case`` entry. Comparisons use ``k`` and ``n``.

ODE nets (models with ``configure_solver``) are switched to per-sample step sizes for the duration of
``evaluate`` and ``predict`` (and switched back after), so an image's prediction and its adversarial example
never depend on its batch-mates.

Nothing a model does stops an evaluation. ODE solver failures (step-size underflow, non-finite state, NFE
cap) are retried one image at a time and an image whose solve still fails gets status ``solver_failure``
and counts as not robust. Any other exception raised inside an attack is recorded in that attack's row
(``error``) and the evaluation goes on without it; an exception on the clean images is recorded in the
result. Each finished (model, attack, eps, points, seed) is stored (``natrob.evalstore``), so a re-run
after a kill computes only what was missing; every attack is seeded from (seed, attack, eps), so the numbers
do not depend on which attacks ran before it in this process.
"""
from __future__ import annotations

import hashlib
import json
import time

import torch
from tqdm.auto import tqdm

from . import evalstore
from .attacks import make_attack
from .attacks.base import check_batch
from .errors import ConfigError, SolverFailure, check_eps
from .models.odenet import solver_settings
from .stats import count

STATUSES = ("robust", "broken", "misclassified", "solver_failure")


# ------------------------------------------------------------------------------------------- prediction
def _nfe(model):
    return getattr(model, "nfe_forward", None)


def per_sample_solves(model):
    """Within this block an ODE net solves with a step size per sample (batch-independent); other models as is."""
    return solver_settings(model, per_sample=True, optional=True)


@torch.no_grad()
def _predict_once(model, x, batch_size, per_sample):
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
            p, n = _predict_once(model, xb, 1, True)
            preds.append(p), nfes.extend(n)
    return torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=x.device), [n for n in nfes if n is not None]


def predict(model, x, batch_size=256, per_sample=False, draws=1):
    """Predicted labels (-1 where the ODE solver failed on that image) and the list of forward NFEs.

    ``draws > 1`` is for randomized models: the prediction is the majority vote over ``draws`` forward passes
    (ties go to the lower class index; a failed solve casts no vote). ``per_sample=True`` feeds one image at a
    time; ODE nets solve with per-sample step sizes either way."""
    with per_sample_solves(model):
        return _predict(model, x, batch_size, per_sample, draws)


def _predict(model, x, batch_size, per_sample, draws):
    model.eval()
    if draws <= 1:
        return _predict_once(model, x, batch_size, per_sample)
    votes, nfes = None, []
    for _ in range(draws):
        p, n = _predict_once(model, x, batch_size, per_sample)
        nfes += n
        ok = p >= 0
        if votes is None:
            votes = torch.zeros(len(x), int(p.max().item()) + 1 if ok.any() else 1, dtype=torch.long, device=x.device)
        if ok.any() and int(p.max()) >= votes.shape[1]:
            votes = torch.cat([votes, votes.new_zeros(len(x), int(p.max()) + 1 - votes.shape[1])], 1)
        votes[ok.nonzero().squeeze(1), p[ok]] += 1
    pred = votes.argmax(1)
    pred[votes.sum(1) == 0] = -1
    return pred, nfes


def batch_disagreement(model, x, batch_size=256) -> dict:
    """How often batched and one-at-a-time predictions differ, with the solver's usual shared step size per batch
    (``disagree``, what the harness avoids) and with per-sample step sizes (``disagree_per_sample``, how the
    harness judges: expected 0) on the same images, and the largest logit difference of each."""
    model.eval()
    out = {"n": len(x)}
    for key, mode in (("", False), ("_per_sample", True)):
        old = model.configure_solver(per_sample=mode) if hasattr(model, "configure_solver") else None
        try:
            with torch.no_grad():
                batched = torch.cat([model(x[i:i + batch_size]) for i in range(0, len(x), batch_size)])
                single = torch.cat([model(x[i:i + 1]) for i in range(len(x))])
        finally:
            if old is not None:
                model.configure_solver(per_sample=old["per_sample"])
        out[f"disagree{key}"] = int((batched.argmax(1) != single.argmax(1)).sum())
        out[f"max_logit_diff{key}"] = float((batched - single).abs().max())
    out["rate"] = out["disagree"] / len(x) if len(x) else 0.0
    return out


# ------------------------------------------------------------------------------------------- attacks
def attack_label(spec: dict) -> str:
    """The display label of an attack spec (its ``label``, or one made from its name and steps)."""
    if "label" in spec:
        return spec["label"]
    if spec["name"] == "transfer":
        return f"transfer({attack_label(spec.get('attack', {'name': 'fgsm'}))})"
    if spec["name"] == "pgd":
        return f"pgd-{spec.get('steps', 40)}" + (f"x{spec['restarts']}" if spec.get("restarts", 1) > 1 else "")
    return spec["name"]


def attack_id(spec: dict) -> str:
    """The stable id of an attack spec (its ``id``, or its label): what checks and caches key on."""
    return spec.get("id") or attack_label(spec)


def build_attack(spec: dict, eps: float):
    """The attack object a spec describes at radius ``eps`` (``alpha_rel`` resolved to ``alpha_rel * eps``)."""
    spec = dict(spec)
    name = spec.pop("name")
    for meta in ("label", "id", "role"):
        spec.pop(meta, None)
    if "alpha_rel" in spec:
        rel = spec.pop("alpha_rel")
        if not isinstance(rel, (int, float)) or not rel > 0:
            raise ConfigError("alpha_rel", rel, "a positive number (step size as a fraction of eps)")
        spec["alpha"] = max(rel * eps, 1e-4)
    if name == "transfer":
        inner = dict(spec.pop("attack", {"name": "fgsm"}))
        return make_attack("transfer", source=spec.pop("source"), attack=build_attack(inner, eps))
    return make_attack(name, eps=eps, **spec)


def _spec_params(spec):
    return {k: (v if isinstance(v, (int, float, str, bool, list, type(None))) else
                _spec_params(v) if isinstance(v, dict) else type(v).__name__)
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


def _attack_points(attack, model, x, y, idx, eps, batch_size, per_sample, draws) -> dict:
    """Attack the points ``idx``: which of them broke, which had solver failures, NFEs; or the error raised."""
    broken, failures, nfes, t0 = [], [], [], time.time()
    try:
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            x_adv, fail = _run_attack(attack, model, x[b], y[b], per_sample)
            if not ((x_adv - x[b]).abs().max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1):
                raise AssertionError(f"{attack!r} left the eps-ball or [0, 1]")  # a natrob bug, never expected
            pred, n = predict(model, x_adv, batch_size, per_sample, draws)
            nfes += n
            fail = fail | (pred < 0)
            broken += b[(pred != y[b]) | fail].tolist()
            failures += b[fail].tolist()
    except Exception as exc:  # a user's model must not stop the evaluation: record, go on without this attack
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "broken": [], "failures": [], "nfes": [],
                "wall_s": time.time() - t0}
    return {"error": None, "broken": broken, "failures": failures, "nfes": nfes, "wall_s": time.time() - t0}


# ------------------------------------------------------------------------------------------- evaluation
def validate(x, y, eps_list, attacks):
    """Check inputs, radii and attack specs before any work; returns the radii as floats."""
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


def _seed_for(seed, spec_fp, eps) -> int:
    blob = json.dumps([seed, spec_fp, eps], sort_keys=True, default=str).encode()
    return int(hashlib.sha256(blob).hexdigest()[:8], 16)


def _device(model, x):
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return x.device


def evaluate(model, x, y, eps_list, attacks, batch_size=128, cascade=True, per_sample=False, progress=True,
             seed=0, model_name=None, draws=1, cache=True):
    """Robust accuracy of ``model`` on (x, y) for each eps and attack. Returns a result dict (see module doc).

    Arguments: ``eps_list`` L-inf radii in pixel space; ``attacks`` attack specs; ``cascade`` AutoAttack-style
    cascade (default) or standalone attacks; ``per_sample`` one image per forward pass; ``draws`` forward passes
    per judgement (majority vote, for randomized models); ``cache`` store and reuse finished attacks."""
    with per_sample_solves(model):
        return _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name,
                         draws, cache)


def _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name, draws,
              cache):
    eps_list = validate(x, y, eps_list, attacks)
    device = _device(model, x)
    x, y = x.to(device), y.to(device)
    n, t_start = len(y), time.time()
    name = model_name or type(model).__name__
    base_key = {"model": evalstore.model_fingerprint(model), "x": evalstore.tensor_hash(x), "y": evalstore.tensor_hash(y),
                "seed": seed, "batch_size": batch_size, "per_sample": per_sample, "draws": draws, "cascade": cascade}
    torch.manual_seed(seed)
    try:
        clean_pred, clean_nfe = predict(model, x, batch_size, per_sample, draws)
        clean_error = None
    except Exception as exc:  # the model cannot even classify clean images: record it, attack nothing
        clean_pred, clean_nfe = torch.full_like(y, -2), []
        clean_error = f"{type(exc).__name__}: {exc}"[:500]
    correct = clean_pred == y
    rows, worst, masks = [], [], {}
    bar = tqdm(total=len(eps_list) * len(attacks), desc=f"evaluate {name}", disable=not progress)
    for eps in eps_list:
        status = torch.where(correct, 0, torch.where(clean_pred == -1, 3, 2))  # index into STATUSES
        alive_all, errors = correct.clone(), []
        for spec in attacks:
            spec_fp = evalstore.spec_fingerprint(spec)
            alive = alive_all if cascade else correct
            idx = alive.nonzero().squeeze(1)
            k = evalstore.key(**base_key, spec=spec_fp, eps=eps, idx=evalstore.tensor_hash(idx))
            entry = evalstore.load(k) if cache else None
            cached = entry is not None
            if entry is None:
                torch.manual_seed(_seed_for(seed, spec_fp, eps))
                entry = _attack_points(build_attack(spec, eps), model, x, y, idx, eps, batch_size, per_sample, draws)
                if cache and entry["error"] is None:
                    evalstore.store(k, entry)
            broken = torch.zeros(n, dtype=torch.bool, device=device)
            failures = torch.zeros(n, dtype=torch.bool, device=device)
            broken[entry["broken"]] = True
            failures[entry["failures"]] = True
            if entry["error"] is None:
                alive_all &= ~broken
                status[failures & (status == 0)] = 3
                status[broken & ~failures & (status == 0)] = 1
                robust = int(alive_all.sum()) if cascade else int((correct & ~broken).sum())
            else:
                robust = None
                errors.append(attack_label(spec))
            nfes = entry["nfes"]
            rows.append({"eps": eps, "attack": attack_label(spec), "id": attack_id(spec), "role": spec.get("role"),
                         "params": _spec_params(spec) | {"eps": eps}, "robust": count(robust, n), "cumulative": cascade,
                         "n_attacked": int(len(idx)), "n_broken": int(broken.sum()), "solver_failures": int(failures.sum()),
                         "nfe_mean": (sum(nfes) / len(nfes)) if nfes else None, "nfe_max": max(nfes) if nfes else None,
                         "wall_s": entry["wall_s"], "error": entry["error"], "cached": cached})
            bar.update(1)
        masks[eps] = alive_all.cpu()
        worst.append({"eps": eps, "robust": count(int(alive_all.sum()), n), "attacks_failed": errors,
                      "counts": {s: int((status == i).sum()) for i, s in enumerate(STATUSES)}})
    bar.close()
    result = {
        "model": name, "n": n, "clean": count(int(correct.sum()), n),
        "clean_error": clean_error, "clean_solver_failures": int((clean_pred == -1).sum()),
        "clean_nfe_mean": (sum(clean_nfe) / len(clean_nfe)) if clean_nfe else None,
        "eps": eps_list, "cascade": cascade, "per_sample": per_sample, "draws": draws, "rows": rows,
        "worst_case": worst, "solver_failures_total": int(sum(r["solver_failures"] for r in rows)),
        "errors": [{"eps": r["eps"], "attack": r["attack"], "error": r["error"]} for r in rows if r["error"]],
        "wall_s": time.time() - t_start,
    }
    result["_robust"] = masks  # per-point robust mask per eps (not written to JSON)
    return result


def csv_rows(result) -> list:
    """One flat row per (eps, attack) for a CSV beside the result JSON."""
    return [{"model": result["model"], "eps": r["eps"], "attack": r["attack"], "id": r["id"], "robust": r["robust"]["k"],
             "n": r["robust"]["n"], "accuracy": r["robust"]["accuracy"], "ci95_low": (r["robust"]["ci95"] or [None])[0],
             "ci95_high": (r["robust"]["ci95"] or [None, None])[1], "clean_correct": result["clean"]["k"],
             "solver_failures": r["solver_failures"], "nfe_mean": r["nfe_mean"], "wall_s": r["wall_s"], "error": r["error"]}
            for r in result["rows"]]
