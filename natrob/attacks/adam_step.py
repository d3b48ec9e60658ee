"""The "FGSM" of TisODE's released attack script: one coordinate-Adam step on a log-probability margin.

Source: Yan et al., "On Robustness of Neural Ordinary Differential Equations" (ICLR 2020), repository
HanshuYAN/TisODE at b55ca43: ``attack_mnist/main_*.py`` calls ``adversarial_attack(1000, model, loader, eps, eps, 1)``
(``ad_attack/adversarial_attack_method.py``), which runs ``BlackBoxL2`` (``ad_attack/attk/cw_black.py``, a
ZOO-style attack: Chen et al. 2017, "ZOO") with white-box gradients (``cw_grad``), two steps (``maxiter`` 1 becomes
2), Adam with beta1 = beta2 = 0 and learning rate ``eps``, on every pixel. The first step evaluates the clean image,
the second the image after one update, so the attack is one step:

    g = grad_x 0.5 * max(log(p_y + 1e-30) - log(max_{j != y} p_j + 1e-30), 0),   p = softmax(f(x)) in float32
    x_adv = clip to the eps-ball and [0, 1] of  x - eps * g / (|g| + 1e-8)

It differs from FGSM (:mod:`natrob.attacks.fgsm`) three ways: the loss is the Carlini-Wagner margin of
log-probabilities (equal to the logit margin until a probability falls below 1e-30, where its gradient vanishes);
a pixel whose gradient is below about 1e-8 moves less than ``eps`` (a gradient of 1e-9 moves it 0.09 * eps); a
point the model already misclassifies has a zero gradient and does not move.

Threat model: L-inf, radius ``eps``, images in [0, 1], white-box (one input gradient). Shapes: ``x`` (N, C, H, W),
``y`` (N,), returns (N, C, H, W). The script attacks one image per call; the loss here is summed over the batch,
never averaged, so each image's gradient (and so its step) is the one the script computes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .contract import as_labels
from .base import Attack


def log_margin(logits, y, floor: float = 1e-30):
    """Per image ``0.5 * max(log(p_y + floor) - log(max_{j != y} p_j + floor), 0)`` with ``p`` the float32 softmax
    of ``logits`` (N, classes): the loss of the script's ``cw_loss``. Returns (N,)."""
    p = F.softmax(logits.float(), dim=1)
    onehot = F.one_hot(y, p.shape[1]).bool()
    real = p.masked_fill(~onehot, 0.0).sum(1)
    other = p.masked_fill(onehot, -1.0).max(1).values
    return 0.5 * (torch.log(real + floor) - torch.log(other + floor)).clamp(min=0.0)


class AdamStep(Attack):
    """One coordinate-Adam step (beta1 = beta2 = 0) of size ``eps`` on :func:`log_margin`: the attack logged as
    "FGSM" in TisODE's ``sharing_MNIST_FGSM.txt``.

    Arguments: ``eps`` (the radius and the learning rate, as the script passes both); ``adam_eps`` (1e-8, Adam's
    denominator floor in the script); ``floor`` (1e-30, the log's floor in the script)."""
    name = "adam-step"

    def __init__(self, eps: float = 0.3, adam_eps: float = 1e-8, floor: float = 1e-30):
        super().__init__(eps)
        self.adam_eps, self.floor = float(adam_eps), float(floor)

    def perturb(self, model, x, y):
        """``x - eps * g / (|g| + adam_eps)``: one forward and one backward pass."""
        x = x.detach().requires_grad_(True)
        y = as_labels(y)
        with torch.enable_grad():
            loss = log_margin(model(x), y, self.floor).sum()
            grad = torch.autograd.grad(loss, x, allow_unused=True)[0] if loss.requires_grad else None
        if grad is None:
            return x.detach()
        grad = grad.nan_to_num(0.0, 0.0, 0.0)
        return x.detach() - self.eps * grad / (grad.abs() + self.adam_eps)
