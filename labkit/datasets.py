"""Image data sets for the labs, built on torchvision and usable offline.

``load("mnist")`` returns a torchvision dataset of ``(image, label)`` with
``image`` a ``1×28×28`` float tensor in ``[-1, 1]`` (the range a ``tanh``
generator produces) and ``label`` an ``int``.

Where the images come from, first match wins:

1. the IDX files already in the data root (``root=`` argument, else the
   ``LABKIT_DATA`` environment variable, else ``~/.cache/labkit/data``);
2. for Fashion-MNIST, Debian's ``dataset-fashion-mnist`` package
   (``/usr/share/datasets/fashion-mnist``);
3. torchvision's own download (skipped when ``LABKIT_OFFLINE=1`` or ``download=False``);
4. the small real sample shipped inside labkit (``labkit/data/samples``), with
   one warning that says how small it is and how to get the full set.
"""
from __future__ import annotations

import contextlib
import gzip
import io
import os
import shutil
import warnings
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["load", "tensors", "balanced_indices", "names", "data_root", "read_idx", "write_idx", "DataUnavailableError", "SampleDataWarning"]

SAMPLES_DIR = Path(__file__).parent / "data" / "samples"
DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")

# name -> (torchvision class name, extra constructor kwargs, folder torchvision uses under root)
_SPECS = {
    "mnist": ("MNIST", {}, "MNIST"),
    "fashion_mnist": ("FashionMNIST", {}, "FashionMNIST"),
    "emnist_letters": ("EMNIST", {"split": "letters"}, "EMNIST"),
    "emnist_balanced": ("EMNIST", {"split": "balanced"}, "EMNIST"),
}
_IDX_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_warned = set()


class DataUnavailableError(RuntimeError):
    """The data set is not on disk, cannot be downloaded, and labkit ships no sample of it."""


class SampleDataWarning(UserWarning):
    """labkit fell back to its small shipped sample instead of the full data set."""


def names():
    return tuple(_SPECS)


def data_root(root=None) -> Path:
    """The folder holding data sets: ``root``, else ``$LABKIT_DATA``, else ``~/.cache/labkit/data``."""
    root = root or os.environ.get("LABKIT_DATA") or Path.home() / ".cache" / "labkit" / "data"
    return Path(root).expanduser()


def read_idx(path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its declared shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an IDX file (bad magic number).")
    dtype = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[raw[2]]
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim)
    return data.reshape(shape)


def write_idx(path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the MNIST format), byte-identical from run to run."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(header + array.tobytes())


def _default_transform():
    from torchvision import transforms

    # ToTensor gives [0, 1]; (x - 0.5) / 0.5 maps it to [-1, 1].
    return transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])


def _offline_requested(download) -> bool:
    if download is not None:
        return not download
    return os.environ.get("LABKIT_OFFLINE", "").strip().lower() in ("1", "true", "yes")


def _make(cls, root, train, transform, kwargs, download=False):
    return cls(root=str(root), train=train, transform=transform, download=download, **kwargs)


def _unpack_idx_into(raw_dir: Path, src_dir: Path) -> None:
    """Write the uncompressed IDX files torchvision expects (both splits: it checks for all four) into ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    for stem in _IDX_FILES[True] + _IDX_FILES[False]:
        target = raw_dir / stem
        if target.exists():
            continue
        tmp = target.with_suffix(".part")
        with gzip.open(src_dir / f"{stem}.gz", "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst)
        tmp.replace(target)  # never leave a half-written file that looks complete


def _writable(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".labkit-write-test"
        probe.touch()
        probe.unlink()
        return path
    except OSError:
        import tempfile

        return Path(tempfile.gettempdir()) / "labkit-data"


def load(name: str, train: bool = True, root=None, transform=None, download: Optional[bool] = None, limit: Optional[int] = None):
    """A torch Dataset of ``(1×28×28 float tensor in [-1, 1], int label)``.

    name: one of ``names()``. train: training split (else test split).
    root: data folder (default ``data_root()``). transform: replaces the default
    ``[-1, 1]`` transform. download: ``False`` never touches the network, ``None``
    follows ``LABKIT_OFFLINE``. limit: keep at most ``limit`` images, the same number
    of every class (quick mode uses it; see :func:`balanced_indices`).
    """
    import torchvision.datasets as tvd

    key = str(name).strip().lower().replace("-", "_")
    if key not in _SPECS:
        raise ValueError(f"Unknown data set {name!r}. Valid names: {', '.join(names())}.")
    cls_name, kwargs, folder = _SPECS[key]
    cls = getattr(tvd, cls_name)
    transform = transform if transform is not None else _default_transform()
    root = data_root(root)

    dataset = _from_disk_or_network(key, cls, kwargs, folder, root, train, transform, download)
    if dataset is None:
        dataset = _from_shipped_sample(key, cls, kwargs, folder, root, train, transform)
    if limit is not None and limit < len(dataset):
        import torch.utils.data as tud

        dataset = tud.Subset(dataset, balanced_indices(np.asarray(dataset.targets), limit).tolist())
    return dataset


def balanced_indices(labels, limit: int) -> np.ndarray:
    """Indices of at most ``limit`` images, the same number of each class present: the first of each class in the
    data's order, kept in that order. The first ``limit`` images would not do: the shipped samples are sorted by
    class, so a quick run on their start would never see the last classes."""
    labels = np.asarray(labels).reshape(-1)
    classes, counts = np.unique(labels, return_counts=True)
    per_class = min(int(limit) // max(len(classes), 1), int(counts.min())) if len(classes) else 0
    if per_class == 0:
        raise ValueError(f"limit={limit} is too small for {len(classes)} classes: keep at least one image of each.")
    keep = np.zeros(len(labels), dtype=bool)
    for c in classes:
        keep[np.flatnonzero(labels == c)[:per_class]] = True
    return np.flatnonzero(keep)


def _from_disk_or_network(key, cls, kwargs, folder, root, train, transform, download):
    try:
        return _make(cls, root, train, transform, kwargs)
    except RuntimeError:
        pass  # not on disk yet
    if key == "fashion_mnist" and (DEBIAN_FASHION_DIR / f"{_IDX_FILES[train][0]}.gz").exists():
        root = _writable(root)
        _unpack_idx_into(root / folder / "raw", DEBIAN_FASHION_DIR)
        return _make(cls, root, train, transform, kwargs)
    if _offline_requested(download):
        return None
    root = _writable(root)
    try:
        # torchvision prints each mirror it tries; a student offline only needs our one warning.
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return _make(cls, root, train, transform, kwargs, download=True)
    except Exception:  # URLError, HTTPError, checksum errors...: all mean "not available online"
        return None


def _from_shipped_sample(key, cls, kwargs, folder, root, train, transform):
    sample_dir = SAMPLES_DIR / key
    if not (sample_dir / f"{_IDX_FILES[train][0]}.gz").exists():
        raise DataUnavailableError(
            f"The {key} data set is not in {root} and could not be downloaded (no network?), "
            f"and labkit ships no sample of it. Run once with internet access, or copy the IDX files "
            f"into {root / folder / 'raw'}, or set LABKIT_DATA to a folder that has them."
        )
    sample_root = _writable(root / "labkit-sample")
    _unpack_idx_into(sample_root / folder / "raw", sample_dir)
    dataset = _make(cls, sample_root, train, transform, kwargs)
    if (key, train) not in _warned:
        _warned.add((key, train))
        split = "training" if train else "test"
        warnings.warn(
            f"Using labkit's small {key} sample ({len(dataset):,} {split} images) because the full data set "
            f"is not in {root} and could not be downloaded. Results will be rougher. To get the full set, run "
            f"once with internet access (torchvision downloads it into {root}) or copy its IDX files into "
            f"{root / folder / 'raw'}.",
            SampleDataWarning,
            stacklevel=3,
        )
    return dataset


def tensors(name: str, train: bool = True, root=None, download: Optional[bool] = None, limit: Optional[int] = None):
    """The whole split as two tensors: images (N, 1, 28, 28) float32 in [-1, 1] and labels (N,) int64.

    The same data as :func:`load`, without a per-image transform: a ``TensorDataset`` of these is
    many times faster to iterate than the PIL pipeline, which matters on a CPU. ``limit`` keeps the same number of
    images of every class, as in :func:`load`.
    """
    import torch

    dataset = load(name, train=train, root=root, download=download)
    base = dataset.dataset if hasattr(dataset, "dataset") else dataset
    images = torch.as_tensor(np.asarray(base.data, dtype=np.float32)) / 127.5 - 1.0
    labels = torch.as_tensor(np.asarray(base.targets, dtype=np.int64))
    if limit is not None and limit < len(labels):
        keep = torch.as_tensor(balanced_indices(labels.numpy(), limit))
        images, labels = images[keep], labels[keep]
    return images[:, None], labels

