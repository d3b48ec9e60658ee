"""No run waits forever: a cell that never answers ends at its timeout (and the notebook runs once more), a
second run of a profile is told who holds its folder, and a killed run's hold is taken over."""
import os
import re
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from natrob import paths
from natrob.run.runner import ProfileBusy, cell_timeout, hold_profile, run_notebook


def _notebook(path, *sources):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    nbformat.write(nb, path)
    return path


def test_a_cell_that_never_answers_ends_at_its_timeout_and_is_tried_once_more(tmp_path):
    nb = _notebook(tmp_path / "98-hangs.ipynb", "x = 1", "import time\ntime.sleep(3600)")
    t0 = time.time()
    res = run_notebook(nb, {}, tmp_path / "out", timeout=4, tries=2)
    assert time.time() - t0 < 90
    assert not res["ok"] and "cell 1" in res["error"] and "timed out" in res["error"].lower(), res["error"]
    assert len(res["retried"]) == 1 and "CellTimeoutError" in res["retried"][0]
    assert not (tmp_path / "out" / nb.name).exists() and (tmp_path / "out" / "98-hangs.failed.ipynb").exists()


def test_a_notebook_that_fails_by_itself_is_not_run_again(tmp_path):
    nb = _notebook(tmp_path / "97-raises.ipynb", "raise ValueError('bad')")
    res = run_notebook(nb, {}, tmp_path / "out", timeout=60, tries=2)
    assert not res["ok"] and res["retried"] == [] and "ValueError" in res["error"]


def test_cell_timeout_follows_the_published_run_and_the_profile_margin():
    from natrob.profiles import load_profile
    from natrob.run.runner import published_timings
    p = load_profile("quick")
    t = p["CELL_TIMEOUT"]
    took = published_timings("quick")["08-the-papers-width.ipynb"]
    want = int(max(t["floor_s"], t["margin"] * took))
    assert cell_timeout("08-the-papers-width.ipynb", p, "quick", "published") == want
    assert cell_timeout("08-the-papers-width.ipynb", p, "quick", "train") == int(t["margin"] * (took + t["train_s"]))
    assert cell_timeout("99-unknown.ipynb", p, "quick") == int(max(t["floor_s"], t["margin"] * t["unknown_s"]))


def test_a_second_run_of_a_profile_is_told_who_holds_it(capsys):
    from natrob.run.runner import main as run_all
    with hold_profile("tiny"):
        with pytest.raises(ProfileBusy, match=f"pid {os.getpid()}"):
            with hold_profile("tiny"):
                pass
        assert run_all(["--profile", "tiny", "--only", "01"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}, since " in err[0] and "held by another run" in err[0]
        with hold_profile("quick"):  # another profile's folder is another hold
            pass
    with hold_profile("tiny"):  # released at the end of the block
        pass


def test_a_killed_runs_hold_is_taken_over():
    code = ("import sys, time; from natrob.run.runner import hold_profile\n"
            "with hold_profile('tiny'):\n    print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(ProfileBusy, match=f"pid {proc.pid}"):
            with hold_profile("tiny"):
                pass
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    with hold_profile("tiny"):  # the kernel dropped the dead run's lock: never obeyed forever
        assert (paths.results_dir("tiny") / ".run.owner").read_text().startswith(f"pid {os.getpid()},")


@pytest.mark.slow
def test_two_runs_of_one_profile_started_together_both_end():
    """The hang seen with two runs sharing a profile's folder: now one runs and the other is refused at once."""
    cmd = [sys.executable, "-m", "natrob.run.runner", "--profile", "tiny", "--only", "01", "--no-report"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=400) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes in ([0, 0], [0, 2]), outs
    if codes == [0, 2]:
        refused = outs[[p.returncode for p in procs].index(2)][1]
        # the owner line, or (when the refused run read it before the other had written it) that a run is starting
        assert re.search(r"held by another run \((pid \d+|a run that is starting)", refused), refused
    assert (paths.results_dir("tiny") / "01-lipschitz-digits.json").exists()


def test_a_message_whose_wake_up_was_lost_is_read_within_a_slice(monkeypatch):
    """The lost message: the reply is in the socket but the event that should wake the client was consumed. A wait
    that started before it (poll without timeout) never returns; each new poll finds the message at once. natrob's
    client polls in slices, so it reads the reply within one; jupyter_client's own channel would wait forever."""
    import asyncio
    from queue import Empty

    from jupyter_client.channels import AsyncZMQSocketChannel

    from natrob.run import kernels

    calls = []

    async def stranded(self, timeout=None):  # the first wait misses the wake-up; a new poll sees the message
        calls.append(timeout)
        if len(calls) == 1:
            if timeout is None:
                await asyncio.sleep(3600)
            await asyncio.sleep(timeout)
            raise Empty
        return {"msg_type": "execute_reply"}

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", stranded)
    channel = kernels.SlicedChannel.__new__(kernels.SlicedChannel)
    t0 = time.monotonic()
    msg = asyncio.run(asyncio.wait_for(channel.get_msg(timeout=None), 30))
    assert msg["msg_type"] == "execute_reply" and time.monotonic() - t0 < 3 * kernels.POLL_SLICE_S
    assert calls[0] == kernels.POLL_SLICE_S and len(calls) == 2
    calls.clear()
    with pytest.raises(asyncio.TimeoutError):  # the plain channel: the same lost wake-up is a wait without end
        asyncio.run(asyncio.wait_for(AsyncZMQSocketChannel.get_msg(channel, timeout=None), 3))
    calls.clear()

    async def silent(self, timeout=None):
        await asyncio.sleep(timeout)
        raise Empty

    monkeypatch.setattr(AsyncZMQSocketChannel, "get_msg", silent)
    t0 = time.monotonic()
    with pytest.raises(Empty):  # nothing arrives: the caller's timeout still ends the wait
        asyncio.run(channel.get_msg(timeout=2.5))
    assert 2.4 < time.monotonic() - t0 < 4


def test_the_runner_talks_to_kernels_through_the_sliced_client():
    from natrob.run.kernels import IPCKernelManager, SlicedChannel
    km = IPCKernelManager()
    kc = km.client()
    assert isinstance(kc.shell_channel, SlicedChannel) and isinstance(kc.iopub_channel, SlicedChannel)
