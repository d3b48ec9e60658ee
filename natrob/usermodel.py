"""A user's model, named as ``path/to/file.py:factory``: built by the factory, weights from a checkpoint.

The audit's command line (``python -m natrob.audit --model file.py:factory --checkpoint ckpt.pt``) and notebook
06's ``AUDIT_EXTRA`` parameter both load models through :func:`load_user_model`. Every failure is one
:class:`natrob.errors.ConfigError` naming the parameter, the value and what went wrong, raised before anything
is written."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import torch

from .errors import CheckpointError, ConfigError


def parse_spec(spec: str) -> tuple:
    """``"path/to/file.py:factory"`` -> (Path, "factory"); raises ConfigError for any other shape."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ConfigError("model", spec, "path/to/file.py:factory (a Python file and the name of a function in "
                                         "it that returns the torch.nn.Module)")
    path, _, factory = spec.rpartition(":")
    if not path.endswith(".py") or not factory.isidentifier():
        raise ConfigError("model", spec, "path/to/file.py:factory (a Python file and the name of a function in "
                                         "it that returns the torch.nn.Module)")
    return Path(path).expanduser(), factory


def _module(path: Path, spec: str):
    if not path.is_file():
        raise ConfigError("model", spec, f"an existing Python file: {path} does not exist")
    name = f"natrob_user_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a user's file may raise anything; named, not propagated raw
        raise ConfigError("model", spec, f"a file that imports cleanly: running {path} raised "
                                         f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _state_dict(ckpt) -> dict:
    """The weights inside a checkpoint: natrob's ``{"state_dict": ...}``, a plain state dict, or the common
    ``{"model": ...}`` / ``{"model_state_dict": ...}`` layouts."""
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        if ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
            return ckpt
    raise CheckpointError("holds no state dict (expected a dict of tensors, or one under 'state_dict', "
                          "'model_state_dict' or 'model')")


def _load_weights(model, path: Path):
    from .train.checkpoint import load_into
    if not path.is_file():
        raise ConfigError("checkpoint", str(path), "an existing file: it does not exist")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike: the file is not loadable
        raise ConfigError("checkpoint", str(path), "a file torch.load reads with weights_only=True (weights saved "
                          f"by torch.save(model.state_dict(), path)); loading raised {type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]}") from exc
    try:
        load_into(model, {"state_dict": _state_dict(ckpt), "arch": ckpt.get("arch") if isinstance(ckpt, dict)
                          else None}, path=path)
    except CheckpointError as exc:
        raise ConfigError("checkpoint", str(path), "weights of the factory's architecture: " +
                          " ".join(str(exc).split())[:400]) from exc


def load_user_model(spec: str, checkpoint=None, device="cpu") -> torch.nn.Module:
    """Build ``spec``'s model (``"file.py:factory"``: the factory is called with no arguments), load
    ``checkpoint`` into it when given (``weights_only=True``; DataParallel ``module.`` and ``torch.compile``
    ``_orig_mod.`` prefixes stripped) and return it in eval mode on ``device``.

    Raises ConfigError (param ``model`` or ``checkpoint``) when the file or factory is missing, the factory
    raises or returns something other than a ``torch.nn.Module``, or the checkpoint is missing, corrupt or
    holds weights of another architecture."""
    path, factory = parse_spec(spec)
    module = _module(path, spec)
    make = getattr(module, factory, None)
    if not callable(make):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError("model", spec, f"a function {factory!r} in {path}; it defines "
                                         f"{', '.join(found) or 'no function'}")
    try:
        model = make()
    except Exception as exc:  # noqa: BLE001 - named, not propagated raw
        raise ConfigError("model", spec, f"a factory that builds the model: {factory}() raised "
                                         f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ConfigError("model", spec, f"a factory returning a torch.nn.Module; {factory}() returned "
                                         f"{type(model).__name__}")
    if checkpoint is not None:
        _load_weights(model, Path(checkpoint))
    return model.to(device).eval()


def extra_models(entries, base=None) -> dict:
    """Notebook 06's ``AUDIT_EXTRA``: ``{label: loader}`` for a list of ``"file.py:factory"`` strings or dicts
    ``{"model": "file.py:factory", "checkpoint": path or None, "label": name or None}`` (label default: the
    factory's name). Relative paths are taken from ``base`` (default: the current folder). Every entry is
    checked here, before any audit runs: ConfigError names the first bad one."""
    base = Path(base) if base is not None else Path.cwd()
    out = {}
    for i, entry in enumerate(entries or []):
        entry = {"model": entry} if isinstance(entry, str) else entry
        if not isinstance(entry, dict) or set(entry) - {"model", "checkpoint", "label"} or "model" not in entry:
            raise ConfigError(f"AUDIT_EXTRA[{i}]", entry, '"file.py:factory" or {"model": "file.py:factory", '
                                                         '"checkpoint": "ckpt.pt", "label": "name"}')
        path, factory = parse_spec(entry["model"])
        spec = f"{path if path.is_absolute() else base / path}:{factory}"
        ckpt = entry.get("checkpoint")
        ckpt = None if ckpt is None else (Path(ckpt) if Path(ckpt).is_absolute() else base / ckpt)
        label = entry.get("label") or factory
        if label in out:
            raise ConfigError(f"AUDIT_EXTRA[{i}]", entry, f"a label not used twice ({label!r} is); give \"label\"")
        parse_spec(spec)
        if not Path(spec.rpartition(":")[0]).is_file():
            raise ConfigError(f"AUDIT_EXTRA[{i}]", entry["model"], f"an existing Python file (looked in {base})")
        out[label] = (lambda s=spec, c=ckpt: load_user_model(s, c))
    return out
