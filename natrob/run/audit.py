"""Audit your own model from the command line.

    python -m natrob.run.audit --model path/to/file.py:factory [--checkpoint ckpt.pt] [--dataset mnist]
                           [--eps 0.1 0.3] [--n 200] [--budget standard] [--out DIR] [--label NAME]

``factory`` is a function in the file that takes no arguments and returns the ``torch.nn.Module`` (logits for
images in [0, 1]); ``--checkpoint`` loads with ``weights_only=True`` (DataParallel prefixes handled), or, when it
holds a whole pickled module (``torch.save(model)``, e.g. inside DataParallel), as that module: its pickle may name
only torch tensors, torch.nn modules, plain containers and classes the file defines (matched by name), anything
else is refused by name (natrob.audit.pickled), and the factory is not called. Writes
``DIR/audit.json`` (the result with its provenance) and ``DIR/index.html`` (the page a reviewer can attach), both
at the end and atomically. Every attack's counts are kept in natrob's evaluation store as they finish, so a killed
run resumes where it stopped. Exit status: 0 audited (whatever the verdict), 2 bad input (one line naming what and
why, nothing written).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .. import paths
from ..audit.budgets import BUDGETS
from ..errors import ConfigError, DataNotFoundError
from ..results import sha256


def _parse(argv):
    p = argparse.ArgumentParser(prog="python -m natrob.run.audit", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="path/to/file.py:factory")
    p.add_argument("--checkpoint", default=None,
                   help="weights to load into the factory's model, or a whole pickled module (torch.save(model)) whose "
                        "classes the file defines")
    p.add_argument("--dataset", default="mnist", help="digits, mnist, mnist-testsplit or cifar10 (default mnist)")
    p.add_argument("--root", default=None,
                   help="data folder (default: NATROB_DATA, else ./data in the checkout, "
                        "else ../shared/data beside it)")
    p.add_argument("--eps", type=float, nargs="+", default=[0.1, 0.3], help="L-inf radii in [0, 1] pixel units")
    p.add_argument("--n", type=int, default=200, help="test images audited (the first n; default 200)")
    p.add_argument("--budget", default="standard", choices=list(BUDGETS), help="attack sizes (natrob.audit.budgets)")
    p.add_argument("--out", default=None, help="output folder (default audit-<label>)")
    p.add_argument("--label", default=None, help="the model's name in the result (default: the file's stem)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def _sha256(path) -> str | None:
    return None if path is None else sha256(path)


def _fail(msg: str) -> int:
    print(f"natrob.audit: {' '.join(msg.split())[:500]}", file=sys.stderr)
    return 2


def _preflight(model, x, y, dataset: str, spec: str):
    """Bad input found before any attack runs: the model rejects the images, or the labels exceed its classes."""
    from ..attacks.contract import prepare
    prep = prepare(model, x[:8], y[:8].clamp(max=1))  # labels are checked below, against the model's classes
    if not prep.evaluable:
        raise ConfigError("--model", spec, f"a model that takes {dataset} images (batches of shape "
                                           f"{tuple(x[:8].shape)}, values in [0, 1]); {prep.reason}")
    classes = prep.output.get("classes")
    if classes is not None and int(y.max()) >= classes:
        raise ConfigError("--dataset", dataset, f"labels the model can output: {dataset} has labels up to "
                                              f"{int(y.max())} but the model returns {classes} logits")


def main(argv=None) -> int:
    """Command line (see the module docstring); returns the exit status."""
    a = _parse(argv)
    import torch
    from .. import audit
    from ..audit import verdict
    from ..chapters import ch06_audit
    from ..data import load_dataset
    from ..provenance import provenance
    from ..report.audit_page import render_audit_page
    from ..results import write_json
    from ..audit.usermodel import load_user_model, parse_spec
    if a.threads:
        torch.set_num_threads(a.threads)
    device = a.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()
    try:
        label = a.label or parse_spec(a.model)[0].stem
        out = Path(a.out or f"audit-{label}")
        if out.exists() and not out.is_dir():
            raise ConfigError("--out", str(out), "a folder (it is a file)")
        if a.n < 1:
            raise ConfigError("--n", a.n, "a positive number of test images")
        audit._eps_list(a.eps, "--eps")
        model = load_user_model(a.model, a.checkpoint, device)
        data = load_dataset(a.dataset, root=a.root, seed=a.seed, download=False)
        x, y = data.test_x[:a.n].to(device), data.test_y[:a.n].to(device)
        _preflight(model, x, y, a.dataset, a.model)
    except (ConfigError, DataNotFoundError) as exc:
        return _fail(str(exc))
    print(f"auditing {label} on {len(y)} {data.name} test images at eps {', '.join(f'{e:g}' for e in a.eps)}, "
          f"budget {a.budget} ({device})", flush=True)
    result = audit.audit_model(model, x, y, a.eps, a.budget, label, num_classes=data.num_classes,
                               progress=not a.no_progress, seed=a.seed)
    headline = verdict.headline({label: result["findings"]})
    payload = ch06_audit.payload(data, len(y), {label: result}, headline,
                                 audit.constant_image_bound(result["class_shares"]), audit.ROLES)
    params = {"model": a.model, "checkpoint": a.checkpoint, "checkpoint_sha256": _sha256(a.checkpoint),
              "dataset": a.dataset, "data_protocol": data.protocol, "data_root": str(a.root or paths.data_root()),
              "eps": a.eps, "n": a.n, "budget": a.budget, "budget_sizes": BUDGETS[a.budget], "label": label,
              "evaluation_store": str(paths.eval_cache_dir())}
    prov = provenance(params, seed=a.seed, device=device, wall_time_s=time.time() - t0) | {"profile": None}
    payload = {**payload, "budget": a.budget, "per_eps": result["per_eps"], "provenance": prov}
    write_json(out / "audit.json", payload)
    render_audit_page(payload, out / "index.html", f"audit of {label}", str(prov.get("git_commit", "?")))
    print(result["sentence"])
    print(f"wrote {out / 'audit.json'} and {out / 'index.html'} in {time.time() - t0:.0f}s; finished attacks are "
          f"kept in {paths.eval_cache_dir()} (NATROB_ARTIFACTS moves it): a re-run of the same model reuses them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
