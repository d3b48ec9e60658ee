"""Why the paper's attack saw no gradient (notebook 09): training length x evaluation precision, measured.

Runs, on one ODE net of the profile (``SAT_MODEL``; null: the profile's ``ODE`` entry) and every stored epoch of
its training (up to ``SAT_UNTIL``):

1. a cell per epoch (:func:`natrob.pipelines.epoch_cell`): summed learning rate, clean accuracy, margin
   percentiles, exactly-zero input gradients per protocol, FGSM under float32 and AMP, FGSM's agreement with PGD;
2. the median margin against the summed learning rate, extrapolated to the paper's (:func:`margin_trend`);
3. the saturation map of the last epoch's net (:func:`natrob.saturation.saturation_map`), and Table 1 under the
   paper's float32 attack (on the first ``SAT_SCALED_N`` points; null: ``SAT_TABLE1_N``, as every other Table 1
   here) with its logits multiplied by each K of ``SAT_TABLE1_SCALES`` (a model of longer
   training: labelled as such, never ranked with real pipelines);
4. Table 1 of every real pipeline (``SAT_PIPELINES`` x ``SAT_PIPELINE_EPOCHS``), ranked by RMS distance to the
   paper's eight MNIST Neural ODE numbers, and the strongest evaluation (AutoAttack; float64 PGD) of the nearest.

    python -m natrob.mechanism --profile mnist [--until 4] [--threads 1] [--schedule paper]   # train (resumes)

With ``SAT_PAPER_MODEL`` (the paper's own schedule, Table A1) the cells of step 1 are also measured on every stored
epoch of that training (up to ``SAT_PAPER_UNTIL``), so margin per summed learning rate can be compared across the two
schedules. With ``WIDTH_CHANNELS`` (notebook 08's widths) the margins of every epoch of those nets already in the
model store (:func:`width_margins`; nothing is trained for it) say whether margin per summed learning rate carries
over across widths.
"""
from __future__ import annotations

import argparse
import time

import torch

from .pipelines import Pipeline, epoch_cell, margin_trend, pipeline_table1, sum_lr
from .saturation import Protocol, clean_margins, margin_percentiles, saturation_map, threshold
from .fingerprint import distance, paper_row, percentages
from .strongest import audit_attacks


SCHEDULES = ("main", "paper")  # SAT_MODEL (a schedule that reaches the paper's summed rate) and SAT_PAPER_MODEL


def sat_entry(params: dict, schedule: str = "main") -> dict | None:
    """The profile model entry ({model, kwargs, train}) notebook 09 measures: ``main`` is ``SAT_MODEL`` (null: the
    profile's ``ODE`` entry); ``paper`` is ``SAT_PAPER_MODEL`` (Table A1's own schedule, Adam 1e-3, batch 32,
    halved at epoch 50; None where the profile names none)."""
    if schedule == "paper":
        return params.get("SAT_PAPER_MODEL")
    return params.get("SAT_MODEL") or params["ODE"]


def train_sat_model(params: dict, dataset, seed: int = 0, progress: bool = True, until=None, schedule="main"):
    """Train (or load, or resume) a schedule's net keeping every epoch, up to ``until`` (default the profile's
    ``SAT_UNTIL`` / ``SAT_PAPER_UNTIL``); returns (model, record, store folder)."""
    from . import paths
    from .train.profile_models import train_config
    from .train import get_model
    from .train.store import store_key
    entry = sat_entry(params, schedule)
    cfg = train_config(entry)
    until = until if until is not None else params.get("SAT_UNTIL" if schedule == "main" else "SAT_PAPER_UNTIL")
    model, record = get_model(entry["model"], dataset, cfg, model_kwargs=entry["kwargs"], seed=seed,
                              progress=progress, keep_epochs=True, until_epoch=int(until) if until else None)
    key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
    return model, record, paths.checkpoints_dir() / f"{entry['model']}-{dataset.name}-{key}"


def _epochs(params: dict, stored: list, last: int) -> list:
    wanted = params.get("SAT_CELL_EPOCHS")
    chosen = stored if wanted is None else [e for e in stored if e in set(int(w) for w in wanted)]
    return sorted(set(chosen) | {last})


def _model_at(model, folder, epoch: int, last: int):
    """The net's weights after ``epoch`` (the last epoch is ``model`` itself)."""
    import copy

    from .train.checkpoint import load_checkpoint, load_into
    from .train.store import epoch_checkpoints
    if epoch == last:
        return model
    path = epoch_checkpoints(folder)[epoch]
    return load_into(copy.deepcopy(model), load_checkpoint(path), path).eval()


def _config(label, kind, rows, paper, epoch, sum_lr_at, note=None, protocol=None) -> dict:
    pct = {"fgsm": percentages(rows["fgsm"]), "pgd": percentages(rows["pgd"]), "noise": percentages(rows["noise"])}
    return {"config": label, "kind": kind, "epoch": epoch, "sum_lr": sum_lr_at, "note": note, "protocol": protocol,
            **pct, **distance(pct, paper)}


def assembled_row(table: dict, paper: dict) -> dict:
    """The assembled reference row (FGSM = the clean count, PGD = the random start alone): what an attack that
    receives no usable gradient would report. Not a pipeline anyone ran; labelled so."""
    clean = table["clean"]
    fgsm = [{"eps": r["eps"], "robust": clean} for r in table["rows"]["noise"]]
    rows = {"fgsm": fgsm, "pgd": table["rows"]["noise"], "noise": table["rows"]["noise"]}
    return _config("no usable gradient (assembled reference, not a pipeline)", "assembled", rows, paper, None, None)


def build_payload(params: dict, dataset, x, y, progress: bool = True) -> dict:
    """Everything notebook 09 reports (see the module doc)."""
    from .reference import paper_attack
    from .train.store import epoch_checkpoints
    seed, eps_list = params["SEED"], [float(e) for e in params["EPS_TABLE1"]]
    attack = paper_attack(params.get("PGD_STEPS"), params.get("PGD_ALPHA"))
    paper = paper_row(dataset.name)
    entry = sat_entry(params)
    payload = {"dataset": dataset.describe(), "paper": paper, "eps": eps_list, "model": entry,
               "n": {"cells": int(params.get("SAT_CELL_N") or len(y)), "map": int(params.get("SAT_MAP_N") or len(y)),
                     "table1": int(params.get("SAT_TABLE1_N") or len(y)),
                     "scaled": int(params.get("SAT_SCALED_N") or params.get("SAT_TABLE1_N") or len(y)),
                     "strongest": int(params.get("SAT_STRONG_N") or 40)},
               "pgd": {"steps": attack["steps"], "alpha": attack["alpha"], "label": attack["label"]},
               "protocols": [p.value for p in Protocol], "wall_s": {}}
    clock = [time.time()]

    def lap(what):
        payload["wall_s"][what] = payload["wall_s"].get(what, 0.0) + time.time() - clock[0]
        clock[0] = time.time()
    model, record, folder = train_sat_model(params, dataset, seed, progress)
    lap("training")
    history = record["history"]
    last = len(history)
    cfg = entry["train"]
    sums = sum_lr(history, len(dataset.train_y), int(cfg.get("batch_size", 128)))
    payload["training"] = {"epochs_scheduled": int(cfg["epochs"]), "epochs_done": last, "train": cfg,
                           "history": [{k: h.get(k) for k in ("epoch", "lr", "test_acc", "train_acc", "loss",
                                                               "nfe_forward_mean", "wall_s")} for h in history],
                           "sum_lr": sums}
    stored = sorted(set(epoch_checkpoints(folder)) | {last})
    # the last net's gradients, kept across the map and the cells: the map's K = 1 is that epoch's cell's
    memo = {}
    n_map = int(params.get("SAT_MAP_N") or len(y))
    sat = saturation_map(model, x[:n_map], y[:n_map], scales=params["SAT_SCALES"], eps_list=[0.3],
                         progress=progress, memo=memo)
    sat["thresholds"] = {p: {"alone": threshold(sat["rows"], p), "batched": threshold(sat["rows"], p, "zero_batched")}
                         for p in sat["protocols"]}
    payload["map"] = sat
    lap("map")
    n_cell = int(params.get("SAT_CELL_N") or len(y))
    cells = []
    for e in _epochs(params, stored, last):
        net = _model_at(model, folder, e, last)
        cell = epoch_cell(net, x[:n_cell], y[:n_cell], eps_list, attack, cos_n=int(params.get("SAT_COS_N", 20)),
                          seed=seed, memo=memo if net is model else None)
        cells.append({"id": f"epoch-{e}", "epoch": e, "sum_lr": sums[e - 1], "test_acc": history[e - 1]["test_acc"], **cell})
    payload["cells"] = cells
    memo.clear()  # the map's gradients at every K: nothing later reads them
    lap("cells")
    payload["trend"] = margin_trend([c["sum_lr"] for c in cells], [c["margins"]["p50"] for c in cells]) \
        if all(c["margins"]["p50"] is not None for c in cells) else None
    payload["paper_schedule"] = _paper_schedule(params, dataset, x[:n_cell], y[:n_cell], eps_list, attack, seed,
                                                progress)
    lap("paper_schedule")
    payload["widths"] = width_margins(params, dataset, x[:n_cell], y[:n_cell], seed, progress)
    lap("widths")
    configs, tables = [], {}
    n_t1 = int(params.get("SAT_TABLE1_N") or len(y))
    xt, yt = x[:n_t1], y[:n_t1]
    n_sc = payload["n"]["scaled"]
    for k in params.get("SAT_TABLE1_SCALES") or []:
        t = pipeline_table1(model, x[:n_sc], y[:n_sc], eps_list, attack, Protocol.FLOAT32, float(k), seed,
                            name=f"logits x {k:g}")
        tables[f"scaled-{float(k):g}"] = t
        on = f", {n_sc} points" if n_sc != n_t1 else ""
        configs.append(_config(f"epoch {last}, float32, logits x {float(k):g}{on} (a model of longer training)",
                               "scaled", t["rows"], paper, last, sums[-1]))
    lap("table1_scaled")
    pipe_epochs = sorted({e for e in (params.get("SAT_PIPELINE_EPOCHS") or [last]) if e in stored} | {last})
    for e in pipe_epochs:
        net = _model_at(model, folder, e, last)
        for proto in params.get("SAT_PIPELINES") or ["float32"]:
            t = pipeline_table1(net, xt, yt, eps_list, attack, proto, 1.0, seed, name=f"epoch {e} {proto}")
            tables[f"epoch{e}-{proto}"] = t
            configs.append(_config(f"epoch {e} (sum lr {sums[e - 1]:.1f}), {proto}", "pipeline", t["rows"], paper, e,
                                   sums[e - 1], note=t["pipeline"], protocol=str(Protocol(proto).value)))
    lap("pipelines")
    base = tables.get(f"epoch{last}-float32")
    if base is not None:
        configs.append(assembled_row(base, paper))
    configs.sort(key=lambda c: (c["rms"] is None, c["rms"] if c["rms"] is not None else 0))
    payload["table1"] = {k: {"clean": t["clean"], "rows": t["rows"], "labels": t["labels"], "pipeline": t["pipeline"]}
                         for k, t in tables.items()}
    payload["configurations"] = configs
    payload["strongest"] = _strongest(params, model, folder, last, configs, x, y, attack, seed)
    lap("strongest")
    return payload


def _paper_schedule(params, dataset, x, y, eps_list, attack, seed, progress) -> dict | None:
    """The same cells for the paper's own schedule (``SAT_PAPER_MODEL``, every stored epoch up to
    ``SAT_PAPER_UNTIL``): does the margin grow with the summed learning rate as under the main schedule?"""
    entry = sat_entry(params, "paper")
    if not entry:
        return None
    from .train.store import epoch_checkpoints
    model, record, folder = train_sat_model(params, dataset, seed, progress, schedule="paper")
    history, cfg = record["history"], entry["train"]
    last = len(history)
    sums = sum_lr(history, len(dataset.train_y), int(cfg.get("batch_size", 128)))
    cells = []
    for e in sorted(set(epoch_checkpoints(folder)) | {last}):
        cell = epoch_cell(_model_at(model, folder, e, last), x, y, eps_list, attack,
                          cos_n=int(params.get("SAT_COS_N", 20)), seed=seed)
        cells.append({"id": f"paper-epoch-{e}", "epoch": e, "sum_lr": sums[e - 1],
                      "test_acc": history[e - 1]["test_acc"], **cell})
    return {"model": entry, "epochs_scheduled": int(cfg["epochs"]), "epochs_done": last, "sum_lr": sums,
            "history": [{k: h.get(k) for k in ("epoch", "lr", "test_acc", "loss", "wall_s")} for h in history],
            "cells": cells}


def width_margins(params: dict, dataset, x, y, seed: int = 0, progress: bool = True) -> list:
    """Margin per summed learning rate across widths: for every width of notebook 08 (``WIDTH_CHANNELS``; none:
    []), every epoch of its net already in the model store (nothing is trained here, so a width not yet trained is
    absent; the width that is this chapter's own net is left out, its epochs being the cells): {"channels", "epoch",
    "sum_lr", "lr", "test_acc" (on all the test images, from the training history), "margins" (percentiles of the
    finite margins, each point solved alone in float32; the cells take float64 margins of the points the float32
    net classifies correctly, which differ only at margins near 0)}. x: (n, C, H, W) in [0, 1]; y: (n,) int64.

    Float32 here because a margin (a difference of logits) needs no float64, only the exact zero of its gradient
    does: on the quick profile's 16- and 128-channel nets the float32 margins agree with the float64 ones to 1e-5
    relative, none changes sign, and they cost a seventh at 128 channels (0.65 against 4.55 s per epoch)."""
    from tqdm.auto import tqdm

    from . import paths
    from .models import build_model
    from .train.checkpoint import load_checkpoint, load_into
    from .train.profile_models import train_config
    from .train.store import epoch_checkpoints, store_key
    from .width import cell_epochs, width_entry
    out = []
    for ch in params.get("WIDTH_CHANNELS") or []:
        entry = width_entry(params, ch)
        if entry == sat_entry(params):  # this chapter's own net: its epochs are the cells
            continue
        cfg = train_config(entry)
        key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
        folder = paths.checkpoints_dir() / f"{entry['model']}-{dataset.name}-{key}"
        stored = epoch_checkpoints(folder) if folder.is_dir() else {}
        if not stored and (folder / "final.pt").exists():  # trained before epochs were kept: its last epoch only
            stored = {len(load_checkpoint(folder / "final.pt").get("history") or []): folder / "final.pt"}
        stored = cell_epochs(params, stored)  # the epochs notebook 08's cells read
        for epoch, path in tqdm(sorted(stored.items()), desc=f"{ch} ch margins", disable=not progress):
            ckpt = load_checkpoint(path)
            net = load_into(build_model(entry["model"], dataset, **entry["kwargs"]), ckpt, path).eval()
            history = (ckpt.get("history") or [])[:epoch]
            if epoch < 1 or len(history) < epoch:  # a checkpoint without its schedule's history has no summed rate
                continue
            m = clean_margins(net, x, y, Protocol.FLOAT32)
            sums = sum_lr(history, len(dataset.train_y), int(entry["train"].get("batch_size", 128)))
            out.append({"channels": int(ch), "epoch": int(epoch), "sum_lr": sums[-1], "lr": float(history[-1]["lr"]),
                        "test_acc": history[-1].get("test_acc"),
                        "margins": margin_percentiles(m[torch.isfinite(m)])})
    return out


def _strongest(params, model, folder, last, configs, x, y, attack, seed):
    """AutoAttack through the nearest real pipeline and the paper's PGD in float64, on ``SAT_STRONG_N`` points."""
    from .evaluate import evaluate
    nearest = next((c for c in configs if c["kind"] == "pipeline" and c["rms"] is not None), None)
    if nearest is None:
        return None
    proto = nearest["protocol"]
    n = int(params.get("SAT_STRONG_N") or 40)
    eps = [float(e) for e in params.get("SAT_STRONG_EPS") or [0.3]]
    net = _model_at(model, folder, nearest["epoch"], last)
    aa = audit_attacks(params["AUDIT_BUDGET"], attack, ["autoattack"])["autoattack"]
    out = {"config": nearest["config"], "n": n, "eps": eps, "rows": []}
    # a row's key names the role, not the pipeline: which pipeline is nearest can change with another CPU's rounding
    for label, role, pipe, spec in (
            (f"AutoAttack through the {proto} pipeline", "AutoAttack through the nearest pipeline", Pipeline(net, proto),
             aa),
            (f"{attack['label']} in float64", f"{attack['label']} in float64", Pipeline(net, Protocol.FLOAT64),
             dict(attack))):
        res = evaluate(pipe, x[:n], y[:n], eps, [spec], cascade=False, seed=seed, model_name=label, progress=False)
        for r in res["rows"]:
            out["rows"].append({"attack": role, "pipeline": label, "eps": r["eps"], "robust": r["robust"],
                                "error": r["error"]})
        out["clean"] = res["clean"]
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description="Train notebook 09's net into the model store (resumable, every epoch kept).")
    p.add_argument("--profile", default="quick")
    p.add_argument("--until", type=int, default=None, help="stop after this many epochs of the schedule")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: the profile's THREADS)")
    p.add_argument("--schedule", choices=SCHEDULES, default="main",
                   help="main: SAT_MODEL; paper: SAT_PAPER_MODEL (Table A1's Adam 1e-3, batch 32)")
    a = p.parse_args(argv)
    from . import paths
    from .data import load_profile_dataset
    from .profiles import load_profile
    params = load_profile(a.profile)
    torch.set_num_threads(int(a.threads or params.get("THREADS") or 2))
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    if sat_entry(params, a.schedule) is None:
        p.error(f"profile {a.profile} names no SAT_PAPER_MODEL")
    _, record, folder = train_sat_model(params, data, seed=params["SEED"], until=a.until, schedule=a.schedule)
    print(f"{record['epochs_done']} epochs, clean {record['clean_acc']:.4f}, store {folder}")


if __name__ == "__main__":
    main()
