import pickle

import numpy as np
import pytest
import torch

from natrob import paths
from natrob.data import CIFAR_FILES, load_dataset, load_profile_dataset
from natrob.errors import DataNotFoundError, UnknownNameError


def test_digits_range_shape_and_split(digits):
    assert digits.shape == (1, 8, 8) and digits.num_classes == 10
    assert digits.train_x.min() >= 0 and digits.train_x.max() <= 1
    assert len(digits.train_y) + len(digits.test_y) == 1797
    again = load_dataset("digits")
    assert torch.equal(again.test_x, digits.test_x)  # deterministic split


def test_subsets_are_seeded():
    a = load_dataset("digits", train_size=100, test_size=50, seed=3)
    b = load_dataset("digits", train_size=100, test_size=50, seed=3)
    c = load_dataset("digits", train_size=100, test_size=50, seed=4)
    assert len(a.train_y) == 100 and len(a.test_y) == 50
    assert torch.equal(a.train_x, b.train_x) and not torch.equal(a.train_x, c.train_x)


def test_unknown_dataset_names_the_choices():
    with pytest.raises(UnknownNameError, match="dataset='imagenet'.*cifar10.*digits"):
        load_dataset("imagenet")


def test_missing_mnist_root_offline_is_actionable(tmp_path):
    with pytest.raises(DataNotFoundError) as exc:
        load_dataset("mnist", root=tmp_path / "nowhere", download=False)
    msg = str(exc.value)
    assert "nowhere" in msg and "t10k-images-idx3-ubyte" in msg and "download=True" in msg


def test_corrupt_idx_file_is_reported(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(b"garbage")
    with pytest.raises(DataNotFoundError, match="not an IDX file"):
        load_dataset("mnist-testsplit", root=tmp_path, download=False)


MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # ../shared/data/README.md
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
needs_shared_mnist = pytest.mark.skipif(paths.shared_mnist_root() is None,
                                        reason="../shared/data (official MNIST) not present")


@needs_shared_mnist
def test_mnist_official_split_from_shared_root():
    ds = load_dataset("mnist", root=paths.shared_mnist_root(), download=False)
    assert ds.shape == (1, 28, 28) and len(ds.train_y) == 60000 and len(ds.test_y) == 10000
    assert torch.bincount(ds.train_y, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert torch.bincount(ds.test_y, minlength=10).tolist() == MNIST_TEST_COUNTS
    assert "paper protocol" in ds.protocol and "NOT" not in ds.protocol
    assert float(ds.train_x.min()) == 0.0 and float(ds.train_x.max()) == 1.0


@needs_shared_mnist
def test_mnist_test_split_on_a_root_with_only_the_t10k_files(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / f"{stem}.gz").write_bytes((paths.shared_mnist_root() / "MNIST" / "raw" / f"{stem}.gz").read_bytes())
    ds = load_dataset("mnist-testsplit", root=tmp_path, download=False)
    assert ds.shape == (1, 28, 28) and len(ds.train_y) == 8000 and len(ds.test_y) == 2000
    assert "NOT the paper's protocol" in ds.protocol
    both = torch.bincount(torch.cat([ds.train_y, ds.test_y]), minlength=10).tolist()
    assert both == MNIST_TEST_COUNTS  # the 8k/2k split partitions the official test images
    with pytest.raises(DataNotFoundError, match="only the t10k"):
        load_dataset("mnist", root=tmp_path, download=False)
    # the profile's fallback takes over where the training split is missing, and says so
    fell_back = load_profile_dataset("mnist", root=tmp_path, fallback="mnist-testsplit", download=False)
    assert fell_back.name == "mnist-testsplit"


def _write_cifar(root, n=20, seed=0):
    rng = np.random.default_rng(seed)
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    for name in CIFAR_FILES:
        entry = {"batch_label": name, "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 "labels": list(rng.integers(0, 10, n).tolist()), "filenames": [f"{i}.png" for i in range(n)]}
        with open(base / name, "wb") as fh:
            pickle.dump(entry, fh, protocol=2)
    with open(base / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    return entry


def test_cifar10_reads_the_real_format(tmp_path):
    last = _write_cifar(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path, download=False)
    assert ds.shape == (3, 32, 32) and len(ds.train_y) == 100 and len(ds.test_y) == 20
    expected = torch.tensor(last["data"][0].reshape(3, 32, 32), dtype=torch.float32) / 255
    assert torch.allclose(ds.test_x[0], expected)
    assert ds.test_y.tolist() == last["labels"]


def test_cifar10_refuses_code_in_pickles(tmp_path):
    _write_cifar(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as fh:
        pickle.dump({"data": Evil(), "labels": []}, fh)
    with pytest.raises(DataNotFoundError, match="not a valid CIFAR-10"):
        load_dataset("cifar10", root=tmp_path, download=False)


def test_cifar10_missing_offline(tmp_path):
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", root=tmp_path, download=False)
