import warnings

import pytest
import torch

from natrob.attacks import ATTACKS, DI2FGSM, FGSM, PGD, BoundaryAttack, make_attack
from natrob.errors import ConfigError, UnknownNameError
from natrob.harness.evaluate import evaluate

FAST = {"fgsm": {}, "adam-step": {}, "pgd": dict(steps=10, alpha=0.03), "di2fgsm": dict(steps=5),
        "boundary": dict(queries=60),
        "autoattack": dict(n_iter=5, n_queries=30, n_target_classes=2),
        "autoattack-rand": dict(n_iter=5, eot_iter=2), "apgd-ce": dict(n_iter=5),
        "apgd-t": dict(n_iter=5, n_target_classes=2), "fab-t": dict(n_iter=5, n_target_classes=2),
        "square": dict(n_queries=30), "random-noise": dict(trials=3), "uniform-noise": dict(trials=2),
        "constant-image": {}}


@pytest.fixture(autouse=True)
def _seeded():
    """Random starts (PGD, noise, Square) drawn from a fixed seed in every test, whatever ran before it."""
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def batch(digits):
    return digits.test_x[:40], digits.test_y[:40]


# L-inf attacks that move every pixel to a face of the ball (a sign step, or PGD/APGD/Square iterates that end
# on it); the rest (Boundary, FAB, uniform noise, the constant image) may stop inside it
REACH_RADIUS = ("fgsm", "adam-step", "pgd", "di2fgsm", "autoattack", "autoattack-rand", "apgd-ce", "apgd-t", "square",
                "random-noise")


# the two wrappers are tested below (transfer) and in test_variant (protocol variants)
@pytest.mark.parametrize("name", [n for n in ATTACKS if n not in ("transfer", "protocol-variant")])
@pytest.mark.parametrize("eps", [0.05, 0.3])
def test_perturbation_stays_in_ball_and_box(name, eps, trained_cnn, batch):
    """Each real attack's output lies in the eps-ball and [0, 1] by the test's own arithmetic; it is its search's
    own point projected onto exactly that set (a ball too small or too large, or a missing clip, differs); and the
    attacks that search the ball's faces reach its radius (an attack that returns its input does not)."""
    x, y = batch
    attack = make_attack(name, eps=eps, **FAST[name])
    torch.manual_seed(1)
    x_adv = attack(trained_cnn, x, y)
    torch.manual_seed(1)  # the same random start: the raw point __call__ projected
    raw = attack.perturb(trained_cnn, x.detach().clone(), y)
    assert x_adv.shape == x.shape
    moved = (x_adv - x).abs().amax().item()
    assert moved <= eps + 1e-6
    assert x_adv.min().item() >= 0.0 and x_adv.max().item() <= 1.0
    expected = torch.minimum(torch.maximum(raw.detach(), x - eps), x + eps).clamp(0.0, 1.0)
    off = int(((x_adv - expected).abs() > 1e-6).sum())
    assert off == 0, f"{off} pixels differ from the projection of the attack's own search"
    if name in REACH_RADIUS:
        assert moved >= eps - 1e-6, (name, moved)


def test_transfer_in_ball(trained_cnn, digits, batch):
    from natrob.models import build_model
    source = build_model("resnet3block", digits).eval()
    x, y = batch
    x_adv = make_attack("transfer", source=source, attack=FGSM(0.1))(trained_cnn, x, y)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1


def test_pgd_never_weaker_than_fgsm(trained_cnn, digits):
    x, y = digits.test_x[:150], digits.test_y[:150]
    for eps in (0.03, 0.06, 0.1, 0.2):
        fgsm = int((trained_cnn(FGSM(eps)(trained_cnn, x, y)).argmax(1) == y).sum())
        pgd = int((trained_cnn(PGD(eps, alpha=eps / 4, steps=40)(trained_cnn, x, y)).argmax(1) == y).sum())
        assert pgd <= fgsm, (eps, pgd, fgsm)


def test_robust_accuracy_does_not_increase_with_eps(trained_cnn, digits):
    res = evaluate(trained_cnn, digits.test_x[:100], digits.test_y[:100], [0.0, 0.02, 0.05, 0.1, 0.2, 0.4],
                   [{"name": "fgsm"}, {"name": "pgd", "steps": 20, "alpha": 0.02}], progress=False)
    worst = [w["robust"]["k"] for w in res["worst_case"]]
    assert all(a >= b for a, b in zip(worst, worst[1:])), worst
    assert worst[0] == res["clean"]["k"] and worst[-1] < 5  # of 100 points


def exact_linf_distance(model, x, y):
    """Smallest L-inf perturbation inside [0,1] that makes some class score >= the true one (linear model)."""
    W, b = model.fc.weight.detach().double(), model.fc.bias.detach().double()
    xf = x.flatten(1).double()
    out = torch.full((len(y),), float("inf"), dtype=torch.double)
    for i in range(len(y)):
        for j in range(W.shape[0]):
            if j == y[i]:
                continue
            a = W[y[i]] - W[j]
            margin = a @ xf[i] + b[y[i]] - b[j]
            if margin <= 0:
                out[i] = 0.0
                break
            room = torch.where(a > 0, xf[i], 1 - xf[i])  # how far each pixel can move in the helpful direction
            reduce = lambda r: (a.abs() * torch.clamp(room, max=r)).sum()
            if reduce(1.0) < margin:
                continue
            lo, hi = 0.0, 1.0
            for _ in range(60):
                mid = (lo + hi) / 2
                lo, hi = (lo, mid) if reduce(mid) >= margin else (mid, hi)
            out[i] = min(out[i].item(), hi)
    return out


def test_pgd_matches_exact_distance_on_linear_model(digits):
    from natrob.models import build_model
    from natrob.train import TrainConfig, train
    torch.manual_seed(0)
    model = build_model("linear", digits)
    train(model, digits, TrainConfig(epochs=10, lr=1e-2), progress=False)
    model.eval()
    x, y = digits.test_x[:120], digits.test_y[:120]
    dist = exact_linf_distance(model, x, y)
    eps = 0.1
    clearly_below, clearly_above = dist < 0.9 * eps, dist > 1.1 * eps
    assert clearly_below.sum() >= 10 and clearly_above.sum() >= 10
    # margin loss with restarts: exact on every point outside +-10% of eps
    x_adv = PGD(eps, alpha=eps / 10, steps=100, loss="cw", restarts=5)(model, x, y)
    fooled = model(x_adv).argmax(1) != y
    assert fooled[clearly_below].all()
    assert not fooled[clearly_above].any()
    # plain cross-entropy PGD is weaker near the boundary (CE is not the margin): exact below 0.8 eps
    fooled_ce = model(PGD(eps, alpha=eps / 10, steps=100)(model, x, y)).argmax(1) != y
    assert fooled_ce[dist < 0.8 * eps].all() and not fooled_ce[clearly_above].any()


# ------------------------------------------------------------------------------ library cross-checks
def test_fgsm_and_pgd_equal_torchattacks(trained_cnn, batch):
    import torchattacks
    x, y = batch
    ours = FGSM(0.1)(trained_cnn, x, y)
    theirs = torchattacks.FGSM(trained_cnn, eps=0.1)(x, y)
    assert torch.allclose(ours, theirs, atol=1e-6)
    ours = PGD(0.1, alpha=0.01, steps=40, random_start=False, return_best=False)(trained_cnn, x, y)
    theirs = torchattacks.PGD(trained_cnn, eps=0.1, alpha=0.01, steps=40, random_start=False)(x, y)
    assert (ours - theirs).abs().max() <= 1e-5


def test_difgsm_agrees_with_torchattacks(trained_cnn, digits):
    import torchattacks
    x, y = digits.test_x[:150], digits.test_y[:150]
    # without input diversity both reduce to iterative FGSM: identical up to float tolerance
    ours = DI2FGSM(0.1, steps=10, diversity_prob=0.0)(trained_cnn, x, y)
    theirs = torchattacks.DIFGSM(trained_cnn, eps=0.1, alpha=0.01, steps=10, diversity_prob=0.0)(x, y)
    assert (ours - theirs).abs().max() <= 1e-5
    # with diversity the two randomise differently; robust accuracies agree within 10 points
    torch.manual_seed(0)
    acc_ours = (trained_cnn(DI2FGSM(0.1, steps=10)(trained_cnn, x, y)).argmax(1) == y).float().mean().item()
    acc_theirs = (trained_cnn(torchattacks.DIFGSM(trained_cnn, eps=0.1, alpha=0.01, steps=10, resize_rate=0.9,
                                                   diversity_prob=0.5)(x, y)).argmax(1) == y).float().mean().item()
    assert abs(acc_ours - acc_theirs) <= 0.10, (acc_ours, acc_theirs)


def test_boundary_attack_agrees_with_foolbox(trained_cnn, digits):
    """Same model and points, 1000 model calls each: natrob's median L2 within 2x of foolbox's BoundaryAttack."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import foolbox
    x, y = digits.test_x[:40], digits.test_y[:40]
    ok = trained_cnn(x).argmax(1) == y
    x, y = x[ok][:20], y[ok][:20]
    res = BoundaryAttack(queries=1000, seed=0).run(trained_cnn, x, y)
    assert res.success.all()
    assert (trained_cnn(res.x_adv).argmax(1) != y).all()  # everything it returns is adversarial
    fmodel = foolbox.PyTorchModel(trained_cnn, bounds=(0, 1))
    _, adv, success = foolbox.attacks.BoundaryAttack(steps=500)(fmodel, x, y, epsilons=None)
    theirs = (adv - x).flatten(1).norm(dim=1)[success].median().item()
    ours = res.l2.median().item()
    assert ours <= 2.0 * theirs, (ours, theirs)


def test_boundary_more_queries_smaller_perturbation(trained_cnn, digits):
    x, y = digits.test_x[:20], digits.test_y[:20]
    short = BoundaryAttack(queries=100, seed=1).run(trained_cnn, x, y)
    long = BoundaryAttack(queries=1000, seed=1).run(trained_cnn, x, y)
    assert long.l2[long.success].median() < short.l2[short.success].median()


def test_autoattack_not_weaker_than_pgd(trained_cnn, digits):
    x, y = digits.test_x[:60], digits.test_y[:60]
    eps = 0.05
    pgd = (trained_cnn(PGD(eps, alpha=eps / 4, steps=20)(trained_cnn, x, y)).argmax(1) == y).float().mean()
    aa = make_attack("autoattack", eps=eps, n_iter=20, n_queries=100, n_target_classes=3)
    assert aa.name == "autoattack-reduced"
    assert (trained_cnn(aa(trained_cnn, x, y)).argmax(1) == y).float().mean() <= pgd + 1e-6
    assert make_attack("autoattack", eps=eps).standard


# ------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("eps", [-0.1, 1.5])
def test_eps_out_of_range(eps):
    with pytest.raises(ConfigError, match=r"eps=.*\[0, 1\]"):
        PGD(eps)


def test_bad_steps_and_unknown_attack(trained_cnn, batch):
    with pytest.raises(ConfigError, match="steps=0"):
        PGD(0.1, steps=0)
    with pytest.raises(UnknownNameError, match="attack='cw'.*fgsm"):
        make_attack("cw", eps=0.1)
    x, y = batch
    with pytest.raises(ConfigError, match="y="):
        FGSM(0.1)(trained_cnn, x, y[:-1])
    with pytest.raises(ConfigError, match="eps_list entry=2.0"):
        evaluate(trained_cnn, x, y, [0.1, 2.0], [{"name": "fgsm"}], progress=False)
    with pytest.raises(ConfigError, match="steps=0"):
        evaluate(trained_cnn, x, y, [0.1], [{"name": "pgd", "steps": 0}], progress=False)


class _Counting(torch.nn.Module):
    """The wrapped model, counting the images it is asked to predict (forward passes x batch size)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += len(x)
        return self.model(x)


@pytest.mark.parametrize("eps", [0.05, 0.1, 0.3])
def test_frozen_pgd_counts_the_same_points_for_fewer_gradients(eps, trained_cnn, digits):
    """PGD.freeze_fooled (what the harness runs on a deterministic, batch-independent model) stops a point at its first
    fooling iterate: the same points count as broken and as seen, the same never-fooled points as incomplete,
    every broken point's returned image fools the model, and it never asks the model for more images."""
    x, y = digits.test_x[:96], digits.test_y[:96]
    out = {}
    for freeze in (False, True):
        counting = _Counting(trained_cnn).eval()
        torch.manual_seed(0)
        attack = PGD(eps, alpha=eps / 8, steps=40, freeze_fooled=freeze)
        x_adv = attack(counting, x, y)
        assert ((x_adv - x).abs() <= eps + 1e-6).all() and x_adv.min() >= 0 and x_adv.max() <= 1
        with torch.no_grad():
            broken = trained_cnn(x_adv).argmax(1) != y
        out[freeze] = (broken, attack.diagnostics, counting.images, x_adv)
    (b0, d0, n0, _), (b1, d1, n1, _) = out[False], out[True]
    # counts, allowing 2 of 96 points: a smaller batch may round a gradient component near 0 to the other sign
    def differ(a, b):
        return int((a != b).sum())
    assert differ(b0, b1) <= 2
    assert differ(d0["seen_adversarial"], d1["seen_adversarial"]) <= 2
    assert differ(d0["incomplete"], d1["incomplete"]) <= 2
    assert differ(b1, d1["seen_adversarial"]) <= 1  # every point fooled on the way returns a fooling image
    torch.manual_seed(0)  # the same random start: PGD's early stop also ends each point at its first fooling iterate
    first = PGD(eps, alpha=eps / 8, steps=40, early_stop=True)(trained_cnn, x, y)
    same = ((out[True][3] - first).abs().flatten(1).amax(1) < 1e-6)[b1]
    assert same.float().mean() >= 0.95  # (a gradient component near 0 may change sign with the batch's size)
    assert n1 <= n0  # fooled points leave the batch once they are a quarter of it: at eps = 0.3 almost at once
    if eps >= 0.3:
        assert b0.float().mean() > 0.9 and n1 < n0 / 2


def test_the_harness_freezes_pgd_only_for_models_it_can_judge_alone(trained_cnn, digits):
    """Deterministic models (the batch probe decided) get frozen PGD; a model whose forward pass is random does not
    (its first fooling iterate need not fool it again), nor do several draws per judgement."""
    from natrob.attacks.contract import prepare
    from natrob.harness.evaluate import _Run
    x, y = digits.test_x[:16], digits.test_y[:16]

    class Noisy(torch.nn.Module):
        def forward(self, z):
            return trained_cnn(z) + torch.randn(len(z), 10)

    def frozen(model, draws):
        return _Run(model, x, y, prepare(model, x, y), 16, True, False, 0, draws, False).freeze

    # e.g. an ODE net with one step size per batch (natrob.harness.precision.AtPrecision)
    class Coupled(torch.nn.Module):
        batch_coupled = True

        def forward(self, z):
            return trained_cnn(z)
    assert frozen(trained_cnn, 1) and not frozen(trained_cnn, 3) and not frozen(Noisy().eval(), 1)
    assert not frozen(Coupled().eval(), 1)


class _Saturated(torch.nn.Module):
    """The trained CNN with its logits multiplied by ``scale``: where the softmax rounds to exactly one hot in float32
    the cross-entropy's input gradient is exactly zero, and PGD stands still (the saturation notebook 09 measures)."""

    def __init__(self, model, scale):
        super().__init__()
        self.model, self.scale = model, scale

    def forward(self, x):
        return self.scale * self.model(x)


@pytest.mark.parametrize("mode", ["plain", "frozen", "early_stop"])
@pytest.mark.parametrize("scale", [1.0, 1e4])
def test_pgd_ending_at_a_fixed_point_returns_what_every_step_would(mode, scale, trained_cnn, digits):
    """PGD.stop_stalled ends a run at a step that moved no point (and fooled no new one): the returned images, the
    broken points and Pintor et al.'s indicators are exactly those of all 40 steps; on saturated logits (zero
    gradients), where fooled points stop (frozen, or PGD's early stop), it takes fewer steps. (Plain PGD walks on
    with its fooled points, so it rarely reaches a fixed point.)"""
    x, y = digits.test_x[:64], digits.test_y[:64]
    model = _Saturated(trained_cnn, scale).eval()
    out = {}
    for stall in (False, True):
        torch.manual_seed(0)
        attack = PGD(0.1, alpha=0.01, steps=40, freeze_fooled=mode == "frozen", early_stop=mode == "early_stop",
                     stop_stalled=stall)
        out[stall] = (attack(model, x, y), getattr(attack, "diagnostics", None), attack.steps_run)
    (x0, d0, s0), (x1, d1, s1) = out[False], out[True]
    assert torch.equal(x0, x1)
    if mode != "early_stop":
        assert torch.equal(d0["seen_adversarial"], d1["seen_adversarial"])
        assert torch.equal(d0["incomplete"], d1["incomplete"])
    assert s1 <= s0
    if scale > 1 and mode != "plain":
        assert s1 < s0 / 4  # the saturated points never move: the run stops within a few steps
