"""What natrob needs from a model and its inputs, checked once before any attack.

A model must map a float NCHW batch in [0, 1] to a tensor of logits of shape (n, classes), classes >= 2.
:func:`prepare` checks that on a few of the evaluated images and returns the model to attack and judge:

- a forward pass that raises, or an output that is not such a tensor (a tuple ``(logits, features)``, a
  1-D vector, integer outputs), makes the model *not evaluable*, with the reason; no finding is made about it;
- a model whose parameters are of another float dtype than the images (a float64 or bfloat16 copy) is fed
  images cast to that dtype when it cannot take the images as they are; float16 and bfloat16 logits are cast
  to float32 for the attacks' losses (the predicted label is unchanged);
- rows that look like probabilities (in [0, 1], summing to 1) are counted: a named finding of the audit, since
  the cross-entropy of probabilities treated as logits saturates and understates gradient attacks;
- non-finite logits are counted per point by the harness (a non-finite prediction is never robust);
- batch dependence: the same images are predicted in one batch and in two halves; a model whose logits
  depend on their batch-mates (BatchNorm on batch statistics) is flagged and judged one image at a time.

Labels may be of any integer dtype (converted to int64); other label or image dtypes raise ConfigError.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ConfigError

SOLVER_FAILED, NON_FINITE = -1, -3  # prediction codes below 0: never a class, never robust
NOT_PREDICTED = -2                 # the forward pass on the clean images raised: no prediction at all
PROBE_N = 8                        # images the output and batch probes look at


def as_labels(y) -> torch.Tensor:
    """``y`` as int64 class indices. Raises ConfigError unless it is a 1-D tensor of an integer dtype."""
    if not torch.is_tensor(y):
        raise ConfigError("y", type(y).__name__, "a 1-D tensor of integer class indices")
    if y.dtype == torch.bool or y.is_floating_point() or y.is_complex():
        raise ConfigError("y", f"dtype {y.dtype}", "integer class indices (int64, int32, int16, int8 or uint8)")
    return y.long()


def check_images(x):
    """Raise ConfigError unless ``x`` holds floating-point images (float16, bfloat16, float32 or float64)."""
    if torch.is_tensor(x) and not x.is_floating_point():
        raise ConfigError("x", f"dtype {x.dtype}", "floating-point images in [0, 1] (uint8 images: x.float() / 255)")


def predicted(logits) -> torch.Tensor:
    """Predicted labels of (n, classes) logits, ``NON_FINITE`` (-3) for rows holding NaN or inf: the argmax of a
    NaN row is class 0, which would count a non-finite prediction of a class-0 image as correct."""
    return logits.argmax(1).masked_fill(~torch.isfinite(logits).all(1), NON_FINITE)


class Adapted(torch.nn.Module):
    """``inner`` seen through the contract: inputs cast to ``in_dtype`` (None: as given) and half-precision
    logits cast to float32 for the attacks' losses. The predicted label is unchanged."""

    def __init__(self, inner, in_dtype=None):
        super().__init__()
        self.inner, self.in_dtype = inner, in_dtype

    @property
    def nfe_forward(self):
        return getattr(self.inner, "nfe_forward", None)

    def forward(self, x):
        # a copy the model may write into: in-place normalisation (x.sub_(mean), Normalize(inplace=True)) would
        # otherwise fail on the attacks' leaf tensors and overwrite the caller's images
        x = x.clone() if self.in_dtype is None or x.dtype == self.in_dtype else x.to(self.in_dtype)
        out = self.inner(x)
        if torch.is_tensor(out) and out.dtype in (torch.float16, torch.bfloat16):
            out = out.float()
        return out


@dataclass
class Prepared:
    """The outcome of :func:`prepare`: ``model`` to attack and judge, ``evaluable`` and its ``reason``,
    ``output`` (what the probe saw) and ``batch`` (the batch-dependence probe)."""
    model: object
    evaluable: bool
    reason: str | None = None
    output: dict = field(default_factory=dict)
    batch: dict = field(default_factory=dict)

    @property
    def batch_dependent(self) -> bool:
        return bool(self.batch.get("dependent"))


def _param_dtype(model):
    dtypes = {p.dtype for p in (model.parameters() if hasattr(model, "parameters") else []) if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def _describe(out) -> str:
    if isinstance(out, (tuple, list)):
        inner = ", ".join(type(o).__name__ + (f"{tuple(o.shape)}" if torch.is_tensor(o) else "") for o in out[:4])
        return f"a {type(out).__name__} of {len(out)} ({inner})"
    return f"a {type(out).__name__}"


def _forward(model, x):
    """(output, None), or (None, reason) when the forward pass raises a non-solver error."""
    from ..errors import SolverFailure
    try:
        with torch.no_grad():
            return model(x), None
    except SolverFailure as exc:  # solver failures are counted per image later, not a broken contract
        return getattr(exc, "logits", None), None
    except Exception as exc:  # noqa: BLE001 - a user's model may raise anything; it is reported, not raised
        return None, f"forward raised {type(exc).__name__}: {str(exc)[:300]}"


def _run_or_cast(model, x):
    """The model's output on ``x``, retrying with ``x`` cast to the parameters' dtype: (model, out, reason)."""
    out, reason = _forward(model, x)
    want = _param_dtype(model)
    if reason is not None and want is not None and want != x.dtype:
        cast = Adapted(model, in_dtype=want)
        out2, reason2 = _forward(cast, x)
        if reason2 is None:
            return cast, out2, None
    return model, out, reason


def _output_problem(out, n) -> str | None:
    expected = f"a tensor of logits of shape ({n}, classes) with classes >= 2"
    if out is None:
        return None  # every image failed its solve: the harness counts them
    if not torch.is_tensor(out):
        return f"forward returns {_describe(out)}, not {expected}; return the logits alone"
    if out.dim() != 2 or out.shape[0] != n or out.shape[1] < 2:
        return f"forward returns shape {tuple(out.shape)}, not {expected}"
    if not out.is_floating_point():
        return f"forward returns dtype {out.dtype}, not floating-point logits"
    return None


def _looks_like_probabilities(out) -> int:
    """Rows in [0, 1] that sum to 1 (AutoAttack's check): softmax outputs rather than logits."""
    z = out.detach().double()
    finite = torch.isfinite(z).all(1)
    rows = finite & (z >= 0).all(1) & (z <= 1).all(1) & ((z.sum(1) - 1).abs() < 1e-3)
    return int(rows.sum())


def _batch_probe(model, x, scale_dtype) -> dict:
    """Logits of the same images in one batch and in two halves; dependent when they differ beyond rounding."""
    k = min(len(x), PROBE_N)
    if k < 2:
        return {"probed": False, "dependent": False, "detail": "not probed: fewer than 2 images"}
    xs, h = x[:k], k // 2
    whole, r1 = _forward(model, xs)
    again, r2 = _forward(model, xs)
    a, r3 = _forward(model, xs[:h])
    b, r4 = _forward(model, xs[h:])
    if any(r is not None for r in (r1, r2, r3, r4)) or any(not torch.is_tensor(t) for t in (whole, again, a, b)):
        return {"probed": False, "dependent": False, "detail": "not probed: a forward pass on the probe images failed"}
    whole, again, halves = whole.double(), again.double(), torch.cat([a, b]).double()
    tol = max(1e-4, 16 * torch.finfo(scale_dtype).eps) * (1.0 + float(whole.nan_to_num().abs().max()))
    noise = float((whole - again).nan_to_num().abs().max())
    if noise > tol:
        return {"probed": False, "dependent": False, "detail": "not decidable: the forward pass is random"}
    diff = float((whole - halves).nan_to_num(posinf=0, neginf=0).abs().max())
    flips = int((whole.argmax(1) != halves.argmax(1)).sum())
    dependent = diff > tol
    return {"probed": True, "dependent": dependent, "repeatable": noise == 0.0, "max_logit_diff": diff,
            "label_flips": flips, "n": k,
            "detail": f"{k} images predicted in one batch and in two batches of {h} and {k - h}: logits differ by up "
                      f"to {diff:.3g} (tolerance {tol:.2g}), {flips} predicted labels change"}


def prepare(model, x, y, num_classes: int | None = None) -> Prepared:
    """Check the contract on the first images of ``x`` (see the module doc) and return the model to attack.

    ``x``: (n, C, H, W) floating images in [0, 1]; ``y``: (n,) integer labels; ``num_classes`` unused except
    to check labels when given. Never raises for what the model does; raises ConfigError for bad ``x``/``y``
    (labels outside the model's classes included)."""
    check_images(x)
    y = as_labels(y)
    if len(x) == 0:
        return Prepared(model, True, output={"probed": False})
    if hasattr(model, "eval"):
        model.eval()
    probe_x = x[:PROBE_N].clone()  # the model may write into its input: never into the caller's images
    adapted, out, reason = _run_or_cast(model, probe_x)
    writes_input = not torch.equal(probe_x, x[:PROBE_N])
    reason = reason or _output_problem(out, len(probe_x))
    if reason is not None:
        return Prepared(model, False, reason, output={"probed": True, "problem": reason})
    info = {"probed": True, "problem": None, "n": len(probe_x), "classes": None, "dtype": None,
            "input_cast": str(adapted.in_dtype) if isinstance(adapted, Adapted) else None,
            "probabilities": 0, "non_finite": 0, "writes_input": writes_input}
    if out is not None:
        info |= {"classes": int(out.shape[1]), "dtype": str(out.dtype), "probabilities": _looks_like_probabilities(out),
                 "non_finite": int((~torch.isfinite(out)).any(1).sum())}
        classes = min(num_classes or info["classes"], info["classes"])
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise ConfigError("y", f"labels in [{int(y.min())}, {int(y.max())}]",
                              f"class indices in [0, {classes}) (the model has {info['classes']} outputs)")
    final = Adapted(model, adapted.in_dtype if isinstance(adapted, Adapted) else None)
    scale = max((d for d in (out.dtype if out is not None else None, _param_dtype(model), torch.float32)
                 if d is not None and d.is_floating_point), key=lambda d: torch.finfo(d).eps)
    return Prepared(final, True, None, info, _batch_probe(final, x, scale))
