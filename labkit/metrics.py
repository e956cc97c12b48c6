"""Numbers that say how close a generator is to its target.

One-dimensional (the 1D-GAN lab)
--------------------------------
``target`` is a labkit distribution (or its name, e.g. ``"laplace"``), in which
case its exact CDF is used, or another 1D sample array (two-sample versions)::

    >>> compare_1d(samples, "laplace")
    {'ks': 0.021, 'w1': 0.013, 'w1_over_std': 0.031, 'mean': ..., 'std': ..., 'target_mean': 3.0, ...}

Images (the MNIST / Fashion-MNIST labs)
---------------------------------------
Generated images are judged through the frozen classifiers of
:mod:`labkit.classifiers`::

    >>> results = evaluate_generator(loadModel("output/gan.pt"), "mnist", n=2000, seed=0)
    >>> print(format_table({"my GAN": results}))

``evaluate_images`` takes images of shape N×28×28, N×1×28×28 or N×784 with values
in **[0, 1]**; pass ``value_range=(-1, 1)`` for raw ``tanh`` generator outputs.

The image scores are computed with a small classifier trained on MNIST or
Fashion-MNIST, not with Inception-v3: the "classifier Inception Score" lies in
[1, 10] and the Fréchet classifier distance (FCD) is on its own scale. Neither is
comparable with published IS / FID numbers; compare models with each other and
with the real-vs-real floor that is returned next to every FCD.
"""
from __future__ import annotations

import math
from typing import Any, Dict, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy import linalg, special, stats

__all__ = [
    "ks_statistic", "wasserstein1", "w1_over_std", "compare_1d",
    "classifier_outputs", "evaluate_images", "reference_images",
    "frechet_classifier_distance", "frechet_distance", "gaussian_frechet_distance",
    "evaluate_generator", "format_table",
]

# ---------------------------------------------------------------------------
# One-dimensional metrics
# ---------------------------------------------------------------------------


def _as_samples(values, what: str = "samples") -> np.ndarray:
    """A float64 vector from a list, numpy array or torch tensor of shape (n,) or (n, 1)."""
    if hasattr(values, "detach"):  # torch tensor, possibly on a GPU or requiring grad
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"The {what} must be one-dimensional, shape (n,) or (n, 1); got shape {array.shape}.")
    if array.size == 0:
        raise ValueError(f"The {what} are empty.")
    bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise ValueError(f"{bad} of the {array.size} {what} are NaN or infinite (did training diverge?).")
    return array


def _resolve_target(target):
    """(distribution, None) for a labkit distribution or its name, (None, samples) for a sample array."""
    if isinstance(target, str):
        from . import distributions

        return distributions.get(target), None
    if callable(getattr(target, "cdf", None)):
        return target, None
    return None, _as_samples(target, "target samples")


def ks_statistic(samples, target) -> float:
    """Kolmogorov–Smirnov statistic sup_x |F_samples(x) − F_target(x)|, in [0, 1].

    Against a distribution its exact CDF is used (``scipy.stats.kstest``);
    against another sample array it is the two-sample statistic (``ks_2samp``).
    """
    x = _as_samples(samples)
    distribution, target_samples = _resolve_target(target)
    if distribution is not None:
        return float(stats.kstest(x, distribution.cdf).statistic)
    return float(stats.ks_2samp(x, target_samples).statistic)


def _w1_to_cdf(x: np.ndarray, distribution, grid_points: int = 20001) -> float:
    """∫ |F_n(x) − F(x)| dx for the empirical CDF F_n of ``x`` and a continuous CDF F.

    F_n is constant between nodes of a grid made of the sample points plus a fine
    uniform grid over the target's support; on each cell F is taken as linear, and
    |c − F| is integrated exactly (including the cell where it changes sign), so
    the only error is F's curvature inside a cell (relative error ~1e-8 for the
    labkit targets). The tails beyond 1e-9 of target mass are left out.
    """
    xs = np.sort(x)
    n = xs.size
    if hasattr(distribution, "support"):
        lo, hi = distribution.support(1 - 1e-9)
    else:
        lo, hi = xs[0], xs[-1]
    lo, hi = min(lo, xs[0]), max(hi, xs[-1])
    if hi <= lo:  # one repeated value and a degenerate target: no area
        return 0.0
    grid = np.unique(np.concatenate([xs, np.linspace(lo, hi, grid_points)]))
    cdf = np.clip(distribution.cdf(grid), 0.0, 1.0)
    empirical = np.searchsorted(xs, grid[:-1], side="right") / n  # F_n on [grid[k], grid[k+1])
    a, b = empirical - cdf[:-1], empirical - cdf[1:]  # F_n − F at both ends of each cell
    width = np.diff(grid)
    same_sign = a * b >= 0
    abs_sum = np.abs(a) + np.abs(b)
    # For a linear integrand crossing zero, the two triangles have area width·(a² + b²) / (2(|a| + |b|)).
    crossing = np.divide(a * a + b * b, 2 * abs_sum, out=np.zeros_like(a), where=abs_sum > 0)
    area = np.where(same_sign, abs_sum / 2, crossing) * width
    return float(area.sum())


def wasserstein1(samples, target) -> float:
    """Wasserstein-1 (earth mover's) distance ∫ |F_samples(x) − F_target(x)| dx, in the units of x.

    Against a distribution its exact CDF is integrated numerically on the sample
    points plus a fine grid (see ``_w1_to_cdf``); against another sample array it
    is the exact two-sample value (``scipy.stats.wasserstein_distance``).
    """
    x = _as_samples(samples)
    distribution, target_samples = _resolve_target(target)
    if distribution is not None:
        return _w1_to_cdf(x, distribution)
    return float(stats.wasserstein_distance(x, target_samples))


def _target_moments(target) -> Tuple[float, float]:
    distribution, target_samples = _resolve_target(target)
    if distribution is not None:
        return float(distribution.mean), float(distribution.std)
    return float(np.mean(target_samples)), float(np.std(target_samples))


def w1_over_std(samples, target) -> float:
    """W1 divided by the target's standard deviation: a scale-free score, comparable across targets."""
    _, target_std = _target_moments(target)
    if target_std <= 0:
        raise ValueError("The target has zero standard deviation, so W1/std is undefined.")
    return wasserstein1(samples, target) / target_std


def compare_1d(samples, target) -> Dict[str, float]:
    """KS, W1, W1/std and the first two moments of ``samples`` next to those of ``target``."""
    x = _as_samples(samples)
    target_mean, target_std = _target_moments(target)
    w1 = wasserstein1(x, target)
    return {
        "n": int(x.size),
        "ks": ks_statistic(x, target),
        "w1": w1,
        "w1_over_std": w1 / target_std if target_std > 0 else float("nan"),
        "mean": float(x.mean()),
        "std": float(x.std()),
        "target_mean": target_mean,
        "target_std": target_std,
    }


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

    from .classifiers import load_classifier

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
    results: Dict[str, Any] = {"dataset": _dataset_key(dataset), "n": int(len(probabilities))}
    results.update(_class_scores(probabilities, coverage_threshold))
    if labels is not None:
        results.update(_conditional_scores(probabilities, labels))
    if reference is not False:
        results.update(_fcd_from_features(features, dataset, reference, value_range, seed, device))
    return results


# ---------------------------------------------------------------------------
# Fréchet classifier distance
# ---------------------------------------------------------------------------


def _dataset_key(dataset: str) -> str:
    from .classifiers import _dataset_key as key

    return key(dataset)


def reference_images(dataset: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """Held-out real images (N×28×28 float32 in [0, 1]), their labels, and a description.

    MNIST: test images 5000..9999, which the classifier never saw; offline,
    ``labkit.datasets.load`` may serve only labkit's shipped sample of that half.
    Fashion-MNIST: the test set (or the shipped sample of it).
    """
    from . import datasets

    key = _dataset_key(dataset)
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
    key = (_dataset_key(dataset), str(device))
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

    from .checkpoint import loadModel
    from .sampling import generate

    if not isinstance(generator, torch.nn.Module):
        generator = loadModel(generator)
    images, labels = generate(generator, n, seed=seed, batch_size=batch_size)  # in eval mode, values in [0, 1]
    if images.ndim != 3:
        raise ValueError(f"{type(generator).__name__} generates one number per sample, not images; "
                         "use compare_1d for 1D generators.")
    results = evaluate_images(images, dataset, labels=labels, reference=reference, seed=seed, **kwargs)
    results.update(seed=int(seed), conditional=labels is not None)
    return results


_LABELS = {
    "n": "images",
    "classes_covered": "classes covered",
    "kl_from_uniform": "KL(classes || uniform)",
    "inception_score": "classifier IS",
    "mean_confidence": "mean confidence",
    "conditional_accuracy": "conditional accuracy",
    "fcd": "FCD (Fréchet classifier distance)",
    "fcd_real_floor": "FCD real-vs-real floor",
    "fcd_n": "FCD images per set",
    "ks": "KS statistic",
    "w1": "W1",
    "w1_over_std": "W1 / target std",
    "mean": "mean",
    "std": "std",
    "target_mean": "target mean",
    "target_std": "target std",
}


def _format_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def format_table(results: Union[Mapping[str, Any], Mapping[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]) -> str:
    """A plain-text table of the numeric scores in ``results``.

    results: one result dict (from ``compare_1d``, ``evaluate_images`` or
    ``evaluate_generator``), ``{"model name": result, ...}`` for one column per
    model, or a list of result dicts. Lists (histograms, per-class accuracies) and
    strings are left out; a metric missing for a model shows as "-".
    """
    if isinstance(results, Mapping) and results and all(isinstance(v, Mapping) for v in results.values()):
        columns = {str(name): dict(r) for name, r in results.items()}
    elif isinstance(results, Mapping):
        columns = {"value": dict(results)}
    else:
        columns = {f"#{i + 1}": dict(r) for i, r in enumerate(results)}

    def numeric(value):
        return isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_))

    keys = []
    for result in columns.values():
        for key, value in result.items():
            if numeric(value) and key not in keys and key not in ("seed", "conditional"):
                keys.append(key)
    order = list(_LABELS)
    keys.sort(key=lambda k: order.index(k) if k in order else len(order))
    rows = [["metric", *columns]]
    for key in keys:
        cells = [_format_value(r[key]) if key in r and numeric(r[key]) else "-" for r in columns.values()]
        rows.append([_LABELS.get(key, key), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
