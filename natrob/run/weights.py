"""Published weights: the trained nets behind a profile's published numbers, committed with a sha256 manifest.

    python -m natrob.run.weights publish --profile quick    # the files a run of the profile read from the model store
    python -m natrob.run.weights install --profile quick    # check each sha256, put them in the model store
    python -m natrob.run.weights show --profile quick       # the manifest as a table

``reference-results/<profile>/weights/`` holds, per model-store entry the profile's notebooks read
(``<model>-<data>-<key>/``), the checkpoint files they read (``final.pt``, the ``epoch-<n>.pt`` a training-length
axis reads), its ``spec.json`` (what the store key hashes) and ``meta.json`` (training record), and one
``manifest.json``: a row per file (``file``, ``sha256``, ``bytes``) and a record per model (store key, training
spec, epochs, clean accuracy on the full test set per stored epoch, training time, the commit that trained it).
Checkpoints hold float32 state dicts and load with ``weights_only=True``.

Which files a profile reads is logged by the model store while the runner runs it
(``results/<profile>/_model_reads.jsonl``, :func:`natrob.train.store.note_read`); ``publish`` copies exactly those.
``install`` refuses (:class:`WeightsError`, one line naming the file and how to mend it) a listed file that is
missing or whose sha256 differs, before it copies anything; the runner then exits 2 and trains nothing in its place.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from .. import paths
from ..errors import NatrobError
from ..results import read_json, sha256, write_json
from ..train.checkpoint import MODE_ENV, READS_ENV  # noqa: F401  (the runner and tests name them from here)
from ..train.store import entry_key, store_root

MANIFEST = "manifest.json"
READS_LOG = "_model_reads.jsonl"


class WeightsError(NatrobError, RuntimeError):
    """A published weight is missing, altered or not a float32 checkpoint; the message names the file and the
    command that mends it."""


def weights_dir(profile: str) -> Path:
    """``reference-results/<profile>/weights/``."""
    return paths.PUBLISHED / paths.checked(profile) / "weights"


def reads_log(profile: str) -> Path:
    """``results/<profile>/_model_reads.jsonl``: one line per model-store file a run of the profile read."""
    return paths.results_dir(profile) / READS_LOG


def manifest(profile: str) -> dict | None:
    """The profile's manifest, or None where it has none (or lists no file: then the profile trains)."""
    path = weights_dir(profile) / MANIFEST
    if not path.exists():
        return None
    m = read_json(path)
    return m if m.get("weights") else None


def _reads(log: Path) -> dict:
    """{store folder: set of file names} read, from the log."""
    out: dict = {}
    if not log.exists():
        return out
    for line in log.read_text().splitlines():
        try:
            rel = Path(json.loads(line)["file"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut by a kill
        if len(rel.parts) == 2:
            out.setdefault(rel.parts[0], set()).add(rel.parts[1])
    return out


def _check_float32(ckpt: dict, path: Path):
    bad = [k for k, v in ckpt.get("state_dict", {}).items() if torch.is_floating_point(v) and v.dtype != torch.float32]
    if bad:
        raise WeightsError(f"{path}: not a float32 state dict ({bad[0]} is {ckpt['state_dict'][bad[0]].dtype})")


def _model_record(folder: Path, names: set) -> dict:
    """What the manifest says of one store entry: key, spec, the epochs published with their clean accuracy on the
    full test set, training time and the commit that trained it."""
    meta = read_json(folder / "meta.json") if (folder / "meta.json").exists() else {}
    spec = read_json(folder / "spec.json") if (folder / "spec.json").exists() else {}
    epochs = {}
    for name in sorted(names):
        ckpt = torch.load(folder / name, map_location="cpu", weights_only=True)
        _check_float32(ckpt, folder / name)
        history = ckpt.get("history") or []
        epoch = int(ckpt["epoch"]) + 1 if "epoch" in ckpt else len(history)
        last = history[epoch - 1] if 0 < epoch <= len(history) else {}
        epochs[name] = {"epoch": epoch, "clean_acc_test": last.get("test_acc"),
                        "train_s": round(sum(h.get("wall_s") or 0.0 for h in history[:epoch]), 1)}
    prov = meta.get("provenance") or {}
    return {"key": entry_key(folder), "model": spec.get("model") or meta.get("model"),
            "kwargs": spec.get("kwargs") or meta.get("model_kwargs"), "data": spec.get("data") or meta.get("dataset"),
            "train": spec.get("train") or (prov.get("params") or {}).get("train"), "seed": spec.get("seed"),
            "test_n": (spec.get("data") or meta.get("dataset") or {}).get("n_test"),
            "trained_by_commit": prov.get("git_commit"), "device": prov.get("device"), "files": epochs}


def publish(profile: str, store_dir=None, log=None) -> dict:
    """Copy every model-store file a run of ``profile`` read (``log``, default :func:`reads_log`) from the store
    (``store_dir``, default ``checkpoints/``) to :func:`weights_dir`, with its entry's ``spec.json`` and
    ``meta.json``, and write the manifest. Replaces what was published before. Returns the manifest.
    Raises WeightsError when nothing was read or a file is missing from the store."""
    store = store_root(store_dir)
    reads = _reads(Path(log or reads_log(profile)))
    if not reads:
        raise WeightsError(f"no model-store reads logged in {log or reads_log(profile)}: run the profile first "
                           f"(./run_all.sh --profile {profile} --weights train --force)")
    dst = weights_dir(profile)
    tmp = dst.with_name(".weights.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    rows, models = [], {}
    for folder_name, names in sorted(reads.items()):
        folder = store / folder_name
        missing = [n for n in sorted(names) if not (folder / n).exists()]
        if missing:
            raise WeightsError(f"{folder / missing[0]} was read by the run but is no longer in the store")
        models[folder_name] = _model_record(folder, names)
        (tmp / folder_name).mkdir(parents=True)
        for name in sorted(names) + [n for n in ("spec.json", "meta.json") if (folder / n).exists()]:
            shutil.copy2(folder / name, tmp / folder_name / name)
            f = tmp / folder_name / name
            rows.append({"file": f"{folder_name}/{name}", "sha256": sha256(f), "bytes": f.stat().st_size})
    m = {"profile": profile, "what": "model-store files the profile's notebooks read (natrob.run.weights)",
         "total_bytes": sum(r["bytes"] for r in rows), "models": models, "weights": rows}
    write_json(tmp / MANIFEST, m)
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)
    return m


def check(profile: str) -> dict:
    """The manifest, after checking that every file it lists is present with its sha256 (WeightsError naming the
    first that is not, and how to mend it)."""
    m = manifest(profile)
    if m is None:
        raise WeightsError(f"profile {profile} has no published weights ({weights_dir(profile) / MANIFEST}); "
                           f"train them with ./run_all.sh --profile {profile} --weights train")
    wdir = weights_dir(profile)
    shown = wdir.relative_to(paths.REPO) if wdir.is_relative_to(paths.REPO) else wdir
    mend = f"restore it with `git checkout -- {shown}` or retrain with ./run_all.sh --profile {profile} --weights train"
    for row in m["weights"]:
        f = weights_dir(profile) / row["file"]
        if not f.exists():
            raise WeightsError(f"published weight {f} is missing; {mend}")
        got = sha256(f)
        if got != row["sha256"]:
            raise WeightsError(f"published weight {f} has sha256 {got[:16]}..., the manifest says "
                               f"{row['sha256'][:16]}...; {mend}")
    return m


def install(profile: str, store_dir=None, out=None) -> dict:
    """Check every published file of ``profile`` (:func:`check`), then put each in the model store (``store_dir``,
    default ``checkpoints/``) where the store lacks it or holds other bytes (a file it replaces is kept beside it as
    ``<name>.replaced``). Returns ``{"files", "copied", "bytes"}``."""
    m = check(profile)
    store = store_root(store_dir)
    copied = 0
    for row in m["weights"]:
        src, dst = weights_dir(profile) / row["file"], store / row["file"]
        if dst.exists() and sha256(dst) == row["sha256"]:
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists():
            dst.replace(dst.with_name(dst.name + ".replaced"))
        tmp = dst.with_name(f".{dst.name}.partial")
        shutil.copyfile(src, tmp)
        tmp.replace(dst)
        copied += 1
    if copied and out is not None:
        print(f"[weights] {copied} of {len(m['weights'])} published files of profile {profile} put in {store}",
              file=out)
    return {"files": len(m["weights"]), "copied": copied, "bytes": m["total_bytes"]}


def table(m: dict) -> str:
    """The manifest as a plain-text table: one row per published checkpoint."""
    lines = [f"{'store entry':48} {'file':12} {'epoch':>5} {'clean (test)':>12} {'train s':>8} {'MB':>6}  commit"]
    sizes = {r["file"]: r["bytes"] for r in m["weights"]}
    for folder, rec in m["models"].items():
        for name, e in rec["files"].items():
            acc = e["clean_acc_test"]
            lines.append(f"{folder:48} {name:12} {e['epoch']:>5} {'' if acc is None else f'{100 * acc:.2f}%':>12} "
                         f"{e['train_s']:>8.1f} {sizes[f'{folder}/{name}'] / 1e6:>6.2f}  "
                         f"{(rec.get('trained_by_commit') or '?')[:7]}")
    lines.append(f"{len(m['weights'])} files, {m['total_bytes'] / 1e6:.1f} MB")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=["publish", "install", "show"])
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE)
    p.add_argument("--store", default=None, help="model store (default checkpoints/ of NATROB_ARTIFACTS)")
    a = p.parse_args(argv)
    try:
        if a.action == "publish":
            print(table(publish(a.profile, a.store)))
        elif a.action == "install":
            r = install(a.profile, a.store, out=sys.stdout)
            print(f"[weights] profile {a.profile}: {r['files']} files checked ({r['bytes'] / 1e6:.1f} MB), "
                  f"{r['copied']} copied")
        else:
            print(table(check(a.profile)))
    except (WeightsError, ValueError) as exc:
        print(f"weights: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
