"""labkit.metrics pinned on answers known in closed form."""
import math

import numpy as np
import pytest
import torch
from scipy import stats

from labkit import distributions, metrics
from labkit.checkpoint import Configurable


def exact_normal_sample(n, loc=0.0, scale=1.0):
    """The n quantiles at (i + ½)/n: a sample whose empirical CDF is as close to N(loc, scale) as n points get."""
    return stats.norm.ppf((np.arange(n) + 0.5) / n, loc=loc, scale=scale)


@pytest.fixture(scope="module")
def standard_normal():
    return distributions.Distribution("n01", "N(0, 1)", stats.norm(0.0, 1.0))


# ---------------------------------------------------------------- 1D


def test_identical_samples_have_zero_distance():
    x = distributions.get("laplace").sample(2000, seed=0)
    assert metrics.wasserstein1(x, x) == 0.0
    assert metrics.ks_statistic(x, x) == 0.0


@pytest.mark.parametrize("shift", [0.1, 0.5, 2.0])
def test_two_sample_w1_of_shifted_gaussians_is_the_shift(shift):
    x = np.random.default_rng(0).normal(size=5000)
    assert metrics.wasserstein1(x + shift, x) == pytest.approx(shift, abs=1e-12)


@pytest.mark.parametrize("shift", [0.0, 0.1, 0.5, 2.0])
def test_w1_against_the_true_cdf(standard_normal, shift):
    n = 10_000
    # Quantile points are centred, so F_n lies on one side of the shifted CDF except in the far tails.
    w1 = metrics.wasserstein1(exact_normal_sample(n) + shift, standard_normal)
    assert w1 == pytest.approx(shift, abs=5e-4)


@pytest.mark.parametrize("shift, scale", [(0.0, 1.0), (0.3, 1.0), (1.0, 0.5), (-2.0, 2.0)])
def test_ks_against_the_true_cdf_matches_the_analytic_value(shift, scale):
    n = 20_000
    target = distributions.Distribution("n", "N(0, s)", stats.norm(0.0, scale))
    ks = metrics.ks_statistic(exact_normal_sample(n, loc=shift, scale=scale), target)
    # sup |Φ((x − d)/σ) − Φ(x/σ)| is reached at x = d/2.
    analytic = stats.norm.cdf(abs(shift) / (2 * scale)) - stats.norm.cdf(-abs(shift) / (2 * scale))
    assert ks == pytest.approx(analytic, abs=1.0 / n)


def test_large_sample_from_the_target_scores_small():
    target = distributions.get("petitprince")
    result = metrics.compare_1d(target.sample(50_000, seed=1), target)
    assert result["ks"] < 0.01
    assert result["w1_over_std"] < 0.02
    assert result["target_mean"] == pytest.approx(2.3)
    assert result["target_std"] == pytest.approx(target.std)
    assert set(result) >= {"ks", "w1", "w1_over_std", "mean", "std", "target_mean", "target_std"}


def test_target_by_name_and_tensor_input():
    x = torch.as_tensor(distributions.get("normal").sample(500, seed=2)).reshape(-1, 1)
    assert metrics.ks_statistic(x, "normal") == metrics.ks_statistic(x.numpy().ravel(), distributions.get("normal"))


def test_w1_over_std_is_scale_free(standard_normal):
    x = exact_normal_sample(5000) + 0.5
    wide = distributions.Distribution("n", "N(0, 3)", stats.norm(0.0, 3.0))
    assert metrics.w1_over_std(x, standard_normal) == pytest.approx(0.5, abs=1e-3)
    assert metrics.w1_over_std(3 * x, wide) == pytest.approx(0.5, abs=1e-3)


def test_bad_1d_input_is_rejected():
    with pytest.raises(ValueError, match="NaN"):
        metrics.ks_statistic(np.array([0.0, np.nan]), "normal")
    with pytest.raises(ValueError, match="one-dimensional"):
        metrics.wasserstein1(np.zeros((10, 2)), "normal")


# ---------------------------------------------------------------- Fréchet


def test_frechet_of_a_set_with_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(500, 32))
    features[:, :5] = 0.0  # dead ReLU units: singular covariance
    assert metrics.frechet_distance(features, features) == pytest.approx(0.0, abs=1e-8)


def test_gaussian_frechet_distance_closed_form():
    d = 16
    mean_a, mean_b = np.zeros(d), np.full(d, 0.5)
    # ‖Δμ‖² + tr(I + 4I − 2·2I) = d/4 + d
    assert metrics.gaussian_frechet_distance(mean_a, np.eye(d), mean_b, 4 * np.eye(d)) == pytest.approx(d / 4 + d)


# ---------------------------------------------------------------- images


@pytest.fixture(scope="module")
def mnist_real():
    """Held-out real MNIST images in [0, 1], their labels, and the classifier's predictions for them."""
    images, labels, _ = metrics.reference_images("mnist")
    images, labels = images[:1000], labels[:1000]
    probabilities, _ = metrics.classifier_outputs(images, "mnist")
    return images, labels, probabilities.argmax(1)


def test_images_all_of_one_class(mnist_real):
    images, _, _ = mnist_real
    constant = np.repeat(images[:1], 200, axis=0)
    result = metrics.evaluate_images(constant, "mnist", reference=False)
    assert result["classes_covered"] == 1
    assert result["kl_from_uniform"] == pytest.approx(math.log(10))
    assert result["inception_score"] == pytest.approx(1.0, abs=1e-9)
    assert sum(result["class_histogram"]) == 200


def test_real_images_score_well_and_is_is_bounded(mnist_real):
    images, labels, _ = mnist_real
    result = metrics.evaluate_images(images[:500], "mnist", labels=labels[:500], reference=False)
    assert 1.0 <= result["inception_score"] <= 10.0
    assert result["inception_score"] > 8.0
    assert result["classes_covered"] == 10
    assert result["kl_from_uniform"] < 0.02
    assert result["conditional_accuracy"] > 0.97
    assert result["mean_confidence"] > 0.9


def test_perfect_conditional_labels_give_accuracy_one(mnist_real):
    images, _, predicted = mnist_real
    result = metrics.evaluate_images(images[:300], "mnist", labels=predicted[:300], reference=False)
    assert result["conditional_accuracy"] == 1.0
    assert all(a == 1.0 or math.isnan(a) for a in result["per_class_accuracy"])


def test_fcd_real_images_near_floor_constant_images_far(mnist_real):
    images, _, _ = mnist_real
    n = min(300, len(images) // 3)
    real = metrics.frechet_classifier_distance(images[-n:], "mnist")
    assert set(real) == {"fcd", "fcd_real_floor", "fcd_n", "fcd_reference"}
    assert real["fcd_n"] == n
    assert real["fcd"] < 3 * real["fcd_real_floor"]
    collapsed = metrics.frechet_classifier_distance(np.repeat(images[:1], n, axis=0), "mnist")
    assert collapsed["fcd"] > 10 * collapsed["fcd_real_floor"]


def test_value_range_is_explicit(mnist_real):
    images, _, _ = mnist_real
    tanh_range = images[:50] * 2 - 1
    with pytest.raises(ValueError, match="value_range=\\(-1, 1\\)"):
        metrics.evaluate_images(tanh_range, "mnist", reference=False)
    a = metrics.evaluate_images(tanh_range, "mnist", reference=False, value_range=(-1, 1))
    b = metrics.evaluate_images(torch.as_tensor(images[:50]).reshape(50, 784), "mnist", reference=False)
    assert a["class_histogram"] == b["class_histogram"]
    with pytest.raises(ValueError, match="N×28×28"):
        metrics.evaluate_images(np.zeros((5, 3, 28, 28)), "mnist")


class _StampGenerator(Configurable):
    """Ignores z and returns fixed real images (in [-1, 1]): one per class if conditional, else one image."""

    def __init__(self, stamps, latent_dim=8, conditional=False):
        super().__init__()
        self.latent_dim = latent_dim
        if conditional:
            self.n_classes = len(stamps)
        self.register_buffer("stamps", torch.as_tensor(np.asarray(stamps), dtype=torch.float32) * 2 - 1)

    def forward(self, z, labels=None):
        index = labels if labels is not None else torch.zeros(len(z), dtype=torch.long)
        return self.stamps[index].reshape(len(z), 1, 28, 28)


def test_evaluate_generator_constant_and_conditional(mnist_real):
    images, labels, predicted = mnist_real
    # One correctly classified real image per class, as the "generated" image for that class.
    stamps = [images[np.flatnonzero((labels == c) & (predicted == c))[0]] for c in range(10)]

    constant = metrics.evaluate_generator(_StampGenerator(stamps[:1]), "mnist", n=200, reference=False)
    assert constant["classes_covered"] == 1
    assert constant["kl_from_uniform"] == pytest.approx(math.log(10))
    assert constant["conditional"] is False and "conditional_accuracy" not in constant

    conditional = metrics.evaluate_generator(_StampGenerator(stamps, conditional=True), "mnist", n=200, seed=3)
    assert conditional["conditional_accuracy"] == 1.0
    assert conditional["class_histogram"] == [20] * 10
    assert conditional["kl_from_uniform"] == pytest.approx(0.0, abs=1e-12)
    assert conditional["classes_covered"] == 10
    assert conditional["fcd"] > conditional["fcd_real_floor"]  # 10 distinct images are not the data set

    table = metrics.metrics_table({"constant": constant, "stamps": conditional})
    assert "FCD (Fréchet classifier distance)" in table and "constant" in table and "stamps" in table
    assert "conditional accuracy" in table
