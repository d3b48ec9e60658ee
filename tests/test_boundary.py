"""The Boundary attack's contract (natrob.attacks.boundary), checked as properties of what it returns rather than
against a frozen copy of its code: every example it reports is misclassified, inside [0, 1] and of the size it
reports; a point it could not attack stays the clean image at infinite size; with a fixed seed more queries never
enlarge an example (each accepted step moves towards x, the box clamp never moves away), and the walk shrinks the
start it found; the budget is spent exactly while any point is still walked; as an attack at eps it returns
only misclassified examples inside the eps-ball."""
import pytest
import torch

from natrob.attacks import BoundaryAttack
from natrob.attacks.boundary import BoundaryResult, robust_curve
from natrob.models import build_model
from natrob.train import TrainConfig, train


@pytest.fixture(scope="module")
def pts(digits):
    return digits.test_x[:40], digits.test_y[:40]


@torch.no_grad()
def _check_contract(attack: BoundaryAttack, model, x, y, res: BoundaryResult):
    """What every run must satisfy, whatever the model, seed and budget."""
    assert res.x_adv.shape == x.shape and res.success.shape == res.linf.shape == res.l2.shape == y.shape
    assert res.x_adv.min() >= 0 and res.x_adv.max() <= 1  # images stay in the box
    found, walked = res.success, res.success & (res.linf > 0)
    assert (model(res.x_adv).argmax(1)[found] != y[found]).all()  # every reported example is adversarial, judged in
    # the batch the attack judged it in (a point on the boundary can flip in another batch's rounding: AVX2 kernels)
    # a point without an example: the clean image, at infinite size
    assert torch.equal(res.x_adv[~found], x[~found])
    assert torch.isinf(res.linf[~found]).all() and torch.isinf(res.l2[~found]).all()
    # the reported sizes are the distances of the returned examples
    d = (res.x_adv - x).flatten(1)
    assert torch.allclose(res.linf[found], d[found].abs().amax(1), atol=1e-6)
    assert torch.allclose(res.l2[found], d[found].norm(dim=1), atol=1e-5)
    # a clean misclassification is its own example, at size 0, and is not walked
    mis = model(x).argmax(1) != y
    assert found[mis].all() and (res.linf[mis] == 0).all() and torch.equal(res.x_adv[mis], x[mis])
    # queries: every model call counts; while a point is walked the whole budget is spent
    assert 1 <= res.queries <= attack.queries
    if walked.any():
        assert res.queries == attack.queries


@pytest.mark.parametrize("params", [
    dict(seed=0),
    dict(seed=3, spherical_step=0.3, source_step=0.05, step_adaptation=2.0),
    dict(seed=2, init_tries=1),
])
def test_more_queries_never_enlarge_an_example(trained_cnn, pts, params):
    """One seed, growing budgets: the same points are attacked (the start is found within the smallest budget),
    no example ever grows, and the walk shrinks most of them well below its start."""
    x, y = pts
    budgets = (70, 150, 400)  # 70 > 1 + 50 noise draws + 10 bisections: every budget sees the same start
    runs = []
    for q in budgets:
        attack = BoundaryAttack(queries=q, **params)
        res = attack.run(trained_cnn, x, y)
        _check_contract(attack, trained_cnn, x, y, res)
        runs.append(res)
    walked = runs[0].success & (runs[0].linf > 0)
    assert int(walked.sum()) >= 25  # a trained net, uniform-noise starts: most points get one
    for a, b in zip(runs, runs[1:]):
        assert torch.equal(a.success, b.success)
        assert (b.l2[walked] <= a.l2[walked] * (1 + 1e-5) + 1e-6).all()
    shrunk = runs[-1].l2[walked] < (1 - 1e-3) * runs[0].l2[walked]
    assert shrunk.float().mean() >= 0.75  # the walk goes on shrinking most examples (about 90% here)


@pytest.mark.parametrize("seed", [0, 1])
def test_never_worse_than_its_start(trained_cnn, pts, seed):
    """With one noise draw the initialisation costs exactly 1 + 1 + 10 calls: a 12-query run returns the start
    (misclassified noise blended towards x); a longer run with that seed keeps every point at most that far."""
    x, y = pts
    start_attack = BoundaryAttack(queries=12, seed=seed, init_tries=1)
    start = start_attack.run(trained_cnn, x, y)
    _check_contract(start_attack, trained_cnn, x, y, start)
    walked = start.success & (start.linf > 0)
    assert walked.any() and start.queries == 12
    for q in (13, 40, 300):
        attack = BoundaryAttack(queries=q, seed=seed, init_tries=1)
        res = attack.run(trained_cnn, x, y)
        _check_contract(attack, trained_cnn, x, y, res)
        assert torch.equal(res.success, start.success)
        assert (res.l2[walked] <= start.l2[walked] * (1 + 1e-5) + 1e-6).all()
    assert (res.l2[walked] < (1 - 1e-3) * start.l2[walked]).float().mean() >= 0.75  # about 90% here


def test_budget_runs_out_inside_the_initialisation(trained_cnn, pts):
    """8 queries: one clean check, noise draws, then bisection until the budget is spent; still a valid result."""
    x, y = pts
    attack = BoundaryAttack(queries=8, seed=1)
    res = attack.run(trained_cnn, x, y)
    _check_contract(attack, trained_cnn, x, y, res)
    assert res.queries == 8


def test_as_an_attack_at_eps_returns_only_examples_inside_the_ball(trained_cnn, pts):
    """attack(model, x, y) at eps: a changed point is misclassified and within eps of x; the rest are clean
    images; the robust count per eps is non-increasing and matches the run's sizes."""
    x, y = pts
    run = BoundaryAttack(queries=300, seed=0).run(trained_cnn, x, y)
    clean_correct = trained_cnn(x).argmax(1) == y
    eps_list = [0.05, 0.1, 0.2, 0.4, 1.0]
    curve = robust_curve(run, clean_correct, eps_list)
    assert curve == sorted(curve, reverse=True) and curve[0] <= int(clean_correct.sum())
    assert curve[-1] == int((clean_correct & ~run.success).sum())  # at eps 1 every example found counts
    for eps, robust in zip(eps_list, curve):
        x_adv = BoundaryAttack(eps=eps, queries=300, seed=0)(trained_cnn, x, y)
        changed = (x_adv != x).flatten(1).any(1)
        assert ((x_adv - x).abs().flatten(1).amax(1) <= eps + 1e-6).all()
        with torch.no_grad():
            correct = trained_cnn(x_adv).argmax(1) == y
        assert not correct[changed].any()
        assert int((clean_correct & correct).sum()) == robust
    assert robust_curve(run, clean_correct, [0.1])[0] > 0 and curve[-1] < curve[0]  # the curve does move


def test_same_seed_same_result_other_seed_other_walk(trained_cnn, pts):
    x, y = pts
    a = BoundaryAttack(queries=100, seed=4).run(trained_cnn, x, y)
    b = BoundaryAttack(queries=100, seed=4).run(trained_cnn, x, y)
    c = BoundaryAttack(queries=100, seed=5).run(trained_cnn, x, y)
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.l2, b.l2) and a.queries == b.queries
    assert not torch.equal(a.x_adv, c.x_adv)


def test_misclassified_and_failed_starts(digits):
    """A net trained for one epoch: some points start misclassified (distance 0, not walked) and, with one
    noise draw, some find no start (no example, infinite size); the rest are walked. All within the contract."""
    torch.manual_seed(0)
    model = build_model("cnn", digits)
    train(model, digits, TrainConfig(epochs=1, lr=3e-3, batch_size=64), progress=False)
    model.eval()
    x, y = digits.test_x[:40], digits.test_y[:40]
    attack = BoundaryAttack(queries=200, seed=5, init_tries=1)
    res = attack.run(model, x, y)
    _check_contract(attack, model, x, y, res)
    assert (res.linf == 0).any() and torch.isinf(res.linf).any() and (res.success & (res.linf > 0)).any()
    assert res.queries == 200
