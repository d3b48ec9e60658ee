"""docs/findings.md and README's evidence table are renderings of the published result files (natrob.report.findings):
the committed text equals the rendering, a changed count changes its own cell and nothing else, and no commit or
data the files do not name is left in them."""
import io
import json
import re
import shutil
import subprocess
import sys

import pytest

from natrob import paths
from natrob.report import findings


def _block(text: str) -> str:
    start, end = text.index(findings.BEGIN) + len(findings.BEGIN), text.index(findings.END)
    return text[start:end].strip("\n")


def _commits() -> set:
    """Every ``provenance.git_commit`` of the published files the docs render."""
    out = set()
    for profile, _ in findings.PROFILES:
        for p in (paths.PUBLISHED / profile).glob("[0-9][0-9]-*.json"):
            commit = (json.loads(p.read_text()).get("provenance") or {}).get("git_commit")
            if commit:
                out.add(commit)
    return out


@pytest.fixture
def published(tmp_path, monkeypatch):
    """A copy of the published folders the docs render, put in place of ``paths.PUBLISHED``."""
    for profile, _ in findings.PROFILES:
        shutil.copytree(paths.PUBLISHED / profile, tmp_path / profile, ignore=shutil.ignore_patterns("weights"))
    monkeypatch.setattr(paths, "PUBLISHED", tmp_path)
    return tmp_path


def test_committed_docs_are_the_rendering():
    """Run `python -m natrob.report.findings --write` after publishing results, and commit what it writes."""
    assert findings.DOCS.read_text() == findings.render_findings()
    assert _block(findings.README.read_text()) == findings.render_readme_evidence().strip("\n")
    out = io.StringIO()
    assert findings.main(["--check"], out=out) == 0, out.getvalue()


def _row(text: str, start: str, profile_title: str) -> list:
    """The cells of the first table row starting with ``start`` in the section of ``profile_title``."""
    section = text[text.index(f"## {profile_title}"):]
    line = next(line for line in section.splitlines() if line.startswith(start))
    return [c.strip() for c in line.strip("|").split(" | ")]


def _header(text: str, start: str, profile_title: str) -> list:
    section = text[text.index(f"## {profile_title}"):]
    lines = section.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(start))
    header = next(lines[i - 1] for i in range(at, 0, -1) if lines[i].startswith("|---"))
    return [c.strip() for c in header.strip("|").split(" | ")]


def test_a_changed_count_changes_its_cell_and_nothing_else(published):
    mnist_title = dict(findings.PROFILES)["mnist"]
    before_docs, before_readme = findings.render_findings(), findings.render_readme_evidence()
    f = published / "mnist" / "03-white-box-mnist.json"
    payload = json.loads(f.read_text())
    row = next(r for r in payload["table1"] if r["model"] == "Neural ODE" and r["attack"] == "FGSM"
               and abs(r["eps"] - 0.3) < 1e-9)
    old, n = row["robust"]["k"], row["robust"]["n"]
    new = (old + 17) % (n + 1)
    row["robust"]["k"] = new
    f.write_text(json.dumps(payload))
    docs, readme = findings.render_findings(), findings.render_readme_evidence()

    start = "| Neural ODE | "
    col = _header(docs, start, mnist_title).index("ε = 0.3")
    fgsm = _row(docs, start, mnist_title)
    assert fgsm[2] == "FGSM", fgsm
    assert fgsm[col].startswith(f"{new}/{n} ("), fgsm
    assert _row(before_docs, start, mnist_title)[col].startswith(f"{old}/{n} (")
    changed = [(a, b) for a, b in zip(before_docs.splitlines(), docs.splitlines()) if a != b]
    assert len(changed) == 2, changed  # Table 1's cell, and the claim that reads it
    assert changed[0][1].startswith(start) and "`fgsm-overstates`" in changed[1][1]
    assert f"FGSM {new}/{n}" in changed[1][1]

    ev = [line for line in readme.splitlines() if "Neural ODE, FGSM" in line][0]
    assert ev.split(" | ")[2].split(" / ")[1] == str(new), ev
    assert sum(a != b for a, b in zip(before_readme.splitlines(), readme.splitlines())) == 1


def test_a_changed_commit_is_named(published):
    f = published / "quick" / "09-mechanism-digits.json"
    payload = json.loads(f.read_text())
    payload["provenance"]["git_commit"] = "abcdef0123456789abcdef0123456789abcdef01"
    f.write_text(json.dumps(payload))
    docs = findings.render_findings()
    assert "`09-mechanism-digits.json` (commit `abcdef0`)" in docs
    assert "| `09-mechanism-digits.json` | `abcdef0` |" in docs


def test_no_stale_commit_or_data_is_left():
    """The old hand-written page named a commit for notebook 09 that no file was published from, and the old test
    split's numbers: every commit the docs name is a file's, and the test split appears only if a file is on it."""
    commits = _commits()
    text = findings.render_findings() + _block(findings.README.read_text())
    named = set(re.findall(r"`([0-9a-f]{7,40})(?:\+dirty)?`", text))
    stale = sorted(name for name in named if not any(c.startswith(name) for c in commits))
    assert named and not stale, stale
    if not any(c.startswith("7cb6896") for c in commits):
        assert "7cb6896" not in text
    datasets = {json.loads(p.read_text()).get("dataset", {}).get("name")
                for profile, _ in findings.PROFILES for p in (paths.PUBLISHED / profile).glob("[0-9]*.json")}
    if "mnist-testsplit" not in datasets:
        assert "test split" not in text and "testsplit" not in text


def test_hand_written_text_holds_no_run_numbers():
    for text in (findings.INTRO, findings.README_CAPTION):
        assert not re.search(r"\d", text), text
    old_section = findings.VERDICT_HEAD + findings.VERDICT_TAIL + str(findings.VERDICT_ROWS)
    assert not re.search(r"\d+/\d+", old_section)  # no counts in the section kept from the hand-written page


def test_check_names_the_first_differing_line(tmp_path, monkeypatch):
    docs, readme = tmp_path / "findings.md", tmp_path / "README.md"
    shutil.copy(findings.README, readme)
    monkeypatch.setattr(findings, "DOCS", docs)
    monkeypatch.setattr(findings, "README", readme)
    assert findings.main(["--write"], out=io.StringIO()) == 0
    assert findings.main(["--check"], out=io.StringIO()) == 0
    lines = docs.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| Neural ODE |"))
    docs.write_text("\n".join(lines[:at] + [lines[at].replace("/100", "/99", 1)] + lines[at + 1:]) + "\n")
    out = io.StringIO()
    assert findings.main(["--check"], out=out) == 1
    assert f"{docs}:{at + 1}:" in out.getvalue()
    assert findings.main(["--write"], out=io.StringIO()) == 0
    text = readme.read_text()
    readme.write_text(text.replace("| 03 | Table 1", "| 03 | Table one", 1))
    out = io.StringIO()
    assert findings.main(["--check"], out=out) == 1
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s.startswith("| 03 | Table 1"))
    assert f"{readme}:{line}:" in out.getvalue()


def test_markers_are_added_after_the_first_paragraph_when_absent():
    text = ("# x\n\n## What natrob finds\n\n**Verdict.** first\nparagraph.\n\n**Mechanism.** more.\n\n"
            "## Where to look\n")
    out = findings.with_block(text, "| a |")
    assert out == text.replace("paragraph.\n\n", f"paragraph.\n\n{findings.BEGIN}\n| a |\n{findings.END}\n\n")
    assert findings.with_block(out, "| b |") == out.replace("| a |", "| b |")


def test_renders_without_torch():
    code = ("import sys\nfrom natrob.report import findings\n"
            "findings.render_findings()\nfindings.render_readme_evidence()\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('natrob.harness.evaluate')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=paths.REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
