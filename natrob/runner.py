"""Runs the numbered notebooks headless with papermill for one profile, then builds the report.

    python -m natrob.runner [--profile quick] [--only 03 ...] [-p KEY=VALUE ...] [--weights published|train]
                            [--force] [--no-report] [--verify]

``--weights published`` (the default where the profile has published weights, ``reference-results/<profile>/weights``)
checks each published checkpoint's sha256, puts them in the model store and evaluates them: nothing is trained (a
missing or altered file is one line naming it, exit 2). ``--weights train`` trains every model as the notebooks ask.

Everything a run writes lives under the profile's name (``results/<profile>/``, ``figures/<profile>/``,
``notebooks/executed/<profile>/``, ``report/<profile>/``), so one profile never touches another's files.
A notebook is skipped when its finished stamp matches (same notebook, profile values and natrob code). The
stamp is cleared when a notebook starts, and its executed copy is written under a temporary name and moved
into place only when it succeeds: a run killed mid-notebook never counts as finished. A failed notebook's
copy is kept as ``<name>.failed.ipynb`` with the traceback. Kernels talk over unix sockets (natrob.kernels).
Notebooks run side by side (``--jobs``; :func:`jobs_for`): one per GPU where there are several, and on CPUs as
many as the cores hold at the profile's ``THREADS`` each (the quick profile: THREADS=1, two notebooks on 2 cores),
the longest first; the model store trains each model once under a lock, and the others wait for it.

At the end it prints the run's timing table (:func:`timing_table`): each notebook that ran or was reused, the
report, the run's total, the machine's MNIST-128 f call (:func:`f_call_ms`) and the machine, and records it in
``_runs.json`` (``_timings``, ``_last_run``, ``_machine``) and in the report's provenance section, so a cost
quoted in the README is copied from a run.

Nothing waits forever: every cell has a timeout (:func:`cell_timeout`, from the profile's ``CELL_TIMEOUT``: a margin
over the notebook's time in the published run, plus the training allowance when weights are trained), a notebook
that times out or whose kernel dies is run once more and the table says so. One run holds a profile's folder at a
time (:func:`hold_profile`): a second run of the same profile is told which process holds it and exits 2.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from . import paths
from .errors import UnknownNameError
from .locks import exclusive
from .profiles import available, load_profile
from .provenance import code_hash
from .report.timings import F_CALL, run_total, timing_table
from .results import read_json, write_json, write_text
from .weights import MODE_ENV, READS_ENV, WeightsError, install, manifest, reads_log


def notebooks() -> list:
    """The numbered notebooks, in order."""
    return sorted(p for p in paths.NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))


def _stamp(nb: Path, params: dict, weights: str = "train") -> str:
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
    p.add_argument("--weights", choices=["published", "train"], default=None,
                   help="published: evaluate the profile's published weights (sha256 checked, nothing trained; the "
                        "default where reference-results/<profile>/weights exists); train: train every model")
    p.add_argument("--force", action="store_true", help="re-execute notebooks even when finished results exist")
    p.add_argument("--no-report", action="store_true")
    p.add_argument("--verify", action="store_true",
                   help="afterwards compare the results with the published ones (reference-results/<profile>)")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="notebooks run side by side (default: one per GPU; on CPUs, the cores over THREADS)")
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

    def reload(self):
        """Re-read the stamps (after notebooks ran in subprocesses)."""
        self.data = read_json(self.path) if self.path.exists() else self.data
        self.data.setdefault("_timings", {})

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


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's share, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def jobs_for(params: dict, gpus: int, cpus: int | None) -> int:
    """How many notebooks run side by side: one per GPU where there are several, one at a time on a single GPU;
    on CPUs, as many as the cores hold at the profile's ``THREADS`` each (2 cores at THREADS=1: two notebooks),
    one when THREADS is unset."""
    if gpus >= 1:
        return gpus
    threads = params.get("THREADS")
    return max(1, (cpus or 1) // int(threads)) if threads else 1


def ordered(pending, timings: dict) -> list:
    """``pending`` in the order side-by-side workers take them: the longest first by ``timings`` (seconds per
    notebook: as each last ran here, else as in the published run; unknown ones at the head, in number order), so
    that no long notebook starts last."""
    known = {nb.name: timings.get(nb.name) for nb, _ in pending}
    return sorted(pending, key=lambda item: (known[item[0].name] is not None, -(known[item[0].name] or 0),
                                             item[0].name))


def published_timings(profile: str) -> dict:
    """Per notebook, the seconds it took in the run whose results are published
    (``reference-results/<profile>/_timings.json``, written by ``verify --publish``); {} when there is none."""
    path = paths.PUBLISHED / paths.checked(profile) / "_timings.json"
    try:
        return dict(read_json(path).get("_timings") or {})
    except (OSError, ValueError, AttributeError):
        return {}


def training_jobs(params: dict, profile: str, pending, overrides=()) -> list:
    """``[(label, command)]``: models a pending notebook would train one after another, trained instead as jobs of
    their own at the head of a side-by-side run: notebook 08's widths (``python -m natrob.width``), its longest
    chain. None when ``-p`` overrides are given (the commands read the profile's own values)."""
    if overrides or not any(nb.name.startswith("08-") for nb, _ in pending):
        return []
    threads = ["--threads", str(params["THREADS"])] if params.get("THREADS") else []
    return [(f"train the {c}-channel ODE net of notebook 08",
             [sys.executable, "-m", "natrob.width", "--profile", profile, "--channels", str(c), *threads])
            for c in sorted((int(c) for c in params.get("WIDTH_CHANNELS") or []), reverse=True)]


def _run_side_by_side(pending, profile, force, jobs, gpus, overrides=(), training=(), weights="train"):
    # notebooks share trained models only through the store, which is keyed and atomic, and whose entries are
    # trained under a lock (the second notebook to want a model waits for the first to finish training it)
    where = f"{gpus} GPUs" if gpus > 1 else f"{usable_cpus()} CPUs"
    print(f"[run_all] {where}: running {len(pending)} notebooks side by side, {jobs} at a time"
          + (f", after {len(training)} training jobs" if training else ""))
    cmd = [sys.executable, "-m", "natrob.runner", "--profile", profile, "--no-report", "--child", "--weights", weights]
    cmd += ["--force"] if force else []
    cmd += [arg for item in overrides for arg in ("-p", item)]
    slots = queue.Queue()
    for i in range(jobs):
        slots.put(i)

    def one(command):
        slot = slots.get()  # a GPU (or a share of the cores) that no other running job holds
        try:
            env = dict(os.environ, **({"CUDA_VISIBLE_DEVICES": str(slot % gpus)} if gpus > 1 else {}))
            t0 = time.time()
            return subprocess.run(command, env=env).returncode, time.time() - t0
        finally:
            slots.put(slot)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        trained = [(pool.submit(one, command), label) for label, command in training]
        futures = [(pool.submit(one, cmd + ["--only", nb.name[:2]]), nb) for nb, _ in pending]
        times = {}
        for fut, label in trained:  # a notebook that needs the model trains it again and names what failed
            rc, seconds = fut.result()
            if rc == 0:
                times[label] = seconds
            else:
                print(f"[run_all] {label}: failed (its notebook will train it)", flush=True)
        failed = [nb for fut, nb in futures if fut.result()[0] != 0]
    failure = {"notebook": failed[0].name, "error": "see its log above", "executed": "(its log)"} if failed else None
    return failure, {label: round(t, 1) for label, t in times.items()}


def _run_in_turn(pending, params, profile, stamps, out_dir, weights="train"):
    for nb, stamp in pending:
        print(f"[run_all] running {nb.name} (profile {profile})", flush=True)
        stamps.started(nb)
        res = run_notebook(nb, params, out_dir, timeout=cell_timeout(nb.name, params, profile, weights))
        stamps.done(res, stamp)
        print(f"[run_all] {nb.name}: {'ok' if res['ok'] else 'FAILED'} in {res['wall_s']:.1f}s", flush=True)
        if not res["ok"]:
            return res
    return None


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
                          f"python -m natrob.runner {' '.join(sys.argv[1:])[:200]}\n")  # atomic: never read half
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _restored(*names):
    """The environment variables ``names`` as they were before the block (a run sets them for its kernels and child
    runs; a caller in the same process, a test say, must not inherit them)."""
    saved = {n: os.environ.get(n) for n in names}
    try:
        yield
    finally:
        for n, v in saved.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


def _weights_mode(a, out=sys.stdout) -> str:
    """``published`` or ``train`` for this run, after putting the published weights in the model store (the
    parent only); raises WeightsError (missing or altered file, or --weights published without a manifest)."""
    m = manifest(a.profile)
    mode = a.weights or ("published" if m is not None else "train")
    if mode == "published" and not a.child:
        r = install(a.profile)
        print(f"[run_all] evaluating the published weights of profile {a.profile} ({r['files']} files, "
              f"{r['bytes'] / 1e6:.1f} MB, sha256 checked; {r['copied']} put in the model store); "
              f"./run_all.sh --profile {a.profile} --weights train retrains them", file=out, flush=True)
    elif mode == "published" and m is None:
        raise WeightsError(f"profile {a.profile} has no published weights; use --weights train")
    return mode


def _weights_id(mode: str, profile: str) -> str:
    if mode != "published":
        return "train"
    from .weights import MANIFEST, sha256, weights_dir
    return "published:" + sha256(weights_dir(profile) / MANIFEST)[:16]


def main(argv=None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    a = _parse(argv)
    try:
        params = load_profile(a.profile)
        params.update(_overrides(a.param, params))
        todo = _select(a.only)
        if a.jobs is not None and a.jobs < 1:
            raise ValueError(f"--jobs {a.jobs}: allowed: a number of notebooks to run side by side, 1 or more")
    except (UnknownNameError, ValueError) as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2
    try:
        with contextlib.nullcontext() if a.child else hold_profile(a.profile), _restored(MODE_ENV, READS_ENV):
            return _main(a, params, todo)
    except (ProfileBusy, WeightsError) as exc:
        print(f"run_all: {exc}", file=sys.stderr)
        return 2


def _main(a, params: dict, todo: list) -> int:
    mode = _weights_mode(a)
    os.environ[READS_ENV] = str(reads_log(a.profile))  # the store logs what this profile's notebooks read
    if mode == "published":
        os.environ[MODE_ENV] = "published"  # kernels and child runs inherit it: the store trains nothing
    else:
        os.environ.pop(MODE_ENV, None)
    weights_id = _weights_id(mode, a.profile)
    out_dir = paths.executed_notebooks_dir(a.profile)
    stamps = Stamps(a.profile)
    pending, reused = [], []
    for nb in todo:
        s = _stamp(nb, params, weights_id)
        if not a.force and stamps.finished(nb, s, out_dir):
            print(f"[run_all] {nb.name}: finished results for profile {a.profile} found, skipping (--force to redo)")
            reused.append(nb.name)
            continue
        pending.append((nb, s))
    t_all = time.time()
    gpus = _gpu_count()
    jobs = a.jobs or jobs_for(params, gpus, usable_cpus())
    side_by_side = jobs > 1 and len(pending) > 1 and not a.child
    trained = {}
    if side_by_side:
        pending = ordered(pending, {**published_timings(a.profile), **stamps.data["_timings"]})
        failed, trained = _run_side_by_side(pending, a.profile, a.force, jobs, gpus, a.param,
                                            [] if mode == "published" else
                                            training_jobs(params, a.profile, pending, a.param), mode)
        with stamps._fresh():  # the training jobs' times are rows of the timing table, as the notebooks' are
            stamps.data["_timings"].update(trained)
    else:
        failed = _run_in_turn(pending, params, a.profile, stamps, out_dir, mode)
    names = [nb.name for nb, _ in pending]
    ran = names if side_by_side or not failed else names[:names.index(failed["notebook"]) + 1]
    ran += list(trained)
    stamps.reload()
    last_run = {"ran": ran, "reused": reused, "failed": failed["notebook"] if failed else None, "report_s": None,
                "wall_s": round(time.time() - t_all, 1) if side_by_side else None, "weights": weights_id,
                "retried": {k: v for k, v in (stamps.data.get("_retried") or {}).items() if k in ran}}
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
        with stamps._fresh():  # re-read: notebooks of another run may have recorded meanwhile
            stamps.data["_timings"].update({k: v for k, v in timings.items() if k == "report"})
            stamps.data.update({"_last_run": last_run, "_machine": mach})
        print(timing_table(timings, last_run, mach))
    if failed:
        print(f"\n[run_all] STOPPED: notebook {failed['notebook']} failed in {failed['error']}\n"
              f"  executed copy with the traceback: {failed['executed']}\n"
              f"  results already written are kept; fix the cause and run again (finished notebooks are skipped)",
              file=sys.stderr)
        return 1
    if a.verify or (mode == "published" and not a.only and not a.param and not a.child):
        from .verify import verify  # a whole run of the published weights ends by checking every published number
        return verify(a.profile, problems_only=not a.verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
