"""Prediction: the labels a model gives, as the harness (:mod:`natrob.harness.evaluate`) and the audit judge them.

:func:`predict` returns int64 labels with the codes of :mod:`natrob.attacks.contract` below 0 (``SOLVER_FAILED``
where the ODE solver failed on an image, ``NON_FINITE`` where its logits hold NaN or inf): never a class, never
robust. ODE nets (models with ``configure_solver``) are switched to per-sample step sizes while they predict
(:func:`per_sample_solves`), so an image's prediction never depends on its batch-mates;
:func:`batch_disagreement` measures how much it would. :func:`model_device` is the device a model computes on.
"""
from __future__ import annotations

import torch

from ..attacks.contract import NON_FINITE, SOLVER_FAILED, predicted
from ..errors import SolverFailure
from ..models.odenet import solver_settings


def model_device(model, x=None) -> torch.device:
    """The device of ``model``'s parameters; for a model without parameters, that of ``x`` (the CPU without one)."""
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return x.device if x is not None else torch.device("cpu")


def _nfe(model):
    return getattr(model, "nfe_forward", None)


def per_sample_solves(model):
    """Within this block an ODE net solves with a step size per sample (batch-independent); other models as is."""
    return solver_settings(model, per_sample=True, optional=True)


def labels_of(logits) -> torch.Tensor:
    """Predicted labels of a (n, classes) logit tensor; ``NON_FINITE`` (-3) where a row holds NaN or inf, so
    that a non-finite prediction never matches a label (the argmax of a NaN row would be class 0)."""
    if not torch.is_tensor(logits) or logits.dim() != 2:
        raise TypeError(f"the model returned {type(logits).__name__} "
                        f"{tuple(logits.shape) if torch.is_tensor(logits) else ''}, not (n, classes) logits")
    return predicted(logits)


@torch.no_grad()
def _predict_once(model, x, batch_size, per_sample):
    preds, nfes = [], []
    step = 1 if per_sample else batch_size
    for i in range(0, len(x), step):
        xb = x[i:i + step]
        try:
            preds.append(labels_of(model(xb)))
            nfes.append(_nfe(model))
        except SolverFailure as exc:
            if getattr(exc, "logits", None) is not None:  # per-sample solve: only the failed images lost
                preds.append(labels_of(exc.logits).masked_fill(exc.failed, SOLVER_FAILED))
                nfes.append(_nfe(model))
                continue
            if len(xb) == 1:
                preds.append(torch.full((1,), SOLVER_FAILED, dtype=torch.long, device=x.device))
                continue
            p, n = _predict_once(model, xb, 1, True)
            preds.append(p), nfes.extend(n)
    labels = torch.cat(preds) if preds else torch.empty(0, dtype=torch.long, device=x.device)
    return labels, [n for n in nfes if n is not None]


def predict(model, x, batch_size=256, per_sample=False, draws=1):
    """Predicted labels (n,) int64 and the list of forward NFEs: -1 where the ODE solver failed on that image,
    -3 where the logits were not finite.

    ``draws > 1`` is for randomized models: the prediction is the majority vote over ``draws`` forward passes
    (ties go to the lower class index; a failed solve or a non-finite row casts no vote). ``per_sample=True``
    feeds one image at a time; ODE nets solve with per-sample step sizes either way."""
    with per_sample_solves(model):
        return _predict(model, x, batch_size, per_sample, draws)


def _predict(model, x, batch_size, per_sample, draws):
    model.eval()
    if draws <= 1:
        return _predict_once(model, x, batch_size, per_sample)
    votes, nfes = None, []
    non_finite = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    for _ in range(draws):
        p, n = _predict_once(model, x, batch_size, per_sample)
        nfes += n
        non_finite |= p == NON_FINITE
        ok = p >= 0
        if votes is None:
            votes = torch.zeros(len(x), int(p.max().item()) + 1 if ok.any() else 1, dtype=torch.long, device=x.device)
        if ok.any() and int(p.max()) >= votes.shape[1]:
            votes = torch.cat([votes, votes.new_zeros(len(x), int(p.max()) + 1 - votes.shape[1])], 1)
        votes[ok.nonzero().squeeze(1), p[ok]] += 1
    pred = votes.argmax(1)
    none = votes.sum(1) == 0
    pred[none] = SOLVER_FAILED
    pred[none & non_finite] = NON_FINITE
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
