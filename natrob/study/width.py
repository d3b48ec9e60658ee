"""The paper's width (notebook 08): ODE nets of the Table A1 architecture at several widths and training lengths.

Table A1's MNIST net has 128 channels; natrob's profiles train narrower ones on CPUs. This chapter trains the same
architecture (4 conv layers, dopri5, t1 = 100, the profile's tolerance) at every width of ``WIDTH_CHANNELS`` and
keeps every epoch's weights (the training-length axis). A width equal to the profile's ``ODE`` entry is that model
itself (notebook 03's); the others use ``WIDTH_TRAIN``. ``WIDTH_UNTIL`` ({"128": 6}) stops a width after that many
epochs of its schedule where a run's time ran out, and the results say so.

    python -m natrob.study.width --profile mnist --channels 128 [--until 6]   # train (resumes from the model store)
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from .fingerprint import distance, paper_row, percentages
from .param_checks import epochs as _epochs, size as _size
from .probes import cell_probes
from .protocols import protocol_rows, table1, table1_specs
from ..audit.strongest import worst_case


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


def cell_epochs_of(want, stored: dict) -> dict:
    """``{epoch: path}`` of a width's stored epochs that its cells read: every one, or those of ``want``
    (``WIDTH_CELL_EPOCHS``) and the last (a subset of the training lengths where every epoch would cost too much
    time, or too much space in the published weights)."""
    if not want:
        return dict(stored)
    keep = {int(e) for e in want if int(e) in stored} | ({max(stored)} if stored else set())
    return {e: p for e, p in stored.items() if e in keep}


def epoch_cells(entry: dict, cell_epochs, dataset, channels: int, folder, x, y, eps_list,
                progress: bool = True) -> list:
    """One cell per stored epoch of a width's net (profile model ``entry``; or per epoch of ``cell_epochs`` and the
    last): :func:`cell_probes` of that epoch's weights, with the epoch's clean accuracy on all the eval images from
    the training history. x: (n, C, H, W) in [0, 1]; y: (n,) int64."""
    from tqdm.auto import tqdm

    from ..models import build_model
    from ..train import load_checkpoint, load_into
    from ..train.store import epoch_checkpoints
    folder = Path(folder)
    stored = epoch_checkpoints(folder)
    if not stored and (folder / "final.pt").exists():  # trained before epochs were kept: its last epoch only
        history = load_checkpoint(folder / "final.pt").get("history") or []
        stored = {len(history): folder / "final.pt"}
    out = []
    for epoch, path in tqdm(cell_epochs_of(cell_epochs, stored).items(), desc=f"{channels} ch epochs",
                            disable=not progress):
        model = build_model(entry["model"], dataset, **entry["kwargs"])
        ckpt = load_checkpoint(path)
        load_into(model, ckpt, path).eval()
        history = ckpt.get("history") or []
        out.append({"id": f"{channels}ch-epoch{epoch}", "channels": channels, "epoch": epoch,
                    "params": sum(q.numel() for q in model.parameters()),
                    "test_acc": history[-1]["test_acc"] if history else None, **cell_probes(model, x, y, eps_list)})
    return out


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


@dataclass(frozen=True)
class WidthParams:
    """Notebook 08's parameters, typed and resolved once. Sizes are numbers of eval points (the first ones); radii
    are L-inf in pixel units of [0, 1] images."""
    seed: int                    # SEED
    eps: tuple                   # EPS_TABLE1
    pgd_steps: int | None        # PGD_STEPS (None: the paper's 40)
    pgd_alpha: float | None      # PGD_ALPHA (None: the paper's 0.01)
    early_stop: bool             # WIDTH_PGD_EARLY_STOP
    audit_budget: dict           # AUDIT_BUDGET
    audit_n: int                 # WIDTH_AUDIT_N, null: AUDIT_N
    audit_eps: tuple             # WIDTH_AUDIT_EPS
    channels: tuple              # WIDTH_CHANNELS
    entries: dict                # {channels: profile model entry}: ODE where its width matches, else WIDTH_TRAIN's
    until: dict                  # WIDTH_UNTIL as {channels: epochs}
    cell_epochs: tuple | None    # WIDTH_CELL_EPOCHS
    protocol_n: int              # WIDTH_PROTOCOL_N, null: every eval point
    protocol_pgd_eps: tuple      # WIDTH_PROTOCOL_PGD_EPS
    protocols: tuple | None      # WIDTH_PROTOCOLS (None: every measured variant)
    cross_tol: float             # GRID_CROSS[0][0]: the cross-solver variant's crafting tolerance

    @classmethod
    def from_params(cls, params: dict, n_eval: int) -> "WidthParams":
        """From the parameters cell's values; raises ConfigError naming the parameter, its value and what is
        allowed."""
        from .protocols import MEASURED
        g = params.get
        channels = tuple(int(c) for c in params["WIDTH_CHANNELS"])
        if not channels or any(c < 1 for c in channels):
            raise ConfigError("WIDTH_CHANNELS", params["WIDTH_CHANNELS"], "one or more positive channel counts")
        protocols = g("WIDTH_PROTOCOLS")
        unknown = [q for q in protocols or () if q not in MEASURED]
        if unknown:
            raise ConfigError("WIDTH_PROTOCOLS", unknown, "some of " + ", ".join(MEASURED))
        return cls(seed=int(g("SEED", 0)), eps=tuple(float(e) for e in params["EPS_TABLE1"]),
                   pgd_steps=g("PGD_STEPS"), pgd_alpha=g("PGD_ALPHA"),
                   early_stop=bool(g("WIDTH_PGD_EARLY_STOP", False)),
                   audit_budget=dict(params["AUDIT_BUDGET"]),
                   audit_n=_size("WIDTH_AUDIT_N", g("WIDTH_AUDIT_N"), g("AUDIT_N") or n_eval),
                   audit_eps=tuple(float(e) for e in params["WIDTH_AUDIT_EPS"]), channels=channels,
                   entries={c: width_entry(params, c) for c in channels},
                   until={c: until_epoch(params, c) for c in channels},
                   cell_epochs=_epochs("WIDTH_CELL_EPOCHS", g("WIDTH_CELL_EPOCHS") or None),
                   protocol_n=_size("WIDTH_PROTOCOL_N", g("WIDTH_PROTOCOL_N"), n_eval),
                   protocol_pgd_eps=tuple(float(e) for e in g("WIDTH_PROTOCOL_PGD_EPS") or ()),
                   protocols=tuple(protocols) if protocols else None, cross_tol=float(params["GRID_CROSS"][0][0]))

    @property
    def attack(self) -> dict:
        """The paper's PGD as this profile runs it (:func:`natrob.reference.paper_attack`)."""
        from ..reference import paper_attack
        return paper_attack(self.pgd_steps, self.pgd_alpha)


def train(p: WidthParams, dataset, channels: int, progress: bool = True):
    """Train (or load, or resume) the net of one width up to its ``WIDTH_UNTIL``: a
    :class:`natrob.study.trained.TrainedNet`."""
    from .trained import train as train_net
    return train_net(p.entries[channels], dataset, p.seed, p.until[channels], progress)


def describe(net, channels: int) -> dict:
    """The result file's record of one width: channels, parameters, schedule, epochs done and the history."""
    keys = ("epoch", "test_acc", "train_acc", "loss", "nfe_forward_mean", "wall_s", "precision_used")
    train_cfg = net.entry["train"]
    return {"channels": int(channels), "params": sum(q.numel() for q in net.model.parameters()), "train": train_cfg,
            "epochs_scheduled": int(train_cfg["epochs"]), "epochs_done": net.last,
            "history": [{k: h.get(k) for k in keys} for h in net.history]}


def cells(p: WidthParams, dataset, channels: int, net, x, y, progress: bool = True) -> list:
    """The cells of one width's stored epochs (:func:`epoch_cells`)."""
    return epoch_cells(p.entries[channels], p.cell_epochs, dataset, channels, net.folder, x, y, p.eps, progress)


def table1_of(p: WidthParams, net, channels: int, x, y) -> dict:
    """Table 1 of one width's last model through the harness: {"epoch", "clean", "rows", "labels"}."""
    t = table1(net.model, x, y, p.eps, p.attack, p.early_stop, p.seed, name=f"ODE {channels} ch")
    return {"epoch": net.last, "clean": t["clean"], "rows": t["rows"], "labels": t["labels"]}


def worst_case_of(p: WidthParams, net, channels: int, x, y) -> dict:
    """The audit's worst case (:func:`natrob.audit.strongest.worst_case`) of one net at ``WIDTH_AUDIT_EPS``."""
    return {"channels": channels, "epoch": net.last, "eps": list(p.audit_eps),
            **worst_case(net.model, x, y, list(p.audit_eps), p.audit_budget, p.attack, p.seed,
                         name=f"ODE {channels} ch")}


def protocol_variants(p: WidthParams, net, channels: int, table: dict, x, y, progress: bool = True) -> dict:
    """Table 1 under each protocol variant that is NOT the correct threat model (:func:`protocol_rows`), the
    no-usable-gradient rows from the width's own ``table``."""
    pgd = table1_specs(p.attack, p.early_stop)[1]  # the protocols' PGD is Table 1's, early stop included
    variants = protocol_rows(net.model, x, y, p.eps, p.protocol_pgd_eps, pgd, p.cross_tol, p.seed,
                             base={"clean": table["clean"], "rows": table["rows"]}, progress=progress,
                             protocols=p.protocols)
    return {"channels": channels, "epoch": net.last, "n": len(y), "variants": variants}


def payload(p: WidthParams, dataset, widths: list, cell_list: list, tables: dict, worst: dict, variants: dict,
            laps: dict) -> dict:
    """Notebook 08's result file, from the steps' outputs; its configurations ranked (:func:`configurations`)."""
    attack = p.attack
    out = {"dataset": dataset.describe(), "paper": paper_row(dataset.name), "eps": list(p.eps),
           "pgd": {"steps": attack["steps"], "alpha": attack["alpha"], "label": attack["label"],
                   "early_stop": p.early_stop}, "widths": widths, "cells": cell_list,
           "table1": {str(c): t for c, t in tables.items()}, "wall_s": dict(laps), "worst_case": worst,
           "protocols": variants}
    out["configurations"] = configurations(out)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description="Train one width of notebook 08 into the model store (resumable).")
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--until", type=int, default=None, help="stop after this many epochs of the schedule")
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads (default: the profile's THREADS); 1 lets two widths train side by side")
    a = ap.parse_args(argv)
    from .trained import profile_and_data, train as train_net
    params, data = profile_and_data(a.profile, a.threads)
    net = train_net(width_entry(params, a.channels), data, params["SEED"],
                    a.until if a.until is not None else until_epoch(params, a.channels))
    print(f"{a.channels} channels: {net.record['epochs_done']} epochs, clean {net.record['clean_acc']:.4f}, "
          f"store {net.folder}")


if __name__ == "__main__":
    main()
