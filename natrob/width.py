"""The paper's width (notebook 08): ODE nets of the Table A1 architecture at several widths and training lengths.

Table A1's MNIST net has 128 channels; natrob's profiles train narrower ones on CPUs. This chapter trains the same
architecture (4 conv layers, dopri5, t1 = 100, the profile's tolerance) at every width of ``WIDTH_CHANNELS`` and
keeps every epoch's weights (the training-length axis). A width equal to the profile's ``ODE`` entry is that model
itself (notebook 03's); the others use ``WIDTH_TRAIN``. ``WIDTH_UNTIL`` ({"128": 6}) stops a width after that many
epochs of its schedule where a run's time ran out, and the results say so.

    python -m natrob.width --profile mnist --channels 128 [--until 6]   # train (resumes from the model store)
"""
from __future__ import annotations

import argparse

from .profiles import load_profile


def width_entry(params: dict, channels: int) -> dict:
    """The profile model entry ({model, kwargs, train}) of the ODE net at ``channels`` channels."""
    ode = params["ODE"]
    if int(ode["kwargs"]["channels"]) == int(channels):
        return ode
    return {"model": ode["model"], "kwargs": {**ode["kwargs"], "channels": int(channels)},
            "train": dict(params["WIDTH_TRAIN"])}


def until_epoch(params: dict, channels: int):
    """Epochs of the schedule a width is trained for in this profile (None: all of them)."""
    until = (params.get("WIDTH_UNTIL") or {}).get(str(int(channels)))
    return int(until) if until is not None else None


def train_width(params: dict, dataset, channels: int, seed: int = 0, progress: bool = True, until=None):
    """Train (or load, or resume) the ODE net of width ``channels``; returns (model, record, store folder)."""
    from . import paths
    from .profiles import train_config
    from .train import get_model
    from .train.store import store_key
    entry = width_entry(params, channels)
    cfg = train_config(entry)
    until = until if until is not None else until_epoch(params, channels)
    model, record = get_model(entry["model"], dataset, cfg, model_kwargs=entry["kwargs"], seed=seed,
                              progress=progress, keep_epochs=True, until_epoch=until)
    key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
    return model, record, paths.checkpoints_dir() / f"{entry['model']}-{dataset.name}-{key}"


def main(argv=None):
    p = argparse.ArgumentParser(description="Train one width of notebook 08 into the model store (resumable).")
    p.add_argument("--profile", default="quick")
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--until", type=int, default=None, help="stop after this many epochs of the schedule")
    a = p.parse_args(argv)
    import torch

    from . import paths
    from .data import load_profile_dataset
    params = load_profile(a.profile)
    paths.set_profile(a.profile)
    torch.set_num_threads(int(params.get("THREADS") or 2))
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    _, record, folder = train_width(params, data, a.channels, seed=params["SEED"], until=a.until)
    print(f"{a.channels} channels: {record['epochs_done']} epochs, clean {record['clean_acc']:.4f}, store {folder}")


if __name__ == "__main__":
    main()
