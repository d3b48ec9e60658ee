import pytest
import torch

from natrob.errors import CheckpointError, ConfigError, SolverFailure, UnknownNameError
from natrob.models import MODELS, build_model
from natrob.train import load_checkpoint, load_into, save_checkpoint

SMALL = {"resnet": dict(depth=8), "resnet56": {}, "resnet3block": {}, "resnet50": dict(width=8, blocks=(1, 1, 1, 1)),
         "preact_resnet18": dict(width=8), "odenet": dict(channels=16, t1=1.0), "cnn": {}, "linear": {}}
SPECS = {"digits": (1, 8), "mnist": (1, 28), "cifar10": (3, 32)}


@pytest.mark.parametrize("data", list(SPECS))
@pytest.mark.parametrize("name", list(MODELS))
def test_every_model_maps_images_to_logits(name, data):
    c, s = SPECS[data]
    spec = {"in_channels": c, "num_classes": 10, "mean": (0.5,) * c, "std": (0.25,) * c}
    kwargs = dict(SMALL[name])
    if name == "linear":
        kwargs["image_size"] = s
    model = build_model(name, spec=spec, **kwargs).eval()
    out = model(torch.rand(2, c, s, s))
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_unknown_model():
    with pytest.raises(UnknownNameError, match="model='vit'"):
        build_model("vit", spec={})


def test_resnet_depth_must_be_6n_plus_2():
    with pytest.raises(ConfigError, match="depth=10"):
        build_model("resnet", spec={"in_channels": 1}, depth=10)


def test_resnet_h0_leaves_stage_input_unchanged():
    torch.manual_seed(0)
    model = build_model("resnet", spec={"in_channels": 3, "num_classes": 10}, depth=20, h=0.0).eval()
    x = torch.rand(4, 3, 16, 16)
    y0 = model.features(x)
    stage1 = model.stages[:3]  # the first stage: no downsampling, so every block is the identity at h = 0
    assert torch.equal(stage1(y0), y0)
    expected = y0
    for block in model.stages:
        expected = block.shortcut(expected)
    assert torch.allclose(model.stages(y0), expected)
    # and with h > 0 the branch does contribute
    model_h = build_model("resnet", spec={"in_channels": 3, "num_classes": 10}, depth=20, h=1.0).eval()
    assert not torch.allclose(model_h.stages[:3](y0), y0)


def test_odenet_euler_equals_weight_tied_resnet():
    """§3.1: n Euler steps of the ODE = the same residual function applied n times with h = t1 / n."""
    torch.manual_seed(0)
    for n in (1, 5, 20):
        model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=16, t1=100.0,
                            method="euler", step_size=100.0 / n).eval()
        x = torch.rand(3, 1, 8, 8)
        with torch.no_grad():
            ode, res = model(x), model.euler_resnet(x, n)
        assert torch.allclose(ode, res, rtol=1e-4, atol=1e-4 * ode.abs().max().item())
        assert model.nfe_forward == n


def _count_steps(func, suffix=""):
    """Count the steps torchdiffeq reports through its callbacks (``suffix='_adjoint'``: the adjoint solve's)."""
    steps = {"accepted": 0, "rejected": 0}
    for kind in steps:
        setattr(func, f"callback_{kind[:-2]}_step{suffix}",
                lambda t0, y0, dt, kind=kind: steps.__setitem__(kind, steps[kind] + 1))
    return steps


@pytest.mark.parametrize("impl", ["natrob", "torchdiffeq"])
@pytest.mark.parametrize("t1, steps", [(1.0, 7), (100.0, 9)])
def test_dopri5_nfe_on_the_zero_field(impl, t1, steps):
    """f = 0 (the last GroupNorm's weight and bias zeroed): every error estimate is exactly 0, so every step is
    accepted and the next one is 10x longer (torchdiffeq's ifactor); |f(y0)| = 0 makes the initial step 1e-6.
    From 0 the steps reach t1 after n where 1e-6 (10^n - 1) / 9 >= t1: 7 steps for t1 = 1 (0.11 after 6),
    9 for t1 = 100 (11.1 after 8). Dormand-Prince is FSAL: f(y0), the initial-step probe, then 6 per step."""
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=t1, solver_impl=impl)
    with torch.no_grad():
        model.func.norm3.weight.zero_()
        model.func.norm3.bias.zero_()
    counted = _count_steps(model.func)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        y0 = model.features(x)
        assert torch.allclose(model.integrate(y0), y0, atol=1e-5)  # the solution of y' = 0
    assert counted == {"accepted": steps, "rejected": 0}
    assert model.nfe_forward == 2 + 6 * steps


@pytest.mark.parametrize("impl", ["natrob", "torchdiffeq"])
def test_odenet_counts_forward_and_backward_nfe(impl):
    """A random field, steps counted by torchdiffeq's callbacks: forward NFE = 2 + 6 per step (accepted or
    rejected); direct back-propagation makes one VJP per forward evaluation on the path to the output (all of
    them when no step was rejected); the adjoint solve follows the same rule, with one VJP per call of f."""
    torch.manual_seed(0)
    for adjoint in (False, True):
        model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=1.0,
                            adjoint=adjoint, solver_impl=impl)
        fwd, bwd = _count_steps(model.func), _count_steps(model.func, "_adjoint")
        x = torch.rand(2, 1, 8, 8)
        out = model(x)
        assert fwd["accepted"] >= 2
        assert model.nfe_forward == model.func.calls == 2 + 6 * (fwd["accepted"] + fwd["rejected"])
        out.sum().backward()
        if not adjoint:
            assert bwd == {"accepted": 0, "rejected": 0} and model.func.calls == model.nfe_forward
            assert model.nfe_backward == model.func.vjps
            if fwd["rejected"] == 0:
                assert model.nfe_backward == model.nfe_forward
            else:
                assert 6 * fwd["accepted"] <= model.nfe_backward < model.nfe_forward
        else:
            adjoint_calls = model.func.calls - model.nfe_forward
            assert bwd["accepted"] >= 1 and adjoint_calls == 2 + 6 * (bwd["accepted"] + bwd["rejected"])
            assert model.func.vjps == adjoint_calls  # each augmented evaluation takes one VJP through f
            assert model.nfe_backward == adjoint_calls + model.func.vjps  # as nfe_backward defines it


def test_odenet_paper_configuration():
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=128, conv_layers=4, t1=100.0)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert len(convs) == 4 and convs[0].out_channels == 128 and model.t1 == 100.0 and model.method == "dopri5"
    cifar = build_model("odenet", spec={"in_channels": 3, "num_classes": 10}, channels=256, conv_layers=5, t1=500.0)
    assert len([m for m in cifar.modules() if isinstance(m, torch.nn.Conv2d)]) == 5


def test_odenet_nfe_cap_raises_solver_failure():
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=100.0, max_nfe=5)
    with pytest.raises(SolverFailure, match="max_nfe=5"):
        model(torch.rand(2, 1, 8, 8))


def test_checkpoint_of_other_architecture_is_refused(tmp_path):
    a = build_model("cnn", spec={"in_channels": 1, "num_classes": 10})
    b = build_model("resnet", spec={"in_channels": 1, "num_classes": 10}, depth=8)
    save_checkpoint(tmp_path / "a.pt", a)
    with pytest.raises(CheckpointError, match="architecture"):
        load_into(b, load_checkpoint(tmp_path / "a.pt"))


def test_corrupt_checkpoint_is_reported(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(tmp_path / "bad.pt")


def test_natrob_dopri5_matches_torchdiffeq():
    """natrob's lean dopri5 is the same method: same outputs, same NFE, same direct gradients."""
    torch.manual_seed(0)
    model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=100.0)
    x = torch.rand(4, 1, 8, 8, requires_grad=True)
    out = {}
    for impl in ("torchdiffeq", "natrob"):
        model.configure_solver(solver_impl=impl)
        y = model(x)
        (g,) = torch.autograd.grad(y.square().sum(), x)
        out[impl] = (y.detach(), g, model.nfe_forward, model.nfe_backward)
    (ya, ga, na, ba), (yb, gb, nb, bb) = out["torchdiffeq"], out["natrob"]
    assert na == nb and ba == bb
    assert torch.allclose(ya, yb, rtol=1e-5, atol=1e-5 * ya.abs().max().item())
    assert (ga - gb).norm() <= 1e-2 * ga.norm()
