"""docs/findings.md and README's evidence table, rendered from the published result files, so they cannot drift.

What it renders from: the result files of ``reference-results/mnist/`` and ``reference-results/quick/``
(:data:`natrob.paths.PUBLISHED`, read when called), each file's ``provenance.git_commit`` for the commit it names,
the paper's figures from ``natrob/reference_numbers.json`` (:mod:`natrob.reference`; Table 2's CIFAR-10 figures as
the files store them) and each claim's status from :func:`natrob.report.claims.check_claims` on those folders. Every
number on the rendered pages comes from one of them; the hand-written text around the numbers holds none.

``python -m natrob.report.findings --write`` rewrites docs/findings.md and the block of README.md between
``<!-- evidence:begin -->`` and ``<!-- evidence:end -->``; ``--check`` exits 1 naming the first line that differs.
This module holds the page's hand-written text, the order of its sections, and the writing and checking; the
sections are in :mod:`~natrob.report.findings_notebooks` and :mod:`~natrob.report.findings_study`, README's table
in :mod:`~natrob.report.evidence`. A presenting module: it imports neither torch nor the evaluation harness.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import paths
from . import claims
from ..results import write_text
from .evidence import README_CAPTION, render_readme_evidence
from .findings_notebooks import (audit_section, others_section, profile_head, published_section, table1_section,
                                 table2_section)
from .findings_study import grid_section, mechanism_section, width_section
from .markdown import table, wrap
from .published_files import (AUDIT, BOUNDARY, FIG1, GRID, LIPSCHITZ, MECHANISM, PUBLISHED_ODES, STANDIN_ODES, TABLE2,
                              WHITE_BOX, WIDTH, Run, commit_of, load)

# README_CAPTION and render_readme_evidence are this module's to name (the tests and the docs read them here)
__all__ = ["render_findings", "render_readme_evidence", "main", "with_block", "first_difference", "README_CAPTION"]

DOCS = paths.REPO / "docs" / "findings.md"
README = paths.REPO / "README.md"
BEGIN, END = "<!-- evidence:begin -->", "<!-- evidence:end -->"
README_SECTION = "## What natrob finds"

PROFILES = (("mnist", "MNIST, the `mnist` profile"), ("quick", "Digits, the `quick` profile"))

INTRO = """# What natrob finds, in full

Every number on this page is read from the published result files, `reference-results/mnist/` and
`reference-results/quick/`, and the paper's from `natrob/reference_numbers.json`:
`python -m natrob.report.findings --write` renders this page and README's evidence table from them, and
`python -m natrob.report.findings --check` (run by the tests) fails when either differs from what the files give. The
text between the numbers is hand-written and holds none. Counts are robust (or correct) points out of the points
evaluated, `k/n`; the paper's figures are percentages. The MNIST profile (the official split, the paper's
protocol) comes first, then the digits profile (`quick`: scikit-learn's small digit images, the paper's MNIST
figures as reference); then every claim of `natrob/report/claims.py` with its status on these files, and how to read the
audit's verdict."""

# kept verbatim from the hand-written docs/findings.md: it cites no run numbers (rendered by :func:`_verdict`)
VERDICT_HEAD = """## How to read the verdict

The report opens with "Does the claim hold?": one sentence per model, then for each model and ε four separate
findings, each with its numbers:"""
VERDICT_ROWS = (
    ("reproduced", "is the paper's figure inside the 95% (Wilson) interval of our run of the paper's own attack "
                   "(PGD-40, step 0.01)?", "our model does not behave as the paper's"),
    ("converged", "does PGD-40 agree, within 5 points of the sample, with PGD with many more steps and restarts?",
     "the paper's attack was too weak: an attack-strength finding"),
    ("masking", "any warning sign of gradient masking (Carlini et al. 2019): gradient-free, decision-based, transfer, "
                "adaptive or random-noise attacks beating white-box ones; zero, NaN or disconnected input gradients; "
                "a random forward pass; an unbounded attack short of 100%",
     "the white-box numbers overstate robustness"),
    ("feasible", "at ε ≥ 0.5, is the paper's figure below the largest class share? The constant 0.5 image lies in "
                 "every ε-ball, so no classifier can do better", "the figure cannot be a robust accuracy"))
VERDICT_TAIL = """\
Every accuracy is a count value: robust points out of the evaluated points, with its 95% interval; checks compare
counts and say how many points differ. The audit never crashes on a model: a randomized model (its forward
passes differ) is attacked with EOT-PGD and AutoAttack's `rand` version and judged by majority vote over
several draws; a model whose input is not in the autograd graph gets a zero gradient, a flag, and every
gradient-free attack; an exception inside an attack is recorded in the results and the audit goes on.
A killed evaluation resumes at the attack it was in (`cache/evaluations/`)."""


# ------------------------------------------------------------------------------------------------- claims
def _claims(profile: str) -> list:
    rows = claims.check_claims(profile, paths.PUBLISHED / profile)
    held = sum(r["status"] == "holds" for r in rows)
    return ([f"{held} of {len(rows)} hold on `reference-results/{profile}/`:", ""]
            + table(["claim", "status", "the numbers it read"],
                    [[f"`{r['id']}`: {r['text']}", r["status"], r["numbers"]] for r in rows]))


# ------------------------------------------------------------------------------------------------- the pages
SECTIONS = (("Table 1 (notebook 03)", (WHITE_BOX,), table1_section),
            ("Table 2 (notebook 05)", (TABLE2,), table2_section),
            ("The audit (notebook 06)", (AUDIT,), audit_section),
            ("What produces the paper's numbers (notebook 07)", (GRID,), grid_section),
            ("The paper's width (notebook 08)", (WIDTH,), width_section),
            ("Why the paper's attack saw no gradient (notebook 09)", (MECHANISM,), mechanism_section),
            ("Published Neural-ODE models: TisODE (notebook 10)", (PUBLISHED_ODES, STANDIN_ODES), published_section),
            ("§3, Fig. 1 and Fig. 3 (notebooks 01, 02, 04)", (LIPSCHITZ, FIG1, BOUNDARY), others_section))


def _source(run: Run, templates) -> list:
    """Which files a section reads, each with the commit it was published from (and its data, where that is not
    the profile's)."""
    said = []
    for t in templates:
        f = run.get(t)
        if f is None:
            continue
        ds = (f.get("dataset") or {}).get("protocol")
        other = f", data: {ds}" if ds and ds != run.dataset.get("protocol") else ""
        said.append(f"`{run.name(t)}` (commit `{commit_of(f)}`{other})")
    return [f"*From {', '.join(said)}.*", ""] if said else []


def _profile(profile: str, title: str) -> list:
    run = load(profile)
    out = profile_head(run, title)
    for heading, templates, render in SECTIONS:
        out += ["", f"### {heading}", "", *_source(run, templates), *render(run)]
    return out


def _verdict() -> list:
    """The hand-written section "How to read the verdict" (no run numbers in it)."""
    return [VERDICT_HEAD, "", *table(["finding", "question", "what it means when it fails"], VERDICT_ROWS), "",
            VERDICT_TAIL]


def render_findings() -> str:
    """The whole of docs/findings.md, from the published files of every profile in PROFILES."""
    out = [INTRO]
    for profile, title in PROFILES:
        out += [""] + _profile(profile, title)
    out += ["", "## Claims", "",
            "Each claim of `natrob/report/claims.py` registered for the profile, checked on its published files "
            "(`natrob.report.claims.check_claims`), with the numbers it read."]
    for profile, title in PROFILES:
        out += ["", f"### {title}", "", *_claims(profile)]
    return "\n".join(wrap(out) + ["", *_verdict()]) + "\n"


# ------------------------------------------------------------------------------------------------- writing, checking
def _block_span(text: str):
    """(start, end) of the text between the README markers, or None when they are absent."""
    i, j = text.find(BEGIN), text.find(END)
    return (i + len(BEGIN), j) if 0 <= i < j else None


def with_block(text: str, block: str) -> str:
    """README ``text`` with ``block`` between the markers; the markers are inserted after the first paragraph of
    its "What natrob finds" section when absent."""
    span = _block_span(text)
    if span is None:
        at = text.find(README_SECTION)
        if at < 0:
            raise ValueError(f"README has neither the evidence markers nor a section {README_SECTION!r}")
        end = text.find("\n\n", at + len(README_SECTION) + 2)  # the end of the section's first paragraph
        end = len(text.rstrip("\n")) if end < 0 else end
        text = text[:end] + f"\n\n{BEGIN}\n{END}" + text[end:]
        span = _block_span(text)
    return text[:span[0]] + "\n" + block.strip("\n") + "\n" + text[span[1]:]


def first_difference(have: str, want: str):
    """(line number, committed line, rendered line) of the first line that differs, or None when equal."""
    a, b = have.splitlines(), want.splitlines()
    for i in range(max(len(a), len(b))):
        x, y = (a[i] if i < len(a) else "<end of file>"), (b[i] if i < len(b) else "<end of file>")
        if x != y:
            return i + 1, x, y
    return None if have == want else (len(a) + 1, "<end of file>", "<a final newline>")


def _check(out) -> int:
    docs, readme = Path(DOCS), Path(README)
    have_docs = docs.read_text() if docs.exists() else ""
    have_readme = readme.read_text() if readme.exists() else ""
    for path, have, want in ((docs, have_docs, render_findings()),
                             (readme, have_readme, with_block(have_readme, render_readme_evidence()))):
        diff = first_difference(have, want)
        if diff:
            line, x, y = diff
            print(f"{path}:{line}: differs from the rendering of the published files "
                  f"(run python -m natrob.report.findings --write)\n  committed: {x}\n  rendered:  {y}", file=out)
            return 1
    print(f"{docs} and {readme}'s evidence block match the published files", file=out)
    return 0


def main(argv=None, out=None) -> int:
    """``--write``: rewrite docs/findings.md and README's evidence block; ``--check``: 1 when either differs."""
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="python -m natrob.report.findings", description=__doc__.splitlines()[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="rewrite docs/findings.md and README's evidence block")
    mode.add_argument("--check", action="store_true", help="exit 1 naming the first line that differs")
    args = ap.parse_args(argv)
    if args.check:
        return _check(out)
    write_text(DOCS, render_findings())
    write_text(README, with_block(Path(README).read_text(), render_readme_evidence()))
    print(f"wrote {DOCS} and the evidence block of {README}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
