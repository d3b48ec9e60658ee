"""The paper's own numbers (transcribed in reference_numbers.json, shipped with the package) and
side-by-side tables of paper vs natrob."""
from __future__ import annotations

import json
from functools import lru_cache

from . import paths
from .eps import same_eps


@lru_cache(maxsize=1)
def numbers() -> dict:
    """Everything in ``reference_numbers.json`` (read once): the paper's tables as printed (accuracies in percent)."""
    return json.loads(paths.REFERENCE_NUMBERS.read_text())


def paper_dataset(dataset: str) -> str:
    """Which of the paper's datasets a natrob dataset stands in for (digits and the MNIST split -> MNIST)."""
    return "cifar10" if dataset.startswith("cifar") else "mnist"


def table1(dataset: str, attack: str, model: str) -> dict:
    """{eps: paper accuracy in [0,1]} for Table 1 (model 'ResNet50' or 'Neural ODE', attack 'FGSM' or 'PGD')."""
    t = numbers()["table1"][paper_dataset(dataset)]
    eps = t["eps"] if "eps" in t else [e / 255 for e in t["eps_255"]]
    # eps_255 / 255 rounded to 6 decimals: the radii the profiles write (8/255 -> 0.031373 vs 0.0313725, same_eps)
    return {round(e, 6): v / 100 for e, v in zip(eps, t[attack][model])}


def paper_attack(steps=None, alpha=None) -> dict:
    """The paper's Table 1 PGD as an attack spec (``natrob.harness.evaluate``), defined once: norm, steps, step size and
    random start from ``table1.pgd_settings`` of the reference numbers (L-inf, 40 steps of 0.01, uniform random
    start). ``steps`` / ``alpha`` (a profile's ``PGD_STEPS`` / ``PGD_ALPHA``; None keeps the paper's) override
    them, and the label says what runs: ``PGD-5`` in the tiny profile, ``PGD-40`` at the paper's settings.
    The id (``pgd-paper``) and role (``paper``) stay the same whatever the overrides, so checks and result keys
    find it by what it is for."""
    s = numbers()["table1"]["pgd_settings"]
    if s["norm"] != "Linf":
        raise ValueError(f"reference_numbers.json: pgd_settings norm {s['norm']!r}; natrob's PGD is L-inf")
    steps = int(s["steps"] if steps is None else steps)
    alpha = float(s["step_size"] if alpha is None else alpha)
    return {"name": "pgd", "steps": steps, "alpha": alpha, "random_start": bool(s["random_start"]), "id": "pgd-paper",
            "role": "paper", "label": f"PGD-{steps}"}


def clean(dataset: str, model: str) -> float:
    """The paper's clean test accuracy in [0, 1] of ``model`` ('ResNet' or 'Neural ODE') on the paper
    dataset ``dataset`` stands in for."""
    return numbers()["clean_accuracy"][paper_dataset(dataset)][model] / 100


def table2() -> list:
    """The rows of the paper's Table 2 (CIFAR-10 adversarial training baselines), as transcribed."""
    return numbers()["table2_cifar10"]["rows"]


def lookup(paper: dict, eps: float):
    """Paper value at eps if the paper has one (the same radius: :func:`natrob.eps.same_eps`), else None."""
    return next((v for e, v in paper.items() if same_eps(e, eps)), None)
