"""natrob: a reproducible study of "Towards Natural Robustness Against Adversarial Examples".

The public face; everything else lives in the submodules named for what they hold."""
import os as _os

# OpenMP worker threads that spin while they wait take the cores that other processes (and the other torch
# thread) need: on a shared 2-core machine a digits ODE solve ran 10x slower and more with libgomp's default
# policy (bench/ode_speed.py measures it). libgomp reads this when torch is first loaded, so it takes effect
# where natrob is imported before torch, and in every process started from one (papermill kernels, workers).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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
