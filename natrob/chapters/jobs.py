"""Training jobs a notebook declares (its chapter record's ``jobs``, :mod:`natrob.chapters`): models the notebook
would train one after another, which a side-by-side run (:mod:`natrob.run.runner`) trains instead as jobs of their own
at its head, beside the other notebooks. A job is ``(label, command)``: the command a subprocess runs, reading the
profile's own values. Nothing here is imported at import time but the standard library: the chapter records refer
to these functions, and the report imports the records.
"""
from __future__ import annotations

import sys


def width_training(params: dict, profile: str) -> list:
    """Notebook 08's ODE nets, one job per width of ``WIDTH_CHANNELS`` (``python -m natrob.study.width``), the widest
    (the longest) first; ``--threads`` the profile's ``THREADS`` where set. [] when the profile lists no width."""
    threads = ["--threads", str(params["THREADS"])] if params.get("THREADS") else []
    return [(f"train the {c}-channel ODE net of notebook 08",
             [sys.executable, "-m", "natrob.study.width", "--profile", profile, "--channels", str(c), *threads])
            for c in sorted((int(c) for c in params.get("WIDTH_CHANNELS") or []), reverse=True)]
