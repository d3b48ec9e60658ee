"""Result files: the one writer every notebook uses (RobustBench style: one JSON per experiment,
``results/<profile>/<name>.json``, with provenance; optionally a CSV beside it), and the declared schema of each
result file: where its counts are.

Every accuracy in a result file is a count value (:func:`natrob.stats.count`). A count is named by its *key*: the
path to it, where a list element is named by its identifying fields (``model``, ``training``, ``id``, ``attack`` (the
display label, only without an ``id``), ``setting``, ``h``, ``eps``, ``protocol``; its index when it has none), e.g.
``models.trades.per_eps[eps=0.5].attacks.autoattack.robust``. Two counts of one file never share a key
(:class:`SchemaError` otherwise). Each chapter's record (:mod:`natrob.chapters`) declares, per result-file prefix,
the patterns every count key of such a file matches (``*`` any map key, ``[]`` any list element);
:func:`write_result` refuses a payload with a count outside its schema, so what ``natrob.report.verify`` compares is
always declared here.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from .. import chapters, paths
from ..errors import NatrobError
from ..results import _finite, _json_default, write_json, write_text
from ..stats import is_count


def write_result(name: str, payload: dict, params: dict, seed=None, device=None, wall_time_s=None,
                 csv_rows: list | None = None, folder=None) -> Path:
    """Write ``results/<profile>/<name>.json`` (payload + provenance) and, with ``csv_rows``, ``<name>.csv``.

    Arguments: ``name`` the experiment (e.g. ``03-table1-digits``); ``payload`` a JSON-able dict; ``params`` the
    notebook's parameters; ``seed``, ``device``, ``wall_time_s`` recorded in the provenance; ``folder`` (default
    ``results/<the profile params name>/``)."""
    from ..provenance import provenance
    folder = Path(folder) if folder is not None else paths.results_dir(paths.of(params))
    payload = {k: v for k, v in payload.items() if not str(k).startswith("_")}  # private keys hold tensors
    check_schema(name, json.loads(json.dumps(_finite(payload), default=_json_default)))
    path = write_json(folder / f"{name}.json",
                      {**payload, "provenance": provenance(params, seed=seed, device=device, wall_time_s=wall_time_s)})
    if csv_rows:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(csv_rows[0]), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(csv_rows)
        write_text(folder / f"{name}.csv", buf.getvalue())
    return path


# ------------------------------------------------------------------------------------------- schemas
class SchemaError(NatrobError, ValueError):
    """A result file breaks its declared schema: two counts share a key, or a count sits where none is declared."""


# what names a list element in a key: an attack by its stable id, its display label ("attack") only when it has none
ID_FIELDS = ("model", "training", "id", "attack", "setting", "h", "eps", "protocol")

def schemas() -> dict:
    """{result-file prefix: the key patterns of its counts}, as the chapter records declare them
    (:data:`natrob.chapters.CHAPTERS`)."""
    return chapters.schemas()


def _ident(item, index: int) -> str:
    if isinstance(item, dict):
        parts = [f"{f}={item[f]:.6g}" if isinstance(item[f], float) else f"{f}={item[f]}"
                 for f in ID_FIELDS if f in item and isinstance(item[f], (str, int, float))
                 and not (f == "attack" and "id" in item)]
        if parts:
            return "[" + ",".join(parts) + "]"
    return f"[{index}]"


def nodes(obj, key: tuple = ()) -> dict:
    """Every dict and count of a result file by its key (a tuple of segments: map keys, and ``[...]`` for list
    elements); ``provenance`` is skipped. Raises SchemaError when two siblings get the same key."""
    found = {key: obj} if isinstance(obj, dict) else {}
    if is_count(obj):
        return found
    if isinstance(obj, dict):
        children = [(str(k), v) for k, v in obj.items() if k != "provenance"]
    elif isinstance(obj, list):
        children = [(_ident(v, i), v) for i, v in enumerate(obj)]
    else:
        return found
    segs = [seg for seg, _ in children]
    for i, (seg, v) in enumerate(children):
        if segs.count(seg) > 1:
            if _has_count(v):
                raise SchemaError(f"two entries share the key {show_key(key + (seg,))}: add an identifying field")
            seg = f"[{i}]"  # rows without counts (checks, history) need no identity of their own
        found.update(nodes(v, key + (seg,)))
    return found


def _has_count(obj) -> bool:
    if is_count(obj):
        return True
    values = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, list) else ()
    return any(_has_count(v) for v in values)


def counts(obj) -> dict:
    """Every count value of a result file: {key: count value} (see :func:`nodes`)."""
    return {k: v for k, v in nodes(obj).items() if is_count(v)}


def show_key(key: tuple) -> str:
    """A key as text: ``models.trades.per_eps[eps=0.5].attacks.autoattack.robust``."""
    out = ""
    for seg in key:
        out += seg if seg.startswith("[") or not out else "." + seg
    return out


def _pattern(text: str) -> tuple:
    out = []
    for part in text.split("."):
        while part.endswith("[]"):
            part = part[:-2]
            out += [part, "[]"] if part else ["[]"]
            part = ""
        if part:
            out.append(part)
    return tuple(out)


def matches(key: tuple, pattern: str) -> bool:
    """Whether a count key matches a schema pattern (``*`` any map key, ``[]`` any list element)."""
    pat = _pattern(pattern)
    return len(pat) == len(key) and all(
        p == k or (p == "[]" and k.startswith("[")) or (p == "*" and not k.startswith("[")) for p, k in zip(pat, key))


def schema_for(name: str) -> tuple:
    """The declared count patterns of result file ``name`` (by its longest matching prefix); SchemaError if none."""
    declared = schemas()
    prefix = max((p for p in declared if name.startswith(p)), key=len, default=None)
    if prefix is None:
        raise SchemaError(f"result file {name!r} has no declared schema (natrob.chapters.CHAPTERS)")
    return declared[prefix]


def check_schema(name: str, payload: dict) -> dict:
    """The counts of ``payload`` (see :func:`counts`) after checking each sits where ``name``'s schema declares
    one; SchemaError naming the first that does not."""
    patterns, found = schema_for(name), counts(payload)
    for key in found:
        if not any(matches(key, p) for p in patterns):
            raise SchemaError(f"{name}: count at {show_key(key)} is not declared in its chapter's record "
                              "(natrob.chapters.CHAPTERS)")
    return found
