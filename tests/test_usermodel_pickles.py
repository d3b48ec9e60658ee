"""Whole pickled modules under the audit (natrob.audit.pickled through natrob.audit.usermodel): a
DataParallel-wrapped module saved by ``torch.save(model)``, in torch's zip format and in the legacy one (torch < 1.6,
as TisODE's published checkpoints), loads with only the user's file's classes, torch.nn modules, tensors and plain
containers allowed; a pickle naming anything else is refused by name before it runs; missing classes are named; state
dicts load as before. No training: every checkpoint is written here, in tmp_path."""
import importlib.util
import os
import subprocess
import sys
import types
import warnings

import pytest
import torch
from torch import nn

from natrob.run.audit import main as audit_main
from natrob.errors import ConfigError
from natrob.audit.usermodel import load_module_checkpoint, load_user_model

USER_FILE = '''
import torch
from torch import nn


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x):
        return x + torch.tanh(self.conv(x))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = Block(4)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
        self.steps = 3  # a plain attribute: the pickle carries it, a state dict would not

    def forward(self, x):
        h = self.stem(x)
        for _ in range(self.steps):
            h = self.block(h)
        return self.head(h)


def make():
    torch.manual_seed(0)
    return TinyNet()
'''

LACKING_FILE = '''
from torch import nn


class TinyNet(nn.Module):
    def forward(self, x):
        return self.head(self.block(self.stem(x)))
'''

FORMATS = [pytest.param(False, id="zip"), pytest.param(True, id="legacy")]


class Payload:
    """Pickles as a call of ``func(*args)``: what a malicious checkpoint embeds."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.fixture
def user_file(tmp_path):
    path = tmp_path / "my_net.py"
    path.write_text(USER_FILE)
    return path


@pytest.fixture
def x():
    return torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.fixture
def save(user_file, monkeypatch, x):
    """``save(saved_from, legacy, extra)`` -> (reference logits for ``x``, checkpoint path): the user file's
    ``make()`` model (with ``steps`` changed to 2, so only a loaded pickle reproduces its outputs) wrapped in
    DataParallel and written by ``torch.save``, as if its classes lived in the module ``saved_from``."""
    spec = importlib.util.spec_from_file_location("natrob_test_pickles_src", user_file)
    src = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(src)

    def _save(saved_from="networks", legacy=False, extra=None):
        home = sys.modules.get(saved_from) or types.ModuleType(saved_from)
        monkeypatch.setitem(sys.modules, saved_from, home)
        for cls in (src.Block, src.TinyNet):
            monkeypatch.setattr(cls, "__module__", saved_from)
            monkeypatch.setattr(home, cls.__name__, cls, raising=False)
        net = src.make().eval()
        net.steps = 2
        if extra is not None:
            net.extra = extra
        with torch.no_grad():
            reference = net(x)
        path = user_file.parent / f"model_best_{saved_from.strip('_')}_{'legacy' if legacy else 'zip'}.pth"
        with warnings.catch_warnings():  # the legacy writer warns that it cannot read the classes' source
            warnings.simplefilter("ignore")
            torch.save(nn.DataParallel(net), path, _use_new_zipfile_serialization=not legacy)
        return reference, path

    return _save


def _command(capsys, tmp_path, *args) -> tuple:
    out = tmp_path / "audit-out"
    status = audit_main([*args, "--out", str(out), "--no-progress", "--n", "8"])
    err = capsys.readouterr().err.strip()
    assert not out.exists()
    return status, err


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("saved_from", ["networks", "__main__"])
def test_a_dataparallel_module_loads_unwrapped_with_its_outputs(save, user_file, x, saved_from, legacy):
    reference, ckpt = save(saved_from, legacy)
    for spec in (f"{user_file}:make", f"{user_file}:TinyNet"):
        model = load_user_model(spec, ckpt)
        assert type(model).__name__ == "TinyNet" and not model.training
        assert type(model.block).__module__ == type(model).__module__ != saved_from  # the user file's classes
        assert model.steps == 2
        with torch.no_grad():
            assert torch.equal(model(x), reference)
    direct = load_module_checkpoint(ckpt, user_file)
    with torch.no_grad():
        assert torch.equal(direct(x), reference)


@pytest.mark.parametrize("legacy", FORMATS)
@pytest.mark.parametrize("func, args, named", [
    (os.system, ("echo pwned > {flag}",), f"{os.system.__module__}.system"),
    (eval, ("open({flag!r}, 'w').write('pwned')",), "builtins.eval"),
    (subprocess.Popen, (["touch", "{flag}"],), "subprocess.Popen"),
])
def test_a_pickle_naming_a_forbidden_global_is_refused_before_it_runs(save, user_file, tmp_path, capsys, func,
                                                                     args, named, legacy):
    flag = tmp_path / "FILE"
    args = tuple([a.format(flag=str(flag)) for a in arg] if isinstance(arg, list) else arg.format(flag=str(flag))
                 for arg in args)
    _, ckpt = save("networks", legacy, extra=Payload(func, *args))
    with pytest.raises(ConfigError, match=f"names `{named}`, which natrob refuses to load"):
        load_user_model(f"{user_file}:make", ckpt)
    with pytest.raises(ConfigError, match=f"`{named}`"):
        load_module_checkpoint(ckpt, user_file)
    status, err = _command(capsys, tmp_path, "--model", f"{user_file}:make", "--checkpoint", str(ckpt))
    assert status == 2 and len(err.splitlines()) == 1 and f"`{named}`" in err, err
    assert err.startswith("natrob.audit: checkpoint=")
    assert not flag.exists()


@pytest.mark.parametrize("legacy", FORMATS)
def test_a_checkpoint_whose_class_the_file_lacks_names_it(save, tmp_path, capsys, legacy):
    _, ckpt = save("networks", legacy)
    lacking = tmp_path / "lacking.py"
    lacking.write_text(LACKING_FILE)
    with pytest.raises(ConfigError, match="needs class `networks.Block`, which lacking.py does not define"):
        load_user_model(f"{lacking}:TinyNet", ckpt)
    status, err = _command(capsys, tmp_path, "--model", f"{lacking}:TinyNet", "--checkpoint", str(ckpt))
    assert status == 2 and len(err.splitlines()) == 1 and "`networks.Block`" in err, err
    with pytest.raises(ConfigError, match="classes `networks.Block`, `networks.TinyNet`, and no file"):
        load_module_checkpoint(ckpt)


def test_a_whole_module_of_another_class_than_the_one_named_is_refused(save, tmp_path):
    _, ckpt = save("networks")
    other = tmp_path / "other.py"
    other.write_text(USER_FILE + "\n\nclass Other(TinyNet):\n    pass\n")
    with pytest.raises(ConfigError, match="a whole pickled Other .*it holds an instance of TinyNet"):
        load_user_model(f"{other}:Other", ckpt)


@pytest.mark.parametrize("layout", ["plain", "dict", "dataparallel", "net"])
def test_a_state_dict_checkpoint_still_loads(user_file, tmp_path, x, layout):
    spec = importlib.util.spec_from_file_location("natrob_test_pickles_sd", user_file)
    src = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(src)
    torch.manual_seed(5)
    net = src.TinyNet().eval()
    state = net.state_dict()
    ckpt = tmp_path / "weights.pt"
    torch.save({"plain": state, "dict": {"state_dict": state, "epoch": 3},
                "dataparallel": {"module." + k: v for k, v in state.items()},
                "net": {"net": {"module." + k: v for k, v in state.items()}, "epoch": 3}}[layout], ckpt)
    model = load_user_model(f"{user_file}:make", ckpt)
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    with pytest.raises(ConfigError, match="holds weights only"):
        load_module_checkpoint(ckpt, user_file)
