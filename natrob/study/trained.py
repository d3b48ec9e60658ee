"""A trained net with every epoch kept (notebooks 08 and 09): train or load it from the model store, reach any kept
epoch's weights, and time the steps that use it.
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field

import torch

from .pipelines import sum_lr

HISTORY_KEYS = ("epoch", "lr", "test_acc", "train_acc", "loss", "nfe_forward_mean", "wall_s")


class Laps(dict):
    """{step: wall seconds}; ``with laps("map"):`` adds the block's time to its step (the result file's wall_s)."""

    @contextlib.contextmanager
    def __call__(self, step: str):
        t0 = time.time()
        try:
            yield
        finally:
            self[step] = self.get(step, 0.0) + time.time() - t0


@dataclass
class TrainedNet:
    """A trained net and its training: ``model`` (the last epoch), ``record`` (the model store's, with "history"),
    ``folder`` (its store folder, one checkpoint per kept epoch), ``entry`` (the profile model entry) and ``n_train``
    (training images, for the summed learning rate)."""
    model: object
    record: dict
    folder: object
    entry: dict
    n_train: int
    sums: list = field(init=False)

    def __post_init__(self):
        self.sums = sum_lr(self.history, self.n_train, int(self.entry["train"].get("batch_size", 128)))

    @property
    def history(self) -> list:
        return self.record["history"]

    @property
    def last(self) -> int:
        return len(self.history)

    def stored(self) -> list:
        """The epochs whose weights the store keeps, and the last."""
        from ..train.store import epoch_checkpoints
        return sorted(set(epoch_checkpoints(self.folder)) | {self.last})

    def at(self, epoch: int):
        """The net's weights after ``epoch`` (the last epoch is ``model`` itself)."""
        from ..train.checkpoint import load_checkpoint, load_into
        from ..train.store import epoch_checkpoints
        if epoch == self.last:
            return self.model
        path = epoch_checkpoints(self.folder)[epoch]
        return load_into(copy.deepcopy(self.model), load_checkpoint(path), path).eval()

    def training(self, keys=HISTORY_KEYS) -> dict:
        """The result file's record of the training: schedule, epochs done, history, summed rates."""
        cfg = self.entry["train"]
        return {"epochs_scheduled": int(cfg["epochs"]), "epochs_done": self.last, "train": cfg,
                "history": [{k: h.get(k) for k in keys} for h in self.history], "sum_lr": self.sums}


def train(entry: dict, dataset, seed: int = 0, until: int | None = None, progress: bool = True) -> TrainedNet:
    """Train (or load, or resume) the net of profile model ``entry`` ({model, kwargs, train}) keeping every epoch,
    up to ``until`` epochs of its schedule (None: all)."""
    from ..train import get_model
    from .profile_models import train_config
    from ..train.store import entry_folder, store_key
    cfg = train_config(entry)
    model, record = get_model(entry["model"], dataset, cfg, model_kwargs=entry["kwargs"], seed=seed,
                              progress=progress, keep_epochs=True, until_epoch=until)
    key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
    folder = entry_folder(entry["model"], dataset.name, key)
    return TrainedNet(model, record, folder, entry, len(dataset.train_y))


def profile_and_data(profile: str, threads: int | None = None):
    """(parameters, dataset) of ``profile`` with torch's threads set (None: the profile's THREADS, else 2): what
    the training commands of notebooks 08 and 09 start from."""
    from ..data import load_profile_dataset
    from ..profiles import load_profile
    params = load_profile(profile)
    torch.set_num_threads(int(threads or params.get("THREADS") or 2))
    return params, load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                        seed=params["SEED"])
