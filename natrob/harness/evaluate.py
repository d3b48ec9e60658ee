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

Before any attack, natrob.attacks.contract checks the model's output on a few images (a tensor of logits of shape
(n, classes); images cast to the parameters' dtype for a float64/bfloat16 model that needs it) and whether
its predictions depend on their batch-mates; a batch-dependent model is judged one image at a time
(``per_sample`` True, ``batch_dependence`` says why). A model that cannot be evaluated (its forward pass
raises or returns something other than logits, every clean ODE solve fails, every clean logit row is
non-finite) gets ``evaluable`` False, ``not_evaluable`` (the reason), every count "not measured" (``clean`` and
each ``robust`` are ``count(None, n)``: ``k`` None, never 0) and every row's ``error`` saying so. Labels may be
of any integer dtype.

Each point ends each eps with one :class:`Status` (robust, broken, misclassified, solver_failure, non_finite;
``worst_case[...]["counts"]`` counts them). Prediction (:func:`predict`) lives in :mod:`natrob.harness.prediction`.
A prediction whose logits hold NaN or inf is never a class (status ``non_finite``, counted per row as
``non_finite``): it is never correct and never robust. PGD rows carry Pintor et al.'s indicators of attack
failure, ``silent_success`` (points an iterate fooled that the returned point leaves robust) and
``incomplete_optimisation`` (points whose loss still rose over the last steps); AutoAttack rows carry its
own warnings (``warnings``) and the components the class count ruled out (``skipped``). Every row says how far
its adversarial images went: ``max_linf_pixel`` (the largest pixel change) and ``outside_box`` (some pixel left
[0, 1], which only a protocol variant that is NOT the correct threat model allows,
:mod:`natrob.attacks.variant`); each batch is checked against the attack's own threat model
(``Attack.admits``).

Nothing a model does stops an evaluation. ODE solver failures (step-size underflow, non-finite state, NFE
cap) are retried one image at a time and an image whose solve still fails gets status ``solver_failure``
and counts as not robust. Any other exception raised inside an attack is recorded in that attack's row
(``error``) and the evaluation goes on without it; an exception on the clean images is recorded in the
result. Each finished (model, attack, eps, points, seed) is stored (``natrob.harness.evalstore``), so a re-run
after a kill computes only what was missing; every attack is seeded from (seed, attack, eps), so the numbers
do not depend on which attacks ran before it in this process. A model the store cannot fingerprint is
evaluated uncached, and ``cache`` says so ("off: <why>").
"""
from __future__ import annotations

import enum
import hashlib
import json
import time

import torch
from tqdm.auto import tqdm

from . import evalstore
from ..attacks.base import check_batch
from ..attacks.contract import NON_FINITE, NOT_PREDICTED, SOLVER_FAILED, Prepared, prepare
from ..errors import ConfigError, check_eps
from .attack_runs import attack_label, attack_points, build_attack
# csv_rows and unattacked_row are re-exported: callers name them from the harness
from .evalrows import csv_rows, marks_of, not_evaluable, result_of, row, unattacked_row  # noqa: F401
from .prediction import model_device, per_sample_solves, predict
from ..stats import count


class Status(enum.IntEnum):
    """What happened to one point at one eps (``worst_case[...]["counts"]`` is keyed by ``key``)."""
    ROBUST = 0          # clean-correct, and no attack that finished fooled it
    BROKEN = 1          # clean-correct, and some attack fooled it
    MISCLASSIFIED = 2   # wrong on the clean image: never attacked
    SOLVER_FAILURE = 3  # the ODE solver failed on it (clean or adversarial): never robust
    NON_FINITE = 4      # its logits held NaN or inf (clean or adversarial): never robust

    @property
    def key(self) -> str:
        return self.name.lower()


STATUSES = tuple(s.key for s in Status)  # ("robust", "broken", "misclassified", "solver_failure", "non_finite")


# ------------------------------------------------------------------------------------------- evaluation
def validate(x, y, eps_list, attacks):
    """Check inputs, radii and attack specs before any work; returns the radii as floats. Raises ConfigError
    for non-float images, non-integer labels, radii outside [0, 1] and malformed specs."""
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


def evaluate(model, x, y, eps_list, attacks, batch_size=128, cascade=True, per_sample=False, progress=True,
             seed=0, model_name=None, draws=1, cache=True):
    """Robust accuracy of ``model`` on (x, y) for each eps and attack. Returns a result dict (see module doc).

    Arguments: ``x`` (n, C, H, W) floating images in [0, 1]; ``y`` (n,) labels of any integer dtype;
    ``eps_list`` L-inf radii in pixel space; ``attacks`` attack specs; ``cascade`` AutoAttack-style cascade
    (default) or standalone attacks; ``per_sample`` one image per forward pass (also chosen automatically for a
    model whose predictions depend on their batch); ``draws`` forward passes per judgement (majority vote, for
    randomized models); ``cache`` store and reuse finished attacks. Raises ConfigError for bad arguments, never
    for what the model does: a model that cannot be evaluated gets ``evaluable`` False and ``not_evaluable``
    (the reason), and no counts."""
    with per_sample_solves(model):
        return _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name,
                         draws, cache)


class _Run:
    """One evaluation's fixed inputs: the contracted model, the points, the harness settings, the store key."""

    def __init__(self, model, x, y, prep: Prepared, batch_size, cascade, per_sample, seed, draws, cache):
        self.model, self.x, self.y, self.n, self.prep = prep.model, x, y, len(y), prep
        self.batch_size, self.cascade, self.seed, self.draws = batch_size, cascade, seed, draws
        self.per_sample = per_sample or prep.batch_dependent  # batch-dependent models: one image at a time
        # PGD may stop attacking a point at its first fooling iterate (PGD.freeze_fooled) where neither that
        # iterate's judgement nor the other points' gradients depend on the rest of the batch: a deterministic model
        # (the batch probe could decide) attacked one image at a time, or one that does not couple its batch (a
        # model declaring ``batch_coupled``, e.g. an ODE net solved with one step size per batch, is left whole)
        self.freeze = draws == 1 and bool(prep.batch.get("probed")) and (
            self.per_sample or not getattr(model, "batch_coupled", False))
        # PGD may end a run at a fixed point (PGD.stop_stalled: a step that moved nothing repeats forever) where
        # the same batch always gives the same logits: the probe's two passes were bit-identical
        self.stall = draws == 1 and bool(prep.batch.get("repeatable"))
        fp, why = evalstore.model_fingerprint(model, reason=True) if cache else (None, "cache=False")
        self.cache_note = "on" if fp else f"off: {why}"
        self.base_key = None if fp is None else {
            "model": fp, "input_cast": prep.output.get("input_cast"),
            "x": evalstore.tensor_hash(x), "y": evalstore.tensor_hash(y), "seed": seed, "batch_size": batch_size,
            "per_sample": self.per_sample, "draws": draws, "cascade": cascade}

    def entry(self, spec, eps, idx) -> tuple:
        """(entry, cached): a stored finished attack, or the attack run now (and stored if it finished)."""
        spec_fp = evalstore.spec_fingerprint(spec)
        cacheable = self.base_key is not None and evalstore.cacheable(spec_fp)
        k = evalstore.key(**self.base_key, spec=spec_fp, eps=eps, idx=evalstore.tensor_hash(idx)) if cacheable else None
        entry = evalstore.load(k) if k else None
        if entry is not None:
            return entry, True
        torch.manual_seed(_seed_for(self.seed, spec_fp, eps))
        attack = build_attack(spec, eps, freeze_fooled=self.freeze, stop_stalled=self.stall)
        entry = attack_points(attack, self.model, self.x, self.y, idx, eps, self.batch_size, self.per_sample,
                              self.draws)
        if k and entry["error"] is None:
            evalstore.store(k, entry)
        return entry, False


def _evaluate(model, x, y, eps_list, attacks, batch_size, cascade, per_sample, progress, seed, model_name, draws,
              cache):
    eps_list = validate(x, y, eps_list, attacks)
    device = model_device(model, x)
    x, y = x.to(device), y.to(device).long()
    name, t_start = model_name or type(model).__name__, time.time()
    prep = prepare(model, x, y)
    run = _Run(model, x, y, prep, batch_size, cascade, per_sample, seed, draws, cache)
    torch.manual_seed(seed)
    clean_pred, clean_nfe, clean_error = _clean(run) if prep.evaluable else (None, [], None)
    reason = prep.reason or _unevaluable(clean_pred, clean_error, run.n)
    if reason is not None:
        return not_evaluable(name, run, eps_list, attacks, reason, clean_pred, t_start)
    correct = clean_pred == y
    rows, worst, masks = [], [], {}
    bar = tqdm(total=len(eps_list) * len(attacks), desc=f"evaluate {name}", disable=not progress)
    for eps in eps_list:
        eps_rows, w, masks[eps] = _eps_pass(run, eps, attacks, clean_pred, correct, bar)
        rows += eps_rows
        worst.append(w)
    bar.close()
    result = result_of(name, run, eps_list, rows, worst, clean_pred, clean_nfe, clean_error, t_start)
    result["_robust"] = masks  # per-point robust mask per eps (not written to JSON)
    return result


def _clean(run):
    try:
        pred, nfe = predict(run.model, run.x, run.batch_size, run.per_sample, run.draws)
        return pred, nfe, None
    except Exception as exc:  # the model cannot even classify clean images: record it, attack nothing
        return torch.full_like(run.y, NOT_PREDICTED), [], f"{type(exc).__name__}: {exc}"[:500]


def _unevaluable(clean_pred, clean_error, n) -> str | None:
    """Why the clean pass leaves nothing to measure, or None."""
    if clean_error is not None:
        return f"the forward pass on the clean images raised {clean_error}"
    if n and bool((clean_pred == SOLVER_FAILED).all()):
        return f"the ODE solver failed on every clean image ({n} of {n})"
    if n and bool((clean_pred == NON_FINITE).all()):
        return f"the logits are non-finite (NaN or inf) on every clean image ({n} of {n})"
    return None


def _clean_status(clean_pred, correct) -> torch.Tensor:
    """Each point's :class:`Status` before any attack: ROBUST if clean-correct, SOLVER_FAILURE or NON_FINITE if its
    clean prediction is that code, MISCLASSIFIED otherwise."""
    status = torch.full_like(clean_pred, Status.MISCLASSIFIED)
    status[clean_pred == SOLVER_FAILED] = Status.SOLVER_FAILURE
    status[clean_pred == NON_FINITE] = Status.NON_FINITE
    status[correct] = Status.ROBUST  # a correct prediction is a class, never one of the codes above
    return status


def _mark_attacked(status, marks) -> None:
    """Update ``status`` in place with one finished attack: of the points still ROBUST, a solver failure becomes
    SOLVER_FAILURE, else non-finite logits NON_FINITE, else a fooled point BROKEN. A status other than ROBUST is
    final (the first attack that took a point decides why)."""
    robust = status == Status.ROBUST
    failed = marks["failures"] & robust
    non_finite = marks["non_finite"] & robust & ~failed
    status[failed] = Status.SOLVER_FAILURE
    status[non_finite] = Status.NON_FINITE
    status[marks["broken"] & robust & ~failed & ~non_finite] = Status.BROKEN


def _eps_pass(run, eps, attacks, clean_pred, correct, bar):
    """Every attack at one eps: its rows, the worst case and the per-point robust mask."""
    status = _clean_status(clean_pred, correct)
    alive_all, errors, rows = correct.clone(), [], []
    for spec in attacks:
        alive = alive_all if run.cascade else correct
        idx = alive.nonzero().squeeze(1)
        entry, cached = run.entry(spec, eps, idx)
        marks = marks_of(entry, run.n, run.x.device)
        if entry["error"] is None:
            alive_all &= ~marks["broken"]
            _mark_attacked(status, marks)
            robust = int(alive_all.sum()) if run.cascade else int((correct & ~marks["broken"]).sum())
        else:
            robust = None
            errors.append(attack_label(spec))
        rows.append(row(spec, eps, run, entry, marks, robust=robust, n_attacked=len(idx), cached=cached))
        bar.update(1)
    worst = {"eps": eps, "robust": count(int(alive_all.sum()), run.n), "attacks_failed": errors,
             "counts": {s.key: int((status == s).sum()) for s in Status}}
    return rows, worst, alive_all.cpu()


