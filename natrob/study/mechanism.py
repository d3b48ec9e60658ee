"""Why the paper's attack saw no gradient (notebook 09): training length x evaluation precision, measured.

The notebook calls these steps in this order, each with the parameters it uses (:class:`MechanismParams`, built
once from the notebook's parameters cell):

1. :func:`train` the net (``SAT_MODEL``; null: the profile's ``ODE`` entry), keeping every epoch up to ``SAT_UNTIL``;
2. :func:`saturation` map of the last epoch's net (:func:`natrob.study.saturation.saturation_map`) with its thresholds;
3. :func:`cells`, one per stored epoch (:func:`natrob.study.pipelines.epoch_cell`), and the median margin's
   :func:`natrob.study.pipelines.margin_trend` against the summed learning rate;
4. the paper's own schedule (``SAT_PAPER_MODEL``), measured by the same cells, and notebook 08's widths' margins
   (:func:`natrob.study.mechanism_compare.width_margins`; nothing is trained for them);
5. Table 1 of the last net with its logits scaled (:func:`scaled_table1s`, ``SAT_TABLE1_SCALES``: a model of
   longer training, labelled so) and of every real pipeline (:func:`pipeline_table1s`, ``SAT_PIPELINES`` x
   ``SAT_PIPELINE_EPOCHS``), ranked by RMS distance to the paper's eight MNIST Neural ODE numbers
   (:func:`natrob.study.mechanism_compare.configurations`);
6. :func:`strongest` evaluation (AutoAttack; float64 PGD) of the nearest real pipeline;
7. :func:`payload`: the result file, from the steps' outputs.

    python -m natrob.study.mechanism --profile mnist [--until 4] [--threads 1] [--schedule paper]   # train (resumes)
"""
from __future__ import annotations

import argparse

from .fingerprint import paper_row
from .mechanism_compare import configurations, width_margins  # noqa: F401  (steps the notebook calls)
from .mechanism_params import MechanismParams
from .pipelines import PIPELINE_PRECISIONS, epoch_cell, margin_trend, pipeline_table1
from ..harness.precision import AtPrecision, Precision
from .saturation import GRADIENTS, saturation_map, threshold
from ..audit.strongest import audit_attacks
from .trained import Laps, TrainedNet, profile_and_data, train  # noqa: F401  (steps the notebooks call)

SCHEDULES = ("main", "paper")  # SAT_MODEL (a schedule that reaches the paper's summed rate) and SAT_PAPER_MODEL


def saturation(net: TrainedNet, x, y, scales, memo: dict, progress: bool = True) -> dict:
    """The saturation map of the last epoch's net on (x, y) at FGSM eps 0.3, with its thresholds per gradient
    setting (the median margin at which half the correct points get an exactly-zero gradient, alone and batched)."""
    sat = saturation_map(net.model, x, y, scales=scales, eps_list=[0.3], progress=progress, memo=memo)
    sat["thresholds"] = {g: {"alone": threshold(sat["rows"], g), "batched": threshold(sat["rows"], g, "zero_batched")}
                         for g in sat["protocols"]}
    return sat


def cells(net: TrainedNet, x, y, eps_list, attack: dict, epochs=None, cos_n: int = 20, seed: int = 0,
          memo: dict | None = None, prefix: str = "epoch") -> list:
    """One :func:`natrob.study.pipelines.epoch_cell` per stored epoch of ``net`` (those of ``epochs`` and the last;
    None: every one), each with its id, epoch, summed learning rate and test accuracy. ``memo`` serves the last epoch
    only (the map's gradients are that net's)."""
    stored = net.stored()
    chosen = stored if epochs is None else [e for e in stored if e in {int(w) for w in epochs}]
    out = []
    for e in sorted(set(chosen) | {net.last}):
        model = net.at(e)
        cell = epoch_cell(model, x, y, eps_list, attack, cos_n=cos_n, seed=seed,
                          memo=memo if model is net.model else None)
        out.append({"id": f"{prefix}-{e}", "epoch": e, "sum_lr": net.sums[e - 1],
                    "test_acc": net.history[e - 1]["test_acc"], **cell})
    return out


def trend(cell_list: list) -> dict | None:
    """The median margin's fits against the summed learning rate (None where a cell has no median margin)."""
    if not all(c["margins"]["p50"] is not None for c in cell_list):
        return None
    return margin_trend([c["sum_lr"] for c in cell_list], [c["margins"]["p50"] for c in cell_list])


def paper_schedule(net: TrainedNet | None, x, y, eps_list, attack: dict, cos_n: int = 20, seed: int = 0):
    """The cells of every stored epoch of the paper's own schedule (None where the profile names none)."""
    if net is None:
        return None
    keys = ("epoch", "lr", "test_acc", "loss", "wall_s")
    return {"model": net.entry, "epochs_scheduled": int(net.entry["train"]["epochs"]), "epochs_done": net.last,
            "sum_lr": net.sums, "history": [{k: h.get(k) for k in keys} for h in net.history],
            "cells": cells(net, x, y, eps_list, attack, None, cos_n, seed, prefix="paper-epoch")}


def _table(t: dict, kind: str, epoch: int, precision: Precision, scale: float, n: int) -> dict:
    return {**t, "kind": kind, "epoch": epoch, "precision": precision, "scale": scale, "n": n}


def scaled_table1s(net: TrainedNet, x, y, eps_list, attack: dict, scales, seed: int = 0) -> dict:
    """Table 1 (:func:`natrob.study.pipelines.pipeline_table1`, float32) of the last net with its logits x K for every K
    of ``scales`` (a model of longer training): {``scaled-<K>``: table with its kind, epoch, precision, scale, n}."""
    return {f"scaled-{k:g}": _table(pipeline_table1(net.model, x, y, eps_list, attack, Precision.FLOAT32, k, seed,
                                                    name=f"logits x {k:g}"), "scaled", net.last, Precision.FLOAT32,
                                    k, len(y))
            for k in scales}


def pipeline_table1s(net: TrainedNet, x, y, eps_list, attack: dict, precisions, epochs=None, seed: int = 0) -> dict:
    """Table 1 of every real pipeline: each precision of ``precisions`` at each epoch of ``epochs`` that the store
    keeps, and the last (None: the last only): {``epoch<e>-<precision>``: table with its kind, epoch, precision,
    scale, n}."""
    stored, tables = net.stored(), {}
    for e in sorted({e for e in (epochs or [net.last]) if e in stored} | {net.last}):
        model = net.at(e)
        for p in precisions:
            t = pipeline_table1(model, x, y, eps_list, attack, p, 1.0, seed, name=f"epoch {e} {p.value}")
            tables[f"epoch{e}-{p.value}"] = _table(t, "pipeline", e, p, 1.0, len(y))
    return tables


def strongest(net: TrainedNet, configs: list, x, y, eps_list, budget: dict, attack: dict, seed: int = 0):
    """AutoAttack through the nearest real pipeline of ``configs`` and the paper's PGD in float64, on (x, y) at
    ``eps_list``: {"config", "n", "eps", "rows": [{attack (the role), pipeline, eps, robust, error}], "clean"}; None
    where no real pipeline has a distance."""
    from ..harness.evaluate import evaluate
    nearest = next((c for c in configs if c["kind"] == "pipeline" and c["rms"] is not None), None)
    if nearest is None:
        return None
    model = net.at(nearest["epoch"])
    pgd = attack["label"]
    out = {"config": nearest["config"], "n": len(y), "eps": list(eps_list), "rows": []}
    # a row's key names the role, not the pipeline: which pipeline is nearest can change with another CPU's rounding
    runs = ((f"AutoAttack through the {nearest['protocol']} pipeline", "AutoAttack through the nearest pipeline",
             AtPrecision(model, nearest["protocol"], allowed=PIPELINE_PRECISIONS),
             audit_attacks(budget, attack, ["autoattack"])["autoattack"]),
            (f"{pgd} in float64", f"{pgd} in float64", AtPrecision(model, Precision.FLOAT64), dict(attack)))
    for label, role, pipe, spec in runs:
        res = evaluate(pipe, x, y, list(eps_list), [spec], cascade=False, seed=seed, model_name=label, progress=False)
        out["rows"] += [{"attack": role, "pipeline": label, "eps": r["eps"], "robust": r["robust"],
                         "error": r["error"]} for r in res["rows"]]
        out["clean"] = res["clean"]
    return out


def payload(p: MechanismParams, dataset, net: TrainedNet, sat: dict, cell_list: list, tables: dict, configs: list,
            steps: dict, laps: dict) -> dict:
    """Notebook 09's result file: the parameters that sized it, the training, and each step's output (``steps``:
    {"trend", "paper_schedule", "widths", "strongest"})."""
    attack = p.attack
    return {"dataset": dataset.describe(), "paper": paper_row(dataset.name), "eps": list(p.eps), "model": p.model,
            "n": p.sizes(), "pgd": {"steps": attack["steps"], "alpha": attack["alpha"], "label": attack["label"]},
            "protocols": list(GRADIENTS), "wall_s": dict(laps), "training": net.training(), "map": sat,
            "cells": cell_list, **steps, "configurations": configs,
            "table1": {k: {"clean": t["clean"], "rows": t["rows"], "labels": t["labels"], "pipeline": t["pipeline"]}
                       for k, t in tables.items()}}


def main(argv=None):
    p = argparse.ArgumentParser(description="Train notebook 09's net into the model store (resumable, every epoch "
                                            "kept).")
    p.add_argument("--profile", default="quick")
    p.add_argument("--until", type=int, default=None, help="stop after this many epochs of the schedule")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the profile's THREADS)")
    p.add_argument("--schedule", choices=SCHEDULES, default="main",
                   help="main: SAT_MODEL; paper: SAT_PAPER_MODEL (Table A1's Adam 1e-3, batch 32)")
    a = p.parse_args(argv)
    params, data = profile_and_data(a.profile, a.threads)
    mp = MechanismParams.from_params(params, len(data.test_y))
    entry, until = (mp.model, mp.until) if a.schedule == "main" else (mp.paper_model, mp.paper_until)
    if entry is None:
        p.error(f"profile {a.profile} names no SAT_PAPER_MODEL")
    net = train(entry, data, seed=mp.seed, until=a.until if a.until is not None else until)
    print(f"{net.record['epochs_done']} epochs, clean {net.record['clean_acc']:.4f}, store {net.folder}")


if __name__ == "__main__":
    main()
