"""Whole pickled modules (``torch.save(model)``, often inside ``nn.DataParallel``), loaded without running what the
pickle names.

Published robust-ODE checkpoints (TisODE's ``model_best.pth``, for one) are whole modules, not state dicts:
``weights_only=True`` refuses them, and an unrestricted unpickler calls whatever global the file names. Here a
pickle may name only

* what torch's own ``weights_only`` loader allows (tensors, storages, dtypes, ``collections.OrderedDict``, sets),
* ``torch.nn`` module classes (``torch.nn.modules.conv.Conv2d``, ``torch.nn.parallel.data_parallel.DataParallel``),
* classes the user's file defines, matched by class name whatever module the pickle was saved from (``__main__``,
  ``networks``), and
* a stub for one name old torch (1.0) wrote into every module (``torch.nn.backends.thnn._get_thnn_function_backend``).

Every global is checked before anything is built: the first one outside the list (``posix.system``,
``builtins.eval``, ``subprocess.Popen``) raises :class:`RefusedGlobal` naming it; classes the user's file lacks
raise :class:`MissingClasses` naming them all. Checkpoints in torch's zip format are then read by
``torch.load(..., weights_only=True)`` inside ``torch.serialization.safe_globals`` (torch enforces the list once
more); the legacy format (torch < 1.6), whose modules torch's safe loader cannot rebuild, by torch's own legacy reader
with an unpickler whose ``find_class`` returns only the listed objects."""
from __future__ import annotations

import _compat_pickle
import io
import pickle
import pickletools
import sys
import types
import warnings
import zipfile
from pathlib import Path

import torch

from ..errors import CheckpointError

# Libraries whose globals are refused, never mapped to a user's class: the standard library (os, posix, builtins,
# subprocess, ...), torch names outside the allowed ones, and numpy (arrays and scalars rebuild through calls).
_LIBRARIES = (set(sys.stdlib_module_names) - {"__main__"}) | {"torch", "numpy"}


def _no_backend():
    """Stands in for ``torch.nn.backends.thnn._get_thnn_function_backend``: torch 1.0 pickled every module's
    ``_backend`` as a call to it; modern torch has no such module and ignores the attribute."""
    return None


_STUBS = {"torch.nn.backends.thnn._get_thnn_function_backend": _no_backend}


def global_name(full: str) -> str:
    """A pickle's global ``"module.name"`` under the name Python 3 gives it: protocol-2 pickles written by Python 3
    use Python 2's (``__builtin__.set``, ``commands.Popen`` for ``subprocess.Popen``), which ``pickle`` maps back."""
    module, _, name = full.rpartition(".")
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[(module, name)]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


class RefusedGlobal(CheckpointError):
    """The pickle names a global natrob will not load (``name``: ``"module.qualname"``)."""

    def __init__(self, name: str, source: str | None):
        self.name = name
        defined = f"{source} defines" if source else "a model file defines (none was given)"
        super().__init__(f"its pickle names `{name}`, which natrob refuses to load (a checkpoint may name only torch "
                         f"tensors, torch.nn modules, plain containers and classes {defined})")


class MissingClasses(CheckpointError):
    """The pickle names classes that the user's file does not define (``names``: sorted ``"module.Class"``)."""

    def __init__(self, names, source: str | None):
        self.names = sorted(names)
        listed = ", ".join(f"`{n}`" for n in self.names)
        where = (f"which {source} does not define (a pickled class is matched to the class of the same name in that "
                 "file)") if source else "and no file defining it was given"
        super().__init__(f"the checkpoint needs class{'es' if len(self.names) > 1 else ''} {listed}, {where}")


def file_classes(module: types.ModuleType | None) -> dict:
    """``{name: class}`` for the classes ``module`` itself defines (not those it imports); {} for None."""
    if module is None:
        return {}
    return {n: v for n, v in vars(module).items() if isinstance(v, type) and v.__module__ == module.__name__}


class Allowlist:
    """What a pickle may name: torch's safe globals, ``torch.nn`` modules, the stubs and ``classes`` (``{name:
    class}``, from :func:`file_classes`); ``source`` names their file in messages ("my_net.py"; None: no file)."""

    def __init__(self, classes: dict, source: str | None):
        self.classes, self.source = dict(classes), source

    def lookup(self, name: str):
        """The object for global ``name`` ("module.qualname" as the pickle spells it), or None when the user's
        file should define it. Raises RefusedGlobal for anything else."""
        from torch._weights_only_unpickler import _get_allowed_globals
        allowed, name = _get_allowed_globals(), global_name(name)
        if name in allowed or name in _STUBS:
            return allowed.get(name, _STUBS.get(name))
        module, _, attr = name.rpartition(".")
        if module == "torch.nn" or module.startswith("torch.nn."):
            obj = getattr(sys.modules.get(module), attr, None)
            if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
                return obj
        if module.split(".")[0] in _LIBRARIES or not module:
            raise RefusedGlobal(name, self.source)
        return self.classes.get(attr)

    def resolve(self, names) -> dict:
        """``{name: object}`` for every global in ``names`` (as the pickle spells them). Raises RefusedGlobal for
        the first refused one (in sorted order), then MissingClasses naming every class the user's file lacks."""
        found = {name: self.lookup(name) for name in sorted(set(names))}
        missing = [global_name(name) for name, obj in found.items() if obj is None]
        if missing:
            raise MissingClasses(missing, self.source)
        return found


def load_pickled(path, allow: Allowlist):
    """Read the whole-module checkpoint at ``path`` (zip or legacy format) onto the CPU, naming only globals that
    ``allow`` lets through; returns what was saved (a module, or a dict holding one).

    Raises RefusedGlobal or MissingClasses before anything is built, and CheckpointError when the file is not a
    ``torch.save`` file or building its objects fails."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception as exc:  # noqa: BLE001 - a damaged archive: named, not propagated raw
            raise CheckpointError(f"not a torch.save file ({type(exc).__name__}: {exc})") from exc
        found = allow.resolve(names)
        return _built(lambda: _load_zip(path, found))
    found = allow.resolve(_legacy_globals(path))
    return _built(lambda: _load_legacy(path, found, allow))


def _built(load):
    try:
        return load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever rebuilding the objects raised, as one CheckpointError
        raise CheckpointError(f"rebuilding its pickled objects raised {type(exc).__name__}: "
                              f"{' '.join(str(exc).split())[:200]}") from exc


def _load_zip(path: Path, found: dict):
    with torch.serialization.safe_globals([(obj, name) for name, obj in found.items()]):
        return torch.load(path, map_location="cpu", weights_only=True)


def _legacy_globals(path: Path) -> set:
    """The globals (``"module.name"``) that the pickles of a legacy-format file name, read without running them:
    a magic number, the protocol, the system record, then the saved object. Raises CheckpointError for a file
    that is not one."""
    names = set()
    try:
        with open(path, "rb") as f:
            for _ in range(4):
                # GLOBAL is what protocol 2 writes; a STACK_GLOBAL's name exists only at run time: find_class
                # checks it then
                names.update(arg.replace(" ", ".", 1) for op, arg, _ in pickletools.genops(f) if op.name == "GLOBAL")
    except Exception as exc:  # noqa: BLE001 - not a pickle stream at all
        raise CheckpointError(f"not a torch.save file (reading its pickles raised {type(exc).__name__}: "
                              f"{str(exc)[:120]})") from exc
    return names


def _restricted_pickle(found: dict, allow: Allowlist):
    """A stand-in for the ``pickle`` module whose unpickler hands out only ``found``'s objects (any other name is
    looked up in ``allow``, which refuses it or names the missing class)."""

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            full = f"{module}.{name}"
            obj = found[full] if full in found else allow.lookup(full)
            if obj is None:
                raise MissingClasses([global_name(full)], allow.source)
            return obj

    def load(f, **kwargs):
        return Unpickler(f, **kwargs).load()

    return types.SimpleNamespace(Unpickler=Unpickler, load=load, __name__="natrob.audit.pickled")


def _load_legacy(path: Path, found: dict, allow: Allowlist):
    """torch's legacy reader (its storages and ``("module", class, file, source)`` ids) with the restricted
    unpickler; its warnings that a class's source differs from the pickled one, or cannot be read, are dropped."""
    with open(path, "rb") as f:
        buffer = io.BytesIO(f.read())  # not a real file: torch's reader skips its old tar-format branch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.serialization.SourceChangeWarning)
        warnings.filterwarnings("ignore", "Couldn't retrieve source code for container")
        return torch.serialization._legacy_load(buffer, "cpu", _restricted_pickle(found, allow), encoding="utf-8")
