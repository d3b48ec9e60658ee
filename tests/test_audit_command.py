"""Audit your own model: the command line (``python -m natrob.run.audit``), the one call (``natrob.audit_model`` with a
dataset name and a named budget), bad input as one line and exit code 2, and a model that writes into its input."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from natrob import audit_model, paths
from natrob.audit import budgets
from natrob.run.audit import main as audit_main
from natrob.errors import ConfigError

FIXTURE = Path(__file__).parent / "fixtures" / "user_model.py"
sys.path.insert(0, str(FIXTURE.parent))
import user_model  # noqa: E402


@pytest.fixture(scope="module")
def user_files(tmp_path_factory, digits):
    """The fixture's small CNN trained 8 epochs on digits, saved as a DataParallel checkpoint (``module.``)."""
    folder = tmp_path_factory.mktemp("user")
    model = user_model.trained(digits)
    ckpt = folder / "net_dp.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in model.state_dict().items()}}, ckpt)
    return {"folder": folder, "ckpt": ckpt, "model": model}


def _counts(result: dict) -> dict:
    return {(pe["eps"], i): a["robust"]["k"] for pe in result["per_eps"] for i, a in pe["attacks"].items()}


def test_command_writes_the_audit_of_direct_call(user_files, digits):
    out = user_files["folder"] / "out"
    env = dict(os.environ, PYTHONPATH=str(paths.REPO))
    proc = subprocess.run([sys.executable, "-m", "natrob.run.audit", "--model", f"{FIXTURE}:make", "--checkpoint",
                           str(user_files["ckpt"]), "--dataset", "digits", "--eps", "0.1", "0.3", "--n", "24",
                           "--budget", "quick", "--label", "my-cnn", "--out", str(out), "--no-progress",
                           "--threads", "1"], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    written = json.loads((out / "audit.json").read_text())
    direct = audit_model(user_files["model"], "digits", eps_list=[0.1, 0.3], n=24, budget="quick", label="my-cnn",
                         progress=False)
    assert _counts(written["models"]["my-cnn"]) == _counts(direct)
    assert written["provenance"]["params"]["budget"] == "quick" and written["provenance"]["git_commit"]
    assert written["headline"] == [direct["sentence"]]
    page = (out / "index.html").read_text()
    assert "my-cnn" in page and "worst case" in page and "data:image/png;base64" in page
    assert direct["sentence"].split(":")[0] in page


@pytest.mark.parametrize("args, message", [
    (["--model", "no/such/file.py:make"], "does not exist"),
    (["--model", f"{FIXTURE}:no_such_factory"], "it defines"),
    (["--model", f"{FIXTURE}"], "path/to/file.py:factory"),
    (["--model", f"{FIXTURE}:raises"], "raised RuntimeError: this factory needs a GPU"),
    (["--model", f"{FIXTURE}:five_classes"], "returns 5 logits"),
    (["--model", f"{FIXTURE}:three_channels"], "shape (8, 1, 8, 8)"),
    (["--model", f"{FIXTURE}:make", "--checkpoint", "no/such.pt"], "does not exist"),
    (["--model", f"{FIXTURE}:five_classes", "--checkpoint", "CKPT"], "does not fit this model"),
    (["--model", f"{FIXTURE}:make", "--eps", "0.1", "2"], "--eps"),
    (["--model", f"{FIXTURE}:make", "--n", "0"], "--n=0"),
    (["--model", f"{FIXTURE}:make", "--dataset", "imagenet"], "dataset='imagenet'"),
])
def test_bad_input_is_one_line_and_exit_2(args, message, user_files, capsys):
    out = user_files["folder"] / "bad"
    args = [str(user_files["ckpt"]) if a == "CKPT" else a for a in args]
    args += (["--dataset", "digits"] if "--dataset" not in args else []) + (["--n", "8"] if "--n" not in args else [])
    assert audit_main(args + ["--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_a_model_that_writes_into_its_input_is_measured_as_written_without(user_files, digits):
    """In-place normalisation: the same counts as the out-of-place model, the caller's images unchanged, and one
    check saying so."""
    state = user_files["model"].state_dict()
    plain, inplace = user_model.make(), user_model.make_inplace()
    plain.load_state_dict(state), inplace.load_state_dict(state)
    x, y = digits.test_x[:24].clone(), digits.test_y[:24]
    before = x.clone()
    a = audit_model(plain.eval(), x, y, [0.1], "quick", "plain", progress=False)
    b = audit_model(inplace.eval(), x, y, [0.1], "quick", "in-place", progress=False)
    assert torch.equal(x, before)
    assert _counts(a) == _counts(b) and all(v is not None for v in _counts(b).values())
    assert [p["errors"] for p in b["per_eps"]] == [[]]
    said = [c for c in b["checks"] if "writes into its input" in c["check"]]
    assert len(said) == 1 and said[0]["status"] == "pass"
    assert not [c for c in a["checks"] if "writes into its input" in c["check"]]
    assert b["findings"][0]["masking"]["status"] == a["findings"][0]["masking"]["status"] == "no sign"


def test_a_budget_that_leaves_keys_out_takes_the_defaults_in_budgets():
    """One place for every default: the audit's plan and the strongest evaluation read the same settings."""
    from natrob.audit import attack_plan
    from natrob.audit.strongest import worst_case_specs
    plan = {s["id"]: s for s in attack_plan({"pgd_steps": [7]}, {})}
    assert budgets.pgd_id(7, budgets.AUDIT_DEFAULTS["pgd_restarts"]) in plan
    assert plan["square"]["n_queries"] == budgets.AUDIT_DEFAULTS["square_queries"]
    eot = {s["id"]: s for s in attack_plan({}, {}, randomized=True)}
    assert eot["pgd-eot"]["eot_iter"] == budgets.AUDIT_DEFAULTS["eot_iter"]
    assert eot["autoattack-rand"]["eot_iter"] == budgets.AA_EOT_ITER
    assert {s["id"] for s in attack_plan({"eot_iter": 3}, {}, randomized=True) if s.get("eot_iter") == 3} == {
        "pgd-eot", "autoattack-rand"}
    paper = {"name": "pgd", "steps": 2, "alpha": 0.1, "id": "pgd-paper", "label": "PGD-2"}
    assert [s["id"] for s in worst_case_specs({"pgd_steps": [5, 9], "pgd_restarts": 3}, paper)] == [
        "pgd-paper", "pgd9x3", "autoattack", "square"]
    assert budgets.grid_settings(None) == budgets.GRID_DEFAULTS and budgets.grid_settings({"cw": False})["cw"] is False


def test_named_budgets_grow_and_bad_ones_are_refused():
    sizes = [budgets.resolve(name) for name in ("quick", "standard", "strong")]
    for weak, strong in zip(sizes, sizes[1:]):
        for k, v in weak.items():
            more = strong[k]
            assert (max(more) >= max(v)) if isinstance(v, list) else more >= v, (k, v, more)
    with pytest.raises(ConfigError, match="budget='huge'"):
        budgets.resolve("huge")
    with pytest.raises(ConfigError, match="pgd_stepz"):
        budgets.resolve({"pgd_stepz": [10]})
    with pytest.raises(ConfigError, match="GRID_BUDGET.*cw_loss"):
        budgets.grid_settings({"cw_loss": False})
    with pytest.raises(ConfigError, match="eps_list"):
        audit_model(user_model.make(), "digits", eps_list=[0.0])
    with pytest.raises(ConfigError, match="^y="):
        audit_model(user_model.make(), torch.rand(4, 1, 8, 8), None)
