"""Checkpoints: atomic writes, ``weights_only=True`` loads, clear errors for corrupt or mismatched files."""
from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError
from ..results import torch_save

# the environment the runner (natrob.run.runner) sets for its kernels, read by the model store; defined here, at the
# store's bottom, so natrob.run.weights can import them from the store without the store importing natrob.run.weights
READS_ENV = "NATROB_MODEL_READS"  # the runner names the profile's log here; the store appends to it
MODE_ENV = "NATROB_WEIGHTS"       # "published": the store refuses to train (nothing trained in a weight's place)


def unwrap(model):
    """The model inside ``DataParallel``, ``DistributedDataParallel`` and ``torch.compile`` wrappers (nested
    ones too): the module whose weights and architecture record a checkpoint holds."""
    while True:
        if isinstance(model, (torch.nn.DataParallel, torch.nn.parallel.DistributedDataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def save_checkpoint(path, model, **extra) -> Path:
    """Write the model's weights, its architecture record (``natrob_arch``, from ``build_model``) and any
    ``extra`` entries (optimiser state, RNG, history) to ``path`` atomically. A ``DataParallel``/DDP/compiled
    model is saved as the module inside it (no ``module.`` prefixes), so any process can load it. Returns the
    path."""
    model = unwrap(model)
    arch = getattr(model, "natrob_arch", None)
    return torch_save(path, {"arch": _plain(arch), "state_dict": model.state_dict(), **extra})


def load_checkpoint(path, map_location="cpu") -> dict:
    """Read a checkpoint with ``weights_only=True`` onto ``map_location`` ("cpu"). Raises
    :class:`natrob.errors.CheckpointError` when it is missing, corrupt or not a natrob checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError, OSError) as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a natrob checkpoint ({type(exc).__name__}: "
                              f"{str(exc)[:200]}); {_mend(path)}") from exc
    if path.name != "last.pt":  # last.pt resumes training; it is never what an evaluation reads
        note_read(path)
    return ckpt


def _mend(path: Path) -> str:
    """How to get going again after a damaged checkpoint: for a model-store file, the commands that keep it for
    inspection and let the store make it again."""
    if not (path.parent / "spec.json").exists():
        return "replace it with a good copy"
    return (f"to mend it, keep it for inspection and let the store make it again: `mv {path} {path}.damaged`, then "
            "re-run the same command (the store retrains that model; `./run_all.sh --profile P --weights published` "
            "puts a published profile's file back instead)")


def note_read(path):
    """Log that a run used the model-store file ``path``: ``<folder>/<name>`` appended to the file that
    ``NATROB_MODEL_READS`` names, where the runner sets it (:mod:`natrob.run.weights` publishes exactly the files a
    profile's run used). Files outside a store folder (``<store>/<model>-<data>-<key>/``) are not logged."""
    log = os.environ.get(READS_ENV)
    path = Path(path)
    if not log or not (path.parent / "spec.json").exists():
        return
    line = json.dumps({"file": f"{path.parent.name}/{path.name}"}) + "\n"
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:  # one short O_APPEND write per line: side-by-side writers do not interleave
        f.write(line)


def load_into(model, ckpt: dict, path="<checkpoint>"):
    """Load a checkpoint's weights into ``model`` (or the module inside its DataParallel/DDP wrapper) and
    return ``model``. Architecture records compare equal across tuples and lists; weights saved from a
    wrapper by older code (``module.`` prefixes) load too. Refuses (``CheckpointError``, naming ``path``) a
    checkpoint recorded for another architecture or whose weights do not fit."""
    inner = unwrap(model)
    want = _plain(getattr(inner, "natrob_arch", None))
    have = _plain(ckpt.get("arch"))
    if want is not None and have is not None and want != have:
        raise CheckpointError(f"checkpoint {path} holds architecture {have} but the model asked for is {want}; "
                              "use the matching model settings or retrain")
    try:
        inner.load_state_dict(_strip_wrapper_prefix(ckpt["state_dict"]))
    except (RuntimeError, KeyError) as exc:
        raise CheckpointError(f"checkpoint {path} does not fit this model ({str(exc)[:300]})") from exc
    return model


def _strip_wrapper_prefix(state: dict) -> dict:
    for prefix in ("module.", "_orig_mod."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


def _plain(obj):
    """Tuples -> lists, so architecture records compare equal after a round trip through a checkpoint."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
