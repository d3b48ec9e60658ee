"""Model store: trained models keyed by a hash of (model, data, training config, seed), so notebooks reuse them."""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import torch

from .. import paths
from ..errors import CheckpointError
from ..locks import exclusive
from ..models import build_model
from ..provenance import provenance
from ..results import read_json, write_json
from .checkpoint import MODE_ENV, load_checkpoint, load_into, note_read, save_checkpoint
from .config import TrainConfig
from .loop import default_device, train


def _spec(model_name, model_kwargs, dataset, cfg: TrainConfig, seed) -> dict:
    return {"model": model_name, "kwargs": model_kwargs, "data": dict(dataset.describe()), "train": cfg.to_dict(),
            "seed": seed}


def store_key(model_name, model_kwargs, dataset, cfg: TrainConfig, seed) -> str:
    """16 hex digits of a SHA-256 of everything that determines a trained model: model name and arguments,
    the dataset's description, the training config and the seed."""
    blob = json.dumps(_spec(model_name, model_kwargs, dataset, cfg, seed), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def store_root(store_dir=None) -> Path:
    """The model store's folder: ``store_dir`` where given (a path), else ``checkpoints/`` under the artifacts
    folder (:func:`natrob.paths.checkpoints_dir`)."""
    return Path(store_dir or paths.checkpoints_dir())


def entry_folder(model_name: str, dataset_name: str, key: str, store_dir=None) -> Path:
    """The folder of one store entry, ``<store>/<model>-<dataset>-<key>``, with ``key`` from :func:`store_key`
    (``"*"`` gives the glob pattern of every entry of that model and dataset) and the store of :func:`store_root`."""
    return store_root(store_dir) / f"{model_name}-{dataset_name}-{key}"


def entry_key(folder) -> str:
    """The store key in an entry's folder name (the last part of :func:`entry_folder`)."""
    return Path(folder).name.rsplit("-", 1)[-1]


def write_spec(folder, model_name, model_kwargs, dataset, cfg: TrainConfig, seed) -> Path:
    """``folder/spec.json``: what the entry's key hashes, so that a shorter run of the same schedule can find the
    epoch it needs in a longer run (:func:`_from_longer_run`)."""
    path = Path(folder) / "spec.json"
    if not path.exists():
        write_json(path, json.loads(json.dumps(_spec(model_name, model_kwargs, dataset, cfg, seed), default=str)))
    return path


def _same_schedule(short: TrainConfig, long: TrainConfig) -> bool:
    """Whether the first ``short.epochs`` epochs of ``long`` are ``short`` (every setting but the epoch count
    equal, the same learning rate in each of those epochs)."""
    from .loop import lr_at
    a, b = short.to_dict(), long.to_dict()
    a.pop("epochs"), b.pop("epochs")
    return (a == b and long.epochs > short.epochs
            and all(lr_at(short, e) == lr_at(long, e) for e in range(short.epochs)))


def _from_longer_run(folder: Path, model_name, model_kwargs, dataset, cfg: TrainConfig, seed):
    """A stored longer run of the same schedule that kept epoch ``cfg.epochs``: (path of that epoch's weights,
    its history up to there, the longer run's key), or None. The training loop is deterministic given the
    seed (data order per epoch, RNG state saved), so those weights are what training ``cfg`` would produce."""
    want = json.loads(json.dumps(_spec(model_name, model_kwargs, dataset, cfg, seed), default=str))
    for spec_path in sorted(folder.parent.glob(entry_folder(model_name, dataset.name, "*").name + "/spec.json")):
        try:
            other = read_json(spec_path)
            long_cfg = TrainConfig(**other["train"])
        except Exception:  # a foreign or older file: not a candidate
            continue
        same = {k: v for k, v in other.items() if k != "train"} == {k: v for k, v in want.items() if k != "train"}
        epoch_file = spec_path.parent / f"epoch-{cfg.epochs}.pt"
        if same and _same_schedule(cfg, long_cfg) and epoch_file.exists():
            history = load_checkpoint(epoch_file).get("history") or []
            if len(history) >= cfg.epochs:
                return epoch_file, history[:cfg.epochs], entry_key(spec_path.parent)
    return None


def _at_epoch(folder: Path, until: int):
    """(weights path, history) of epoch ``until`` of a run that has gone past it and kept it, else None."""
    epoch_file = folder / f"epoch-{until}.pt"
    if not epoch_file.exists():
        return None
    history = load_checkpoint(epoch_file).get("history") or []
    return (epoch_file, history[:until]) if len(history) >= until else None


def get_model(model_name: str, dataset, cfg: TrainConfig, model_kwargs: dict | None = None, seed: int = 0,
              device=None, store_dir=None, progress: bool = True, retrain: bool = False,
              keep_epochs: bool = False, until_epoch: int | None = None):
    """Return ``(model, record)``: a trained model from the store, training (or resuming) it when needed.

    ``model_name`` and ``model_kwargs`` (None: {}) as for :func:`natrob.models.build_model`; ``cfg`` a
    :class:`TrainConfig`; ``seed`` (0) seeds initial weights and data order; ``device`` (None: CUDA when
    available); ``store_dir`` (None: ``checkpoints/``); ``progress`` (True): progress bars; ``retrain``
    (False): train again even when stored; ``keep_epochs`` (False): keep every epoch's weights as
    ``epoch-<n>.pt`` beside ``final.pt`` (see :func:`epoch_checkpoints`); ``until_epoch`` (None): stop after
    that many epochs of ``cfg``'s schedule and return that model, unfinished (``record['epochs_done']`` <
    ``cfg.epochs``; no ``final.pt``; a later call resumes; where the run has gone on past it and kept that
    epoch, exactly that epoch's weights). A longer run of the same schedule (finished or not) that kept epoch
    ``cfg.epochs`` serves a shorter one without training (``record['from_longer_run']``). ``record`` holds the
    training history, clean test accuracy, store key and provenance (also in ``meta.json``). The model is
    returned in eval mode. The entry's folder is :func:`entry_folder`."""
    model_kwargs = dict(model_kwargs or {})
    key = store_key(model_name, model_kwargs, dataset, cfg, seed)
    folder = entry_folder(model_name, dataset.name, key, store_dir)
    torch.manual_seed(seed)
    model = build_model(model_name, dataset, **model_kwargs)
    device = torch.device(device) if device is not None else default_device()
    served = None if retrain else _stored(model, model_name, model_kwargs, dataset, cfg, seed, key, folder, device,
                                          until_epoch)
    if served is not None:
        return served
    # notebooks running side by side may want the same model: the first trains it, the others wait and load it
    # (a run training on elsewhere past ``until_epoch`` already served it above, without waiting for its lock)
    with exclusive(folder / ".lock"):
        served = None if retrain else _stored(model, model_name, model_kwargs, dataset, cfg, seed, key, folder,
                                              device, until_epoch)
        return served or _obtain(model, model_name, model_kwargs, dataset, cfg, seed, key, folder, device,
                                 progress, retrain, keep_epochs, until_epoch)


def _stored(model, model_name, model_kwargs, dataset, cfg, seed, key, folder, device, until_epoch):
    """(model, record) from the store without training: the finished model, or epoch ``until_epoch`` of a run that
    has gone past it and kept it; else None."""
    final, meta_path = folder / "final.pt", folder / "meta.json"
    if final.exists() and meta_path.exists():
        load_into(model, load_checkpoint(final), final)
        return model.to(device).eval(), read_json(meta_path)
    if until_epoch is not None and until_epoch < cfg.epochs:
        stopped = _at_epoch(folder, until_epoch)  # a run that went on past ``until_epoch`` (training elsewhere)
        if stopped is not None:
            load_into(model, load_checkpoint(stopped[0]), stopped[0])
            return model.to(device).eval(), _record(model_name, model_kwargs, dataset, key, stopped[1], cfg, seed,
                                                    device, 0.0)
    return None


def _obtain(model, model_name, model_kwargs, dataset, cfg, seed, key, folder, device, progress, retrain, keep_epochs,
            until_epoch):
    """A model the store does not hold yet: a longer run's epoch, or training (resumed from ``last.pt``)."""
    final, meta_path = folder / "final.pt", folder / "meta.json"
    longer = None if retrain or (folder / "last.pt").exists() else _from_longer_run(
        folder, model_name, model_kwargs, dataset, cfg, seed)
    if longer is not None:
        load_into(model, load_checkpoint(longer[0]), longer[0])
        record = _record(model_name, model_kwargs, dataset, key, longer[1], cfg, seed, device, 0.0)
        record["from_longer_run"] = {"key": longer[2], "epoch": cfg.epochs}
        save_checkpoint(final, model, history=longer[1])
        write_json(meta_path, record)
        note_read(final)
        return model.to(device).eval(), record
    if os.environ.get(MODE_ENV) == "published":
        raise CheckpointError(f"model {folder.name} is not among the published weights this run installed, and a run "
                              "on published weights trains nothing; retrain it with ./run_all.sh --weights train "
                              "(with the same --profile and -p values)")
    folder.mkdir(parents=True, exist_ok=True)
    write_spec(folder, model_name, model_kwargs, dataset, cfg, seed)
    t0 = time.time()
    history = train(model, dataset, cfg, checkpoint_dir=folder, seed=seed, device=device, progress=progress,
                    keep_epochs=keep_epochs, until_epoch=until_epoch)
    record = _record(model_name, model_kwargs, dataset, key, history, cfg, seed, device, time.time() - t0)
    if len(history) < cfg.epochs:
        write_json(meta_path, record)  # who trained the epochs so far (published weights cite it); no final.pt yet
        if (folder / f"epoch-{len(history)}.pt").exists():  # what a later run reads instead of training
            note_read(folder / f"epoch-{len(history)}.pt")
        return model.eval(), record  # unfinished on purpose (until_epoch): no final.pt, the next call resumes
    save_checkpoint(final, model, history=history)
    write_json(meta_path, record)
    note_read(final)
    return model.eval(), record



def _record(model_name, model_kwargs, dataset, key, history, cfg, seed, device, wall_s) -> dict:
    return {"model": model_name, "model_kwargs": model_kwargs, "dataset": dataset.describe(), "key": key,
            "history": history, "clean_acc": history[-1]["test_acc"], "epochs_done": len(history),
            "provenance": provenance({"model": model_name, "model_kwargs": model_kwargs, "train": cfg.to_dict()},
                                     seed=seed, device=device, wall_time_s=wall_s)}


def load_model(folder, device="cpu"):
    """Load a trained model from a store folder without the dataset or training config that produced it.

    ``folder``: a model-store entry, ``<store>/<model>-<dataset>-<key>/`` (``record["key"]`` from
    :func:`get_model`; the store is ``checkpoints/`` unless ``store_dir`` was given); ``device`` ("cpu").
    The architecture is rebuilt from the checkpoint itself and the weights are loaded with
    ``weights_only=True``. Returns the model in eval mode; its training record is ``folder/meta.json``.
    Raises :class:`natrob.errors.CheckpointError` when ``final.pt`` is missing, corrupt or does not fit."""
    folder = Path(folder)
    ckpt = load_checkpoint(folder / "final.pt")
    arch = ckpt.get("arch")
    if not (isinstance(arch, dict) and {"name", "spec", "kwargs"} <= set(arch)):
        raise CheckpointError(f"checkpoint {folder / 'final.pt'} has no architecture record (arch={arch!r}), so the "
                              "model cannot be rebuilt from it; build the model with natrob.models.build_model and "
                              "load the weights with natrob.train.load_into")
    model = build_model(arch["name"], spec=arch["spec"], **arch["kwargs"])
    return load_into(model, ckpt, folder / "final.pt").to(device).eval()


def epoch_checkpoints(folder) -> dict:
    """{epoch (1-based): path} of the per-epoch weights a ``keep_epochs`` training left in a store folder."""
    out = {}
    for p in Path(folder).glob("epoch-*.pt"):
        try:
            out[int(p.stem.split("-")[1])] = p
        except ValueError:
            continue
    return dict(sorted(out.items()))
