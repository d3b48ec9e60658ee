"""Advisory file locks, so notebooks running side by side share the model store and ``_runs.json`` safely.

A lock is an exclusive ``flock`` on a small file beside what it guards (``<folder>/.lock``): a second process that
asks for it waits until the first releases it (at the end of the block, or when the first process dies: the
kernel drops its locks). Where ``fcntl`` is missing (Windows) the block runs unlocked, as before side-by-side runs.
One run of :mod:`natrob.run.runner` holds its profile's folder (:func:`hold_profile`) the same way.
"""
from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path

from . import paths
from .results import write_text

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None


@contextlib.contextmanager
def exclusive(path):
    """Hold an exclusive lock on ``path`` (created if missing, its folder too) for the block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


class ProfileBusy(RuntimeError):
    """Another live run holds this profile's folder."""


@contextlib.contextmanager
def hold_profile(profile: str):
    """Hold ``results/<profile>/`` for one run: a second run of the same profile raises ProfileBusy naming the
    process that holds it and since when. The hold is an flock, which the kernel drops when its process dies, so a
    killed run's hold is taken over by the next run, never obeyed forever."""
    folder = paths.results_dir(profile)
    folder.mkdir(parents=True, exist_ok=True)
    lock, owner = folder / ".run.lock", folder / ".run.owner"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            import fcntl
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: unguarded, as before
            pass
        except BlockingIOError:
            who = (owner.read_text().strip() if owner.exists() else "") or "a run that is starting"
            raise ProfileBusy(f"profile {profile}'s folder {folder} is held by another run ({who}); wait for it to "
                              "end or stop it, then run again (finished notebooks are skipped)") from None
        write_text(owner, f"pid {os.getpid()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}: "
                          f"python -m natrob.run.runner {' '.join(sys.argv[1:])[:200]}\n")  # atomic: never read half
        yield
    finally:
        os.close(fd)
