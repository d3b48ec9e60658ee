"""The cost model: unit costs in seconds per image, and the device-hours a profile's chapters add up to.

Each chapter's ``cost(p, units)`` (:mod:`natrob.chapters`) turns a profile into hours with a :class:`Units`;
:func:`paper_estimate` collects one row per chapter. ``python -m natrob.run.gpu_check`` measures the unit costs on a
device and prints the estimate; ``--estimate-only`` reuses measured ones.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError

MNIST_TRAIN = 60000  # the paper profile trains on the official split


def attack_units(spec) -> tuple:
    """(gradient steps, forward queries) per image of one attack spec of the audit plan (upper bound)."""
    name = spec["name"]
    if name == "fgsm":
        return 1, 0
    if name == "pgd":
        return spec.get("steps", 40) * spec.get("restarts", 1) * spec.get("eot_iter", 1), 0
    if name in ("random-noise", "uniform-noise"):
        return 0, spec.get("trials", 1)
    if name == "constant-image":
        return 0, 1
    if name in ("square", "boundary"):
        return 0, spec.get("n_queries", spec.get("queries", 0))
    if name.startswith("autoattack"):  # APGD-CE, APGD-T and FAB-T per target class, Square
        t = spec.get("n_target_classes", 9)
        return spec.get("n_iter", 100) * (1 + 2 * t) * spec.get("eot_iter", 1), spec.get("n_queries", 5000)
    if name in ("transfer", "protocol-variant"):
        return attack_units(spec.get("attack", {"name": "fgsm"}))
    raise ConfigError("attack", name, "an attack of the audit plan")


@dataclass(frozen=True)
class Units:
    """Unit costs in seconds per image, and the hours they add up to (what a chapter's ``cost`` row uses).

    ``ode``: {train, step, query} of the Neural ODE; ``cnn``: {model name: seconds per training image}. A CNN attack
    step is taken as one training step, a CNN query as a third of it; training runs on MNIST's 60k images."""
    ode: dict
    cnn: dict

    def train_h(self, spec: dict, kind: str | None = None) -> float:
        """Hours to train a profile model entry for its epochs (``kind='ode'`` or an ``odenet`` entry: the ODE's
        unit cost; otherwise its CNN's)."""
        per = self.ode["train"] if kind == "ode" or spec["model"] == "odenet" else self.cnn[spec["model"]]
        return spec["train"]["epochs"] * MNIST_TRAIN * per / 3600

    def attack_h(self, model: str, n: int, units: tuple) -> float:
        """Hours of ``units`` = (gradient steps, forward queries) per image on ``n`` images of ``model``."""
        c = self.ode if model == "odenet" else {"step": self.cnn[model], "query": self.cnn[model] / 3}
        return n * (units[0] * c["step"] + units[1] * c["query"]) / 3600

    @staticmethod
    def attack_units(spec: dict) -> tuple:
        """(gradient steps, forward queries) per image of one attack spec (see :func:`attack_units`)."""
        return attack_units(spec)

    @staticmethod
    def audit_units(p: dict) -> tuple:
        """(gradient steps, forward queries) per image and eps of the audit's attacks on every point
        (:func:`natrob.audit.attack_plan` under ``p``'s budget and paper attack; the cascade on survivors is not
        counted)."""
        from .. import reference
        from ..audit import attack_plan
        from ..harness.plan import standalone
        plan = attack_plan(p["AUDIT_BUDGET"], {}, paper_attack=reference.paper_attack(p["PGD_STEPS"], p["PGD_ALPHA"]))
        return tuple(sum(x) for x in zip(*[attack_units(s) for s in standalone(plan)]))

    @staticmethod
    def grid_cells(p: dict) -> tuple:
        """Notebook 07's grid under ``p``: ({key: model entry} of the nets it trains, [cells]) (natrob.study.grid)."""
        from ..study.grid import build_cells
        return build_cells(p["ODE"], p["GRID_TOLS"], p["GRID_GRAD"], p["GRID_T1"], p["GRID_EPOCHS"],
                           p["GRID_PROTOCOLS"], p["GRID_CROSS"])


def paper_estimate(p: dict, ode: dict, cnn: dict, records) -> list:
    """Hours per chapter of profile ``p`` (the ``paper`` profile), one row per chapter record with a ``cost``
    (:mod:`natrob.chapters`), from unit costs in seconds per image: ``ode`` {train, step, query} and ``cnn``
    {model name: train}. Attacks that run on every point are counted; those that run only on points that survived
    the others (the audit's cascade, the grid's stronger attacks) are not: they add little for a broken model and
    up to their full cost for a robust one."""
    units = Units(ode, cnn)
    return [ch.cost(p, units) for ch in records if ch.cost]
