"""The runner's timing table (per notebook, the run's total, the MNIST-128 f call, the machine): the rows the
runner prints at the end of a run and the report's provenance section shows, from ``results/<profile>/_runs.json``."""
from __future__ import annotations

F_CALL = "MNIST-128 f call (batch 128, 1 thread)"


def _seconds(s) -> str:
    if not isinstance(s, (int, float)):
        return "not recorded"
    return f"{s:,.1f} s" + (f" ({s / 60:.0f} min)" if s >= 600 else "")


def run_total(timings: dict, last_run: dict) -> float:
    """The total of a run: the recorded times of the notebooks it ran, plus its report's."""
    parts = [timings.get(n) for n in last_run.get("ran", [])] + [last_run.get("report_s")]
    return round(sum(v for v in parts if isinstance(v, (int, float))), 1)


def timing_rows(timings: dict | None, last_run: dict | None = None, machine: dict | None = None) -> list:
    """The timing table as ``{"what", "time", "this run"}`` rows: one per notebook of ``last_run`` (``ran`` and
    ``reused``; a reused one shows the time recorded when it last ran), the report, the run's total, the f call and
    the machine. Without ``last_run`` (a ``_runs.json`` written before runs were recorded), every notebook in
    ``timings`` and their sum. The runner prints these rows; the report's provenance section shows them."""
    timings = timings or {}
    rows = []
    if last_run is not None:
        ran, reused = list(last_run.get("ran", [])), list(last_run.get("reused", []))
        for name in sorted(ran + reused):
            note = "reused" if name in reused else "FAILED" if name == last_run.get("failed") else "ran"
            again = (last_run.get("retried") or {}).get(name)
            if again and name in ran:  # a cell timed out or the kernel died, and the runner ran it once more
                note += f", run again after {'; '.join(again)}"
            rows.append({"what": name, "time": _seconds(timings.get(name)), "this run": note})
        if last_run.get("report_s") is not None:
            rows.append({"what": "report", "time": _seconds(last_run["report_s"]), "this run": "ran"})
        books = [n for n in ran if n.endswith(".ipynb")]
        note = f"{len(books)} notebook{'' if len(books) == 1 else 's'} ran, {len(reused)} reused"
        if len(ran) > len(books):  # a side-by-side run's training jobs (natrob.run.runner.training_jobs)
            note += f", {len(ran) - len(books)} training job{'' if len(ran) - len(books) == 1 else 's'}"
        if last_run.get("wall_s") is not None:
            note += f"; wall clock {_seconds(last_run['wall_s'])} (side by side)"
        rows.append({"what": "total, this run", "time": _seconds(run_total(timings, last_run)), "this run": note})
        if last_run.get("weights"):
            w = last_run["weights"]
            rows.append({"what": "weights", "time": "", "this run": "trained by this run or taken from the model store"
                         if w == "train" else f"the published weights (manifest sha256 {w.split(':', 1)[-1]}...)"})
        if reused:
            every = [timings.get(n) for n in ran + reused] + [last_run.get("report_s")]
            rows.append({"what": "total, every notebook as last run", "this run": "reused ones from earlier runs",
                         "time": _seconds(sum(v for v in every if isinstance(v, (int, float))))})
    elif timings:
        for name, s in timings.items():
            rows.append({"what": name, "time": _seconds(s), "this run": ""})
        total = sum(v for v in timings.values() if isinstance(v, (int, float)))
        rows.append({"what": "total (recorded times)", "time": _seconds(total), "this run": ""})
    if machine:
        ms = machine.get("f_call_ms")
        rows.append({"what": machine.get("f_call", F_CALL), "this run": f"measured {machine.get('measured_at', '?')}",
                     "time": f"{ms:.0f} ms" if isinstance(ms, (int, float)) else "not measured"})
        where = f"{machine.get('device')}; {machine.get('cpu_count')} CPUs, "
        where += f"torch threads {machine.get('torch_threads')}"
        if machine.get("notebook_threads") is not None:
            where += f" (notebooks: THREADS={machine['notebook_threads']})"
        rows.append({"what": "machine", "time": "", "this run": where})
    return rows


def timing_table(timings: dict | None, last_run: dict | None = None, machine: dict | None = None) -> str:
    """:func:`timing_rows` as plain text, the table the runner prints at the end of a run."""
    rows = timing_rows(timings, last_run, machine)
    if not rows:
        return "[run_all] timings: none recorded"
    w1, w2 = (max(len(r[k]) for r in rows) for k in ("what", "time"))
    lines = [f"  {r['what']:<{w1}}  {r['time']:>{w2}}  {r['this run']}".rstrip() for r in rows]
    return "\n".join(["[run_all] timings:"] + lines)
