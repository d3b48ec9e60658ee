"""One optimisation step per training method. Each returns (loss value, logits on the batch it trained on:
clean for standard training and TRADES, adversarial for PGD-AT and YOPO)."""
from __future__ import annotations

import torch.nn.functional as F


def standard_step(net, model, opt, x, y, params):
    """One step of cross-entropy training on the clean batch (``params`` unused). Returns (loss, logits)."""
    opt.zero_grad(set_to_none=True)
    logits = net(x)
    loss = F.cross_entropy(logits, y)
    loss.backward()
    opt.step()
    return loss.item(), logits.detach()


def _adversarial_steps():
    from .adversarial import pgd_at_step, trades_step, yopo_step
    return {"pgd_at": pgd_at_step, "trades": trades_step, "yopo": yopo_step}


class _Steps(dict):
    """Adversarial steps are imported lazily so standard training does not import the attacks package."""

    def __missing__(self, key):
        self.update(_adversarial_steps())
        return dict.__getitem__(self, key)


METHOD_STEPS = _Steps(standard=standard_step)
