"""Runs the numbered notebooks headless with papermill for one profile, then builds the report.

    python -m natrob.runner [--profile quick] [--only 03 ...] [--force] [--no-report]

Stops at the first failing notebook naming the cell; skips notebooks whose executed copy is already there
for the same profile parameters and notebook source (trained models are reused through the model store
regardless); with several GPUs, independent notebooks run side by side, one GPU each.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import paths
from .errors import UnknownNameError
from .profiles import available, load_profile
from .provenance import read_json, write_json


def notebooks() -> list:
    return sorted(p for p in paths.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _stamp(nb: Path, params: dict) -> str:
    """Finished results are reused while the notebook, the profile's values and natrob's code are unchanged."""
    h = hashlib.sha256(nb.read_bytes() + json.dumps(params, sort_keys=True).encode())
    for src in sorted(paths.PACKAGE.rglob("*.py")):
        h.update(src.read_bytes())
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


def run_notebook(nb: Path, params: dict, out_dir: Path) -> dict:
    import papermill as pm
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / nb.name
    declared = set(pm.inspect_notebook(str(nb)))
    params = {k: v for k, v in params.items() if k in declared}  # each notebook gets the values it declares
    t0 = time.time()
    try:
        pm.execute_notebook(str(nb), str(out_path), parameters=params, kernel_name="python3", cwd=str(paths.NOTEBOOKS),
                            progress_bar=False, log_output=True, request_save_on_cell_execute=True)
        return {"notebook": nb.name, "ok": True, "wall_s": time.time() - t0, "executed": str(out_path)}
    except Exception as exc:  # papermill wraps kernel errors; report the cell, keep what was computed
        return {"notebook": nb.name, "ok": False, "wall_s": time.time() - t0, "executed": str(out_path),
                "error": _failing_cell(out_path) if out_path.exists() else f"{type(exc).__name__}: {exc}"}


def _gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="quick", help=f"one of {', '.join(available())} (default quick)")
    p.add_argument("--only", nargs="+", default=None, help="notebook numbers to run, e.g. --only 01 03")
    p.add_argument("--force", action="store_true", help="re-execute notebooks even when finished results exist")
    p.add_argument("--no-report", action="store_true")
    a = p.parse_args(argv)
    try:
        params = load_profile(a.profile)
    except UnknownNameError as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    todo = notebooks()
    if a.only:
        known = {nb.name[:2] for nb in todo}
        bad = [n for n in a.only if n.zfill(2) not in known]
        if bad:
            print(f"run_all: --only {' '.join(bad)} is not a notebook number; allowed: {', '.join(sorted(known))}", file=sys.stderr)
            return 2
        todo = [nb for nb in todo if nb.name[:2] in {n.zfill(2) for n in a.only}]
    out_dir = paths.executed_notebooks_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    stamps_path = paths.results_dir() / f"_runs-{a.profile}.json"
    stamps = read_json(stamps_path) if stamps_path.exists() else {}
    timings = stamps.get("_timings", {})
    pending = []
    for nb in todo:
        s = _stamp(nb, params)
        if not a.force and stamps.get(nb.name) == s and (out_dir / nb.name).exists():
            print(f"[run_all] {nb.name}: finished results for profile {a.profile} found, skipping (--force to redo)")
            continue
        pending.append((nb, s))
    gpus = _gpu_count()
    t_all = time.time()

    def record(res, s):
        nb_name = res["notebook"]
        timings[nb_name] = round(res["wall_s"], 1)
        if res["ok"]:
            stamps[nb_name] = s
        stamps["_timings"] = timings
        write_json(stamps_path, stamps)

    failed = None
    if gpus > 1 and len(pending) > 1:
        # notebooks share trained models only through the store, which is keyed and atomic, so they can run apart
        print(f"[run_all] {gpus} GPUs: running {len(pending)} notebooks side by side")
        with ThreadPoolExecutor(max_workers=gpus) as pool:
            futures = [(pool.submit(subprocess.run, [sys.executable, "-m", "natrob.runner", "--profile", a.profile,
                                                     "--only", nb.name[:2], "--no-report"] + (["--force"] if a.force else []),
                                    env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(i % gpus))), nb)
                       for i, (nb, s) in enumerate(pending)]
            for fut, nb in futures:
                if fut.result().returncode != 0 and failed is None:
                    failed = {"notebook": nb.name, "error": "see its log above"}
        stamps = read_json(stamps_path) if stamps_path.exists() else stamps
    else:
        for nb, s in pending:
            print(f"[run_all] running {nb.name} (profile {a.profile})", flush=True)
            res = run_notebook(nb, {k: v for k, v in params.items()}, out_dir)
            record(res, s)
            print(f"[run_all] {nb.name}: {'ok' if res['ok'] else 'FAILED'} in {res['wall_s']:.1f}s", flush=True)
            if not res["ok"]:
                failed = res
                break
    if failed:
        print(f"\n[run_all] STOPPED: notebook {failed['notebook']} failed in {failed['error']}\n"
              f"  executed copy with the traceback: {out_dir / failed['notebook']}\n"
              f"  results already written are kept; fix the cause and run again (finished notebooks are skipped)",
              file=sys.stderr)
        return 1
    if not a.no_report:
        from .report import build_report
        t0 = time.time()
        path = build_report(profile=a.profile, params=params, timings=timings)
        timings["report"] = round(time.time() - t0, 1)
        print(f"[run_all] report: {path}")
    print("[run_all] times (s): " + ", ".join(f"{k}: {v}" for k, v in timings.items()) +
          f"; this run {time.time() - t_all:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
