"""Checks for notebook 01 (1D GAN).

The step checks run the student's function once on tiny networks with fixed
seeds and plain SGD (so the update is proportional to the gradient, and a
mistake in the loss shows in the weights), and compare with the reference
solution's numbers in ``labkit/data/references/gan1d.npz``. The epoch-means check
feeds one epoch's sums and counts from a run with 2 D steps per G step, where
dividing by steps_per_epoch, summing and keeping the last value all give
different numbers from the mean.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, close, passed, reference, require
from .steps import flat_params, require_history, require_only_trained, result_dict, stale_gradients

__all__ = ["fixed_case", "check_d_step", "check_g_step", "check_epoch_means", "check_history", "check_final_model",
           "QUALITY_TIERS", "flat_params", "epoch_log_case", "run_epoch_means"]

CASE_SEED = 1234
CASE_BATCH = 16
CASE_LR = 0.5
SMOOTH_LABEL = 0.9


def fixed_case(seed: int = CASE_SEED):
    """Tiny G and D, SGD optimisers, a real batch and a noise batch, all from ``seed``."""
    from ..distributions import get
    from ..models.mlp import MLPDiscriminator, MLPGenerator

    torch.manual_seed(seed)
    G = MLPGenerator(latent_dim=3, hidden=(6,), activation="relu")
    D = MLPDiscriminator(hidden=(7,), activation="relu", data_mean=4.0, data_std=0.5)
    opt_g = torch.optim.SGD(G.parameters(), lr=CASE_LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=CASE_LR)
    real = get("normal").sample_tensor(CASE_BATCH, seed=seed)
    z = torch.randn(CASE_BATCH, 3, generator=torch.Generator().manual_seed(seed))
    return G, D, opt_g, opt_d, real, z


def run_d_step(d_step, real_label=1.0, seed: int = CASE_SEED):
    """Run ``d_step`` on the fixed case; return (result, G, D) (used by the check and the reference script)."""
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    stale_gradients(D)
    out = d_step(G, D, opt_d, real, z, real_label=real_label)
    return out, G, D


def run_g_step(g_step, seed: int = CASE_SEED):
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    stale_gradients(G)
    out = g_step(G, D, opt_g, z)
    return out, G, D


def check_d_step(d_step) -> None:
    """Check one discriminator step: loss, logged values, update, detach, label smoothing."""
    ref = reference("gan1d")
    G0, D0, _, _, real, z = fixed_case()
    with torch.no_grad():
        p_real, p_fake = D0(real), D0(G0(z))
    swapped = (F.binary_cross_entropy(p_real, torch.zeros_like(p_real))
               + F.binary_cross_entropy(p_fake, torch.ones_like(p_fake))).item()

    out, G, D = run_d_step(d_step)
    values = result_dict(out, ["loss_d", "d_real", "d_fake"], "d_step")
    g_grads = [p.grad for p in G.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    require(not g_grads, "The generator received gradients during the discriminator step: compute the fake batch "
                         "with G(z).detach() (or under torch.no_grad()), so this step only trains D.")
    require_only_trained(D, flat_params(D0), "discriminator", G, flat_params(G0), "generator", "opt_d")
    loss, expected = values["loss_d"], float(ref["d_step.loss_d"])
    if not close(loss, expected):
        if close(loss, swapped):
            raise CheckFailed("loss_d matches swapped labels: real samples must get target 1 (real_label) and fake "
                              "samples target 0.")
        if close(loss, expected / 2):
            raise CheckFailed(f"loss_d is half the reference ({expected:.5f}): add the real and fake BCE terms, do not "
                              "average them.")
        raise CheckFailed(f"loss_d = {loss:.5f}, expected {expected:.5f}: the loss is BCE(D(x), 1) + BCE(D(G(z)), 0), "
                          "each averaged over the batch.")
    require(close([values["d_real"], values["d_fake"]], [ref["d_step.d_real"], ref["d_step.d_fake"]]),
            f"d_real/d_fake = {values['d_real']:.5f}/{values['d_fake']:.5f}, expected "
            f"{float(ref['d_step.d_real']):.5f}/{float(ref['d_step.d_fake']):.5f}: log the mean of D(x) and D(G(z)) "
            "computed in this step, before the update.")
    require(close(flat_params(D), ref["d_step.D_after"], 1e-4),
            "The loss is right but the update is not: call opt_d.zero_grad() before loss.backward() (the check leaves "
            "old gradients in D to catch this), and step only once.")
    out, _, _ = run_d_step(d_step, real_label=SMOOTH_LABEL)
    smooth = result_dict(out, ["loss_d"], "d_step")["loss_d"]
    require(close(smooth, float(ref["d_step.loss_d_smooth"])),
            f"With real_label={SMOOTH_LABEL} loss_d = {smooth:.5f}, expected {float(ref['d_step.loss_d_smooth']):.5f}: "
            "use real_label (not a hard-coded 1) as the target of the real batch.")
    passed(f"d_step: loss {loss:.5f}, D(x) {values['d_real']:.3f}, D(G(z)) {values['d_fake']:.3f}, update and detach correct")


def check_g_step(g_step) -> None:
    """Check one non-saturating generator step."""
    ref = reference("gan1d")
    G0, D0, _, _, _, z = fixed_case()
    with torch.no_grad():
        p = D0(G0(z))
    saturating = torch.log(1 - p).mean().item()

    out, G, D = run_g_step(g_step)
    values = result_dict(out, ["loss_g"], "g_step")
    require_only_trained(G, flat_params(G0), "generator", D, flat_params(D0), "discriminator", "opt_g")
    loss, expected = values["loss_g"], float(ref["g_step.loss_g"])
    if not close(loss, expected):
        if close(loss, saturating) or close(loss, -saturating):
            raise CheckFailed("This is the saturating loss log(1 - D(G(z))). Use the non-saturating one: "
                              "BCE(D(G(z)), 1) = -log D(G(z)), which keeps gradients alive when D wins.")
        raise CheckFailed(f"loss_g = {loss:.5f}, expected {expected:.5f}: the generator's loss is BCE(D(G(z)), 1) "
                          "(fake samples labelled as real), averaged over the batch.")
    require(close(flat_params(G), ref["g_step.G_after"], 1e-4),
            "The loss is right but the update is not: call opt_g.zero_grad() before loss.backward() (the check leaves "
            "old gradients in G to catch this), and do not detach G(z) here: the gradient must reach G.")
    passed(f"g_step: non-saturating loss {loss:.5f}, update correct")


# One epoch of a run with d_steps=2 and steps_per_epoch=3: what d_step and g_step returned, in order. The
# D keys are logged 6 times, loss_g 3 times, and "grad_norm" (an extra number some loops log) 3 times.
# The values are chosen so that the mean, the sum, the sum over 3 and the last value all differ.
EPOCH_STEPS_PER_EPOCH = 3
EPOCH_LOG = {
    "loss_d": [1.31, 1.27, 1.42, 1.36, 1.19, 1.23],
    "d_real": [0.61, 0.58, 0.55, 0.57, 0.52, 0.54],
    "d_fake": [0.41, 0.44, 0.47, 0.43, 0.49, 0.46],
    "loss_g": [0.83, 0.78, 0.91],
    "grad_norm": [2.4, 1.5, 3.6],
}


def epoch_log_case():
    """``(totals, counts, values)`` for one epoch: the sums and counts ``epoch_means`` gets, and the logged values."""
    values = {key: list(v) for key, v in EPOCH_LOG.items()}
    totals = {key: float(sum(v)) for key, v in values.items()}
    counts = {key: len(v) for key, v in values.items()}
    return totals, counts, values


def run_epoch_means(epoch_means):
    """Call ``epoch_means`` on copies of the fixed case (used by the check and the reference script)."""
    totals, counts, _ = epoch_log_case()
    return epoch_means(dict(totals), dict(counts))


def _epoch_mean_mistake(key, value, totals, counts, values) -> str:
    """The likely mistake behind a wrong mean of ``key``, or a generic hint."""
    steps, most = EPOCH_STEPS_PER_EPOCH, max(counts.values())
    if close(value, totals[key], 1e-6):
        return (f"{key} = {value:.5f} is the sum of its {counts[key]} values: divide totals[key] by counts[key] "
                "to get the mean.")
    if close(value, values[key][-1], 1e-6):
        return (f"{key} = {value:.5f} is the last logged value: the history holds the mean over the whole epoch, "
                "totals[key] / counts[key].")
    for divisor, what in ((steps, f"steps_per_epoch ({steps})"),
                          (most, f"the largest count ({most})")):
        if divisor != counts[key] and close(value, totals[key] / divisor, 1e-6):
            return (f"{key} = {value:.5f} is its total divided by {what}, but {key} was logged {counts[key]} times "
                    f"(with d_steps=2 the D values come twice per generator step): divide each key by its own "
                    "count, counts[key], not by steps_per_epoch.")
    if close(value, totals[key] // counts[key], 1e-6):
        return f"{key} = {value:.5f}: use true division (/), not floor division (//)."
    return (f"{key} = {value:.5f}, expected the mean totals[key] / counts[key] = {totals[key] / counts[key]:.5f}.")


def check_epoch_means(epoch_means) -> None:
    """Check TODO 3: one float per logged key, its total divided by its own count."""
    ref = reference("gan1d")
    totals, counts, values = epoch_log_case()
    out = run_epoch_means(epoch_means)
    require(isinstance(out, dict), f"epoch_means must return a dict {{key: mean}}, got {type(out).__name__}.")
    missing = [key for key in totals if key not in out]
    require(not missing, f"epoch_means' result is missing {missing}: return a mean for every key of totals (loop "
                         "over totals, not over a fixed list of names: loops may log other numbers too).")
    extra = [key for key in out if key not in totals]
    require(not extra, f"epoch_means returned keys that were never logged: {extra}.")
    for key in totals:
        value = out[key]
        if torch.is_tensor(value):
            raise CheckFailed(f"epoch_means: {key!r} is a tensor; return a Python float (float(...) or .item()).")
        require(not isinstance(value, (list, tuple, np.ndarray)),
                f"epoch_means: {key!r} is a {type(value).__name__}; return one float per key (the epoch's mean): "
                "the training loop appends it to history[key] itself.")
        require(isinstance(value, (float, int)) and not isinstance(value, bool),
                f"epoch_means: {key!r} must be a float, got {type(value).__name__}.")
    for key in totals:
        require(close(out[key], ref[f"epoch_means.{key}"], 1e-6),
                _epoch_mean_mistake(key, float(out[key]), totals, counts, values))
    passed(f"epoch_means: mean of each of {len(totals)} logged values over its own count "
           f"(loss_d over {counts['loss_d']}, loss_g over {counts['loss_g']})")


def check_history(history, expected_length: int) -> None:
    """Check the training log: four curves of floats of the right length and range."""
    keys = ["loss_d", "loss_g", "d_real", "d_fake"]
    require_history(history, keys, expected_length, probability_keys=("d_real", "d_fake"))
    require(not np.allclose(history["d_real"], history["d_fake"]) or expected_length < 2,
            "d_real and d_fake are identical: log D(x) and D(G(z)) separately.")
    passed(f"training log: {len(keys)} curves of {expected_length} values")


# (KS at most, W1/std at most) for each tier, on 10,000 samples. The reference recipe reaches
# KS <= 0.03 and W1/std <= 0.06 on 20,000 samples for every target; with 10,000 samples the sampling noise
# alone is about KS 0.009, so "good" leaves room for one more source of error and "fair" rewards a
# generator that has the right shape but visible flaws (the untuned baseline is far above both).
QUALITY_TIERS = {"good": (0.04, 0.08), "fair": (0.08, 0.16)}


def check_final_model(path, tier: str, n: int = 10_000, seed: int = 0) -> None:
    """Grade the generator saved at ``path`` against the target recorded in its metadata."""
    from .. import distributions
    from ..checkpoint import CheckpointError, loadModel
    from ..metrics import compare_1d
    from ..sampling import generate

    max_ks, max_w1 = QUALITY_TIERS[tier]
    path = Path(path)
    try:
        model = loadModel(path)
    except CheckpointError as exc:
        raise CheckFailed(f"No usable saved model ({exc}). Exercise 2 is graded on the generator you save with "
                          f"saveModel(..., '{path.name}', target=...) in the notebook's folder.") from None
    spec = model.checkpoint_metadata.get("target")
    require(spec is not None, f"{path.name} does not record its target: save with saveModel(G, path, target=TARGET.spec).")
    target = distributions.get(spec)
    require(target.name != "normal", "Exercise 2 asks for a harder target than the baseline's normal distribution.")
    samples, _ = generate(model, n, seed=seed)
    result = compare_1d(samples, target)
    ks, w1 = result["ks"], result["w1_over_std"]
    require(ks <= max_ks and w1 <= max_w1,
            f"{target.name}: KS {ks:.4f} (needs <= {max_ks}), W1/std {w1:.4f} (needs <= {max_w1}) on {n:,} samples. "
            "Look at the histogram: a missing tail or mode usually means more capacity or more training; a wobbly "
            "match means a lower learning rate at the end (decay) or averaged weights (EMA).")
    passed(f"{target.name}: KS {ks:.4f} <= {max_ks}, W1/std {w1:.4f} <= {max_w1} ({tier})")
