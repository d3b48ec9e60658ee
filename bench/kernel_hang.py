"""Notebook executions that never end: how often a kernel loses a request, under load, per ipykernel version.

    .venv/bin/python bench/kernel_hang.py [--runs 50] [--cells 80] [--load 2] [--kernel-path DIR]

Runs a notebook of ``--cells`` trivial cells ``--runs`` times through papermill, as natrob's runner does
(:class:`natrob.run.kernels.IPCKernelManager`, unix sockets), while ``--load`` busy processes keep the cores loaded,
each run with a cell timeout of ``--cell-timeout`` s (a cell takes milliseconds to a second; a run that fails at the
timeout lost a message, and a run that took the timeout and then went on lost a wake-up that the socket's last look
at the deadline recovered: without a timeout, as the runner had before, it would have waited forever).
``--kernel-path DIR`` puts DIR first on the kernel's ``PYTHONPATH``: a ``pip install --target DIR --no-deps
ipykernel==X`` measures another ipykernel. Prints, per run, ok or HUNG and the seconds; at the end the count of hung
runs and the ipykernel version the kernels ran.

Why: ipykernel 7.0-7.3 sends a shell reply raw on the shell ROUTER socket that a ZMQStream also reads, which can
consume the stream's wake-up for a request that arrives meanwhile; the request then sits unread and the client
waits for its reply forever (ipython/ipykernel#1529, fixed in 7.4.0; #1554). The window is a request sent right
after a reply, so many short cells on loaded cores reach it.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat


def _busy(stop):
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2 ** 31


WIDGET_CELL = """import ipywidgets as widgets
import matplotlib.pyplot as plt
def show(index=0, eps=0.3):
    fig, ax = plt.subplots(1, 3, figsize=(6, 2))
    for a in ax:
        a.imshow([[index, eps], [eps, index]])
    plt.show()
show(0, 0.5)
widgets.interact(show, index=widgets.IntSlider(0, 0, 9), eps=widgets.FloatSlider(0.3, min=0, max=0.5, step=0.05));"""


def _notebook(cells: int, widgets: bool) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("import ipykernel; v = ipykernel.__version__; print(v)")]
    if widgets:  # notebook 03's explorer cell: interact() with a matplotlib figure, then a short cell
        nb.cells += [nbformat.v4.new_code_cell("%matplotlib inline")]
        nb.cells += [nbformat.v4.new_code_cell(WIDGET_CELL if i % 2 == 0 else f"x{i} = {i}") for i in range(cells)]
    else:
        nb.cells += [nbformat.v4.new_code_cell(f"x{i} = {i} * 2") for i in range(cells)]
    return nb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=50)
    p.add_argument("--cells", type=int, default=80)
    p.add_argument("--load", type=int, default=2, help="busy processes beside the runs")
    p.add_argument("--cell-timeout", type=int, default=20)
    p.add_argument("--kernel-path", default=None, help="a folder put first on the kernel's PYTHONPATH")
    p.add_argument("--widgets", action="store_true", help="every other cell an ipywidgets interact() with a figure")
    p.add_argument("--plain-client", action="store_true",
                   help="jupyter_client's own kernel client (waits on a socket without timeout), not natrob's")
    a = p.parse_args(argv)
    import papermill as pm

    from natrob.run.kernels import IPCKernelManager, PlainClientKernelManager
    manager = PlainClientKernelManager if a.plain_client else IPCKernelManager
    if a.kernel_path:
        os.environ["PYTHONPATH"] = os.pathsep.join([a.kernel_path, os.environ.get("PYTHONPATH", "")]).strip(os.pathsep)
    stop = mp.Event()
    load = [mp.Process(target=_busy, args=(stop,), daemon=True) for _ in range(a.load)]
    for q in load:
        q.start()
    hung, stalled, version = 0, 0, "?"
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "cells.ipynb", Path(tmp) / "out.ipynb"
        nbformat.write(_notebook(a.cells, a.widgets), src)
        try:
            for i in range(a.runs):
                t0 = time.time()
                try:
                    nb = pm.execute_notebook(str(src), str(out), kernel_name="python3", progress_bar=False,
                                             execution_timeout=a.cell_timeout, kernel_manager_class=manager)
                    version = nb.cells[0].outputs[0]["text"].strip()
                    # a wait that only the cell timeout ended: a lost wake-up the socket's last look recovered
                    stalled += time.time() - t0 >= a.cell_timeout
                    status = "STALLED (waited a cell timeout)" if time.time() - t0 >= a.cell_timeout else "ok"
                except Exception as exc:  # a cell timeout, a dead kernel: either way the run did not end by itself
                    hung += 1
                    status = f"HUNG ({type(exc).__name__})"
                print(f"run {i + 1:3d}: {status} in {time.time() - t0:.1f} s", flush=True)
        finally:
            stop.set()
    print(f"{hung} of {a.runs} runs hung and {stalled} stalled for a cell timeout (ipykernel {version}, "
          f"{a.cells} cells each"
          f"{', every other one a widget' if a.widgets else ''}, {a.load} busy processes, cell timeout "
          f"{a.cell_timeout} s, {'jupyter_client' if a.plain_client else 'natrob'}'s kernel client)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
