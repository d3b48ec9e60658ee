"""The trainers of the paper's Table 2 (adversarial training baselines on CIFAR-10), for any profile."""
from __future__ import annotations

from .config import TrainConfig


def table2_configs(at_model: dict, eps: float, alpha: float, steps: int, beta: float, m: int, n: int) -> dict:
    """The Table 2 trainers: ``{method: (the paper's training label, TrainConfig)}``.

    ``at_model`` is a profile's model entry (its ``train`` dict is the base config of every trainer); ``eps``,
    ``alpha`` and ``steps`` set the PGD-10 and TRADES inner maximisation, ``beta`` TRADES' trade-off, ``m`` and
    ``n`` YOPO-m-n (whose adversary steps by ``alpha``). Standard training is included as the baseline the
    paper does not list. Notebooks 05 and 06 both build their trainers here, so the model store hands 06 the
    very models 05 trained."""
    methods = {
        "standard": ("none (baseline, not in the paper)", {}),
        "pgd_at": ("PGD-10 (Madry et al., 2017)", {"eps": eps, "alpha": alpha, "steps": steps}),
        "trades": ("TRADES-10 (Zhang et al., 2019b)", {"eps": eps, "alpha": alpha, "steps": steps, "beta": beta}),
        "yopo": (f"YOPO-{m}-{n} (Zhang et al., 2019a)", {"eps": eps, "sigma": alpha, "m": m, "n": n}),
    }
    return {k: (label, TrainConfig(**{**at_model["train"], "method": k, "method_params": p}))
            for k, (label, p) in methods.items()}
