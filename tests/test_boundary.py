import pytest
import torch

from natrob.attacks import BoundaryAttack
from natrob.attacks.boundary import BoundaryResult
from natrob.models import build_model
from natrob.train import TrainConfig, train


@torch.no_grad()
def _reference_run(attack, model, x, y) -> BoundaryResult:
    """BoundaryAttack.run as it was before it was split into named steps (commit 2a71458), kept verbatim so
    that the split is checked to draw the same random numbers in the same order and return the same tensors."""
    is_adv = lambda inp: model(inp).argmax(1) != y
    gen = torch.Generator(device=x.device)
    gen.manual_seed(attack.seed if attack.seed is not None else int(torch.seed() % 2**31))
    n, flat = len(y), (lambda t: t.reshape(len(t), -1))
    used = 1
    adv = x.clone()
    success = is_adv(x)
    need = ~success
    for _ in range(attack.init_tries):
        if not need.any() or used >= attack.queries:
            break
        noise = torch.rand(x.shape, generator=gen, device=x.device)
        ok = is_adv(noise) & need
        used += 1
        adv[ok], success, need = noise[ok], success | ok, need & ~ok
    lo, hi = torch.zeros(n, device=x.device), torch.ones(n, device=x.device)
    active = success & (flat(adv - x).abs().amax(1) > 0)
    for _ in range(10):
        if used >= attack.queries:
            break
        mid = (lo + hi) / 2
        cand = x + mid.view(-1, 1, 1, 1) * (adv - x)
        ok = is_adv(cand)
        used += 1
        hi = torch.where(active & ok, mid, hi)
        lo = torch.where(active & ~ok, mid, lo)
    adv = torch.where(active.view(-1, 1, 1, 1), x + hi.view(-1, 1, 1, 1) * (adv - x), adv)
    sph = torch.full((n,), attack.spherical_step, device=x.device)
    src = torch.full((n,), attack.source_step, device=x.device)
    window = torch.zeros(n, device=x.device)
    k = 0
    while used < attack.queries and active.any():
        diff = flat(x - adv)
        dist = diff.norm(dim=1).clamp_min(1e-12)
        unit = diff / dist[:, None]
        eta = torch.randn(diff.shape, generator=gen, device=x.device)
        eta = eta - (eta * unit).sum(1, keepdim=True) * unit
        eta = eta / eta.norm(dim=1, keepdim=True).clamp_min(1e-12) * (sph * dist)[:, None]
        cand = flat(adv) + eta
        to_x = flat(x) - cand
        cand = flat(x) - to_x / to_x.norm(dim=1, keepdim=True).clamp_min(1e-12) * dist[:, None]
        cand = cand + src[:, None] * (flat(x) - cand)
        cand = cand.clamp(0, 1).view_as(x)
        ok = is_adv(cand) & active
        used += 1
        adv[ok] = cand[ok]
        window += ok.float()
        k += 1
        if k % 10 == 0:
            rate = window / 10
            up, down = rate > 0.5, rate < 0.2
            sph = torch.where(up, sph * attack.step_adaptation, torch.where(down, sph / attack.step_adaptation, sph))
            src = torch.where(up, src * attack.step_adaptation, torch.where(down, src / attack.step_adaptation, src))
            src, sph = src.clamp(max=0.5), sph.clamp(max=1.0)
            window.zero_()
    d = flat(adv - x)
    inf = torch.full((n,), float("inf"), device=x.device)
    return BoundaryResult(adv, success, torch.where(success, d.abs().amax(1), inf),
                          torch.where(success, d.norm(dim=1), inf), used)


def _assert_same(a: BoundaryResult, b: BoundaryResult):
    assert a.queries == b.queries
    assert torch.equal(a.success, b.success)
    assert torch.equal(a.x_adv, b.x_adv)
    assert torch.equal(a.linf, b.linf) and torch.equal(a.l2, b.l2)


@pytest.mark.parametrize("params", [
    dict(queries=300, seed=0),
    dict(queries=300, seed=3, spherical_step=0.3, source_step=0.05, step_adaptation=2.0),
    dict(queries=8, seed=1),          # the budget runs out inside the binary search
    dict(queries=300, seed=2, init_tries=1),
])
def test_boundary_split_equals_reference(trained_cnn, digits, params):
    """Same seed, same points: the split run returns exactly what the single-function run returned."""
    x, y = digits.test_x[:40], digits.test_y[:40]
    attack = BoundaryAttack(**params)
    _assert_same(attack.run(trained_cnn, x, y), _reference_run(attack, trained_cnn, x, y))


def test_boundary_split_equals_reference_with_misclassified_and_failed_starts(digits):
    """A net trained for one epoch: some points start misclassified (distance 0, not walked) and, with one
    noise draw, some find no start (no example, infinite size); the rest are walked."""
    torch.manual_seed(0)
    model = build_model("cnn", digits)
    train(model, digits, TrainConfig(epochs=1, lr=3e-3, batch_size=64), progress=False)
    model.eval()
    x, y = digits.test_x[:40], digits.test_y[:40]
    attack = BoundaryAttack(queries=200, seed=5, init_tries=1)
    res = attack.run(model, x, y)
    _assert_same(res, _reference_run(attack, model, x, y))
    assert (res.linf == 0).any() and torch.isinf(res.linf).any() and (res.success & (res.linf > 0)).any()
