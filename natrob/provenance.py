"""Provenance recorded in every result file: parameters, seed, profile, commit, versions, device, time."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from importlib import metadata

from . import paths

_PACKAGES = ("torch", "torchvision", "torchdiffeq", "numpy", "torchattacks", "pyautoattack", "natrob")


def git_commit() -> str:
    """The checkout's commit, with ``+dirty`` when tracked files are modified."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=paths.REPO, capture_output=True, text=True, timeout=10)
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=paths.REPO,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> dict:
    """Versions of Python and of the packages a result depends on."""
    found = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def device_description(device=None) -> str:
    """The device a result was computed on, in words."""
    import torch
    dev = torch.device(device) if device is not None else None
    if dev is not None and dev.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(dev)}"
    return (f"cpu:{platform.processor() or platform.machine()} x{os.cpu_count()} "
            f"(torch threads {torch.get_num_threads()})")


def provenance(params: dict, seed=None, device=None, wall_time_s=None) -> dict:
    """Everything a result records about how it was made: parameters, profile, seed, commit, versions, device, time."""
    return {
        "params": params,
        "profile": (params or {}).get("PROFILE") or (params or {}).get("profile"),
        "seed": seed,
        "git_commit": git_commit(),
        "versions": versions(),
        "device": device_description(device),
        "wall_time_s": wall_time_s,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "host": platform.node(),
    }


def code_hash() -> str:
    """Hash of natrob's own source (every ``.py`` under the package, by path and bytes): finished notebooks
    (natrob.run.runner) and stored evaluations (natrob.harness.evalstore) computed by other code are not reused."""
    h = hashlib.sha256()
    for src in sorted(paths.PACKAGE.rglob("*.py")):
        h.update(src.relative_to(paths.PACKAGE).as_posix().encode() + b"\0" + src.read_bytes())
    return h.hexdigest()[:16]
