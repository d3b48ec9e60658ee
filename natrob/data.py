"""Datasets by name, as float images in [0, 1], NCHW, held in memory.

Normalisation is *not* applied here: every model starts with a Normalize layer, so attacks and
epsilons live in [0,1] pixel space. Known names: see ``DATASETS``.
"""
from __future__ import annotations

import gzip
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import paths
from .errors import ConfigError, DataNotFoundError, UnknownNameError
from .locks import exclusive

MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CIFAR_FILES = ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]
STATS = {  # per-channel mean/std used by each model's Normalize layer
    "mnist": ((0.1307,), (0.3081,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


@dataclass
class Dataset:
    """A dataset held in memory: float images in [0, 1] (NCHW) and integer labels, per split.

    ``mean``/``std`` are the per-channel statistics a model's Normalize layer uses (the official ones for MNIST
    and CIFAR-10, measured on the training split otherwise); ``protocol`` says in words which split this is
    and whether it is the paper's."""
    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: tuple
    std: tuple
    protocol: str

    @property
    def shape(self) -> tuple:
        """Shape of one image, (C, H, W)."""
        return tuple(self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        """Largest label in either split, plus one."""
        return int(max(self.train_y.max(), self.test_y.max()).item()) + 1

    def class_shares(self, split: str = "test") -> list:
        """Fraction of each class in ``split`` ('test' or 'train'): the accuracy of always answering that class,
        which bounds the robust accuracy at eps >= 0.5 (the constant 0.5 image lies in every eps-ball)."""
        y = self.test_y if split == "test" else self.train_y
        return (torch.bincount(y, minlength=self.num_classes).float() / len(y)).tolist()

    def describe(self) -> dict:
        """Name, image shape, classes, split sizes and protocol: what results and model-store keys record."""
        return {"name": self.name, "shape": list(self.shape), "num_classes": self.num_classes,
                "n_train": len(self.train_y), "n_test": len(self.test_y), "protocol": self.protocol}


def _subset(x, y, size, seed):
    if size is None or size >= len(y):
        return x, y
    if size < 1:
        raise ConfigError("subset size", size, "an integer >= 1 or None for all")
    idx = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[: int(size)]
    return x[idx], y[idx]


def _channel_stats(x):
    dims = (0, 2, 3)
    return tuple(x.mean(dims).tolist()), tuple(x.std(dims).clamp_min(1e-3).tolist())


# ---------------------------------------------------------------- digits (embedded, default)
def _digits(root, download, seed, test_fraction=0.2, **_):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(1234))  # fixed split, not the run seed
    n_test = int(round(len(y) * test_fraction))
    te, tr = perm[:n_test], perm[n_test:]
    mean, std = _channel_stats(x[tr])
    return Dataset("digits", x[tr], y[tr], x[te], y[te], mean, std,
                   protocol="scikit-learn digits (8x8, 1797 images), fixed 80/20 split; not a paper dataset")


# ---------------------------------------------------------------- MNIST
def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataNotFoundError(f"cannot read {path}: {exc} (corrupt file? delete it and download again)") from exc
    if len(raw) < 8 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
        raise DataNotFoundError(f"{path} is not an IDX file of unsigned bytes (corrupt download?)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    body = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise DataNotFoundError(f"{path} is truncated: expected {int(np.prod(dims))} values, found {body.size}")
    return body.reshape(dims)


def _find_mnist_split(root: Path, split: str):
    found = []
    for stem in MNIST_FILES[split]:
        hits = [p for p in (root / "MNIST" / "raw" / stem, root / "MNIST" / "raw" / (stem + ".gz")) if p.exists()]
        if not hits:
            return None
        found.append(hits[0])
    return found


def _mnist_split(root: Path, split: str):
    files = _find_mnist_split(root, split)
    images, labels = _read_idx(files[0]), _read_idx(files[1])
    x = torch.from_numpy(images.copy()).float().div_(255.0).unsqueeze(1)
    return x, torch.from_numpy(labels.astype(np.int64))


def _mnist_missing(root: Path):
    expected = ", ".join(f + "[.gz]" for pair in MNIST_FILES.values() for f in pair)
    return DataNotFoundError(
        f"MNIST not found under data root {root} and it could not be downloaded (offline?). Expected "
        f"{root}/MNIST/raw/ to hold {expected}. Get them with torchvision.datasets.MNIST('{root}', download=True) "
        f"on a machine with internet, or set NATROB_DATA / data_root to a folder that has them. If the root holds "
        f"only the t10k (test) files, use dataset 'mnist-testsplit'.")


def _ensure_mnist(root: Path, download: bool):
    if _find_mnist_split(root, "train") and _find_mnist_split(root, "test"):
        return
    if download:
        try:
            import torchvision
            with exclusive(Path(root) / ".download.lock"):  # notebooks side by side download once
                torchvision.datasets.MNIST(str(root), train=True, download=True)
                torchvision.datasets.MNIST(str(root), train=False, download=True)
            return
        except Exception as exc:  # network errors come in many types (URLError, HTTPError, OSError...)
            raise _mnist_missing(root) from exc
    raise _mnist_missing(root)


def _mnist(root, download, seed, **_):
    _ensure_mnist(root, download)
    xtr, ytr = _mnist_split(root, "train")
    xte, yte = _mnist_split(root, "test")
    mean, std = STATS["mnist"]
    return Dataset("mnist", xtr, ytr, xte, yte, mean, std,
                   protocol="MNIST official 60k train / 10k test (paper protocol)")


def _mnist_testsplit(root, download, seed, eval_size=2000, **_):
    if not _find_mnist_split(root, "test"):
        if download:
            try:
                import torchvision
                with exclusive(Path(root) / ".download.lock"):
                    torchvision.datasets.MNIST(str(root), train=False, download=True)
            except Exception as exc:
                raise _mnist_missing(root) from exc
        else:
            raise _mnist_missing(root)
    x, y = _mnist_split(root, "test")
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(4321))  # fixed split, not the run seed
    te, tr = perm[:eval_size], perm[eval_size:]
    mean, std = STATS["mnist"]
    return Dataset("mnist-testsplit", x[tr], y[tr], x[te], y[te], mean, std,
                   protocol=f"NOT the paper's protocol: the 10k MNIST test images split {len(tr)} train / "
                            f"{len(te)} eval (fixed seed 4321)")


# ---------------------------------------------------------------- CIFAR-10
class _ArrayUnpickler(pickle.Unpickler):
    """Reads the cifar-10-batches-py pickles without executing arbitrary code: only numpy's array
    reconstruction is allowed, anything else in the file is refused."""
    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
                ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}  # protocol-2 bytes

    def find_class(self, module, name):
        """Only numpy arrays and bytes: a CIFAR-10 batch file needs nothing else, and a pickle can run code."""
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch file")


def _read_cifar_batch(path: Path):
    try:
        with open(path, "rb") as fh:
            entry = _ArrayUnpickler(fh, encoding="latin1").load()
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, ValueError, TypeError, AttributeError) as exc:
        raise DataNotFoundError(f"{path} is not a valid CIFAR-10 python batch ({exc}); "
                                "delete it and download again") from exc
    return torch.from_numpy(data.copy()).float().div_(255.0), torch.from_numpy(labels)


def _cifar10(root, download, seed, **_):
    base = root / "cifar-10-batches-py"
    if not all((base / f).exists() for f in CIFAR_FILES):
        if download:
            try:
                import torchvision
                with exclusive(Path(root) / ".download.lock"):
                    torchvision.datasets.CIFAR10(str(root), train=True, download=True)
            except Exception as exc:
                raise DataNotFoundError(_cifar_msg(root)) from exc
        else:
            raise DataNotFoundError(_cifar_msg(root))
    parts = [_read_cifar_batch(base / f) for f in CIFAR_FILES[:5]]
    xtr, ytr = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    xte, yte = _read_cifar_batch(base / "test_batch")
    mean, std = STATS["cifar10"]
    return Dataset("cifar10", xtr, ytr, xte, yte, mean, std,
                   protocol="CIFAR-10 official 50k train / 10k test (paper protocol)")


def _cifar_msg(root):
    return (f"CIFAR-10 not found under data root {root} and it could not be downloaded (offline?). Expected "
            f"{root}/cifar-10-batches-py/ with {', '.join(CIFAR_FILES)}. Get it with "
            f"torchvision.datasets.CIFAR10('{root}', download=True) on a machine with internet, or set NATROB_DATA.")


# ---------------------------------------------------------------- synthetic (tests)
def _synthetic(root, download, seed, shape=(1, 8, 8), num_classes=10, n_train=500, n_test=200, noise=0.15, **_):
    gen = torch.Generator().manual_seed(seed)
    templates = torch.rand((num_classes, *shape), generator=gen)
    def draw(n):
        y = torch.arange(n) % num_classes
        x = (templates[y] + noise * torch.randn((n, *shape), generator=gen)).clamp(0, 1)
        return x, y
    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    mean, std = _channel_stats(xtr)
    return Dataset("synthetic", xtr, ytr, xte, yte, mean, std,
                   protocol="synthetic class templates + Gaussian noise (tests only)")


DATASETS = {"digits": _digits, "mnist": _mnist, "mnist-testsplit": _mnist_testsplit, "cifar10": _cifar10,
            "synthetic": _synthetic}


def load_dataset(name: str = "digits", root=None, train_size=None, test_size=None, seed: int = 0,
                 download: bool = True, **options) -> Dataset:
    """Load a dataset by name: one of ``DATASETS`` ('digits', default, embedded; 'mnist'; 'mnist-testsplit';
    'cifar10'; 'synthetic', for tests).

    ``root``: data folder (None: ``NATROB_DATA`` or ``./data``); ``train_size``/``test_size`` (None: all):
    seeded random subsets; ``seed`` (0): seeds the subsets and the synthetic data; ``download`` (True): fetch
    MNIST/CIFAR-10 through torchvision when missing; ``options``: passed to the loader (e.g. ``eval_size``
    of 'mnist-testsplit'). Returns a :class:`Dataset`; raises ``DataNotFoundError`` with what to do when
    the files are missing and cannot be downloaded."""
    if name not in DATASETS:
        raise UnknownNameError("dataset", name, DATASETS)
    root = Path(root).expanduser() if root is not None else paths.data_root()
    ds = DATASETS[name](root=root, download=download, seed=seed, **options)
    ds.train_x, ds.train_y = _subset(ds.train_x, ds.train_y, train_size, seed)
    ds.test_x, ds.test_y = _subset(ds.test_x, ds.test_y, test_size, seed + 1)
    return ds


def load_profile_dataset(name: str, root=None, fallback: str | None = None, **kw) -> Dataset:
    """``load_dataset`` for notebooks: when ``name`` is missing offline and ``fallback`` is given (the mnist
    profile falls back to 'mnist-testsplit'), load the fallback and say so."""
    try:
        return load_dataset(name, root=root, **kw)
    except DataNotFoundError as exc:
        if not fallback:
            raise
        print(f"[natrob] {name} unavailable ({str(exc).splitlines()[0][:160]}...); using {fallback!r} instead")
        return load_dataset(fallback, root=root, **kw)
