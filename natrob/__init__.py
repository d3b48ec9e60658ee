"""natrob: a reproducible study of "Towards Natural Robustness Against Adversarial Examples".

The public face; everything else lives in the submodules named for what they hold. The public names are imported
on first use (PEP 562), so that importing a light submodule (the report, the verify command, the result schemas)
does not import torch and the evaluation harness with it."""
import importlib as _importlib
import os as _os

_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_PUBLIC = {"ATTACKS": "attacks", "make_attack": "attacks", "audit_model": "audit", "DATASETS": "data",
           "load_dataset": "data", "write_result": "report.schemas", "MODELS": "models", "build_model": "models",
           "TrainConfig": "train", "get_model": "train", "train": "train"}
__all__ = sorted(_PUBLIC) + ["evaluate"]
__version__ = "0.1.0"


def __getattr__(name):
    # ``natrob.harness.evaluate`` is the harness module once imported; the function is
    # ``natrob.harness.evaluate.evaluate``
    if name == "evaluate":
        return _importlib.import_module(".harness.evaluate", __name__).evaluate
    if name in _PUBLIC:
        return getattr(_importlib.import_module("." + _PUBLIC[name], __name__), name)
    raise AttributeError(f"module 'natrob' has no attribute {name!r}")
