"""Real evaluation pipelines of the paper's era, on natrob's own nets: precision x training length.

A *pipeline* is what a person could have run: the trained net, evaluated in float32, under bfloat16 autocast, or
under float16 autocast (AMP, the usual way to run on a GPU since 2020), with the attack's gradient taken through
that forward pass. :class:`natrob.harness.precision.AtPrecision` is such a model; the evaluation harness crafts and
judges through it, each image solved with its own adaptive step sizes (as one image alone; torchdiffeq's one step size
per batch, the paper's code, where a pipeline is called directly, as :func:`epoch_cell`'s batched FGSM does), so a
pipeline's Table 1 is measured, not assembled.

Per stored training epoch, :func:`epoch_cell` measures what decides the paper's FGSM there: summed learning rate,
margin percentiles, exactly-zero input gradients per gradient setting (:mod:`natrob.study.saturation`), FGSM under
float32 and AMP, and how well FGSM's direction agrees with PGD-40's perturbation. :func:`margin_trend` fits the median
margin against the summed learning rate and extrapolates it to the paper's (Table A1: Adam 1e-3, batch 32, 100
epochs of 60,000 images, halved at epoch 50: about 140).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from ..harness.precision import AtPrecision, Precision
from .saturation import CELL_GRADIENTS, check_gradient, input_gradients, margin_percentiles, margins
from ..stats import count

# the precisions of the real pipelines of the paper's era (a net run as trained, or under autocast)
PIPELINES = (Precision.FLOAT32, Precision.FLOAT16_AMP, Precision.BFLOAT16)
# what a pipeline may run in: a precision of the whole net (float16 copies are notebook 08's variant, not a pipeline)
PIPELINE_PRECISIONS = tuple(p for p in Precision if p is not Precision.FLOAT16)
PAPER_SUM_LR = 1e-3 * 1875 * 50 + 5e-4 * 1875 * 50  # Table A1: 60,000 / 32 steps per epoch, halved at epoch 50


def sum_lr(history: list, n_train: int, batch_size: int) -> list:
    """Summed learning rate after each epoch of a training ``history`` (its per-epoch 'lr'): steps per epoch
    (ceil(n_train / batch_size)) times the epoch's rate, accumulated. Adam's step is about lr per parameter, so
    this is how far the weights could have moved."""
    steps = math.ceil(n_train / batch_size)
    out, total = [], 0.0
    for h in history:
        total += steps * float(h["lr"])
        out.append(total)
    return out


def _cosine_rows(a, b):
    a, b = a.flatten(1).double(), b.flatten(1).double()
    na, nb = a.norm(dim=1), b.norm(dim=1)
    ok = (na > 0) & (nb > 0)
    return ((a * b).sum(1) / (na * nb))[ok]


def _fgsm_counts(model, x, y, grad, eps_list, correct, batch_size):
    from ..harness.prediction import predict
    out = []
    for e in eps_list:
        x_adv = (x + e * grad.nan_to_num(0.0).sign().to(x.dtype)).clamp(0, 1)
        pred, _ = predict(model, x_adv, batch_size)
        ok = torch.isfinite(grad.flatten(1)).all(1)
        out.append({"eps": float(e), "robust": count(int((correct & ok & (pred == y)).sum()), len(y))})
    return out


def epoch_cell(model, x, y, eps_list, paper_attack: dict, gradients=CELL_GRADIENTS, cos_n: int = 20,
               cos_eps: float = 0.3, batch_size: int = 20, seed: int = 0, memo: dict | None = None) -> dict:
    """What decides the paper's FGSM on one trained net (x: (n, C, H, W) in [0, 1], y: (n,) int64):

    - ``clean`` (count), ``margins`` (percentiles p2/p10/p50/p90/max of correctly classified points, float64);
    - ``zero_grad``: {gradient setting: count of correct points whose input gradient is exactly zero, each point alone};
    - ``fgsm``: {"float32": [...], "float16-amp": [...]}: FGSM at every eps of ``eps_list`` with the gradient of a
      batch of ``batch_size`` (shared step size, the paper's code), judged by the float32 model;
    - ``fgsm_pgd_cosine``: median (and p10) over the first ``cos_n`` correct points of the cosine between FGSM's
      step (sign of the float32 gradient) and the paper's PGD (``paper_attack``) perturbation at ``cos_eps``;
    - ``nfe``: forward NFE of the clean solve (batch of ``batch_size``).
    The FGSM and cosine columns say whether the gradient is *usable*, not only whether it is zero. ``memo``:
    :func:`natrob.study.saturation.input_gradients`'s, kept by the caller for this model (gradients computed before on
    the same points are not computed again)."""
    from ..harness.attack_runs import build_attack
    from ..harness.prediction import predict
    model.eval()
    pred, _ = predict(model, x, batch_size)
    correct = pred == y
    n = len(y)
    cell = {"clean": count(int(correct.sum()), n), "zero_grad": {}, "fgsm": {}}
    grads = {}
    for proto in gradients:
        proto = check_gradient(proto)
        g, logits = input_gradients(model, x, y, [1.0], proto, alone=True, batch_size=batch_size, memo=memo)
        zero = (g[1.0].flatten(1) == 0).all(1) & correct
        cell["zero_grad"][proto] = count(int(zero.sum()), n)
        if proto == Precision.FLOAT64.value:
            cell["margins"] = margin_percentiles(margins(logits, y)[correct])
    for proto in (Precision.FLOAT32, Precision.FLOAT16_AMP):
        g, _ = input_gradients(model, x, y, [1.0], proto, alone=False, batch_size=batch_size, memo=memo)
        grads[proto] = g[1.0]
        cell["fgsm"][proto.value] = _fgsm_counts(model, x, y, g[1.0], eps_list, correct, batch_size)
    idx = correct.nonzero().squeeze(1)[:cos_n]
    cos = torch.empty(0)
    if len(idx):
        torch.manual_seed(seed)
        attack = build_attack(dict(paper_attack), cos_eps)
        with torch.enable_grad():
            x_pgd = attack(model, x[idx], y[idx])
        cos = _cosine_rows(grads[Precision.FLOAT32][idx].sign(), x_pgd - x[idx])
    cell["fgsm_pgd_cosine"] = {"eps": float(cos_eps), "n": int(len(cos)),
                               "median": float(cos.median()) if len(cos) else None,
                               "p10": float(torch.quantile(cos, 0.1)) if len(cos) else None}
    with torch.no_grad():
        model(x[:batch_size])
    cell["nfe"] = getattr(model, "nfe_forward", None)
    return cell


def margin_trend(sum_lrs, medians, target: float = PAPER_SUM_LR) -> dict:
    """Least-squares fits of the median margin against the summed learning rate, linear (m = a + b * S) and
    logarithmic (m = a + b * ln S), each extrapolated to ``target`` (default the paper's summed rate, about 140)
    with a 95% prediction interval (t quantile on n - 2 degrees of freedom; None with fewer than 3 points).
    ``sum_lrs``, ``medians``: one value per stored epoch. Returns {"n", "target", "linear": {...},
    "log": {...}}, each {"slope", "intercept", "rss", "at_target", "interval"}. Raises ConfigError when the
    lengths differ or a summed rate is not positive."""
    s = np.asarray(sum_lrs, dtype=float)
    m = np.asarray(medians, dtype=float)
    if s.shape != m.shape:
        raise ConfigError("medians", len(m), f"one median per summed learning rate ({len(s)})")
    if (s <= 0).any():
        raise ConfigError("sum_lrs", s.tolist(), "positive summed learning rates")
    out = {"n": int(len(s)), "target": float(target)}
    for name, f in (("linear", lambda v: v), ("log", np.log)):
        out[name] = _fit(f(s), m, float(f(np.asarray(target))))
    return out


def _fit(u, m, u0) -> dict:
    n = len(u)
    if n < 2:
        return {"slope": None, "intercept": None, "rss": None, "at_target": None, "interval": None}
    A = np.stack([np.ones(n), u], 1)
    coef, *_ = np.linalg.lstsq(A, m, rcond=None)
    resid = m - A @ coef
    rss = float(resid @ resid)
    at = float(coef[0] + coef[1] * u0)
    interval = None
    if n >= 3:
        from scipy import stats
        s2 = rss / (n - 2)
        x0 = np.array([1.0, u0])
        cov = s2 * np.linalg.inv(A.T @ A)
        half = stats.t.ppf(0.975, n - 2) * math.sqrt(s2 + float(x0 @ cov @ x0))
        interval = [at - half, at + half]
    return {"slope": float(coef[1]), "intercept": float(coef[0]), "rss": rss, "at_target": at, "interval": interval}


def pipeline_table1(model, x, y, eps_list, paper_attack: dict, precision, scale: float = 1.0, seed: int = 0,
                    early_stop: bool = True, name: str | None = None) -> dict:
    """Table 1 (FGSM, the paper's PGD, PGD's random start alone) of ``model`` as a pipeline in ``precision`` would
    have measured it (crafted and judged through :class:`natrob.harness.precision.AtPrecision` by the harness, each
    image with its own step sizes), logits x ``scale``. Returns :func:`natrob.study.protocols.table1`'s dict plus
    "pipeline" (its description). Raises ConfigError for a precision outside :data:`PIPELINE_PRECISIONS`."""
    from .protocols import table1
    pipe = AtPrecision(model, precision, scale, allowed=PIPELINE_PRECISIONS)
    out = table1(pipe, x, y, eps_list, paper_attack, early_stop, seed=seed, name=name)
    out["pipeline"] = pipe.describe()
    return out

