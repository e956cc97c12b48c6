"""Small frozen CNN classifiers that score generated MNIST / Fashion-MNIST images.

The metrics in :mod:`labkit.metrics` (class coverage, classifier Inception Score,
conditional accuracy, Fréchet classifier distance) all look at generated images
through one of these networks. They are trained once by
``scripts/train_classifiers.py`` and shipped in ``checkpoints/``:

    >>> from labkit.models.classifier import load_classifier
    >>> clf = load_classifier("mnist")
    >>> logits = clf(images)          # images: N×1×28×28 float tensor in [-1, 1]
    >>> feats = clf.features(images)  # N×128 penultimate features

The measured accuracies are in ``docs/classifiers.md`` and in each checkpoint's
metadata (``clf.checkpoint_metadata``).
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoint import Configurable, loadModel
from ..paths import checkpoints_dir

__all__ = ["ImageClassifier", "load_classifier", "classifier_path", "DATASETS", "CLASS_NAMES", "dataset_key", "class_index"]

DATASETS = ("mnist", "fashion_mnist")

CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "fashion_mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                      "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
}

IMAGE_SHAPE = (1, 28, 28)


def class_index(dataset: str, c) -> int:
    """The class number of ``c``: a number 0-9 or a class name of ``dataset`` (any case), e.g. "sneaker" -> 7.

    Anything else raises a ValueError that lists the classes, so ``generate(n, "sneakers")`` says what to write.
    """
    names = CLASS_NAMES[dataset_key(dataset)]
    listing = ", ".join(f"{i} {name}" for i, name in enumerate(names))
    if isinstance(c, str):
        matches = [i for i, name in enumerate(names) if name.lower() == c.strip().lower()]
        if not matches:
            raise ValueError(f"Unknown class {c!r}. Use a number 0-{len(names) - 1} or a name: {listing}.")
        return matches[0]
    if isinstance(c, (np.ndarray, torch.Tensor)) and c.ndim == 0:
        c = c.item()  # a numpy or torch scalar
    if isinstance(c, bool) or not isinstance(c, numbers.Integral):
        raise ValueError(f"A class is one whole number 0-{len(names) - 1} or a name, got {c!r}: {listing}.")
    if not 0 <= int(c) < len(names):
        raise ValueError(f"Class {c} does not exist: use a number 0-{len(names) - 1} or a name ({listing}).")
    return int(c)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ImageClassifier(Configurable):
    """A compact CNN for 1×28×28 images in [-1, 1]: ``forward`` gives logits, ``features`` the embedding.

    Layout: 28×28 (``width`` channels) → pool → 14×14 (2·width, two convs) → pool →
    7×7 (``feature_dim`` channels) → global average pool → ``feature_dim`` features →
    linear → ``n_classes`` logits. Global pooling keeps the weights small (about
    0.6 MB with the defaults) and the features translation-tolerant.
    """

    def __init__(self, n_classes: int = 10, width: int = 32, feature_dim: int = 128, dropout: float = 0.3):
        super().__init__()
        self.n_classes = n_classes
        self.feature_dim = feature_dim
        self.body = nn.Sequential(
            _conv_block(1, width),
            nn.MaxPool2d(2),
            _conv_block(width, 2 * width),
            _conv_block(2 * width, 2 * width),
            nn.MaxPool2d(2),
            _conv_block(2 * width, feature_dim),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(feature_dim, n_classes)

    @staticmethod
    def check_input(x: torch.Tensor) -> None:
        """Raise a ValueError that says what is wrong unless ``x`` is an N×1×28×28 float tensor."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"The classifier takes a torch tensor of shape N×1×28×28, got {type(x).__name__}.")
        if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            shape = "×".join(str(s) for s in x.shape) or "a scalar"
            hint = ""
            if x.dim() == 3 and tuple(x.shape[1:]) == (28, 28):
                hint = " Add the channel axis: x.unsqueeze(1)."
            elif x.dim() == 2 and x.shape[1] == 784:
                hint = " Reshape flat images: x.view(-1, 1, 28, 28)."
            elif x.dim() == 3 and tuple(x.shape) == IMAGE_SHAPE:
                hint = " For a single image add the batch axis: x.unsqueeze(0)."
            raise ValueError(f"The classifier expects images of shape N×1×28×28, got {shape}.{hint}")
        if not x.is_floating_point():
            raise TypeError(f"The classifier expects float images in [-1, 1], got dtype {x.dtype}.")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The ``feature_dim``-dimensional penultimate representation (non-negative, after ReLU + pooling)."""
        self.check_input(x)
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits, shape N×n_classes, for images N×1×28×28 in [-1, 1]."""
        return self.head(self.dropout(self.features(x)))


def dataset_key(dataset: str) -> str:
    key = str(dataset).strip().lower().replace("-", "_")
    if key not in DATASETS:
        raise ValueError(f"No classifier for {dataset!r}. Valid names: {', '.join(DATASETS)}.")
    return key


def classifier_path(dataset: str) -> Path:
    """Where the checkpoint of the classifier for ``dataset`` lives (it may not exist yet)."""
    return checkpoints_dir() / f"classifier_{dataset_key(dataset)}.pt"


_cache: Dict[Tuple[str, str], ImageClassifier] = {}


def load_classifier(dataset: str, device="cpu") -> ImageClassifier:
    """The trained classifier for ``"mnist"`` or ``"fashion_mnist"``, in eval mode, cached per device.

    Its parameters are frozen (``requires_grad=False``); gradients with respect to
    the input images still flow. The same object is returned on every call, so do
    not train it or switch it to train mode.
    """
    key = dataset_key(dataset)
    device = str(torch.device(device))
    if (key, device) not in _cache:
        path = classifier_path(key)
        if not path.exists():
            raise FileNotFoundError(
                f"The {key} metric classifier is missing: no file at {path}. It ships in the course "
                f"repository's checkpoints/ folder (set LABKIT_CHECKPOINTS if yours is elsewhere); "
                f"maintainers rebuild it with `python scripts/train_classifiers.py`."
            )
        model = loadModel(path, map_location=device)
        if not isinstance(model, ImageClassifier):
            raise TypeError(f"{path} holds a {type(model).__name__}, not an ImageClassifier.")
        model.requires_grad_(False)
        _cache[(key, device)] = model
    return _cache[(key, device)]
