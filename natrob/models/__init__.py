"""Model registry. ``build_model(name, dataset, **kwargs)`` returns a module mapping [0,1] images to logits."""
from __future__ import annotations

from functools import partial

from ..errors import UnknownNameError
from .cnn import Linear, SmallCNN
from .common import Normalize
from .odenet import ODENet, solver_settings
from .preact import PreActResNet18
from .resnet import CifarResNet
from .resnet50 import ResNet50
from .skipnets import SKIP_BLOCKS

MODELS = {
    "resnet": CifarResNet,                              # depth 6n+2, step h
    "resnet56": partial(CifarResNet, depth=56),         # Fig. 1
    "resnet3block": partial(CifarResNet, depth=8),      # Fig. 1 transfer source: three residual blocks
    "resnet50": ResNet50,                               # Table 1, Fig. 2, Fig. 3
    "preact_resnet18": PreActResNet18,                  # Table 2
    "odenet": ODENet,                                   # Table A1
    "cnn": SmallCNN,
    "linear": Linear,
}


def data_spec(dataset) -> dict:
    """What a model needs to know about its data: channels, classes, normalisation."""
    return {"in_channels": dataset.shape[0], "num_classes": dataset.num_classes,
            "mean": tuple(dataset.mean), "std": tuple(dataset.std)}


def build_model(name: str, dataset=None, spec: dict | None = None, **kwargs):
    """Build a model of the registry ``MODELS`` by name, for ``dataset``'s channels, classes and normalisation.

    ``spec`` replaces ``dataset`` where there is none (a checkpoint's record, see :func:`data_spec`);
    ``kwargs`` go to the model's constructor. The model carries ``natrob_arch`` ({name, spec, kwargs}) so that
    checkpoints can refuse weights of another architecture and :func:`natrob.train.load_model` can rebuild it.
    Raises UnknownNameError for an unknown name."""
    if name not in MODELS:
        raise UnknownNameError("model", name, MODELS)
    spec = dict(spec) if spec is not None else (data_spec(dataset) if dataset is not None else {})
    if name == "linear":
        spec.pop("mean", None), spec.pop("std", None)
        if dataset is not None:
            kwargs.setdefault("image_size", dataset.shape[-1])
    model = MODELS[name](**spec, **kwargs)
    model.natrob_arch = {"name": name, "spec": spec, "kwargs": kwargs}
    return model


__all__ = ["MODELS", "build_model", "data_spec", "ODENet", "solver_settings", "CifarResNet", "ResNet50",
           "PreActResNet18", "SmallCNN",
           "Linear", "Normalize", "SKIP_BLOCKS"]
