"""The fast vector field equals the concatenated one; per-sample solves are batch-independent."""
import copy

import pytest
import torch

from natrob.errors import ConfigError, SolverFailure
from natrob.harness.prediction import predict
from natrob.models import build_model

SPEC = {"in_channels": 1, "num_classes": 10, "mean": (0.5,), "std": (0.25,)}

DOPRI5_STEP_NFE = 6  # evaluations of f per dopri5 step (first-same-as-last): one step more or fewer


def _outputs_and_input_grads(model, x):
    x = x.clone().requires_grad_()
    out = model(x)
    (g,) = torch.autograd.grad(out.square().sum(), x)
    return out.detach(), g


def _close(a, b, rel):
    return (a - b).abs().max() <= rel * a.abs().max()


@pytest.mark.parametrize("size", [8, 28])
def test_fast_f_equals_concat_on_random_weights(size):
    torch.manual_seed(0)
    model = build_model("odenet", spec=SPEC, channels=16, conv_layers=4, t1=10.0)
    x = torch.rand(6, 1, size, size)
    # f itself in float64: the two formulations are the same function, so they agree to rounding
    func = copy.deepcopy(model.func).double()
    t = torch.tensor(3.7, dtype=torch.float64)
    y = model.features(x).detach().double().requires_grad_()
    fs = {}
    for impl in ("concat", "fast"):
        func.impl = impl
        f = func(t, y)
        grads = torch.autograd.grad(f.square().sum(), [y, *func.parameters()])
        fs[impl] = (f.detach(), grads)
    (fa, ga), (fb, gb) = fs["concat"], fs["fast"]
    assert _close(fa, fb, 1e-10)
    # gradients w.r.t. the state and every weight, the time slices included (a bias in front of a GroupNorm
    # has a zero gradient, so compare on the scale of all of them)
    assert _close(torch.cat([g.flatten() for g in ga]), torch.cat([g.flatten() for g in gb]), 1e-10)
    # the whole solve, outputs and input gradients: in float64, because with random weights the 60-step solve
    # amplifies float32 rounding in the input gradient to a few percent whichever f is used
    outs = {}
    model.double()
    for impl in ("concat", "fast"):
        model.configure_solver(f_impl=impl)
        outs[impl] = (*_outputs_and_input_grads(model, x.double()), model.nfe_forward)
    (oa, ia, na), (ob, ib, nb) = outs["concat"], outs["fast"]
    assert na == nb and _close(oa, ob, 1e-9) and (ia - ib).norm() <= 1e-7 * ia.norm()


def test_fast_f_equals_concat_on_a_trained_model(small_odenet, digits):
    x = digits.test_x[:16]
    old = small_odenet.configure_solver(f_impl="concat")
    try:
        oa, ia = _outputs_and_input_grads(small_odenet, x)
        small_odenet.configure_solver(f_impl="fast")
        ob, ib = _outputs_and_input_grads(small_odenet, x)
    finally:
        small_odenet.configure_solver(f_impl=old["f_impl"])
    assert _close(oa, ob, 1e-4) and (ia - ib).norm() <= 1e-3 * ia.norm()
    assert (oa.argmax(1) == ob.argmax(1)).all()


def test_fast_f_keeps_checkpoints_loading():
    torch.manual_seed(0)
    old = build_model("odenet", spec=SPEC, channels=8, f_impl="concat")
    new = build_model("odenet", spec=SPEC, channels=8)
    assert new.func.impl == "fast"
    assert {k: v.shape for k, v in old.state_dict().items()} == {k: v.shape for k, v in new.state_dict().items()}
    new.load_state_dict(old.state_dict())
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert _close(old(x), new(x), 1e-4)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="f_impl='bogus'"):
        build_model("odenet", spec=SPEC, channels=8, f_impl="bogus")
    model = build_model("odenet", spec=SPEC, channels=8)
    with pytest.raises(ConfigError, match="per_sample='yes'"):
        model.configure_solver(per_sample="yes")
    assert model.solver_config()["per_sample"] is False


@pytest.fixture(scope="module")
def mixed_batch(digits):
    """64 digits images: 32 clean, 32 heavily noised (harder for the solver), interleaved."""
    g = torch.Generator().manual_seed(1)
    x = digits.test_x[:64].clone()
    noisy = (x[1::2] + 0.8 * torch.randn(x[1::2].shape, generator=g)).clamp(0, 1)
    x[1::2] = noisy
    return x


@pytest.fixture(scope="module")
def random_odenet():
    torch.manual_seed(0)
    return build_model("odenet", spec=SPEC, channels=16, conv_layers=4, t1=100.0).eval()


def test_per_sample_batched_equals_one_at_a_time(random_odenet, mixed_batch):
    model, x = random_odenet, mixed_batch
    model.configure_solver(per_sample=True)
    try:
        with torch.no_grad():
            batched = model(x)
            nfe = model.nfe_per_sample.clone()
            single, single_nfe = [], []
            for i in range(len(x)):
                single.append(model(x[i:i + 1]))
                single_nfe.append(int(model.nfe_per_sample[0]))
            single = torch.cat(single)
    finally:
        model.configure_solver(per_sample=False)
    assert _close(batched, single, 1e-4)
    assert torch.equal(batched.argmax(1), single.argmax(1))
    # a sample's step sizes are its own, so its NFE does not depend on its batch-mates; batched kernels may round the
    # last bits differently from a one-image batch, which can move an accept/reject decision by one step (6 NFE)
    diff = (nfe - torch.tensor(single_nfe)).abs()
    assert int(diff.max()) <= DOPRI5_STEP_NFE and int((diff == 0).sum()) >= 0.9 * len(x), (nfe.tolist(), single_nfe)
    assert len(set(nfe.tolist())) > 1  # the samples really took different numbers of steps
    assert nfe.max() > nfe.min() and model.solver_config()["per_sample"] is False
    # and each equals the shared-step solver run on that image alone (same method, same controller)
    with torch.no_grad():
        for i in range(0, len(x), 9):
            alone = model(x[i:i + 1])
            assert abs(model.nfe_forward - int(nfe[i])) <= DOPRI5_STEP_NFE
            assert _close(alone[0], batched[i], 1e-4)


def test_per_sample_gradients_are_batch_independent(random_odenet, mixed_batch):
    model, x = random_odenet, mixed_batch[:8]
    model.configure_solver(per_sample=True)
    try:
        _, g_batched = _outputs_and_input_grads(model, x)
        g_single = torch.cat([_outputs_and_input_grads(model, x[i:i + 1])[1] for i in range(len(x))])
    finally:
        model.configure_solver(per_sample=False)
    assert (g_batched - g_single).norm() <= 1e-3 * g_single.norm()
    _, g_shared = _outputs_and_input_grads(model, x[:1])  # shared-step solve of one image
    assert (g_shared[0] - g_single[0]).norm() <= 1e-3 * g_shared.norm()


def test_per_sample_nfe_cap_fails_only_the_samples_that_need_more(random_odenet, mixed_batch):
    model, x = random_odenet, mixed_batch
    model.configure_solver(per_sample=True)
    try:
        with torch.no_grad():
            model(x)
        nfe = model.nfe_per_sample.clone()
        cap = int(nfe.min())  # the easiest samples fit, the others need more
        model.configure_solver(max_nfe=cap)
        with pytest.raises(SolverFailure) as info, torch.no_grad():
            model(x)
        assert torch.equal(info.value.failed, nfe > cap)
        labels, _ = predict(model, x)
    finally:
        model.configure_solver(per_sample=False, max_nfe=None)
    assert torch.equal(labels < 0, nfe > cap)
    assert 0 < int((labels < 0).sum()) < len(x)


def test_predict_switches_ode_nets_to_per_sample_and_back(random_odenet, mixed_batch):
    batched, _ = predict(random_odenet, mixed_batch, batch_size=64)
    single, _ = predict(random_odenet, mixed_batch, per_sample=True)
    assert torch.equal(batched, single)
    assert random_odenet.solver_config()["per_sample"] is False
