"""natrob: a reproducible study of "Towards Natural Robustness Against Adversarial Examples".

The public face; everything else lives in the submodules named for what they hold."""
from .attacks import ATTACKS, make_attack
from .audit import audit_model
from .data import DATASETS, load_dataset
from .evaluate import evaluate
from .results import write_result
from .models import MODELS, build_model
from .train import TrainConfig, get_model, train

__all__ = ["ATTACKS", "make_attack", "audit_model", "DATASETS", "load_dataset", "evaluate", "write_result", "MODELS",
           "build_model", "TrainConfig", "get_model", "train"]
__version__ = "0.1.0"
