"""What each named audit budget (natrob.audit.budgets) costs, measured side by side in one run on the same points:
the audit of a small CNN (the test fixture's, trained 8 epochs) and of the quick profile's 32-channel ODE net
(t1 = 100, trained through the model store), at one eps, on the first n digits test images.

    .venv/bin/python bench/audit_budgets.py [--n 100] [--eps 0.3] [--threads 2] [--budgets quick standard strong]
                                            [--models cnn ode]

Prints one line per (model, budget): wall seconds, the clean count and the worst case. Evaluations are not read
from the evaluation store (a cached run would time nothing).
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "fixtures"))


def _cnn(data):
    import user_model
    return user_model.trained(data)


def _ode(data):
    from natrob.profiles import load_profile
    from natrob.study.profile_models import model_loaders
    model, _ = model_loaders(load_profile("quick"), data, 0, ["Neural ODE"])["Neural ODE"]()
    return model.eval()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--eps", type=float, default=0.3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--budgets", nargs="+", default=["quick", "standard", "strong"])
    p.add_argument("--models", nargs="+", default=["cnn", "ode"])
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    from natrob import audit_model
    from natrob.data import load_dataset
    from natrob.provenance import device_description
    data = load_dataset("digits")
    x, y = data.test_x[:a.n], data.test_y[:a.n]
    print(f"# {device_description('cpu')}, {a.threads} threads, {a.n} digits test points, eps {a.eps}")
    for name in a.models:
        model = {"cnn": _cnn, "ode": _ode}[name](data)
        for budget in a.budgets:
            saved = os.environ.get("NATROB_ARTIFACTS")
            with tempfile.TemporaryDirectory() as tmp:
                os.environ["NATROB_ARTIFACTS"] = tmp  # an empty evaluation store: every attack runs
                t0 = time.time()
                r = audit_model(model, x, y, [a.eps], budget, name, progress=False)
                wall = time.time() - t0
            if saved is None:
                os.environ.pop("NATROB_ARTIFACTS")
            else:
                os.environ["NATROB_ARTIFACTS"] = saved
            pe = r["per_eps"][0]
            print(f"{name:4s} {budget:9s} {wall:8.1f} s   clean {pe['clean']['k']}/{a.n}   worst case "
                  f"{pe['worst_case']['k']}/{a.n}", flush=True)


if __name__ == "__main__":
    main()
