"""Executing one notebook headless with papermill, and the stamps that say which finished.

A notebook runs in a kernel that talks over unix sockets (:mod:`natrob.run.kernels`); its executed copy is written
under a temporary name and moved into place only when every cell succeeded, and a failed one is kept as
``<name>.failed.ipynb`` with the traceback (:func:`run_notebook`). Every cell has a timeout (:func:`cell_timeout`).
``results/<profile>/_runs.json`` holds each notebook's finished stamp (:func:`notebook_stamp`) and the run's
timings (:class:`Stamps`). Which notebooks run, and in what order, is :mod:`natrob.run.runner`'s.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path

from .. import paths
from ..locks import exclusive
from ..provenance import code_hash
from ..results import read_json, write_json


def notebooks() -> list:
    """The numbered notebooks, in order."""
    return sorted(p for p in paths.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def notebook_stamp(nb: Path, params: dict, weights: str = "train") -> str:
    """Finished results are reused while the notebook, the profile's values, natrob's code and the weights
    (``train``, or the published manifest's hash) are unchanged."""
    h = hashlib.sha256(nb.read_bytes() + json.dumps(params, sort_keys=True).encode() + code_hash().encode()
                       + weights.encode())
    return h.hexdigest()[:16]


def _failing_cell(out_path: Path) -> str:
    try:
        nb = json.loads(out_path.read_text())
    except (OSError, ValueError):
        return "unknown cell"
    i = -1
    for cell in nb.get("cells", []):
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags or any(t.startswith("papermill-error-cell") for t in tags):
            continue  # papermill's own cells: count cells as the user sees them in the committed notebook
        i += 1
        for o in cell.get("outputs", []):
            if o.get("output_type") == "error":
                src = "".join(cell.get("source", "")).strip().splitlines()
                first = src[0][:80] if src else ""
                return f"cell {i} ('{first}'): {o.get('ename')}: {o.get('evalue')}"
    return "unknown cell"


def cell_timeout(nb_name: str, params: dict, profile: str, weights: str = "published") -> int:
    """Seconds any one cell of ``nb_name`` may take: the profile's ``CELL_TIMEOUT`` ``margin`` times the notebook's
    time in the published run (``reference-results/<profile>/_timings.json``; ``unknown_s`` where there is none),
    plus ``train_s`` when weights are trained (a cell may train a model), and at least ``floor_s``."""
    t = params.get("CELL_TIMEOUT") or {"margin": 4, "floor_s": 600, "train_s": 0, "unknown_s": 3600}
    expected = published_timings(profile).get(nb_name)
    base = float(t["unknown_s"] if expected is None else expected) + (t["train_s"] if weights == "train" else 0)
    return int(max(t["floor_s"], t["margin"] * base))


def _execute(nb: Path, partial: Path, params: dict, timeout: int):
    import papermill as pm
    from .kernels import IPCKernelManager
    pm.execute_notebook(str(nb), str(partial), parameters=params, kernel_name="python3", cwd=str(paths.NOTEBOOKS),
                        progress_bar=False, log_output=True, request_save_on_cell_execute=True,
                        kernel_manager_class=IPCKernelManager, execution_timeout=timeout, start_timeout=120,
                        iopub_timeout=30)


def _retriable(exc: BaseException) -> str | None:
    """Why a failed execution is worth one more try (a cell timed out, the kernel died), or None (a cell raised)."""
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    if isinstance(exc, (CellTimeoutError, DeadKernelError, TimeoutError)):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return None


def run_notebook(nb: Path, params: dict, out_dir: Path, timeout: int | None = None, tries: int = 2) -> dict:
    """Execute one notebook into ``out_dir``; the final name appears only when every cell succeeded. Each cell may
    take ``timeout`` seconds (None: :func:`cell_timeout` with the default margin); a cell that times out or a kernel
    that dies runs the notebook again, ``tries`` times in all (finished evaluations are kept in the evaluation store,
    so a second try resumes). ``retried`` in the result says why it ran again."""
    import papermill as pm
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, partial = out_dir / nb.name, out_dir / f".{nb.stem}.partial.ipynb"
    declared = set(pm.inspect_notebook(str(nb)))
    params = {k: v for k, v in params.items() if k in declared}  # each notebook gets the values it declares
    timeout = timeout or cell_timeout(nb.name, params, paths.of(params))
    t0, retried = time.time(), []
    for attempt in range(tries):
        try:
            _execute(nb, partial, params, timeout)
            os.replace(partial, out_path)
            return {"notebook": nb.name, "ok": True, "wall_s": time.time() - t0, "executed": str(out_path),
                    "retried": retried}
        except Exception as exc:  # papermill wraps kernel errors; report the cell, keep what was computed
            why = _retriable(exc)
            if why is not None and attempt + 1 < tries:
                retried.append(why)
                print(f"[run_all] {nb.name}: {why} (cell timeout {timeout} s); running it once more", flush=True)
                continue
            failed = out_dir / f"{nb.stem}.failed.ipynb"
            if partial.exists():
                os.replace(partial, failed)
            error = _failing_cell(failed) if failed.exists() else "unknown cell"
            if error == "unknown cell" or why is not None:
                error = f"{error} ({why or f'{type(exc).__name__}: {exc}'})"
            return {"notebook": nb.name, "ok": False, "wall_s": time.time() - t0, "executed": str(failed),
                    "error": error, "retried": retried}
    raise AssertionError("unreachable")


def published_timings(profile: str) -> dict:
    """Per notebook, the seconds it took in the run whose results are published
    (``reference-results/<profile>/_timings.json``, written by ``verify --publish``); {} when there is none."""
    path = paths.PUBLISHED / paths.checked(profile) / "_timings.json"
    try:
        return dict(read_json(path).get("_timings") or {})
    except (OSError, ValueError, AttributeError):
        return {}


class Stamps:
    """``results/<profile>/_runs.json``: per notebook the stamp of its last successful run, and timings."""

    def __init__(self, profile: str):
        self.path = paths.results_dir(profile) / "_runs.json"
        self.data = read_json(self.path) if self.path.exists() else {}
        self.data.setdefault("_timings", {})

    def finished(self, nb: Path, stamp: str, out_dir: Path) -> bool:
        """Whether ``nb`` finished with this stamp and its executed copy is in place."""
        return self.data.get(nb.name) == stamp and (out_dir / nb.name).exists()

    def started(self, nb: Path):
        """Clear ``nb``'s stamp as it starts, so a run killed now never counts as finished."""
        with self._fresh():
            self.data.pop(nb.name, None)

    def done(self, res: dict, stamp: str):
        """Record a finished run's time, and its stamp when it succeeded."""
        with self._fresh():
            self.data["_timings"][res["notebook"]] = round(res["wall_s"], 1)
            retried = self.data.setdefault("_retried", {})
            retried.pop(res["notebook"], None)
            if res.get("retried"):  # the timing table says a notebook ran again, and why
                retried[res["notebook"]] = res["retried"]
            if res["ok"]:
                self.data[res["notebook"]] = stamp

    @contextlib.contextmanager
    def _fresh(self):
        # notebooks running side by side record into the same file: read, change and write it under its lock
        with exclusive(self.path.with_name("._runs.lock")):
            self.reload()
            self.data.setdefault("_timings", {})
            yield
            self.save()

    def record_timings(self, seconds: dict):
        """Add ``seconds`` ({row: seconds}, e.g. training jobs' or the report's) to ``_timings``, re-reading the
        file first (notebooks of another run may have recorded meanwhile)."""
        with self._fresh():
            self.data["_timings"].update(seconds)

    def record_run(self, last_run: dict, machine: dict | None, seconds: dict):
        """Record a run's ``_last_run`` and ``_machine`` and add ``seconds`` to ``_timings``, re-reading first."""
        with self._fresh():
            self.data["_timings"].update(seconds)
            self.data.update({"_last_run": last_run, "_machine": machine})

    def reload(self):
        """Re-read the stamps (after notebooks ran in subprocesses)."""
        self.data = read_json(self.path) if self.path.exists() else self.data
        self.data.setdefault("_timings", {})

    def save(self):
        """Write the stamps atomically."""
        write_json(self.path, self.data)
