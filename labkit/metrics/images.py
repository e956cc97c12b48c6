"""Image metrics through the frozen metric classifiers: class coverage, confidence, classifier IS, FCD.

Generated images are judged through the classifiers of :mod:`labkit.models.classifier`.
``evaluate_images`` takes images of shape N×28×28, N×1×28×28 or N×784 with values
in **[0, 1]**; pass ``value_range=(-1, 1)`` for raw ``tanh`` generator outputs.

The scores come from a small classifier trained on MNIST or Fashion-MNIST, not from
Inception-v3: the "classifier Inception Score" lies in [1, 10] and the Fréchet classifier
distance (FCD) is on its own scale. Neither is comparable with published IS / FID numbers;
compare models with each other and with the real-vs-real floor returned next to every FCD.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Tuple

import numpy as np
from scipy import linalg, special

from ..models.classifier import dataset_key

__all__ = [
    "classifier_outputs", "evaluate_images", "reference_images", "shipped_reference_images",
    "frechet_classifier_distance", "frechet_distance", "frechet_ratio", "gaussian_frechet_distance", "evaluate_generator",
    "graded_generator_scores",
]

# ---------------------------------------------------------------------------
# Image metrics
# ---------------------------------------------------------------------------

_VALUE_RANGES = {(0.0, 1.0), (-1.0, 1.0)}
_RANGE_TOLERANCE = 1e-3  # tanh/sigmoid outputs and float round-off may overshoot by a hair


def _as_unit_images(images, value_range=(0.0, 1.0), clip: bool = False) -> np.ndarray:
    """float32 array N×28×28 in [0, 1] from N×28×28, N×1×28×28 or N×784 data in ``value_range``."""
    value_range = tuple(float(v) for v in value_range)
    if value_range not in _VALUE_RANGES:
        raise ValueError(f"value_range must be (0, 1) or (-1, 1), got {value_range}.")
    if hasattr(images, "detach"):
        images = images.detach().cpu().numpy()
    array = np.asarray(images)
    if array.dtype == np.uint8:
        raise TypeError("Got uint8 images (0..255). Pass float images in [0, 1], e.g. images / 255.")
    array = array.astype(np.float32, copy=False)
    shape = array.shape
    if array.ndim == 4 and shape[1:] == (1, 28, 28):
        array = array[:, 0]
    elif array.ndim == 2 and shape[1] == 784:
        array = array.reshape(-1, 28, 28)
    elif not (array.ndim == 3 and shape[1:] == (28, 28)):
        raise ValueError(f"Expected images of shape N×28×28, N×1×28×28 or N×784, got {'×'.join(map(str, shape))}.")
    if array.shape[0] == 0:
        raise ValueError("Got no images (N = 0).")
    if not np.all(np.isfinite(array)):
        raise ValueError("The images contain NaN or infinite values (did training diverge?).")
    lo, hi = value_range
    low, high = float(array.min()), float(array.max())
    if not clip and (low < lo - _RANGE_TOLERANCE or high > hi + _RANGE_TOLERANCE):
        hint = ""
        if low >= -1 - _RANGE_TOLERANCE and value_range == (0.0, 1.0):
            hint = " If these are tanh outputs in [-1, 1], pass value_range=(-1, 1)."
        elif high > 1 + _RANGE_TOLERANCE:
            hint = " A generator should end in tanh (range [-1, 1]); 0..255 images should be divided by 255."
        raise ValueError(
            f"Image values span [{low:.3g}, {high:.3g}], outside the declared value_range {value_range}.{hint} "
            "Pass clip=True to clip them instead."
        )
    if value_range == (-1.0, 1.0):
        array = (array + 1.0) / 2.0
    return np.clip(array, 0.0, 1.0)


def classifier_outputs(images, dataset: str, value_range=(0.0, 1.0), clip: bool = False,
                       batch_size: int = 500, device="cpu") -> Tuple[np.ndarray, np.ndarray]:
    """(class probabilities N×10, penultimate features N×128) of the ``dataset`` classifier, as float64."""
    import torch

    from ..models.classifier import load_classifier

    unit = _as_unit_images(images, value_range, clip)
    model = load_classifier(dataset, device=device)
    probabilities, features = [], []
    with torch.no_grad():
        for start in range(0, len(unit), batch_size):
            x = torch.from_numpy(unit[start:start + batch_size]).to(device).unsqueeze(1) * 2 - 1
            f = model.features(x)
            probabilities.append(torch.softmax(model.head(f).double(), dim=1).cpu().numpy())
            features.append(f.double().cpu().numpy())
    return np.concatenate(probabilities), np.concatenate(features)


def _class_scores(probabilities: np.ndarray, coverage_threshold: float) -> Dict[str, Any]:
    n, n_classes = probabilities.shape
    predicted = probabilities.argmax(axis=1)
    histogram = np.bincount(predicted, minlength=n_classes)
    fractions = histogram / n
    kl_from_uniform = float(np.sum(special.xlogy(fractions, fractions * n_classes)))
    # A class counts as covered when it gets at least `coverage_threshold` of its fair share
    # (n / n_classes), so a few misclassified samples of a collapsed generator do not count.
    covered = int(np.count_nonzero(histogram >= max(1.0, coverage_threshold * n / n_classes)))
    marginal = probabilities.mean(axis=0)
    kl_per_image = np.sum(special.xlogy(probabilities, probabilities) - special.xlogy(probabilities, marginal), axis=1)
    # E[KL(p(y|x) || p(y))] is a mutual information: ≥ 0 and ≤ log(n_classes), up to round-off.
    mutual_information = float(np.clip(kl_per_image.mean(), 0.0, math.log(n_classes)))
    return {
        "class_histogram": histogram.tolist(),
        "min_class_share": float(fractions.min()),
        "max_class_share": float(fractions.max()),
        # min/max share: 1 when every class comes out equally often, 0 when one never does.
        "class_share_ratio": float(fractions.min() / fractions.max()),
        "kl_from_uniform": kl_from_uniform,
        "classes_covered": covered,
        "inception_score": math.exp(mutual_information),
        "mean_confidence": float(probabilities.max(axis=1).mean()),
    }


def _conditional_scores(probabilities: np.ndarray, labels) -> Dict[str, Any]:
    n, n_classes = probabilities.shape
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    labels = np.asarray(labels).reshape(-1)
    if labels.shape[0] != n:
        raise ValueError(f"Got {labels.shape[0]} labels for {n} images; give one label per image.")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"Labels must be integers in 0..{n_classes - 1}.")
    correct = probabilities.argmax(axis=1) == labels
    per_class = [float(correct[labels == c].mean()) if np.any(labels == c) else float("nan") for c in range(n_classes)]
    return {"conditional_accuracy": float(correct.mean()), "per_class_accuracy": per_class}


def evaluate_images(images, dataset: str, labels=None, reference=None, *, value_range=(0.0, 1.0),
                    clip: bool = False, coverage_threshold: float = 0.1, seed: int = 0,
                    device="cpu") -> Dict[str, Any]:
    """Score generated images with the ``dataset`` classifier ("mnist" or "fashion_mnist").

    images: N×28×28, N×1×28×28 or N×784, values in [0, 1] (numpy or torch). Raw
    ``tanh`` outputs in [-1, 1] need ``value_range=(-1, 1)``; values outside the
    declared range raise an error unless ``clip=True``.
    labels: the classes the images were asked to be (conditional generators).
    reference: real images for the FCD: ``None`` uses the held-out real set of
    :func:`reference_images`; an array of real images in ``value_range`` uses
    those; ``False`` skips the FCD.

    Returns a dict with
      n, class_histogram (predicted classes), kl_from_uniform (KL(predicted-class
      distribution || uniform): 0 = all classes equally often, log 10 ≈ 2.303 = one
      class), classes_covered (classes predicted at least ``coverage_threshold`` of
      their fair share n/10), inception_score (classifier IS, exp E[KL(p(y|x) || p(y))],
      between 1 and 10), mean_confidence (mean max-probability);
      with labels: conditional_accuracy and per_class_accuracy (nan for absent classes);
      unless reference is False: fcd, fcd_real_floor, fcd_n, fcd_reference (see
      :func:`frechet_classifier_distance`).
    """
    probabilities, features = classifier_outputs(images, dataset, value_range, clip, device=device)
    results: Dict[str, Any] = {"dataset": dataset_key(dataset), "n": int(len(probabilities))}
    results.update(_class_scores(probabilities, coverage_threshold))
    if labels is not None:
        results.update(_conditional_scores(probabilities, labels))
    if reference is not False:
        results.update(_fcd_from_features(features, dataset, reference, value_range, seed, device))
    return results


# ---------------------------------------------------------------------------
# Fréchet classifier distance
# ---------------------------------------------------------------------------


def shipped_reference_images(dataset: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """The held-out real images that ship inside labkit (1,000 per data set), N×28×28 float32 in [0, 1].

    The same on every machine, online or offline: graded scores use them so that a grade never depends
    on which copy of the data set the grader's machine has (the FCD's small-sample bias depends on
    how many reference images there are).
    """
    from ..datasets import SAMPLES_DIR, read_idx

    key = dataset_key(dataset)
    images = read_idx(SAMPLES_DIR / key / "t10k-images-idx3-ubyte.gz").astype(np.float32) / 255.0
    labels = read_idx(SAMPLES_DIR / key / "t10k-labels-idx1-ubyte.gz").astype(np.int64)
    return images, labels, f"labkit's shipped {key} test sample ({len(images):,} held-out images)"


def reference_images(dataset: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """Held-out real images (N×28×28 float32 in [0, 1]), their labels, and a description.

    MNIST: test images 5000..9999, which the classifier never saw; offline,
    ``labkit.datasets.load`` may serve only labkit's shipped sample of that half.
    Fashion-MNIST: the test set (or the shipped sample of it).
    """
    from .. import datasets

    key = dataset_key(dataset)
    data = datasets.load(key, train=False)
    if hasattr(data, "data") and hasattr(data, "targets"):  # torchvision MNIST-style: skip per-item PIL transforms
        images = np.asarray(data.data, dtype=np.float32) / 255.0
        labels = np.asarray(data.targets, dtype=np.int64)
    else:
        pairs = [data[i] for i in range(len(data))]
        images = np.stack([(np.asarray(x, dtype=np.float32).reshape(28, 28) + 1) / 2 for x, _ in pairs])
        labels = np.asarray([int(y) for _, y in pairs], dtype=np.int64)
    from_sample = "labkit-sample" in str(getattr(data, "root", ""))
    if key == "mnist" and len(images) == 10_000:
        # The metric classifier trained on test images 0..4999; only the other half is held out.
        images, labels = images[5000:], labels[5000:]
        description = f"MNIST test images 5000..9999 ({len(images):,}, held out)"
    elif key == "mnist":
        description = f"labkit's MNIST test sample ({len(images):,} held-out images)" if from_sample \
            else f"MNIST test split as served ({len(images):,} images)"
    else:
        description = f"Fashion-MNIST test {'sample' if from_sample else 'set'} ({len(images):,} images)"
    return images, labels, description


_reference_cache: Dict[Tuple[str, str], Tuple[np.ndarray, str]] = {}


def _reference_features(dataset: str, device) -> Tuple[np.ndarray, str]:
    key = (dataset_key(dataset), str(device))
    if key not in _reference_cache:
        images, _, description = reference_images(dataset)
        _, features = classifier_outputs(images, dataset, device=device)
        _reference_cache[key] = (features, description)
    return _reference_cache[key]


def gaussian_frechet_distance(mean_a, cov_a, mean_b, cov_b) -> float:
    """Fréchet (2-Wasserstein²) distance between N(mean_a, cov_a) and N(mean_b, cov_b).

    ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½). The trace of (Σa Σb)^½ is computed as
    Σ √eig(Σa^½ Σb Σa^½), a symmetric matrix similar to Σa Σb: same value as
    ``scipy.linalg.sqrtm`` gives, but stable for the singular covariances that
    ReLU features (dead units) and small sample sets produce.
    """
    mean_a, mean_b = np.atleast_1d(np.asarray(mean_a, np.float64)), np.atleast_1d(np.asarray(mean_b, np.float64))
    cov_a, cov_b = np.atleast_2d(np.asarray(cov_a, np.float64)), np.atleast_2d(np.asarray(cov_b, np.float64))
    eigenvalues, eigenvectors = linalg.eigh(cov_a)
    sqrt_a = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ eigenvectors.T
    middle = sqrt_a @ cov_b @ sqrt_a
    trace_sqrt = np.sum(np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0, None)))
    distance = np.sum((mean_a - mean_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt
    return float(max(distance, 0.0))  # round-off can leave -1e-12


def frechet_distance(features_a, features_b) -> float:
    """Fréchet distance between Gaussian fits (mean, covariance) of two feature sets (rows = samples)."""
    a, b = np.asarray(features_a, np.float64), np.asarray(features_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"Need two 2D feature arrays with the same number of columns, got {a.shape} and {b.shape}.")
    if min(len(a), len(b)) < 2:
        raise ValueError("Each feature set needs at least 2 rows to estimate a covariance.")
    return gaussian_frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


def _fcd_from_features(features, dataset, reference, value_range, seed, device) -> Dict[str, Any]:
    if reference is None:
        reference_features, description = _reference_features(dataset, device)
    else:
        _, reference_features = classifier_outputs(reference, dataset, value_range, device=device)
        description = f"given reference images ({len(reference_features):,})"
    # Generated set and real floor set are compared with the same real set A, all of size k,
    # so the floor carries the same small-sample bias as the score it is compared with.
    k = min(len(features), len(reference_features) // 2)
    if k < 2:
        raise ValueError(f"The FCD needs at least 2 images and 4 reference images; got {len(features)} and "
                         f"{len(reference_features)}.")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(reference_features))
    real_a, real_b = reference_features[order[:k]], reference_features[order[k:2 * k]]
    generated = features[rng.permutation(len(features))[:k]]
    return {
        "fcd": frechet_distance(generated, real_a),
        "fcd_real_floor": frechet_distance(real_b, real_a),
        "fcd_n": int(k),
        "fcd_reference": description,
    }


def frechet_ratio(features, reference_features, repeats: int = 5, seed: int = 0) -> Dict[str, Any]:
    """The FCD of generated features over the real-vs-real floor, averaged over ``repeats`` random splits.

    Each repeat draws k = min(N, R // 2) generated and two disjoint sets of k real features; the result is
    mean FCD / mean floor. One split of a small reference set moves the ratio by about ±30 %; averaging
    five makes a grade depend on the model, not on the draw.
    """
    features = np.asarray(features, dtype=np.float64)
    reference_features = np.asarray(reference_features, dtype=np.float64)
    k = min(len(features), len(reference_features) // 2)
    if k < 2:
        raise ValueError(f"The FCD needs at least 2 images and 4 reference images; got {len(features)} and "
                         f"{len(reference_features)}.")
    rng = np.random.default_rng(seed)
    fcds, floors = [], []
    for _ in range(repeats):
        order = rng.permutation(len(reference_features))
        real_a, real_b = reference_features[order[:k]], reference_features[order[k:2 * k]]
        generated = features[rng.permutation(len(features))[:k]]
        fcds.append(frechet_distance(generated, real_a))
        floors.append(frechet_distance(real_b, real_a))
    return {"fcd": float(np.mean(fcds)), "fcd_real_floor": float(np.mean(floors)),
            "fcd_over_floor": float(np.mean(fcds) / np.mean(floors)), "fcd_n": int(k), "fcd_repeats": int(repeats)}


def frechet_classifier_distance(images, dataset: str, reference=None, *, value_range=(0.0, 1.0),
                                clip: bool = False, seed: int = 0, device="cpu") -> Dict[str, Any]:
    """Fréchet classifier distance (FCD) of ``images`` to real held-out images, with its real-vs-real floor.

    Gaussian fits of the classifier's 128-d penultimate features (not Inception
    features: this is not an FID). k = min(N, R // 2) images are compared with a
    random set A of k real reference images (R of them, see
    :func:`reference_images`); ``fcd_real_floor`` is the same distance from a
    second, disjoint set of k real images to A: what a perfect generator would
    score with this many images. Returns ``{"fcd", "fcd_real_floor", "fcd_n",
    "fcd_reference"}``. images / value_range / clip / reference: as for
    :func:`evaluate_images`.
    """
    _, features = classifier_outputs(images, dataset, value_range, clip, device=device)
    return _fcd_from_features(features, dataset, reference, value_range, seed, device)


# ---------------------------------------------------------------------------
# Generators and tables
# ---------------------------------------------------------------------------


def evaluate_generator(generator, dataset: str, n: int = 2000, seed: int = 0, *, reference=None,
                       batch_size: int = 500, **kwargs) -> Dict[str, Any]:
    """Sample ``n`` images from ``generator`` and return every image metric of :func:`evaluate_images`.

    generator: a module (e.g. from ``labkit.loadModel``) or the path of a saveModel
    checkpoint. It is sampled with :func:`labkit.sampling.generate`: z ~ N(0, 1) of
    shape (n, *latent_shape) drawn from ``seed``, and for a conditional generator
    labels 0, 1, ..., n_classes−1, 0, 1, ..., so the conditional accuracy is reported.
    Its outputs must be tanh-range images (N×1×28×28, N×28×28 or N×784).
    """
    import torch

    from ..checkpoint import loadModel
    from ..sampling import generate

    if not isinstance(generator, torch.nn.Module):
        generator = loadModel(generator)
    images, labels = generate(generator, n, seed=seed, batch_size=batch_size)  # in eval mode, values in [0, 1]
    if images.ndim != 3:
        raise ValueError(f"{type(generator).__name__} generates one number per sample, not images; "
                         "use compare_1d for 1D generators.")
    results = evaluate_images(images, dataset, labels=labels, reference=reference, seed=seed, **kwargs)
    results.update(seed=int(seed), conditional=labels is not None)
    return results


def graded_generator_scores(generator, dataset: str, n: int, seed: int = 0) -> Dict[str, Any]:
    """What the labs' graded quality checks score: :func:`evaluate_images` of ``n`` samples (class shares,
    confidence, and for a conditional generator the conditional accuracy) plus the FCD ratio against the
    real images shipped inside labkit (:func:`frechet_ratio`), the same on every grader's machine."""
    from ..sampling import generate

    images, labels = generate(generator, n, seed=seed)  # eval mode; labels cycle 0..9 for a conditional model
    if images.ndim != 3:
        raise ValueError(f"{type(generator).__name__} generates one number per sample, not images.")
    probabilities, features = classifier_outputs(images, dataset)
    scores: Dict[str, Any] = {"dataset": dataset_key(dataset), "n": int(len(images)), "seed": int(seed),
                              "conditional": labels is not None}
    scores.update(_class_scores(probabilities, coverage_threshold=0.1))
    if labels is not None:
        scores.update(_conditional_scores(probabilities, labels))
    real, _, _ = shipped_reference_images(dataset)
    _, real_features = classifier_outputs(real, dataset)
    scores.update(frechet_ratio(features, real_features, seed=seed))
    return scores
