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
from torch import nn

from .attacks.variant import VARIANTS as ATTACK_VARIANTS
from .profiles import load_profile


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
    from .profiles import train_config
    from .train import get_model
    from .train.store import store_key
    entry = width_entry(params, channels)
    cfg = train_config(entry)
    until = until if until is not None else until_epoch(params, channels)
    model, record = get_model(entry["model"], dataset, cfg, model_kwargs=entry["kwargs"], seed=seed,
                              progress=progress, keep_epochs=True, until_epoch=until)
    key = store_key(entry["model"], entry["kwargs"], dataset, cfg, seed)
    return model, record, paths.checkpoints_dir() / f"{entry['model']}-{dataset.name}-{key}"


# ------------------------------------------------------------------------------------------- per-cell probes
def _grad_and_logits(model, x, y, dtype):
    """Input gradient of the summed cross-entropy and the logits, with the model and images in ``dtype``."""
    import copy

    import torch.nn.functional as F
    net = model if dtype == torch.float32 else copy.deepcopy(model).to(dtype)
    xx = x.to(dtype).detach().requires_grad_(True)
    logits = net(xx)
    grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xx)
    return grad, logits.detach(), net


def _state_capture(model):
    """A forward pre-hook on an ODE net's head that keeps the ODE state y(t1) of the last forward pass (no extra
    solve); (store, handle), or (store, None) for a model without a head."""
    store = []
    head = getattr(model, "head", None)
    if head is None or not hasattr(model, "integrate"):
        return store, None
    return store, head.register_forward_pre_hook(lambda mod, args: store.append(args[0].detach()))


def _probe_batch(model, xb, yb, eps_list, batch_size, acc):
    """Add one batch's probes to ``acc`` (see :func:`cell_probes`)."""
    from .evaluate import predict
    store, handle = _state_capture(model)
    try:
        g32, logits, _ = _grad_and_logits(model, xb, yb, torch.float32)
    finally:
        if handle is not None:
            handle.remove()
    acc["nfes"].append(getattr(model, "nfe_forward", None))
    if store:
        acc["norms"].append(store[-1].flatten(1).norm(dim=1))
    zero = (g32.flatten(1) == 0).all(1)
    acc["zero32"] += int(zero.sum())
    if zero.any():  # float64 only where float32 saw no slope: a non-zero float32 gradient stays non-zero in float64
        g64, _, _ = _grad_and_logits(model, xb[zero], yb[zero], torch.float64)
        acc["zero64"] += int((g64.flatten(1) == 0).all(1).sum())
    ok = logits.argmax(1) == yb
    acc["correct"] += int(ok.sum())
    for e in acc["fgsm"]:
        pred, _ = predict(model, (xb + e * g32.sign()).clamp(0, 1), batch_size)
        acc["fgsm"][e] += int((ok & (pred == yb)).sum())
    other = logits.clone()
    other[torch.arange(len(yb)), yb] = -float("inf")
    acc["margins"].append((logits[torch.arange(len(yb)), yb] - other.max(1).values)[ok])


def cell_probes(model, x, y, eps_list=(0.2, 0.3, 0.4, 0.5), batch_size: int = 50) -> dict:
    """What decides FGSM on an ODE net, measured on (x, y): per point, whether the input gradient of the
    cross-entropy is exactly zero in float32 and in float64 (a saturated softmax: float32's exp underflows for
    logit margins above about 104, float64's above about 745, and then the gradient and FGSM's step vanish;
    float64 is run on the points whose float32 gradient is zero), the logit margin (true logit minus the largest
    other; median and max over clean-correct points, and ``margins``: percentiles p2/p10/p50/p90/max), the L2
    norm of the ODE state at t1 (median, from the same
    forward pass) and the forward NFE (mean per batch), and FGSM at every radius of ``eps_list`` (the paper's
    attack: one signed cross-entropy gradient step of eps, clipped to [0, 1]; all radii share the one float32
    gradient; a point is robust when its clean and adversarial images are both classified correctly, a failed
    solve is not). ``x``: (n, C, H, W) in [0, 1]; ``y``: (n,) int64. Returns count values and floats; solves are
    per-sample (batch-independent)."""
    from .models.odenet import solver_settings
    from .saturation import margin_percentiles
    from .stats import count
    model.eval()
    acc = {"zero32": 0, "zero64": 0, "correct": 0, "margins": [], "norms": [], "nfes": [],
           "fgsm": {float(e): 0 for e in eps_list}}
    with solver_settings(model, per_sample=True, optional=True):
        for i in range(0, len(y), batch_size):
            _probe_batch(model, x[i:i + batch_size], y[i:i + batch_size], eps_list, batch_size, acc)
    m = torch.cat(acc["margins"]) if acc["margins"] else torch.empty(0)
    n = len(y)
    nfes = [v for v in acc["nfes"] if v is not None]
    return {"clean": count(acc["correct"], n), "zero_grad_float32": count(acc["zero32"], n),
            "zero_grad_float64": count(acc["zero64"], n),
            "margin_median": float(m.median()) if len(m) else None, "margin_max": float(m.max()) if len(m) else None,
            "margins": margin_percentiles(m),
            "state_norm_median": float(torch.cat(acc["norms"]).median()) if acc["norms"] else None,
            "nfe_forward_mean": sum(nfes) / len(nfes) if nfes else None,
            "fgsm": [{"eps": e, "robust": count(k, n)} for e, k in acc["fgsm"].items()]}


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
    want = params.get("WIDTH_CELL_EPOCHS")
    if want:  # a subset of the training lengths (first, chosen, last) where every epoch would cost too much
        keep = {int(e) for e in want if int(e) in stored} | ({max(stored)} if stored else set())
        stored = {e: p for e, p in stored.items() if e in keep}
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


# ------------------------------------------------------------------------------------------- Table 1 per width
def table1_specs(paper_attack: dict, early_stop: bool) -> list:
    """Table 1's attacks as harness specs: FGSM, the paper's PGD (``paper_attack``, from
    :func:`natrob.reference.paper_attack`; ``early_stop`` freezes a point at its first fooling iterate: fewer
    gradient steps, but that iterate sits at the decision boundary and, judged again in another batch, may
    round back to the right side, so the count can be a little higher than natrob's PGD, which counts a point
    broken when any iterate fooled the model), and that random start alone (``uniform-noise``, one draw): what
    PGD scores when its gradient is of no use."""
    pgd = dict(paper_attack, id="pgd")
    if early_stop:
        pgd |= {"early_stop": True, "label": pgd["label"] + " (first fooling iterate)"}
    return [{"name": "fgsm", "id": "fgsm", "label": "FGSM"}, pgd,
            {"name": "uniform-noise", "id": "noise", "trials": 1, "label": "uniform noise (PGD's random start)"}]


def table1(model, x, y, eps_list, paper_attack: dict, early_stop: bool, seed: int = 0,
           name: str | None = None) -> dict:
    """Table 1 of one model at every radius: {"clean": count, "rows": {attack id: [{eps, robust: count, error}]},
    "labels": {attack id: label}} (standalone attacks on the clean-correct points, through the harness)."""
    from .evaluate import evaluate
    specs = table1_specs(paper_attack, early_stop)
    res = evaluate(model, x, y, list(eps_list), specs, cascade=False, seed=seed, model_name=name)
    rows = {}
    for r in res["rows"]:
        rows.setdefault(r["id"], []).append({"eps": r["eps"], "robust": r["robust"], "error": r["error"]})
    return {"clean": res["clean"], "rows": rows, "labels": {s["id"]: s["label"] for s in specs}}


# ------------------------------------------------------------------------------------------- protocol variants
class Float16Eval(nn.Module):
    """A float16 copy of ``model`` taking float32 images: both crafting and judging run in float16 (the
    *float16 evaluation* protocol), logits returned as float32 for the harness."""

    def __init__(self, model):
        import copy
        super().__init__()
        self.model = copy.deepcopy(model).half().eval()

    def forward(self, x):
        return self.model(x.half()).float()


MEASURED = ("no-clip", "normalised-eps", "cross-solver", "probabilities", "float16")
VARIANTS = {
    **ATTACK_VARIANTS,
    "cross-solver": "crafted at a loose solver tolerance, judged at the model's own",
    "no-usable-gradient": "an attack whose gradient is of no use: FGSM returns the clean image, PGD its random start",
    "float16": "crafted and judged in float16",
}


def _protocol_plan(proto: str, attacks: list, paper_attack: dict, cross_tol: float) -> list:
    """The plan of one protocol at one radius: an attack-wrapper variant, or (float16) the plain attacks, whose
    model is the one that changes."""
    from .protocols import variant_plan
    if proto == "float16":
        pgd = {**paper_attack, "label": f"{paper_attack['label']} (float16)"}
        return [{"name": "fgsm", "id": "fgsm", "label": "FGSM (float16)"} if a == "fgsm" else pgd for a in attacks]
    return variant_plan(proto, paper_attack, attacks, craft_solver={"rtol": cross_tol, "atol": cross_tol})


def protocol_rows(model, x, y, eps_list, pgd_eps, paper_attack: dict, cross_tol: float, seed: int = 0,
                  base: dict | None = None, progress: bool = True, protocols=None) -> dict:
    """Table 1 (FGSM at every radius of ``eps_list``, the paper's PGD ``paper_attack`` at those of ``pgd_eps``)
    under each protocol of :data:`VARIANTS`, none of which is the correct threat model, each run through the
    harness (:func:`natrob.plan.run_plan`): {protocol: {"fgsm": [{eps, robust: count}], "pgd": [...], "label",
    "failures" (solver failures in attacks), "clean_failures", "not_evaluable", "errors"}}; an attack that
    raised has its count not measured (``k`` None) and its error listed. Where the harness cannot evaluate a
    protocol at all (every clean solve fails), every point counts as not robust, as a failed solve does, and
    ``not_evaluable`` says why. ``base`` (a :func:`table1` output) gives the no-usable-gradient rows for free. ``protocols`` (None: all) picks among the
    measured ones (:data:`MEASURED`). Raises ConfigError for an unknown protocol."""
    from tqdm.auto import tqdm

    from .errors import ConfigError
    from .plan import run_plan
    from .stats import count
    unknown = [p for p in protocols or () if p not in MEASURED]
    if unknown:
        raise ConfigError("WIDTH_PROTOCOLS", unknown, "some of " + ", ".join(MEASURED))
    radii = sorted({float(e) for e in list(eps_list) + list(pgd_eps)})
    jobs = [(p, e) for p in (protocols or MEASURED) for e in radii]
    judges = {"float16": Float16Eval(model)} if "float16" in (protocols or MEASURED) else {}
    out = {}
    for proto, eps in tqdm(jobs, desc="protocols", disable=not progress):
        row = out.setdefault(proto, {"label": VARIANTS[proto], "fgsm": [], "pgd": [], "failures": 0,
                                     "clean_failures": 0, "not_evaluable": None, "errors": []})
        attacks = [a for a, radii_a in (("fgsm", eps_list), ("pgd", pgd_eps))
                   if any(abs(eps - e) < 1e-9 for e in radii_a)]
        plan = _protocol_plan(proto, attacks, paper_attack, cross_tol)
        res = run_plan(judges.get(proto, model), x, y, eps, plan, seed=seed)
        for a, spec in zip(attacks, plan):
            robust = res["rows"][spec["id"]]["robust"] if res["evaluable"] else count(0, len(y))
            row[a].append({"eps": eps, "robust": robust})
        # the clean images are solved once per radius with the same result: counted once per protocol
        row["failures"] += res["solver_failures"] if res["evaluable"] else 0
        row["clean_failures"] = res["clean_solver_failures"] if res["evaluable"] else len(y)
        row["not_evaluable"] = row["not_evaluable"] or (None if res["evaluable"] else res["not_evaluable"])
        row["errors"] += [f"eps {eps:g}, {e['attack']}: {e['error']}" for e in res.get("errors", [])]
    if base is not None:
        out["no-usable-gradient"] = {
            "label": VARIANTS["no-usable-gradient"], "failures": 0, "clean_failures": 0, "not_evaluable": None,
            "errors": [],
            "fgsm": [{"eps": e, "robust": base["clean"]} for e in eps_list],
            "pgd": [{"eps": r["eps"], "robust": r["robust"]} for r in base["rows"]["noise"]]}
    return out


# ------------------------------------------------------------------------------------------- fingerprint
def percentages(rows) -> list:
    """[{eps, pct}] of rows holding count values ({eps, robust}); pct None where not measured."""
    return [{"eps": r["eps"], "pct": None if r["robust"]["k"] is None or not r["robust"]["n"]
             else 100 * r["robust"]["k"] / r["robust"]["n"]} for r in rows or []]


def paper_row(dataset: str) -> dict:
    """The paper's Neural ODE Table 1 (percent) for the paper dataset ``dataset`` stands in for:
    {"eps": [...], "fgsm": [% per eps], "pgd": [% per eps]} (lists, so the payload survives JSON)."""
    from . import reference
    fgsm = reference.table1(dataset, "FGSM", "Neural ODE")
    pgd = reference.table1(dataset, "PGD", "Neural ODE")
    eps = sorted(fgsm)
    return {"eps": eps, "fgsm": [100 * fgsm[e] for e in eps], "pgd": [100 * pgd[e] for e in eps]}


def paper_at(paper: dict, attack: str, eps: float):
    """The paper's percentage for ``attack`` ('fgsm' or 'pgd') at ``eps``, or None where it has none."""
    return next((v for e, v in zip(paper["eps"], paper[attack]) if abs(e - eps) < 1e-6), None)


def distance(rows: dict, paper: dict) -> dict:
    """RMS distance in percentage points between a configuration's Table 1 ({"fgsm": [{eps, pct}], "pgd":
    [...]}, see :func:`percentages`) and the paper's, over the numbers both have: {"rms": float or None,
    "numbers": how many}."""
    diffs = []
    for attack in ("fgsm", "pgd"):
        for r in rows.get(attack) or []:
            ref = paper_at(paper, attack, float(r["eps"]))
            if ref is not None and r.get("pct") is not None:
                diffs.append(r["pct"] - ref)
    if not diffs:
        return {"rms": None, "numbers": 0}
    return {"rms": (sum(d * d for d in diffs) / len(diffs)) ** 0.5, "numbers": len(diffs)}


# ------------------------------------------------------------------------------------------- worst case
def worst_case_specs(budget: dict, paper_attack: dict) -> list:
    """The audit's strongest attacks as a cascade (each runs on the points all earlier ones left): the paper's
    PGD, PGD-100 x restarts (step eps/4), AutoAttack and Square, at the profile's audit budget."""
    restarts = budget.get("pgd_restarts", 2)
    pgd_steps = (budget.get("pgd_steps") or [100])[-1]
    return [dict(paper_attack, early_stop=True),
            {"name": "pgd", "id": f"pgd{pgd_steps}x{restarts}", "steps": pgd_steps, "alpha_rel": 0.25,
             "restarts": restarts, "early_stop": True, "label": f"PGD-{pgd_steps}x{restarts}"},
            {"name": "autoattack", "id": "autoattack", "n_iter": budget.get("aa_iter", 100),
             "n_queries": budget.get("aa_square_queries", 5000), "n_target_classes": budget.get("aa_targets", 9),
             "label": "AutoAttack"},
            {"name": "square", "id": "square", "n_queries": budget.get("square_queries", 5000), "label": "Square"}]


def worst_case(model, x, y, eps_list, budget: dict, paper_attack: dict, seed: int = 0, name=None) -> dict:
    """Per radius, the points no attack of :func:`worst_case_specs` broke: {"clean": count, "rows": [{eps, id,
    attack, robust: count, error}], "worst": [{eps, robust: count, attacks_failed}]} (a cascade: each row
    counts what remains after it and every attack before it)."""
    from .evaluate import evaluate
    res = evaluate(model, x, y, list(eps_list), worst_case_specs(budget, paper_attack), cascade=True, seed=seed,
                   model_name=name)
    return {"clean": res["clean"],
            "rows": [{"eps": r["eps"], "id": r["id"], "attack": r["attack"], "robust": r["robust"],
                      "error": r["error"]} for r in res["rows"]],
            "worst": [{"eps": w["eps"], "robust": w["robust"], "attacks_failed": w["attacks_failed"]}
                      for w in res["worst_case"]]}


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
    and the protocol variants on the widest one, and the configurations nearest the paper's Table 1."""
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
    payload["findings"] = findings(payload)
    return payload


def _pct(r) -> str:
    from .stats import ci
    return ci(r["robust"]) if r and r["robust"]["k"] is not None else "not measured"


def _at(rows, eps):
    return next((r for r in rows or [] if abs(float(r["eps"]) - eps) < 1e-9), None)


def say_eps(payload: dict) -> float:
    """The radius the chapter's sentences quote: the paper's headline 0.3 where it was run, else the largest."""
    return 0.3 if any(abs(e - 0.3) < 1e-9 for e in payload["eps"]) else max(payload["eps"])


def findings(payload: dict, eps: float | None = None) -> list:
    """The chapter's conclusions as sentences written from the payload's numbers: per width the last model's
    FGSM/PGD at ``eps`` and what decides FGSM (zero gradients, margins), the training-length trend of FGSM,
    the configuration nearest the paper's Table 1 and whether the worst case breaks it."""
    out = []
    eps = say_eps(payload) if eps is None else eps
    paper = payload["paper"]
    pgd_label = payload["pgd"]["label"]
    for w in payload["widths"]:
        ch = w["channels"]
        t = payload["table1"][str(ch)]
        cells = [c for c in payload["cells"] if c["channels"] == ch]
        last = cells[-1] if cells else None
        partial = "" if w["epochs_done"] >= w["epochs_scheduled"] else \
            f" (trained {w['epochs_done']} of its {w['epochs_scheduled']} scheduled epochs)"
        acc = w["history"][-1]["test_acc"] if w["history"] else None
        s = (f"{ch} channels ({w['params']:,} parameters){partial}: clean accuracy {100 * acc:.1f}% on the "
             f"eval images; at eps = {eps:g} FGSM leaves {_pct(_at(t['rows']['fgsm'], eps))}, {pgd_label} "
             f"{_pct(_at(t['rows']['pgd'], eps))} and its random start alone {_pct(_at(t['rows']['noise'], eps))} "
             + (f"(paper: FGSM {paper_at(paper, 'fgsm', eps):.2f}%, PGD {paper_at(paper, 'pgd', eps):.2f}%)."
                if paper_at(paper, "fgsm", eps) is not None else "(the paper has no figure at this eps)."))
        if last is not None:
            s += (f" Its input gradient is exactly zero on {last['zero_grad_float32']['k']} of "
                  f"{last['zero_grad_float32']['n']} points in float32 and {last['zero_grad_float64']['k']} in "
                  f"float64; median logit margin {last['margin_median']:.3g}, largest {last['margin_max']:.3g}.")
        out.append(s)
        fg = [(c["epoch"], _at(c["fgsm"], eps)) for c in cells]
        if len(fg) >= 2:
            out.append(f"{ch} channels, FGSM at eps = {eps:g} by training epoch: "
                       + ", ".join(f"epoch {e}: {r['robust']['k']}/{r['robust']['n']}" for e, r in fg) + ".")
    out += _same_length(payload, eps)
    configs = [c for c in payload["configurations"] if c["rms"] is not None]
    full = [c for c in configs if c["numbers"] == max(c["numbers"] for c in configs)] if configs else []
    if full:
        best = full[0]
        out.append(f"Nearest to the paper's Table 1 over all {best['numbers']} numbers: {best['config']} "
                   f"({best['protocol']}), RMS distance {best['rms']:.1f} points.")
        correct = [c for c in full if c["correct"]]
        if correct and correct[0] is not best:
            out.append(f"Nearest under the correct threat model: {correct[0]['config']}, RMS {correct[0]['rms']:.1f} "
                       "points.")
    wc = payload.get("worst_case")
    if wc:
        out.append(f"The strongest evaluation of the {wc['channels']}-channel net (epoch {wc['epoch']}; "
                   + ", ".join(r["attack"] for r in wc["rows"] if r["eps"] == wc["worst"][0]["eps"])
                   + "): worst case " + "; ".join(f"{_pct(w)} at eps = {w['eps']:g}" for w in wc["worst"])
                   + (". Attacks that failed: " + ", ".join(sorted({a for w in wc["worst"] for a in w["attacks_failed"]}))
                      if any(w["attacks_failed"] for w in wc["worst"]) else "") + ".")
    return out


def _same_length(payload: dict, eps: float) -> list:
    """One sentence comparing FGSM across widths at the longest training length every width has a cell for."""
    widths = [w["channels"] for w in payload["widths"]]
    epochs = [{c["epoch"] for c in payload["cells"] if c["channels"] == ch} for ch in widths]
    common = set.intersection(*epochs) if len(widths) > 1 else set()
    if not common:
        return []
    e = max(common)
    rows = [(ch, _at(next(c for c in payload["cells"] if c["channels"] == ch and c["epoch"] == e)["fgsm"], eps))
            for ch in widths]
    if any(r is None or r["robust"]["k"] is None for _, r in rows):
        return []
    ks = [r["robust"]["k"] for _, r in rows]
    trend = ("rises with width" if ks == sorted(ks) and ks[0] < ks[-1] else
             "falls with width" if ks == sorted(ks, reverse=True) and ks[0] > ks[-1] else "is not monotone in width")
    return [f"At the same training length (epoch {e}), FGSM at eps = {eps:g} leaves "
            + ", ".join(f"{r['robust']['k']}/{r['robust']['n']} at {ch} channels" for ch, r in rows)
            + f": the count {trend} (95% intervals in the cell table)."]


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
    paths.set_profile(a.profile)
    torch.set_num_threads(int(a.threads or params.get("THREADS") or 2))
    data = load_profile_dataset(params["DATASET"], params.get("DATA_ROOT"), params.get("DATASET_FALLBACK"),
                                seed=params["SEED"])
    _, record, folder = train_width(params, data, a.channels, seed=params["SEED"], until=a.until)
    print(f"{a.channels} channels: {record['epochs_done']} epochs, clean {record['clean_acc']:.4f}, store {folder}")


if __name__ == "__main__":
    main()
