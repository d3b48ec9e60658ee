"""The saturation map and the real pipelines (natrob.study.saturation, natrob.study.pipelines): exact answers where
the float formats give one, orderings where they do not."""
import math

import pytest
import torch
from torch import nn

from natrob.errors import ConfigError
from natrob.study.pipelines import PAPER_SUM_LR, margin_trend, sum_lr
from natrob.harness.precision import AtPrecision, Precision
from natrob.study.saturation import (ScaledLogits, input_gradients, margin_percentiles, margins,
                               saturation_map, threshold)


class Margin(nn.Module):
    """A conv-and-linear classifier whose logits are (m, 0, ..., 0) on every image: a known margin m, and a
    Jacobian that is not zero anywhere (so a zero gradient can only come from the loss's rounding)."""

    def __init__(self, m):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1, bias=False)
        self.fc = nn.Linear(4, 10)
        with torch.no_grad():
            self.conv.weight.fill_(1.0)
            self.fc.weight.zero_()
            self.fc.bias.zero_()
            self.fc.weight[0].fill_(1.0)   # logit 0 = sum of the four pixels
            self.fc.weight[1].fill_(0.5)   # logit 1 = half of it: margin = 0.5 * sum
        self.m = m

    def forward(self, x):
        z = self.fc(self.conv(x).flatten(1))
        return z * (2 * self.m / z[:, :1].detach().clamp_min(1e-12))  # rescale to margin m, same direction


def _images(n=6):
    torch.manual_seed(0)
    return torch.rand(n, 1, 2, 2) * 0.5 + 0.25, torch.zeros(n, dtype=torch.long)


def test_margins_and_percentiles_exact():
    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 5.0], [1.0, 1.5, 0.0]])
    y = torch.tensor([0, 2, 0])
    m = margins(logits, y)
    assert m.tolist() == [2.0, 3.0, -0.5]
    p = margin_percentiles(m)  # only the two correct points count
    assert p["max"] == 3.0 and p["p50"] == 2.5 and p["p2"] >= 2.0


@pytest.mark.parametrize("margin,zero32,zero64", [(50.0, False, False), (120.0, True, False), (800.0, True, True)])
def test_exact_zero_gradient_where_the_float_format_says(margin, zero32, zero64):
    """float32's e^-m underflows past m ~ 104 (87 where denormals are flushed), float64's past ~745."""
    x, y = _images()
    model = Margin(margin)
    for proto, expect in ((Precision.FLOAT32, zero32), (Precision.FLOAT64, zero64)):
        g, _ = input_gradients(model, x, y, [1.0], proto, alone=True)
        zero = (g[1.0].flatten(1) == 0).all(1)
        assert bool(zero.all()) == expect and bool(zero.any()) == expect, (proto, margin)


def test_amp_saturates_before_float32_and_float32_before_float64():
    """The same points, margins 4 to 512: the margin at which half are exactly zero is ordered
    float16 AMP < float32 < float64 (float16's smallest subnormal is 6e-8, float32's 1.4e-45)."""
    x, y = _images()
    model = Margin(4.0)
    res = saturation_map(model, x, y, scales=[1, 4, 8, 32, 128], eps_list=(0.1,), progress=False,
                         gradients=[Precision.FLOAT16_AMP, Precision.FLOAT32, Precision.FLOAT64])
    amp, f32 = threshold(res["rows"], "float16-amp"), threshold(res["rows"], "float32")
    assert amp is not None and f32 is not None and amp < f32
    assert amp <= 32 and 32 < f32 <= 512
    assert threshold(res["rows"], "float64") is None  # 512 < 745: float64 still has a gradient
    row = next(r for r in res["rows"] if r["protocol"] == "float64" and r["scale"] == 128)
    assert row["margin"]["p50"] == pytest.approx(512) and row["zero_alone"]["k"] == 0


def test_fgsm_with_a_zero_gradient_leaves_every_correct_point(trained_cnn, digits):
    x, y = digits.test_x[:30], digits.test_y[:30]
    res = saturation_map(trained_cnn, x, y, scales=[1, 1e6], eps_list=(0.3,), progress=False,
                         gradients=[Precision.FLOAT32])
    clean = res["clean"]["k"]
    low, high = sorted((r for r in res["rows"]), key=lambda r: r["scale"])
    assert high["zero_alone"]["k"] == high["n_correct"] == clean  # every correct point saturated at K = 1e6
    assert high["fgsm"][0]["alone"]["k"] == clean  # FGSM returns the clean image
    assert low["fgsm"][0]["alone"]["k"] < clean  # with a gradient, FGSM breaks some
    for r in res["rows"]:
        assert r["fgsm"][0]["alone"]["k"] <= clean and r["fgsm"][0]["batched"]["k"] <= clean


def test_alone_gradients_are_a_batch_of_one(small_odenet, digits):
    """natrob's per-sample solve gives each point the gradient it would get alone."""
    x, y = digits.test_x[:6], digits.test_y[:6]
    together, _ = input_gradients(small_odenet, x, y, [1.0, 8.0], Precision.FLOAT32, alone=True, batch_size=6)
    for i in range(6):
        one, _ = input_gradients(small_odenet, x[i:i + 1], y[i:i + 1], [1.0, 8.0], Precision.FLOAT32, alone=True)
        for k in (1.0, 8.0):
            a, b = together[k][i].flatten(), one[k][0].flatten()
            assert torch.nn.functional.cosine_similarity(a, b, dim=0) > 0.999
            assert math.isclose(a.norm().item(), b.norm().item(), rel_tol=1e-3)


def test_scaled_logits_keep_the_predictions(trained_cnn, digits):
    x = digits.test_x[:40]
    with torch.no_grad():
        assert torch.equal(ScaledLogits(trained_cnn, 37.0)(x).argmax(1), trained_cnn(x).argmax(1))
    with pytest.raises(ConfigError, match="scale"):
        ScaledLogits(trained_cnn, 0)


def test_pipelines_name_what_they_refuse(trained_cnn):
    with pytest.raises(ConfigError, match="precision='probabilities'"):
        AtPrecision(trained_cnn, "probabilities")
    with pytest.raises(ConfigError, match="precision='fp8'.*float16-amp"):
        AtPrecision(trained_cnn, "fp8")
    assert AtPrecision(trained_cnn, "float16-amp")(torch.rand(2, 1, 8, 8)).dtype == torch.float32


def test_sum_lr_and_the_papers_schedule():
    hist = [{"lr": 0.01}, {"lr": 0.01}, {"lr": 0.005}]
    assert sum_lr(hist, n_train=100, batch_size=64) == pytest.approx([0.02, 0.04, 0.05])  # 2 steps per epoch
    assert PAPER_SUM_LR == pytest.approx(140.625)  # 1,875 steps x (50 x 1e-3 + 50 x 5e-4)


def test_margin_trend_recovers_a_known_law():
    s = [2.0, 4.0, 8.0, 16.0, 32.0]
    log_law = [1.0 + 3.0 * math.log(v) for v in s]
    tr = margin_trend(s, log_law, target=140.0)
    assert tr["log"]["slope"] == pytest.approx(3.0) and tr["log"]["rss"] < 1e-9
    assert tr["log"]["at_target"] == pytest.approx(1.0 + 3.0 * math.log(140.0))
    assert tr["linear"]["rss"] > tr["log"]["rss"]
    lo, hi = tr["linear"]["interval"]
    assert lo < tr["linear"]["at_target"] < hi
    with pytest.raises(ConfigError, match="sum_lrs"):
        margin_trend([0.0, 1.0], [1.0, 2.0])
    with pytest.raises(ConfigError, match="medians"):
        margin_trend([1.0, 2.0], [1.0])


def test_the_papers_schedule_gets_the_same_cells_at_its_own_summed_rate(digits):
    """SAT_PAPER_MODEL: every stored epoch of that training is a cell, at Σ lr = lr x ceil(n / batch) per epoch."""
    import math

    from natrob.study import mechanism
    from natrob.chapters import mechanism_text
    entry = {"model": "odenet", "kwargs": {"channels": 8, "conv_layers": 4, "t1": 1.0},
             "train": {"epochs": 4, "lr": 1e-3, "batch_size": 32}}
    attack = {"name": "pgd", "steps": 2, "alpha": 0.1, "random_start": True, "id": "pgd-paper", "label": "PGD-2"}
    x, y = digits.test_x[:8], digits.test_y[:8]
    net = mechanism.train(entry, digits, seed=0, until=2, progress=False)
    out = mechanism.paper_schedule(net, x, y, [0.3], attack, cos_n=2, seed=0)
    assert out["epochs_done"] == 2 and [c["epoch"] for c in out["cells"]] == [1, 2]
    per_epoch = 1e-3 * math.ceil(len(digits.train_y) / 32)
    assert [round(c["sum_lr"], 9) for c in out["cells"]] == [round(per_epoch, 9), round(2 * per_epoch, 9)]
    assert all(c["clean"]["n"] == 8 for c in out["cells"])
    assert mechanism.paper_schedule(None, x, y, [0.3], attack) is None
    main = [dict(c, id=f"epoch-{c['epoch']}", sum_lr=10 * c["sum_lr"]) for c in out["cells"]]
    said = mechanism_text._paper_schedule_sentence({"paper_schedule": out}, main, 0.3)
    assert len(said) == 1 and "2 of 4 epochs" in said[0]


def test_width_margins_read_the_store_and_train_nothing(digits):
    """Notebook 08's widths in notebook 09: every stored epoch at Σ lr = lr x ceil(n / batch) per epoch; a width not
    in the store is absent and stays untrained; a point's float64 margin (alone) is positive exactly where the
    float64 net, solving it alone, classifies it correctly."""
    from natrob import paths
    from natrob.study import mechanism
    from natrob.chapters import mechanism_text
    from natrob.study.saturation import clean_margins
    from natrob.study.width import width_entry
    ode = {"model": "odenet", "kwargs": {"channels": 4, "conv_layers": 4, "t1": 1.0},
           "train": {"epochs": 2, "lr": 0.01, "batch_size": 64}}
    params = {"ODE": ode, "WIDTH_TRAIN": {"epochs": 2, "lr": 0.01, "batch_size": 64}, "WIDTH_CHANNELS": [4, 6, 10]}
    net = mechanism.train(width_entry(params, 6), digits, progress=False).model
    before = sorted(p.name for p in paths.checkpoints_dir().iterdir())
    x, y = digits.test_x[:10], digits.test_y[:10]
    widths = tuple((c, width_entry(params, c)) for c in params["WIDTH_CHANNELS"])
    out = mechanism.width_margins(widths, ode, digits, x, y, progress=False)
    assert sorted(p.name for p in paths.checkpoints_dir().iterdir()) == before  # width 10 was not trained
    assert [(w["channels"], w["epoch"]) for w in out] == [(6, 1), (6, 2)]
    per_epoch = 0.01 * math.ceil(len(digits.train_y) / 64)
    assert [round(w["sum_lr"], 9) for w in out] == [round(per_epoch, 9), round(2 * per_epoch, 9)]
    m = clean_margins(net, x, y)
    from natrob.harness.prediction import per_sample_solves
    with torch.no_grad(), per_sample_solves(net):
        right = int((net.double()(x.double()).argmax(1) == y).sum())
    assert int((m > 0).sum()) == right
    m32 = clean_margins(net, x, y, Precision.FLOAT32)  # the widths' margins are float32's (no gradient to saturate)
    assert out[-1]["margins"] == pytest.approx(margin_percentiles(m32[torch.isfinite(m32)]), rel=1e-5)  # float32 sums
    assert out[-1]["margins"] == pytest.approx(margin_percentiles(m[torch.isfinite(m)]), rel=1e-3, abs=1e-4)
    _, logits = input_gradients(net.float(), x, y, [1.0], Precision.FLOAT64, alone=True)
    assert torch.allclose(m, margins(logits, y), atol=1e-6)
    cells = [{"sum_lr": per_epoch, "margins": {"p50": 1.0}}, {"sum_lr": 2 * per_epoch, "margins": {"p50": 2.0}}]
    said = mechanism_text._width_sentence({"widths": out, "n": {"cells": 10},
                                           "model": {"kwargs": {"channels": 4}}}, cells)
    assert len(said) == 1 and "6-channel net" in said[0] and "x this chapter's 4-channel net's" in said[0]
    assert "the widths table" in said[0] and said[0].count(" at ") <= 1  # the series is a table, not a sentence


def test_the_harness_judges_a_pipeline_in_batches_each_image_as_alone(small_odenet, digits):
    """A pipeline's net solves one step size per batch when called (batch-coupled); the harness switches it to a step
    size per image (as a batch of one) and so attacks and judges it in batches, with the counts of one image at a
    time (PGD without its random start: a random start is drawn per call, so one at a time draws other noise)."""
    from natrob.harness.evaluate import evaluate
    from natrob.models.odenet import solver_settings
    from natrob.harness.prediction import per_sample_solves
    pipe = AtPrecision(small_odenet, "float32")
    assert pipe.batch_coupled
    with per_sample_solves(pipe):
        assert not pipe.batch_coupled
    assert pipe.batch_coupled and not small_odenet.per_sample
    x, y = digits.test_x[:12], digits.test_y[:12]
    attacks = [{"name": "fgsm"}, {"name": "pgd", "steps": 5, "alpha": 0.05, "random_start": False}]
    sizes = []
    hook = pipe.register_forward_pre_hook(lambda mod, args: sizes.append(len(args[0])))
    try:
        batched = evaluate(pipe, x, y, [0.1, 0.3], attacks, cascade=False, progress=False, cache=False)
        calls, sizes[:] = list(sizes), []
        alone = evaluate(pipe, x, y, [0.1, 0.3], attacks, cascade=False, per_sample=True, progress=False, cache=False)
    finally:
        hook.remove()
    assert max(calls) == len(y) and 3 * len(calls) < len(sizes)  # the contract's probe takes 8 and 4 images
    assert not small_odenet.per_sample  # the harness gave the caller's net back as it was
    amp = AtPrecision(small_odenet, "float16-amp")  # half-precision kernels round a batch otherwise: never frozen
    with per_sample_solves(amp):
        assert amp.batch_coupled
    with per_sample_solves(pipe), solver_settings(small_odenet, adjoint=True):
        assert pipe.batch_coupled  # an adjoint solve with gradients shares its steps whatever per_sample says
    assert [r["robust"] for r in batched["rows"]] == [r["robust"] for r in alone["rows"]]
    assert batched["clean"] == alone["clean"] and batched["clean"]["k"] >= 6


def test_the_maps_judge_solves_each_image_once_and_predicts_as_predict_does(small_odenet, digits):
    from natrob.harness.prediction import predict
    from natrob.study.saturation import _Judge
    x = digits.test_x[:10]
    rows = []
    judge = _Judge(small_odenet, 4)
    hook = small_odenet.register_forward_pre_hook(lambda mod, args: rows.append(len(args[0])))
    try:
        first = judge(x)
        again = judge(torch.cat([x[3:], x[:3]]))
        solved_before = sum(rows)
        new = (x[:4] + 0.2).clamp(0, 1)
        mixed = judge(torch.cat([x[:2], new, new[:1]]))
    finally:
        hook.remove()
    assert solved_before == 10 and sum(rows) == 14  # only the 4 new images are solved, each once
    assert torch.equal(first, predict(small_odenet, x, 4)[0])
    assert torch.equal(again, torch.cat([first[3:], first[:3]]))
    assert torch.equal(mixed[2:6], predict(small_odenet, new, 4)[0]) and mixed[6] == mixed[2]


def test_a_cell_takes_the_maps_gradients_of_the_same_net_and_measures_the_same(small_odenet, digits):
    """Notebook 09 keeps the last net's gradients across its saturation map and that epoch's cell: the cell then
    solves fewer times and measures exactly what it measures alone."""
    from natrob.study.pipelines import epoch_cell
    from natrob.reference import paper_attack
    from natrob.study.saturation import saturation_map
    x, y = digits.test_x[:8], digits.test_y[:8]
    memo, rows = {}, []
    saturation_map(small_odenet, x, y, scales=[1, 64], gradients=["float32", "float64"], progress=False, memo=memo)
    kw = dict(gradients=(Precision.FLOAT32, Precision.FLOAT64), cos_n=2, seed=0)
    hook = small_odenet.register_forward_pre_hook(lambda mod, args: rows.append(len(args[0])))
    try:
        shared = epoch_cell(small_odenet, x, y, [0.3], paper_attack(3, 0.1), memo=memo, **kw)
        with_memo, rows[:] = sum(rows), []
        alone = epoch_cell(small_odenet, x, y, [0.3], paper_attack(3, 0.1), **kw)
    finally:
        hook.remove()
    assert shared == alone and shared["clean"]["k"] >= 4
    assert with_memo < sum(rows)
    other = {}  # the memo answers only the points it was given
    input_gradients(small_odenet, x[:4], y[:4], [1.0], Precision.FLOAT32, alone=True, memo=other)
    assert len(other) == 1
    input_gradients(small_odenet, x[4:], y[4:], [1.0], Precision.FLOAT32, alone=True, memo=other)
    assert len(other) == 2
