import pytest
import torch
import torch.nn.functional as F

from natrob.attacks import PGD
from natrob.models import build_model
from natrob.train import TrainConfig, train
from natrob.train.adversarial import trades_loss, yopo_step

pytestmark = pytest.mark.slow  # trains four digits models adversarially (minutes on 2 cores)

EPS = 0.1  # the quick profile's adversarial-training radius on digits
MARGIN = 0.15  # each trainer must beat standard training's PGD accuracy by at least 15 points
ARCH = dict(width=8, blocks=(1, 1, 1, 1))


def _train(digits, method, params):
    torch.manual_seed(0)
    model = build_model("preact_resnet18", digits, **ARCH)
    cfg = TrainConfig(epochs=6, optimizer="sgd", lr=0.05, weight_decay=5e-4, milestones=(0.5, 0.75), batch_size=64,
                      method=method, method_params=params)
    train(model, digits, cfg, seed=0, progress=False)
    return model.eval()


def _pgd_acc(model, digits):
    x, y = digits.test_x[:200], digits.test_y[:200]
    torch.manual_seed(1)
    x_adv = PGD(EPS, alpha=EPS / 4, steps=20)(model, x, y)
    return (model(x_adv).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def standard_acc(digits):
    return _pgd_acc(_train(digits, "standard", {}), digits)


@pytest.mark.parametrize("method,params", [
    ("pgd_at", {"eps": EPS, "alpha": EPS / 4, "steps": 10}),
    ("trades", {"eps": EPS, "alpha": EPS / 4, "steps": 10, "beta": 6.0}),
    ("yopo", {"eps": EPS, "sigma": EPS / 4, "m": 5, "n": 3}),
])
def test_adversarial_training_beats_standard(digits, standard_acc, method, params):
    robust = _pgd_acc(_train(digits, method, params), digits)
    assert robust >= standard_acc + MARGIN, (method, robust, standard_acc)


def test_trades_with_beta_zero_is_standard_loss(digits):
    torch.manual_seed(0)
    model = build_model("preact_resnet18", digits, **ARCH).train()
    x, y = digits.train_x[:32], digits.train_y[:32]
    x_adv = (x + 0.05).clamp(0, 1)
    loss, _ = trades_loss(model, x, x_adv, y, beta=0.0)
    assert torch.allclose(loss, F.cross_entropy(model(x), y))
    loss6, _ = trades_loss(model, x, x_adv, y, beta=6.0)
    assert loss6 > loss


@pytest.mark.filterwarnings("ignore:Full backward hook")
def test_yopo_adversary_only_backpropagates_to_first_layer(digits):
    """Count backward passes through the layers after the first: m per batch (the full passes), never m*(n+1)."""
    torch.manual_seed(0)
    model = build_model("preact_resnet18", digits, **ARCH).train()
    counts = {"first": 0, "rest": 0}
    model.first_layer.register_full_backward_hook(lambda *a: counts.__setitem__("first", counts["first"] + 1))
    model.layers[0].register_full_backward_hook(lambda *a: counts.__setitem__("rest", counts["rest"] + 1))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    m, n = 5, 3
    before = [p.detach().clone() for p in model.first_layer.parameters()]
    yopo_step(model, model, opt, digits.train_x[:16], digits.train_y[:16], {"eps": 0.1, "m": m, "n": n})
    assert counts["rest"] == m
    assert counts["first"] >= m * n  # the adversary's n steps each of the m rounds go through the first layer
    assert any(not torch.equal(b, p) for b, p in zip(before, model.first_layer.parameters()))  # updated alongside


def test_table2_configs_label_the_papers_trainers():
    """One base config, four methods; the labels are the paper's Table 2 rows (standard is our baseline). Every
    setting of every trainer is written out here by hand: the base's, TrainConfig's defaults for the rest."""
    from natrob.train import table2_configs
    at_model = {"model": "preact_resnet18", "train": {"epochs": 10, "optimizer": "sgd", "lr": 0.05,
                                                       "milestones": [0.5, 0.75], "batch_size": 64}}
    base_before = {"model": "preact_resnet18", "train": {"epochs": 10, "optimizer": "sgd", "lr": 0.05,
                                                          "milestones": [0.5, 0.75], "batch_size": 64}}
    configs = table2_configs(at_model, eps=0.1, alpha=0.025, steps=10, beta=6.0, m=5, n=3)
    assert at_model == base_before  # the profile's entry is not changed
    assert {k: label for k, (label, _) in configs.items()} == {
        "standard": "none (baseline, not in the paper)", "pgd_at": "PGD-10 (Madry et al., 2017)",
        "trades": "TRADES-10 (Zhang et al., 2019b)", "yopo": "YOPO-5-3 (Zhang et al., 2019a)"}
    common = {"epochs": 10, "batch_size": 64, "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 0.0,
              "halve_every": None, "milestones": [0.5, 0.75]}
    assert {k: cfg.to_dict() for k, (_, cfg) in configs.items()} == {
        "standard": {**common, "method": "standard", "method_params": {}},
        "pgd_at": {**common, "method": "pgd_at", "method_params": {"eps": 0.1, "alpha": 0.025, "steps": 10}},
        "trades": {**common, "method": "trades",
                   "method_params": {"eps": 0.1, "alpha": 0.025, "steps": 10, "beta": 6.0}},
        "yopo": {**common, "method": "yopo", "method_params": {"eps": 0.1, "sigma": 0.025, "m": 5, "n": 3}}}
    for _, cfg in configs.values():
        assert cfg.milestones == (0.5, 0.75) and cfg.precision == "float32"
    # other values reach the configs and the YOPO label (m and n in that order); the base's own settings win
    other = table2_configs({"train": {"epochs": 3, "optimizer": "adam", "lr": 1e-3, "weight_decay": 5e-4,
                                      "precision": "bfloat16"}}, eps=0.3, alpha=0.01, steps=40, beta=1.0, m=3, n=2)
    assert other["yopo"][0] == "YOPO-3-2 (Zhang et al., 2019a)"
    assert other["yopo"][1].to_dict() == {
        "epochs": 3, "batch_size": 128, "optimizer": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 5e-4,
        "halve_every": None, "milestones": [], "method": "yopo", "method_params": {"eps": 0.3, "sigma": 0.01, "m": 3,
                                                                                     "n": 2}, "precision": "bfloat16"}
    assert other["trades"][1].method_params == {"eps": 0.3, "alpha": 0.01, "steps": 40, "beta": 1.0}
