"""File I/O every module shares: atomic writes (a reader never sees half a file), JSON without NaN, atomic
``torch.save``. Result files and their schemas are :mod:`natrob.report.schemas`.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

def sha256(path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks: the one file digest of published weights, checkpoints
    named on the command line and published models' provenance."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


_UMASK = os.umask(0o022)
os.umask(_UMASK)


def _atomic_replace(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp's 0600 would make a result unreadable to the user's group
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _finite(obj):
    """NaN/inf are not JSON: write them as null (pandas turns missing values into NaN)."""
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): _finite(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _json_default(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_json(path, obj) -> Path:
    """Write ``obj`` as JSON atomically (NaN and inf become null)."""
    data = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False).encode()
    return _atomic_replace(path, lambda fh: fh.write(data))


def write_text(path, text: str) -> Path:
    """Write ``text`` atomically."""
    return _atomic_replace(path, lambda fh: fh.write(text.encode()))


def torch_save(path, obj, legacy: bool = False) -> Path:
    """``torch.save`` atomically (checkpoints); ``legacy`` writes torch's pre-1.6 format (as old published
    checkpoints are)."""
    import torch
    return _atomic_replace(path, lambda fh: torch.save(obj, fh, _use_new_zipfile_serialization=not legacy))


def read_json(path) -> dict:
    """Read a JSON file."""
    with open(path) as fh:
        return json.load(fh)
