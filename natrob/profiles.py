"""Profiles: parameter files that run_all passes to every notebook (papermill parameters)."""
from __future__ import annotations

import yaml

from . import paths
from .errors import ConfigError, UnknownNameError


def available() -> list:
    """Profiles a user can run (``base`` is only the parent the others extend)."""
    return sorted(p.stem for p in paths.PROFILES.glob("*.yaml") if p.stem != "base")


def _read(name: str, seen: tuple = ()) -> dict:
    path = paths.PROFILES / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError("profile", name, available())
    if name in seen:
        raise ConfigError("extends", name, f"a profile that does not extend itself (chain {' -> '.join(seen + (name,))})")
    own = yaml.safe_load(path.read_text()) or {}
    parent = own.pop("extends", None if name == "base" else "base")
    if parent is None:
        return own
    merged = _read(parent, seen + (name,))
    unknown = sorted(set(own) - set(merged))
    if unknown:  # a key the parent lacks is a typo or a parameter no notebook declares
        raise ConfigError(f"profiles/{name}.yaml keys", unknown, "parameters defined in profiles/base.yaml")
    return {**merged, **own}  # a profile's entry replaces the parent's whole entry


def load_profile(name: str) -> dict:
    """The parameters of profile ``name``: ``profiles/base.yaml`` with the profile's own entries replacing whole
    entries (a profile may ``extends:`` another, e.g. paper-cifar10 extends paper), plus ``PROFILE``."""
    if name == "base" or name not in available():
        raise UnknownNameError("profile", name, available())
    params = _read(name)
    params["PROFILE"] = name
    return params


def train_config(spec: dict):
    """A TrainConfig from a profile's model entry ({'model':..., 'kwargs':..., 'train': {...}})."""
    from .train import TrainConfig
    return TrainConfig(**spec.get("train", {}))


def get_profile_model(spec: dict, dataset, seed: int = 0, progress: bool = True, device=None):
    """Train (or load from the store) the model a profile entry describes; returns (model, record). ODE nets keep
    every epoch's weights (notebook 08's training-length axis reads them); other models do not (a paper-size
    ResNet50 would keep about 94 MB per epoch)."""
    from .train import get_model
    return get_model(spec["model"], dataset, train_config(spec), model_kwargs=spec.get("kwargs", {}), seed=seed,
                     device=device, progress=progress, keep_epochs=spec["model"] == "odenet")



TABLE1_MODELS = {"ResNet50": "RESNET50", "Neural ODE": "ODE"}  # the paper's two models -> their profile entry


def model_loaders(params: dict, dataset, seed: int = 0, labels=None) -> dict:
    """``{label: loader}`` for every model the notebooks compare, where ``loader()`` trains or loads it from the store
    and returns ``(model, record)``: the paper's ResNet50 and Neural ODE (profile entries ``RESNET50``, ``ODE``) and
    the Table 2 trainers on ``AT_MODEL`` (``standard``, ``pgd_at``, ``trades``, ``yopo``). Notebooks 03, 04, 05 and 06
    all get their models here, so they share one model store entry per model. ``labels`` keeps only those."""
    from .train import get_model, table2_configs
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
