"""A user's model, named as ``path/to/file.py:factory``: built by the factory, weights from a checkpoint.

The audit's command line (``python -m natrob.run.audit --model file.py:factory --checkpoint ckpt.pt``) and notebook
06's ``AUDIT_EXTRA`` parameter both load models through :func:`load_user_model`; a checkpoint may hold weights or a
whole pickled module (``torch.save(model)``, read by :mod:`natrob.audit.pickled` without running what it names), and
:func:`load_module_checkpoint` reads the latter for :func:`natrob.audit_model`. Every failure is one
:class:`natrob.errors.ConfigError` naming the parameter, the value and what went wrong, raised before anything
is written."""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import torch

from ..errors import CheckpointError, ConfigError


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


def _module(path: Path, spec: str, param: str = "model"):
    if not path.is_file():
        raise ConfigError(param, spec, f"an existing Python file: {path} does not exist")
    name = f"natrob_user_{abs(hash(str(path.resolve())))}"
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    sys.path.insert(0, str(path.resolve().parent))  # the file may import its neighbours
    try:
        loader.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a user's file may raise anything; named, not propagated raw
        raise ConfigError(param, spec, f"a file that imports cleanly: running {path} raised "
                                         f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    finally:
        sys.path.remove(str(path.resolve().parent))
    return module


def _state_dict(ckpt) -> dict:
    """The weights inside a checkpoint: natrob's ``{"state_dict": ...}``, a plain state dict, or the common
    ``{"model": ...}`` / ``{"model_state_dict": ...}`` / ``{"net": ...}`` layouts."""
    if isinstance(ckpt, dict):
        for key in ("state_dict", "model_state_dict", "model", "net"):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        if ckpt and all(torch.is_tensor(v) for v in ckpt.values()):
            return ckpt
    raise CheckpointError("holds no state dict (expected a dict of tensors, or one under 'state_dict', "
                          "'model_state_dict', 'model' or 'net')")


def _read_checkpoint(path: Path, classes: dict, source: str | None):
    """What ``torch.save`` wrote to ``path``: read with ``weights_only=True`` (state dicts and dicts of them), else
    as a whole pickled module through :mod:`natrob.audit.pickled` (only torch tensors, torch.nn modules, plain
    containers and ``classes`` may be named). Raises ConfigError (param ``checkpoint``) naming what went wrong:
    a missing file, a refused global, classes ``source`` lacks, or a file that is neither."""
    from .pickled import Allowlist, MissingClasses, RefusedGlobal, load_pickled
    if not path.is_file():
        raise ConfigError("checkpoint", str(path), "an existing file: it does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and torch errors alike: tried as a whole module next
        first = exc
    try:
        return load_pickled(path, Allowlist(classes, source))
    except (RefusedGlobal, MissingClasses) as exc:
        raise ConfigError("checkpoint", str(path), "a checkpoint natrob loads safely; " + str(exc)) from exc
    except CheckpointError as exc:
        raise ConfigError("checkpoint", str(path), "a file torch.load reads with weights_only=True (weights saved "
                          "by torch.save(model.state_dict(), path)) or a whole pickled module; loading raised "
                          f"{type(first).__name__}: {' '.join(str(first).split())[:160]}; as a whole module: "
                          f"{' '.join(str(exc).split())[:160]}") from exc


def _pickled_module(ckpt):
    """The module a whole-module checkpoint holds (DataParallel/DDP/compile wrappers removed), also under a dict's
    ``model``/``net``/``state_dict``/``module`` entry; None for a checkpoint of weights."""
    from ..train.checkpoint import unwrap
    if isinstance(ckpt, dict):
        ckpt = next((ckpt[k] for k in ("model", "net", "state_dict", "module")
                     if isinstance(ckpt.get(k), torch.nn.Module)), ckpt)
    return unwrap(ckpt) if isinstance(ckpt, torch.nn.Module) else None


def _load_weights(model, ckpt, path: Path):
    from ..train.checkpoint import load_into
    try:
        load_into(model, {"state_dict": _state_dict(ckpt), "arch": ckpt.get("arch") if isinstance(ckpt, dict)
                          else None}, path=path)
    except CheckpointError as exc:
        raise ConfigError("checkpoint", str(path), "weights of the factory's architecture: " +
                          " ".join(str(exc).split())[:400]) from exc


def load_module_checkpoint(checkpoint, file=None, device="cpu") -> torch.nn.Module:
    """The model of a whole-module checkpoint (``torch.save(model)``, DataParallel or not), in eval mode on
    ``device``, for :func:`natrob.audit_model`: ``model = load_module_checkpoint("model_best.pth", "my_net.py")``.

    ``file`` (a path to a ``.py`` file, or an imported module) defines the classes the pickle names; they are
    matched by class name, whatever module the checkpoint was saved from (``__main__``, ``networks``). The pickle
    may name nothing else but torch tensors, torch.nn modules and plain containers (:mod:`natrob.audit.pickled`).
    Raises ConfigError (param ``checkpoint`` or ``file``) for a refused global (named), classes ``file`` lacks
    (named), a checkpoint of weights only (use :func:`load_user_model`), or an unreadable file."""
    from .pickled import file_classes
    if file is None or isinstance(file, types.ModuleType):
        module, source = file, file and Path(getattr(file, "__file__", None) or file.__name__).name
    else:
        path = Path(file).expanduser()
        if path.suffix != ".py":
            raise ConfigError("file", str(file), "a Python file (.py) defining the checkpoint's classes")
        module, source = _module(path, str(path), "file"), path.name
    ckpt = _read_checkpoint(Path(checkpoint), file_classes(module), source)
    model = _pickled_module(ckpt)
    if model is None:
        raise ConfigError("checkpoint", str(checkpoint), "a whole pickled module (torch.save(model)); this one holds "
                          "weights only: build the model and load them (natrob.audit.usermodel.load_user_model)")
    return model.to(device).eval()


def _whole(model, make, factory: str, checkpoint) -> torch.nn.Module:
    """A whole-module checkpoint's model for ``--model file.py:factory``: the factory is not called; when it is a
    class, the module must be one of it (ConfigError otherwise)."""
    if isinstance(make, type) and not isinstance(model, make):
        raise ConfigError("checkpoint", str(checkpoint), f"a whole pickled {factory} (the class --model names); "
                          f"it holds an instance of {type(model).__name__}")
    return model


def load_user_model(spec: str, checkpoint=None, device="cpu") -> torch.nn.Module:
    """Build ``spec``'s model (``"file.py:factory"``: the factory is called with no arguments), load
    ``checkpoint`` into it when given (``weights_only=True``; DataParallel ``module.`` and ``torch.compile``
    ``_orig_mod.`` prefixes stripped) and return it in eval mode on ``device``. A checkpoint holding a whole
    pickled module (``torch.save(model)``, DataParallel unwrapped) is that module, read by :mod:`natrob.audit.pickled`
    with only the file's classes, torch.nn modules, tensors and plain containers allowed; the factory is then
    not called (a factory that is a class must be the module's class).

    Raises ConfigError (param ``model`` or ``checkpoint``) when the file or factory is missing, the factory
    raises or returns something other than a ``torch.nn.Module``, or the checkpoint is missing, corrupt, names a
    global natrob refuses or a class the file lacks, or holds weights of another architecture."""
    from .pickled import file_classes
    path, factory = parse_spec(spec)
    module = _module(path, spec)
    make = _factory(module, factory, path, spec)
    ckpt = None
    if checkpoint is not None:
        ckpt = _read_checkpoint(Path(checkpoint), file_classes(module), path.name)
        whole = _pickled_module(ckpt)
        if whole is not None:
            return _whole(whole, make, factory, checkpoint).to(device).eval()
    model = _build(make, factory, spec)
    if checkpoint is not None:
        _load_weights(model, ckpt, Path(checkpoint))
    return model.to(device).eval()


def _factory(module, factory: str, path: Path, spec: str):
    make = getattr(module, factory, None)
    if not callable(make):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ConfigError("model", spec, f"a function {factory!r} in {path}; it defines "
                                         f"{', '.join(found) or 'no function'}")
    return make


def _build(make, factory: str, spec: str) -> torch.nn.Module:
    try:
        model = make()
    except Exception as exc:  # noqa: BLE001 - named, not propagated raw
        raise ConfigError("model", spec, f"a factory that builds the model: {factory}() raised "
                                         f"{type(exc).__name__}: {str(exc)[:200]}") from exc
    if not isinstance(model, torch.nn.Module):
        raise ConfigError("model", spec, f"a factory returning a torch.nn.Module; {factory}() returned "
                                         f"{type(model).__name__}")
    return model


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
