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

This module holds the registry (:data:`CLAIMS`) and the checking; the checks and their thresholds are in
:mod:`~natrob.report.claim_checks_tables` (notebooks 03 to 06 and 08) and :mod:`~natrob.report.claim_checks_study`
(09 and 10), what they read in :mod:`~natrob.report.claim_reading`; each name is importable from here too.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .claim_reading import (ALL, AUDIT, BOUNDARY, DATA, FINDINGS, MECHANISM, MNIST, ODE, PUBLISHED_ODES, TABLE2,
                            WHITE_BOX, WIDTH, Missing)
from .claim_checks_study import (AMP_FACTOR, LOG_SHARE, MARGIN_FACTOR, RMS_MIN, STRONGEST_LIMIT,
                                 amp_saturates_first, log_is_its_own_attack, margins_below_float32,
                                 nearest_are_saturated, pgd_halves_the_log, pipelines_far_from_paper,
                                 strongest_breaks_nearest)
from .claim_checks_tables import (BOUNDARY_FACTOR, FGSM_GAP, PGD_LIMIT, WORST_LIMIT, adversarial_training_works,
                                  boundary_overstates, eps05_infeasible, fgsm_overstates, ode_not_above_resnet,
                                  paper_above_ours, pgd_breaks_ode, width_does_not_help, worst_case_breaks_ode)

# the file names, profile groups and thresholds above are imported for their readers too (claims.WHITE_BOX,
# claims.PGD_LIMIT in the tests and the findings), not only for the registry


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
