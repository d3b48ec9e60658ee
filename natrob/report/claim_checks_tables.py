"""The claims' checks on notebooks 03 to 06 and 08: Table 1 (the paper's PGD and FGSM against ours, the Neural ODE
against ResNet50), the audit's worst case and the ε = 0.5 bound, Table 2's adversarial training, the paper's width
and Fig. 3's Boundary Attack. Each takes ``results`` ({file template: JSON}) and returns ``(holds, numbers)``;
each threshold is a constant here, named in its claim's text.
"""
from __future__ import annotations

from .. import reference
from ..eps import EPS_TOL
from ..stats import constant_image_limit, wilson
from .claim_reading import (AUDIT, BOUNDARY, ODE, TABLE2, WHITE_BOX, WIDTH, Missing, at_most, count_of, fgsm_row,
                            in_file, k_of_n, pgd_rows, robust_count, rows_of, select_rows, starts_with)


# ------------------------------------------------------------------------- Table 1 (notebook 03)
PGD_LIMIT = 10  # of 100


def pgd_breaks_ode(results: dict) -> tuple:
    """The paper's Table 1 (MNIST), PGD-40 on the Neural ODE at ε = 0.3, 0.4, 0.5 (paper 90.55 / 84.64 / 75.23%):
    our robust counts (notebook 03, ``table1``)."""
    rows = [r for r in pgd_rows(results, ODE) if isinstance(r.get("eps"), (int, float)) and r["eps"] >= 0.3 - EPS_TOL]
    if not rows:
        raise Missing(f"{WHITE_BOX}: no {ODE} PGD row at ε ≥ 0.3")
    kn = [(r["eps"], robust_count(r, WHITE_BOX)) for r in rows]
    holds = all(at_most(k, n, PGD_LIMIT, 100) for _, (k, n) in kn)
    return holds, ", ".join(f"ε {e:g}: {k_of_n(k, n)}" for e, (k, n) in kn)


def ode_not_above_resnet(results: dict) -> tuple:
    """The paper's claim itself (Table 1: Neural ODE 75-94%, ResNet50 0% under PGD-40): our two nets under the
    same PGD at every ε ≥ 0.3, compared by their 95% Wilson intervals (notebook 03)."""
    parts, holds = [], True
    for row in pgd_rows(results, ODE):
        if not isinstance(row.get("eps"), (int, float)) or row["eps"] < 0.3 - EPS_TOL:
            continue
        k, n = robust_count(row, WHITE_BOX)
        k2, n2 = robust_count(pgd_rows(results, "ResNet50", row["eps"])[0], WHITE_BOX)
        holds &= wilson(k, n)[0] <= wilson(k2, n2)[1] + 1e-12
        parts.append(f"ε {row['eps']:g}: ODE {k_of_n(k, n)}, ResNet50 {k_of_n(k2, n2)}")
    if not parts:
        raise Missing(f"{WHITE_BOX}: no {ODE} PGD row at ε ≥ 0.3")
    return holds, "; ".join(parts)


FGSM_GAP = 10  # points of 100


def fgsm_overstates(results: dict) -> tuple:
    """The paper's Table 1 FGSM row (97.46% at ε = 0.3) against its PGD row: ours on the Neural ODE at ε = 0.3
    (notebook 03)."""
    fk, fn = robust_count(fgsm_row(results, ODE, 0.3), WHITE_BOX)
    pgd = pgd_rows(results, ODE, 0.3)[0]
    pk, pn = robust_count(pgd, WHITE_BOX)
    holds = (fk * pn - pk * fn) * 100 >= FGSM_GAP * fn * pn
    return holds, f"ε 0.3: FGSM {k_of_n(fk, fn)}, {pgd.get('attack')} {k_of_n(pk, pn)}"


def paper_above_ours(results: dict) -> tuple:
    """The paper's Table 1 PGD-40 row for the Neural ODE (``natrob/reference_numbers.json``, 93.62 / 90.55 /
    84.64 / 75.23%) against the 95% Wilson interval of ours at each ε (notebook 03)."""
    dataset = in_file(results, WHITE_BOX, "dataset", "name")
    paper = reference.table1(dataset, "PGD", ODE)
    parts, holds = [], True
    for row in pgd_rows(results, ODE):
        k, n = robust_count(row, WHITE_BOX)
        p = reference.lookup(paper, row["eps"]) if isinstance(row.get("eps"), (int, float)) else None
        if p is None:
            raise Missing(f"reference_numbers.json: no paper figure at ε {row.get('eps')}")
        hi = wilson(k, n)[1]
        holds &= p > hi
        parts.append(f"ε {row['eps']:g}: paper {100 * p:.2f}%, ours {k_of_n(k, n)} (≤ {100 * hi:.1f}%)")
    return holds, "; ".join(parts)


# ------------------------------------------------------------------------- the audit (notebook 06)
WORST_LIMIT = 4  # of 40


def worst_case_breaks_ode(results: dict) -> tuple:
    """The audit's worst case over every attack (PGD-40, PGD-100x2, AutoAttack, Square, transfer, decision-based)
    on the Neural ODE at ε = 0.3, the paper's Table 1 ε (notebook 06, ``findings``)."""
    row = rows_of(results, AUDIT, "findings", model=ODE, eps=0.3)[0]
    k, n = count_of(row.get("worst_case"), f"{AUDIT}: {ODE} ε 0.3 worst_case")
    pk, pn = count_of(row.get("paper_attack"), f"{AUDIT}: {ODE} ε 0.3 paper_attack")
    label = row.get("paper_attack_label", "the paper's PGD")
    return at_most(k, n, WORST_LIMIT, 40), f"ε 0.3: worst case {k_of_n(k, n)} ({label} {k_of_n(pk, pn)})"


def eps05_infeasible(results: dict) -> tuple:
    """The paper's Table 1 Neural ODE figure at ε = 0.5 (PGD-40 75.23%) against the constant-image bound: the
    constant 0.5 image lies in every ε-ball at ε ≥ 0.5, so no classifier keeps more than the largest class share
    of the audit's points (notebook 06, ``constant_image.bound``; :func:`natrob.stats.constant_image_limit`)."""
    dataset = in_file(results, AUDIT, "dataset", "name")
    p = reference.lookup(reference.table1(dataset, "PGD", ODE), 0.5)
    share, n = in_file(results, AUDIT, "constant_image", "bound"), in_file(results, AUDIT, "n")
    if not isinstance(share, (int, float)) or not isinstance(n, int) or p is None:
        raise Missing(f"{AUDIT}: no constant_image.bound and n (or no paper figure at ε 0.5)")
    bound = constant_image_limit(share, n)
    return p * n > bound, f"ε 0.5: paper {100 * p:.2f}%, any classifier at most {k_of_n(bound, n)}"


# ------------------------------------------------------------------------- Table 2 (notebook 05)
def adversarial_training_works(results: dict) -> tuple:
    """The paper's Table 2 (PGD-20 robust accuracy of adversarially trained nets against the naturally trained
    Neural ODE): ours at Table 2's ε, compared by 95% Wilson intervals (notebook 05, ``rows``)."""
    def one(label, training):
        row = rows_of(results, TABLE2, "rows", training=training)[0]
        return label, row.get("eps"), robust_count(row, TABLE2)
    trained = [one("PGD-AT", starts_with("PGD-10")), one("TRADES", starts_with("TRADES"))]
    natural = [one("standard", starts_with("none (baseline")), one(ODE, "none")]  # the naturally trained "Neural ODEs"
    holds = all(wilson(*a)[0] > wilson(*b)[1] for _, _, a in trained for _, _, b in natural)
    return holds, f"ε {trained[0][1]:g}: " + ", ".join(f"{lab} {k_of_n(k, n)}" for lab, _, (k, n) in trained + natural)


# ------------------------------------------------------------------------- the paper's width (notebook 08)
def width_does_not_help(results: dict) -> tuple:
    """The paper's Table A1 width (128 channels) against notebook 03's 32: FGSM at ε = 0.3 of both at the widest
    net's last epoch (``cells``), and PGD-40 at ε = 0.3 of every width's last model (``table1``; notebook 08)."""
    table1 = in_file(results, WIDTH, "table1")
    if not isinstance(table1, dict) or "32" not in table1 or len(table1) < 2:
        raise Missing(f"{WIDTH}: no table1 of 32 channels and a wider net")
    widest = max(table1, key=int)
    epoch = in_file(results, WIDTH, "table1", widest, "epoch")

    def fgsm(ch):
        cell = rows_of(results, WIDTH, "cells", id=f"{ch}ch-epoch{epoch}")[0]
        row = select_rows(cell.get("fgsm"), f"{WIDTH}: cell {ch}ch-epoch{epoch} fgsm", eps=0.3)[0]
        return count_of(row.get("robust"), f"{WIDTH}: cell {ch}ch-epoch{epoch} FGSM ε 0.3")
    (wk, wn), (nk, nn) = fgsm(widest), fgsm("32")
    pgd = []
    for ch in sorted(table1, key=int):
        row = select_rows(in_file(results, WIDTH, "table1", ch, "rows", "pgd"), f"{WIDTH}: table1.{ch}.rows.pgd",
                          eps=0.3)[0]
        pgd.append((ch, count_of(row.get("robust"), f"{WIDTH}: table1.{ch} PGD ε 0.3")))
    holds = wk * nn <= nk * wn and all(at_most(k, n, PGD_LIMIT, 100) for _, (k, n) in pgd)
    return holds, (f"FGSM ε 0.3, epoch {epoch}: {widest} ch {k_of_n(wk, wn)}, 32 ch {k_of_n(nk, nn)}; PGD ε 0.3: "
                   + ", ".join(f"{ch} ch {k_of_n(k, n)}" for ch, (k, n) in pgd))


# ------------------------------------------------------------------------- Fig. 3 (notebook 04)
BOUNDARY_FACTOR = 3


def boundary_overstates(results: dict) -> tuple:
    """The paper's Fig. 3 (Boundary Attack, 1,000 queries: "almost no effect on Neural ODE"): the median L∞
    distance of the adversarial examples it finds on each net (notebook 04, ``summary``)."""
    ode = rows_of(results, BOUNDARY, "summary", model=ODE)[0].get("median_linf")
    res = rows_of(results, BOUNDARY, "summary", model="ResNet50")[0].get("median_linf")
    if not isinstance(ode, (int, float)) or not isinstance(res, (int, float)):
        raise Missing(f"{BOUNDARY}: no median_linf of both nets")
    return ode >= BOUNDARY_FACTOR * res, f"median L∞: {ODE} {ode:.2f}, ResNet50 {res:.2f}"
