"""Notebook 07's grid: which solver setting, gradient path, integration time, training length or evaluation
protocol (if any) produces the paper's Table 1 numbers for the Neural ODE, and does that survive the strongest
evaluation?

Paper (Table 1, MNIST): FGSM 97.50/97.46/97.52/97.48% and PGD-40 93.62/90.55/84.64/75.23% at eps 0.2/0.3/0.4/0.5,
PGD with step 0.01, 40 steps, uniform random start; dopri5 with no stated tolerance (Table A1), t1 = 100, 100 epochs.

Axes (each a list in the profile, see :func:`natrob.study.grid_cells.build_cells`):

- test-time tolerance: rtol = atol in e.g. {1e-1, 1e-3, 1e-5} and torchdiffeq's default rtol 1e-7 / atol 1e-9
  (``"default"``), with an NFE cap; a solve that hits the cap is a solver failure, counted as not robust and reported;
- gradient path: ``direct`` back-propagation through the solver or the ``adjoint`` method;
- integration time t1 (a model trained at each) and training length in epochs (a model trained for each);
- evaluation protocols that are NOT the correct threat model (:mod:`natrob.study.protocols`): ``no-clip``,
  ``cross-solver`` (crafted at one tolerance, judged at another), ``normalised-eps``.

Every cell reports count values (k of n, 95% Wilson interval): clean accuracy, FGSM, the paper's PGD
(:func:`natrob.reference.paper_attack`: 40 steps of 0.01 unless the profile overrides them, labelled as it ran),
uniform noise in the eps-ball (PGD's random start alone), FGSM and PGD on the Carlini-Wagner margin loss, FGSM and
PGD through a float64 copy (where the budget allows), and the worst case: the per-point minimum over every attack
of the cell, plus PGD with more steps/restarts and Square on the points that survive them. Beside it: the fraction
of points with an exactly zero float32 input gradient, the median logit margin, forward/backward NFE, wall time.
Adversarial examples are judged by the model exactly as configured for the cell unless the protocol says otherwise.
Standard cells run their attacks as one plan (:mod:`natrob.harness.plan`, shared with the audit). What the result file
says in prose, its table and figure are :mod:`natrob.chapters.ch07_grid`'s.
"""
from __future__ import annotations

import time

import torch
from tqdm.auto import tqdm

from .. import reference
from ..audit import budgets
from ..eps import at_eps
from ..errors import ConfigError, SolverFailure
from ..harness.evalstore import weights_fingerprint
from ..harness.prediction import predict
from ..models.odenet import solver_settings
from ..harness.plan import run_plan
# the cells' names stay importable here, where the notebook, the cost model and the tests find them
from .grid_cells import (GRAD_PATHS, TORCHDIFFEQ_DEFAULT, build_cells, model_specs,  # noqa: F401
                         parse_tolerance, tol_label)
from .probes import cell_probes
from ..harness.precision import AtPrecision, Precision
from .protocols import check_protocol, variant_plan
from ..stats import count


def diagnostics(model, x, y, float64: bool = False) -> dict:
    """Saturation diagnostics of a cell on (x, y): the one probe (:func:`natrob.study.probes.cell_probes`) on the whole
    sample in one batch, solved as the cell's model solves it: points whose float32 cross-entropy input gradient is
    exactly zero, the median and largest logit margin z_y - max_{j != y} z_j of the correctly classified points,
    and the NFE of one forward solve and of its backward pass; with ``float64`` the zero-gradient count in float64
    (where softmax saturates far later) of the points float32 saw as zero. A failed solve is reported, not raised."""
    try:
        p = cell_probes(model, x, y, eps_list=(), batch_size=max(len(y), 1), per_sample=False, float64=float64)
    except SolverFailure as exc:
        return {"n": len(y), "solver_failure": True, "detail": str(exc)[:200], "zero_grad": None,
                "median_margin": None, "max_margin": None, "nfe_forward": None, "nfe_backward": None}
    out = {"n": len(y), "solver_failure": False, "zero_grad": p["zero_grad_float32"],
           "median_margin": p["margin_median"], "max_margin": p["margin_max"], "nfe_forward": p["nfe_forward_mean"],
           "nfe_backward": p["nfe_backward_mean"]}
    return out | ({"zero_grad_float64": p["zero_grad_float64"]} if float64 else {})


def attack_plan(paper: dict, budget: dict, float64_model=None) -> list:
    """The grid's attack plan (:mod:`natrob.harness.plan`) for a standard cell: ``paper`` (the paper's PGD as the
    profile runs it, :func:`natrob.reference.paper_attack`), FGSM, uniform noise, the CW-loss and float64 variants on
    every clean-correct point; more PGD and Square only on the points all of those left robust."""
    pgd = {k: v for k, v in paper.items() if k not in ("id", "role", "label")}
    name = paper["label"]
    plan = [{"name": "fgsm", "id": "fgsm", "label": "FGSM"}, dict(paper),
            {"name": "uniform-noise", "trials": 1, "id": "uniform-noise",
             "label": "uniform noise (PGD's random start)"}]
    budget = budgets.grid_settings(budget)
    if budget["cw"]:
        plan += [{"name": "fgsm", "loss": "cw", "id": "fgsm-cw", "label": "FGSM (CW margin loss)"},
                 {**pgd, "loss": "cw", "early_stop": True, "id": "pgd-cw", "label": f"{name} (CW margin loss)"}]
    if float64_model is not None:
        plan += [{"name": "transfer", "source": float64_model, "attack": {"name": "fgsm"}, "id": "fgsm-float64",
                  "label": "FGSM (float64)"},
                 {"name": "transfer", "source": float64_model, "attack": {**pgd, "early_stop": True},
                  "id": "pgd-float64", "label": f"{name} (float64)"}]
    more, restarts = int(budget["pgd_steps"]), int(budget["pgd_restarts"])
    if more > 0:
        plan += [{"name": "pgd", "steps": more, "alpha_rel": 0.25, "restarts": restarts, "loss": loss,
                  "early_stop": True, "id": f"pgd-more-{loss}",
                  "label": f"PGD-{more}x{restarts} ({loss.upper()}, step eps/4)", "on": "survivors"}
                 for loss in ("cw", "ce")]
    if int(budget["square_queries"]) > 0:
        plan.append({"name": "square", "n_queries": int(budget["square_queries"]), "id": "square", "label": "Square",
                     "on": "survivors"})
    return plan


def _standard_eps(model, x, y, eps, plan, seed) -> tuple:
    """One eps of a standard cell: (row, worst mask, solver failures in attacks)."""
    res = run_plan(model, x, y, eps, plan, seed=seed)
    if not res["evaluable"]:
        return _failed_eps(eps, plan, len(y), res["not_evaluable"])
    rows = res["rows"]
    row = {"eps": eps, "attacks": {}}
    for spec in plan:
        r = rows[spec["id"]]
        row["attacks"][spec["label"] + (" (on survivors)" if spec.get("on") == "survivors" else "")] = r["robust"]
    row["pgd_nfe_mean"], row["pgd_nfe_max"] = rows["pgd-paper"]["nfe_mean"], rows["pgd-paper"]["nfe_max"]
    row["worst_set"] = [s["label"] for s in plan]
    row["fgsm"], row["pgd"] = rows["fgsm"]["robust"], rows["pgd-paper"]["robust"]
    row["noise"] = rows["uniform-noise"]["robust"]
    row["worst"] = res["worst_case"]
    return row, res["worst"], res["solver_failures"]


def _failed_eps(eps, plan, n, reason) -> tuple:
    """A standard cell's eps where the harness could not evaluate the model at all (e.g. the solver setting
    fails on every clean image): every point counts as not robust, as a failed solve does in the harness, and the
    row names the reason."""
    zero = count(0, n)
    row = {"eps": eps, "attacks": {s["label"] + (" (on survivors)" if s.get("on") == "survivors" else ""): zero
                                   for s in plan},
           "pgd_nfe_mean": None, "pgd_nfe_max": None, "worst_set": [s["label"] for s in plan],
           "fgsm": zero, "pgd": zero, "noise": zero, "worst": zero, "not_evaluable": reason}
    return row, torch.zeros(n, dtype=torch.bool), n


def _variant_eps(cell, model, x, y, eps, paper, reference_cell, seed) -> tuple:
    """One eps of a protocol variant: FGSM and the paper's PGD under the variant (one plan through the harness),
    and a worst case that folds in the judged configuration's correct-threat-model worst case.
    (row, worst mask, solver failures)"""
    plan = variant_plan(cell["protocol"], paper, craft_solver=cell.get("craft_solver"))
    res = run_plan(model, x, y, eps, plan, seed=seed)
    if not res["evaluable"]:
        return _failed_eps(eps, plan, len(y), res["not_evaluable"])
    row, n = {"eps": eps}, len(y)
    for attack, spec in zip(("fgsm", "pgd"), plan):
        r = res["rows"][spec["id"]]
        row[attack], row[f"{attack}_outside_box"], row[f"{attack}_max_linf_pixel"] = (
            r["robust"], r["outside_box"], r["max_linf_pixel"])
    row["attacks"] = {s["label"]: res["rows"][s["id"]]["robust"] for s in plan}
    ref_row = at_eps(reference_cell["per_eps"], eps)
    row["noise"] = ref_row["noise"]
    row["worst_set"] = [f"FGSM and {paper['label']} ({cell['protocol']})",
                        f"the correct-threat-model worst case of {reference_cell['label']}"]
    row["correct_worst"] = ref_row["worst"]
    worst = res["worst"] & reference_cell["_worst"][eps]
    # an attack of the variant that raised measured nothing: the worst case over it is not measured either
    row["errors"] = [e["error"] for e in res["errors"]]
    row["worst"] = count(None if row["errors"] else int(worst.sum()), n)
    return row, worst, res["solver_failures"]


def run_cell(cell: dict, model, x, y, eps_list, steps: int | None = None, alpha: float | None = None,
             budget: dict | None = None, max_nfe: int | None = None, float64: bool = False,
             reference_cell: dict | None = None, seed: int = 0, model_key: str | None = None) -> dict:
    """Measure one grid cell (see the module doc) on the model named in ``cell["model"]``.

    Arguments: ``cell`` from :func:`build_cells`; ``model`` the trained ODE net it names (its solver settings
    are changed for the cell and restored afterwards); ``steps``/``alpha`` override the paper's PGD (None keeps
    ``reference_numbers.json``'s 40 steps of 0.01); ``budget`` as :data:`natrob.audit.budgets.GRID_DEFAULTS`;
    ``max_nfe`` the NFE cap per solve; ``float64`` adds the float64 attacks; ``reference_cell`` (protocol
    variants) the measured standard cell of the configuration that judges, whose worst case is folded into this
    cell's. Returns a JSON-ready dict (plus private ``_worst`` masks). Raises ConfigError for an unknown protocol,
    a variant without its reference cell, or a budget key the grid does not know."""
    budget, paper = budgets.grid_settings(budget), reference.paper_attack(steps, alpha)
    check_protocol(cell["protocol"])
    standard = cell["protocol"] == "standard"
    if not standard and reference_cell is None:
        raise ConfigError("reference_cell", None, "the standard cell of the judged configuration (protocol variants)")
    t_start, device = time.time(), next(model.parameters()).device
    x, y = x.to(device), y.to(device)
    changes = {**cell["solver"], "adjoint": cell["grad"] == "adjoint", "max_nfe": max_nfe}
    out = dict(cell) | {"n": len(y), "max_nfe": max_nfe, "model_key": model_key, "pgd_label": paper["label"]}
    with solver_settings(model, **changes):
        out |= {"solver_config": model.solver_config(), "weights": weights_fingerprint(model),
                "diagnostics": diagnostics(model, x, y, float64=float64)}
        pred, nfes = predict(model, x)
        correct = pred == y
        out["clean"], out["clean_nfe"] = count(int(correct.sum()), len(y)), max(nfes) if nfes else None
        failures, per_eps, worst_masks = int((pred < 0).sum()), [], {}
        source = AtPrecision(model, Precision.FLOAT64, solver=False) if float64 and standard else None
        plan = attack_plan(paper, budget, source) if standard else None
        for eps in eps_list:
            row, worst_masks[eps], f = (_standard_eps(model, x, y, eps, plan, seed) if standard else
                                        _variant_eps(cell, model, x, y, eps, paper, reference_cell, seed))
            per_eps.append(row)
            failures += f
    out |= {"per_eps": per_eps, "solver_failures": failures, "nfe_cap_hit": bool(max_nfe is not None and failures > 0),
            "wall_s": time.time() - t_start, "_worst": worst_masks}
    return out


def run_grid(cells, models: dict, x, y, eps_list, steps=None, alpha=None, budget=None, max_nfe=None,
             float64="base", seed=0, progress=True) -> list:
    """Measure every cell; ``models`` maps a model name to ``(model, store record)``; ``steps``/``alpha`` override
    the paper's PGD (None keeps it, see :func:`natrob.reference.paper_attack`); ``float64`` is ``"all"``,
    ``"base"`` (only the base cell) or ``"none"``. Standard cells run before the protocol variants that reuse
    their worst case. Returns the cells' results (private ``_worst`` masks removed)."""
    if float64 not in ("all", "base", "none"):
        raise ConfigError("float64", float64, "'all', 'base' or 'none'")
    ordered = [c for c in cells if c["protocol"] == "standard"] + [c for c in cells if c["protocol"] != "standard"]
    done = {}
    for cell in tqdm(ordered, desc="grid cells", disable=not progress):
        model, record = models[cell["model"]]
        ref = None
        if cell["protocol"] != "standard":
            ref = next(done[c["id"]] for c in ordered if c["protocol"] == "standard" and c["model"] == cell["model"]
                       and c["solver"] == cell["solver"] and c["grad"] == cell["grad"])
        f64 = float64 == "all" or (float64 == "base" and "base" in cell["axes"])
        res = run_cell(cell, model, x, y, eps_list, steps, alpha, budget, max_nfe, float64=f64, reference_cell=ref,
                       seed=seed, model_key=(record or {}).get("key"))
        res["train"] = {"epochs": len((record or {}).get("history", [])) or None,
                        "clean_acc_test_set": (record or {}).get("clean_acc"),
                        "t1": getattr(model, "t1", None)}
        done[cell["id"]] = res
    return [{k: v for k, v in done[c["id"]].items() if not k.startswith("_")} for c in cells]
