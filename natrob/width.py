"""The paper's width (notebook 08): ODE nets of the Table A1 architecture at several widths and training lengths.

Table A1's MNIST net has 128 channels; natrob's profiles train narrower ones on CPUs. This chapter trains the same
architecture (4 conv layers, dopri5, t1 = 100, the profile's tolerance) at every width of ``WIDTH_CHANNELS`` and
keeps every epoch's weights (the training-length axis). A width equal to the profile's ``ODE`` entry is that model
itself (notebook 03's); the others use ``WIDTH_TRAIN``. ``WIDTH_UNTIL`` ({"128": 6}) stops a width after that many
epochs of its schedule where a run's time ran out, and the results say so.

    python -m natrob.width --profile mnist --channels 128 [--until 6]   # train (resumes from the model store)
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from .fingerprint import distance, paper_row, percentages
from .probes import cell_probes
from .profiles import load_profile
from .protocols import protocol_rows, table1, table1_specs
from .strongest import worst_case


def width_entry(params: dict, channels: int) -> dict:
    """The profile model entry ({model, kwargs, train}) of the ODE net at ``channels`` channels."""
    ode = params["ODE"]
    if int(ode["kwargs"]["channels"]) == int(channels):
        return ode
    return {"model": ode["model"], "kwargs": {**ode["kwargs"], "channels": int(channels)},
            "train": dict(params["WIDTH_TRAIN"])}


def until_epoch(params: dict, channels: int):
    """Epochs of the schedule a width is trained for in this profile (None: all of them)."""
    until = (params.get("WIDTH_UNTIL") or {}).get(str(int(channels)))
    return int(until) if until is not None else None


def train_width(params: dict, dataset, channels: int, seed: int = 0, progress: bool = True, until=None):
    """Train (or load, or resume) the ODE net of width ``channels``; returns (model, record, store folder)."""
    from . import paths
    from .train.profile_models import train_config
    from .train import get_model
    from .train.store import store_key
    entry = width_entry(params, channels)
    cfg = train_config(entry)
    until = until if until is not None else until_epoch(params, channels)
    model, record = get_model(entry["model"], dataset, cfg, model_kwargs=entry["kwargs"], seed=seed,
                              progress=progress, keep_epochs=True, until_epoch=until)
    key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
    return model, record, paths.checkpoints_dir() / f"{entry['model']}-{dataset.name}-{key}"


def cell_epochs(want, stored: dict) -> dict:
    """``{epoch: path}`` of a width's stored epochs that its cells read: every one, or those of ``want``
    (``WIDTH_CELL_EPOCHS``) and the last (a subset of the training lengths where every epoch would cost too much
    time, or too much space in the published weights)."""
    if not want:
        return dict(stored)
    keep = {int(e) for e in want if int(e) in stored} | ({max(stored)} if stored else set())
    return {e: p for e, p in stored.items() if e in keep}


def epoch_cells(params: dict, dataset, channels: int, folder, x, y, eps_list, progress: bool = True) -> list:
    """One cell per stored epoch of a width (or per epoch of ``WIDTH_CELL_EPOCHS`` and the last): :func:`cell_probes`
    of that epoch's weights, with the epoch's clean accuracy on all the eval images from the training history."""
    from tqdm.auto import tqdm

    from .models import build_model
    from .train import load_checkpoint, load_into
    from .train.store import epoch_checkpoints
    entry = width_entry(params, channels)
    folder = Path(folder)
    stored = epoch_checkpoints(folder)
    if not stored and (folder / "final.pt").exists():  # trained before epochs were kept: its last epoch only
        history = load_checkpoint(folder / "final.pt").get("history") or []
        stored = {len(history): folder / "final.pt"}
    stored = cell_epochs(params.get("WIDTH_CELL_EPOCHS"), stored)
    cells = []
    for epoch, path in tqdm(stored.items(), desc=f"{channels} ch epochs", disable=not progress):
        model = build_model(entry["model"], dataset, **entry["kwargs"])
        ckpt = load_checkpoint(path)
        load_into(model, ckpt, path).eval()
        history = ckpt.get("history") or []
        cell = {"id": f"{channels}ch-epoch{epoch}", "channels": channels, "epoch": epoch,
                "params": sum(p.numel() for p in model.parameters()),
                "test_acc": history[-1]["test_acc"] if history else None, **cell_probes(model, x, y, eps_list)}
        cells.append(cell)
    return cells


# ------------------------------------------------------------------------------------------- the chapter
def configurations(payload: dict) -> list:
    """Every configuration with a Table 1 (FGSM and/or PGD rows) and its distance to the paper's, nearest
    first: each width's per-epoch cells (FGSM only), each width's final model (FGSM, PGD, noise) and each
    protocol variant on the widest model."""
    paper = payload["paper"]
    out = []
    for c in payload["cells"]:
        rows = {"fgsm": percentages(c["fgsm"])}
        out.append({"config": f"{c['channels']} ch, epoch {c['epoch']}", "channels": c["channels"],
                    "epoch": c["epoch"], "protocol": "correct threat model", "correct": True, **rows,
                    **distance(rows, paper)})
    for ch, t in payload["table1"].items():
        rows = {"fgsm": percentages(t["rows"]["fgsm"]), "pgd": percentages(t["rows"]["pgd"])}
        out.append({"config": f"{ch} ch, epoch {t['epoch']} (Table 1)", "channels": int(ch), "epoch": t["epoch"],
                    "protocol": "correct threat model", "correct": True, **rows, **distance(rows, paper)})
    wide = payload.get("protocols") or {}
    for proto, r in (wide.get("variants") or {}).items():
        rows = {"fgsm": percentages(r["fgsm"]), "pgd": percentages(r["pgd"])}
        note = (f"could not be evaluated ({r['not_evaluable']}): every point counted as not robust"
                if r.get("not_evaluable") else "; ".join(r.get("errors") or []) or None)
        out.append({"config": f"{wide['channels']} ch, epoch {wide['epoch']}, {proto}", "channels": wide["channels"],
                    "epoch": wide["epoch"], "protocol": f"NOT the correct threat model: {r['label']}",
                    "correct": False, "note": note, **rows, **distance(rows, paper)})
    return sorted(out, key=lambda c: (c["rms"] is None, -c["numbers"], c["rms"] if c["rms"] is not None else 0))


def build_payload(params: dict, dataset, x, y, progress: bool = True) -> dict:
    """Everything notebook 08 reports, from the model store (training what is missing, up to ``WIDTH_UNTIL``):
    per-width training records, per-epoch cells, Table 1 of each width's last model, the audit's worst case
    and the protocol variants on the widest one, and the configurations nearest the paper's Table 1 (the
    sentences about them: :func:`natrob.chapters.ch08_width.findings`)."""
    import time

    from .reference import paper_attack
    seed, eps_list = params["SEED"], [float(e) for e in params["EPS_TABLE1"]]
    attack = paper_attack(params.get("PGD_STEPS"), params.get("PGD_ALPHA"))
    early = bool(params.get("WIDTH_PGD_EARLY_STOP", False))
    payload = {"dataset": dataset.describe(), "paper": paper_row(dataset.name), "eps": eps_list,
               "pgd": {"steps": attack["steps"], "alpha": attack["alpha"], "label": attack["label"],
                       "early_stop": early}, "widths": [], "cells": [], "table1": {}, "wall_s": {}}
    clock = time.time()

    def lap(what):
        nonlocal clock
        payload["wall_s"][what] = payload["wall_s"].get(what, 0.0) + time.time() - clock
        clock = time.time()
    models = {}
    for ch in params["WIDTH_CHANNELS"]:
        model, record, folder = train_width(params, dataset, ch, seed=seed, progress=progress)
        lap("training")
        entry = width_entry(params, ch)
        payload["widths"].append({
            "channels": int(ch), "params": sum(p.numel() for p in model.parameters()), "train": entry["train"],
            "epochs_scheduled": int(entry["train"]["epochs"]), "epochs_done": len(record["history"]),
            "history": [{k: h.get(k) for k in ("epoch", "test_acc", "train_acc", "loss", "nfe_forward_mean",
                                                "wall_s", "precision_used")} for h in record["history"]]})
        payload["cells"] += epoch_cells(params, dataset, ch, folder, x, y, eps_list, progress)
        lap("cells")
        t = table1(model, x, y, eps_list, attack, early, seed, name=f"ODE {ch} ch")
        payload["table1"][str(int(ch))] = {"epoch": len(record["history"]), "clean": t["clean"], "rows": t["rows"],
                                           "labels": t["labels"]}
        lap("table1")
        models[int(ch)] = (model, len(record["history"]))
    widest = max(models)
    model, epoch = models[widest]
    n_audit = int(params.get("WIDTH_AUDIT_N") or params["AUDIT_N"])
    payload["worst_case"] = {"channels": widest, "epoch": epoch, "eps": params["WIDTH_AUDIT_EPS"],
                             **worst_case(model, x[:n_audit], y[:n_audit], params["WIDTH_AUDIT_EPS"],
                                          params["AUDIT_BUDGET"], attack, seed, name=f"ODE {widest} ch")}
    lap("worst_case")
    n_proto = int(params.get("WIDTH_PROTOCOL_N") or len(y))
    base = {"clean": payload["table1"][str(widest)]["clean"], "rows": payload["table1"][str(widest)]["rows"]}
    pgd = table1_specs(attack, early)[1]  # the protocols' PGD is Table 1's, early stop included
    variants = protocol_rows(model, x[:n_proto], y[:n_proto], eps_list, params["WIDTH_PROTOCOL_PGD_EPS"],
                             pgd, float(params["GRID_CROSS"][0][0]), seed,
                             base=base, progress=progress, protocols=params.get("WIDTH_PROTOCOLS"))
    lap("protocols")
    payload["protocols"] = {"channels": widest, "epoch": epoch, "n": n_proto, "variants": variants}
    payload["configurations"] = configurations(payload)
    return payload


def main(argv=None):
    p = argparse.ArgumentParser(description="Train one width of notebook 08 into the model store (resumable).")
    p.add_argument("--profile", default="quick")
    p.add_argument("--channels", type=int, required=True)
    p.add_argument("--until", type=int, default=None, help="stop after this many epochs of the schedule")
    p.add_argument("--threads", type=int, default=None,
                   help="CPU threads (default: the profile's THREADS); 1 lets two widths train side by side")
    a = p.parse_args(argv)
    from . import paths
    from .data import load_profile_dataset
    params = load_profile(a.profile)
    torch.set_num_threads(int(a.threads or params.get("THREADS") or 2))
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    _, record, folder = train_width(params, data, a.channels, seed=params["SEED"], until=a.until)
    print(f"{a.channels} channels: {record['epochs_done']} epochs, clean {record['clean_acc']:.4f}, store {folder}")


if __name__ == "__main__":
    main()
