"""Advisory file locks, so notebooks running side by side share the model store and ``_runs.json`` safely.

A lock is an exclusive ``flock`` on a small file beside what it guards (``<folder>/.lock``): a second process that
asks for it waits until the first releases it (at the end of the block, or when the first process dies: the
kernel drops its locks). Where ``fcntl`` is missing (Windows) the block runs unlocked, as before side-by-side runs.
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path

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
