"""The graded quality checks of the image labs: load the student's saved generator, score it, compare with tiers.

Every image lab grades the generator its notebook saved (e.g. ``dcgan_final.pt``) with
:func:`labkit.metrics.graded_generator_scores`. Loading and scoring fail the same way in every lab (no file, not a
generator of this lab); the conditional labs (02, 04) also share their tiers: conditional accuracy, its weakest
class and the FCD ratio, so :func:`check_conditional_quality` is the whole check for them.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np

from . import CheckFailed, passed, require

__all__ = ["saved_generator_scores", "conditional_generator_scores", "conditional_measures", "conditional_tiers_met",
           "check_conditional_quality"]


def saved_generator_scores(path, score: Callable, n: int, seed: int, model_name: str = "G_ema") -> dict:
    """``score(load_data_only(path), n=n, seed=seed)`` (the file read as data, in Jupyter as under the grader), with a
    CheckFailed that says what to do when the file is missing
    or cannot be scored."""
    from ..checkpoint import CheckpointError, load_data_only

    try:
        generator = load_data_only(path)
    except CheckpointError as exc:
        raise CheckFailed(f"{exc} Save your final generator with saveModel({model_name}, {str(path)!r}) first.") from None
    try:
        return score(generator, n=n, seed=seed)
    except ValueError as exc:
        raise CheckFailed(f"Could not score {path}: {exc}") from None


def conditional_generator_scores(generator, dataset: str, n: int, seed: int = 0) -> dict:
    """What the conditional labs grade: :func:`labkit.metrics.graded_generator_scores` of a generator that takes
    labels (``n`` samples, labels cycling through the classes), refused with a clear error otherwise."""
    from ..metrics import graded_generator_scores

    if not getattr(generator, "n_classes", None):
        raise ValueError("this generator is not conditional (it has no n_classes): save the conditional generator.")
    return graded_generator_scores(generator, dataset, n=n, seed=seed)


def conditional_measures(scores: Mapping) -> dict:
    """The three numbers the conditional labs' tiers grade, one value each (a sweep's table shows them): conditional
    accuracy, the weakest class's accuracy and the FCD ratio, from :func:`conditional_generator_scores`."""
    return {"conditional_accuracy": float(scores["conditional_accuracy"]),
            "weakest_class": float(min(scores["per_class_accuracy"])),
            "fcd_over_floor": float(scores["fcd_over_floor"])}


def conditional_tiers_met(scores: Mapping, tiers: Mapping[str, Mapping[str, float]]) -> list:
    """The names of the ``tiers`` whose three thresholds (accuracy, weakest_class, fcd_over_floor) ``scores`` meet."""
    measured = conditional_measures(scores)
    return [name for name, t in tiers.items() if measured["conditional_accuracy"] >= t["accuracy"]
            and measured["weakest_class"] >= t["weakest_class"] and measured["fcd_over_floor"] <= t["fcd_over_floor"]]


def check_conditional_quality(path, tier: str, tiers: Mapping[str, Mapping[str, float]], score: Callable,
                              class_names: Sequence[str], n: int, seed: int = 0, noun: str = "images") -> None:
    """Grade a conditional generator: conditional accuracy, its weakest class, and the FCD ratio against real images.

    tiers: ``{name: {"accuracy", "weakest_class", "fcd_over_floor"}}``; score: the lab's ``graded_scores``;
    class_names: how the messages name a class; noun: what the lab draws ("digits", "images").
    """
    if tier not in tiers:
        raise ValueError(f"Unknown tier {tier!r}; use one of {', '.join(tiers)}.")
    limits = tiers[tier]
    scores = saved_generator_scores(path, score, n, seed)
    per_class = scores["per_class_accuracy"]
    weakest = int(np.argmin(per_class))
    summary = (f"conditional accuracy {scores['conditional_accuracy']:.1%}, weakest class {class_names[weakest]} "
               f"{per_class[weakest]:.1%}, FCD {scores['fcd']:.2f} = {scores['fcd_over_floor']:.1f}× the real floor")
    require(scores["conditional_accuracy"] >= limits["accuracy"],
            f"{tier}: too many {noun} are not of the class asked for ({summary}); needs a conditional accuracy of at "
            f"least {limits['accuracy']:.0%}. Train longer, check that both networks get the labels, or save the "
            "EMA generator.")
    require(per_class[weakest] >= limits["weakest_class"],
            f"{tier}: class {class_names[weakest]} is drawn badly ({summary}); every class needs at least "
            f"{limits['weakest_class']:.0%}. Train longer.")
    require(scores["fcd_over_floor"] <= limits["fcd_over_floor"],
            f"{tier}: the {noun}' features are far from real ones ({summary}); needs FCD at most "
            f"{limits['fcd_over_floor']}× the real floor. Little variety within a class (mode collapse) raises it.")
    passed(f"quality ({tier}): {summary}")
