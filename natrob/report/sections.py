"""The report's sections, derived from the chapter records (:mod:`natrob.chapters`), plus the two that belong to
no notebook (Table A1, provenance). RobustBench style: the report only renders result files; it imports no compute
module (each chapter module's section function reads the result files alone).

A section's ``context(results, env)`` turns the profile's result files whose names start with ``results`` into the
variables of its template; ``env`` holds the profile, its parameters, timings (and ``runs``: ``_runs.json``'s
``_last_run`` and ``_machine``) and the executed-notebook links.
``schema`` names the keys of the result file the section reads (a test checks them on the tiny profile's files).
The navigation is generated from :func:`sections`.
"""
from __future__ import annotations

from .. import chapters, paths, reference
from ..chapters import Section
from ..chapters.tables import table


# Table A1's settings, read from a profile's ODE entry ({model, kwargs, train}) with the defaults natrob applies
_ODE_SETTINGS = {"optimizer": ("train", "optimizer", "adam"), "solver": ("kwargs", "method", "dopri5"),
                 "conv_layers": ("kwargs", "conv_layers", 4), "channels": ("kwargs", "channels", 128),
                 "t0": ("kwargs", "t0", 0), "t1": ("kwargs", "t1", 100.0), "epochs": ("train", "epochs", None),
                 "lr": ("train", "lr", None), "batch_size": ("train", "batch_size", None)}


def _ode_setting(ode: dict, key: str):
    part, name, default = _ODE_SETTINGS.get(key, (None, key, None))
    return (ode.get(part) or {}).get(name, default) if part and ode else None


def _lr_schedule(train: dict) -> str:
    every = train.get("halve_every")
    return f"halved every {every} epochs" if every else "constant"


def table_a1(results, env) -> dict:
    """The paper's Table A1 beside this profile's ODE net, setting by setting."""
    a1 = reference.numbers()["table_a1_neural_ode_training"]
    ode = (env["params"] or {}).get("ODE", {})
    rows = [{"setting": k, "paper MNIST": a1["mnist"].get(k), "paper CIFAR-10": a1["cifar10"].get(k),
             f"this profile ({env['profile']})": _ode_setting(ode, k)} for k in a1["mnist"]]
    rows.append({"setting": "lr schedule", "paper MNIST": a1["lr_schedule"], "paper CIFAR-10": a1["lr_schedule"],
                 f"this profile ({env['profile']})": _lr_schedule(ode.get("train", {})) if ode else None})
    return {"table": table(rows), "lr_schedule": a1["lr_schedule"]}


def _timing_table(timings: dict | None, runs: dict | None) -> str:
    """The runner's timing table (per notebook, total, the MNIST-128 f call, the machine) from ``_runs.json``'s
    ``_timings``, ``_last_run`` and ``_machine``; empty when none is recorded."""
    from .timings import timing_rows  # the rows the runner prints, so the report and the console agree
    runs = runs or {}
    rows = timing_rows(timings, runs.get("_last_run"), runs.get("_machine"))
    return table(rows) if rows else ""


def plain(value, nested: bool = False) -> str:
    """A parameter value as people write it: mappings as 'key: value' pairs separated by ';' (inside another
    value, in parentheses and separated by ','), lists comma-separated (inside another value, in brackets), None
    as 'not set', booleans as yes/no: no Python or JSON syntax in the report."""
    if isinstance(value, dict):
        body = (", " if nested else "; ").join(f"{k}: {plain(v, True)}" for k, v in value.items()) or "none"
        return f"({body})" if nested else body
    if isinstance(value, (list, tuple)):
        body = ", ".join(plain(v, True) for v in value) or "none"
        return f"[{body}]" if nested else body
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


_RUN_ROWS = (("profile", "profile"), ("git_commit", "commit"), ("created", "rendered at"), ("device", "device"),
             ("host", "host"))


def peers_table() -> str:
    """natrob beside its peers (``bench/peers.py``'s published run, ``reference-results/peers.json``): each row the
    peer's and natrob's time, their ratio and both results; empty where none is published."""
    from ..results import read_json
    path = paths.PUBLISHED / "peers.json"
    if not path.exists():
        return ""
    run = read_json(path)
    rows = [{"what": r["what"], "peer": r["peer"], "natrob": r["natrob"], "peer time (s)": round(r["peer_s"], 2),
             "natrob time (s)": round(r["natrob_s"], 2), "peer / natrob": round(r["ratio"], 2),
             "results (peer / natrob)": f"{r['peer_result']} / {r['natrob_result']}"} for r in run.get("rows", [])]
    machine = run.get("machine") or {}
    ms = machine.get("f_call_ms")
    ms = f"{ms:.0f}" if isinstance(ms, (int, float)) else "?"
    return table(rows) + (f"<p>{run.get('date', '?')}, {machine.get('device', '?')}, MNIST-128 f call {ms} ms "
                           "(python bench/peers.py).</p>" if rows else "")


def provenance_section(results, env) -> dict:
    """Which profile and commit produced each result file; parameters, timings and this rendering's own run."""
    params = [{"parameter": k, "value": plain(v)} for k, v in (env["params"] or {}).items()]
    run = env["run"] or {}
    rows = [{"what": label, "value": plain(run.get(key))} for key, label in _RUN_ROWS if key in run]
    rows += [{"what": f"{lib} version", "value": plain(v)} for lib, v in (run.get("versions") or {}).items()]
    return {"files": table(env["files"], html_columns=("profile",)), "peers": peers_table(),
            "timing_table": _timing_table(env["timings"], env.get("runs")),
            "params": table(params) if params else "", "run": table(rows), "links": env["links"]}


def claims_section(results, env) -> dict:
    """The study's findings as checked claims (:mod:`natrob.report.claims`, the one registry README quotes): each
    with its status on this report's result files and the numbers it read."""
    from .claims import check_claims
    rows = check_claims(env["profile"], env["results_dir"])
    shown = [{"claim": r["id"], "status": r["status"], "statement": r["text"], "numbers": r["numbers"]} for r in rows]
    held = sum(r["status"] == "holds" for r in rows)
    flag = " --published" if str(env["results_dir"]).startswith(str(paths.PUBLISHED)) else ""
    command = f"python -m natrob.report.verify --claims --profile {env['profile']}{flag}"
    return {"paragraphs": [f"{held} of {len(rows)} claims hold on these result files ({command}). A claim is what "
                           "a retrained run on another CPU is checked against; the exact counts of one run are "
                           "checked by verify's tolerances."],
            "tables": [table(shown)] if shown else []}


# the report's own sections, after every chapter's (their order is their place in this list)
GENERAL = [
    Section(id="claims", title="The findings as checked claims", nav="Claims", template="claims.html.j2",
            context=claims_section),
    Section(id="tablea1", title="Table A1 — Neural ODE training configuration", nav="Table A1",
            template="tablea1.html.j2", context=table_a1),
    Section(id="provenance", title="Profile and provenance", nav="Provenance", template="provenance.html.j2",
            context=provenance_section),
]


def sections(records=None) -> list:
    """Every :class:`natrob.chapters.Section` of the report in order: the chapters'
    (:func:`natrob.chapters.sections`), then :data:`GENERAL`. ``records`` (default
    :data:`natrob.chapters.CHAPTERS`) the chapter records to derive from."""
    return [s for _, s in chapters.sections(records)] + GENERAL
