"""Training configuration as plain values (what a papermill parameters cell holds)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import ConfigError

OPTIMIZERS = ("adam", "sgd")
METHODS = ("standard", "pgd_at", "trades", "yopo")
PRECISIONS = ("float32", "bfloat16")


@dataclass
class TrainConfig:
    """How to train a model, as plain values (they key the model store).

    ``epochs`` (10), ``batch_size`` (128), ``optimizer`` ('adam', or 'sgd'), ``lr`` (1e-3), ``momentum`` (0.9,
    SGD), ``weight_decay`` (0.0), ``halve_every`` (None; n halves the rate every n epochs), ``milestones``
    ((); fractions of training at which the rate is divided by 10), ``method`` ('standard', 'pgd_at', 'trades'
    or 'yopo'), ``method_params`` ({}; see :mod:`natrob.train.adversarial`) and ``precision`` ('float32', or
    'bfloat16': bf16 convs for training only, see :mod:`natrob.train.precision`). Bad values raise ConfigError."""
    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    # Table A1: "every 50 epochs, the learning rate is reduced to half" -> halve_every=50.
    halve_every: int | None = None
    # He et al. 2016 CIFAR schedule: divide by 10 at these fractions of training (32k/64k, 48k/64k iterations).
    milestones: tuple = ()
    method: str = "standard"
    method_params: dict = field(default_factory=dict)
    # 'bfloat16': the fast training path (natrob.train.precision); float32 weights either way
    precision: str = "float32"

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError("optimizer", self.optimizer, "one of " + ", ".join(OPTIMIZERS))
        if self.precision not in PRECISIONS:
            raise ConfigError("precision", self.precision, "one of " + ", ".join(PRECISIONS))
        if self.method not in METHODS:
            raise ConfigError("method", self.method, "one of " + ", ".join(METHODS))
        if int(self.epochs) < 1:
            raise ConfigError("epochs", self.epochs, "an integer >= 1")
        if not self.lr > 0:
            raise ConfigError("lr", self.lr, "a positive number")
        self.milestones = tuple(self.milestones)

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (milestones as a list)."""
        d = asdict(self)
        d["milestones"] = list(self.milestones)
        if d["precision"] == "float32":
            del d["precision"]  # float32 models keep the model-store keys they had before the field existed
        return d


def table_a1(dataset: str, **overrides) -> TrainConfig:
    """The paper's Neural ODE training settings (Table A1)."""
    base = {"mnist": dict(epochs=100, lr=1e-3), "cifar10": dict(epochs=200, lr=1e-4)}[dataset]
    return TrainConfig(optimizer="adam", batch_size=32, halve_every=50, **{**base, **overrides})


def he_et_al(epochs: int = 182, **overrides) -> TrainConfig:
    """He et al. 2016's CIFAR ResNet recipe: SGD 0.1, momentum 0.9, wd 1e-4, batch 128, /10 at 50% and 75%."""
    return TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=1e-4, batch_size=128, epochs=epochs,
                       milestones=(0.5, 0.75), **overrides)
