"""docs/findings.md and README's evidence table, rendered from the published result files, so they cannot drift.

What it renders from: the result files of ``reference-results/mnist/`` and ``reference-results/quick/``
(:data:`natrob.paths.PUBLISHED`, read when called), each file's ``provenance.git_commit`` for the commit it names,
the paper's figures from ``natrob/reference_numbers.json`` (:mod:`natrob.reference`; Table 2's CIFAR-10 figures as
the files store them) and each claim's status from :func:`natrob.report.claims.check_claims` on those folders. Every
number on the rendered pages comes from one of them; the hand-written text around the numbers holds none.

``python -m natrob.report.findings --write`` rewrites docs/findings.md and the block of README.md between
``<!-- evidence:begin -->`` and ``<!-- evidence:end -->``; ``--check`` exits 1 naming the first line that differs.
A presenting module: it imports neither torch nor the evaluation harness.
"""
from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

from .. import paths, reference
from . import claims
from ..eps import at_eps
from ..study.fingerprint import quote_eps
from ..results import read_json, write_text
from ..stats import constant_image_limit

DOCS = paths.REPO / "docs" / "findings.md"
README = paths.REPO / "README.md"
BEGIN, END = "<!-- evidence:begin -->", "<!-- evidence:end -->"
README_SECTION = "## What natrob finds"

PROFILES = (("mnist", "MNIST, the `mnist` profile"), ("quick", "Digits, the `quick` profile"))
LIPSCHITZ, FIG1 = "01-lipschitz-{data}.json", "02-fig1-{data}.json"
WHITE_BOX, BOUNDARY, TABLE2 = claims.WHITE_BOX, claims.BOUNDARY, claims.TABLE2
AUDIT, GRID, WIDTH, MECHANISM = claims.AUDIT, "07-grid-{data}.json", claims.WIDTH, claims.MECHANISM
PUBLISHED_ODES, STANDIN_ODES = claims.PUBLISHED_ODES, "10-published-odes-standin-{data}.json"
ODE = claims.ODE

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

README_CAPTION = ("*MNIST, the official split: natrob's counts from `reference-results/mnist/` beside the paper's "
                  "figures, rendered by `python -m natrob.report.findings --write`; every number of every notebook is in "
                  "[docs/findings.md](docs/findings.md).*")


# ------------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True)
class Run:
    """One profile's published files: ``files`` maps each file name to its JSON."""
    profile: str
    data: str
    files: dict

    def get(self, template: str):
        return self.files.get(template.format(data=self.data))

    def name(self, template: str) -> str:
        return template.format(data=self.data)

    @property
    def dataset(self) -> dict:
        return next((f["dataset"] for f in self.files.values() if isinstance(f.get("dataset"), dict)), {})


def load(profile: str) -> Run:
    """The published result files of ``profile`` (``paths.PUBLISHED / profile``, read now)."""
    folder = paths.PUBLISHED / profile
    files = {p.name: read_json(p) for p in sorted(folder.glob("[0-9][0-9]-*.json"))}
    return Run(profile, claims.DATA.get(profile, profile), files)


def _absent(run: Run, template: str) -> list:
    return [f"*No `{run.name(template)}` in `reference-results/{run.profile}/`.*"]


def _at(rows, eps):
    """The row of ``rows`` (a list of mappings; None or anything else holds none) at radius ``eps``
    (:func:`natrob.eps.at_eps`), or None."""
    return at_eps([r for r in rows if isinstance(r, dict)] if isinstance(rows, (list, tuple)) else [], eps)


# ------------------------------------------------------------------------------------------------- formatting
def kn(c) -> str:
    """A count value as ``k/n``; 'not measured' when its k is None, '–' for no count."""
    if not isinstance(c, dict) or c.get("n") is None:
        return "–"
    return "not measured" if c.get("k") is None else f"{c['k']}/{c['n']}"


def pct(frac, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage; '–' for None."""
    return "–" if not isinstance(frac, (int, float)) else f"{100 * frac:.{digits}f}%"


def num(v, spec: str = ".1f") -> str:
    return "–" if not isinstance(v, (int, float)) else format(v, spec)


def _cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ")


def table(header: list, rows: list) -> list:
    """A markdown table's lines."""
    out = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]


WIDTH_COLS = 118


def wrap(lines: list) -> list:
    """Prose lines wrapped at WIDTH_COLS (list items and quotes keep their prefix); tables and headings as they are."""
    out = []
    for line in lines:
        if len(line) <= WIDTH_COLS or line.startswith(("|", "#")):
            out.append(line)
            continue
        first, rest = ("- ", "  ") if line.startswith("- ") else ("> ", "> ") if line.startswith("> ") else ("", "")
        out += textwrap.wrap(line[len(first):], WIDTH_COLS, initial_indent=first, subsequent_indent=rest,
                             break_long_words=False, break_on_hyphens=False)
    return out


def _series(values, sep: str = " / ") -> str:
    return sep.join(values)


def commit_of(payload: dict) -> str:
    """The short commit a file was published from (``provenance.git_commit``), ``+dirty`` kept."""
    commit = str((payload.get("provenance") or {}).get("git_commit") or "unknown")
    head, dirty = commit.split("+", 1) if "+" in commit else (commit, "")
    return head[:7] + (f"+{dirty}" if dirty else "")


def _kind(row: dict):
    """'FGSM' or 'PGD' (the paper's Table 1 attacks) of a Table 1 row, else None."""
    ident, label = str(row.get("id") or ""), str(row.get("attack") or "")
    if ident == "fgsm" or label == "FGSM":
        return "FGSM"
    return "PGD" if ident.startswith("pgd") or label.startswith("PGD") else None


def _paper_model(model: str) -> str:
    return "ResNet" if model.startswith("ResNet") else model


def _ordered_models(names) -> list:
    seen = list(dict.fromkeys(names))
    return sorted(seen, key=lambda m: (m != ODE, seen.index(m)))


# ------------------------------------------------------------------------------------------------- a profile's head
def _head(run: Run, title: str) -> list:
    ds = run.dataset
    shape = "x".join(str(s) for s in ds.get("shape") or [])
    lines = [f"## {title}", "",
             f"**Data: {ds.get('protocol', ds.get('name', '?'))}**: {num(ds.get('n_train'), ',')} training and "
             f"{num(ds.get('n_test'), ',')} test images of {shape}."]
    other = sorted(n for n, f in run.files.items() if isinstance(f.get("dataset"), dict)
                   and f["dataset"].get("protocol") != ds.get("protocol"))
    if other:
        lines[-1] += " Files on other data: " + ", ".join(f"`{n}` ({run.files[n]['dataset'].get('protocol')})"
                                                         for n in other) + "."
    lines += ["", f"Published in `reference-results/{run.profile}/` (`python -m natrob.report --profile "
              f"{run.profile} --published` renders them); each file from the commit its provenance names:", ""]
    rows = [[f"`{n}`", f"`{commit_of(f)}`", str((f.get("provenance") or {}).get("created") or "–")]
            for n, f in sorted(run.files.items())]
    return lines + table(["file", "commit", "created"], rows)


# ------------------------------------------------------------------------------------------------- Table 1 (03)
def _table1(run: Run) -> list:
    wb = run.get(WHITE_BOX)
    if wb is None:
        return _absent(run, WHITE_BOX)
    ds, rows = run.dataset.get("name", run.data), wb.get("table1") or []
    clean = wb.get("clean") or {}
    models = _ordered_models(r.get("model") for r in rows)
    said = ", ".join(f"{m} {pct(clean.get(m))}" for m in models)
    paper = ", ".join(f"{m} {pct(reference.clean(ds, _paper_model(m)))}" for m in models)
    eps = sorted({r["eps"] for r in rows if isinstance(r.get("eps"), (int, float))})
    out = [f"Clean accuracy on all {num(run.dataset.get('n_test'), ',')} test images: {said} (the paper, MNIST: "
           f"{paper}). Robust points of those evaluated, ours (`k/n`) with the paper's MNIST figure in brackets:", ""]
    body = []
    for model in models:
        for kind in ("FGSM", "PGD"):
            mine = [r for r in rows if r.get("model") == model and _kind(r) == kind]
            if not mine:
                continue
            ref = reference.table1(ds, kind, model)
            cells = [f"{kn((_at(mine, e) or {}).get('robust'))} ({pct(reference.lookup(ref, e))})" for e in eps]
            body.append([model, kn(mine[0].get("clean")), mine[0].get("attack", kind), *cells])
    return out + table(["model", "clean", "attack", *(f"ε = {e:g}" for e in eps)], body)


# ------------------------------------------------------------------------------------------------- Table 2 (05)
def _paper2(row: dict, what: str):
    """The paper's CIFAR-10 figure of a Table 2 row (``what`` 'clean' or 'robust'; older files: 'paper robust')."""
    v = row.get(f"paper CIFAR-10 {what}")
    return v if v is not None else row.get(f"paper {what}")


def _table2(run: Run) -> list:
    t2 = run.get(TABLE2)
    if t2 is None:
        return _absent(run, TABLE2)
    attack = reference.numbers()["table2_cifar10"]["attack"]
    out = ["PGD-20 on the evaluated points (robust `k/n`) per training method, beside the paper's Table 2, which "
           f"is on CIFAR-10 ({attack}), not on this data:", ""]
    body = [[r.get("model", "?"), r.get("training", "?"), num(r.get("eps"), "g"), kn(r.get("clean")),
             kn(r.get("robust")), pct(_paper2(r, "clean")), pct(_paper2(r, "robust"))] for r in t2.get("rows") or []]
    return out + table(["model", "training", "ε", "clean", "PGD-20", "paper CIFAR-10 clean",
                        "paper CIFAR-10 PGD-20"], body)


# ------------------------------------------------------------------------------------------------- the audit (06)
def _audit(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return _absent(run, AUDIT)
    checks = audit.get("checks") or []
    flagged = [c for c in checks if c.get("status") != "pass"]
    n, share = audit.get("n"), (audit.get("constant_image") or {}).get("bound")
    out = [f"{num(n, 'd')} points per model, every attack of notebook 06; {len(checks)} sanity checks, "
           f"{len(flagged)} flagged."]
    if isinstance(share, (int, float)) and isinstance(n, int):
        out[-1] += (f" At ε ≥ 0.5 the constant 0.5 image lies in every ε-ball, so no classifier keeps more than "
                    f"{constant_image_limit(share, n)}/{n} of these points (the largest class share, {pct(share, 1)}).")
    out += ["", "Each model's verdict, as the file states it:", ""]
    out += [f"- {m.get('sentence', name)}" for name, m in (audit.get("models") or {}).items()]
    body = [[f.get("model", "?"), num(f.get("eps"), "g"), kn(f.get("clean")),
             f"{f.get('paper_attack_label', 'paper attack')} {kn(f.get('paper_attack'))}", kn(f.get("worst_case")),
             pct(f.get("paper")), (f.get("reproduced") or {}).get("status", "–"),
             (f.get("converged") or {}).get("status", "–"), (f.get("masking") or {}).get("status", "–")]
            for f in audit.get("findings") or []]
    out += ["", "Per model and ε: the paper's attack, the worst case over every attack, the paper's figure and the "
                "findings (see How to read the verdict):", ""]
    out += table(["model", "ε", "clean", "paper's attack", "worst case", "paper", "reproduced", "converged",
                  "masking"], body)
    if flagged:
        out += ["", "Flagged checks:", ""]
        out += table(["model", "ε", "check", "detail"], [[c.get("model", "?"), num(c.get("eps"), "g"),
                                                           c.get("check", "?"), c.get("detail", "")] for c in flagged])
    return out


# ------------------------------------------------------------------------------------------------- the grid (07)
def _grid(run: Run) -> list:
    grid = run.get(GRID)
    if grid is None:
        return _absent(run, GRID)
    rms = {c.get("id"): c.get("distance_pts") for c in grid.get("comparison") or []}
    eps = [e for e in grid.get("eps") or [] if isinstance(e, (int, float))]
    cells = grid.get("cells") or []
    pgd = next((c.get("pgd_label") for c in cells if c.get("pgd_label")), "PGD")
    header = ["cell", "configuration", "correct threat model", "clean", "solver failures"]
    header += [f"{a} ε = {e:g}" for e in eps for a in ("FGSM", pgd, "worst case")] + ["RMS to the paper"]
    body = []
    for c in cells:
        per = [(_at(c.get("per_eps"), e) or {}) for e in eps]
        body.append([c.get("id", "?"), c.get("label", "?"), "yes" if c.get("correct_threat_model") else "no",
                     kn(c.get("clean")), num(c.get("solver_failures"), "d"),
                     *(kn(p.get(k)) for p in per for k in ("fgsm", "pgd", "worst")), num(rms.get(c.get("id")))])
    out = [f"Scope, as the file states it: {grid.get('scope', '–')}", ""] + table(header, body)
    out += ["", "RMS: distance in percentage points to the paper's Table 1 over the numbers measured. The file's "
                "summary:", "", f"> {grid.get('summary', '–')}"]
    return out


# ------------------------------------------------------------------------------------------------- widths (08)
def _width_rows(width: dict, e: float) -> list:
    """Per width: channels, parameters, epochs, test accuracy, and its last net's clean, FGSM, PGD, worst case."""
    t1, wc = width.get("table1") or {}, width.get("worst_case") or {}
    body = []
    for w in width.get("widths") or []:
        ch = str(w.get("channels"))
        last = (w.get("history") or [{}])[-1]
        rows = (t1.get(ch) or {}).get("rows") or {}
        worst = (_at(wc.get("worst"), e) or {}).get("robust") if str(wc.get("channels")) == ch else None
        body.append([ch, num(w.get("params"), ","), f"{w.get('epochs_done', '?')} of {w.get('epochs_scheduled', '?')}",
                     pct(last.get("test_acc"), 1), kn((t1.get(ch) or {}).get("clean")),
                     kn((_at(rows.get("fgsm"), e) or {}).get("robust")),
                     kn((_at(rows.get("pgd"), e) or {}).get("robust")), kn(worst)])
    return body


def _width_epochs(width: dict, e: float) -> list:
    """FGSM at ``e`` per epoch (rows) and width (columns), from the cell table."""
    cells = width.get("cells") or []
    widths = list(dict.fromkeys(c.get("channels") for c in cells))
    epochs = sorted({c.get("epoch") for c in cells if isinstance(c.get("epoch"), int)})
    at = {(c.get("channels"), c.get("epoch")): kn((_at(c.get("fgsm"), e) or {}).get("robust")) for c in cells}
    body = [[str(ep), *(at.get((w, ep), "") for w in widths)] for ep in epochs]
    return table(["epoch", *(f"{w} ch" for w in widths)], body)


def _width_worst(width: dict) -> list:
    wc = width.get("worst_case") or {}
    rows = wc.get("rows") or []
    attacks = list(dict.fromkeys(r.get("attack") for r in rows))
    body = []
    for w in wc.get("worst") or []:
        by = {r.get("attack"): kn(r.get("robust")) for r in rows if _at([r], w.get("eps", -1))}
        body.append([num(w.get("eps"), "g"), *(by.get(a, "–") for a in attacks), kn(w.get("robust"))])
    out = [f"The strongest evaluation of the {wc.get('channels', '?')}-channel net (epoch {wc.get('epoch', '?')}; "
           f"clean {kn(wc.get('clean'))}):", ""]
    return out + table(["ε", *attacks, "worst case"], body)


def _pcts(rows) -> str:
    return _series(num(x.get("pct"), ".0f") for x in rows or []) or "–"


def _nearest(width: dict, configs: list) -> list:
    """The configurations nearest the paper's Table 1 (over all and under the correct threat model), with the
    paper's row above them."""
    most = max(c.get("numbers", 0) for c in configs)
    full = [c for c in configs if c.get("numbers") == most]
    picks = [("nearest", min(full, key=lambda c: c["rms"]))]
    correct = [c for c in full if c.get("correct")]
    picks += [("nearest, correct threat model", min(correct, key=lambda c: c["rms"]))] if correct else []
    paper = width.get("paper") or {}
    eps = "/".join(f"{e:g}" for e in paper.get("eps") or [])
    body = [["the paper's Table 1", "Neural ODE, MNIST", "–", _series(num(v, ".2f") for v in paper.get("fgsm") or []),
             _series(num(v, ".2f") for v in paper.get("pgd") or []), "–"]]
    body += [[what, c.get("config", "?"), c.get("protocol", "–"), _pcts(c.get("fgsm")), _pcts(c.get("pgd")),
              num(c.get("rms"))] for what, c in picks]
    out = [f"The configurations nearest the paper's Table 1 (RMS over {most} numbers, percentage points):", ""]
    return out + table(["", "configuration", "what it is", f"FGSM % (ε {eps})", f"PGD % (ε {eps})", "RMS"], body)


def _width(run: Run) -> list:
    width = run.get(WIDTH)
    if width is None:
        return _absent(run, WIDTH)
    e = quote_eps(width.get("eps") or [0.3])
    pgd = (width.get("pgd") or {}).get("label", "PGD")
    out = [f"Per width, the last net (Table 1 on the evaluated points; test accuracy on all "
           f"{num(run.dataset.get('n_test'), ',')} test images) at ε = {e:g}:", ""]
    out += table(["channels", "parameters", "epochs trained", "test accuracy", "clean", f"FGSM ε = {e:g}",
                  f"{pgd} ε = {e:g}", f"worst case ε = {e:g}"], _width_rows(width, e))
    out += ["", f"FGSM at ε = {e:g} after each epoch:", ""] + _width_epochs(width, e)
    out += [""] + _width_worst(width)
    configs = [c for c in width.get("configurations") or [] if isinstance(c.get("rms"), (int, float))]
    if configs:
        most = max(c.get("numbers", 0) for c in configs)
        out += [""] + _nearest(width, configs)
        shown = [c for c in configs if c.get("numbers") == most or not c.get("correct")]
        out += ["", "Distance to the paper's Table 1 of each width's Table 1 and each protocol variant (RMS, "
                    "percentage points, over the numbers measured):", ""]
        out += table(["configuration", "threat model", "numbers", "RMS"],
                     [[c.get("config", "?"), c.get("protocol", "–"), c.get("numbers", "?"), num(c.get("rms"))]
                      for c in sorted(shown, key=lambda c: c["rms"])])
    return out


# ------------------------------------------------------------------------------------------------- mechanism (09)
def _mech_epochs(mech: dict, e: float) -> list:
    """Per stored epoch: Σ lr, accuracy, margins, exactly-zero gradients per protocol, FGSM under float32 and AMP."""
    cells = mech.get("cells") or []
    protos = list(dict.fromkeys(p for c in cells for p in (c.get("zero_grad") or {})))
    fgsm = list(dict.fromkeys(p for c in cells for p in (c.get("fgsm") or {})))
    body = []
    for c in cells:
        m, zero = c.get("margins") or {}, c.get("zero_grad") or {}
        n = next((z.get("n") for z in zero.values() if isinstance(z, dict)), "?")
        body.append([num(c.get("epoch"), "d"), num(c.get("sum_lr")), pct(c.get("test_acc")), kn(c.get("clean")),
                     num(m.get("p2"), ".2f"), num(m.get("p50"), ".2f"), num(m.get("max"), ".2f"),
                     _series(str((zero.get(p) or {}).get("k", "–")) for p in protos) + f" of {n}",
                     *(kn((_at((c.get("fgsm") or {}).get(p), e) or {}).get("robust")) for p in fgsm)])
    header = ["epoch", "Σ lr", "test accuracy", "clean", "margin p2", "p50", "max",
              "exactly-zero gradient (" + _series(protos) + ")", *(f"FGSM ε = {e:g}, {p}" for p in fgsm)]
    return table(header, body)


def _mech_trend(mech: dict) -> list:
    trend = mech.get("trend") or {}
    body = [[fit, num((trend.get(fit) or {}).get("at_target"), ".2f"),
             _series((num(v, ".2f") for v in (trend.get(fit) or {}).get("interval") or []), " to "),
             num((trend.get(fit) or {}).get("rss"), ".3g")] for fit in ("log", "linear") if fit in trend]
    out = [f"The median margin against Σ lr over {trend.get('n', '?')} epochs, extrapolated to the paper's summed "
           f"learning rate ({num(trend.get('target'), '.1f')}):", ""]
    return out + table(["fit", "median margin there", "95% prediction interval", "residual sum of squares"], body)


def _mech_thresholds(mech: dict) -> list:
    sat = mech.get("map") or {}
    scales = [s for s in sat.get("scales") or [] if isinstance(s, (int, float))]
    grid = f"K from {min(scales):g} to {max(scales):g}, {len(scales)} values" if scales else "K"
    out = [f"The saturation map ({num(sat.get('n'), 'd')} points, clean {kn(sat.get('clean'))}; the last net's "
           f"logits multiplied by K, {grid}): the median margin at which half the correctly classified points "
           "have an exactly-zero input gradient, each point solved alone and in batches (one shared step size); "
           "'beyond the grid' where no K got there:", ""]
    body = [[p, *(("beyond the grid" if v.get(k) is None else num(v.get(k))) for k in ("alone", "batched"))]
            for p, v in (sat.get("thresholds") or {}).items() if isinstance(v, dict)]
    return out + table(["protocol", "alone", "batched"], body)


def _mech_distances(mech: dict) -> list:
    configs = sorted((c for c in mech.get("configurations") or [] if isinstance(c.get("rms"), (int, float))),
                     key=lambda c: c["rms"])
    eps = "/".join(f"{e:g}" for e in (mech.get("paper") or {}).get("eps") or [])
    body = [[c.get("config", "?"), c.get("kind", "?"), _pcts(c.get("fgsm")), _pcts(c.get("pgd")), num(c.get("rms"))]
            for c in configs]
    out = ["Distance of each configuration's Table 1 to the paper's (RMS, percentage points, over the numbers "
           "measured); only the kind `pipeline` is a real pipeline (crafted and judged through it), the others "
           "are reference lines:", ""]
    return out + table(["configuration", "kind", f"FGSM % (ε {eps})", f"PGD % (ε {eps})", "RMS"], body)


def _mech_strongest(mech: dict) -> list:
    s = mech.get("strongest") or {}
    out = [f"The strongest evaluation through the nearest pipeline, {s.get('config', '?')} "
           f"({num(s.get('n'), 'd')} points, clean {kn(s.get('clean'))}):", ""]
    return out + table(["attack", "ε", "robust"], [[r.get("pipeline") or r.get("attack", "?"), num(r.get("eps"), "g"),
                                                    kn(r.get("robust"))] for r in s.get("rows") or []])


def _mech_schedule(mech: dict, e: float) -> list:
    ps = mech.get("paper_schedule") or {}
    if not ps:
        return []
    last = (ps.get("history") or [{}])[-1]
    cell = (ps.get("cells") or [{}])[-1]
    f32 = kn((_at((cell.get("fgsm") or {}).get("float32"), e) or {}).get("robust"))
    train = (ps.get("model") or {}).get("train") or {}
    return [f"The paper's own schedule (Adam {num(train.get('lr'), 'g')}, batch {train.get('batch_size', '?')}): "
            f"{ps.get('epochs_done', '?')} of {ps.get('epochs_scheduled', '?')} epochs, Σ lr "
            f"{num((ps.get('sum_lr') or [None])[-1], '.2f')}, test accuracy {pct(last.get('test_acc'), 1)}, median "
            f"margin {num((cell.get('margins') or {}).get('p50'), '.2f')}, FGSM at ε = {e:g} {f32} (float32)."]


def _mechanism(run: Run) -> list:
    mech = run.get(MECHANISM)
    if mech is None:
        return _absent(run, MECHANISM)
    e = quote_eps(mech.get("eps") or [0.3])
    model, tr = mech.get("model") or {}, mech.get("training") or {}
    kw, train, lrs = model.get("kwargs") or {}, tr.get("train") or model.get("train") or {}, tr.get("sum_lr") or []
    out = [f"The net: {model.get('model', '?')}, {kw.get('channels', '?')} channels, t1 = "
           f"{num(kw.get('t1'), 'g')}, trained {tr.get('epochs_done', '?')} of {tr.get('epochs_scheduled', '?')} "
           f"epochs (Adam {num(train.get('lr'), 'g')}, batch {train.get('batch_size', '?')}), Σ lr "
           f"{num(lrs[0] if lrs else None)} to {num(lrs[-1] if lrs else None)}. Per stored epoch, on "
           f"{num((mech.get('n') or {}).get('cells'), 'd')} points:", ""]
    out += _mech_epochs(mech, e)
    for part in (_mech_trend(mech), _mech_schedule(mech, e), _mech_thresholds(mech), _mech_distances(mech),
                 _mech_strongest(mech)):
        out += [""] + part if part else []
    return out


# ------------------------------------------------------------------------------------------------- 01, 02, 04
def _boundary(run: Run) -> list:
    fig3 = run.get(BOUNDARY)
    if fig3 is None:
        return _absent(run, BOUNDARY)
    body = [[s.get("model", "?"), kn(s.get("clean")), kn(s.get("found")), num(s.get("median_linf"), ".2f"),
             num(s.get("median_l2"), ".2f"), num(s.get("queries"), ",")] for s in fig3.get("summary") or []]
    return (["Fig. 3, the decision-based Boundary Attack (notebook 04): the distance of the adversarial examples it "
             "finds, a query-limited upper bound:", ""]
            + table(["model", "clean", "found", "median L∞", "median L2", "queries"], body))


def _step_size(run: Run) -> list:
    fig1 = run.get(FIG1)
    if fig1 is None:
        return _absent(run, FIG1)
    rows = fig1.get("rows") or []
    settings = list(dict.fromkeys(r.get("setting") for r in rows))
    hs = list(dict.fromkeys(r.get("h") for r in rows))
    at = {(r.get("h"), r.get("setting")): kn(r.get("robust")) for r in rows}
    out = [f"Fig. 1, ResNets at step size h (notebook 02; FGSM transferred from a source net, clean "
           f"{pct(fig1.get('source_clean_acc'), 1)}):", ""]
    return out + table(["h", *settings], [[num(h, "g"), *(at.get((h, s), "–") for s in settings)] for h in hs])


def _lipschitz(run: Run) -> list:
    lip = run.get(LIPSCHITZ)
    if lip is None:
        return _absent(run, LIPSCHITZ)
    eq12 = lip.get("eq12") or {}
    trials, bad = eq12.get("trials"), eq12.get("violations")
    held = trials - bad if isinstance(trials, int) and isinstance(bad, int) else "?"
    return [f"§3 (notebook 01): Eq. 12 held in {num(held, ',')} of {num(trials, ',')} trials; Theorem 3.1 "
            f"{num(lip.get('thm31_violations'), 'd')} violations over {len(lip.get('thm31') or [])} settings, "
            f"Theorem 3.2 {num(lip.get('thm32_violations'), 'd')} violations."]


# ------------------------------------------------------------------------------------------------- claims
def _claims(profile: str) -> list:
    rows = claims.check_claims(profile, paths.PUBLISHED / profile)
    held = sum(r["status"] == "holds" for r in rows)
    return ([f"{held} of {len(rows)} hold on `reference-results/{profile}/`:", ""]
            + table(["claim", "status", "the numbers it read"],
                    [[f"`{r['id']}`: {r['text']}", r["status"], r["numbers"]] for r in rows]))


# ------------------------------------------------------------------------------------------------- the pages
def _others(run: Run) -> list:
    parts = [_lipschitz(run), _step_size(run), _boundary(run)]
    return [line for part in parts for line in ([""] + part)][1:]


# ------------------------------------------------------------------------------------------------- published models (10)
def _published_rows(f: dict) -> list:
    pgd, worst = f.get("pgd") or [], (f.get("audit") or {}).get("findings") or []
    rows = []
    for r in f.get("logged") or []:
        m, e = r.get("model"), r.get("eps")
        p = _at([x for x in pgd if x.get("model") == m], e) or {}
        w = _at([x for x in worst if x.get("model") == m], e) or {}
        rows.append([m, num(e, "g"), num(r.get("log"), ".3f"), kn(r.get("replayed")), kn(r.get("fgsm")),
                     kn(p.get("robust")), kn(w.get("worst_case"))])
    return rows


def _published(run: Run) -> list:
    f = run.get(PUBLISHED_ODES) or run.get(STANDIN_ODES)
    if f is None:
        return _absent(run, PUBLISHED_ODES)
    out = [f.get("verdict", ""), ""]
    if (f.get("source") or {}).get("standin"):
        out += ["*Stand-ins: small models of TisODE's classes trained on this profile's data (the published "
                "checkpoints were not given); they test the path, not TisODE's claim.*", ""]
    out += ["Clean accuracy on every test image: " + ", ".join(
        f"{c.get('model')} {kn(c.get('clean'))}" for c in f.get("clean") or []) + ".", ""]
    out += table(["model", "ε", "the log", "the log's attack (ours)", "FGSM", "the paper's PGD", "worst case (audit)"],
                 _published_rows(f))
    out += ["", "As the file states it:", ""] + [f"- {s}" for s in f.get("findings") or []]
    return out


SECTIONS = (("Table 1 (notebook 03)", (WHITE_BOX,), _table1), ("Table 2 (notebook 05)", (TABLE2,), _table2),
            ("The audit (notebook 06)", (AUDIT,), _audit),
            ("What produces the paper's numbers (notebook 07)", (GRID,), _grid),
            ("The paper's width (notebook 08)", (WIDTH,), _width),
            ("Why the paper's attack saw no gradient (notebook 09)", (MECHANISM,), _mechanism),
            ("Published Neural-ODE models: TisODE (notebook 10)", (PUBLISHED_ODES, STANDIN_ODES), _published),
            ("§3, Fig. 1 and Fig. 3 (notebooks 01, 02, 04)", (LIPSCHITZ, FIG1, BOUNDARY), _others))


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
    out = _head(run, title)
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


# ------------------------------------------------------------------------------------------------- README's table
def _of(counts: list) -> str:
    """``a / b / c of n`` when every count has the same n, else each ``k/n``."""
    ns = {c.get("n") for c in counts if isinstance(c, dict)}
    if len(ns) == 1 and len(counts) == sum(isinstance(c, dict) and isinstance(c.get("k"), int) for c in counts):
        return _series(str(c["k"]) for c in counts) + f" of {ns.pop()}"
    return _series(kn(c) for c in counts)


def _ev_table1(run: Run) -> list:
    wb = run.get(WHITE_BOX)
    if wb is None:
        return [["03", "Table 1", f"no `{run.name(WHITE_BOX)}`", ""]]
    ds, rows, out = run.dataset.get("name", run.data), wb.get("table1") or [], []
    for model, kind in ((ODE, "FGSM"), (ODE, "PGD"), ("ResNet50", "PGD")):
        mine = [r for r in rows if r.get("model") == model and _kind(r) == kind]
        eps = sorted(r["eps"] for r in mine if isinstance(r.get("eps"), (int, float)))
        ref = reference.table1(ds, kind, model)
        label = mine[0].get("attack", kind) if mine else kind
        out.append(["03", f"Table 1, {model}, {label}, ε {_series((f'{e:g}' for e in eps), '/')}",
                    _of([(_at(mine, e) or {}).get("robust") for e in eps]),
                    _series(num(100 * (reference.lookup(ref, e) or 0), ".2f") for e in eps) + "%"])
    return out


def _ev_widths(run: Run) -> list:
    width = run.get(WIDTH)
    if width is None:
        return [["08", "widths", f"no `{run.name(WIDTH)}`", ""]]
    ds, e = run.dataset.get("name", run.data), quote_eps(width.get("eps") or [0.3])
    t1 = width.get("table1") or {}
    chans = sorted(t1, key=int)
    paper_ch = reference.numbers()["table_a1_neural_ode_training"]["mnist"]["channels"]
    out = []
    for key, kind in (("fgsm", "FGSM"), ("pgd", "PGD")):
        label = kind if key == "fgsm" else (width.get("pgd") or {}).get("label", kind)
        counts = [(_at(((t1[c] or {}).get("rows") or {}).get(key), e) or {}).get("robust") for c in chans]
        paper = reference.lookup(reference.table1(ds, kind, ODE), e)
        out.append(["08", f"{label} at ε {e:g}, {_series(chans)} channels", _of(counts),
                    f"{pct(paper)} (the paper's net: {paper_ch} channels)"])
    return out


def _ev_strongest(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return [["06", "strongest evaluation", f"no `{run.name(AUDIT)}`", ""]]
    e = quote_eps([f.get("eps") for f in audit.get("findings") or [] if isinstance(f.get("eps"), (int, float))]
                  or [0.3])
    row = _at([f for f in audit.get("findings") or [] if f.get("model") == ODE], e) or {}
    return [["06", f"strongest evaluation, {ODE}: worst case over every attack at ε {e:g}", kn(row.get("worst_case")),
             f"{pct(row.get('paper'))} ({row.get('paper_attack_label', 'PGD')})"]]


TABLE2_ROWS = (("standard", "none (baseline"), ("PGD-AT", "PGD-10"), ("TRADES", "TRADES"), ("YOPO", "YOPO"),
               (f"natural {ODE}", "none"))


def _ev_table2(run: Run) -> list:
    t2 = run.get(TABLE2)
    if t2 is None:
        return [["05", "Table 2", f"no `{run.name(TABLE2)}`", ""]]
    rows = t2.get("rows") or []
    found = [next((r for r in rows if str(r.get("training", "")) == start
                   or (start != "none" and str(r.get("training", "")).startswith(start))), {})
             for _, start in TABLE2_ROWS]
    eps = next((r.get("eps") for r in found if isinstance(r.get("eps"), (int, float))), None)
    attack = reference.numbers()["table2_cifar10"]["attack"]
    return [["05", f"Table 2, PGD-20 at ε {num(eps, 'g')}: {_series(n for n, _ in TABLE2_ROWS)}",
             _of([r.get("robust") for r in found]),
             _series(num(100 * v, ".2f") if isinstance(v, (int, float)) else "–"
                     for v in (_paper2(r, "robust") for r in found)) + f"% (CIFAR-10, {attack})"]]


def _ev_bound(run: Run) -> list:
    audit = run.get(AUDIT)
    if audit is None:
        return [["06", "ε = 0.5 bound", f"no `{run.name(AUDIT)}`", ""]]
    share, n = (audit.get("constant_image") or {}).get("bound"), audit.get("n")
    ours = (f"at most {constant_image_limit(share, n)}/{n} ({pct(share, 1)})"
            if isinstance(share, (int, float)) and isinstance(n, int) else "–")
    paper = reference.lookup(reference.table1(run.dataset.get("name", run.data), "PGD", ODE), 0.5)
    return [["06", "ε = 0.5: the most any classifier keeps on the audit's points (the constant 0.5 image)", ours,
             f"{pct(paper)} ({ODE}, {reference.paper_attack()['label']})"]]


def render_readme_evidence() -> str:
    """README's evidence table (MNIST, the official split): each row a notebook's counts beside the paper's."""
    run = load("mnist")
    rows = [*_ev_table1(run), *_ev_widths(run), *_ev_strongest(run), *_ev_table2(run), *_ev_bound(run)]
    return "\n".join(wrap([README_CAPTION, "", *table(["notebook", "what", "natrob", "paper"], rows)])) + "\n"


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
