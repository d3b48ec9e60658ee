"""CI executes every notebook with the tiny profile through papermill and checks the result files."""
import json
import math
import subprocess

import pytest

from natrob import paths
from natrob.runner import main as run_all, notebooks


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=paths.REPO, capture_output=True, text=True).stdout.split()
    nbs = [p for p in tracked if p.endswith(".ipynb")] or [str(p.relative_to(paths.REPO)) for p in notebooks()]
    assert len(nbs) >= 6
    for p in nbs:
        nb = json.loads((paths.REPO / p).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), p
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), f"{p}: no parameters cell"


def test_bad_profile_and_only_are_refused(capsys):
    assert run_all(["--profile", "huge"]) == 2
    assert "profile='huge'" in capsys.readouterr().err
    assert run_all(["--profile", "tiny", "--only", "42"]) == 2
    assert "--only 42" in capsys.readouterr().err


def _acc(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or 0.0 <= v <= 1.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import os
    art = tmp_path_factory.mktemp("tiny")
    old = os.environ.get("NATROB_ARTIFACTS")
    os.environ["NATROB_ARTIFACTS"] = str(art)
    try:
        rc = run_all(["--profile", "tiny"])
        results = {p.name: json.loads(p.read_text()) for p in paths.results_dir().glob("*.json")}
        report = (paths.report_dir() / "index.html").read_text()
        figures = [p.name for p in paths.figures_dir().glob("*.png")]
        # a second run reuses every finished notebook
        import io, contextlib
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            rc2 = run_all(["--profile", "tiny", "--no-report"])
    finally:
        if old is None:
            os.environ.pop("NATROB_ARTIFACTS", None)
        else:
            os.environ["NATROB_ARTIFACTS"] = old
    return {"rc": rc, "results": results, "report": report, "figures": figures, "rc2": rc2, "second": buf.getvalue()}


def test_tiny_profile_runs_every_notebook(tiny_run):
    assert tiny_run["rc"] == 0
    names = set(tiny_run["results"])
    for prefix in ("01-lipschitz", "02-fig1", "03-white-box", "04-fig3", "05-table2", "06-audit", "07-grid"):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for r in tiny_run["results"].values():
        if "provenance" in r:
            assert {"params", "seed", "git_commit", "versions", "device", "wall_time_s"} <= set(r["provenance"])
    assert tiny_run["rc2"] == 0 and tiny_run["second"].count("skipping") >= 6
    assert len(tiny_run["figures"]) >= 6


def test_result_files_are_consistent(tiny_run):
    res = tiny_run["results"]
    lip = res["01-lipschitz-digits.json"]
    assert lip["eq12"]["violations"] == 0 and lip["thm31_violations"] == 0 and lip["thm32_violations"] == 0
    wb = res["03-white-box-digits.json"]
    for row in wb["table1"]:
        assert _acc(row["ours"]) and row["ours"] <= row["clean (ours)"] + 1e-9
    assert all(_acc(r["accuracy"]) for r in wb["fig2"])
    for r in res["02-fig1-digits.json"]["rows"]:
        assert _acc(r["accuracy"])
    for c in res["04-fig3-digits.json"]["curves"]:
        assert _acc(c["accuracy"])
    for row in res["05-table2-digits.json"]["rows"]:
        assert _acc(row["clean"]) and _acc(row["robust"]) and row["robust"] <= row["clean"] + 1e-9
    audit = res["06-audit-digits.json"]
    for v in audit["verdict"]:
        assert v["worst_case"] <= v["pgd"] + 1e-9 and v["worst_case"] <= v["clean"] + 1e-9
        assert v["verdict"] in ("masking suspected", "consistent")
    shares = next(iter(audit["models"].values()))["class_shares"]
    assert audit["constant_image"]["bound"] == max(shares) and abs(sum(shares) - 1) < 1e-6
    g = res["07-grid-digits.json"]
    assert g["summary"] and g["scope"] and g["closest"]["id"] in {c["id"] for c in g["cells"]}
    assert {c["protocol"] for c in g["cells"]} >= {"standard", "no-clip", "cross-solver", "normalised-eps"}
    for c in g["cells"]:
        assert c["correct_threat_model"] == (c["protocol"] == "standard")
        assert c["solver_config"]["rtol"] == c["solver"]["rtol"] and c["solver_config"]["adjoint"] == (c["grad"] == "adjoint")
        assert 0 <= c["clean"]["k"] <= c["clean"]["n"] == g["provenance"]["params"]["GRID_N"]
        for r in c["per_eps"]:
            assert r["worst"]["k"] <= min(r["pgd"]["k"], r["fgsm"]["k"]) and r["pgd"]["k"] <= c["clean"]["k"]
            lo, hi = r["worst"]["ci95"]
            assert lo <= r["worst"]["k"] / r["worst"]["n"] <= hi


def test_report_has_every_section(tiny_run):
    html = tiny_run["report"]
    for section in ("Does the claim hold?", "Table 1", "What produces the paper's numbers?", "Fig. 1", "Fig. 2", "Fig. 3", "Table 2", "Lipschitz", "Table A1",
                    "provenance", "data:image/png;base64"):
        assert section in html, section


def test_failing_notebook_names_the_cell(tmp_path):
    import nbformat
    from natrob.runner import run_notebook
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("X = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("y = X + 1"), nbformat.v4.new_code_cell("raise ValueError(f'bad X={X}')")]
    path = tmp_path / "99-fails.ipynb"
    nbformat.write(nb, path)
    res = run_notebook(path, {"X": 5}, tmp_path / "out")
    assert not res["ok"]
    assert "cell 2" in res["error"] and "ValueError" in res["error"] and "bad X=5" in res["error"]
    assert (tmp_path / "out" / "99-fails.ipynb").exists()  # the executed copy with the traceback is kept
