"""Profiles: parameter files that run_all passes to every notebook (papermill parameters)."""
from __future__ import annotations

import yaml

from . import paths
from .errors import UnknownNameError


def available() -> list:
    return sorted(p.stem for p in paths.PROFILES.glob("*.yaml"))


def load_profile(name: str) -> dict:
    path = paths.PROFILES / f"{name}.yaml"
    if not path.exists():
        raise UnknownNameError("profile", name, available())
    params = yaml.safe_load(path.read_text()) or {}
    params["PROFILE"] = name
    return params


def train_config(spec: dict):
    """A TrainConfig from a profile's model entry ({'model':..., 'kwargs':..., 'train': {...}})."""
    from .train import TrainConfig
    return TrainConfig(**spec.get("train", {}))


def get_profile_model(spec: dict, dataset, seed: int = 0, progress: bool = True, device=None):
    """Train (or load from the store) the model a profile entry describes; returns (model, record)."""
    from .train import get_model
    return get_model(spec["model"], dataset, train_config(spec), model_kwargs=spec.get("kwargs", {}), seed=seed,
                     device=device, progress=progress)

