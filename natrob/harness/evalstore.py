"""Finished evaluations, stored so a killed notebook resumes at the attack it was in.

One JSON file per (model, attack spec, eps, evaluated points, seed, harness settings, natrob code, torch
version), keyed like the model store by a hash of all of them and written atomically once that attack has
finished: a re-run finds every finished attack and computes only what was missing.

The model enters the key through everything that decides its output (:func:`model_fingerprint`): every
parameter and buffer (any dtype, bfloat16 included, by its bytes), every non-tensor attribute of every
submodule (a wrapper's plain-float scale, an ODE net's solver settings), hooks, and the code of every
non-torch class in the model (all methods, the module-level functions and constants they name). Where a part
cannot be fingerprinted (an attribute of a type natrob cannot hash), the fingerprint is None and the harness
evaluates that model uncached and says so: the store never serves another model's result.
"""
from __future__ import annotations

import hashlib
import json
import types

import torch

from .. import paths
from ..provenance import code_hash
from ..results import read_json, write_json

_CODE = None
# counters and per-call caches of natrob's own models: they change with every forward pass and never decide
# the output, so keying on them would only defeat resuming
VOLATILE = {
    "natrob.models.odenet.ODENet": {"nfe_forward", "nfe_per_sample", "_calls_after_forward"},
    "natrob.models.vector_field.ODEFunc": {"calls", "vjps", "_prepared"},
}
# torch.nn.Module bookkeeping that never decides the output (parameters, buffers and submodules are hashed
# separately; eval/train mode is set by the harness itself)
_MODULE_INTERNALS = {"_parameters", "_buffers", "_modules", "training", "_non_persistent_buffers_set",
                     "_state_dict_hooks", "_state_dict_pre_hooks", "_load_state_dict_pre_hooks",
                     "_load_state_dict_post_hooks", "_is_full_backward_hook", "_forward_hooks_with_kwargs",
                     "_forward_hooks_always_called", "_forward_pre_hooks_with_kwargs", "natrob_arch"}
_PLAIN = (int, float, str, bool, bytes, type(None), complex)
_LIBRARIES = ("torch", "torchdiffeq", "numpy", "builtins", "functools", "math", "typing", "collections")


class Unhashable(Exception):
    """A part of a model that the fingerprint cannot cover; the model is then evaluated uncached."""


def _code_hash() -> str:
    global _CODE
    if _CODE is None:
        _CODE = code_hash()
    return _CODE


def _tensor_bytes(t: torch.Tensor) -> bytes:
    # a byte view works for every dtype (numpy has no bfloat16) and gives numpy's bytes for the others
    t = t.detach().cpu().contiguous().reshape(-1)
    return t.view(torch.uint8).numpy().tobytes() if t.dtype != torch.uint8 else t.numpy().tobytes()


def tensor_hash(t: torch.Tensor) -> str:
    """A short hash (16 hex digits) of a tensor's dtype, shape and bytes; any dtype, bfloat16 and float16 included."""
    return hashlib.sha256(str((t.dtype, tuple(t.shape))).encode() + _tensor_bytes(t)).hexdigest()[:16]


def weights_fingerprint(model) -> str:
    """12 hex digits of a SHA-256 of a model's state (names and bytes, sorted by name): results that name the
    very weights evaluated (notebook 07's cells) carry it."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()[:12]


# ------------------------------------------------------------------------------------------- code
def _code_fp(code, seen) -> list:
    """A deterministic stand-in for a code object: bytecode, names and constants (nested code recursively);
    marshal is not used because its output depends on reference counts."""
    consts = [_code_fp(c, seen) if isinstance(c, types.CodeType)
              else sorted(map(repr, c)) if isinstance(c, frozenset)  # set order follows string hashing
              else repr(c) for c in code.co_consts]
    return [code.co_code.hex(), list(code.co_names), list(code.co_varnames), consts]


def _names(code) -> set:
    out = set(code.co_names)
    for c in code.co_consts:
        if isinstance(c, types.CodeType):
            out |= _names(c)
    return out


def _function_fp(fn, seen) -> list:
    """A function's code, its closure, its defaults, and the globals of its own module it names (helper
    functions recursively, plain constants by value): what ``forward`` computes with."""
    fn = getattr(fn, "__func__", fn)  # bound methods
    if getattr(fn, "__module__", None) and fn.__module__.split(".")[0] in _LIBRARIES:
        return [fn.__module__, getattr(fn, "__qualname__", repr(fn))]  # covered by the library's version
    if not isinstance(fn, types.FunctionType):
        if getattr(type(fn), "__module__", "").split(".")[0] in _LIBRARIES or isinstance(fn, types.BuiltinFunctionType):
            return [getattr(fn, "__qualname__", repr(fn))]
        raise Unhashable(f"callable {fn!r}")
    if id(fn) in seen:
        return ["<seen>"]
    seen.add(id(fn))
    out = [fn.__module__, fn.__qualname__, _code_fp(fn.__code__, seen), _value_fp(fn.__defaults__, seen, 0)]
    out.append([_value_fp(c.cell_contents, seen, 0) for c in (fn.__closure__ or ()) if _cell_filled(c)])
    glb = fn.__globals__
    for name in sorted(_names(fn.__code__)):
        if name in glb and not isinstance(glb[name], types.ModuleType):
            v = glb[name]
            if isinstance(v, (types.FunctionType, type)) and getattr(v, "__module__", None) != fn.__module__:
                continue  # imported from elsewhere: a library, or natrob (covered by the code hash)
            out.append([name, _global_fp(v, seen)])
    return out


def _cell_filled(cell) -> bool:
    try:
        cell.cell_contents
    except ValueError:
        return False
    return True


def _global_fp(v, seen):
    if isinstance(v, types.FunctionType):
        return _function_fp(v, seen)
    if isinstance(v, type):
        return _class_fp(v, seen)
    try:
        return _value_fp(v, seen, 0)
    except Unhashable:
        return f"<{type(v).__name__}>"  # a global object forward only names (a logger, a registry)


def _class_fp(cls, seen) -> list:
    """The code of every method of ``cls`` and of its non-library bases."""
    out = []
    for klass in cls.__mro__:
        mod = klass.__module__.split(".")[0]
        if mod in _LIBRARIES or id(klass) in seen:
            continue
        seen.add(id(klass))
        out.append(f"{klass.__module__}.{klass.__qualname__}")
        for name, member in sorted(vars(klass).items()):
            fn = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if isinstance(fn, types.FunctionType):
                out.append([name, _function_fp(fn, seen)])
            elif isinstance(member, _PLAIN) and not name.startswith("__"):
                out.append([name, repr(member)])
    return out


# ------------------------------------------------------------------------------------------- values
def _value_fp(v, seen, depth):
    """A JSON-able stand-in for an attribute value; raises Unhashable for what it cannot cover."""
    if depth > 6:
        raise Unhashable("nesting deeper than 6")
    if isinstance(v, _PLAIN):
        return repr(v)
    if torch.is_tensor(v):
        return tensor_hash(v)
    if isinstance(v, (torch.dtype, torch.device, torch.Size, torch.memory_format)):
        return str(v)
    if isinstance(v, (list, tuple, set, frozenset)):
        items = [_value_fp(x, seen, depth + 1) for x in v]
        return [type(v).__name__, sorted(items, key=repr) if isinstance(v, (set, frozenset)) else items]
    if isinstance(v, dict):
        return ["dict", sorted([repr(k), _value_fp(x, seen, depth + 1)] for k, x in v.items())]
    if isinstance(v, type):  # a class held as a value (super()'s __class__ cell, a layer factory)
        return [f"{v.__module__}.{v.__qualname__}", _class_fp(v, seen)]
    if isinstance(v, torch.nn.Module):
        return ["module", _module_fp(v, seen)] if id(v) not in seen else "<seen module>"
    if callable(v) and not isinstance(v, type):
        return _function_fp(v, seen)
    if type(v).__module__ == "numpy":
        import numpy as np
        arr = np.asarray(v)
        return [str(arr.dtype), list(arr.shape), hashlib.sha256(arr.tobytes()).hexdigest()[:16]]
    if hasattr(v, "__dict__") and id(v) not in seen:  # a plain object (a fitted scaler): its attributes
        seen.add(id(v))
        return [f"{type(v).__module__}.{type(v).__qualname__}", _class_fp(type(v), seen),
                _value_fp(vars(v), seen, depth + 1)]
    raise Unhashable(f"a {type(v).__module__}.{type(v).__qualname__} value")


def _attributes_fp(m, seen) -> list:
    cls = f"{type(m).__module__}.{type(m).__qualname__}"
    skip = _MODULE_INTERNALS | VOLATILE.get(cls, set())
    out = []
    for name, v in sorted(vars(m).items()):
        if name in skip:
            continue
        if name.endswith("hooks") and isinstance(v, dict):
            v = list(v.values())  # keys are process-wide handle counters; the hooks themselves decide the output
        try:
            out.append([name, _value_fp(v, seen, 0)])
        except Unhashable as exc:
            raise Unhashable(f"attribute {name!r} of {type(m).__qualname__}: {exc}") from None
    return out


def _module_fp(model, seen) -> list:
    out = []
    for name, m in model.named_modules(remove_duplicate=False):
        if id(m) in seen:
            out.append([name, "<seen>"])
            continue
        seen.add(id(m))
        out.append([name, f"{type(m).__module__}.{type(m).__qualname__}", _class_fp(type(m), seen),
                    _attributes_fp(m, seen)])
    return out


def model_fingerprint(model, reason: bool = False):
    """16 hex digits covering everything that decides the model's output (see the module doc): two models
    with the same fingerprint compute the same function. None where some part cannot be covered; with
    ``reason=True`` returns ``(fingerprint or None, why it is None or None)``."""
    try:
        h = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
        state = model.state_dict() if hasattr(model, "state_dict") else {}
        for k, v in state.items():
            h.update(k.encode())
            if torch.is_tensor(v):
                h.update(tensor_hash(v).encode())
        if isinstance(model, torch.nn.Module):
            body = _module_fp(model, set())
        else:
            body = _value_fp(model, set(), 0)
        h.update(json.dumps(body, sort_keys=True, default=str).encode())
        for m in (model.modules() if hasattr(model, "modules") else [model]):
            if hasattr(m, "solver_config"):
                h.update(json.dumps(m.solver_config(), sort_keys=True, default=str).encode())
    except Unhashable as exc:
        return (None, f"the evaluation store cannot fingerprint {exc}") if reason else None
    fp = h.hexdigest()[:16]
    return (fp, None) if reason else fp


NAMES = ("label", "id", "role")  # spec keys that name an attack without changing what it computes


def spec_fingerprint(spec) -> object:
    """A JSON-able stand-in for an attack spec: models inside it (transfer sources) by their fingerprint. What only
    names the attack (``label``, ``id``, ``role``: :func:`natrob.harness.attack_runs.build_attack` drops them) is
    left out, so the same attack run by two notebooks under two names is stored once (and seeded alike)."""
    if isinstance(spec, dict):
        return {k: spec_fingerprint(v) for k, v in sorted(spec.items()) if k not in NAMES}
    if isinstance(spec, (list, tuple)):
        return [spec_fingerprint(v) for v in spec]
    if isinstance(spec, torch.nn.Module):
        return {"model": model_fingerprint(spec)}
    return spec


def cacheable(spec_fp) -> bool:
    """Whether every model inside a spec fingerprint (transfer sources) could be fingerprinted."""
    if isinstance(spec_fp, dict):
        return not ("model" in spec_fp and spec_fp["model"] is None) and all(map(cacheable, spec_fp.values()))
    if isinstance(spec_fp, list):
        return all(map(cacheable, spec_fp))
    return True


def key(**parts) -> str:
    """The store key of one evaluation: a hash of its parts (model, spec, eps, points, seed, settings), natrob's
    code and torch's version."""
    blob = json.dumps({**parts, "code": _code_hash(), "torch": torch.__version__}, sort_keys=True, default=str)
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
