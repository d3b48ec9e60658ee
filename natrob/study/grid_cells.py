"""Notebook 07's grid cells (:mod:`natrob.study.grid`): the profile's axes (test-time tolerance, gradient path,
integration time, training length, evaluation protocol, cross-solver pairs) checked and crossed into the cells and
the nets they need. No attack runs here: :func:`natrob.study.grid.run_grid` measures what these describe.
"""
from __future__ import annotations

from ..errors import ConfigError
from .protocols import PROTOCOLS, check_protocol

TORCHDIFFEQ_DEFAULT = {"rtol": 1e-7, "atol": 1e-9}
GRAD_PATHS = ("direct", "adjoint")


# ------------------------------------------------------------------------------------------- settings
def parse_tolerance(value) -> dict:
    """``{"rtol", "atol"}`` for a grid entry: a number (rtol = atol) or ``"default"`` (torchdiffeq's 1e-7 / 1e-9)."""
    if value == "default":
        return dict(TORCHDIFFEQ_DEFAULT)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1:
        return {"rtol": float(value), "atol": float(value)}
    raise ConfigError("tolerance", value, "a number in (0, 1) used as rtol = atol, or 'default' (rtol 1e-7, atol 1e-9)")


def tol_label(solver: dict) -> str:
    """'tol 1e-03' when rtol equals atol, else 'rtol 1e-07/atol 1e-09': how cells name their solver."""
    if solver["rtol"] == solver["atol"]:
        return f"tol {solver['rtol']:.0e}"
    return f"rtol {solver['rtol']:.0e}/atol {solver['atol']:.0e}"


# ------------------------------------------------------------------------------------------- the grid
def model_specs(base: dict, t1_values, epochs_values) -> tuple:
    """(base name, {name: profile model spec}): the profile's ODE net, one retrained at each t1, one per epochs."""
    def name(t1, epochs):
        return f"t1={t1:g}, {epochs} ep"
    b_t1, b_ep = float(base["kwargs"].get("t1", 100.0)), int(base["train"]["epochs"])
    specs = {name(b_t1, b_ep): base}
    for t1 in t1_values:
        if not float(t1) > 0:
            raise ConfigError("GRID_T1 entry", t1, "a positive integration time")
        specs.setdefault(name(float(t1), b_ep), {**base, "kwargs": {**base["kwargs"], "t1": float(t1)}})
    for ep in epochs_values:
        if int(ep) != ep or int(ep) < 1:
            raise ConfigError("GRID_EPOCHS entry", ep, "an integer >= 1")
        specs.setdefault(name(b_t1, int(ep)), {**base, "train": {**base["train"], "epochs": int(ep)}})
    return name(b_t1, b_ep), specs


def _cross_pairs(cross) -> list:
    """``GRID_CROSS`` as [(craft solver, judge solver)] (each a :func:`parse_tolerance`); ConfigError naming an
    empty list or an entry that is not a [craft tolerance, judge tolerance] pair."""
    if not cross:
        raise ConfigError("GRID_CROSS", cross, "a list of [craft tolerance, judge tolerance] pairs")
    out = []
    for pair in cross:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ConfigError("GRID_CROSS entry", pair, "[craft tolerance, judge tolerance]")
        judge = parse_tolerance(pair[1])
        out.append((parse_tolerance(pair[0]), judge))
    return out


def build_cells(base: dict, tols, grads, t1_values, epochs_values, protocols, cross=()) -> tuple:
    """(model specs, cells). Cells are deduplicated (the base configuration sits on every axis once) and list the
    axes they belong to. Base configuration: the profile's ODE net at its training tolerance, direct gradients."""
    base_name, specs = model_specs(base, t1_values, epochs_values)
    train_solver = {"rtol": float(base["kwargs"].get("rtol", 1e-3)), "atol": float(base["kwargs"].get("atol", 1e-3))}
    cells = {}

    def add(axis, model, solver, grad="direct", protocol="standard", craft=None):
        if grad not in GRAD_PATHS:
            raise ConfigError("GRID_GRAD entry", grad, "one of " + ", ".join(GRAD_PATHS))
        check_protocol(protocol)
        key = (model, solver["rtol"], solver["atol"], grad, protocol,
               None if craft is None else (craft["rtol"], craft["atol"]))
        if key not in cells:
            label = f"{model} | {tol_label(solver)} | {grad}"
            if protocol == "cross-solver":
                label += f" | crafted at {tol_label(craft)}"
            if protocol != "standard":
                label += f" | {protocol}"
            cells[key] = {"id": f"c{len(cells):02d}", "label": label, "axes": [], "model": model, "solver": solver,
                          "grad": grad, "protocol": protocol, "craft_solver": craft,
                          "correct_threat_model": PROTOCOLS[protocol]["correct"],
                          "threat_model": PROTOCOLS[protocol]["label"]}
        if axis not in cells[key]["axes"]:
            cells[key]["axes"].append(axis)

    add("base", base_name, train_solver)
    for t in tols:
        add("tolerance", base_name, parse_tolerance(t))
    for g in grads:
        add("gradient path", base_name, train_solver, grad=g)
    for t1 in t1_values:
        add("t1", f"t1={float(t1):g}, {int(base['train']['epochs'])} ep", train_solver)
    for ep in epochs_values:
        add("epochs", f"t1={float(base['kwargs'].get('t1', 100.0)):g}, {int(ep)} ep", train_solver)
    for p in protocols:
        check_protocol(p)
        if p == "standard":
            continue
        if p == "cross-solver":
            for craft_solver, judge_solver in _cross_pairs(cross):
                add("tolerance", base_name, judge_solver)  # the judged configuration's own correct worst case
                add("protocol", base_name, judge_solver, protocol=p, craft=craft_solver)
        else:
            add("protocol", base_name, train_solver, protocol=p)
    return specs, list(cells.values())


# ------------------------------------------------------------------------------------------- measurements
