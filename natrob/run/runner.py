"""Runs the numbered notebooks headless with papermill for one profile, then builds the report.

    python -m natrob.run.runner [--profile quick] [--only 03 ...] [-p KEY=VALUE ...] [--weights published|train]
                            [--force] [--no-report] [--verify]

``--weights published`` (the default where the profile has published weights, ``reference-results/<profile>/weights``)
checks each published checkpoint's sha256, puts them in the model store and evaluates them: nothing is trained (a
missing or altered file is one line naming it, exit 2). ``--weights train`` trains every model as the notebooks ask.

Everything a run writes lives under the profile's name (``results/<profile>/``, ``figures/<profile>/``,
``notebooks/executed/<profile>/``, ``report/<profile>/``), so one profile never touches another's files.
A notebook is skipped when its finished stamp matches (same notebook, profile values and natrob code). The
stamp is cleared when a notebook starts, and its executed copy is written under a temporary name and moved
into place only when it succeeds: a run killed mid-notebook never counts as finished. A failed notebook's
copy is kept as ``<name>.failed.ipynb`` with the traceback. Kernels talk over unix sockets (natrob.run.kernels).
Notebooks run side by side (``--jobs``; :func:`jobs_for`): one per GPU where there are several, and on CPUs as
many as the cores hold at the profile's ``THREADS`` each (the quick profile: THREADS=1, two notebooks on 2 cores),
the longest first; the model store trains each model once under a lock, and the others wait for it.

At the end it prints the run's timing table (:func:`natrob.report.timings.timing_table`): each notebook that ran or
was reused, the report, the run's total, the machine's MNIST-128 f call (:func:`natrob.run.fcall.f_call_ms`) and the
machine, and records it in ``_runs.json`` (``_timings``, ``_last_run``, ``_machine``) and in the report's
provenance section, so a cost quoted in the README is copied from a run.

This module schedules; executing one notebook is :mod:`natrob.run.execution`'s, the f call :mod:`natrob.run.fcall`'s,
and the training jobs a notebook declares (notebook 08's widths) its chapter record's (:mod:`natrob.chapters.jobs`);
its command line (arguments, overrides, the weights mode) is :mod:`natrob.run.runner_args`'s.

Nothing waits forever: every cell has a timeout (:func:`natrob.run.execution.cell_timeout`, from the profile's
``CELL_TIMEOUT``: a margin over the notebook's time in the published run, plus the training allowance when weights
are trained), a notebook
that times out or whose kernel dies is run once more and the table says so. One run holds a profile's folder at a
time (:func:`hold_profile`): a second run of the same profile is told which process holds it and exits 2.
"""
from __future__ import annotations

import contextlib
import os
import queue
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from .. import chapters, paths
from ..errors import UnknownNameError
from .execution import Stamps, cell_timeout, notebook_stamp, notebooks, published_timings, run_notebook
from .fcall import f_call_ms, machine
from ..locks import ProfileBusy, hold_profile
from ..profiles import load_profile
from ..report.timings import run_total, timing_table
from .runner_args import parse, profile_overrides, selected_notebooks, weights_mode, weights_run_id
from .weights import MODE_ENV, READS_ENV, WeightsError, reads_log

__all__ = ["main", "notebooks", "run_notebook", "cell_timeout", "Stamps", "published_timings", "f_call_ms",
           "machine", "jobs_for", "ordered", "training_jobs", "hold_profile", "ProfileBusy", "usable_cpus"]


def _gpu_count() -> int:
    try:
        import torch
        return torch.cuda.device_count()
    except Exception:
        return 0


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


def training_jobs(params: dict, profile: str, pending, overrides=(), records=None) -> list:
    """``[(label, command)]``: the training jobs the pending notebooks' chapters declare (a record's ``jobs``,
    :mod:`natrob.chapters.jobs`), trained as jobs of their own at the head of a side-by-side run, in chapter order. None
    when ``-p`` overrides are given (the commands read the profile's own values). ``records`` default
    :data:`natrob.chapters.CHAPTERS`."""
    if overrides:
        return []
    numbers = {nb.name[:2] for nb, _ in pending}
    return [job for ch in (records or chapters.CHAPTERS) if ch.jobs and ch.number in numbers
            for job in ch.jobs(params, profile)]


def _run_side_by_side(pending, profile, force, jobs, gpus, overrides=(), training=(), weights="train"):
    # notebooks share trained models only through the store, which is keyed and atomic, and whose entries are
    # trained under a lock (the second notebook to want a model waits for the first to finish training it)
    where = f"{gpus} GPUs" if gpus > 1 else f"{usable_cpus()} CPUs"
    print(f"[run_all] {where}: running {len(pending)} notebooks side by side, {jobs} at a time"
          + (f", after {len(training)} training jobs" if training else ""))
    cmd = [sys.executable, "-m", "natrob.run.runner", "--profile", profile, "--no-report", "--child",
           "--weights", weights]
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


def main(argv=None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    a = parse(argv, __doc__)
    try:
        params = load_profile(a.profile)
        params.update(profile_overrides(a.param, params))
        todo = selected_notebooks(a.only)
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


def _set_weights_env(a) -> str:
    """This run's weights mode (:func:`weights_mode`), set in the environment its kernels and child runs inherit."""
    mode = weights_mode(a)
    os.environ[READS_ENV] = str(reads_log(a.profile))  # the store logs what this profile's notebooks read
    if mode == "published":
        os.environ[MODE_ENV] = "published"  # kernels and child runs inherit it: the store trains nothing
    else:
        os.environ.pop(MODE_ENV, None)
    return mode


def _pending(a, params: dict, todo: list, stamps: Stamps, weights_id: str, out_dir) -> tuple:
    """(pending [(notebook, stamp)], reused names): the notebooks to run, and those whose finished stamp matches."""
    pending, reused = [], []
    for nb in todo:
        s = notebook_stamp(nb, params, weights_id)
        if not a.force and stamps.finished(nb, s, out_dir):
            print(f"[run_all] {nb.name}: finished results for profile {a.profile} found, skipping (--force to redo)")
            reused.append(nb.name)
            continue
        pending.append((nb, s))
    return pending, reused


def _run(a, params, pending, stamps, out_dir, mode) -> tuple:
    """Run ``pending`` side by side or in turn: (failure or None, side by side?, training jobs' seconds, ran)."""
    gpus = _gpu_count()
    jobs = a.jobs or jobs_for(params, gpus, usable_cpus())
    side_by_side = jobs > 1 and len(pending) > 1 and not a.child
    trained = {}
    if side_by_side:
        pending = ordered(pending, {**published_timings(a.profile), **stamps.data["_timings"]})
        training = [] if mode == "published" else training_jobs(params, a.profile, pending, a.param)
        failed, trained = _run_side_by_side(pending, a.profile, a.force, jobs, gpus, a.param, training, mode)
        stamps.record_timings(trained)  # the training jobs' times are rows of the timing table, as the notebooks'
    else:
        failed = _run_in_turn(pending, params, a.profile, stamps, out_dir, mode)
    names = [nb.name for nb, _ in pending]
    ran = names if side_by_side or not failed else names[:names.index(failed["notebook"]) + 1]
    return failed, side_by_side, trained, ran + list(trained)


def _report(a, params, timings, last_run, mach):
    from ..report import build_report
    t0 = time.time()
    path = build_report(profile=a.profile, params=params, timings=timings,
                        runs={"_last_run": last_run, "_machine": mach})
    timings["report"] = last_run["report_s"] = round(time.time() - t0, 1)
    print(f"[run_all] report: {path}")


def _stopped(failed) -> int:
    print(f"\n[run_all] STOPPED: notebook {failed['notebook']} failed in {failed['error']}\n"
          f"  executed copy with the traceback: {failed['executed']}\n"
          f"  results already written are kept; fix the cause and run again (finished notebooks are skipped)",
          file=sys.stderr)
    return 1


def _main(a, params: dict, todo: list) -> int:
    mode = _set_weights_env(a)
    weights_id = weights_run_id(mode, a.profile)
    out_dir = paths.executed_notebooks_dir(a.profile)
    stamps = Stamps(a.profile)
    pending, reused = _pending(a, params, todo, stamps, weights_id, out_dir)
    t_all = time.time()
    failed, side_by_side, trained, ran = _run(a, params, pending, stamps, out_dir, mode)
    stamps.reload()
    last_run = {"ran": ran, "reused": reused, "failed": failed["notebook"] if failed else None, "report_s": None,
                "wall_s": round(time.time() - t_all, 1) if side_by_side else None, "weights": weights_id,
                "retried": {k: v for k, v in (stamps.data.get("_retried") or {}).items() if k in ran}}
    timings, mach = stamps.data["_timings"], None
    if not a.child:  # a side-by-side run's parent measures and records once, for all its notebooks
        mach = machine(params, f_call_ms())
        print(f"[run_all] {mach['f_call']}: {mach['f_call_ms']:.0f} ms")
    if not failed and not a.no_report:
        _report(a, params, timings, last_run, mach)
    if not a.child:
        last_run["total_s"] = run_total(timings, last_run)
        last_run["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        stamps.record_run(last_run, mach, {k: v for k, v in timings.items() if k == "report"})
        print(timing_table(timings, last_run, mach))
    if failed:
        return _stopped(failed)
    if a.verify or (mode == "published" and not a.only and not a.param and not a.child):
        # a whole run of the published weights ends by checking every published number
        from ..report.verify import verify
        return verify(a.profile, problems_only=not a.verify)
    return 0


if __name__ == "__main__":
    sys.exit(main())
