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
from .steps import (STALE_GRADIENT, OptimizerSpy, flat_params, require_history, require_only_trained,
                    result_dict, stale_gradients)

__all__ = ["NOTEBOOK", "expected_values", "fixed_case", "check_d_step", "check_g_step", "check_epoch_means", "check_history", "check_final_model",
           "check_target", "check_matched", "check_saved_recipe", "trained_target_name", "distance_from_normal",
           "tier_key", "TIER_TARGETS", "HANDOUT_MIXTURE", "QUALITY_TIERS", "quality_tiers", "D_LOSS_FORMS", "flat_params", "epoch_log_case", "run_epoch_means",
           "loop_case", "run_loop_case"]

NOTEBOOK = "01_gan_1d"  # the solution notebook whose exports expected_values() runs

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
    out, G, D, _ = _spied_d_step(d_step, real_label, seed)
    return out, G, D


# What a step that calls opt.step() between two backward passes through the same forward pass raises: the step
# changed the weights in place that the second backward still needs.
_IN_PLACE_ERROR = "modified by an inplace operation"


def _call_step(step, name: str, optimizer: str, *args, **kwargs):
    """``step(*args, **kwargs)`` with PyTorch's in-place error named as the mistake that causes it, and a
    CheckFailed if the step drew random numbers from torch's generator (its own noise instead of the z it is
    given). NotImplementedError passes through: the student release's TODO raises it."""
    before = torch.get_rng_state()
    try:
        out = step(*args, **kwargs)
    except NotImplementedError:   # a RuntimeError too: the release's TODO, left to say so itself
        raise
    except RuntimeError as exc:
        if _IN_PLACE_ERROR in str(exc):
            raise CheckFailed(f"{name} crashed with PyTorch's in-place error: {optimizer}.step() ran between two "
                              "backward passes through the same forward pass (e.g. once after each BCE term), so "
                              "the second backward found the weights already changed. One step per call: build "
                              "the whole loss, call backward once, then step once.") from None
        raise CheckFailed(f"{name} failed: RuntimeError: {str(exc).splitlines()[0]}") from None
    require(torch.equal(before, torch.get_rng_state()),
            f"{name} drew its own random numbers (torch.randn...) instead of using the z it is given: the loop passes "
            "the noise in, and the check gives a fixed z and compares with the numbers it must give. Use z.")
    return out


def _spied_d_step(d_step, real_label=1.0, seed: int = CASE_SEED):
    """Run ``d_step`` on the fixed case with stale gradients in D and a spy on ``opt_d``: (result, G, D, spy)."""
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    stale_gradients(D)
    spy = OptimizerSpy(opt_d, D=D)
    out = _call_step(d_step, "d_step", "opt_d", G, D, opt_d, real, z, real_label=real_label)
    return out, G, D, spy


def run_g_step(g_step, seed: int = CASE_SEED):
    out, G, D, _ = _spied_g_step(g_step, seed)
    return out, G, D


def _spied_g_step(g_step, seed: int = CASE_SEED):
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    stale_gradients(G)
    spy = OptimizerSpy(opt_g, G=G)
    out = _call_step(g_step, "g_step", "opt_g", G, D, opt_g, z)
    return out, G, D, spy


def _erased_message(optimizer: str, loss: str) -> str:
    """The message for a zero_grad() placed between backward() and step()."""
    return (f"{optimizer}.zero_grad() ran after {loss}.backward(): it erased the gradient before {optimizer}.step() "
            "could use it, so the weights did not move. Gradients are zeroed before the backward pass that "
            "computes them, not between it and the step.")


def _with_logits_message(what: str) -> str:
    return (f"{what} matches a BCE *with logits* applied to D's outputs: D already ends with a sigmoid (its outputs "
            "are probabilities in (0, 1)), so a with-logits loss applies a second sigmoid. Use a BCE on "
            "probabilities (bce = nn.BCELoss(), given).")


def _loss_terms(real_label=1.0):
    """At the fixed case: the real and fake BCE terms of D's loss and their gradients in D (flat vectors)."""
    G0, D0, _, _, real, z = fixed_case()
    fake = G0(z).detach()
    terms = {}
    for name, x, label in (("real", real, real_label), ("fake", fake, 0.0)):
        p = D0(x)
        loss = F.binary_cross_entropy(p, torch.full_like(p, label))
        grads = torch.autograd.grad(loss, list(D0.parameters()))
        terms[name] = (loss.item(), torch.cat([g.reshape(-1) for g in grads]).numpy().astype(np.float64))
    return terms


# The two ways of writing D's loss that the check accepts: the sum of the two BCE terms (the formula in the
# notebook; its value at the equilibrium is 2 log 2) and their mean, which is what one BCE call on the
# concatenated batch cat(real, fake) with targets cat(real_label, 0) computes (equilibrium log 2). They differ
# by a factor 2 only, which Adam's update does not see (it divides by the gradient's running scale).
D_LOSS_FORMS = {1.0: "the sum of the two BCE terms", 0.5: "the mean of the two BCE terms, as one BCE over cat(real, fake)"}


def _d_gradient_mistake(grad, terms, scale) -> str:
    """Name what is wrong with the gradient D had at opt_d.step(), or return "" if it is the expected one."""
    g_real, g_fake = terms["real"][1], terms["fake"][1]
    expected = scale * (g_real + g_fake)
    tol = 1e-5 + 1e-4 * np.abs(expected).max()
    near = lambda a, b: np.abs(a - b).max() <= tol
    if near(grad, expected):
        return ""
    if near(grad, expected + STALE_GRADIENT):
        return ("The loss is right but the update is not: D still held last step's gradients when opt_d.step() ran. "
                "Call opt_d.zero_grad() before loss.backward() (the check leaves old gradients in D to catch this).")
    for stale in (0.0, STALE_GRADIENT):
        if near(grad, scale * g_fake + stale):
            return ("The loss value is right but only its fake term reached D's gradient: D(real) was computed under "
                    "torch.no_grad() (or detached). Only the fake batch, G's output, is cut from the graph; D must get "
                    "gradients from both terms.")
        if near(grad, scale * g_real + stale):
            return ("The loss value is right but only its real term reached D's gradient: D's score of the fake batch "
                    "was computed under torch.no_grad() (or detached). Detach G's output before D scores it, not D's "
                    "score: D must learn from the fake batch too.")
    return ("The loss is right but the gradient D had at opt_d.step() is not the loss's gradient: call "
            "opt_d.zero_grad(), then loss_d.backward() on the loss you return, then opt_d.step(), once each.")


def _d_losses(real_target: float, fake_target: float, with_logits: bool = False) -> float:
    """D's loss at the fixed case, BCE(D(x), real_target) + BCE(D(G(z)), fake_target) (the sum form), on
    probabilities or, ``with_logits``, with a second sigmoid applied by a with-logits BCE."""
    G0, D0, _, _, real, z = fixed_case()
    with torch.no_grad():
        p_real, p_fake = D0(real), D0(G0(z))
    loss = F.binary_cross_entropy_with_logits if with_logits else F.binary_cross_entropy
    return (loss(p_real, torch.full_like(p_real, real_target)) + loss(p_fake, torch.full_like(p_fake, fake_target))).item()


def _smoothing_mistake(smooth: float, scale: float) -> str:
    """What a wrong loss with real_label=SMOOTH_LABEL says about where the label went, or a generic hint."""
    one_sided = (f"With real_label={SMOOTH_LABEL} loss_d = {smooth:.5f}: the fake batch's target moved away from 0. "
                 "Label smoothing here is one-sided: real_label is the target of the real batch only, and the fake "
                 "batch keeps target 0 whatever real_label is.")
    for real_target in (SMOOTH_LABEL, 1.0):
        for fake_target in (1 - SMOOTH_LABEL, SMOOTH_LABEL):
            if close(smooth, scale * _d_losses(real_target, fake_target)):
                return one_sided
    if close(smooth, scale * _d_losses(1.0, 0.0)):
        return (f"With real_label={SMOOTH_LABEL} loss_d = {smooth:.5f}, the loss with target 1 on the real batch: "
                "use real_label (not a hard-coded 1) as the target of the real batch.")
    return (f"With real_label={SMOOTH_LABEL} loss_d = {smooth:.5f}, expected "
            f"{scale * _d_losses(SMOOTH_LABEL, 0.0):.5f}: the real batch's target is real_label, the fake batch's 0.")


def check_d_step(d_step) -> None:
    """Check one discriminator step: loss, logged values, gradient, update, detach, label smoothing.

    Accepts D's loss as the sum of the real and fake BCE terms or as their mean (one BCE over the
    concatenated batch), as long as the logged loss and the update use the same one.
    """
    ref = reference("gan1d")
    swapped = _d_losses(0.0, 1.0)

    G0, D0, _, _, real, z = fixed_case()
    out, G, D, spy = _spied_d_step(d_step)
    values = result_dict(out, ["loss_d", "d_real", "d_fake"], "d_step")
    g_grads = [p.grad for p in G.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    require(not g_grads, "The generator received gradients during the discriminator step: the fake batch was not cut "
                         "from G's graph. This step trains D only, so G's output is detached (or made under "
                         "torch.no_grad()) before D scores it.")
    require(not spy.erased_before_step, _erased_message("opt_d", "loss_d"))
    require_only_trained(D, flat_params(D0), "discriminator", G, flat_params(G0), "generator", "opt_d")
    require(len(spy.calls) == 1, f"opt_d.step() ran {len(spy.calls)} times in one d_step: step once per call.")
    loss, expected = values["loss_d"], float(ref["d_step.loss_d"])
    scale = next((s for s in D_LOSS_FORMS if close(loss, s * expected)), None)
    if scale is None:
        if close(loss, swapped) or close(loss, swapped / 2):
            raise CheckFailed("loss_d matches swapped labels: real samples must get target 1 (real_label) and fake "
                              "samples target 0.")
        with_logits = _d_losses(1.0, 0.0, with_logits=True)
        require(not (close(loss, with_logits) or close(loss, with_logits / 2)), _with_logits_message("loss_d"))
        raise CheckFailed(f"loss_d = {loss:.5f}, expected {expected:.5f} (the real batch's BCE against real_label "
                          f"plus the fake batch's BCE against 0, each averaged over the batch) or {expected / 2:.5f} "
                          "(their mean: one BCE over both batches joined). Look at the targets, the reduction and "
                          "which batch each score comes from.")
    logged = np.array([values["d_real"], values["d_fake"]])
    if not close(logged, [ref["d_step.d_real"], ref["d_step.d_fake"]]):
        with torch.no_grad():
            after = np.array([D(real).mean().item(), D(G0(z)).mean().item()])
        when = ("these are D's outputs after opt_d.step(): " if close(logged, after) else "")
        raise CheckFailed(f"d_real/d_fake = {values['d_real']:.5f}/{values['d_fake']:.5f}, expected "
                          f"{float(ref['d_step.d_real']):.5f}/{float(ref['d_step.d_fake']):.5f}: {when}log the mean of "
                          "D(x) and D(G(z)) from the forward pass that computed the loss, before the update.")
    terms = _loss_terms()
    mistake = _d_gradient_mistake(spy.calls[0]["D"], terms, scale)
    require(not mistake, mistake)
    D_expected = flat_params(D0) + scale * (ref["d_step.D_after"] - flat_params(D0))
    require(close(flat_params(D), D_expected, 1e-4),
            "The gradient is right but the update is not: step with the opt_d you are given, once, and do not change "
            "D's weights or the learning rate yourself.")
    out, _, _ = run_d_step(d_step, real_label=SMOOTH_LABEL)
    smooth = result_dict(out, ["loss_d"], "d_step")["loss_d"]
    require(close(smooth, scale * float(ref["d_step.loss_d_smooth"])), _smoothing_mistake(smooth, scale))
    equilibrium = "2 log 2 = 1.386" if scale == 1.0 else "log 2 = 0.693"
    passed(f"d_step: loss {loss:.5f} ({D_LOSS_FORMS[scale]}; {equilibrium} at equilibrium), D(x) {values['d_real']:.3f}, "
           f"D(G(z)) {values['d_fake']:.3f}, update and detach correct")


def check_g_step(g_step) -> None:
    """Check one non-saturating generator step: loss, gradient into G, update, D left trainable."""
    ref = reference("gan1d")
    G0, D0, _, _, _, z = fixed_case()
    with torch.no_grad():
        p = D0(G0(z))
    saturating = torch.log(1 - p).mean().item()   # the minimax generator loss log(1 - D(G(z))), negative
    with_logits = F.binary_cross_entropy_with_logits(p, torch.ones_like(p)).item()

    out, G, D, spy = _spied_g_step(g_step)
    values = result_dict(out, ["loss_g"], "g_step")
    frozen = [name for name, net in (("D", D), ("G", G)) if not all(q.requires_grad for q in net.parameters())]
    require(not frozen, f"g_step leaves {' and '.join(frozen)}'s weights frozen (requires_grad False) when it returns: "
                        "the next d_step then has no gradient to train D with, and training stops with an autograd "
                        "error. Freezing D during the generator step is optional (d_step zeroes D's gradient before "
                        "using it); if you freeze it, make it trainable again before g_step returns.")
    require(close(flat_params(D), flat_params(D0), 0),
            "The discriminator's weights changed in the generator step: only opt_g.step() belongs here.")
    if close(flat_params(G), flat_params(G0), 0):
        require(not spy.erased_before_step, _erased_message("opt_g", "loss_g"))
        d_has_grad = any(p.grad is not None and p.grad.abs().sum() > 0 for p in D.parameters())
        require(spy.calls, "The generator's weights did not change: call loss.backward() and then opt_g.step().")
        require(not d_has_grad, "G received no gradient although loss_g.backward() ran: G(z) was detached (or computed "
                                "under torch.no_grad()) in the generator step. Here the gradient must flow through D "
                                "back into G: no detach in this step.")
        raise CheckFailed("The generator's weights did not change: call loss.backward() and then opt_g.step().")
    loss, expected = values["loss_g"], float(ref["g_step.loss_g"])
    if not close(loss, expected):
        if close(loss, saturating):
            raise CheckFailed("This is the saturating loss log(1 - D(G(z))) of the original minimax game, whose "
                              "gradient vanishes when D wins (at the start of every run). Use the non-saturating loss "
                              "of 'The game': G labels its own samples as real.")
        if close(loss, -saturating):
            raise CheckFailed("loss_g is BCE(D(G(z)), 0): target 0 trains G to make D call its samples fake, the "
                              "opposite of what G wants. The generator labels its samples as real.")
        require(not close(loss, with_logits), _with_logits_message("loss_g"))
        raise CheckFailed(f"loss_g = {loss:.5f}, expected {expected:.5f}: the non-saturating loss is a BCE of D's "
                          "scores of the fresh fakes with every target saying 'real', averaged over the batch (no "
                          "with-logits loss, no sum, no extra factor).")
    if not close(flat_params(G), ref["g_step.G_after"], 1e-4):
        grad = spy.calls[0]["G"] if spy.calls else None
        expected_grad = (flat_params(G0) - ref["g_step.G_after"]) / CASE_LR
        stale = grad is not None and close(grad, expected_grad + STALE_GRADIENT, 1e-4)
        require(not stale, "The loss is right but the update is not: G still held last step's gradients when "
                           "opt_g.step() ran. Call opt_g.zero_grad() before loss.backward() (the check leaves old "
                           "gradients in G to catch this).")
        require(len(spy.calls) == 1, f"opt_g.step() ran {len(spy.calls)} times in one g_step: step once per call.")
        raise CheckFailed("The loss is right but the update is not: call opt_g.zero_grad(), then loss_g.backward() on "
                          "the loss you return, then opt_g.step(); do not detach G(z): the gradient must reach G.")
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
        return (f"{key} = {value:.5f} is the sum of its {counts[key]} values: a mean divides the total by how many "
                "values were logged, the key's count.")
    if close(value, values[key][-1], 1e-6):
        return (f"{key} = {value:.5f} is the last logged value (one batch per epoch): the history holds the mean "
                "over the whole epoch, from the key's total and count.")
    for divisor, what in ((steps, f"steps_per_epoch ({steps})"),
                          (most, f"the largest count ({most})")):
        if divisor != counts[key] and close(value, totals[key] / divisor, 1e-6):
            return (f"{key} = {value:.5f} is its total divided by {what}, but {key} was logged {counts[key]} times "
                    f"(with d_steps=2 the D values come twice per generator step): each key has its own count, "
                    "which is not steps_per_epoch.")
    if close(value, totals[key] // counts[key], 1e-6):
        return f"{key} = {value:.5f}: use true division (/), not floor division (//)."
    return (f"{key} = {value:.5f}, expected the epoch's mean of {key}, {totals[key] / counts[key]:.5f}: its total "
            "over its own count, as a float.")


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


# What the history check's loop case feeds train_gan through fake step functions: 2 epochs of 3 generator
# steps with 2 D steps each. Epoch 1 logs the EPOCH_LOG values (grad_norm left out), epoch 2 the same shifted,
# so that a mean, a sum, the last value, a division by steps_per_epoch and a mean over both epochs all differ.
LOOP_KEYS = ("loss_d", "d_real", "d_fake", "loss_g")
LOOP_SHIFT = {"loss_d": -0.2, "d_real": 0.1, "d_fake": -0.1, "loss_g": 0.35}


def loop_case():
    """``(config, per-epoch logged values)`` of the history check's loop case."""
    from ..labs.gan1d import GanConfig

    config = GanConfig(target="normal", latent_dim=2, g_hidden=(3,), d_hidden=(3,), batch_size=4, epochs=2,
                       steps_per_epoch=EPOCH_STEPS_PER_EPOCH, d_steps=2)
    epochs = [{key: list(EPOCH_LOG[key]) for key in LOOP_KEYS},
              {key: [v + LOOP_SHIFT[key] for v in EPOCH_LOG[key]] for key in LOOP_KEYS}]
    return config, epochs


def run_loop_case(train_gan):
    """Run ``train_gan`` on the loop case with fake d_step/g_step that return the case's values; its history."""
    config, epochs = loop_case()
    stream = {key: iter([v for epoch in epochs for v in epoch[key]]) for key in LOOP_KEYS}

    def d_step(G, D, opt_d, real, z, real_label=1.0):
        return {key: next(stream[key]) for key in ("loss_d", "d_real", "d_fake")}

    def g_step(G, D, opt_g, z):
        return {"loss_g": next(stream["loss_g"])}

    try:
        result = train_gan(config, d_step=d_step, g_step=g_step, snapshot_size=8)
    except TypeError as exc:
        raise CheckFailed(f"train_gan(config, d_step=..., g_step=..., snapshot_size=...) failed ({exc}): keep the "
                          "signature of the train_gan you were given.") from None
    return getattr(result, "history", None), epochs


def _loop_mistake(history, epochs) -> str:
    """What train_gan's history of the loop case gets wrong, or "" if it holds each epoch's means."""
    if not isinstance(history, dict) or any(key not in history for key in LOOP_KEYS):
        return ""  # require_history on the real history names this
    for key in LOOP_KEYS:
        logged = history[key]
        if len(logged) != len(epochs):
            return (f"train_gan logged {len(logged)} values of {key} for {len(epochs)} epochs: append one mean per "
                    "epoch, after the epoch's steps.")
        for e, value in enumerate(logged):
            values = epochs[e][key]
            totals, counts = {key: float(sum(values))}, {key: len(values)}
            mean = totals[key] / counts[key]
            if close(value, mean, 1e-6):
                continue
            everything = [v for epoch in epochs[:e + 1] for v in epoch[key]]
            if e and close(value, sum(everything) / len(everything), 1e-6):
                return (f"history[{key!r}][{e}] = {value:.5f} is the mean over epochs 1-{e + 1}: the sums must start "
                        "from zero every epoch (a new EpochLog per epoch).")
            if e and close(value, sum(everything), 1e-6):
                return (f"history[{key!r}][{e}] = {value:.5f} is the sum of everything logged so far: start the sums "
                        "from zero every epoch and divide each by its count.")
            counts_all = {k: len(epochs[e][k]) for k in LOOP_KEYS}
            hint = _epoch_mean_mistake(key, float(value), totals, {**counts_all, **counts}, {key: values})
            return f"train_gan's history (2 epochs, d_steps=2, 3 steps per epoch) is not the epoch means: {hint}"
    return ""


def _require_probabilities(history, keys) -> None:
    """d_real and d_fake are epoch means of D's outputs, so in [0, 1]; name what a value outside says."""
    for key in keys:
        values = np.asarray(history[key], dtype=np.float64)
        require(not np.any(values > 1),
                f"history[{key!r}] reaches {values.max():.4g}, above 1. It is the epoch mean of D's outputs, which are "
                "probabilities: a value above 1 is a sum over the epoch's steps, not a mean (divide each total by "
                "its count, TODO 3).")
        require(not np.any(values < 0),
                f"history[{key!r}] reaches {values.min():.4g}, below 0: log the mean of D's sigmoid outputs "
                "(probabilities), not a loss or a logit.")


def check_history(history, expected_length: int, train_gan=None) -> None:
    """Check the training log: four curves of floats of the right length and range, and, with ``train_gan``,
    that the loop logs each epoch's mean of what the steps returned (on a case with 2 D steps per G step)."""
    keys = ["loss_d", "loss_g", "d_real", "d_fake"]
    if train_gan is not None:
        loop_history, epochs = run_loop_case(train_gan)
        mistake = _loop_mistake(loop_history, epochs)
        require(not mistake, mistake)
    require_history(history, keys, expected_length)
    _require_probabilities(history, ("d_real", "d_fake"))
    require(not np.allclose(history["d_real"], history["d_fake"]) or expected_length < 2,
            "d_real and d_fake are identical: log D(x) and D(G(z)) separately.")
    checked = ", each epoch's mean of what the steps returned" if train_gan is not None else ""
    passed(f"training log: {len(keys)} curves of {expected_length} values{checked}")


# The targets the quality checks grade, each against limits measured on it: the four named ones and the mixture
# the handout suggests. A target is recognised by its distribution (its cdf), not by its name, so
# mixture({"halfnormal": .5, "laplace": .5}) is the handout's mixture and mixture({"normal": 1}) is N(4, 0.5).
HANDOUT_MIXTURE = {"laplace": 0.5, "halfnormal": 0.5}
TIER_TARGETS = {"normal": "normal", "laplace": "laplace", "halfnormal": "halfnormal", "petitprince": "petitprince",
                "laplace+halfnormal": HANDOUT_MIXTURE}

# Quality tiers: (KS at most, W1/std at most) on EVAL_SAMPLES (100,000) samples drawn with EVAL_SEED, the numbers
# labkit.labs.gan1d.measure prints in the notebook, per key of TIER_TARGETS. Set from measurements
# (docs/benchmarks.md, "Quality tiers"; 100,000 samples so that sampling noise, KS ~0.003, is small next to the
# gaps). "good" sits above the tuned reference recipe's worst of seeds 0-4, with a margin for other machines:
# the same run drifts with the CPU's kernels (the half-normal's seed 0: KS 0.0125 here, 0.0168 with torch's
# generic kernels, 0.0186 on another machine), so the margin is at least 25 % over the worst seen anywhere and
# twice the worst seen here on the targets where the baseline leaves room. The untuned baseline trained ten times
# longer (30,000 steps) misses "good" on every measured seed, in KS or in W1/std: time alone does not earn it.
# "fair" is twice "good": the right shape with visible flaws.
QUALITY_TIERS = {
    "normal": {"good": (0.015, 0.04), "fair": (0.03, 0.08)},
    "laplace": {"good": (0.02, 0.07), "fair": (0.04, 0.14)},
    "halfnormal": {"good": (0.024, 0.012), "fair": (0.048, 0.024)},
    "petitprince": {"good": (0.013, 0.03), "fair": (0.026, 0.06)},
    "laplace+halfnormal": {"good": (0.045, 0.02), "fair": (0.09, 0.04)},
}

# A target whose cdf is within this KS distance of N(4, 0.5)'s is N(4, 0.5) or close to it: not the harder
# target Exercise 2 asks for (the nearest offered one, a mixture with weight 0.9 on N(4, 0.5), is farther).
NOT_HARDER_KS = 0.05
_SAME_CDF = 1e-9   # two targets whose cdfs differ by less than this everywhere are the same distribution


def _cdf_distance(a, b) -> float:
    """sup_x |F_a(x) - F_b(x)| of two targets, on a fine grid over both supports (exact for our smooth cdfs to
    about 1e-6; equal distributions give 0)."""
    from .. import distributions

    a, b = distributions.get(a), distributions.get(b)
    lo = min(a.support(1 - 1e-9)[0], b.support(1 - 1e-9)[0])
    hi = max(a.support(1 - 1e-9)[1], b.support(1 - 1e-9)[1])
    x = np.linspace(lo, hi, 20_001)
    return float(np.max(np.abs(a.cdf(x) - b.cdf(x))))


def distance_from_normal(target) -> float:
    """How far ``target`` is from the baseline's N(4, 0.5): the KS distance between their cdfs (0: the same)."""
    return _cdf_distance(target, "normal")


def tier_key(target):
    """The key in ``TIER_TARGETS`` of the measured target that ``target`` is (same distribution, whatever its
    name or the order of a mixture's parts), or None for a target without measured limits."""
    return next((key for key, spec in TIER_TARGETS.items() if _cdf_distance(target, spec) < _SAME_CDF), None)


def graded_targets_text() -> str:
    """The targets with measured limits, as a student would write them."""
    named = [f'"{key}"' for key in TIER_TARGETS if key != "laplace+halfnormal" and key != "normal"]
    return ", ".join(named) + f" or distributions.mixture({HANDOUT_MIXTURE})"


def quality_tiers(target) -> dict:
    """``{tier: (max KS, max W1/std)}`` for ``target`` (a name, distribution or mixture). A ValueError names the
    targets with measured limits when ``target`` is none of them."""
    key = tier_key(target)
    if key is None or key not in QUALITY_TIERS:
        from .. import distributions

        raise ValueError(f"No measured quality limits for {distributions.get(target).label}: the quality checks grade "
                         f"{graded_targets_text()}.")
    return QUALITY_TIERS[key]


_WHAT_A_TARGET_IS = "A target is a name (\"laplace\"), a distribution from distributions.get or a mixture."


def _load_target(spec, what: str, fix: str = _WHAT_A_TARGET_IS):
    """``distributions.get(spec)``, or a CheckFailed saying that ``spec`` (``what`` holds it) is not a target."""
    from .. import distributions

    try:
        return distributions.get(spec)
    except (ValueError, TypeError, KeyError):
        raise CheckFailed(f"{what} is {spec!r}, which is not a target labkit can rebuild (a .label is text for "
                          f"printing). {fix}") from None


def trained_target_name(config_text) -> "str | None":
    """The name of the target a run trained on, read from the ``repr`` of its GanConfig that the notebook saves
    with the model (``config=repr(final.config)``); None where it cannot be read."""
    import ast
    import re

    from .. import distributions

    found = re.match(r"GanConfig\(target=(.*?), latent_dim=", str(config_text or ""))
    if not found:
        return None
    raw = found.group(1)
    shown = re.match(r"<\w+ (.*?): ", raw)   # a Distribution's repr: <Mixture name: label>
    if shown:
        return shown.group(1)
    try:
        return distributions.get(ast.literal_eval(raw)).name
    except (ValueError, SyntaxError, TypeError, KeyError):
        return None


def _same_target(a, b) -> bool:
    return _cdf_distance(a, b) < _SAME_CDF


def _require_not_normal(target, what: str) -> None:
    """Exercise 2's target must be harder than the baseline's: far enough from N(4, 0.5), by distance, not name."""
    distance = distance_from_normal(target)
    require(distance >= NOT_HARDER_KS,
            f"Exercise 2 asks for a harder target than the baseline's N(4, 0.5), but {what} ({target.label}) is "
            f"{distance:.3f} from it (the largest gap between their cdfs; {NOT_HARDER_KS} or more counts as another "
            "target): it is N(4, 0.5), whatever its name, or close to it.")


def check_target(target) -> None:
    """Formative (prints, never raises): whether the notebook's ``TARGET`` is harder than N(4, 0.5) and has
    measured quality limits, and which."""
    try:
        target = _load_target(target, "TARGET")
        _require_not_normal(target, "TARGET")
        tiers = quality_tiers(target)
    except (CheckFailed, ValueError) as exc:
        print(f"✘ {exc}")
        return
    (gk, gw), (fk, fw) = tiers["good"], tiers["fair"]
    passed(f"target {target.label}: graded on 100,000 samples, full marks at KS <= {gk} and W1/std <= {gw}, half "
           f"at KS <= {fk} and W1/std <= {fw}")


def check_final_model(path, tier: str, target=None, n: int = None, seed: int = None) -> None:
    """Grade the generator saved at ``path`` against the target recorded in its metadata.

    ``target``: the target the notebook chose (``TARGET``: a name, distribution or mixture); a saved model trained
    on another one is refused with a message that says why (a tuned_config that forgets ``target=`` trains on
    GanConfig's default, N(4, 0.5); TARGET changed after the full run; a target name written into the file by
    hand). Targets are compared by their distributions, and each is graded against the limits measured on it.
    """
    from ..checkpoint import CheckpointError, load_data_only
    from ..labs.gan1d import EVAL_SAMPLES, EVAL_SEED, measure

    n = EVAL_SAMPLES if n is None else n
    seed = EVAL_SEED if seed is None else seed
    path = Path(path)
    try:
        model = load_data_only(path)   # as data, in Jupyter as under the grader
    except CheckpointError as exc:
        raise CheckFailed(f"No usable saved model ({exc}). Exercise 2 is graded on the generator you save with "
                          f"saveModel(..., '{path.name}', target=...) in the notebook's folder, which the full run "
                          "(QUICK = False) writes; quick mode does not.") from None
    metadata = model.checkpoint_metadata
    spec = metadata.get("target")
    require(spec is not None, f"{path.name} does not record its target: save with saveModel(G, path, "
                              "target=<the target it was trained on>).")
    saved = _load_target(spec, f"The target recorded in {path.name}",
                         "Save the model again with the target as the given save cell writes it (trained_on).")
    trained = trained_target_name(metadata.get("config"))
    require(trained is None or trained == saved.name,
            f"{path.name} records the target {saved.name}, but the run it holds trained on {trained} (its saved "
            "config says so): the file must record the target its run trained on, which the given save cell reads "
            "from final.config (trained_on), not a name written in by hand.")
    if target is not None:
        chosen = _load_target(target, "TARGET")
        if not _same_target(chosen, saved):
            forgot = distance_from_normal(saved) < _SAME_CDF
            why = ("If tuned_config(target) does not pass target=target to GanConfig, the run trains on GanConfig's "
                   "default target, N(4, 0.5): fix tuned_config and run the final training again." if forgot else
                   f"TARGET changed after the full run that saved this file: set TARGET back to {saved.name}, or run "
                   "the notebook in full again (QUICK = False) so that it trains and saves a model for this TARGET.")
            raise CheckFailed(f"{path.name} was trained on {saved.name} ({saved.label}), but TARGET is {chosen.name}. "
                              + why)
    _require_not_normal(saved, f"{path.name}'s target")
    try:
        max_ks, max_w1 = quality_tiers(saved)[tier]
    except ValueError as exc:
        raise CheckFailed(f"{exc} Limits are set per target from measurements of the reference recipe, and none were "
                          "measured on this one: choose one of those targets, then train and save again.") from None
    result = measure(model, saved, n=n, seed=seed)
    ks, w1 = result["ks"], result["w1_over_std"]
    require(ks <= max_ks and w1 <= max_w1,
            f"{saved.name}: KS {ks:.4f} (needs <= {max_ks}), W1/std {w1:.4f} (needs <= {max_w1}) on {n:,} samples. "
            "Look at the histogram: a missing tail or mode usually means more capacity or more training; a wobbly "
            "match means a lower learning rate at the end (decay) or averaged weights (EMA).")
    passed(f"{saved.name}: KS {ks:.4f} <= {max_ks}, W1/std {w1:.4f} <= {max_w1} ({tier})")


# Step 1 of Exercise 2 keeps the baseline's networks, batch and length and changes only the procedure. The levers
# in the order the notebook's text offers them, each with when it is still unused and what to say about it.
STEP1_KEPT = ("target", "latent_dim", "g_hidden", "d_hidden", "activation", "batch_size", "epochs", "steps_per_epoch")
STEP1_LEVERS = (
    (lambda c: not c.normalize, "normalisation (normalize): the networks then work at unit scale instead of "
                                "travelling to x = 4 first"),
    (lambda c: c.betas[0] > 0.5, "Adam's momentum: a smaller beta1 (0.5 is the GAN classic) damps the circling"),
    (lambda c: max(c.lr_g, c.lr_d) <= 1e-4, "the learning rates: the baseline's 1e-4 has not arrived after 3,000 "
                                           "steps; try ten to twenty times larger, with decay"),
    (lambda c: not c.lr_decay, "learning-rate decay (lr_decay): shrinking the steps at the end lets the game settle"),
    (lambda c: not c.ema, "an EMA of the generator's weights (ema): it averages the last oscillations away"),
)


def _step1_changes(config, baseline) -> list:
    """``"field (baseline -> config)"`` for each field of STEP1_KEPT that ``config`` changed."""
    return [f"{name} ({getattr(baseline, name)!r} -> {getattr(config, name)!r})" for name in STEP1_KEPT
            if getattr(config, name) != getattr(baseline, name)]


def check_matched(config, row: dict, quick: bool = False) -> None:
    """Formative, no points (prints, never raises): whether step 1 of Exercise 2 matched N(4, 0.5) with the
    baseline's networks, batch and steps, and if not, which lever the notebook's text suggests next.

    ``config``: MATCHED; ``row``: its row from run_trials (KS and W1/std on 100,000 samples); ``quick``: a
    quick run is too short to judge the numbers, so only the recipe is looked at.
    """
    from dataclasses import replace

    from .. import distributions
    from ..labs.gan1d import GanConfig

    if not isinstance(config, GanConfig):
        print(f"✘ MATCHED is a {type(config).__name__}: step 1 is a GanConfig, the baseline with other levers.")
        return
    baseline = GanConfig()
    changed = _step1_changes(replace(config, target=distributions.get(config.target).name), baseline)
    if changed:
        print("✘ step 1 keeps the baseline's target, networks, batch and 3,000 steps and changes only the procedure, "
              f"but MATCHED changes {', '.join(changed)}: without that, the comparison says nothing about the "
              "procedure.")
        return
    unused = [advice for unused_yet, advice in STEP1_LEVERS if unused_yet(config)]
    if replace(config, seed=baseline.seed) == baseline:
        print(f"✘ MATCHED is the baseline itself, which does not match. Next lever from the text: {unused[0]}.")
        return
    if quick:
        print("→ quick mode: the run is too short to say whether step 1 matched; a full run prints it here. "
              + (f"Levers not used yet: {'; '.join(unused)}." if unused else "Every lever of the text is in use."))
        return
    max_ks, max_w1 = QUALITY_TIERS["normal"]["good"]
    ks, w1 = row["KS"], row["W1/std"]
    if ks <= max_ks and w1 <= max_w1:
        passed(f"step 1 matched N(4, 0.5): KS {ks:.4f} <= {max_ks}, W1/std {w1:.4f} <= {max_w1}, with the "
               "baseline's networks: the procedure was what failed")
        return
    nxt = (f"next lever from the text: {unused[0]}" if unused else
           "every lever is in use: adjust the learning rate (the GIF tells: circling means too large, still "
           "travelling means too small)")
    print(f"✘ step 1 has not matched N(4, 0.5) yet: KS {ks:.4f} (a match: <= {max_ks}), W1/std {w1:.4f} "
          f"(<= {max_w1}); {nxt}.")


def check_saved_recipe(path, config) -> None:
    """Formative, no points (prints, never raises): whether ``config`` (your tuned_config(TARGET, seed=SEED)) is
    the recipe the model at ``path`` was trained with. The quality checks grade that file, which only a full run
    writes: in quick mode (the grader's) this is where a changed tuned_config shows before them."""
    from .. import distributions
    from ..checkpoint import CheckpointError, load_data_only

    try:
        saved = load_data_only(path).checkpoint_metadata.get("config")
    except CheckpointError:
        print(f"→ no {Path(path).name} yet: a full run (QUICK = False) trains your tuned recipe and saves it.")
        return
    name = distributions.get(config.target).name
    changes = _config_differences(saved, repr(config))
    if not changes:
        passed(f"{Path(path).name} was trained with your current tuned_config on {name}")
        return
    print(f"✘ {Path(path).name} was trained with another recipe than your current tuned_config(TARGET, seed=SEED): "
          f"{'; '.join(changes)}. The quality checks grade the saved file: run the notebook in full again "
          "(QUICK = False) to train and save the current recipe, or undo the change.")


def _config_fields(text: str) -> dict:
    """``{field: text}`` of a GanConfig's repr, the target as its name (a name and its distribution are equal)."""
    import re

    fields = dict(re.findall(r"(\w+)=(.*?)(?=, \w+=|\)$)", str(text or "")))
    if "target" in fields:
        fields["target"] = trained_target_name(text) or fields["target"]
    return fields


def _config_differences(saved: str, current: str) -> list:
    """``"field: saved -> current"`` for each field that differs between two GanConfig reprs."""
    before, after = _config_fields(saved), _config_fields(current)
    return [f"{key}: {before.get(key, '?')} -> {value}" for key, value in after.items() if before.get(key) != value]


# --------------------------------------------------------------------------- expected values


def expected_values(solution) -> dict:
    """The values the checks above compare with, computed by the solution's own functions (``solution``: the
    exports of notebooks/solutions/01_gan_1d.ipynb); ``scripts/make_references.py`` stores them in
    ``labkit/data/references/gan1d.npz``."""
    out, _, D = run_d_step(solution.d_step)
    smooth, _, _ = run_d_step(solution.d_step, real_label=SMOOTH_LABEL)
    g_out, G, _ = run_g_step(solution.g_step)
    means = run_epoch_means(solution.epoch_means)
    return {
        **{f"epoch_means.{key}": value for key, value in means.items()},
        "d_step.loss_d": out["loss_d"], "d_step.d_real": out["d_real"], "d_step.d_fake": out["d_fake"],
        "d_step.D_after": flat_params(D), "d_step.loss_d_smooth": smooth["loss_d"],
        "g_step.loss_g": g_out["loss_g"], "g_step.G_after": flat_params(G),
    }
