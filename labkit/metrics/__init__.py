"""Numbers that say how close a generator is to its target, 1D (exact CDFs) or images (metric classifiers).

One-dimensional (:mod:`.oned`): ``target`` is a labkit distribution (or its name), whose exact CDF
is used, or another 1D sample (two-sample versions)::

    >>> compare_1d(samples, "laplace")
    {'ks': 0.021, 'w1': 0.013, 'w1_over_std': 0.031, 'mean': ..., 'std': ..., 'target_mean': 3.0, ...}

Images (:mod:`.images`), judged through the frozen classifiers of :mod:`labkit.models.classifier`::

    >>> results = evaluate_generator(loadModel("output/gan.pt"), "mnist", n=2000, seed=0)
    >>> print(metrics_table({"my GAN": results}))

Neither the classifier Inception Score nor the Fréchet classifier distance is comparable with
published IS / FID numbers: compare models with each other and with the real-vs-real floor.
"""
from .evaluate import evaluate_checkpoint, metrics_table
from .images import (classifier_outputs, evaluate_generator, evaluate_images, frechet_classifier_distance,
                     frechet_distance, frechet_ratio, gaussian_frechet_distance, graded_generator_scores, reference_images,
                     shipped_reference_images)
from .oned import compare_1d, ks_statistic, w1_over_std, wasserstein1

__all__ = [
    "ks_statistic", "wasserstein1", "w1_over_std", "compare_1d",
    "classifier_outputs", "evaluate_images", "reference_images", "shipped_reference_images",
    "frechet_classifier_distance", "frechet_distance", "frechet_ratio", "gaussian_frechet_distance",
    "evaluate_generator", "graded_generator_scores", "evaluate_checkpoint", "metrics_table",
]
