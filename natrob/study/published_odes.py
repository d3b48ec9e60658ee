"""Published robust Neural-ODE models under the audit (notebook 10): TisODE's three MNIST checkpoints.

Source: Yan et al., "On Robustness of Neural Ordinary Differential Equations", ICLR 2020; repository
``HanshuYAN/TisODE`` at commit :data:`COMMIT`. It publishes ``checkpoints/MNIST_{CNN,ODE,tisode}_gaus_1/
model_best.pth`` (whole pickled modules, read by :func:`natrob.audit.usermodel.load_module_checkpoint`) and a log of its
own attack, ``sharing_MNIST_FGSM.txt``: accuracy under its "FGSM" (:class:`natrob.attacks.AdamStep`) at eps 0.15,
0.3 and 0.5 on 1,000 test images its script draws (:func:`logged_points`), for the published ``gaus_1`` models
and two unpublished retrainings (``gaus_2``, ``gaus_3``). The checkpoints are never part of natrob: a path names
them, and what was read is recorded by sha256.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from ..results import sha256, torch_save

REPOSITORY = "HanshuYAN/TisODE"
COMMIT = "b55ca435367fc1da3cf9ec0cc26aedfdfef869d7"
PAPER = 'Yan et al., "On Robustness of Neural Ordinary Differential Equations", ICLR 2020'
LOG_FILE = "sharing_MNIST_FGSM.txt"
# The script's draw (adversarial_attack_method.py): np.random.seed(1216), then 1,025 test indices without
# replacement, the first 25 set aside ("finetune"), the other 1,000 attacked.
LOG_SEED, LOG_COUNT, LOG_SKIP = 1216, 1000, 25


@dataclass(frozen=True)
class PublishedModel:
    """One published checkpoint: ``label``, its path inside the repository, the class its pickle names, the
    sha256 of the published file, and the log's accuracies {eps: fraction} for it (``logged``, gaus_1) and for
    the unpublished retrainings of the same recipe (``retrained``, gaus_2 and gaus_3). None: the script switched
    that attack off (it printed 0)."""
    label: str
    path: str
    cls: str
    sha256: str
    logged: dict
    retrained: tuple


MODELS = (
    PublishedModel("CNN", "checkpoints/MNIST_CNN_gaus_1/model_best.pth", "CNN_MNIST",
                   "a3eb5b84c25c81bd3236fcb4859c9f1262077a35c687c36c430731de065b650d",
                   {0.15: 0.855, 0.3: 0.545, 0.5: 0.168},
                   ({0.15: 0.855, 0.3: 0.524, 0.5: 0.161}, {0.15: 0.857, 0.3: 0.544, 0.5: 0.143})),
    PublishedModel("ODE", "checkpoints/MNIST_ODE_gaus_1/model_best.pth", "ODENet_MNIST",
                   "d367abe48ece8439dad4e022b9ebbc0ae7e1f9f9791d744f31c2907a49115483",
                   {0.15: 0.941, 0.3: 0.723, 0.5: 0.194},
                   ({0.15: 0.933, 0.3: 0.708, 0.5: 0.212}, {0.15: 0.938, 0.3: 0.703, 0.5: 0.188})),
    PublishedModel("TisODE", "checkpoints/MNIST_tisode_gaus_1/model_best.pth", "ODENet_tisode",
                   "7c88c10448e4e0ddf7cf28e46f3de4e0bc6688ef5e93dad5e5195cccfbb2c69e",
                   {0.15: None, 0.3: 0.749, 0.5: 0.375},
                   ({0.15: None, 0.3: 0.786, 0.5: 0.359}, {0.15: None, 0.3: 0.781, 0.5: 0.278})),
)


def locate(root) -> dict:
    """{label: Path or None} of :data:`MODELS` under ``root``: the repository's checkout or its ``checkpoints``
    folder (None or a missing folder: every model None). Raises ConfigError when ``root`` is not a folder."""
    if root is None:
        return {m.label: None for m in MODELS}
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise ConfigError("TISODE_CHECKPOINTS", str(root), "a folder: the TisODE checkout or its checkpoints folder")
    if root.name == "checkpoints":
        root = root.parent
    return {m.label: (root / m.path if (root / m.path).is_file() else None) for m in MODELS}


def provenance(label: str, path, networks_file) -> dict:
    """What was read for ``label``: the file's name in the repository, bytes, sha256, whether it is the published
    file, the class its pickle names, and the file whose forward passes ran."""
    model = next(m for m in MODELS if m.label == label)
    digest = sha256(path)
    return {"model": label, "file": model.path, "repository": REPOSITORY, "commit": COMMIT,
            "bytes": Path(path).stat().st_size, "sha256": digest, "published_sha256": model.sha256,
            "is_published_file": digest == model.sha256, "class": model.cls, "networks_file": str(networks_file)}


def logged_points(n_test: int, count: int = LOG_COUNT, skip: int = LOG_SKIP, seed: int = LOG_SEED) -> np.ndarray:
    """The test indices the log's script attacked, ascending (the order its loader visits them): numpy's legacy
    generator seeded with ``seed`` draws ``count + skip`` of ``n_test`` indices without replacement and the first
    ``skip`` are set aside. On a test set too small for that (a stand-in's), ``count`` shrinks to fit."""
    count = min(count, n_test - skip)
    if count < 1:
        raise ConfigError("n_test", n_test, f"more than {skip} test images")
    drawn = np.random.RandomState(seed).choice(n_test, count + skip, replace=False)
    return np.sort(drawn[skip:])


def flush_subnormal(model: torch.nn.Module) -> dict:
    """Set every subnormal parameter and buffer entry (nonzero, below float32's smallest normal, 1.2e-38) to 0, in
    place. Why: CPU arithmetic on subnormals is tens of times slower, and TisODE's checkpoints hold about a third
    of their weights as subnormals; a product with one is below half a unit in the last place of any normal
    activation, so the logits rarely change (the notebook measures whether they do). Returns {"subnormal": n,
    "entries": total}."""
    n = total = 0
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            if t.is_floating_point():
                sub = (t != 0) & (t.abs() < torch.finfo(t.dtype).tiny)
                n, total = n + int(sub.sum()), total + t.numel()
                t.masked_fill_(sub, 0.0)
    return {"subnormal": n, "entries": total}


def _networks(networks_file):
    """The user's file of TisODE's classes, imported as ``networks`` (the module name TisODE's pickles carry), so a
    stand-in pickles exactly as a published checkpoint does."""
    import importlib.util
    path = Path(networks_file).expanduser()
    if not path.is_file():
        raise ConfigError("TISODE_NETWORKS", str(networks_file), "an existing Python file defining TisODE's classes")
    spec = importlib.util.spec_from_file_location("networks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(model, data, epochs: int, lr: float, batch_size: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(data.train_y), generator=gen).split(batch_size):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(data.train_x[idx]), data.train_y[idx]).backward()
            opt.step()
    return model.eval()


def make_standins(folder, data, networks_file, channels: int, epochs: int, lr: float, batch_size: int,
                  seed: int = 0) -> dict:
    """Small stand-ins for the three published models where their checkpoints are absent: TisODE's classes
    (``networks_file``) ``channels`` wide for ``data``'s images, trained ``epochs`` epochs with Adam at ``lr``, and
    saved as TisODE saved its own, whole modules in torch's legacy format (the TisODE one inside
    ``nn.DataParallel``) at ``folder/<repository path>``, so the notebook reads them through the same loader.
    Files already there are kept (a re-run reads the same stand-ins). Returns {label: Path}."""
    module, out = None, {}
    for i, m in enumerate(MODELS):
        path = Path(folder) / m.path
        out[m.label] = path
        if path.is_file():
            continue
        module = module or _networks(networks_file)
        torch.manual_seed(seed + i)
        net = getattr(module, m.cls)(channels, data.shape[0], data.num_classes)
        net = _train(net, data, epochs, lr, batch_size, seed + i)
        saved = torch.nn.DataParallel(net) if m.label == "TisODE" else net
        previous = sys.modules.get("networks")
        sys.modules["networks"] = module  # pickle names each class by its module, as TisODE's files do
        try:
            torch_save(path, saved, legacy=True)  # atomic: another profile's run may make the same stand-in
        finally:
            if previous is None:
                sys.modules.pop("networks", None)
            else:
                sys.modules["networks"] = previous
    return out
