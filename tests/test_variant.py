"""Protocol variants are attack wrappers that go through the harness: each does what its label says, is judged by
the evaluated model, and the harness checks it against its own threat model, not the correct one."""
import pytest
import torch

from natrob.attacks import FGSM, PGD, ProtocolVariant
from natrob.attacks.variant import ProbabilitiesOut
from natrob.errors import ConfigError
from natrob.evaluate import evaluate
from natrob.models import build_model
from natrob.protocols import variant_plan
from natrob.reference import paper_attack


@pytest.fixture(scope="module")
def net(digits):
    torch.manual_seed(0)
    return build_model("odenet", digits, channels=8, t1=1.0).eval()


def _plan(protocol, **kw):
    return variant_plan(protocol, paper_attack(3, 0.1), **kw)


def test_each_variant_runs_through_the_harness_inside_its_own_threat_model(net, digits):
    x, y = digits.test_x[:8], digits.test_y[:8]
    for protocol in ("no-clip", "normalised-eps", "probabilities", "cross-solver"):
        plan = _plan(protocol, craft_solver={"rtol": 0.1, "atol": 0.1})
        res = evaluate(net, x, y, [0.3], plan, cascade=False, progress=False, cache=False)
        assert not res["errors"], (protocol, res["errors"])
        for row in res["rows"]:
            assert row["robust"]["k"] <= res["clean"]["k"], protocol
            assert row["max_linf_pixel"] <= 0.3 + 1e-6, protocol
            assert row["outside_box"] == (protocol == "no-clip"), protocol
            assert "(" + protocol + ")" in row["attack"]


def test_probabilities_take_a_second_softmax_and_cross_solver_crafts_on_a_twin(net, digits):
    x, y = digits.test_x[:4], digits.test_y[:4]
    p = ProbabilitiesOut(net)(x)
    assert torch.allclose(p.sum(1), torch.ones(4), atol=1e-5) and (p >= 0).all()
    v = ProtocolVariant("cross-solver", FGSM(0.3), craft_solver={"rtol": 0.1, "atol": 0.1})
    twin = v._source(net)
    assert twin is not net and twin.solver_config()["rtol"] == 0.1 and net.solver_config()["rtol"] != 0.1


def test_the_harness_rejects_a_variant_that_leaves_its_ball(net, digits):
    x, y = digits.test_x[:4], digits.test_y[:4]
    v = ProtocolVariant("no-clip", PGD(0.3, alpha=0.1, steps=2))
    far = x + 0.5
    assert not v.admits(x, far, 1e-6)          # outside the eps-ball: never admitted
    assert v.admits(x, (x + 0.3).clamp(max=1.3), 1e-6)  # outside [0, 1] only: what no-clip allows
    assert x.max() > 0.7 and not PGD(0.3).admits(x, x + 0.3, 1e-6)  # the correct threat model clips


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
