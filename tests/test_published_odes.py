"""Notebook 10's pieces: the log's attack (AdamStep), the log's draw, the subnormal flush, the stand-ins and their
round trip through the user's loader, and the verdict's three cases."""
from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from natrob.study import published_odes as po
from natrob.attacks import AdamStep, make_attack
from natrob.attacks.adam_step import log_margin
from natrob.chapters import ch10_published as chapter
from natrob.errors import ConfigError
from natrob.paths import REPO
from natrob.audit.pickled import _legacy_globals
from natrob.stats import count
from natrob.audit.usermodel import load_module_checkpoint

NETWORKS = REPO / "examples" / "tisode_networks.py"


class Linear(nn.Module):
    """Logits ``scale * (x . w_c) + bias_c``: the margin's input gradient is ``0.5 * scale * (w_y - w_other)``."""

    def __init__(self, w, scale=1.0, bias=(0.0, 0.0)):
        super().__init__()
        self.w, self.scale, self.bias = w, scale, torch.tensor(bias)

    def forward(self, x):
        return self.scale * x.flatten(1) @ self.w.T + self.bias


def _two_class(scale=1.0, bias=(0.0, 0.0)):
    w = torch.zeros(2, 16)
    w[0, :8], w[1, 8:] = 1.0, 1.0  # class 0 reads the first half of the pixels, class 1 the second
    x = torch.full((1, 1, 4, 4), 0.5)
    x.view(-1)[:8] += 0.1  # class 0 by a margin of 0.8 (times scale), plus the bias's
    return Linear(w, scale, bias), x, torch.tensor([0])


def test_adam_step_is_a_full_signed_step_where_the_gradient_is_large():
    model, x, y = _two_class()
    adv = AdamStep(0.05)(model, x, y)
    delta = (adv - x).view(-1)
    # the margin falls: class 0's pixels go down by eps, class 1's up by eps (to within Adam's 1e-8 floor)
    assert int((delta[:8] < -0.05 * (1 - 1e-6)).sum()) == 8 and int((delta[8:] > 0.05 * (1 - 1e-6)).sum()) == 8
    assert float(delta.abs().max()) <= 0.05 + 1e-7 and 0 <= float(adv.min()) and float(adv.max()) <= 1


def test_adam_step_moves_a_tiny_gradient_less_than_eps():
    # margin 1 (the bias), gradient 2e-9 per pixel: the step is eps * 2e-9 / (2e-9 + 1e-8), a sixth of eps
    model, x, y = _two_class(scale=4e-9, bias=(1.0, 0.0))
    delta = (AdamStep(0.3)(model, x, y) - x).abs()
    assert int((delta < 0.3 * 0.2).sum()) == 16 and int((delta > 0.3 * 0.1).sum()) == 16


def test_adam_step_barely_moves_a_saturated_point_and_never_a_misclassified_one():
    model, x, y = _two_class(scale=120.0)  # margin 96 nats: the other class's probability is below the 1e-30 floor
    assert float((AdamStep(0.3)(model, x, y) - x).abs().max()) < 0.02 * 0.3
    # a sign step moves every pixel whose gradient is not exactly 0 by all of eps (here class 1's 8 pixels)
    assert int(((make_attack("fgsm", eps=0.3)(model, x, y) - x).abs() > 0.29).sum()) == 8
    model, x, _ = _two_class()
    assert torch.equal(AdamStep(0.3)(model, x, torch.tensor([1])), x)  # clamped at 0: no gradient, no step
    assert float(log_margin(model(x), torch.tensor([1]))[0]) == 0.0


def test_adam_step_is_registered_and_stays_in_the_ball():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x, y = torch.rand(12, 1, 4, 4), torch.randint(0, 3, (12,))
    adv = make_attack("adam-step", eps=0.1)(model, x, y)
    assert float((adv - x).abs().max()) <= 0.1 + 1e-7 and float(adv.min()) >= 0 and float(adv.max()) <= 1


def test_the_logs_draw():
    idx = po.logged_points(10_000)
    # the script's draw (numpy's legacy generator seeded 1216, the first 25 of 1,025 set aside); these indices
    # reproduce all eight of the log's figures for the published checkpoints (notebook 10)
    assert len(idx) == 1000 and len(set(idx.tolist())) == 1000 and list(idx[:5]) == [6, 15, 25, 30, 34]
    assert int(idx.sum()) == 5037364
    assert len(po.logged_points(100)) == 75  # a stand-in's small test set: what is left after the 25 set aside
    with pytest.raises(ConfigError, match="n_test"):
        po.logged_points(25)


def test_flush_subnormal_zeroes_only_subnormals():
    lin = nn.Linear(4, 2)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[1e-39, 0.5, -2e-40, 0.0], [3e-39, 1e-37, -1.0, 0.25]]))
    out = po.flush_subnormal(lin)
    assert out == {"subnormal": 3, "entries": 10}
    assert lin.weight.tolist()[0][:3] == [0.0, 0.5, 0.0] and lin.weight[1, 1].item() == pytest.approx(1e-37)


def test_standins_pickle_like_tisode_and_load_through_the_users_path(tmp_path):
    gen = torch.Generator().manual_seed(0)
    data = SimpleNamespace(train_x=torch.rand(64, 1, 8, 8, generator=gen), train_y=torch.arange(64) % 10,
                           shape=(1, 8, 8), num_classes=10)
    paths = po.make_standins(tmp_path, data, NETWORKS, channels=4, epochs=1, lr=0.01, batch_size=32)
    assert po.locate(tmp_path) == paths and po.locate(tmp_path / "checkpoints") == paths
    named = _legacy_globals(paths["TisODE"])
    assert {"networks.ODENet_tisode", "torch.nn.parallel.data_parallel.DataParallel"} <= named
    for m in po.MODELS:
        net = load_module_checkpoint(paths[m.label], NETWORKS)
        assert type(net).__name__ == m.cls and net(data.train_x[:3]).shape == (3, 10)
        rec = po.provenance(m.label, paths[m.label], NETWORKS)
        assert rec["sha256"] == hashlib.sha256(paths[m.label].read_bytes()).hexdigest()
        assert rec["is_published_file"] is False
    stamp = paths["CNN"].stat().st_mtime_ns
    po.make_standins(tmp_path, data, NETWORKS, channels=4, epochs=1, lr=0.01, batch_size=32)
    assert paths["CNN"].stat().st_mtime_ns == stamp  # kept: a re-run reads the same stand-ins


def test_locate_names_a_bad_folder(tmp_path):
    assert po.locate(None) == {m.label: None for m in po.MODELS}
    assert po.locate(tmp_path / "absent") == {m.label: None for m in po.MODELS}
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="TISODE_CHECKPOINTS"):
        po.locate(tmp_path / "file")


def _payload(worst: dict, standin=False):
    findings = [{"model": m, "eps": 0.3, "worst_case": count(k, 100)} for m, k in worst.items()]
    return {"source": {"standin": standin}, "audit": {"findings": findings},
            "logged": [{"model": "TisODE", "eps": 0.3, "log": 0.749}]}


@pytest.mark.parametrize("worst, opening", [
    ({"CNN": 10, "ODE": 40, "TisODE": 70}, "TisODE's claim holds under"),  # [5.5, 17.4] < [31, 50] < [60, 78]
    ({"CNN": 10, "ODE": 40, "TisODE": 42}, "TisODE's claim holds only in part"),
    ({"CNN": 12, "ODE": 20, "TisODE": 15}, "TisODE's claim does not survive"),  # intervals overlap
    ({"CNN": 3, "ODE": 1, "TisODE": 0}, "TisODE's claim does not survive"),
])
def test_the_verdict_follows_the_worst_cases(worst, opening):
    text = chapter.verdict(_payload(worst))
    assert text.startswith(opening) and "0.749" in text and "stand-ins" not in text
    assert "stand-ins" in chapter.verdict(_payload(worst, standin=True))
