import gzip
import warnings

import numpy as np
import pytest
import torch

from labkit import datasets


@pytest.fixture
def empty_root(tmp_path, monkeypatch):
    """A data root with nothing in it, and no Debian Fashion-MNIST: only the shipped sample can serve."""
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")
    monkeypatch.setattr(datasets, "_warned", set())
    return tmp_path / "data"


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
@pytest.mark.parametrize("train", [True, False])
def test_offline_loader_falls_back_to_the_shipped_sample(empty_root, name, train):
    with pytest.warns(datasets.SampleDataWarning, match="sample"):
        data = datasets.load(name, train=train, root=empty_root, download=False)
    assert 1000 <= len(data) <= 5000
    image, label = data[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert image.min() >= -1 and image.max() <= 1 and image.min() < -0.9 and image.max() > 0.9
    assert isinstance(label, int) and 0 <= label <= 9
    labels = {data[i][1] for i in range(0, len(data), 7)}
    assert labels == set(range(10))


def test_the_sample_warning_is_given_once(empty_root):
    with pytest.warns(datasets.SampleDataWarning):
        datasets.load("mnist", root=empty_root, download=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load("mnist", root=empty_root, download=False)


def test_files_in_the_root_win_over_the_sample(empty_root):
    raw = empty_root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    images = np.zeros((3, 28, 28), np.uint8)
    images[:, 10:18, 10:18] = 255
    for split in ("train", "t10k"):
        (raw / f"{split}-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes())
        (raw / f"{split}-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big") + bytes([7, 1, 2]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = datasets.load("mnist", root=empty_root, download=False)
    assert len(data) == 3 and data[0][1] == 7


def test_root_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "somewhere"))
    assert datasets.data_root() == tmp_path / "somewhere"
    assert datasets.data_root(tmp_path / "arg") == tmp_path / "arg"


def test_limit_keeps_the_first_images(empty_root):
    with pytest.warns(datasets.SampleDataWarning):
        data = datasets.load("fashion_mnist", root=empty_root, download=False, limit=50)
    assert len(data) == 50


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="mnist, fashion_mnist"):
        datasets.load("cifar10")


def test_missing_data_without_sample_says_what_to_do(empty_root):
    with pytest.raises(datasets.DataUnavailableError, match="internet access"):
        datasets.load("emnist_letters", root=empty_root, download=False)


def test_read_idx_roundtrip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = tmp_path / "x.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape) + array.tobytes())
    np.testing.assert_array_equal(datasets.read_idx(path), array)
    (tmp_path / "bad").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="not an IDX file"):
        datasets.read_idx(tmp_path / "bad")
