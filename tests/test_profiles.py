"""Profiles inherit from base.yaml, and the notebooks' committed parameters cells hold the quick values."""
import json

import pytest

from natrob import paths
from natrob.errors import ConfigError, UnknownNameError
from natrob.profiles import available, load_profile
from natrob.run.runner import notebooks


def _parameters_cell(nb_path):
    nb = json.loads(nb_path.read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    values = {}
    exec("".join(cell["source"]), {}, values)  # the cell is plain assignments of literals
    return values


def test_committed_parameters_cells_hold_the_quick_profile():
    """Every value but THREADS, which the quick profile sets to 1 so that the runner runs notebooks side by side;
    a notebook opened alone keeps base.yaml's."""
    import yaml
    from natrob.paths import PROFILES
    quick = load_profile("quick")
    base = yaml.safe_load((PROFILES / "base.yaml").read_text())
    assert quick["THREADS"] == 1 and base["THREADS"] == 2
    declared = set()
    for nb in notebooks():
        values = _parameters_cell(nb)
        declared |= set(values)
        for k, v in values.items():
            assert k in quick, f"{nb.name} declares {k}, which profiles/base.yaml lacks"
            want = base[k] if k == "THREADS" else quick[k]
            assert v == want, f"{nb.name}: {k} = {v!r} but the quick profile has {want!r}"
    from natrob.profiles import RUNNER_KEYS
    assert set(quick) - set(RUNNER_KEYS) <= declared, f"profile keys no notebook declares: {set(quick) - declared}"


def test_profiles_inherit_and_override_whole_entries():
    base, mnist, cifar = load_profile("quick"), load_profile("mnist"), load_profile("paper-cifar10")
    assert mnist["DATASET"] == "mnist" and mnist["ODE"]["train"]["epochs"] != base["ODE"]["train"]["epochs"]
    assert mnist["RESNET50"]["kwargs"]["width"] != base["RESNET50"]["kwargs"]["width"]
    assert mnist["AUDIT_BUDGET"] == base["AUDIT_BUDGET"]  # not overridden: inherited from base
    assert cifar["AUDIT_N"] == load_profile("paper")["AUDIT_N"] and cifar["DATASET"] == "cifar10"  # extends paper
    assert "base" not in available() and "extends" not in cifar


def test_bad_profiles_are_refused(tmp_path, monkeypatch):
    (tmp_path / "base.yaml").write_text("A: 1\nB: 2\n")
    (tmp_path / "typo.yaml").write_text("extends: base\nAA: 3\n")
    (tmp_path / "loop.yaml").write_text("extends: loop\n")
    monkeypatch.setattr(paths, "PROFILES", tmp_path)
    with pytest.raises(ConfigError, match="AA"):
        load_profile("typo")
    with pytest.raises(ConfigError, match="extends"):
        load_profile("loop")
    with pytest.raises(UnknownNameError, match="base"):
        load_profile("base")


def test_notebook_09_declares_every_parameter_its_run_reads():
    """The runner passes a notebook only the parameters its cell declares: a key MechanismParams reads and the cell
    lacks would silently be its default (the widths table was empty that way)."""
    import ast
    import inspect

    from natrob.study import mechanism_params, width
    src = "".join(inspect.getsource(f) for f in (mechanism_params, width.width_entry))
    read = {n.value for n in ast.walk(ast.parse(src)) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and n.value.isupper() and n.value in load_profile("quick")}
    nb = next(p for p in notebooks() if p.name.startswith("09-"))
    missing = read - set(_parameters_cell(nb))
    assert {"WIDTH_CHANNELS", "WIDTH_TRAIN", "SAT_MODEL"} <= read and not missing, missing
