"""The audit's probe, run before any attack: is the forward pass random, is the input gradient connected and
informative, does the output look like logits? :func:`probe` gathers :func:`randomness`, :func:`gradient_stats` and
:func:`output_stats`; the audit's checks (:mod:`natrob.audit.checks`) judge what they found.
"""
from __future__ import annotations

import torch

from ..attacks import input_grad
from ..attacks.base import input_grad_connected
from ..attacks.contract import predicted


def gradient_stats(model, x, y) -> dict:
    """Input-gradient health: how many are NaN, exactly zero, tiny; and whether the input is in the graph at all."""
    try:
        connected = input_grad_connected(model, x)
        g = input_grad(model, x, y, finite=False).flatten(1)
    except Exception as exc:
        return {"n": len(y), "connected": False, "nan": 0, "zero": 0, "tiny": 0, "median_norm": float("nan"),
                "error": f"{type(exc).__name__}: {exc}"[:300]}
    norms = g.norm(dim=1)
    return {"n": len(y), "connected": connected, "nan": int(torch.isnan(g).any(1).sum()),
            "zero": int((g == 0).all(1).sum()), "tiny": int((norms < 1e-10).sum()),
            "median_norm": float(norms.nan_to_num().median()), "error": None}


@torch.no_grad()
def randomness(model, x, repeats: int = 16) -> dict:
    """Whether repeated forward passes on the same input differ (a randomized defense, or test-time noise).

    ``repeats`` passes on the first (at most 16) images, each compared with the first: a model random on a
    fraction q of its passes goes unnoticed with probability about (1 - q)^(repeats - 1) (16 passes: 0.5% for
    q = 0.3; AutoAttack's and the old 3-pass probe: 34%)."""
    model.eval()
    xs = x[:16]
    try:
        outs = [model(xs) for _ in range(repeats)]
        if not all(torch.is_tensor(o) and o.shape == outs[0].shape for o in outs):
            raise TypeError("forward returned something other than logits of one shape")
    except Exception as exc:  # noqa: BLE001 - reported in the check, never raised
        return {"randomized": False, "max_diff": None, "label_flips": None, "passes": repeats,
                "detail": f"not probed: a forward pass raised {type(exc).__name__}: {exc}"[:300]}
    ref = outs[0].double()
    scale = float(ref.nan_to_num(0, 0, 0).abs().max()) + 1.0

    def differs(o):
        o = o.double()
        return max(float((o - ref).nan_to_num(0, 0, 0).abs().max()),
                   float("inf") if not torch.equal(torch.isfinite(o), torch.isfinite(ref)) else 0.0)

    diffs = [differs(o) for o in outs[1:]]
    flips = max((int((predicted(o) != predicted(outs[0])).sum()) for o in outs[1:]), default=0)
    diff = max(diffs, default=0.0)
    n_random = sum(d > 1e-5 * scale for d in diffs)
    return {"randomized": n_random > 0, "max_diff": diff, "label_flips": flips, "passes": repeats,
            "detail": f"{repeats} forward passes on the same {len(xs)} images: {n_random} of {repeats - 1} differ "
                      f"from the first (logits by up to {diff:.3g}), {flips} predicted labels change"}


@torch.no_grad()
def output_stats(model, x, batch_size: int = 256) -> dict:
    """On every clean image: how many output rows look like probabilities, how many are not finite."""
    probs = non_finite = 0
    try:
        for i in range(0, len(x), batch_size):
            z = model(x[i:i + batch_size]).double()
            ok = torch.isfinite(z).all(1)
            non_finite += int((~ok).sum())
            probs += int((ok & (z >= 0).all(1) & (z <= 1).all(1) & ((z.sum(1) - 1).abs() < 1e-3)).sum())
    except Exception as exc:  # noqa: BLE001 - e.g. a solver failure on a batch: counted by the harness instead
        return {"n": len(x), "probabilities": None, "non_finite": None, "error": f"{type(exc).__name__}: {exc}"[:200]}
    return {"n": len(x), "probabilities": probs, "non_finite": non_finite, "error": None}


def probe(model, x, y, draws: int, repeats: int = 16) -> dict:
    """Before attacking: is the forward pass random, is the input gradient connected and informative, does the
    output look like logits? ``model`` is the contracted model (natrob.attacks.contract.prepare)."""
    r = randomness(model, x, repeats)
    return {"randomness": r, "gradient": gradient_stats(model, x, y), "output": output_stats(model, x),
            "draws": draws if r["randomized"] else 1}
