"""Checks for notebook 01 (1D GAN).

The step checks run the student's function once on tiny networks with fixed
seeds and plain SGD (so the update is proportional to the gradient, and a
mistake in the loss shows in the weights), and compare with the reference
solution's numbers in ``labkit/data/references/gan1d.npz``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import CheckFailed, close, passed, reference, require

__all__ = ["fixed_case", "check_d_step", "check_g_step", "check_history", "check_final_model",
           "QUALITY_TIERS", "flat_params"]

CASE_SEED = 1234
CASE_BATCH = 16
CASE_LR = 0.5
SMOOTH_LABEL = 0.9


def flat_params(module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).numpy().astype(np.float64)


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


def _stale_gradients(module) -> None:
    """Leave non-zero gradients behind, as an earlier step would: a missing zero_grad() then shows."""
    for p in module.parameters():
        p.grad = torch.full_like(p, 0.05)


def _result_dict(out, keys, name):
    require(isinstance(out, dict), f"{name} must return a dict with keys {keys}, got {type(out).__name__}.")
    missing = [k for k in keys if k not in out]
    require(not missing, f"{name}'s result is missing {missing}; return {{{', '.join(repr(k) + ': ...' for k in keys)}}}.")
    values = {}
    for k in keys:
        v = out[k]
        if torch.is_tensor(v):
            require(v.numel() == 1, f"{name}: {k!r} must be one number (use .mean().item()), got a tensor of shape {tuple(v.shape)}.")
            require(not v.requires_grad, f"{name}: {k!r} is a tensor attached to the graph; log loss.item() (a float) so "
                                         "the history does not keep every graph in memory.")
            v = v.item()
        values[k] = float(v)
    return values


def _require_only_trained(trained, trained_before, trained_name, frozen, frozen_before, frozen_name, optimizer):
    """The step named after ``trained`` must change its weights and leave ``frozen``'s alone."""
    require(close(flat_params(frozen), flat_params(frozen_before), 0),
            f"The {frozen_name}'s weights changed in the {trained_name} step: only {optimizer}.step() belongs here.")
    require(not close(flat_params(trained), flat_params(trained_before), 0),
            f"The {trained_name}'s weights did not change: call loss.backward() and then {optimizer}.step().")


def run_d_step(d_step, real_label=1.0, seed: int = CASE_SEED):
    """Run ``d_step`` on the fixed case; return (result, G, D) (used by the check and the reference script)."""
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    _stale_gradients(D)
    out = d_step(G, D, opt_d, real, z, real_label=real_label)
    return out, G, D


def run_g_step(g_step, seed: int = CASE_SEED):
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    _stale_gradients(G)
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
    values = _result_dict(out, ["loss_d", "d_real", "d_fake"], "d_step")
    g_grads = [p.grad for p in G.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    require(not g_grads, "The generator received gradients during the discriminator step: compute the fake batch "
                         "with G(z).detach() (or under torch.no_grad()), so this step only trains D.")
    _require_only_trained(D, D0, "discriminator", G, G0, "generator", "opt_d")
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
    smooth = _result_dict(out, ["loss_d"], "d_step")["loss_d"]
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
    values = _result_dict(out, ["loss_g"], "g_step")
    _require_only_trained(G, G0, "generator", D, D0, "discriminator", "opt_g")
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


def check_history(history, expected_length: int) -> None:
    """Check the training log: four curves of floats of the right length and range."""
    keys = ["loss_d", "loss_g", "d_real", "d_fake"]
    require(isinstance(history, dict), f"history must be a dict of lists, got {type(history).__name__}.")
    for key in keys:
        require(key in history, f"history has no {key!r}: append it at every logged step.")
        values = np.asarray(history[key], dtype=np.float64)
        require(values.shape == (expected_length,),
                f"history[{key!r}] has {values.size} values, expected {expected_length} (one per logged step).")
        require(np.all(np.isfinite(values)), f"history[{key!r}] holds NaN or inf: training diverged or a value is wrong.")
    for key in ("d_real", "d_fake"):
        values = np.asarray(history[key])
        require(np.all((values >= 0) & (values <= 1)), f"history[{key!r}] must hold probabilities in [0, 1] "
                                                       "(the mean discriminator output), not losses.")
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
