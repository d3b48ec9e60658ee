"""Provenance recorded in every result file, and atomic writes for results and checkpoints."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

from . import paths

_PACKAGES = ("torch", "torchvision", "torchdiffeq", "numpy", "torchattacks", "pyautoattack", "natrob")


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device_description(device=None) -> str:
    import torch
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} (torch threads {torch.get_num_threads()})"


def provenance(params: dict, seed=None, device=None, wall_time_s=None) -> dict:
    return {
        "params": params,
        "seed": seed,
        "git_commit": git_commit(),
        "versions": versions(),
        "device": device_description(device),
        "wall_time_s": wall_time_s,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
    }


def _atomic_replace(path: Path, write) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
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
        return {k if isinstance(k, (str, int, float, bool)) or k is None else str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path, obj) -> Path:
    data = json.dumps(_finite(obj), indent=2, sort_keys=False, default=_json_default, allow_nan=False).encode()
    return _atomic_replace(path, lambda fh: fh.write(data))


def write_text(path, text: str) -> Path:
    return _atomic_replace(path, lambda fh: fh.write(text.encode()))


def torch_save(path, obj) -> Path:
    import torch
    return _atomic_replace(path, lambda fh: torch.save(obj, fh))


def read_json(path) -> dict:
    with open(path) as fh:
        return json.load(fh)


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


def write_result(name: str, payload: dict, params: dict, seed=None, device=None, wall_time_s=None) -> Path:
    """One result file per experiment (RobustBench style): ``results/<name>.json`` with provenance."""
    return write_json(paths.results_dir() / f"{name}.json",
                      {**payload, "provenance": provenance(params, seed=seed, device=device, wall_time_s=wall_time_s)})
