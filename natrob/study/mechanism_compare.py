"""Notebook 09's comparisons: each Table 1 beside the paper's (:func:`configurations`), and the median margin per
summed learning rate across notebook 08's widths (:func:`width_margins`).
"""
from __future__ import annotations

import torch

from .fingerprint import distance, percentages
from .pipelines import sum_lr
from ..harness.precision import Precision
from .saturation import clean_margins, margin_percentiles

ASSEMBLED = "no usable gradient (assembled reference, not a pipeline)"


def _config(label, kind, rows, paper, epoch, sum_lr_at, note=None, precision=None, scale=None) -> dict:
    pct = {"fgsm": percentages(rows["fgsm"]), "pgd": percentages(rows["pgd"]), "noise": percentages(rows["noise"])}
    # "protocol": the result files' name for the pipeline's precision (kept: verify compares the files' keys)
    return {"config": label, "kind": kind, "epoch": epoch, "sum_lr": sum_lr_at, "note": note, "protocol": precision,
            "scale": scale, **pct, **distance(pct, paper)}


def assembled_row(table: dict, paper: dict) -> dict:
    """The assembled reference row (FGSM = the clean count, PGD = the random start alone): what an attack that
    receives no usable gradient would report. Not a pipeline anyone ran; labelled so."""
    noise = table["rows"]["noise"]
    rows = {"fgsm": [{"eps": r["eps"], "robust": table["clean"]} for r in noise], "pgd": noise, "noise": noise}
    return _config(ASSEMBLED, "assembled", rows, paper, None, None)


def configurations(tables: dict, sums: list, paper: dict, table1_n: int) -> list:
    """Every Table 1 of :func:`natrob.study.mechanism.scaled_table1s` and
    :func:`natrob.study.mechanism.pipeline_table1s` (``tables``, in that order), and the assembled reference built
    from the last epoch's float32 pipeline, as percentages with their RMS distance to the paper's, nearest first (no
    distance: last). ``sums``: summed learning rate after each epoch; ``table1_n``: the pipelines' points (a scaled
    table on others says so)."""
    out = []
    for t in tables.values():
        e, k = t["epoch"], t["scale"]
        if t["kind"] == "scaled":
            on = f", {t['n']} points" if t["n"] != table1_n else ""
            out.append(_config(f"epoch {e}, float32, logits x {k:g}{on} (a model of longer training)", "scaled",
                               t["rows"], paper, e, sums[e - 1], scale=k))
        else:
            p = t["precision"].value
            out.append(_config(f"epoch {e} (sum lr {sums[e - 1]:.1f}), {p}", "pipeline", t["rows"], paper, e,
                               sums[e - 1], note=t["pipeline"], precision=p, scale=k))
    base = next((t for t in tables.values() if t["kind"] == "pipeline" and t["epoch"] == len(sums)
                 and t["precision"] is Precision.FLOAT32), None)
    if base is not None:
        out.append(assembled_row(base, paper))
    return sorted(out, key=lambda c: (c["rms"] is None, c["rms"] if c["rms"] is not None else 0))


def _stored_epochs(folder, cell_epochs) -> dict:
    """{epoch: checkpoint} of a width's net in the model store that notebook 08's cells read."""
    from ..train.checkpoint import load_checkpoint
    from ..train.store import epoch_checkpoints
    from .width import cell_epochs_of
    stored = epoch_checkpoints(folder) if folder.is_dir() else {}
    if not stored and (folder / "final.pt").exists():  # trained before epochs were kept: its last epoch only
        stored = {len(load_checkpoint(folder / "final.pt").get("history") or []): folder / "final.pt"}
    return cell_epochs_of(cell_epochs, stored)


def width_margins(widths, own: dict, dataset, x, y, cell_epochs=None, seed: int = 0, progress: bool = True) -> list:
    """Margin per summed learning rate across widths: for every (channels, model entry) of ``widths`` (notebook
    08's), every epoch of its net already in the model store that notebook 08's cells read (``cell_epochs`` and the
    last; nothing is trained here, so a width not yet trained is absent; ``own``, this chapter's net, is left out,
    its epochs being the cells): {"channels", "epoch", "sum_lr", "lr", "test_acc" (on all the test images, from
    the training history), "margins" (percentiles of the finite margins, each point solved alone in float32; the
    cells take float64 margins of the points the float32 net classifies correctly, which differ only at margins
    near 0)}. x: (n, C, H, W) in [0, 1]; y: (n,) int64.

    Float32 here because a margin (a difference of logits) needs no float64, only the exact zero of its gradient
    does: on the quick profile's 16- and 128-channel nets the float32 margins agree with the float64 ones to 1e-5
    relative, none changes sign, and they cost a seventh at 128 channels (0.65 against 4.55 s per epoch)."""
    from tqdm.auto import tqdm

    from ..models import build_model
    from ..train.checkpoint import load_checkpoint, load_into
    from .profile_models import train_config
    from ..train.store import entry_folder, store_key
    out = []
    for ch, entry in widths:
        if entry == own:
            continue
        key = store_key(entry["model"], entry["kwargs"], dataset, train_config(entry), seed)
        stored = _stored_epochs(entry_folder(entry["model"], dataset.name, key), cell_epochs)
        for epoch, path in tqdm(sorted(stored.items()), desc=f"{ch} ch margins", disable=not progress):
            ckpt = load_checkpoint(path)
            net = load_into(build_model(entry["model"], dataset, **entry["kwargs"]), ckpt, path).eval()
            history = (ckpt.get("history") or [])[:epoch]
            if epoch < 1 or len(history) < epoch:  # a checkpoint without its schedule's history has no summed rate
                continue
            m = clean_margins(net, x, y, Precision.FLOAT32)
            sums = sum_lr(history, len(dataset.train_y), int(entry["train"].get("batch_size", 128)))
            out.append({"channels": int(ch), "epoch": int(epoch), "sum_lr": sums[-1], "lr": float(history[-1]["lr"]),
                        "test_acc": history[-1].get("test_acc"),
                        "margins": margin_percentiles(m[torch.isfinite(m)])})
    return out
