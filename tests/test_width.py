"""Notebook 08's pieces: per-epoch checkpoints, the per-cell probes, the fingerprint distance, the protocols."""
import torch

from natrob.models import build_model
from natrob.train import TrainConfig, get_model
from natrob.train.store import epoch_checkpoints
from natrob import width
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


def test_cell_probes_counts_are_consistent(digits):
    torch.manual_seed(0)
    model = build_model("odenet", digits, channels=8, t1=1.0).eval()
    x, y = digits.test_x[:12], digits.test_y[:12]
    cell = width.cell_probes(model, x, y, eps_list=(0.1, 0.5))
    n = len(y)
    assert cell["clean"]["n"] == n and 0 <= cell["clean"]["k"] <= n
    for key in ("zero_grad_float32", "zero_grad_float64"):
        assert 0 <= cell[key]["k"] <= n
    for r in cell["fgsm"]:  # an attack never leaves more points than the clean model classifies correctly
        assert r["robust"]["n"] == n and 0 <= r["robust"]["k"] <= cell["clean"]["k"]
    assert cell["nfe_forward_mean"] >= 6 and cell["state_norm_median"] > 0


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
    cell = width.cell_probes(Scaled(net, 100.0).eval(), x, y, eps_list=(0.3,))
    correct = cell["clean"]["k"]
    assert correct >= 20
    assert cell["zero_grad_float32"]["k"] >= correct - 6      # saturated on most correct points
    assert cell["zero_grad_float64"]["k"] < cell["zero_grad_float32"]["k"]
    assert cell["fgsm"][0]["robust"]["k"] >= cell["zero_grad_float32"]["k"] - (len(y) - correct)


def test_distance_is_zero_on_the_papers_numbers_and_rms_otherwise():
    paper = width.paper_row("mnist")
    same = {a: [{"eps": e, "pct": v} for e, v in zip(paper["eps"], paper[a])] for a in ("fgsm", "pgd")}
    d = width.distance(same, paper)
    assert d["numbers"] == 8 and d["rms"] < 0.01
    zero = {"fgsm": width.percentages([{"eps": e, "robust": count(0, 100)} for e in paper["eps"]])}
    d = width.distance(zero, paper)
    expected = (sum(v * v for v in paper["fgsm"]) / 4) ** 0.5
    assert d["numbers"] == 4 and abs(d["rms"] - expected) < 1e-9
    assert width.distance({"fgsm": [{"eps": 0.05, "pct": 50.0}]}, paper) == {"rms": None, "numbers": 0}


def test_protocol_rows_label_every_variant_and_no_usable_gradient_is_free(digits):
    torch.manual_seed(0)
    model = build_model("odenet", digits, channels=8, t1=1.0).eval()
    x, y = digits.test_x[:6], digits.test_y[:6]
    attack = {"name": "pgd", "steps": 2, "alpha": 0.1, "random_start": True, "id": "pgd-paper", "label": "PGD-2"}
    base = width.table1(model, x, y, [0.3], attack, early_stop=False)
    rows = width.protocol_rows(model, x, y, [0.3], [0.3], attack, cross_tol=0.1, base=base, progress=False)
    assert set(rows) == set(width.VARIANTS)
    assert rows["no-usable-gradient"]["fgsm"][0]["robust"]["k"] == base["clean"]["k"]
    assert rows["no-usable-gradient"]["pgd"][0]["robust"]["k"] == base["rows"]["noise"][0]["robust"]["k"]
    for proto, r in rows.items():
        for kind in ("fgsm", "pgd"):
            assert all(0 <= c["robust"]["k"] <= c["robust"]["n"] == len(y) for c in r[kind]), proto


def test_a_model_stored_without_its_epochs_still_gives_its_last_epoch_as_a_cell(digits, tmp_path):
    entry = {"model": "odenet", "kwargs": {"channels": 8, "t1": 1.0}, "train": {"epochs": 2, "batch_size": 128}}
    _, rec = get_model("odenet", digits, TrainConfig(**entry["train"]), model_kwargs=entry["kwargs"],
                       store_dir=tmp_path, progress=False)  # epochs not kept
    folder = next(tmp_path.iterdir())
    assert epoch_checkpoints(folder) == {}
    cells = width.epoch_cells({"ODE": entry}, digits, 8, folder, digits.test_x[:6], digits.test_y[:6], [0.3],
                              progress=False)
    assert [c["epoch"] for c in cells] == [2] and cells[0]["clean"]["n"] == 6
