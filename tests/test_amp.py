"""natrob.harness.amp: float16 autocast computed as a GPU computes it (float16 storage, float32 sums) with float32
kernels."""
import torch
import torch.nn.functional as F
from torch import nn

from natrob.harness.amp import float16_storage

F16_TINY = 2.0 ** -24  # float16's smallest subnormal


def _amp(fn, x, emulated):
    with torch.autocast("cpu", dtype=torch.float16):
        if emulated:
            with float16_storage():
                return fn(x)
        return fn(x)


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.Flatten(),
                         nn.Linear(8 * 6 * 6, 10))


def test_outputs_and_gradients_are_float16_as_under_autocast():
    net, x = _net(), torch.rand(4, 3, 6, 6, requires_grad=True)
    z = _amp(net, x, emulated=True)
    assert z.dtype == torch.float16
    g, = torch.autograd.grad(z.float().sum(), x)
    assert g.dtype == torch.float32 and torch.equal(g, g.half().float())  # stored in float16 on its way back


def test_agrees_with_torchs_cpu_float16_kernels_to_the_last_bits():
    net, x = _net(), torch.rand(16, 3, 6, 6)
    net.requires_grad_(False)
    a, b = _amp(net, x, emulated=True).float(), _amp(net, x, emulated=False).float()
    assert torch.allclose(a, b, rtol=4 * 2.0 ** -10, atol=4 * 2.0 ** -10 * float(b.detach().abs().max()))
    xa, xb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ga, = torch.autograd.grad(_amp(net, xa, True).float().logsumexp(1).sum(), xa)
    gb, = torch.autograd.grad(_amp(net, xb, False).float().logsumexp(1).sum(), xb)
    assert F.cosine_similarity(ga.flatten(), gb.flatten(), dim=0) > 0.999


def test_a_gradient_below_half_of_float16s_smallest_subnormal_is_lost_and_one_above_is_kept():
    """A linear layer with weight 1: the input gradient is the output gradient, rounded to float16 (round to
    nearest: 1.7 subnormals -> 2, 0.34 -> 0). Float32 sums keep float16's subnormals, as a GPU's tensor cores do."""
    lin = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        lin.weight.fill_(1.0)
    for grad_out, expect in ((1.7 * F16_TINY, 2 * F16_TINY), (0.34 * F16_TINY, 0.0), (3.0, 3.0)):
        x = torch.ones(1, 1, requires_grad=True)
        z = _amp(lin, x, emulated=True)
        g, = torch.autograd.grad(z.float(), x, torch.tensor([[grad_out]]))
        assert g.item() == expect, (grad_out, g.item())


def test_only_float16_autocast_is_taken_over():
    """Outside float16 autocast (a nested autocast(enabled=False), bfloat16 autocast) and on float64 the ops run as
    they say; an op autocast casts but the emulation does not take over (conv1d) runs exactly as autocast runs it;
    group_norm runs in float32, as CUDA autocast runs it."""
    conv, x = nn.Conv2d(2, 2, 3), torch.rand(1, 2, 5, 5)
    with torch.autocast("cpu", dtype=torch.float16), float16_storage():
        assert conv(x).dtype == torch.float16
        with torch.autocast("cpu", enabled=False):
            assert torch.equal(conv(x), F.conv2d(x, conv.weight, conv.bias))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert conv(x).dtype == torch.bfloat16
        assert conv.double()(x.double()).dtype == torch.float64
        conv.float()
        assert F.group_norm(conv(x), 1).dtype == torch.float32
        w = torch.rand(2, 2, 3)
        inside = F.conv1d(x[:, :, 0], w)
    with torch.autocast("cpu", dtype=torch.float16):
        plain = F.conv1d(x[:, :, 0], w)
    assert inside.dtype == plain.dtype == torch.float16 and torch.equal(inside, plain)


def test_the_float16_amp_precision_runs_the_emulation_on_a_cpu(monkeypatch):
    """Precision.FLOAT16_AMP turns natrob.harness.amp on for a CPU model; FLOAT16_AMP_CPU (torch's kernels) does not."""
    import contextlib

    from natrob.harness import precision
    entered = []

    @contextlib.contextmanager
    def spy():
        entered.append(True)
        with float16_storage():
            yield
    monkeypatch.setattr(precision, "float16_storage", spy)
    net = _net()
    for proto, expect in ((precision.Precision.FLOAT16_AMP, 1), (precision.Precision.FLOAT16_AMP_CPU, 0)):
        entered.clear()
        model, _, ctx = precision.at_precision(net, proto)
        with ctx():
            assert model(torch.rand(2, 3, 6, 6)).dtype == torch.float16
        assert len(entered) == expect, proto
