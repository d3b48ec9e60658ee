"""Runs the numbered notebooks headless with papermill for one profile, then builds the report.

    python -m natrob.runner [--profile quick] [--only 03 ...] [-p KEY=VALUE ...] [--force] [--no-report] [--verify]

Everything a run writes lives under the profile's name (``results/<profile>/``, ``figures/<profile>/``,
``notebooks/executed/<profile>/``, ``report/<profile>/``), so one profile never touches another's files.
A notebook is skipped when its finished stamp matches (same notebook, profile values and natrob code). The
stamp is cleared when a notebook starts, and its executed copy is written under a temporary name and moved
into place only when it succeeds: a run killed mid-notebook never counts as finished. A failed notebook's
copy is kept as ``<name>.failed.ipynb`` with the traceback. Kernels talk over unix sockets (natrob.kernels).
With several GPUs, independent notebooks run side by side, one GPU each.

At the end it prints the run's timing table (:func:`timing_table`): each notebook that ran or was reused, the
report, the run's total, the machine's MNIST-128 f call (:func:`f_call_ms`) and the machine, and records it in
``_runs.json`` (``_timings``, ``_last_run``, ``_machine``) and in the report's provenance section, so a cost
quoted in the README is copied from a run.
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
from .provenance import code_hash
from .report.timings import F_CALL, run_total, timing_table
from .results import read_json, write_json


def notebooks() -> list:
    """The numbered notebooks, in order."""
    return sorted(p for p in paths.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _stamp(nb: Path, params: dict) -> str:
    """Finished results are reused while the notebook, the profile's values and natrob's code are unchanged."""
    h = hashlib.sha256(nb.read_bytes() + json.dumps(params, sort_keys=True).encode() + code_hash().encode())
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
    """Execute one notebook into ``out_dir``; the final name appears only when every cell succeeded."""
    import papermill as pm
    from .kernels import IPCKernelManager
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path, partial = out_dir / nb.name, out_dir / f".{nb.stem}.partial.ipynb"
    declared = set(pm.inspect_notebook(str(nb)))
    params = {k: v for k, v in params.items() if k in declared}  # each notebook gets the values it declares
    t0 = time.time()
    try:
        pm.execute_notebook(str(nb), str(partial), parameters=params, kernel_name="python3", cwd=str(paths.NOTEBOOKS),
                            progress_bar=False, log_output=True, request_save_on_cell_execute=True,
                            kernel_manager_class=IPCKernelManager)
        os.replace(partial, out_path)
        return {"notebook": nb.name, "ok": True, "wall_s": time.time() - t0, "executed": str(out_path)}
    except Exception as exc:  # papermill wraps kernel errors; report the cell, keep what was computed
        failed = out_dir / f"{nb.stem}.failed.ipynb"
        if partial.exists():
            os.replace(partial, failed)
        return {"notebook": nb.name, "ok": False, "wall_s": time.time() - t0, "executed": str(failed),
                "error": _failing_cell(failed) if failed.exists() else f"{type(exc).__name__}: {exc}"}


def _gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default=paths.DEFAULT_PROFILE, help=f"one of {', '.join(available())} (default quick)")
    p.add_argument("--only", nargs="+", default=None, help="notebook numbers to run, e.g. --only 01 03")
    p.add_argument("-p", "--param", action="append", default=[], metavar="KEY=VALUE",
                   help="override one profile value for this run (VALUE is read as YAML), e.g. -p THREADS=1")
    p.add_argument("--force", action="store_true", help="re-execute notebooks even when finished results exist")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--verify", action="store_true",
                   help="afterwards compare the results with the published ones (reference-results/<profile>)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)  # one notebook of a side-by-side run
    return p.parse_args(argv)


def _overrides(items, params: dict) -> dict:
    """``KEY=VALUE`` strings as a dict; raises ValueError naming a malformed item or a key the profile lacks."""
    import yaml
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"-p {item!r} is not KEY=VALUE")
        if key not in params:
            raise ValueError(f"-p {key}: not a value of this profile; allowed: {', '.join(sorted(params))}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise ValueError(f"-p {key}={value!r} is not a YAML value: {exc}") from None
    return out


def _select(only) -> list:
    """The notebooks to consider; raises ValueError naming the numbers that are not notebooks."""
    todo = notebooks()
    if not only:
        return todo
    known = {nb.name[:2] for nb in todo}
    bad = [n for n in only if n.zfill(2) not in known]
    if bad:
        raise ValueError(f"--only {' '.join(bad)} is not a notebook number; allowed: {', '.join(sorted(known))}")
    return [nb for nb in todo if nb.name[:2] in {n.zfill(2) for n in only}]


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
        self.data.pop(nb.name, None)
        self.save()

    def done(self, res: dict, stamp: str):
        """Record a finished run's time, and its stamp when it succeeded."""
        self.data["_timings"][res["notebook"]] = round(res["wall_s"], 1)
        if res["ok"]:
            self.data[res["notebook"]] = stamp
        self.save()

    def reload(self):
        """Re-read the stamps (after notebooks ran in subprocesses)."""
        self.data = read_json(self.path) if self.path.exists() else self.data

    def save(self):
        """Write the stamps atomically."""
        write_json(self.path, self.data)




def f_call_ms(calls: int = 5, budget_s: float = 1.0) -> float:
    """The machine's MNIST-128 f call in milliseconds: the wall time of one evaluation of the vector field f
    (``model.func``) of the paper's 128-channel MNIST ODE net (28x28 images, 4 conv layers: a 128x14x14 state) on
    a batch of 128 random states, on one CPU thread; the median of ``calls`` calls after a warm-up call (at least
    3, fewer than ``calls`` once ``budget_s`` is spent, so it costs about a second). As bench/ode_speed.py's f call
    (its 'fast' row); random weights (seed 0, the caller's random state is kept), no data is read."""
    import statistics
    import torch
    from .data import STATS
    from .models import build_model
    spec = {"in_channels": 1, "num_classes": 10, "mean": STATS["mnist"][0], "std": STATS["mnist"][1]}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(0)
            model = build_model("odenet", spec=spec, channels=128, conv_layers=4, t1=100.0).eval()
            shape = model.features(torch.zeros(1, 1, 28, 28)).shape[1:]  # the state y(t0) of one image
            y, t = torch.randn(128, *shape), torch.tensor(1.0)
            model.func(t, y)  # warm-up
            times, start = [], time.perf_counter()
            while len(times) < calls and (len(times) < 3 or time.perf_counter() - start < budget_s):
                s = time.perf_counter()
                model.func(t, y)
                times.append(time.perf_counter() - s)
    finally:
        torch.set_num_threads(threads)
    return statistics.median(times) * 1e3


def machine(params: dict | None = None, f_ms: float | None = None) -> dict:
    """This machine, as ``_runs.json`` records it (``_machine``): the f call (:func:`f_call_ms`, measured unless
    ``f_ms`` is given), the device in words, CPU count, torch threads (this process's, and the profile's THREADS
    the notebooks use) and when it was measured."""
    import torch
    from .provenance import device_description
    ms = f_call_ms() if f_ms is None else f_ms
    return {"f_call": F_CALL, "f_call_ms": round(ms, 1), "device": device_description(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "notebook_threads": (params or {}).get("THREADS"),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _run_side_by_side(pending, profile, force, gpus, overrides=()):
    # notebooks share trained models only through the store, which is keyed and atomic, so they can run apart
    print(f"[run_all] {gpus} GPUs: running {len(pending)} notebooks side by side")
    cmd = [sys.executable, "-m", "natrob.runner", "--profile", profile, "--no-report", "--child"]
    cmd += ["--force"] if force else []
    cmd += [arg for item in overrides for arg in ("-p", item)]
    with ThreadPoolExecutor(max_workers=gpus) as pool:
        futures = [(pool.submit(subprocess.run, cmd + ["--only", nb.name[:2]],
                                env=dict(os.environ, CUDA_VISIBLE_DEVICES=str(i % gpus))), nb)
                   for i, (nb, _) in enumerate(pending)]
        failed = [nb for fut, nb in futures if fut.result().returncode != 0]
    return {"notebook": failed[0].name, "error": "see its log above", "executed": "(its log)"} if failed else None


def _run_in_turn(pending, params, profile, stamps, out_dir):
    for nb, stamp in pending:
        print(f"[run_all] running {nb.name} (profile {profile})", flush=True)
        stamps.started(nb)
        res = run_notebook(nb, params, out_dir)
        stamps.done(res, stamp)
        print(f"[run_all] {nb.name}: {'ok' if res['ok'] else 'FAILED'} in {res['wall_s']:.1f}s", flush=True)
        if not res["ok"]:
            return res
    return None


def main(argv=None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    a = _parse(argv)
    try:
        params = load_profile(a.profile)
        params.update(_overrides(a.param, params))
        todo = _select(a.only)
    except (UnknownNameError, ValueError) as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    out_dir = paths.executed_notebooks_dir(a.profile)
    stamps = Stamps(a.profile)
    pending, reused = [], []
    for nb in todo:
        s = _stamp(nb, params)
        if not a.force and stamps.finished(nb, s, out_dir):
            print(f"[run_all] {nb.name}: finished results for profile {a.profile} found, skipping (--force to redo)")
            reused.append(nb.name)
            continue
        pending.append((nb, s))
    t_all = time.time()
    gpus = _gpu_count()
    side_by_side = gpus > 1 and len(pending) > 1
    if side_by_side:
        failed = _run_side_by_side(pending, a.profile, a.force, gpus, a.param)
        stamps.reload()
    else:
        failed = _run_in_turn(pending, params, a.profile, stamps, out_dir)
    names = [nb.name for nb, _ in pending]
    ran = names if side_by_side or not failed else names[:names.index(failed["notebook"]) + 1]
    last_run = {"ran": ran, "reused": reused, "failed": failed["notebook"] if failed else None, "report_s": None,
                "wall_s": round(time.time() - t_all, 1) if side_by_side else None}
    timings, mach = stamps.data["_timings"], None
    if not a.child:  # a side-by-side run's parent measures and records once, for all its notebooks
        mach = machine(params)
        print(f"[run_all] {mach['f_call']}: {mach['f_call_ms']:.0f} ms")
    if not failed and not a.no_report:
        from .report import build_report
        t0 = time.time()
        path = build_report(profile=a.profile, params=params, timings=timings,
                            runs={"_last_run": last_run, "_machine": mach})
        timings["report"] = last_run["report_s"] = round(time.time() - t0, 1)
        print(f"[run_all] report: {path}")
    if not a.child:
        last_run["total_s"] = run_total(timings, last_run)
        last_run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        stamps.data.update({"_last_run": last_run, "_machine": mach})
        stamps.save()
        print(timing_table(timings, last_run, mach))
    if failed:
        print(f"\n[run_all] STOPPED: notebook {failed['notebook']} failed in {failed['error']}\n"
              f"  executed copy with the traceback: {failed['executed']}\n"
              f"  results already written are kept; fix the cause and run again (finished notebooks are skipped)",
              file=sys.stderr)
        return 1
    if a.verify:
        from .verify import verify
        return verify(a.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
