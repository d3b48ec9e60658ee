"""The study's findings as checked claims: ``python -m natrob.report.verify --profile quick --claims [--published]``.

A claim is one sentence of what natrob finds (README's "What natrob finds", docs/findings.md), with its threshold
in it, and a predicate over a profile's result files (``results/<profile>/`` of a run, or the published
``reference-results/<profile>/``) that says whether the sentence holds and gives exactly the counts it read.

Claims are what a *retrained* run, on another CPU, is checked against: its nets differ from the published ones, so
its digits differ, and only the findings have to survive. The digits of one run (the published weights
re-evaluated) are checked by ``natrob.report.verify``'s tolerances instead. Each threshold is chosen so that its claim
holds, with margin, on every independent training measured: for quick, the published run (nets trained on one
thread of an AMD CPU), the release before it (nets trained on two threads) and a retraining on another CPU; for
mnist, the published run. No claim rests on an exact count, on the clean accuracy of an under-trained epoch, on
the saturation map's batched zero-gradient counts or on AMP's counts at one K: the numbers known to move between
machines. Counts are compared as shares of the points evaluated (``k`` of ``n``), never as floats.

Which profiles a claim applies to: ``quick`` (digits) and ``mnist`` for the findings (one, the Boundary Attack's,
for mnist only: on 8x8 digits it does not hold); ``tiny`` (a CI smoke run: 8-16 points, PGD-5, nets of one or two
epochs) only for the two claims that hold at that size whatever the training: the paper's figures lie above ours,
and its ε = 0.5 figure is impossible.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import reference
from ..eps import EPS_TOL, same_eps
from ..stats import constant_image_limit, wilson

DATA = {"tiny": "digits", "quick": "digits", "mnist": "mnist"}  # the data name in a profile's result file names
ALL, FINDINGS, MNIST = ("tiny", "quick", "mnist"), ("quick", "mnist"), ("mnist",)

WHITE_BOX = "03-white-box-{data}.json"
BOUNDARY = "04-fig3-{data}.json"
TABLE2 = "05-table2-{data}.json"
AUDIT = "06-audit-{data}.json"
WIDTH = "08-width-{data}.json"
MECHANISM = "09-mechanism-{data}.json"
PUBLISHED_ODES = "10-published-odes-{data}.json"  # the published TisODE models (mnist); stand-ins elsewhere

ODE = "Neural ODE"


@dataclass(frozen=True)
class Claim:
    """One finding: ``id`` (kebab-case), ``text`` (the sentence a reader sees, threshold included), ``threshold``
    (that threshold as the text names it), ``profiles`` it applies to, ``files`` it reads (result file names,
    ``{data}`` the profile's data name) and ``check(results) -> (holds, numbers)``, where ``results`` maps each
    of ``files`` to its loaded JSON and ``numbers`` is the counts it read, as plain text."""
    id: str
    text: str
    threshold: str
    profiles: tuple
    files: tuple
    check: Callable[[dict], tuple]


class Missing(LookupError):
    """A result file lacks what a claim reads; the message names the file and the key."""


# ------------------------------------------------------------------------------------------------- reading
def _get(obj, where: str, *path):
    """``obj[path[0]][path[1]]...``; Missing naming ``where`` and the path when a step is absent."""
    for i, seg in enumerate(path):
        try:
            obj = obj[seg]
        except (KeyError, IndexError, TypeError):
            raise Missing(f"{where}: no {'.'.join(str(s) for s in path[:i + 1])}") from None
    return obj


def _in(results: dict, file: str, *path):
    """``path`` inside result file ``file`` (:func:`_get`)."""
    if file not in results:
        raise Missing(f"no file {file}")
    return _get(results[file], file, *path)


def _select(rows, where: str, **match) -> list:
    """The rows of list ``rows`` whose fields equal ``match`` (an ``eps`` by :func:`natrob.eps.same_eps`; a
    callable value is a test of the field); Missing naming ``where`` and ``match`` when there is none."""
    def fits(row):
        for f, want in match.items():
            have = row.get(f) if isinstance(row, dict) else None
            if callable(want):
                ok = have is not None and want(have)
            else:
                ok = have == want or (f == "eps" and same_eps(have, want))
            if not ok:
                return False
        return True
    found = [r for r in rows if fits(r)] if isinstance(rows, list) else []
    if not found:
        said = ", ".join(f"{f}={getattr(v, 'shows', v)}" for f, v in match.items())
        raise Missing(f"{where}: no row with {said}")
    return found


def _starts(prefix: str):
    """A field test for :func:`_select`: a string starting with ``prefix``."""
    def test(value):
        return isinstance(value, str) and value.startswith(prefix)
    test.shows = prefix + "*"
    return test


def _rows(results: dict, file: str, key: str, **match) -> list:
    """The rows of list ``key`` of result file ``file`` that match (:func:`_select`)."""
    return _select(_in(results, file, key), f"{file}: {key}", **match)


def _kn(c, where: str) -> tuple:
    """``(k, n)`` of a count value; Missing when it is absent or was not measured (``k`` None)."""
    if not isinstance(c, dict) or not isinstance(c.get("k"), int) or not isinstance(c.get("n"), int):
        raise Missing(f"{where}: no measured count")
    return c["k"], c["n"]


def _robust(row: dict, file: str) -> tuple:
    """``(k, n)`` of a row's ``robust`` count; Missing naming the row by its identifying fields."""
    said = " ".join(str(row[f]) for f in ("model", "training", "attack") if row.get(f) is not None)
    return _kn(row.get("robust"), f"{file}: {said} ε {row.get('eps')}")


def _at_most(k: int, n: int, limit: int, of: int) -> bool:
    """``k`` of ``n`` is at most ``limit`` of ``of`` (the same share), in integers."""
    return k * of <= limit * n


def _pgd(results: dict, model: str, eps=None) -> list:
    """Table 1's rows of the paper's PGD (PGD-40; PGD-5 in tiny) on ``model`` (notebook 03), at ``eps`` or all."""
    at = {} if eps is None else {"eps": eps}
    return _rows(results, WHITE_BOX, "table1", model=model, attack=_starts("PGD"), **at)


def _fgsm(results: dict, model: str, eps: float) -> dict:
    return _rows(results, WHITE_BOX, "table1", model=model, attack="FGSM", eps=eps)[0]


def _show(k: int, n: int) -> str:
    return f"{k}/{n}"


# ------------------------------------------------------------------------- Table 1 (notebook 03)
PGD_LIMIT = 10  # of 100


def pgd_breaks_ode(results: dict) -> tuple:
    """The paper's Table 1 (MNIST), PGD-40 on the Neural ODE at ε = 0.3, 0.4, 0.5 (paper 90.55 / 84.64 / 75.23%):
    our robust counts (notebook 03, ``table1``)."""
    rows = [r for r in _pgd(results, ODE) if isinstance(r.get("eps"), (int, float)) and r["eps"] >= 0.3 - EPS_TOL]
    if not rows:
        raise Missing(f"{WHITE_BOX}: no {ODE} PGD row at ε ≥ 0.3")
    kn = [(r["eps"], _robust(r, WHITE_BOX)) for r in rows]
    holds = all(_at_most(k, n, PGD_LIMIT, 100) for _, (k, n) in kn)
    return holds, ", ".join(f"ε {e:g}: {_show(k, n)}" for e, (k, n) in kn)


def ode_not_above_resnet(results: dict) -> tuple:
    """The paper's claim itself (Table 1: Neural ODE 75-94%, ResNet50 0% under PGD-40): our two nets under the
    same PGD at every ε ≥ 0.3, compared by their 95% Wilson intervals (notebook 03)."""
    parts, holds = [], True
    for row in _pgd(results, ODE):
        if not isinstance(row.get("eps"), (int, float)) or row["eps"] < 0.3 - EPS_TOL:
            continue
        k, n = _robust(row, WHITE_BOX)
        k2, n2 = _robust(_pgd(results, "ResNet50", row["eps"])[0], WHITE_BOX)
        holds &= wilson(k, n)[0] <= wilson(k2, n2)[1] + 1e-12
        parts.append(f"ε {row['eps']:g}: ODE {_show(k, n)}, ResNet50 {_show(k2, n2)}")
    if not parts:
        raise Missing(f"{WHITE_BOX}: no {ODE} PGD row at ε ≥ 0.3")
    return holds, "; ".join(parts)


FGSM_GAP = 10  # points of 100


def fgsm_overstates(results: dict) -> tuple:
    """The paper's Table 1 FGSM row (97.46% at ε = 0.3) against its PGD row: ours on the Neural ODE at ε = 0.3
    (notebook 03)."""
    fk, fn = _robust(_fgsm(results, ODE, 0.3), WHITE_BOX)
    pgd = _pgd(results, ODE, 0.3)[0]
    pk, pn = _robust(pgd, WHITE_BOX)
    holds = (fk * pn - pk * fn) * 100 >= FGSM_GAP * fn * pn
    return holds, f"ε 0.3: FGSM {_show(fk, fn)}, {pgd.get('attack')} {_show(pk, pn)}"


def paper_above_ours(results: dict) -> tuple:
    """The paper's Table 1 PGD-40 row for the Neural ODE (``natrob/reference_numbers.json``, 93.62 / 90.55 /
    84.64 / 75.23%) against the 95% Wilson interval of ours at each ε (notebook 03)."""
    dataset = _in(results, WHITE_BOX, "dataset", "name")
    paper = reference.table1(dataset, "PGD", ODE)
    parts, holds = [], True
    for row in _pgd(results, ODE):
        k, n = _robust(row, WHITE_BOX)
        p = reference.lookup(paper, row["eps"]) if isinstance(row.get("eps"), (int, float)) else None
        if p is None:
            raise Missing(f"reference_numbers.json: no paper figure at ε {row.get('eps')}")
        hi = wilson(k, n)[1]
        holds &= p > hi
        parts.append(f"ε {row['eps']:g}: paper {100 * p:.2f}%, ours {_show(k, n)} (≤ {100 * hi:.1f}%)")
    return holds, "; ".join(parts)


# ------------------------------------------------------------------------- the audit (notebook 06)
WORST_LIMIT = 4  # of 40


def worst_case_breaks_ode(results: dict) -> tuple:
    """The audit's worst case over every attack (PGD-40, PGD-100x2, AutoAttack, Square, transfer, decision-based)
    on the Neural ODE at ε = 0.3, the paper's Table 1 ε (notebook 06, ``findings``)."""
    row = _rows(results, AUDIT, "findings", model=ODE, eps=0.3)[0]
    k, n = _kn(row.get("worst_case"), f"{AUDIT}: {ODE} ε 0.3 worst_case")
    pk, pn = _kn(row.get("paper_attack"), f"{AUDIT}: {ODE} ε 0.3 paper_attack")
    label = row.get("paper_attack_label", "the paper's PGD")
    return _at_most(k, n, WORST_LIMIT, 40), f"ε 0.3: worst case {_show(k, n)} ({label} {_show(pk, pn)})"


def eps05_infeasible(results: dict) -> tuple:
    """The paper's Table 1 Neural ODE figure at ε = 0.5 (PGD-40 75.23%) against the constant-image bound: the
    constant 0.5 image lies in every ε-ball at ε ≥ 0.5, so no classifier keeps more than the largest class share
    of the audit's points (notebook 06, ``constant_image.bound``; :func:`natrob.stats.constant_image_limit`)."""
    dataset = _in(results, AUDIT, "dataset", "name")
    p = reference.lookup(reference.table1(dataset, "PGD", ODE), 0.5)
    share, n = _in(results, AUDIT, "constant_image", "bound"), _in(results, AUDIT, "n")
    if not isinstance(share, (int, float)) or not isinstance(n, int) or p is None:
        raise Missing(f"{AUDIT}: no constant_image.bound and n (or no paper figure at ε 0.5)")
    bound = constant_image_limit(share, n)
    return p * n > bound, f"ε 0.5: paper {100 * p:.2f}%, any classifier at most {_show(bound, n)}"


# ------------------------------------------------------------------------- Table 2 (notebook 05)
def adversarial_training_works(results: dict) -> tuple:
    """The paper's Table 2 (PGD-20 robust accuracy of adversarially trained nets against the naturally trained
    Neural ODE): ours at Table 2's ε, compared by 95% Wilson intervals (notebook 05, ``rows``)."""
    def one(label, training):
        row = _rows(results, TABLE2, "rows", training=training)[0]
        return label, row.get("eps"), _robust(row, TABLE2)
    trained = [one("PGD-AT", _starts("PGD-10")), one("TRADES", _starts("TRADES"))]
    natural = [one("standard", _starts("none (baseline")), one(ODE, "none")]  # the naturally trained "Neural ODEs"
    holds = all(wilson(*a)[0] > wilson(*b)[1] for _, _, a in trained for _, _, b in natural)
    return holds, f"ε {trained[0][1]:g}: " + ", ".join(f"{lab} {_show(k, n)}" for lab, _, (k, n) in trained + natural)


# ------------------------------------------------------------------------- the paper's width (notebook 08)
def width_does_not_help(results: dict) -> tuple:
    """The paper's Table A1 width (128 channels) against notebook 03's 32: FGSM at ε = 0.3 of both at the widest
    net's last epoch (``cells``), and PGD-40 at ε = 0.3 of every width's last model (``table1``; notebook 08)."""
    table1 = _in(results, WIDTH, "table1")
    if not isinstance(table1, dict) or "32" not in table1 or len(table1) < 2:
        raise Missing(f"{WIDTH}: no table1 of 32 channels and a wider net")
    widest = max(table1, key=int)
    epoch = _in(results, WIDTH, "table1", widest, "epoch")

    def fgsm(ch):
        cell = _rows(results, WIDTH, "cells", id=f"{ch}ch-epoch{epoch}")[0]
        row = _select(cell.get("fgsm"), f"{WIDTH}: cell {ch}ch-epoch{epoch} fgsm", eps=0.3)[0]
        return _kn(row.get("robust"), f"{WIDTH}: cell {ch}ch-epoch{epoch} FGSM ε 0.3")
    (wk, wn), (nk, nn) = fgsm(widest), fgsm("32")
    pgd = []
    for ch in sorted(table1, key=int):
        row = _select(_in(results, WIDTH, "table1", ch, "rows", "pgd"), f"{WIDTH}: table1.{ch}.rows.pgd", eps=0.3)[0]
        pgd.append((ch, _kn(row.get("robust"), f"{WIDTH}: table1.{ch} PGD ε 0.3")))
    holds = wk * nn <= nk * wn and all(_at_most(k, n, PGD_LIMIT, 100) for _, (k, n) in pgd)
    return holds, (f"FGSM ε 0.3, epoch {epoch}: {widest} ch {_show(wk, wn)}, 32 ch {_show(nk, nn)}; PGD ε 0.3: "
                   + ", ".join(f"{ch} ch {_show(k, n)}" for ch, (k, n) in pgd))


# ------------------------------------------------------------------------- why no gradient (notebook 09)
AMP_FACTOR = 2  # at least one step of the map's grid of K (x2 on mnist, x4 on digits): a retrained run measured 4.0x


def amp_saturates_first(results: dict) -> tuple:
    """The saturation map (notebook 09, ``map.thresholds``): the median logit margin at which half the correctly
    classified points have an exactly-zero input gradient, each point solved alone, under float16 AMP and float32.
    None means no K of the map's grid got there (float32: beyond the grid, so the ordering holds)."""
    amp = _in(results, MECHANISM, "map", "thresholds", "float16-amp", "alone")
    f32 = _in(results, MECHANISM, "map", "thresholds", "float32", "alone")
    holds = amp is not None and (f32 is None or f32 >= AMP_FACTOR * amp)
    def show(v):
        return "beyond the grid" if v is None else f"{v:.1f}"
    ratio = f" ({f32 / amp:.1f}x)" if amp and f32 else ""
    return holds, f"median margin at half exactly zero (alone): float16 AMP {show(amp)}, float32 {show(f32)}{ratio}"


RMS_MIN = 50  # points


def pipelines_far_from_paper(results: dict) -> tuple:
    """The distance table of notebook 09 (``configurations`` of kind ``pipeline``: float32, float16 AMP, bfloat16 at
    the stored epochs, crafted and judged through the pipeline): RMS over the eight numbers of the paper's Table 1
    (Neural ODE), in percentage points."""
    rows = _rows(results, MECHANISM, "configurations", kind="pipeline")
    rms = [(r.get("config", "?"), r.get("rms")) for r in rows]
    if any(not isinstance(v, (int, float)) for _, v in rms):
        raise Missing(f"{MECHANISM}: a pipeline without its rms")
    name, near = min(rms, key=lambda cv: cv[1])
    return near > RMS_MIN, f"{len(rms)} pipelines, nearest RMS {near:.1f} ({name})"


STRONGEST_LIMIT = 4  # of 40


def strongest_breaks_nearest(results: dict) -> tuple:
    """The strongest evaluation of the real pipeline nearest the paper's Table 1 (notebook 09, ``strongest``:
    AutoAttack through that pipeline and PGD-40 in float64) at ε = 0.3."""
    rows = _select(_in(results, MECHANISM, "strongest", "rows"), f"{MECHANISM}: strongest.rows", eps=0.3)
    kn = [(r.get("pipeline") or r.get("attack", "?"), _robust(r, MECHANISM)) for r in rows]
    holds = all(_at_most(k, n, STRONGEST_LIMIT, 40) for _, (k, n) in kn)
    return holds, "ε 0.3: " + ", ".join(f"{a} {_show(k, n)}" for a, (k, n) in kn)


SATURATION_SLACK = 0.99  # the scaled net's margin and the map's threshold are one grid point: equal up to rounding


def nearest_are_saturated(results: dict) -> tuple:
    """Notebook 09's distance table against its saturation map: every configuration nearer the paper's Table 1
    than the nearest real pipeline (the assembled no-gradient row aside) is a logit-scaled net (``table1`` key
    ``scaled-<K>``) whose median margin, K times the last epoch's, is at or past float32's threshold (the map's median
    margin at which half the points' gradients are exactly zero, each solved alone)."""
    configs = _in(results, MECHANISM, "configurations")
    pipes = [_get(c, MECHANISM, "rms") for c in configs if isinstance(c, dict) and c.get("kind") == "pipeline"]
    if not pipes:
        raise Missing(f"{MECHANISM}: configurations: no real pipeline")
    near_pipe = min(pipes)
    nearer = [c for c in configs if c.get("kind") not in ("assembled", "pipeline") and c.get("rms", 1e9) < near_pipe]
    scales = [float(k.split("-", 1)[1]) for k in _in(results, MECHANISM, "table1") if k.startswith("scaled-")]
    margin = _in(results, MECHANISM, "map", "margins", "p50")
    f32 = _in(results, MECHANISM, "map", "thresholds", "float32", "alone")
    if len(scales) != 1 or any(c.get("kind") != "scaled" for c in nearer):
        return False, f"{len(nearer)} configurations nearer than the nearest pipeline (RMS {near_pipe:.1f}), " \
                      f"{len(scales)} scaled nets measured"
    reach = scales[0] * margin
    holds = bool(nearer) and f32 is not None and reach >= SATURATION_SLACK * f32
    f32_text = "beyond the grid" if f32 is None else f"{f32:.1f}"
    return holds, (f"nearest pipeline RMS {near_pipe:.1f}; logits x {scales[0]:g}: RMS "
                   f"{min(c['rms'] for c in nearer) if nearer else float('nan'):.1f}, median margin {reach:.1f} "
                   f"against float32's threshold {f32_text}")


MARGIN_FACTOR = 8


def margins_below_float32(results: dict) -> tuple:
    """The saturation map's margins (notebook 09, the last trained epoch, ``map.margins.p50``) against float32's
    threshold on the same map: how far the training natrob ran is from float32's saturation."""
    margin = _in(results, MECHANISM, "map", "margins", "p50")
    f32 = _in(results, MECHANISM, "map", "thresholds", "float32", "alone")
    holds = f32 is None or f32 >= MARGIN_FACTOR * margin
    shown = "beyond the grid" if f32 is None else f"{f32:.1f} ({f32 / margin:.0f}x)"
    return holds, f"median margin {margin:.1f} at the last epoch; float32's threshold {shown}"


# ------------------------------------------------------------------------- Fig. 3 (notebook 04)
BOUNDARY_FACTOR = 3


def boundary_overstates(results: dict) -> tuple:
    """The paper's Fig. 3 (Boundary Attack, 1,000 queries: "almost no effect on Neural ODE"): the median L∞
    distance of the adversarial examples it finds on each net (notebook 04, ``summary``)."""
    ode = _rows(results, BOUNDARY, "summary", model=ODE)[0].get("median_linf")
    res = _rows(results, BOUNDARY, "summary", model="ResNet50")[0].get("median_linf")
    if not isinstance(ode, (int, float)) or not isinstance(res, (int, float)):
        raise Missing(f"{BOUNDARY}: no median_linf of both nets")
    return ode >= BOUNDARY_FACTOR * res, f"median L∞: {ODE} {ode:.2f}, ResNet50 {res:.2f}"


# ------------------------------------------------------------------------- published models (notebook 10)
LOG_SHARE = 2  # the paper's PGD keeps at most half of the log's figure


def log_is_its_own_attack(results: dict) -> tuple:
    """TisODE's log: every figure it gives for the published models inside the 95% interval of the log's attack
    replayed here on the images its script drew (``logged``)."""
    rows = [r for r in _in(results, PUBLISHED_ODES, "logged") if r.get("log") is not None]
    if not rows:
        raise Missing(f"{PUBLISHED_ODES}: no logged figure")
    seen, ok = [], True
    for r in rows:
        k, n = _kn(r.get("replayed"), f"{PUBLISHED_ODES}: {r.get('model')} ε {r.get('eps')}")
        lo, hi = wilson(k, n)
        ok &= lo <= r["log"] <= hi
        seen.append(f"{r['model']} ε {r['eps']:g}: log {r['log']:.3f}, ours {_show(k, n)}")
    return ok, "; ".join(seen)


def pgd_halves_the_log(results: dict) -> tuple:
    """TisODE at ε = 0.3: the paper's PGD (``pgd``) against the log's figure (``logged``)."""
    log = _rows(results, PUBLISHED_ODES, "logged", model="TisODE", eps=0.3)[0].get("log")
    if not isinstance(log, (int, float)):
        raise Missing(f"{PUBLISHED_ODES}: no logged figure for TisODE at ε 0.3")
    k, n = _robust(_rows(results, PUBLISHED_ODES, "pgd", model="TisODE", eps=0.3)[0], PUBLISHED_ODES)
    return wilson(k, n)[1] * LOG_SHARE <= log, f"TisODE ε 0.3: PGD {_show(k, n)}, log {log:.3f}"


# ------------------------------------------------------------------------------------------------- the registry
CLAIMS: tuple = (
    Claim(id="pgd-breaks-ode",
          text=f"The paper's PGD (PGD-40) leaves at most {PGD_LIMIT} of 100 Neural ODE points at every ε ≥ 0.3 of "
               "Table 1",
          threshold=f"{PGD_LIMIT} of 100", profiles=FINDINGS, files=(WHITE_BOX,), check=pgd_breaks_ode),
    Claim(id="ode-not-above-resnet",
          text="Under the paper's PGD at every ε ≥ 0.3 the Neural ODE is not more robust than ResNet50 beyond "
               "sampling noise: the low end of its 95% interval is at or below the high end of ResNet50's",
          threshold="95% interval", profiles=FINDINGS, files=(WHITE_BOX,), check=ode_not_above_resnet),
    Claim(id="fgsm-overstates",
          text=f"FGSM overstates the Neural ODE's robustness: at ε = 0.3 it keeps at least {FGSM_GAP} more points "
               "of 100 than the paper's PGD",
          threshold=f"{FGSM_GAP} more points of 100", profiles=FINDINGS, files=(WHITE_BOX,), check=fgsm_overstates),
    Claim(id="paper-above-ours",
          text="At every ε of Table 1 the paper's PGD figure for the Neural ODE lies above the 95% interval of ours",
          threshold="95% interval", profiles=ALL, files=(WHITE_BOX,), check=paper_above_ours),
    Claim(id="worst-case-breaks-ode",
          text=f"The strongest evaluation (the audit's worst case over every attack) leaves at most {WORST_LIMIT} "
               "of 40 Neural ODE points at ε = 0.3",
          threshold=f"{WORST_LIMIT} of 40", profiles=FINDINGS, files=(AUDIT,), check=worst_case_breaks_ode),
    Claim(id="eps05-infeasible",
          text="The paper's ε = 0.5 figure for the Neural ODE (PGD-40 75.23%) exceeds what any classifier can keep "
               "on the audit's points (the largest class share: the constant 0.5 image is in every ε-ball)",
          threshold="75.23%", profiles=ALL, files=(AUDIT,), check=eps05_infeasible),
    Claim(id="adversarial-training-works",
          text="Adversarial training works where natural training does not: under PGD-20 at Table 2's ε, PGD-AT and "
               "TRADES each keep more points than the standard net and the Neural ODE, their 95% intervals apart",
          threshold="95% intervals apart", profiles=FINDINGS, files=(TABLE2,), check=adversarial_training_works),
    Claim(id="width-does-not-help",
          text="The paper's width does not help: FGSM at ε = 0.3 keeps no more points at the widest net than at "
               f"32 channels at equal epochs, and PGD-40 at ε = 0.3 leaves at most {PGD_LIMIT} of 100 at every width",
          threshold=f"{PGD_LIMIT} of 100", profiles=FINDINGS, files=(WIDTH,), check=width_does_not_help),
    Claim(id="amp-saturates-first",
          text="float16 AMP saturates first: half the points' input gradients are exactly zero (each solved alone) "
               f"at a median margin at least {AMP_FACTOR} times smaller than float32's",
          threshold=f"{AMP_FACTOR} times", profiles=FINDINGS, files=(MECHANISM,), check=amp_saturates_first),
    Claim(id="pipelines-far-from-paper",
          text="No real pipeline (float32, float16 AMP, bfloat16 at the stored epochs) comes within "
               f"{RMS_MIN} points RMS of the paper's Table 1",
          threshold=f"{RMS_MIN} points", profiles=FINDINGS, files=(MECHANISM,), check=pipelines_far_from_paper),
    Claim(id="strongest-breaks-nearest",
          text="The real pipeline nearest the paper's table is not robust either: AutoAttack through it and "
               f"float64 PGD-40 leave at most {STRONGEST_LIMIT} of 40 at ε = 0.3",
          threshold=f"{STRONGEST_LIMIT} of 40", profiles=FINDINGS, files=(MECHANISM,), check=strongest_breaks_nearest),
    Claim(id="nearest-are-saturated",
          text="The configurations measured nearer the paper's Table 1 than every real pipeline are logit-scaled nets "
               "(a model of longer training) whose median margin is at or past float32's saturation threshold",
          threshold="float32's saturation threshold", profiles=FINDINGS, files=(MECHANISM,),
          check=nearest_are_saturated),
    Claim(id="margins-below-float32",
          text=f"At the last trained epoch the median logit margin is at least {MARGIN_FACTOR} times below float32's "
               "saturation threshold: the training natrob ran does not saturate float32",
          threshold=f"{MARGIN_FACTOR} times", profiles=FINDINGS, files=(MECHANISM,), check=margins_below_float32),
    Claim(id="boundary-overstates",
          text="The query-limited Boundary Attack makes the Neural ODE look more robust than it is: its median L∞ "
               f"on the Neural ODE is at least {BOUNDARY_FACTOR} times ResNet50's",
          threshold=f"{BOUNDARY_FACTOR} times", profiles=MNIST, files=(BOUNDARY,), check=boundary_overstates),
    Claim(id="log-is-its-own-attack",
          text="TisODE's logged FGSM figures come from its own one-step attack: replayed on the images its script "
               "drew, every figure of the log for the published checkpoints lies inside the 95% interval of our count",
          threshold="95% interval", profiles=MNIST, files=(PUBLISHED_ODES,), check=log_is_its_own_attack),
    Claim(id="pgd-halves-the-log",
          text=f"The paper's PGD keeps at most 1/{LOG_SHARE} of TisODE's logged figure at ε = 0.3: the high end of "
               "its 95% interval is at most half of the log's 0.749",
          threshold=f"1/{LOG_SHARE}", profiles=MNIST, files=(PUBLISHED_ODES,), check=pgd_halves_the_log),
)


def applicable(profile: str) -> list:
    """The claims registered for ``profile``."""
    return [c for c in CLAIMS if profile in c.profiles]


def _load(folder: Path, names: dict) -> tuple:
    """{template: JSON} of the files ``names`` ({template: file name}) in ``folder``, and the first one absent."""
    loaded = {}
    for template, name in names.items():
        try:
            loaded[template] = json.loads((folder / name).read_text())
        except FileNotFoundError:
            return loaded, f"no file {name}"
        except (OSError, ValueError) as e:
            return loaded, f"{name} unreadable ({type(e).__name__})"
    return loaded, None


def check_claims(profile: str, results_dir) -> list:
    """Each claim registered for ``profile``, checked on the result files in ``results_dir``: a list of
    ``{"id", "text", "status", "numbers", "profile"}``, status "holds", "fails" or "missing" (a file it reads is
    absent, or lacks what it reads: ``numbers`` says which)."""
    data, folder = DATA.get(profile, profile), Path(results_dir)
    rows = []
    for claim in applicable(profile):
        results, absent = _load(folder, {f: f.format(data=data) for f in claim.files})
        if absent:
            status, numbers = "missing", absent
        else:
            try:
                holds, numbers = claim.check(results)
                status = "holds" if holds else "fails"
            except Missing as e:
                status, numbers = "missing", str(e)
            except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:  # a file of another shape
                status, numbers = "missing", f"{', '.join(claim.files)} malformed ({type(e).__name__}: {e})"
        rows.append({"id": claim.id, "text": claim.text, "status": status,
                     "numbers": numbers.replace("{data}", data), "profile": profile})
    return rows


def report(rows: list, out, profile: str | None = None) -> int:
    """One line per claim (``HOLDS  id: text -- numbers``, ``FAILS``, ``MISSING``) and ``claims <profile>: H of N
    hold`` on ``out``; 0 when every claim holds, 1 otherwise."""
    profile = profile or next((r.get("profile") for r in rows if r.get("profile")), "?")
    for r in rows:
        print(f"{r['status'].upper():<6} {r['id']}: {r['text']} -- {r['numbers']}", file=out)
    held = sum(r["status"] == "holds" for r in rows)
    print(f"claims {profile}: {held} of {len(rows)} hold", file=out)
    return 0 if held == len(rows) else 1
