"""The saturation probe of one ODE net on (x, y): exactly-zero input gradients in float32 and float64, logit
margins, the ODE state's norm at t1, the forward NFE, and FGSM at several radii from one gradient (notebooks 08
and 09's cells)."""
from __future__ import annotations

import torch


def _grad_and_logits(model, x, y, dtype):
    """Input gradient of the summed cross-entropy and the logits, with the model and images in ``dtype``."""
    import copy

    import torch.nn.functional as F
    net = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    xx = x.to(dtype).detach().requires_grad_(True)
    logits = net(xx)
    grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xx)
    return grad, logits.detach(), net


def _state_capture(model):
    """A forward pre-hook on an ODE net's head that keeps the ODE state y(t1) of the last forward pass (no extra
    solve); (store, handle), or (store, None) for a model without a head."""
    store = []
    head = getattr(model, "head", None)
    if head is None or not hasattr(model, "integrate"):
        return store, None
    return store, head.register_forward_pre_hook(lambda mod, args: store.append(args[0].detach()))


def _probe_batch(model, xb, yb, eps_list, batch_size, acc, float64, per_sample):
    """Add one batch's probes to ``acc`` (see :func:`cell_probes`)."""
    from ..harness.prediction import predict
    store, handle = _state_capture(model)
    try:
        g32, logits, _ = _grad_and_logits(model, xb, yb, torch.float32)
    finally:
        if handle is not None:
            handle.remove()
    acc["nfes"].append(getattr(model, "nfe_forward", None))
    acc["nfes_b"].append(getattr(model, "nfe_backward", None))
    if store:
        acc["norms"].append(store[-1].flatten(1).norm(dim=1))
    zero = (g32.flatten(1) == 0).all(1)
    acc["zero32"] += int(zero.sum())
    # float64 only where float32 saw no slope: a non-zero float32 gradient stays non-zero in float64
    if float64 and zero.any():
        g64, _, _ = _grad_and_logits(model, xb[zero], yb[zero], torch.float64)
        acc["zero64"] += int((g64.flatten(1) == 0).all(1).sum())
    ok = logits.argmax(1) == yb
    acc["correct"] += int(ok.sum())
    # only a clean-correct point can count; with per-sample solves, one whose gradient is exactly zero (and whose
    # image is inside [0, 1], so the clip leaves it) has the clean image as its FGSM image and so its clean
    # prediction: neither needs a solve
    same = zero & (xb == xb.clamp(0, 1)).flatten(1).all(1) if per_sample else torch.zeros_like(ok)
    moved, kept = ok & ~same, int((ok & same).sum())
    for e in acc["fgsm"]:
        acc["fgsm"][e] += kept
        if moved.any():
            pred, _ = predict(model, (xb[moved] + e * g32[moved].sign()).clamp(0, 1), batch_size)
            acc["fgsm"][e] += int((pred == yb[moved]).sum())
    other = logits.clone()
    other[torch.arange(len(yb)), yb] = -float("inf")
    acc["margins"].append((logits[torch.arange(len(yb)), yb] - other.max(1).values)[ok])


def cell_probes(model, x, y, eps_list=(0.2, 0.3, 0.4, 0.5), batch_size: int = 50, per_sample: bool = True,
                float64: bool = True) -> dict:
    """What decides FGSM on an ODE net, measured on (x, y): per point, whether the input gradient of the
    cross-entropy is exactly zero in float32 and in float64 (a saturated softmax: float32's exp underflows for
    logit margins above about 104, float64's above about 745, and then the gradient and FGSM's step vanish;
    float64 is run on the points whose float32 gradient is zero), the logit margin (true logit minus the largest
    other; median and max over clean-correct points, and ``margins``: percentiles p2/p10/p50/p90/max), the L2
    norm of the ODE state at t1 (median, from the same
    forward pass) and the forward NFE (mean per batch), and FGSM at every radius of ``eps_list`` (the paper's
    attack: one signed cross-entropy gradient step of eps, clipped to [0, 1]; all radii share the one float32
    gradient; a point is robust when its clean and adversarial images are both classified correctly, a failed
    solve is not; only clean-correct points are solved again, and with per-sample solves not those whose gradient
    is exactly zero, whose FGSM image is the clean image), and the NFE of the backward pass (``nfe_backward_mean``).
    ``x``: (n, C, H, W) in [0, 1];
    ``y``: (n,) int64. Solves are per-sample (batch-independent) unless ``per_sample`` is False: then the model
    solves each batch of ``batch_size`` as it is configured (notebook 07's cells, one shared step size, as the
    paper's code solved). ``float64`` False skips the float64 count (None). Returns count values and floats;
    raises :class:`natrob.errors.SolverFailure` when a solve fails."""
    from ..models.odenet import solver_settings
    from .saturation import margin_percentiles
    from ..stats import count
    model.eval()
    import contextlib
    acc = {"zero32": 0, "zero64": 0, "correct": 0, "margins": [], "norms": [], "nfes": [], "nfes_b": [],
           "fgsm": {float(e): 0 for e in eps_list}}
    solving = solver_settings(model, per_sample=True, optional=True) if per_sample else contextlib.nullcontext()
    with solving:
        for i in range(0, len(y), batch_size):
            _probe_batch(model, x[i:i + batch_size], y[i:i + batch_size], eps_list, batch_size, acc, float64,
                         per_sample)
    m = torch.cat(acc["margins"]) if acc["margins"] else torch.empty(0)
    n = len(y)
    nfes = [v for v in acc["nfes"] if v is not None]
    nfes_b = [v for v in acc["nfes_b"] if v is not None]
    return {"clean": count(acc["correct"], n), "zero_grad_float32": count(acc["zero32"], n),
            "zero_grad_float64": count(acc["zero64"], n) if float64 else None,
            "margin_median": float(m.median()) if len(m) else None, "margin_max": float(m.max()) if len(m) else None,
            "margins": margin_percentiles(m),
            "state_norm_median": float(torch.cat(acc["norms"]).median()) if acc["norms"] else None,
            "nfe_forward_mean": sum(nfes) / len(nfes) if nfes else None,
            "nfe_backward_mean": sum(nfes_b) / len(nfes_b) if nfes_b else None,
            "fgsm": [{"eps": e, "robust": count(k, n)} for e, k in acc["fgsm"].items()]}
