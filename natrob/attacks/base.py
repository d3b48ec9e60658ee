"""Base class of every natrob attack (torchattacks style): eval mode, input checks, projection.

An attack is built with its threat-model parameters and called as ``attack(model, x, y) -> x_adv``. The
returned images always lie in [0, 1] and inside the L-inf ball of radius ``eps`` around ``x``, except under a
protocol variant (:mod:`natrob.attacks.variant`, NOT the correct threat model), which says what it changes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import as_labels, check_images
from ..errors import ConfigError, check_eps


class Attack:
    """An L-inf attack in [0, 1] pixel space: ``attack(model, x, y) -> x_adv``.

    Threat model: every subclass searches the L-inf ball of radius ``eps`` around each image, intersected with
    [0, 1]; ``__call__`` puts the model in eval mode (and restores its mode), checks the batch, and projects the
    result, so no subclass can return a point outside the threat model. Subclasses implement :meth:`perturb`
    and set ``name`` (the key in :data:`natrob.attacks.ATTACKS`). Attacks hold their parameters, never a model.

    Arguments: ``eps`` (radius, a number >= 0; :func:`natrob.errors.check_eps` names the allowed values).

    Two class attributes describe the threat model, and only a protocol variant (:mod:`natrob.attacks.variant`,
    NOT the correct threat model) changes them on its inner FGSM or PGD: ``box`` (the image domain projections
    clip to; None leaves pixels unclipped) and ``scale`` (None: ``eps`` is in pixels; a per-channel tensor: the
    radius is ``eps * scale``, e.g. eps applied to a normalised input)."""
    name = "attack"
    box = (0.0, 1.0)
    scale = None

    def __init__(self, eps: float):
        self.eps = check_eps(eps)

    # -- public --------------------------------------------------------------------------------
    def __call__(self, model, x, y):
        check_batch(x, y)
        y = as_labels(y)
        # what the attack saw on its way (Pintor et al.'s indicators, a library's own warnings); filled by
        # subclasses that trace their path, read by the harness after each call
        self.diagnostics = {}
        was_training = model.training
        model.eval()
        try:
            x_adv = self.perturb(model, x.detach().clone(), y)
        finally:
            model.train(was_training)
        return self.project(x, x_adv.detach())

    def params(self) -> dict:
        """The attack's scalar parameters and its ``name``: what results record about it."""
        plain = {k: v for k, v in vars(self).items() if isinstance(v, (int, float, str, bool, type(None)))}
        return plain | {"name": self.name}

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(f'{k}={v}' for k, v in self.params().items() if k != 'name')})"

    # -- for subclasses -------------------------------------------------------------------------
    def perturb(self, model, x, y):
        """The subclass's search: candidate adversarial images for ``x`` (a detached copy) with labels ``y``,
        the model already in eval mode. The result need not be projected; ``__call__`` does that."""
        raise NotImplementedError

    def radius(self, x):
        """The L-inf radius around ``x`` in pixels: ``eps``, or ``eps * scale`` per channel (shape (1, C, 1, 1))."""
        if self.scale is None:
            return self.eps
        return self.eps * self.scale.to(device=x.device, dtype=x.dtype).reshape(1, -1, *[1] * (x.dim() - 2))

    def project(self, x, x_adv):
        """``x_adv`` clipped to the ball of :meth:`radius` around ``x`` and to ``box`` ([0, 1])."""
        r = self.radius(x)
        out = torch.min(torch.max(x_adv, x - r), x + r)
        return out.clamp(*self.box) if self.box is not None else out

    def admits(self, x, x_adv, slack: float) -> bool:
        """Whether every ``x_adv`` lies in this attack's threat model (its ball around ``x`` and ``box``), up to
        ``slack`` (rounding): what the harness checks after every batch."""
        inside = bool(((x_adv - x).abs() <= torch.as_tensor(self.radius(x), dtype=x.dtype) + slack).all())
        if self.box is None or not x_adv.numel():
            return inside
        return inside and bool(x_adv.min() >= self.box[0]) and bool(x_adv.max() <= self.box[1])


def check_batch(x, y):
    """Raise ConfigError unless ``x`` is a floating NCHW batch in [0, 1] and ``y`` holds one integer label per
    image (any integer dtype)."""
    if not torch.is_tensor(x) or x.dim() != 4:
        raise ConfigError("x", tuple(x.shape) if torch.is_tensor(x) else type(x).__name__, "a 4-D NCHW float tensor")
    check_images(x)
    if not torch.is_tensor(y) or y.dim() != 1 or len(y) != len(x):
        raise ConfigError("y", tuple(y.shape) if torch.is_tensor(y) else type(y).__name__,
                          f"a 1-D label tensor with one label per image ({len(x)})")
    as_labels(y)
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError("x", f"values in [{x.min().item():.3g}, {x.max().item():.3g}]", "images in [0, 1]")


def input_grad(model, x, y, loss="ce", eot_iter: int = 1, finite: bool = True, with_logits: bool = False):
    """Gradient of the summed loss with respect to the input (model parameters are not differentiated).

    ``eot_iter > 1`` averages the gradient over that many forward passes (Expectation over Transformation,
    Athalye et al. 2018) for randomized models. An input that is not in the model's autograd graph (detached,
    or processed outside torch) has a zero gradient rather than an error: that is a masking sign the audit
    reports, and gradient-free attacks still run. ``finite`` replaces NaN/inf entries by 0 so that attacks
    stay inside the eps-ball; the audit's gradient statistics ask for the raw values. ``with_logits`` returns
    ``(gradient, logits)``, the logits (detached) of the first forward pass, for attacks that trace their path."""
    x, y = x.detach().requires_grad_(True), as_labels(y)
    total, first = torch.zeros_like(x), None
    for _ in range(eot_iter):
        with torch.enable_grad():
            logits = model(x)
            if first is None:
                first = logits.detach()
            if loss == "ce":
                value = F.cross_entropy(logits, y, reduction="sum")
            elif loss == "cw":
                value = cw_margin(logits, y).sum()
            else:
                raise ConfigError("loss", loss, "'ce' or 'cw'")
            if not value.requires_grad:
                continue
            (grad,) = torch.autograd.grad(value, x, allow_unused=True)
        if grad is not None:
            total += grad
    total /= eot_iter
    total = total.nan_to_num_(0.0, 0.0, 0.0) if finite else total
    return (total, first) if with_logits else total


def input_grad_connected(model, x) -> bool:
    """Whether the model's output depends on its input through autograd at all."""
    x = x[:1].detach().requires_grad_(True)
    with torch.enable_grad():
        out = model(x)
        if not out.requires_grad:
            return False
        (g,) = torch.autograd.grad(out.sum(), x, allow_unused=True)
    return g is not None


def cw_margin(logits, y):
    """max_{j != y} z_j - z_y (positive when misclassified): Carlini & Wagner's margin."""
    y = as_labels(y)
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.clone()
    other.scatter_(1, y[:, None], float("-inf"))
    return other.max(1).values - true
