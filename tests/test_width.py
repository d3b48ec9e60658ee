"""Notebook 08's pieces: per-epoch checkpoints, the per-cell probes, the fingerprint distance, the protocols."""
import torch

from natrob.models import build_model
from natrob.train import TrainConfig, get_model
from natrob.train.store import epoch_checkpoints
from natrob.study import fingerprint, probes, protocols, width
from natrob.stats import count


def test_store_keeps_every_epoch_and_until_epoch_stops_and_resumes(digits, tmp_path):
    cfg = TrainConfig(epochs=3, lr=1e-2, batch_size=128)
    _, rec = get_model("cnn", digits, cfg, store_dir=tmp_path, progress=False, until_epoch=1, keep_epochs=True)
    folder = next(tmp_path.iterdir())
    assert rec["epochs_done"] == 1 and not (folder / "final.pt").exists()
    assert list(epoch_checkpoints(folder)) == [1]
    _, rec = get_model("cnn", digits, cfg, store_dir=tmp_path, progress=False, keep_epochs=True)  # resumes at 2
    assert rec["epochs_done"] == 3 and (folder / "final.pt").exists()
    assert list(epoch_checkpoints(folder)) == [1, 2, 3]


def test_cell_probes_match_a_computation_by_hand(trained_cnn, digits):
    """Clean count, exactly-zero gradients, margins and FGSM at two radii, against autograd and argmax directly."""
    import torch.nn.functional as F
    x, y = digits.test_x[:40], digits.test_y[:40]
    cell = probes.cell_probes(trained_cnn, x, y, eps_list=(0.1, 0.3))
    xg = x.clone().requires_grad_(True)
    logits = trained_cnn(xg)
    grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
    correct = logits.argmax(1) == y
    assert cell["clean"]["k"] == int(correct.sum()) and cell["clean"]["n"] == 40
    assert cell["zero_grad_float32"]["k"] == int((grad.flatten(1) == 0).all(1).sum())
    other = logits.detach().clone()
    other[torch.arange(40), y] = -float("inf")
    margins = (logits.detach()[torch.arange(40), y] - other.max(1).values)[correct]
    assert abs(cell["margin_median"] - float(margins.median())) < 1e-4
    assert abs(cell["margin_max"] - float(margins.max())) < 1e-4
    for r in cell["fgsm"]:
        with torch.no_grad():
            adv = trained_cnn((x + r["eps"] * grad.sign()).clamp(0, 1)).argmax(1) == y
        assert r["robust"]["k"] == int((correct & adv).sum()), r["eps"]
    assert cell["fgsm"][0]["robust"]["k"] > cell["fgsm"][1]["robust"]["k"]  # a larger step breaks more


def test_a_saturated_softmax_has_exactly_zero_float32_gradients_and_fgsm_then_cannot_move(digits):
    """The mechanism the chapter measures: logits scaled until p_y == 1.0 in float32 give a zero input gradient
    of the cross-entropy (FGSM's step is sign(0) = 0, so FGSM leaves every correct point), while float64 still
    sees a slope on some of them."""

    class Scaled(torch.nn.Module):
        def __init__(self, net, s):
            super().__init__()
            self.net, self.s = net, s

        def forward(self, x):
            return self.s * self.net(x)

    torch.manual_seed(0)
    net = build_model("cnn", digits)
    from natrob.train import train
    train(net, digits, TrainConfig(epochs=4, lr=3e-3, batch_size=64), progress=False)
    x, y = digits.test_x[:24], digits.test_y[:24]
    # float32 exp underflows below e^-103, float64 below e^-745: margins of a few hundred separate the two
    cell = probes.cell_probes(Scaled(net, 100.0).eval(), x, y, eps_list=(0.3,))
    correct = cell["clean"]["k"]
    assert correct >= 20
    assert cell["zero_grad_float32"]["k"] >= correct - 6      # saturated on most correct points
    assert cell["zero_grad_float64"]["k"] < cell["zero_grad_float32"]["k"]
    assert cell["fgsm"][0]["robust"]["k"] >= cell["zero_grad_float32"]["k"] - (len(y) - correct)


def test_distance_is_zero_on_the_papers_numbers_and_rms_otherwise():
    paper = fingerprint.paper_row("mnist")
    same = {a: [{"eps": e, "pct": v} for e, v in zip(paper["eps"], paper[a])] for a in ("fgsm", "pgd")}
    d = fingerprint.distance(same, paper)
    assert d["numbers"] == 8 and d["rms"] < 0.01
    zero = {"fgsm": fingerprint.percentages([{"eps": e, "robust": count(0, 100)} for e in paper["eps"]])}
    d = fingerprint.distance(zero, paper)
    expected = (sum(v * v for v in paper["fgsm"]) / 4) ** 0.5
    assert d["numbers"] == 4 and abs(d["rms"] - expected) < 1e-9
    assert fingerprint.distance({"fgsm": [{"eps": 0.05, "pct": 50.0}]}, paper) == {"rms": None, "numbers": 0}


def test_protocol_rows_label_every_variant_and_the_no_usable_gradient_row_is_what_a_gradient_free_model_gets(
        small_odenet, digits):
    """The assembled row (FGSM = the clean count, PGD = its random start alone) against FGSM and PGD run on the
    same net with its input gradient cut (every step of sign(0) = 0): the same counts, up to the draw of PGD's
    random start against the noise row's."""

    class NoGradient(torch.nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, x):
            return self.net(x.detach())

    model = small_odenet
    x, y = digits.test_x[:30], digits.test_y[:30]
    attack = {"name": "pgd", "steps": 3, "alpha": 0.1, "random_start": True, "id": "pgd-paper", "label": "PGD-3"}
    base = protocols.table1(model, x, y, [0.3], attack, early_stop=False)
    rows = protocols.protocol_rows(model, x[:6], y[:6], [0.3], [0.3], attack, cross_tol=0.1, base=base,
                                   progress=False)
    assert set(rows) == set(protocols.TABLE1_VARIANTS)
    cut = protocols.table1(NoGradient(model), x, y, [0.3], attack, early_stop=False)
    assumed = rows["no-usable-gradient"]
    assert assumed["fgsm"][0]["robust"]["k"] == cut["rows"]["fgsm"][0]["robust"]["k"] == base["clean"]["k"]
    assert abs(assumed["pgd"][0]["robust"]["k"] - cut["rows"]["pgd"][0]["robust"]["k"]) <= 2
    assert base["rows"]["pgd"][0]["robust"]["k"] < assumed["pgd"][0]["robust"]["k"]  # a real gradient does better


def test_a_model_stored_without_its_epochs_still_gives_its_last_epoch_as_a_cell(digits, tmp_path):
    entry = {"model": "odenet", "kwargs": {"channels": 8, "t1": 1.0}, "train": {"epochs": 2, "batch_size": 128}}
    _, rec = get_model("odenet", digits, TrainConfig(**entry["train"]), model_kwargs=entry["kwargs"],
                       store_dir=tmp_path, progress=False)  # epochs not kept
    folder = next(tmp_path.iterdir())
    assert epoch_checkpoints(folder) == {}
    cells = width.epoch_cells(entry, None, digits, 8, folder, digits.test_x[:6], digits.test_y[:6], [0.3],
                              progress=False)
    assert [c["epoch"] for c in cells] == [2] and cells[0]["clean"]["n"] == 6


def test_cell_fgsm_solves_only_the_points_it_can_count(trained_cnn, digits):
    """FGSM's count of a cell is the by-hand count while the model sees, per radius, only the clean-correct points
    whose gradient is not exactly zero: a misclassified point cannot count, and a zero-gradient point's FGSM image
    is its clean image. A saturated copy (logits x 100) has both kinds."""
    import torch.nn.functional as F

    class Scaled(torch.nn.Module):
        def __init__(self, net, s):
            super().__init__()
            self.net, self.s, self.rows = net, s, []

        def forward(self, x):
            if not torch.is_grad_enabled():
                self.rows.append(len(x))
            return self.s * self.net(x)

    x, y = digits.test_x[:60], digits.test_y[:60]
    model = Scaled(trained_cnn, 20.0).eval()
    cell = probes.cell_probes(model, x, y, eps_list=(0.1, 0.3), float64=False)
    xg = x.clone().requires_grad_(True)
    logits = model(xg)
    grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), xg)
    correct, zero = logits.argmax(1) == y, (grad.flatten(1) == 0).all(1)
    assert 0 < int((correct & zero).sum()) < int(correct.sum()) < 60  # all three kinds of point are present
    for r in cell["fgsm"]:
        with torch.no_grad():
            adv = model.net((x + r["eps"] * grad.sign()).clamp(0, 1)).argmax(1) == y
        assert r["robust"]["k"] == int((correct & adv).sum()), r["eps"]
    assert sum(model.rows) == 2 * int((correct & ~zero).sum()), (model.rows, int(correct.sum()), int(zero.sum()))
