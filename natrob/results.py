"""Result files: atomic writes, JSON without NaN, and the one writer every notebook uses (RobustBench style:
one JSON per experiment, ``results/<profile>/<name>.json``, with provenance; optionally a CSV beside it)."""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from . import paths


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


def torch_save(path, obj) -> Path:
    """``torch.save`` atomically (checkpoints)."""
    import torch
    return _atomic_replace(path, lambda fh: torch.save(obj, fh))


def read_json(path) -> dict:
    """Read a JSON file."""
    with open(path) as fh:
        return json.load(fh)


def write_result(name: str, payload: dict, params: dict, seed=None, device=None, wall_time_s=None,
                 csv_rows: list | None = None) -> Path:
    """Write ``results/<profile>/<name>.json`` (payload + provenance) and, with ``csv_rows``, ``<name>.csv``.

    Arguments: ``name`` the experiment (e.g. ``03-table1-digits``); ``payload`` a JSON-able dict; ``params`` the
    notebook's parameters; ``seed``, ``device``, ``wall_time_s`` recorded in the provenance."""
    from .provenance import provenance
    folder = paths.results_dir()
    payload = {k: v for k, v in payload.items() if not str(k).startswith("_")}  # private keys hold tensors
    path = write_json(folder / f"{name}.json",
                      {**payload, "provenance": provenance(params, seed=seed, device=device, wall_time_s=wall_time_s)})
    if csv_rows:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(csv_rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_rows)
        write_text(folder / f"{name}.csv", buf.getvalue())
    return path
