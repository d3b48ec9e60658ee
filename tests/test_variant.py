"""Protocol variants are attack wrappers that go through the harness: each does what its label says, is judged by
the evaluated model, and the harness checks it against its own threat model, not the correct one."""
import pytest
import torch

from natrob.attacks import FGSM, PGD, ProtocolVariant
from natrob.attacks.variant import ProbabilitiesOut
from natrob.errors import ConfigError
from natrob.harness.evaluate import evaluate
from natrob.study.protocols import variant_plan
from natrob.reference import paper_attack


@pytest.fixture(scope="module")
def net(small_odenet):
    return small_odenet  # trained: the attacks have clean-correct points to work on


def _plan(protocol, **kw):
    return variant_plan(protocol, paper_attack(3, 0.1), **kw)


def test_each_variant_runs_through_the_harness_and_does_what_its_label_says(net, digits):
    x, y = digits.test_x[:8], digits.test_y[:8]
    std = float(net.normalize.std.max())
    moved = {}
    for protocol in ("no-clip", "normalised-eps", "probabilities", "cross-solver"):
        plan = _plan(protocol, craft_solver={"rtol": 0.1, "atol": 0.1})
        res = evaluate(net, x, y, [0.3], plan, cascade=False, progress=False, cache=False)
        assert not res["errors"] and res["clean"]["k"] >= 4, (protocol, res["errors"], res["clean"])
        rows = {r["id"]: r for r in res["rows"]}
        assert rows["fgsm"]["attack"] == f"FGSM ({protocol})"
        moved[protocol] = rows["fgsm"]["max_linf_pixel"]
        assert rows["fgsm"]["outside_box"] == rows["pgd-paper"]["outside_box"] == (protocol == "no-clip"), protocol
    # FGSM moves every pixel it does not clip by the whole radius: eps in pixels, eps * std in normalised space
    assert abs(moved["no-clip"] - 0.3) < 1e-5 and abs(moved["probabilities"] - 0.3) < 1e-5
    assert abs(moved["normalised-eps"] - 0.3 * std) < 1e-5


def test_normalised_eps_scales_the_pgd_step_not_only_the_ball(net, digits):
    x, y = digits.test_x[:8], digits.test_y[:8]
    std = float(net.normalize.std.max())
    one_step = ProtocolVariant("normalised-eps", PGD(0.3, alpha=0.01, steps=1, random_start=False))
    assert abs(float((one_step(net, x, y) - x).abs().max()) - 0.01 * std) < 1e-6  # alpha * std, inside eps * std


def test_probabilities_take_a_second_softmax_and_cross_solver_crafts_on_a_twin(net, digits):
    x = digits.test_x[:4]
    v = ProtocolVariant("probabilities", FGSM(0.3))
    source = v._source(net)
    assert isinstance(source, ProbabilitiesOut)
    p = source(x)
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5) and (p >= 0).all()
    v = ProtocolVariant("cross-solver", FGSM(0.3), craft_solver={"rtol": 0.1, "atol": 0.1})
    twin = v._source(net)
    assert twin is not net and twin.solver_config()["rtol"] == 0.1 and net.solver_config()["rtol"] != 0.1
    assert v._source(net) is twin  # one crafting copy per model, not one per batch


def test_the_harness_records_an_attack_that_leaves_its_threat_model(net, digits, monkeypatch):
    x, y = digits.test_x[:4], digits.test_y[:4]
    assert ProtocolVariant("no-clip", FGSM(0.3)).admits(x, x - 0.3, 1e-6)  # below 0: what no-clip allows
    monkeypatch.setattr(ProtocolVariant, "project", lambda self, x, x_adv: x_adv)
    monkeypatch.setattr(ProtocolVariant, "perturb", lambda self, model, x, y: x + 0.5)
    res = evaluate(net, x, y, [0.3], _plan("no-clip", attacks=("fgsm",)), cascade=False, progress=False, cache=False)
    row = res["rows"][0]
    assert res["clean"]["k"] > 0 and row["robust"]["k"] is None and "left its eps-ball" in row["error"]


def test_a_variant_the_model_cannot_take_is_an_error_naming_the_model(trained_cnn, digits):
    x, y = digits.test_x[:4], digits.test_y[:4]
    plan = _plan("cross-solver", attacks=("fgsm",), craft_solver={"rtol": 0.1, "atol": 0.1})
    res = evaluate(trained_cnn, x, y, [0.3], plan, cascade=False, progress=False, cache=False)
    assert res["clean"]["k"] > 0 and res["rows"][0]["robust"]["k"] is None and "model=" in res["rows"][0]["error"]


def test_the_wrapped_attack_is_left_as_given():
    inner = PGD(0.3)
    ProtocolVariant("no-clip", inner)
    assert inner.box == (0.0, 1.0) and inner.scale is None


def test_bad_variants_name_the_parameter(net):
    with pytest.raises(ConfigError, match="protocol"):
        ProtocolVariant("unclipped", FGSM(0.3))
    with pytest.raises(ConfigError, match="craft_solver"):
        ProtocolVariant("cross-solver", FGSM(0.3))
    with pytest.raises(ConfigError, match="attack"):
        ProtocolVariant("no-clip", object())
    with pytest.raises(ConfigError, match="protocol"):
        variant_plan("standard", paper_attack())
    with pytest.raises(ConfigError, match="attacks"):
        variant_plan("no-clip", paper_attack(), attacks=("square",))
    with pytest.raises(ConfigError, match="craft_solver"):
        variant_plan("cross-solver", paper_attack())


@pytest.mark.parametrize("protocol", ["no-clip", "normalised-eps", "probabilities", "cross-solver"])
def test_a_variant_crafting_on_the_judge_freezes_its_fooled_points_and_counts_the_same(protocol, net, digits,
                                                                                      monkeypatch):
    """The harness freezes a variant's PGD at each point's first fooling iterate only where the variant crafts on the
    judged model (all but cross-solver, whose twin crafts); frozen or not, the same points count as broken."""
    import natrob.harness.evaluate as ev
    x, y = digits.test_x[:16], digits.test_y[:16]
    plan = variant_plan(protocol, paper_attack(20, 0.02), ("pgd",), craft_solver={"rtol": 0.1, "atol": 0.1})
    seen = []
    real = ev.attack_points

    def spy(attack, *a, **k):
        seen.append(attack.attack.freeze_fooled)
        return real(attack, *a, **k)
    monkeypatch.setattr(ev, "attack_points", spy)
    frozen = evaluate(net, x, y, [0.15], plan, cascade=False, progress=False, cache=False)
    monkeypatch.setattr(ProtocolVariant, "crafts_on_judge", property(lambda self: False))
    stepped = evaluate(net, x, y, [0.15], plan, cascade=False, progress=False, cache=False)
    assert seen == [protocol != "cross-solver", False]
    assert frozen["rows"][0]["robust"] == stepped["rows"][0]["robust"]
    assert frozen["rows"][0]["robust"]["k"] < frozen["clean"]["k"]  # points were fooled, so some were frozen
