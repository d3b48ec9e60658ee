"""When does the paper's attack stop receiving a gradient? A saturation map, measured on a trained net.

Cross-entropy's input gradient is ``J^T (softmax(z) - onehot(y))``: once the logit margin m = z_y - max_{j!=y} z_j
is large enough, ``softmax(z) - onehot(y)`` rounds to zero, in float32 at about m = 104 (87 with denormals
flushed), in float64 at about 745, and FGSM's sign step vanishes. Under float16 autocast (AMP) the backward pass
through the float16 layers flushes everything below 6e-8, so it stops far earlier. A longer-trained net has larger
margins (``../shared`` notes: margins grow with the summed learning rate), so the question "would the paper's
pipeline have seen a gradient?" is a question of margin x precision.

This module takes a trained net, multiplies its logits by K = 1, 2, 4, ... (the net's Jacobian is unchanged, only
the margins grow; :class:`ScaledLogits`) and measures, per way of taking the gradient (:data:`GRADIENTS`: a
precision of :mod:`natrob.harness.precision`, or float32 cross-entropy of probabilities) and K:

- the share of points whose input gradient is exactly zero **alone** (each point solved with its own step sizes,
  so its gradient comes from its own loss only: natrob's per-sample solve, which equals a batch of one) and
  **batched** (one shared adaptive step size per batch, as torchdiffeq solves and the paper's code ran);
- how much of each point's batched gradient is its own: the cosine between the batched gradient and the point's
  alone gradient in float64 (the reference). In a batch a saturated point still receives ~1e-34 through the
  shared step size, from its batch-mates' losses: FGSM then steps along another point's gradient;
- FGSM (the paper's attack, eps from ``eps_list``) robust counts with the gradient taken alone and batched,
  judged by the float32 model (K changes no prediction).

Sources: the paper, "Towards Natural Robustness Against Adversarial Examples" (Table 1, its FGSM/PGD on MNIST);
float formats: IEEE 754 (float16 smallest subnormal 6e-8; float32 1.4e-45; float64 4.9e-324).
"""
from __future__ import annotations

import contextlib
import hashlib

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..errors import ConfigError, SolverFailure
from ..harness.precision import DESCRIPTIONS, Precision, at_precision
from ..harness.prediction import model_device, per_sample_solves, predict
from ..stats import count


# the map's ways of taking the attack's gradient: every precision of natrob.harness.precision but the float16 copy
# (notebook 08's variant), and float32 cross-entropy of softmax outputs (a loss, not a precision); result files name
# them so
PROBABILITIES = "probabilities"
GRADIENTS = (Precision.FLOAT32.value, PROBABILITIES, Precision.BFLOAT16.value, Precision.FLOAT16_AMP.value,
             Precision.FLOAT16_AMP_CPU.value, Precision.FLOAT64.value)
GRADIENT_DESCRIPTIONS = {PROBABILITIES: "cross-entropy taken of softmax probabilities (a model that ends in softmax), "
                                 "float32", **{p.value: d for p, d in DESCRIPTIONS.items() if p.value in GRADIENTS}}
# the per-epoch cells' gradients: the CPU kernels' AMP costs 10-20x the others and is measured in the map only
CELL_GRADIENTS = tuple(g for g in GRADIENTS if g != Precision.FLOAT16_AMP_CPU.value)
MARGIN_PERCENTILES = (2, 10, 50, 90, 100)


def check_gradient(name) -> str:
    """``name`` (a :class:`natrob.harness.precision.Precision` or a string) as one of :data:`GRADIENTS`; raises
    ConfigError naming the allowed values."""
    value = getattr(name, "value", name)
    if value not in GRADIENTS:
        raise ConfigError("gradient", value, "one of " + ", ".join(GRADIENTS))
    return value


def gradient_precision(name) -> Precision:
    """The precision a gradient setting runs the net in (float32 for 'probabilities')."""
    value = check_gradient(name)
    return Precision.FLOAT32 if value == PROBABILITIES else Precision(value)


class ScaledLogits(nn.Module):
    """``K * model(x)``: the same classifier (same predictions, same Jacobian direction) with every logit margin
    multiplied by ``K`` (> 0). Logits in float16/bfloat16 are taken to float32 first, as AMP's loss is."""

    def __init__(self, model, scale: float):
        super().__init__()
        if not scale > 0:
            raise ConfigError("scale", scale, "a positive number (the factor on every logit)")
        self.model, self.scale = model, float(scale)

    def forward(self, x):
        z = self.model(x)
        return self.scale * (z.float() if z.dtype in (torch.float16, torch.bfloat16) else z)


def margins(logits, y) -> torch.Tensor:
    """Logit margin per point, z_y - max_{j != y} z_j (float, (n,)); positive where the point is classified
    correctly. ``logits``: (n, classes); ``y``: (n,) int64."""
    logits = logits.detach().double()
    idx = torch.arange(len(y), device=logits.device)
    other = logits.clone()
    other[idx, y] = -float("inf")
    return logits[idx, y] - other.max(1).values


def margin_percentiles(m, pcts=MARGIN_PERCENTILES) -> dict:
    """{"p2", "p10", "p50", "p90", "max"} of the margins of correctly classified points (m > 0), None if none."""
    m = torch.as_tensor(m, dtype=torch.float64)
    m = m[m > 0]
    out = {}
    for p in pcts:
        key = "max" if p == 100 else f"p{p}"
        out[key] = float(torch.quantile(m, p / 100)) if len(m) else None
    return out


def _loss(logits, y, scale, gradient):
    z = scale * (logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits)
    if gradient == PROBABILITIES:
        z = z.softmax(1)
    return F.cross_entropy(z, y, reduction="sum")


def input_gradients(model, x, y, scales, gradient, alone: bool, batch_size: int = 20, memo: dict | None = None):
    """Input gradients of the summed cross-entropy of ``K * logits`` for every K of ``scales``, taken as ``gradient``
    (one of :data:`GRADIENTS`).

    ``alone`` True: per-sample step sizes (each point's gradient comes from its own loss; equal to a batch of
    one); False: one shared adaptive step size per batch of ``batch_size`` (the paper's code). One forward pass
    per batch serves every K (the net and its solve do not depend on K). Returns ({K: (n, C, H, W) float64
    gradients, NaN rows where the solve failed}, (n, classes) float64 unscaled logits), shared with ``memo``.

    ``memo``: a dict the caller keeps for this one ``model`` and does not change in between: a call with the same
    gradient setting, solve mode, batch size and points whose scales it already holds returns those gradients without
    solving again (notebook 09's last training epoch: the saturation map's K = 1 serves that epoch's cell)."""
    gradient = check_gradient(gradient)
    key = None
    if memo is not None:
        from ..harness.evalstore import tensor_hash
        key = (gradient, bool(alone), int(batch_size), tensor_hash(x), tensor_hash(y))
        held = memo.get(key)
        if held is not None and all(float(k) in held[0] for k in scales):
            return {float(k): held[0][float(k)] for k in scales}, held[1]
    net, dtype, ctx = at_precision(model, gradient_precision(gradient))
    net.eval()
    grads = {float(k): torch.full(x.shape, float("nan"), dtype=torch.float64) for k in scales}
    parts = {}  # start index -> (n, classes) logits of the points whose solve succeeded
    solve_mode = per_sample_solves(net) if alone else contextlib.nullcontext()
    with solve_mode:
        for i in range(0, len(y), batch_size):
            _batch_gradients(net, x[i:i + batch_size], y[i:i + batch_size], grads, i, dtype, ctx, gradient, parts)
    classes = next(iter(parts.values())).shape[1] if parts else 1
    logits = torch.full((len(y), classes), float("nan"), dtype=torch.float64)
    for start, z in parts.items():
        logits[start:start + len(z)] = z
    if key is not None:
        memo[key] = (grads, logits)
    return grads, logits


def clean_margins(model, x, y, precision=Precision.FLOAT64, batch_size: int = 20) -> torch.Tensor:
    """Logit margins (n,) float64 of ``model`` in ``precision`` (default float64, as the cells of
    :func:`natrob.study.pipelines.epoch_cell`), each point solved with its own step size, no gradient: the forward half
    of :func:`input_gradients` with ``alone=True``. NaN where a point's solve failed. x: (n, C, H, W) in [0, 1];
    y: (n,) int64."""
    net, dtype, ctx = at_precision(model, gradient_precision(precision))
    net.eval()
    out = torch.full((len(y),), float("nan"), dtype=torch.float64)
    with per_sample_solves(net), torch.no_grad():
        for i in range(0, len(y), batch_size):
            xb, yb = x[i:i + batch_size], y[i:i + batch_size]
            try:
                with ctx():
                    out[i:i + len(yb)] = margins(net(xb.to(dtype)), yb)
            except SolverFailure:  # a failed solve is no margin; the batch's other points are solved one by one
                for j in range(len(yb)):
                    try:
                        with ctx():
                            out[i + j] = margins(net(xb[j:j + 1].to(dtype)), yb[j:j + 1])[0]
                    except SolverFailure:
                        pass
    return out


def _batch_gradients(net, xb, yb, grads, start, dtype, ctx, gradient, parts):
    """Gradients of one batch for every K into ``grads``; a batch whose solve fails is split into single points,
    and a point whose own solve fails keeps NaN rows (a failed solve is not a zero gradient)."""
    xx = xb.to(dtype).detach().requires_grad_(True)
    try:
        with ctx():
            logits = net(xx)
    except SolverFailure:
        if len(yb) > 1:
            for j in range(len(yb)):
                _batch_gradients(net, xb[j:j + 1], yb[j:j + 1], grads, start + j, dtype, ctx, gradient, parts)
        return
    ks = list(grads)
    for i, k in enumerate(ks):
        g, = torch.autograd.grad(_loss(logits, yb, k, gradient), xx, retain_graph=i < len(ks) - 1)
        grads[k][start:start + len(yb)] = g.double()
    parts[start] = logits.detach().double()


def _cosine(a, b):
    a, b = a.flatten(1), b.flatten(1)
    na, nb = a.norm(dim=1), b.norm(dim=1)
    cos = (a * b).sum(1) / (na * nb)
    return cos.masked_fill((na == 0) | (nb == 0) | ~torch.isfinite(cos), float("nan"))


class _Judge:
    """The float32 model's predictions (per-sample solves, batches of ``batch_size``) of the images one map judges,
    each image solved once: an FGSM image equal to one judged before (the clean image where a gradient is exactly
    zero, the same signed step at another K or another gradient setting) takes the earlier prediction. Per-sample
    solves make an image's prediction independent of its batch-mates, so this is the prediction a new solve would
    give. On the quick profile's map (6 gradient settings x 5 K) it halves the map's solves of FGSM images."""

    def __init__(self, model, batch_size):
        self.model, self.batch_size, self.seen = model, batch_size, {}

    def __call__(self, x) -> torch.Tensor:
        keys = [hashlib.blake2b(row.contiguous().numpy().tobytes(), digest_size=16).digest()
                for row in x.detach().cpu()]
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.seen}.values())
        if todo:
            pred, _ = predict(self.model, x[todo], self.batch_size)
            self.seen.update({keys[i]: p for i, p in zip(todo, pred)})
        return torch.stack([self.seen[k] for k in keys]).to(x.device)


def _fgsm_robust(judge, x, y, grad, eps, correct):
    ok = torch.isfinite(grad.flatten(1)).all(1)
    x_adv = (x + eps * grad.nan_to_num(0.0).sign().to(x.dtype)).clamp(0, 1)
    return int((correct & ok & (judge(x_adv) == y)).sum())


def map_gradients(model) -> tuple:
    """The saturation map's gradient settings for ``model``: every one of :data:`GRADIENTS`; torch's CPU float16
    kernels only for a model on a CPU (on a GPU, 'float16-amp' is the device's own AMP)."""
    cpu = model_device(model).type == "cpu"
    return tuple(g for g in GRADIENTS if cpu or g != Precision.FLOAT16_AMP_CPU.value)


def saturation_map(model, x, y, scales=(1, 2, 4, 8, 16, 32, 64, 128, 256), gradients=None,
                   eps_list=(0.3,), batch_size: int = 20, progress: bool = True, memo: dict | None = None) -> dict:
    """The saturation map of ``model`` on (x, y) (see the module doc).

    ``x``: (n, C, H, W) float32 in [0, 1]; ``y``: (n,) int64; ``scales``: the factors K on the logits;
    ``gradients``: names of :data:`GRADIENTS` (None: :func:`map_gradients`); ``eps_list``: FGSM radii (L-inf, pixel
    units); ``batch_size``: the batch of the batched gradients; ``memo``: :func:`input_gradients`'s, kept by the
    caller for this model. Returns {"n", "clean", "margins" (percentiles at K = 1), "protocols" (the gradient
    settings), "rows": one per (gradient setting, K): {"protocol" (the setting), "scale", "margin" (percentiles
    of K * margin), "zero_alone", "zero_batched" (count values), "own_share" (median and p10 of the cosine between
    batched and float64-alone gradients, over points where both are non-zero; "n" of them), "fgsm": [{"eps",
    "alone", "batched"} count values]}}.
    Raises ConfigError for an unknown gradient setting or a non-positive scale."""
    gradients = [check_gradient(g) for g in (map_gradients(model) if gradients is None else gradients)]
    scales = [float(k) for k in scales]
    for k in scales:
        if not k > 0:
            raise ConfigError("scales", k, "positive factors on the logits")
    model.eval()
    n = len(y)
    judge = _Judge(model, batch_size)
    pred = judge(x)
    correct = pred == y
    ref, logits = input_gradients(model, x, y, scales, Precision.FLOAT64, alone=True, batch_size=batch_size,
                                  memo=memo)
    m = margins(logits, y)
    rows = []
    bar = tqdm(gradients, desc="saturation map", disable=not progress, leave=False)
    for proto in bar:
        alone = ref if proto == Precision.FLOAT64.value else \
            input_gradients(model, x, y, scales, proto, True, batch_size, memo)[0]
        batched = input_gradients(model, x, y, scales, proto, False, batch_size, memo)[0]
        for k in scales:
            rows.append(_row(judge, x, y, proto, k, alone[k], batched[k], ref[k], m, correct, eps_list))
    return {"n": n, "clean": count(int(correct.sum()), n), "margins": margin_percentiles(m[correct]),
            "scales": scales, "protocols": list(gradients), "rows": rows}


def _zero(g):
    return (g.flatten(1) == 0).all(1)


def _row(judge, x, y, proto, k, alone, batched, ref, m, correct, eps_list):
    n = len(y)
    cos = _cosine(batched, ref)[correct]
    cos = cos[torch.isfinite(cos)]
    # "protocol": the result files' name for the gradient setting (kept: verify compares the files' keys)
    return {"id": f"{proto}-K{k:g}", "protocol": proto, "scale": k, "margin": margin_percentiles(k * m[correct]),
            "n_correct": int(correct.sum()),
            "zero_alone": count(int((_zero(alone) & correct).sum()), n),
            "zero_batched": count(int((_zero(batched) & correct).sum()), n),
            "own_share": {"median": float(cos.median()) if len(cos) else None,
                          "p10": float(torch.quantile(cos, 0.1)) if len(cos) else None, "n": int(len(cos))},
            "fgsm": [{"eps": float(e), "alone": count(_fgsm_robust(judge, x, y, alone, e, correct), n),
                      "batched": count(_fgsm_robust(judge, x, y, batched, e, correct), n)}
                     for e in eps_list]}


def threshold(rows, gradient, key: str = "zero_alone", share: float = 0.5):
    """The smallest median margin (K * p50 of correctly classified points) at which at least ``share`` of the
    correctly classified points have an exactly-zero input gradient taken as ``gradient`` (``key``: 'zero_alone' or
    'zero_batched'); None where no measured K got there."""
    gradient = check_gradient(gradient)
    for r in sorted((r for r in rows if r["protocol"] == gradient), key=lambda r: r["scale"]):
        if r["n_correct"] and r["margin"]["p50"] is not None and r[key]["k"] >= share * r["n_correct"]:
            return r["margin"]["p50"]
    return None
