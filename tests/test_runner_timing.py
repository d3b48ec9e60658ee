"""The runner's timing table (per notebook, total, the MNIST-128 f call, the machine): printed at the end of a run,
recorded in ``_runs.json`` and shown in the report's provenance section. No notebook is executed here."""
import json
import math
import re

import pytest
import torch

from natrob import paths
from natrob.run import runner
from natrob.report import timings
from natrob.report import _env
from natrob.report.sections import provenance_section

TIMINGS = {"01-lipschitz-bounds.ipynb": 127.4, "02-step-size-sweep.ipynb": 39.0, "03-white-box.ipynb": 217.2,
           "report": 8.1}
LAST_RUN = {"ran": ["01-lipschitz-bounds.ipynb", "03-white-box.ipynb"], "reused": ["02-step-size-sweep.ipynb"],
            "failed": None, "report_s": 8.1}
MACHINE = runner.machine({"THREADS": 2}, f_ms=183.2)  # f_ms given: nothing measured


def _seconds(line: str) -> float:
    return float(re.search(r"([\d,]+\.\d) s", line).group(1).replace(",", ""))


def test_table_lists_every_notebook_and_totals_the_run():
    text = timings.timing_table(TIMINGS, LAST_RUN, MACHINE)
    lines = text.splitlines()
    for name in LAST_RUN["ran"] + LAST_RUN["reused"]:
        (line,) = [ln for ln in lines if name in ln]
        assert _seconds(line) == TIMINGS[name]
        assert line.rstrip().endswith("reused" if name in LAST_RUN["reused"] else "ran")
    (total,) = [ln for ln in lines if ln.strip().startswith("total, this run")]
    expected = TIMINGS["01-lipschitz-bounds.ipynb"] + TIMINGS["03-white-box.ipynb"] + LAST_RUN["report_s"]
    assert _seconds(total) == pytest.approx(expected) == timings.run_total(TIMINGS, LAST_RUN)
    assert "1 reused" in total
    assert any(ln.strip().startswith("report") and _seconds(ln) == 8.1 for ln in lines)
    assert re.search(r"MNIST-128 f call \(batch 128, 1 thread\) +183 ms", text)
    (mach,) = [ln for ln in lines if ln.strip().startswith("machine")]
    assert MACHINE["device"] in mach and f"{MACHINE['cpu_count']} CPUs" in mach and "THREADS=2" in mach


def test_table_of_an_older_record_sums_what_it_has():
    rows = timings.timing_rows(TIMINGS)  # a _runs.json from before _last_run/_machine were recorded
    assert [r["what"] for r in rows] == list(TIMINGS) + ["total (recorded times)"]
    assert _seconds(rows[-1]["time"]) == pytest.approx(sum(TIMINGS.values()))
    assert timings.timing_rows(None) == [] and "none recorded" in timings.timing_table({})


def test_f_call_is_a_positive_finite_number_of_ms():
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    ms = runner.f_call_ms()
    assert math.isfinite(ms) and 0 < ms < 60_000
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)


def _provenance_html(env_extra: dict) -> str:
    env = {"params": {"THREADS": 2}, "run": {"profile": "tiny"}, "files": [], "links": []} | env_extra
    context = provenance_section([], env)
    return _env().get_template("provenance.html.j2").render(profile="tiny", results=[], **context)


def test_provenance_shows_the_timing_table_and_the_machine_when_recorded():
    page = _provenance_html({"timings": TIMINGS, "runs": {"_last_run": LAST_RUN, "_machine": MACHINE}})
    assert "Timings and machine" in page
    assert "<td>MNIST-128 f call (batch 128, 1 thread)</td>" in page and "<td>183 ms</td>" in page
    assert "<td>machine</td>" in page and MACHINE["device"] in page
    assert all(name in page for name in LAST_RUN["ran"] + LAST_RUN["reused"]) and "reused" in page


@pytest.mark.parametrize("extra", [{"timings": None}, {"timings": None, "runs": {}}, {"timings": TIMINGS, "runs": {}}])
def test_provenance_renders_without_a_machine(extra):
    page = _provenance_html(extra)
    assert "<td>machine</td>" not in page and "<td>MNIST-128 f call" not in page
    assert ("total (recorded times)" in page) == bool(extra["timings"])
    assert ("not recorded" in page) == (not extra["timings"])


def test_runner_prints_and_records_the_table(monkeypatch, capsys):
    """main() with notebook execution and the f call stubbed: the table lists every notebook (reused on a second
    run), and _runs.json keeps _timings (name -> seconds) beside _last_run and _machine."""
    def fake_run(nb, params, out_dir, timeout=None):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / nb.name).write_text("{}")
        return {"notebook": nb.name, "ok": True, "wall_s": 1.25, "executed": str(out_dir / nb.name)}
    monkeypatch.setattr(runner, "run_notebook", fake_run)
    monkeypatch.setattr(runner, "f_call_ms", lambda: 183.2)
    monkeypatch.setattr(runner, "_gpu_count", lambda: 0)
    names = [nb.name for nb in runner.notebooks()]
    for reused in (False, True):
        assert runner.main(["--profile", "tiny", "--no-report", "--jobs", "1", "--weights", "train"]) == 0
        out = capsys.readouterr().out
        table = out[out.index("[run_all] timings:"):].splitlines()
        for name in names:
            (line,) = [ln for ln in table if name in ln]
            assert _seconds(line) == 1.2 and line.endswith("reused" if reused else "ran")
        (total,) = [ln for ln in table if "total, this run" in ln]
        assert _seconds(total) == (0 if reused else pytest.approx(1.2 * len(names)))
        assert "MNIST-128 f call (batch 128, 1 thread): 183 ms" in out
    recorded = json.loads((paths.results_dir("tiny") / "_runs.json").read_text())
    assert recorded["_timings"] == {name: 1.2 for name in names}
    assert recorded["_machine"]["f_call_ms"] == 183.2 and recorded["_machine"]["cpu_count"] >= 1
    assert recorded["_last_run"]["reused"] == names and recorded["_last_run"]["total_s"] == 0


def test_a_side_by_side_run_counts_its_training_jobs_apart_from_its_notebooks():
    last = {"ran": ["08-the-papers-width.ipynb", "train the 128-channel ODE net of notebook 08"], "reused": [],
            "failed": None, "report_s": 2.0, "wall_s": 200.0}
    table = timings.timing_table({"08-the-papers-width.ipynb": 100.0,
                                  "train the 128-channel ODE net of notebook 08": 90.0}, last)
    (total,) = [ln for ln in table.splitlines() if "total, this run" in ln]
    assert _seconds(total) == 192.0
    assert "1 notebook ran, 0 reused, 1 training job; wall clock 200.0 s (side by side)" in total


def test_provenance_shows_natrob_beside_its_peers_from_the_published_run(tmp_path, monkeypatch):
    """The report renders bench/peers.py's published run (reference-results/peers.json): a row per comparison with
    both times and their ratio; without the file, no such section."""
    import shutil
    from natrob import paths
    page = _provenance_html({"timings": None})
    run = json.loads((paths.PUBLISHED / "peers.json").read_text())
    first = run["rows"][0]
    assert "natrob beside its peers" in page and first["what"] in page and f"{first['ratio']:.2f}" in page
    assert page.count("<tr>") >= len(run["rows"])
    monkeypatch.setattr(paths, "PUBLISHED", tmp_path)
    shutil.copytree(paths.REPO / "reference-results" / "tiny", tmp_path / "tiny")
    assert "natrob beside its peers" not in _provenance_html({"timings": None})
