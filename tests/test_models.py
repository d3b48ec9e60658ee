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


def test_odenet_counts_forward_and_backward_nfe():
    torch.manual_seed(0)
    for adjoint in (False, True):
        model = build_model("odenet", spec={"in_channels": 1, "num_classes": 10}, channels=8, t1=1.0, adjoint=adjoint)
        x = torch.rand(2, 1, 8, 8)
        model(x).sum().backward()
        assert model.nfe_forward >= 6  # dopri5 takes at least one 6-stage step
        assert model.nfe_backward >= 6


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
