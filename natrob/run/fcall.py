"""The machine's speed as one number: the MNIST-128 f call (:func:`f_call_ms`), and the machine record a run keeps.

Timings quoted in the README and the report are copied from a run together with this number, so a reader can
scale them to their own machine (``bench/ode_speed.py`` and ``bench/peers.py`` measure the same call).
"""
from __future__ import annotations

import os
import time

from ..report.timings import F_CALL


def f_call_ms(calls: int = 5, budget_s: float = 1.0) -> float:
    """The machine's MNIST-128 f call in milliseconds: the wall time of one evaluation of the vector field f
    (``model.func``) of the paper's 128-channel MNIST ODE net (28x28 images, 4 conv layers: a 128x14x14 state) on
    a batch of 128 random states, on one CPU thread; the median of ``calls`` calls after a warm-up call (at least
    3, fewer than ``calls`` once ``budget_s`` is spent, so it costs about a second). As bench/ode_speed.py's f call
    (its 'fast' row); random weights (seed 0, the caller's random state is kept), no data is read."""
    import statistics
    import torch
    from ..data import STATS
    from ..models import build_model
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
    from ..provenance import device_description
    ms = f_call_ms() if f_ms is None else f_ms
    return {"f_call": F_CALL, "f_call_ms": round(ms, 1), "device": device_description(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "notebook_threads": (params or {}).get("THREADS"),
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
