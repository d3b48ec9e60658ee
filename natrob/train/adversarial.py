"""Adversarial training steps (Table 2 baselines), plugged into the same resumable loop as standard training.

- PGD-AT (Madry et al. 2017): minimise CE on PGD examples; CIFAR-10: PGD-10, eps 8/255, step 2/255, random start.
- TRADES (Zhang et al. 2019b, "Theoretically principled trade-off between robustness and accuracy"):
  CE(f(x), y) + beta * KL(f(x) || f(x')), x' maximising the KL from x + 0.001 N(0, 1); beta 6, 10 steps.
- YOPO-m-n (Zhang et al. 2019a, "You only propagate once"): per batch, m full forward/backward passes at the
  current adversary eta; each gives the costate p = dL/dz at the first layer's output z; the adversary then
  takes n signed-gradient steps on the Hamiltonian p . g_1(x + eta) through the *first layer only*; the first
  layer's weights receive the Hamiltonian gradient at each updated eta (updated alongside the adversary) and
  the other layers the gradients of the m full passes; one optimiser step per batch. YOPO-5-3: m=5, n=3.

``params`` (the config's ``method_params``): eps, alpha (step), steps, beta (TRADES), m, n, sigma (YOPO step).
Inner maximisation runs with BatchNorm in eval mode; the model must expose ``embed``/``rest`` for YOPO.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..attacks.pgd import PGD
from ..errors import ConfigError


def _eps(params):
    if "eps" not in params:
        raise ConfigError("method_params.eps", None,
                          "the L-inf radius of adversarial training, e.g. 8/255 for CIFAR-10")
    return float(params["eps"])


def pgd_at_step(net, model, opt, x, y, params):
    """One PGD-AT step (Madry et al. 2017): cross-entropy on PGD examples of the batch.

    ``params``: ``eps`` (required), ``alpha`` (eps/4), ``steps`` (10); random start. ``net`` is what is
    trained (``model`` wrapped in DistributedDataParallel, or ``model`` itself); the attack runs on ``model``.
    Returns (loss, logits on the adversarial batch)."""
    eps = _eps(params)
    attack = PGD(eps, alpha=params.get("alpha", eps / 4), steps=params.get("steps", 10), random_start=True)
    x_adv = attack(model, x, y)
    model.train()
    opt.zero_grad(set_to_none=True)
    logits = net(x_adv)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    return loss.item(), logits.detach()  # accuracy is reported on the batch trained on (adversarial)


def trades_inner(model, x, eps, alpha, steps):
    """TRADES' inner maximisation (Zhang et al. 2019b): ``steps`` signed-gradient steps of size ``alpha`` on
    KL(f(x) || f(x')) from x + 0.001 N(0, 1), inside the L-inf ball of radius ``eps`` and [0, 1], with the
    model in eval mode. Returns x' (detached)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        p_clean = F.softmax(model(x), 1)
    x_adv = (x + 0.001 * torch.randn_like(x)).clamp(0, 1)
    for _ in range(steps):
        x_adv.requires_grad_(True)
        kl = F.kl_div(F.log_softmax(model(x_adv), 1), p_clean, reduction="sum")
        (g,) = torch.autograd.grad(kl, x_adv)
        x_adv = torch.min(torch.max(x_adv.detach() + alpha * g.sign(), x - eps), x + eps).clamp(0, 1)
    model.train(was)
    return x_adv.detach()


def trades_loss(net, x, x_adv, y, beta):
    """TRADES' objective: CE(f(x), y) + ``beta`` * KL(f(x) || f(x_adv)) (batch mean). Returns (loss, clean
    logits); ``beta`` = 0 is standard training's loss."""
    logits = net(x)
    natural = F.cross_entropy(logits, y)
    if beta == 0:
        return natural, logits
    robust = F.kl_div(F.log_softmax(net(x_adv), 1), F.softmax(logits, 1), reduction="batchmean")
    return natural + beta * robust, logits


def trades_step(net, model, opt, x, y, params):
    """One TRADES step. ``params``: ``eps`` (required), ``alpha`` (eps/4), ``steps`` (10), ``beta`` (6.0; 0
    skips the inner maximisation). Returns (loss, clean logits)."""
    eps = _eps(params)
    beta = float(params.get("beta", 6.0))
    x_adv = trades_inner(model, x, eps, params.get("alpha", eps / 4), params.get("steps", 10)) if beta else x
    model.train()
    opt.zero_grad(set_to_none=True)
    loss, logits = trades_loss(net, x, x_adv, y, beta)
    loss.backward()
    opt.step()
    return loss.item(), logits.detach()


def yopo_step(net, model, opt, x, y, params):
    """One YOPO-m-n step (Zhang et al. 2019a), as described in the module docstring: ``m`` full passes, each
    followed by ``n`` adversary steps through the first layer only; one optimiser step.

    ``params``: ``eps`` (required), ``m`` (5), ``n`` (3), ``sigma`` (eps/4, the adversary's step). ``model``
    must expose ``first_layer``, ``embed`` and ``rest`` (PreActResNet18 does). Returns (mean loss of the
    m passes, logits of the first pass)."""
    if not (hasattr(model, "embed") and hasattr(model, "rest")):
        raise ConfigError("model", type(model).__name__, "a model with embed()/rest() (e.g. preact_resnet18) for YOPO")
    eps = _eps(params)
    m, n = int(params.get("m", 5)), int(params.get("n", 3))
    sigma = float(params.get("sigma", eps / 4))
    first = list(model.first_layer.parameters())
    first_ids = {id(p) for p in first}
    rest_params = [p for p in model.parameters() if id(p) not in first_ids]
    model.train()
    opt.zero_grad(set_to_none=True)
    eta = torch.empty_like(x).uniform_(-eps, eps)
    eta = (x + eta).clamp(0, 1) - x
    first_grad = [torch.zeros_like(p) for p in first]
    total, logits0 = 0.0, None
    for j in range(m):
        with torch.no_grad():  # the first layer's weights get the Hamiltonian gradient below, not this pass's
            z = model.embed(x + eta)
        z_leaf = z.requires_grad_(True)
        logits = model.rest(z_leaf)
        loss = F.cross_entropy(logits, y)
        grads = torch.autograd.grad(loss / m, [z_leaf] + rest_params)
        p = grads[0] * m  # costate: dL/dz at the first layer's output
        for param, g in zip(rest_params, grads[1:]):
            param.grad = g if param.grad is None else param.grad + g
        if j == 0:
            logits0 = logits.detach()
        total += loss.item() / m
        for _ in range(n):  # adversary: n steps on the Hamiltonian, through the first layer only
            e = eta.detach().requires_grad_(True)
            (g_eta,) = torch.autograd.grad((p * model.embed(x + e)).sum(), e)
            eta = (eta + sigma * g_eta.sign()).clamp(-eps, eps)
            eta = (x + eta).clamp(0, 1) - x
        # first layer updated alongside: the Hamiltonian's gradient at the updated adversary
        h = (p * model.embed(x + eta)).sum() / m
        for acc, g in zip(first_grad, torch.autograd.grad(h, first)):
            acc += g
    for param, g in zip(first, first_grad):
        param.grad = g
    opt.step()
    return total, logits0
