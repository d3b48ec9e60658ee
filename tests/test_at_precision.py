"""One precision concept (natrob.harness.precision) and notebook 09's typed parameters
(natrob.study.mechanism_params): exact answers where the float formats give one, and errors that name the parameter,
its value and what is allowed."""
import pytest
import torch
from torch import nn

from natrob.errors import ConfigError
from natrob.harness.precision import AtPrecision, Precision, check_precision


def _identity():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(1.0)
    return net


# float16 has 11 significant bits: between 2048 and 4096 it holds only even integers (ties round to even)
X = torch.tensor([[2049.0], [2050.0], [2051.0], [2052.0], [2053.0]])


def test_float16_runs_a_float16_copy_and_rounds_as_float16_does():
    net = _identity()
    half = AtPrecision(net, Precision.FLOAT16, solver=False)
    out = half(X)
    assert out.dtype == torch.float32 and out.flatten().tolist() == [2048.0, 2050.0, 2052.0, 2052.0, 2052.0]
    assert int((out != X).sum()) == 3  # 2049, 2051 and 2053 are not float16 numbers
    assert next(half.net.parameters()).dtype == torch.float16 and net.weight.dtype == torch.float32  # a copy
    assert torch.equal(AtPrecision(net, "float32")(X), X)
    wide = AtPrecision(net, Precision.FLOAT64)(X)
    assert wide.dtype == torch.float64 and torch.equal(wide, X.double())


def test_scale_multiplies_the_logits_and_must_be_positive():
    assert AtPrecision(_identity(), "float32", scale=4.0)(X).flatten().tolist() == [8196.0, 8200.0, 8204.0, 8208.0,
                                                                                    8212.0]
    with pytest.raises(ConfigError, match="scale=0"):
        AtPrecision(_identity(), "float32", scale=0)


def test_the_solver_is_reached_only_where_the_wrapper_allows_it(small_odenet):
    assert hasattr(AtPrecision(small_odenet, "float32"), "configure_solver")
    hidden = AtPrecision(small_odenet, Precision.FLOAT16, solver=False)
    assert not hasattr(hidden, "configure_solver") and hidden.batch_coupled is False
    with pytest.raises(ConfigError, match="configure_solver"):
        AtPrecision(_identity(), "float32").configure_solver(per_sample=True)


def test_a_precision_outside_the_allowed_ones_is_named():
    assert check_precision("float16-amp") is Precision.FLOAT16_AMP
    with pytest.raises(ConfigError) as err:
        check_precision("float16", (Precision.FLOAT32, Precision.FLOAT64), "SAT_PIPELINES")
    assert err.value.param == "SAT_PIPELINES" and err.value.value == "float16"
    assert err.value.allowed == "one of float32, float64"


def _params(**changes):
    from natrob.profiles import load_profile
    return {**load_profile("tiny"), **changes}


@pytest.mark.parametrize("name, value, allowed", [
    ("SAT_PIPELINES", ["float32", "fp8"], "float16-amp"),
    ("SAT_MAP_N", 0, "positive whole number"),
    ("SAT_SCALED_N", 2.5, "positive whole number"),
    ("SAT_TABLE1_SCALES", [16, -1], "positive numbers"),
    ("SAT_CELL_EPOCHS", [0, 2], "epochs"),
])
def test_the_mechanism_params_reject_a_bad_value_naming_it(name, value, allowed):
    from natrob.study.mechanism_params import MechanismParams
    with pytest.raises(ConfigError, match=name) as err:
        MechanismParams.from_params(_params(**{name: value}), 16)
    assert err.value.param == name and allowed in err.value.allowed
    assert err.value.value in (value, value[-1] if isinstance(value, list) else value)


def test_the_mechanism_params_resolve_each_null_size_once():
    from natrob.study.mechanism_params import STRONG_N, MechanismParams
    p = MechanismParams.from_params(_params(SAT_TABLE1_N=12, SAT_SCALED_N=None, SAT_STRONG_N=None, SAT_MAP_N=None),
                                    16)
    assert p.sizes() == {"cells": p.cell_n, "map": 16, "table1": 12, "scaled": 12, "strongest": STRONG_N}
    assert p.pipelines and all(isinstance(q, Precision) for q in p.pipelines)
    assert p.attack["steps"] == _params()["PGD_STEPS"]


def test_an_interval_is_shown_only_when_it_can_be_read():
    """A 3-epoch extrapolation's interval (the issue's -1464 to 1904) is not shown; a 6-epoch one of a tight fit is."""
    from natrob.chapters.mechanism_text import INTERVAL_MIN_POINTS, readable_interval
    from natrob.study.pipelines import margin_trend
    few = margin_trend([1.0, 2.0, 3.0], [1.0, 5.0, 4.0], target=140.0)
    iv, why = readable_interval(few["linear"], few["n"])
    assert iv is None and f"fewer than {INTERVAL_MIN_POINTS}" in why
    s = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    tight = margin_trend(s, [2.0 * v + (0.01 if i % 2 else -0.01) for i, v in enumerate(s)], target=10.0)
    iv, why = readable_interval(tight["linear"], tight["n"])
    assert why is None and iv[0] < tight["linear"]["at_target"] < iv[1]
    wide = margin_trend(s, [1.0, 9.0, 2.0, 8.0, 3.0, 7.0], target=140.0)
    assert readable_interval(wide["linear"], wide["n"])[0] is None


def test_the_findings_open_with_the_answer_and_take_the_scale_from_its_field():
    from natrob.chapters import mechanism_text
    configs = [{"kind": "pipeline", "config": "epoch 3 (sum lr 9.0), float16-amp", "protocol": "float16-amp",
                "rms": 4.0, "numbers": 8, "scale": 1.0},
               {"kind": "scaled", "config": "a label without its scale", "rms": 7.5, "scale": 16.0},
               {"kind": "assembled", "config": "no usable gradient", "rms": 9.0, "scale": None}]
    p = {"configurations": configs, "map": {"thresholds": {"float16-amp": {"alone": 11.5, "batched": 9.0}}}}
    first = mechanism_text.answer(p)
    assert first.startswith("Answer:") and "float16-amp" in first and "11.5" in first and first.count(". ") == 0
    said = mechanism_text._ranking_sentences(p)
    assert said == ["For reference, the assembled 'no usable gradient' row is at RMS 9.0, and the same net with its "
                    "logits scaled to longer-training margins at 16x: 7.5."]


@pytest.mark.parametrize("name, value, allowed", [
    ("WIDTH_PROTOCOLS", ["no-clip", "fp8-eval"], "float16"),
    ("WIDTH_AUDIT_N", -3, "positive whole number"),
    ("WIDTH_CHANNELS", [], "positive channel counts"),
])
def test_the_width_params_reject_a_bad_value_naming_it(name, value, allowed):
    from natrob.study.width import WidthParams
    with pytest.raises(ConfigError, match=name) as err:
        WidthParams.from_params(_params(**{name: value}), 16)
    assert err.value.param == name and allowed in err.value.allowed


def test_the_float16_variant_judges_through_a_float16_copy_with_its_solver_hidden(monkeypatch, small_odenet, digits):
    """Notebook 08's float16 protocol variant: the judged model is AtPrecision(FLOAT16, solver=False)."""
    from natrob.study import protocols
    seen = []

    def run_plan(model, x, y, eps, plan, seed=0):
        seen.append(model)
        return {"evaluable": False, "not_evaluable": "spy", "solver_failures": 0, "clean_solver_failures": 0}
    monkeypatch.setattr("natrob.harness.plan.run_plan", run_plan)
    attack = {"name": "pgd", "steps": 1, "alpha": 0.1, "random_start": True, "id": "pgd-paper", "label": "PGD-1"}
    protocols.protocol_rows(small_odenet, digits.test_x[:2], digits.test_y[:2], [0.3], [], attack, 0.1,
                            progress=False, protocols=["float16"])
    assert len(seen) == 1 and isinstance(seen[0], AtPrecision) and seen[0].precision is Precision.FLOAT16
    assert not hasattr(seen[0], "configure_solver")


def test_the_thresholds_sentence_names_the_earliest_setting_not_the_series():
    from natrob.chapters import mechanism_text
    m = {"thresholds": {"float32": {"alone": 104.0, "batched": None}, "float16-amp": {"alone": 11.5, "batched": 9.0},
                        "float64": {"alone": None, "batched": None}},
         "rows": [{"protocol": "float32", "margin": {"p50": 300.0}, "own_share": {"median": 0.9}}]}
    alone, batched = mechanism_text._threshold_sentences(m)
    assert "under float16 AMP, at a median margin of 11.5; under float32 at 104.0" in alone
    assert "float64" not in alone and "float16 AMP, at a median margin of 9.0; under float32 not at" in batched
