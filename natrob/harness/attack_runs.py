"""An attack spec of the harness, built and run: its label and stable id, the attack object at a radius, and one
attack on the points still attacked (batch by batch, one image at a time where a batch's solve fails), with what
it broke, its solver failures, non-finite logits, NFEs, the attack's own diagnostics, or the error it raised."""
from __future__ import annotations

import time

import torch

from ..attacks import make_attack
from ..attacks.contract import NON_FINITE, SOLVER_FAILED
from ..errors import ConfigError, SolverFailure
from .prediction import predict


def attack_label(spec: dict) -> str:
    """The display label of an attack spec (its ``label``, or one made from its name and steps)."""
    if "label" in spec:
        return spec["label"]
    if spec["name"] == "transfer":
        return f"transfer({attack_label(spec.get('attack', {'name': 'fgsm'}))})"
    if spec["name"] == "protocol-variant":
        return f"{attack_label(spec.get('attack', {'name': '?'}))} ({spec.get('protocol')})"
    if spec["name"] == "pgd":
        return f"pgd-{spec.get('steps', 40)}" + (f"x{spec['restarts']}" if spec.get("restarts", 1) > 1 else "")
    return spec["name"]


def attack_id(spec: dict) -> str:
    """The stable id of an attack spec (its ``id``, or its label): what checks and caches key on."""
    return spec.get("id") or attack_label(spec)


def build_attack(spec: dict, eps: float, freeze_fooled: bool = False, stop_stalled: bool = False):
    """The attack object a spec describes at radius ``eps`` (``alpha_rel`` resolved to ``alpha_rel * eps``).

    ``freeze_fooled`` and ``stop_stalled`` are PGD's speed switches (:class:`natrob.attacks.PGD`, which says where
    each is valid; the harness decides, :mod:`natrob.harness.evaluate`), given to the PGD the spec builds when True
    (a spec may turn them on itself, never off). ``freeze_fooled`` also reaches the inner PGD of a protocol variant that
    crafts on the judged model (:attr:`~natrob.attacks.ProtocolVariant.crafts_on_judge`); the attack a transfer
    runs on its source model gets neither. Raises ConfigError for a bad ``alpha_rel`` or variant spec."""
    spec = dict(spec)
    name = spec.pop("name")
    for meta in ("label", "id", "role"):
        spec.pop(meta, None)
    if "alpha_rel" in spec:
        rel = spec.pop("alpha_rel")
        if not isinstance(rel, (int, float)) or not rel > 0:
            raise ConfigError("alpha_rel", rel, "a positive number (step size as a fraction of eps)")
        spec["alpha"] = max(rel * eps, 1e-4)
    if name == "transfer":
        inner = dict(spec.pop("attack", {"name": "fgsm"}))
        # the source's attack stops where the source is fooled, not where the judged model is: never frozen
        return make_attack("transfer", source=spec.pop("source"), attack=build_attack(inner, eps))
    if name == "protocol-variant":
        if not isinstance(spec.get("attack"), dict):
            raise ConfigError("attack", spec.get("attack"), "the inner attack's spec, e.g. {'name': 'fgsm'}")
        inner = spec.pop("attack")
        variant = make_attack(name, attack=build_attack(inner, eps), **spec)
        if freeze_fooled and variant.crafts_on_judge:  # only there the inner PGD's "fooled" is the judge's
            variant = make_attack(name, attack=build_attack(inner, eps, freeze_fooled=True), **spec)
        return variant
    if name == "pgd":
        spec["freeze_fooled"] = bool(spec.get("freeze_fooled")) or freeze_fooled
        spec["stop_stalled"] = bool(spec.get("stop_stalled")) or stop_stalled
    return make_attack(name, eps=eps, **spec)


def spec_params(spec):
    return {k: (v if isinstance(v, (int, float, str, bool, list, type(None))) else
                spec_params(v) if isinstance(v, dict) else type(v).__name__)
            for k, v in spec.items()}


class _Diagnostics:
    """What an attack reported about itself (``attack.diagnostics`` after each call), gathered over the batches
    of one evaluation and keyed by point index: Pintor et al.'s indicators, AutoAttack's own warnings."""

    def __init__(self):
        self.tracked, self.seen, self.incomplete, self.warnings, self.skipped = False, [], [], [], []

    def add(self, attack, idx):
        d = getattr(attack, "diagnostics", None) or {}
        if d.get("seen_adversarial") is not None:
            self.tracked = True
            self.seen += idx[d["seen_adversarial"].to(idx.device)].tolist()
            self.incomplete += idx[d["incomplete"].to(idx.device)].tolist()
        self.warnings += [w for w in d.get("warnings", []) if w not in self.warnings]
        self.skipped += [w for w in d.get("skipped", []) if w not in self.skipped]

    def entry(self) -> dict:
        return {"indicators": {"tracked": self.tracked, "seen_adversarial": self.seen, "incomplete": self.incomplete},
                "warnings": self.warnings, "skipped": self.skipped}


def _run_attack(attack, model, x, y, idx, per_sample, diag):
    """x_adv and a mask of solver failures; falls back to one image at a time when a batch fails."""
    failed = torch.zeros(len(y), dtype=torch.bool, device=x.device)
    if not per_sample:
        try:
            x_adv = attack(model, x, y)
            diag.add(attack, idx)
            return x_adv, failed
        except SolverFailure:
            pass
    out = x.clone()
    for i in range(len(y)):
        try:
            out[i:i + 1] = attack(model, x[i:i + 1], y[i:i + 1])
            diag.add(attack, idx[i:i + 1])
        except SolverFailure:
            failed[i] = True
    return out, failed


def _ball_slack(x) -> float:
    # projection rounds in the images' own dtype: a few ulps of 1 (half precision needs more than 1e-6)
    return max(1e-6, 2 * torch.finfo(x.dtype).eps)


def attack_points(attack, model, x, y, idx, eps, batch_size, per_sample, draws) -> dict:
    """Attack the points ``idx``: which of them broke, which had solver failures or non-finite logits, NFEs,
    the attack's own diagnostics; or the error raised."""
    broken, failures, non_finite, nfes, t0, diag = [], [], [], [], time.time(), _Diagnostics()
    extent = {"max_linf_pixel": 0.0, "outside_box": False}  # how far the returned images went, in pixels
    try:
        for i in range(0, len(idx), batch_size):
            b = idx[i:i + batch_size]
            x_adv, fail = _run_attack(attack, model, x[b], y[b], b, per_sample, diag)
            if not attack.admits(x[b], x_adv, _ball_slack(x)):
                raise AssertionError(f"{attack!r} left its eps-ball or [0, 1]")  # a natrob bug, never expected
            extent["max_linf_pixel"] = max(extent["max_linf_pixel"], float((x_adv - x[b]).abs().max()))
            extent["outside_box"] = extent["outside_box"] or bool((x_adv < 0).any() or (x_adv > 1).any())
            pred, n = predict(model, x_adv, batch_size, per_sample, draws)
            nfes += n
            fail = fail | (pred == SOLVER_FAILED)
            broken += b[(pred != y[b]) | fail].tolist()
            failures += b[fail].tolist()
            non_finite += b[pred == NON_FINITE].tolist()
    except Exception as exc:  # a user's model must not stop the evaluation: record, go on without this attack
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "broken": [], "failures": [], "non_finite": [],
                "nfes": [], "wall_s": time.time() - t0, **diag.entry()}
    return {"error": None, "broken": broken, "failures": failures, "non_finite": non_finite, "nfes": nfes,
            "wall_s": time.time() - t0, **extent, **diag.entry()}
