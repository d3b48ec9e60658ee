"""Finished evaluations, stored so a killed notebook resumes at the attack it was in.

One JSON file per (model, attack spec, eps, evaluated points, seed, harness settings, natrob code), keyed like
the model store by a hash of all of them and written atomically once that attack has finished: a re-run finds
every finished attack and computes only what was missing. The model enters the key through its weights and
buffers (and an ODE net's solver settings), the points through their bytes, so a retrained model or another
sample never reuses a stale entry.
"""
from __future__ import annotations

import hashlib
import json

import torch

from . import paths
from .provenance import code_hash
from .results import read_json, write_json

_CODE = None


def _code_hash() -> str:
    global _CODE
    if _CODE is None:
        _CODE = code_hash()
    return _CODE


def tensor_hash(t: torch.Tensor) -> str:
    """A short hash of a tensor's dtype, shape and bytes."""
    t = t.detach().cpu().contiguous()
    return hashlib.sha256(str((t.dtype, tuple(t.shape))).encode() + t.numpy().tobytes()).hexdigest()[:16]


def weights_fingerprint(model) -> str:
    """12 hex digits of a SHA-256 of a model's state (names and bytes, sorted by name): results that name the
    very weights evaluated (notebook 07's cells) carry it."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def model_fingerprint(model) -> str:
    """Weights, buffers, class and solver settings: two models with the same fingerprint compute the same function."""
    h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    state = model.state_dict() if hasattr(model, "state_dict") else {}
    for k, v in state.items():
        h.update(k.encode())
        if torch.is_tensor(v):
            h.update(tensor_hash(v).encode())
    for m in (model.modules() if hasattr(model, "modules") else [model]):
        if hasattr(m, "solver_config"):
            h.update(json.dumps(m.solver_config(), sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def spec_fingerprint(spec) -> object:
    """A JSON-able stand-in for an attack spec: models inside it (transfer sources) by their fingerprint."""
    if isinstance(spec, dict):
        return {k: spec_fingerprint(v) for k, v in sorted(spec.items()) if k not in ("label",)}
    if isinstance(spec, (list, tuple)):
        return [spec_fingerprint(v) for v in spec]
    if isinstance(spec, torch.nn.Module):
        return {"model": model_fingerprint(spec)}
    return spec


def key(**parts) -> str:
    """The store key of one evaluation: a hash of its parts (model, spec, eps, points, seed, settings) and natrob's code."""
    blob = json.dumps({**parts, "code": _code_hash()}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def load(k: str):
    """The stored entry for ``k``, or None when there is none (or it is damaged)."""
    path = paths.eval_cache_dir() / f"{k}.json"
    if not path.exists():
        return None
    try:
        return read_json(path)
    except (OSError, ValueError):  # a damaged entry is recomputed, never trusted
        return None


def store(k: str, entry: dict):
    """Write the entry for ``k`` atomically."""
    write_json(paths.eval_cache_dir() / f"{k}.json", entry)
