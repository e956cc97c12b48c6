"""Checks behind the cells of notebook 03 (DCGAN on MNIST): architectures, loss, optimisers, step, log, generate, quality.

Each check raises :class:`~labkit.checks.CheckFailed` naming the likely mistake, or prints one ✔ line.
The training-step check runs the student's ``train_step`` on tiny DCGAN networks from
:mod:`labkit.models.conv` with fixed seeds and compares with reference values written from the
solution by ``scripts/make_references.py``.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import CheckFailed, close, passed, reference, require
from .samples import require_generated_images
from .quality import saved_generator_scores
from .steps import (STALE_GRADIENT, OptimizerSpy, build_student_model, flat_params, require_history, require_value, result_dict,
                    stale_gradients)

__all__ = [
    "check_generator", "check_discriminator", "check_criterion", "check_optimizers", "check_train_step",
    "check_history", "check_generate", "check_quality", "graded_scores", "tiers_met", "run_train_step", "fixed_case", "flat_params", "QUALITY_TIERS",
]

LATENT_DIM = 100
CASE_SEED = 1234
CASE_BATCH = 8
CASE_LATENT = 8
CASE_LR = 0.1
STEP_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")


def _count(module: nn.Module, *types) -> int:
    return sum(isinstance(m, types) for m in module.modules())


# --------------------------------------------------------------------------- architectures


@torch.no_grad()
def _outputs(model: nn.Module, inputs: torch.Tensor, call: str, hint: str):
    """``model(inputs)`` and ``model(1000 * inputs)``: far-out inputs push an unbounded last layer out of range."""
    try:
        return model(inputs), model(inputs * 1000)
    except RuntimeError as exc:
        raise CheckFailed(f"{call} failed: {exc}. {hint}") from None


def check_generator(Generator) -> None:
    """Generator(latent_dim=100): (B, 100) noise -> (B, 1, 28, 28) in [-1, 1], 2-3 transposed convolutions."""
    torch.manual_seed(0)
    G = build_student_model(Generator, "Generator", latent_dim=LATENT_DIM).eval()
    n_up = _count(G, nn.ConvTranspose2d)
    n_upsample = _count(G, nn.Upsample)
    require(2 <= n_up + n_upsample <= 3,
            f"The generator has {n_up} ConvTranspose2d (and {n_upsample} Upsample) layers: the lab asks for 2-3 "
            "upsampling layers, transposed convolutions or Upsample + Conv2d pairs.")
    require(_count(G, nn.BatchNorm2d) >= 1, "The generator has no BatchNorm2d: DCGAN puts batch norm after every "
                                            "transposed convolution except the last.")
    require(_count(G, nn.MaxPool2d, nn.AvgPool2d) == 0, "The generator should not pool; it upsamples.")
    out, extreme = _outputs(G, torch.randn(4, LATENT_DIM), "G(z) with z of shape (4, 100)",
                            "Reshape z to (B, 100, 1, 1) before the first transposed convolution, and check each "
                            "layer's in_channels.")
    shape = tuple(out.shape)
    if shape == (4, 784):
        raise CheckFailed("G(z) returns (B, 784): reshape to images of shape (B, 1, 28, 28).")
    if len(shape) == 4 and shape[:2] == (4, 1) and shape[2:] != (28, 28):
        raise CheckFailed(f"G(z) returns images of {shape[2]}×{shape[3]}, not 28×28: recompute each layer's output "
                          "with out = (in - 1)·stride - 2·padding + kernel.")
    require(shape == (4, 1, 28, 28), f"G(z) must return shape (B, 1, 28, 28) = (4, 1, 28, 28), got {shape}.")
    require(float(out.abs().max()) <= 1.0 + 1e-6 and float(extreme.abs().max()) <= 1.0 + 1e-6,
            "G(z) can leave [-1, 1]: end the generator with nn.Tanh() (the training images are scaled to [-1, 1]).")
    require(float(out.min()) < 0 < float(out.max()), "G(z) is never negative (or never positive): the last activation "
                                                     "must be tanh, not sigmoid or ReLU.")
    require(float(out.std(dim=0).mean()) > 1e-4, "G(z) gives the same image for every z: does forward use z?")
    passed(f"Generator: (4, 100) -> {shape}, values in [{float(out.min()):.2f}, {float(out.max()):.2f}], "
           f"{n_up} transposed convolutions")


def check_discriminator(Discriminator) -> None:
    """Discriminator(): (B, 1, 28, 28) -> (B, 1) probabilities, 3-4 convolutions and one linear layer."""
    torch.manual_seed(0)
    D = build_student_model(Discriminator, "Discriminator").eval()
    n_conv, n_linear = _count(D, nn.Conv2d), _count(D, nn.Linear)
    require(3 <= n_conv <= 4, f"The discriminator has {n_conv} Conv2d layers: the lab asks for 3-4.")
    require(n_linear == 1, f"The discriminator has {n_linear} Linear layers: the lab asks for exactly one, at the end.")
    require(_count(D, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d) == 0,
            "The discriminator pools: DCGAN downsamples with strided convolutions (stride=2) instead.")
    require(_count(D, nn.LeakyReLU) >= 1, "The discriminator has no LeakyReLU: DCGAN uses LeakyReLU(0.2) in D.")
    out, extreme = _outputs(D, torch.rand(5, 1, 28, 28) * 2 - 1, "D(x) with x of shape (5, 1, 28, 28)",
                            "Check the Linear layer's in_features: channels × height × width of the last "
                            "convolution's output.")
    shape = tuple(out.shape)
    require(shape in ((5, 1), (5,)), f"D(x) must return one probability per image, shape (B, 1); got {shape}.")
    low, high = min(float(out.min()), float(extreme.min())), max(float(out.max()), float(extreme.max()))
    require(low >= 0 and high <= 1,
            f"D(x) has values in [{low:.3g}, {high:.3g}], not probabilities: end with "
            "nn.Sigmoid() (and use nn.BCELoss).")
    require(float(out.std()) > 0, "D(x) gives the same probability for every image: does forward use x?")
    passed(f"Discriminator: (5, 1, 28, 28) -> {shape}, {n_conv} convolutions + 1 linear, probabilities in (0, 1)")


# --------------------------------------------------------------------------- loss and optimisers


def check_criterion(criterion) -> None:
    """The loss is binary cross-entropy on probabilities, averaged over the batch."""
    require(callable(criterion), f"criterion must be a loss module such as nn.BCELoss(), got {type(criterion).__name__}.")
    p = torch.tensor([[0.9], [0.2], [0.6]])
    y = torch.tensor([[1.0], [0.0], [1.0]])
    got = float(criterion(p, y))
    bce = float(F.binary_cross_entropy(p, y))
    if isinstance(criterion, nn.BCEWithLogitsLoss):
        raise CheckFailed("BCEWithLogitsLoss expects logits, but this discriminator ends in a sigmoid and outputs "
                          "probabilities: use nn.BCELoss() (or remove the sigmoid from D and keep the logits loss).")
    if close(got, float(F.mse_loss(p, y))):
        raise CheckFailed("This is the mean squared error (a least-squares GAN); the lab uses binary cross-entropy.")
    if close(got, bce * 3):
        raise CheckFailed("The loss is summed over the batch: use the mean (nn.BCELoss's default reduction).")
    require(close(got, bce), f"criterion(p, y) = {got:.5f}, expected the binary cross-entropy {bce:.5f}.")
    passed("criterion: binary cross-entropy on probabilities, averaged over the batch")


def check_optimizers(make_optimizers, Generator, Discriminator) -> None:
    """make_optimizers(G, D, lr_g, lr_d, betas) -> (opt_g, opt_d): Adam on each network's own parameters."""
    torch.manual_seed(0)
    G, D = build_student_model(Generator, "Generator", latent_dim=LATENT_DIM), build_student_model(Discriminator, "Discriminator")
    result = make_optimizers(G, D, lr_g=3e-4, lr_d=1e-4, betas=(0.5, 0.999))
    require(isinstance(result, tuple) and len(result) == 2, "make_optimizers must return a pair (opt_g, opt_d).")
    opt_g, opt_d = result
    for opt, name in ((opt_g, "opt_g"), (opt_d, "opt_d")):
        require(isinstance(opt, torch.optim.Adam), f"{name} is a {type(opt).__name__}; the DCGAN recipe uses Adam.")
    ids = {name: {id(p) for group in opt.param_groups for p in group["params"]} for name, opt in
           (("opt_g", opt_g), ("opt_d", opt_d))}
    g_ids, d_ids = {id(p) for p in G.parameters()}, {id(p) for p in D.parameters()}
    if ids["opt_g"] == d_ids and ids["opt_d"] == g_ids:
        raise CheckFailed("The optimisers are swapped: opt_g must hold G.parameters() and opt_d D.parameters().")
    require(ids["opt_g"] == g_ids, "opt_g must optimise exactly G.parameters() (not D's, not both).")
    require(ids["opt_d"] == d_ids, "opt_d must optimise exactly D.parameters() (not G's, not both).")
    lr = (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
    if lr == (1e-4, 3e-4):
        raise CheckFailed("The learning rates are swapped: opt_g gets lr_g and opt_d gets lr_d.")
    require(lr == (3e-4, 1e-4), f"Called with lr_g=3e-4, lr_d=1e-4 the optimisers have lr {lr}: use the arguments, "
                                "not fixed numbers.")
    betas = (tuple(opt_g.param_groups[0]["betas"]), tuple(opt_d.param_groups[0]["betas"]))
    require(betas == ((0.5, 0.999), (0.5, 0.999)), f"Called with betas=(0.5, 0.999) the optimisers have betas {betas}: "
                                                   "pass betas=betas to both (DCGAN lowers beta1 to 0.5).")
    passed("make_optimizers: Adam for G and for D, each on its own parameters, with the given lr and betas")


# --------------------------------------------------------------------------- one training step


def fixed_case(seed: int = CASE_SEED):
    """Tiny DCGAN G and D, SGD optimisers, a real batch and a noise batch, all from ``seed``."""
    from ..models.conv import DCGANDiscriminator, DCGANGenerator

    torch.manual_seed(seed)
    G = DCGANGenerator(latent_dim=CASE_LATENT, channels=2)
    D = DCGANDiscriminator(channels=2)
    opt_g = torch.optim.SGD(G.parameters(), lr=CASE_LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=CASE_LR)
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(CASE_BATCH, 1, 28, 28, generator=gen) * 2 - 1
    z = torch.randn(CASE_BATCH, CASE_LATENT, generator=gen)
    return G, D, opt_g, opt_d, real, z


def run_train_step(train_step, seed: int = CASE_SEED):
    """Run ``train_step`` on the fixed case with stale gradients and spies; return (result, G, D, spies)."""
    G, D, opt_g, opt_d, real, z = fixed_case(seed)
    stale_gradients(G)
    stale_gradients(D)
    spy_d, spy_g = OptimizerSpy(opt_d, G=G), OptimizerSpy(opt_g, D=D)
    try:
        out = train_step(G, D, opt_g, opt_d, nn.BCELoss(), real, z)
    except RuntimeError as exc:
        if "second time" in str(exc):
            raise CheckFailed("train_step went backward through G(z) a second time: in the D step score "
                              "D(fake.detach()), so loss_d.backward() stops at the fake images and the G step can "
                              "still backpropagate through G.") from None
        raise
    return out, G, D, (spy_d, spy_g)


def _wrong_losses(ref, seed: int = CASE_SEED):
    """Loss values of typical mistakes on the fixed case: D-step ones from the untouched networks, G-step ones
    from D after the reference update (the D the generator's step must use)."""
    G, D, _, _, real, z = fixed_case(seed)
    G.train(), D.train()
    with torch.no_grad():
        fake = G(z)
        p_real, p_fake = D(real), D(fake)
        ones, zeros = torch.ones_like(p_real), torch.zeros_like(p_real)
        both = D(torch.cat([real, fake]))
        wrong = {
            "swapped": (F.binary_cross_entropy(p_real, zeros) + F.binary_cross_entropy(p_fake, ones)).item(),
            "concatenated": F.binary_cross_entropy(both, torch.cat([ones, zeros])).item(),
            "g_before_update": F.binary_cross_entropy(p_fake, ones).item(),
        }
        nn.utils.vector_to_parameters(torch.as_tensor(ref["train_step.D_after"], dtype=torch.float32), D.parameters())
        p_after = D(fake)
        wrong["g_target_zero"] = F.binary_cross_entropy(p_after, zeros).item()
        wrong["g_saturating"] = torch.log(1 - p_after).mean().item()
    return wrong


def check_train_step(train_step) -> None:
    """One DCGAN step: D on separate real and fake batches (fake detached), then the non-saturating G step."""
    ref = reference("dcgan_mnist")
    wrong = _wrong_losses(ref)
    G0, D0 = fixed_case()[:2]
    out, G, D, (spy_d, spy_g) = run_train_step(train_step)
    values = result_dict(out, STEP_KEYS, "train_step")
    require(len(spy_d.calls) >= 1, "opt_d.step() was never called: the discriminator must be updated in every step.")
    require(len(spy_g.calls) >= 1, "opt_g.step() was never called: the generator must be updated in every step.")
    require(len(spy_d.calls) == 1 and len(spy_g.calls) == 1,
            f"opt_d.step() ran {len(spy_d.calls)} times and opt_g.step() {len(spy_g.calls)} times: one each per step.")
    if close(values["loss_g"], wrong["g_before_update"]):
        raise CheckFailed("loss_g was computed with D from before its update: first finish the D step (backward, "
                          "opt_d.step()), then score the fake images again with D(fake) for the generator's loss.")
    g_grads = spy_d.calls[0]["G"]
    require(np.allclose(g_grads, STALE_GRADIENT) or np.allclose(g_grads, 0),
            "The generator received gradients during the discriminator's update: score the fake batch with "
            "D(fake.detach()) in the D step, so loss_d.backward() stops at the fake images.")
    loss_d, expected_d = values["loss_d"], float(ref["train_step.loss_d"])
    concatenated = ("loss_d looks like one BCE on real and fake images together. With batch norm in D, score real "
                    "and fake in separate mini-batches (a DCGAN guideline: mixed batches share batch statistics) and "
                    "add the two losses: loss_d = BCE(D(real), 1) + BCE(D(fake), 0).")
    require_value(loss_d, expected_d, [
        (wrong["swapped"], "loss_d matches swapped labels: real images get target 1 (torch.ones_like) and fake "
                           "images target 0."),
        (wrong["concatenated"], concatenated),
        (expected_d / 2, concatenated),
    ], f"loss_d = {loss_d:.5f}, expected {expected_d:.5f}: loss_d = BCE(D(real), 1) + BCE(D(fake.detach()), 0), "
       "each averaged over the batch.")
    require(close([values["d_real"], values["d_fake"]], [ref["train_step.d_real"], ref["train_step.d_fake"]]),
            f"d_real/d_fake = {values['d_real']:.5f}/{values['d_fake']:.5f}, expected "
            f"{float(ref['train_step.d_real']):.5f}/{float(ref['train_step.d_fake']):.5f}: log the mean of D(real) and "
            "D(fake) from the discriminator step, before its update.")
    require(close(flat_params(D), ref["train_step.D_after"], 1e-4),
            "loss_d is right but D's update is not: call opt_d.zero_grad() before loss_d.backward() (the check "
            "leaves old gradients in D to catch this), and step D only once.")
    loss_g, expected_g = values["loss_g"], float(ref["train_step.loss_g"])
    saturating = ("This is the saturating loss log(1 - D(G(z))). Use the non-saturating one: BCE(D(fake), 1) = "
                  "-log D(G(z)), which keeps gradients alive when D wins.")
    require_value(loss_g, expected_g, [
        (wrong["g_target_zero"], "loss_g uses target 0: the generator wants D to call its images real, so its loss "
                                 "is BCE(D(fake), 1)."),
        (wrong["g_saturating"], saturating),
        (-wrong["g_saturating"], saturating),
    ], f"loss_g = {loss_g:.5f}, expected {expected_g:.5f}: the generator's loss is BCE(D(fake), 1) with D after its "
       "update, averaged over the batch.")
    require(not close(flat_params(G), flat_params(G0), 0),
            "The generator's weights did not change: in the G step do not detach the fake images (the gradient must "
            "reach G), then call loss_g.backward() and opt_g.step().")
    require(close(flat_params(G), ref["train_step.G_after"], 1e-4),
            "The losses are right but G's update is not: call opt_g.zero_grad() before loss_g.backward() (the check "
            "leaves old gradients in G to catch this; they also hold what loss_d.backward() left there).")
    del D0
    passed(f"train_step: loss_d {loss_d:.5f}, loss_g {loss_g:.5f}, D(x) {values['d_real']:.3f}, "
           f"D(G(z)) {values['d_fake']:.3f}; detach, labels and updates correct")


def check_history(history, expected_length: int) -> None:
    """The training log: one epoch mean per epoch for each key; D(x) and D(G(z)) are probabilities."""
    require_history(history, STEP_KEYS, expected_length, probability_keys=("d_real", "d_fake"))
    require(expected_length < 2 or not np.allclose(history["d_real"], history["d_fake"]),
            "d_real and d_fake are identical: log D(real) and D(fake) separately.")
    passed(f"training log: {len(STEP_KEYS)} curves of {expected_length} epoch means")


# --------------------------------------------------------------------------- generate(n)


def check_generate(generate) -> None:
    """generate(n) -> numpy float32 array (n, 28, 28) in [0, 1], different images, deterministic per call size."""
    out = generate(6)
    low, high = require_generated_images(out, "generate(6)", "generate(n)")
    require(generate(1).shape == (1, 28, 28), "generate(1) must return shape (1, 28, 28).")
    passed(f"generate: (6, 28, 28) float32 in [{low:.2f}, {high:.2f}], six different images")


# --------------------------------------------------------------------------- quality of the saved generator

# Tiers on 5,000 samples scored by the MNIST metric classifier (never shown to a generator); the FCD ratio
# compares 500 of them with labkit's 1,000 shipped held-out digits, averaged over 5 splits (frechet_ratio).
# Measured (share ratio / confidence / FCD ratio; docs/benchmarks.md): the reference DCGAN (50 epochs) 0.40 /
# 0.870 / 7.4 (seeds 0 and 1: 0.36-0.40 / 0.870 / 7.4-7.5); the same recipe after 30 epochs 0.25 / 0.83 / 11.9;
# the lecture's fully connected GAN at a 15-epoch budget 0.00 (a digit never drawn) / 0.85 / far above 15; real
# training digits 0.99 / 0.994 / about 1. "good" is the reference's level with a margin, "fair" a DCGAN that
# draws every digit but trained shorter; the fully connected baseline fails both.
QUALITY_TIERS = MappingProxyType({
    "good": MappingProxyType({"share_ratio": 0.3, "confidence": 0.85, "fcd_over_floor": 9.0}),
    "fair": MappingProxyType({"share_ratio": 0.15, "confidence": 0.75, "fcd_over_floor": 15.0}),
})
QUALITY_SAMPLES = 5000


def graded_scores(generator, n: int = QUALITY_SAMPLES, seed: int = 0) -> dict:
    """What the quality checks grade: class shares and confidence on ``n`` samples, the FCD ratio against
    labkit's shipped held-out digits (the same on every grader's machine)."""
    from ..metrics import graded_generator_scores

    return graded_generator_scores(generator, "mnist", n=n, seed=seed)


def tiers_met(scores) -> list:
    """The names of the tiers whose three thresholds ``scores`` (from :func:`graded_scores`) meet."""
    return [name for name, t in QUALITY_TIERS.items() if scores["class_share_ratio"] >= t["share_ratio"]
            and scores["mean_confidence"] >= t["confidence"] and scores["fcd_over_floor"] <= t["fcd_over_floor"]]


def check_quality(path, tier: str, n: int = QUALITY_SAMPLES, seed: int = 0) -> None:
    """Score the saved generator at ``path``: class balance, classifier confidence, FCD against real digits."""
    if tier not in QUALITY_TIERS:
        raise ValueError(f"Unknown tier {tier!r}; use one of {', '.join(QUALITY_TIERS)}.")
    limits = QUALITY_TIERS[tier]
    scores = saved_generator_scores(path, graded_scores, n, seed, model_name="G")
    summary = (f"shares {scores['min_class_share']:.1%}-{scores['max_class_share']:.1%} (ratio "
               f"{scores['class_share_ratio']:.2f}), confidence {scores['mean_confidence']:.3f}, FCD "
               f"{scores['fcd']:.2f} = {scores['fcd_over_floor']:.1f}× the real floor {scores['fcd_real_floor']:.2f}")
    require(scores["class_share_ratio"] >= limits["share_ratio"],
            f"{tier}: some digits come out much more often than others ({summary}); needs a rarest/commonest share "
            f"ratio of at least {limits['share_ratio']}. This is mode collapse: train longer, lower the learning "
            "rates, or average the generator's weights (EMA).")
    require(scores["mean_confidence"] >= limits["confidence"],
            f"{tier}: the classifier is unsure what the digits are ({summary}); needs a mean confidence of at least "
            f"{limits['confidence']}. Train longer, or evaluate an EMA of the generator's weights.")
    require(scores["fcd_over_floor"] <= limits["fcd_over_floor"],
            f"{tier}: the digits' features are far from real ones ({summary}); needs FCD at most "
            f"{limits['fcd_over_floor']}× the real floor.")
    passed(f"quality ({tier}): {summary}")
