"""The models a profile's entries describe (``{"model": ..., "kwargs": ..., "train": {...}}``), trained or loaded
from the model store: what every notebook gets its models from, so notebooks share one store entry per model."""
from __future__ import annotations

from ..errors import ConfigError
from ..train.config import TrainConfig
from ..train.store import get_model
from ..train.table2 import table2_configs


def train_config(spec: dict):
    """A TrainConfig from a profile's model entry ({'model':..., 'kwargs':..., 'train': {...}})."""
    return TrainConfig(**spec.get("train", {}))


def get_profile_model(spec: dict, dataset, seed: int = 0, progress: bool = True, device=None):
    """Train (or load from the store) the model a profile entry describes; returns (model, record). ODE nets keep
    every epoch's weights (notebook 08's training-length axis reads them); other models do not (a paper-size
    ResNet50 would keep about 94 MB per epoch)."""
    return get_model(spec["model"], dataset, train_config(spec), model_kwargs=spec.get("kwargs", {}), seed=seed,
                     device=device, progress=progress, keep_epochs=spec["model"] == "odenet")



TABLE1_MODELS = {"ResNet50": "RESNET50", "Neural ODE": "ODE"}  # the paper's two models -> their profile entry


def model_loaders(params: dict, dataset, seed: int = 0, labels=None) -> dict:
    """``{label: loader}`` for every model the notebooks compare, where ``loader()`` trains or loads it from the store
    and returns ``(model, record)``: the paper's ResNet50 and Neural ODE (profile entries ``RESNET50``, ``ODE``) and
    the Table 2 trainers on ``AT_MODEL`` (``standard``, ``pgd_at``, ``trades``, ``yopo``). Notebooks 03, 04, 05 and 06
    all get their models here, so they share one model store entry per model. ``labels`` keeps only those."""
    loaders = {label: (lambda key=key: get_profile_model(params[key], dataset, seed))
               for label, key in TABLE1_MODELS.items() if key in params}
    at = params.get("AT_MODEL")
    if at:
        trainers = table2_configs(at, params["AT_EPS"], params["AT_ALPHA"], params["AT_STEPS"], params["TRADES_BETA"],
                                  params["YOPO_M"], params["YOPO_N"])
        for method, (_, cfg) in trainers.items():
            loaders[method] = (lambda cfg=cfg: get_model(at["model"], dataset, cfg, model_kwargs=at.get("kwargs", {}),
                                                         seed=seed))
    if labels is not None:
        unknown = [m for m in labels if m not in loaders]
        if unknown:
            raise ConfigError("model labels", unknown, "some of " + ", ".join(loaders))
        loaders = {m: loaders[m] for m in labels}
    return loaders
