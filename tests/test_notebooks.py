"""CI executes every notebook with the tiny profile through papermill and checks the result files."""
import json
import math
import subprocess

import pytest

from natrob import chapters, paths
from natrob.run.runner import main as run_all, notebooks

# the tests that run notebooks through papermill (every notebook of the tiny profile: minutes); the others read
# JSON or parse arguments and stay in the fast suite
slow = pytest.mark.slow


def test_committed_notebooks_have_no_outputs():
    tracked = subprocess.run(["git", "ls-files", "notebooks"], cwd=paths.REPO, capture_output=True,
                             text=True).stdout.split()
    nbs = [p for p in tracked if p.endswith(".ipynb")] or [str(p.relative_to(paths.REPO)) for p in notebooks()]
    # one committed notebook per chapter record, none without a record and no record without its notebook
    assert sorted(p.split("/")[-1][:2] for p in nbs) == [ch.number for ch in chapters.CHAPTERS]
    for p in nbs:
        nb = json.loads((paths.REPO / p).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and not cell.get("execution_count"), p
        assert any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), \
            f"{p}: no parameters cell"
        # nbformat 4.5: every cell has a unique id (a warning now, soon an error)
        ids = [c.get("id") for c in nb["cells"]]
        assert all(ids) and len(set(ids)) == len(ids), f"{p}: a cell without an id, or a repeated one"


def test_bad_profile_and_only_are_refused(capsys):
    assert run_all(["--profile", "huge"]) == 2
    assert "profile='huge'" in capsys.readouterr().err
    assert run_all(["--profile", "tiny", "--only", "42"]) == 2
    assert "--only 42" in capsys.readouterr().err
    assert run_all(["--profile", "tiny", "-p", "NO_SUCH_KEY=1"]) == 2
    assert "-p NO_SUCH_KEY: not a value of this profile" in capsys.readouterr().err
    assert run_all(["--profile", "tiny", "-p", "THREADS"]) == 2
    assert "is not KEY=VALUE" in capsys.readouterr().err


def _acc(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or 0.0 <= v <= 1.0


def _digest(folder):
    import hashlib
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import contextlib
    import io
    import os
    art = tmp_path_factory.mktemp("tiny")
    saved = {k: os.environ.get(k) for k in ("NATROB_ARTIFACTS",)}
    os.environ["NATROB_ARTIFACTS"] = str(art)
    # another profile's finished outputs, which a tiny run must leave byte-identical
    for folder in (paths.results_dir("quick"), paths.figures_dir("quick"), paths.report_dir("quick"),
                   paths.executed_notebooks_dir("quick")):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "02-fig1-digits.json").write_text('{"planted": "quick"}')
    quick_before = _digest(art)
    try:
        rc = run_all(["--profile", "tiny"])  # the default: the published weights, nothing trained
        results = {p.name: json.loads(p.read_text()) for p in paths.results_dir("tiny").glob("*.json")}
        weights = json.loads((paths.results_dir("tiny") / "_runs.json").read_text())["_last_run"]["weights"]
        trained = sorted(p.parent.name for p in paths.checkpoints_dir().rglob("last.pt"))
        report = (paths.report_dir("tiny") / "index.html").read_text()
        figures = [p.name for p in paths.figures_dir("tiny").glob("*.png")]
        executed = sorted(p.name for p in paths.executed_notebooks_dir("tiny").iterdir())
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):  # a second run reuses every finished notebook
            rc2 = run_all(["--profile", "tiny", "--no-report"])
        quick_after = {k: v for k, v in _digest(art).items() if "/quick/" in f"/{k}"}
        from natrob.report.verify import verify
        verify_out = io.StringIO()
        verify_rc = verify("tiny", out=verify_out)
        with contextlib.redirect_stdout(io.StringIO()):  # a user's model beside the profile's, by parameter
            rc_extra = run_all(["--profile", "tiny", "--only", "06", "--no-report",
                                "-p", 'AUDIT_EXTRA=["tests/fixtures/user_model.py:make"]'])
        audit_extra = json.loads((paths.results_dir("tiny") / "06-audit-digits.json").read_text())
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {"rc": rc, "results": results, "weights": weights, "trained": trained, "report": report,
            "figures": figures, "rc2": rc2, "second": buf.getvalue(),
            "executed": executed, "quick_before": quick_before, "quick_after": quick_after,
            "verify_rc": verify_rc, "verify": verify_out.getvalue(), "rc_extra": rc_extra, "audit_extra": audit_extra}


@slow
def test_tiny_profile_runs_every_notebook(tiny_run):
    assert tiny_run["rc"] == 0
    names = set(tiny_run["results"])
    from natrob import chapters
    for prefix in chapters.schemas():  # every result file every chapter declares
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    for r in tiny_run["results"].values():
        if "provenance" in r:
            assert {"params", "seed", "git_commit", "versions", "device", "wall_time_s"} <= set(r["provenance"])
            assert r["provenance"]["profile"] == "tiny" and r["provenance"]["params"]["PROFILE"] == "tiny"
            assert "T_START" not in r["provenance"]["params"]  # only the parameters cell's values are recorded
    assert tiny_run["rc2"] == 0 and tiny_run["second"].count("skipping") >= 6
    assert len(tiny_run["figures"]) >= 6
    assert all(n.endswith(".ipynb") and not n.startswith(".") for n in tiny_run["executed"]), tiny_run["executed"]


@slow
def test_tiny_mechanism_tables_use_their_own_point_counts(tiny_run):
    """Notebook 09: the scaled-logit Table 1s on SAT_SCALED_N points, the real pipelines on SAT_TABLE1_N (the tiny
    profile sets them apart, so reading the wrong one fails)."""
    r = tiny_run["results"]["09-mechanism-digits.json"]
    params = r["provenance"]["params"]
    assert params["SAT_SCALED_N"] != params["SAT_TABLE1_N"]
    assert r["n"]["scaled"] == params["SAT_SCALED_N"] and r["n"]["table1"] == params["SAT_TABLE1_N"]
    for key, t in r["table1"].items():
        want = params["SAT_SCALED_N"] if key.startswith("scaled-") else params["SAT_TABLE1_N"]
        assert t["clean"]["n"] == want, (key, t["clean"])


@slow
def test_tiny_results_match_the_published_ones(tiny_run):
    """reference-results/tiny was published from the published tiny weights (reference-results/tiny/weights); run
    from them here, nothing is trained and every count agrees within the stated tolerances (on the machine that
    published, exactly; on another CPU a count may move by evaluation rounding)."""
    assert tiny_run["weights"].startswith("published:") and tiny_run["trained"] == []
    assert tiny_run["verify_rc"] == 0, tiny_run["verify"][-3000:]
    assert " numbers match the published results" in tiny_run["verify"]


@slow
def test_another_profile_is_left_untouched(tiny_run):
    assert tiny_run["quick_after"] == tiny_run["quick_before"] and len(tiny_run["quick_before"]) == 4


@slow
def test_result_files_are_consistent(tiny_run):
    res = tiny_run["results"]
    lip = res["01-lipschitz-digits.json"]
    assert lip["eq12"]["violations"] == 0 and lip["thm31_violations"] == 0 and lip["thm32_violations"] == 0
    wb = res["03-white-box-digits.json"]
    for row in wb["table1"]:  # an attack keeps at most the clean-correct points, all counts on the same sample
        assert row["robust"]["k"] <= row["clean"]["k"] <= row["clean"]["n"] == row["robust"]["n"]
    n_eval = wb["provenance"]["params"]["N_EVAL"]
    clean = {row["model"]: row["clean"]["k"] for row in wb["table1"]}
    for model in {r["model"] for r in wb["fig2"]}:  # DI2-FGSM: eps 0 is the clean count, then never rises
        rows = sorted((r for r in wb["fig2"] if r["model"] == model), key=lambda r: r["eps"])
        assert rows[0]["eps"] == 0 and rows[0]["robust"]["k"] == clean[model], (model, rows[0], clean)
        ks = [r["robust"]["k"] for r in rows]
        assert ks == sorted(ks, reverse=True) and {r["robust"]["n"] for r in rows} == {n_eval}, (model, ks)
        assert all(_acc(r["robust"]["accuracy"]) for r in rows)
    fig1 = res["02-fig1-digits.json"]["rows"]
    for h in {r["h"] for r in fig1}:  # a transferred attack keeps at most the points the net classifies correctly
        at_h = {r["setting"]: r["robust"] for r in fig1 if r["h"] == h}
        assert all(c["k"] <= at_h["clean"]["k"] and c["n"] == n_eval for c in at_h.values()), (h, at_h)
    curves = res["04-fig3-digits.json"]["curves"]
    for model in {c["model"] for c in curves}:  # robust accuracy never rises with the radius
        ks = [c["robust"]["k"] for c in sorted((c for c in curves if c["model"] == model), key=lambda c: c["eps"])]
        assert ks == sorted(ks, reverse=True), (model, ks)
    for row in res["05-table2-digits.json"]["rows"]:
        assert row["robust"]["k"] <= row["clean"]["k"] <= row["clean"]["n"] == row["robust"]["n"]
    audit = res["06-audit-digits.json"]
    assert audit["headline"] and all(isinstance(s, str) and s.endswith(".") for s in audit["headline"])
    pgd_steps = audit["provenance"]["params"]["PGD_STEPS"]
    for f in audit["findings"]:
        assert f["worst_case"]["k"] <= f["paper_attack"]["k"] <= f["clean"]["k"] <= f["n"]
        assert f["paper_attack_label"] == f"PGD-{pgd_steps}"  # tiny runs PGD-5 and says so
        assert f["reproduced"]["status"] in ("reproduced", "not reproduced", "no paper figure")
        assert f["converged"]["status"] in ("converged", "not converged")
        assert f["masking"]["status"] in ("signs", "no sign")
        assert f["feasible"]["status"] in ("feasible", "infeasible", "not applicable", "no paper figure")
    shares = next(iter(audit["models"].values()))["class_shares"]
    assert audit["constant_image"]["bound"] == max(shares) and abs(sum(shares) - 1) < 1e-6
    g = res["07-grid-digits.json"]
    assert g["summary"] and g["scope"] and g["closest"]["id"] in {c["id"] for c in g["cells"]}
    assert {c["protocol"] for c in g["cells"]} >= {"standard", "no-clip", "cross-solver", "normalised-eps"}
    for c in g["cells"]:
        assert c["correct_threat_model"] == (c["protocol"] == "standard")
        assert c["solver_config"]["rtol"] == c["solver"]["rtol"]
        assert c["solver_config"]["adjoint"] == (c["grad"] == "adjoint")
        assert c["clean"]["n"] == g["provenance"]["params"]["GRID_N"]
        for r in c["per_eps"]:
            assert r["worst"]["k"] <= min(r["pgd"]["k"], r["fgsm"]["k"]) and r["pgd"]["k"] <= c["clean"]["k"]
            lo, hi = r["worst"]["ci95"]
            assert lo <= r["worst"]["k"] / r["worst"]["n"] <= hi


@slow
def test_report_has_every_section(tiny_run):
    import html as markup
    html = markup.unescape(tiny_run["report"])  # templates escape text (an apostrophe is &#39;)
    from natrob.report.sections import sections
    for section in [s.title for s in sections()] + ["data:image/png;base64", "Profile <b>tiny</b>"]:
        assert section in html, section
    for python_repr in ("{'", "['", "': ", "True,", "None,"):  # prose and tables are written for people
        assert python_repr not in html.split("<pre>")[0], python_repr
    assert "(not tiny)" not in html  # every result file it read was produced by the tiny profile


@slow
def test_report_sections_read_what_the_notebooks_write(tiny_run):
    from natrob.report.sections import sections
    html = tiny_run["report"]
    for section in sections():
        assert f'href="#{section.id}"' in html and f'id="{section.id}"' in html  # navigation generated from sections
        if section.results:
            files = [r for name, r in tiny_run["results"].items() if name.startswith(section.results)]
            assert files, section.results
            for r in files:
                assert set(section.schema) <= set(r), (section.id, set(section.schema) - set(r))


@slow
def test_failing_notebook_names_the_cell(tmp_path):
    import nbformat
    from natrob.run.runner import run_notebook
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell("X = 1")
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, nbformat.v4.new_code_cell("from ipykernel.connect import get_connection_info\n"
                                             "info = get_connection_info(unpack=True)\n"
                                             "print('transport', info['transport'])"),
                nbformat.v4.new_code_cell("raise ValueError(f'bad X={X}')")]
    path = tmp_path / "99-fails.ipynb"
    nbformat.write(nb, path)
    res = run_notebook(path, {"X": 5}, tmp_path / "out")
    assert not res["ok"]
    assert "cell 2" in res["error"] and "ValueError" in res["error"] and "bad X=5" in res["error"]
    assert not (tmp_path / "out" / "99-fails.ipynb").exists()  # a failed run never looks finished
    failed = tmp_path / "out" / "99-fails.failed.ipynb"
    assert failed.exists()  # the executed copy with the traceback is kept under another name
    assert "transport ipc" in failed.read_text()  # the kernel talked over unix sockets, not TCP


def test_a_started_notebook_is_not_finished_until_it_succeeds(tmp_path):
    from natrob.run.runner import Stamps
    nb = tmp_path / "01-x.ipynb"
    (tmp_path / "01-x.ipynb").write_text("{}")
    stamps = Stamps("tiny")
    stamps.done({"notebook": nb.name, "ok": True, "wall_s": 1.0}, "abc")
    assert stamps.finished(nb, "abc", tmp_path)
    stamps.started(nb)  # a forced re-run starts: killed now, it must not count as finished
    assert not Stamps("tiny").finished(nb, "abc", tmp_path)
    stamps.done({"notebook": nb.name, "ok": False, "wall_s": 1.0}, "abc")
    assert not Stamps("tiny").finished(nb, "abc", tmp_path)


@slow
def test_notebook_06_audits_a_users_model_by_parameter(tiny_run):
    assert tiny_run["rc_extra"] == 0
    audit = tiny_run["audit_extra"]
    assert set(audit["models"]) == {"ResNet50", "Neural ODE", "pgd_at", "trades", "yopo", "make"}
    assert any(s.startswith("make (clean") for s in audit["headline"])
    assert {f["model"] for f in audit["findings"]} >= {"make", "Neural ODE"}
