"""Checks behind the cells of notebook 04 (conditional WGAN-GP on Fashion-MNIST): conditioning, critic, losses,
interpolates, gradient penalty, training steps, log, generate(n, c), quality.

Each check raises :class:`~labkit.checks.CheckFailed` naming the likely mistake, or prints one ✔ line. The
step checks run the student's functions on tiny conditional DCGAN networks from :mod:`labkit.checks.cases`
with fixed seeds and compare with reference values written from the solution by ``scripts/make_references.py``.
"""
from __future__ import annotations

import copy
from types import MappingProxyType

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import CheckFailed, close, passed, reference, require
from .cases import CASE_LATENT, cwgan_case_networks
from .samples import require_generated_images
from .choices import Allowed, adam_beta1, learning_rate, check_choices as check_choices_in_ranges
from .quality import check_conditional_quality, conditional_generator_scores, conditional_measures, conditional_tiers_met
from .steps import (STALE_GRADIENT, OptimizerSpy, build_student_model, call_student, flat_params, require_history, require_loss_tensor,
                    require_value, result_dict, stale_gradients)

__all__ = ["NOTEBOOK", "expected_values", 
    "check_conditioning", "check_critic", "check_wasserstein_losses", "check_interpolates", "check_gradient_penalty",
    "check_critic_step", "check_generator_step", "check_choices", "CHOICES", "check_history", "check_generate",
    "check_quality", "graded_scores", "sweep_scores", "tiers_met", "fixed_case", "run_critic_step", "run_generator_step",
    "flat_params", "ClassTemplates", "QUALITY_TIERS",
]

NOTEBOOK = "04_cwgan_gp_fashion"  # the solution notebook whose exports expected_values() runs

LATENT_DIM = 100
N_CLASSES = 10
CASE_SEED = 4321
CASE_BATCH = 8
CASE_LR = 0.05
CASE_LAMBDA = 2.0   # not the default 10: a step that ignores its lambda_gp argument shows
CRITIC_KEYS = ("loss_c", "wasserstein", "gp")
HISTORY_KEYS = ("loss_c", "wasserstein", "gp", "loss_g", "fcd")


def _count(module: nn.Module, *types) -> int:
    return sum(isinstance(m, types) for m in module.modules())


# --------------------------------------------------------------------------- TODO 1: conditioning

_ONE_HOT_SIZE = ("{name} returns {shape} for a batch whose labels are only 0-2: one-hot vectors made without "
                 "num_classes are only as long as the batch's largest label + 1, so their size changes from batch to "
                 "batch. Tell F.one_hot how many classes there are: every label needs N_CLASSES = 10 entries.")


def check_conditioning(noise_with_labels, images_with_labels) -> None:
    """(B, 100) noise -> (B, 110) with the one-hot label last; (B, 1, 28, 28) -> (B, 11, 28, 28) with label maps."""
    torch.manual_seed(0)
    z = torch.randn(5, LATENT_DIM)
    labels = torch.tensor([3, 0, 9, 3, 7])
    one_hot = F.one_hot(labels, N_CLASSES).float()
    out = call_student(noise_with_labels, "noise_with_labels(z, labels) with z (5, 100)", z, labels,
                       hint="The noise and the one-hot labels are joined along dim 1 (the features), z first; both "
                            "have B rows.")
    require(torch.is_tensor(out), f"noise_with_labels must return a tensor, got {type(out).__name__}.")
    shape = tuple(out.shape)
    if shape == (5, LATENT_DIM + 1):
        raise CheckFailed("noise_with_labels returns (B, 101): the label was appended as one number, which tells the "
                          "generator that class 9 is 'more' than class 1. Append its one-hot vector instead, "
                          "N_CLASSES = 10 numbers per sample.")
    require(shape == (5, LATENT_DIM + N_CLASSES), f"noise_with_labels(z, labels) with z (5, 100) must return "
                                                  f"(5, 110), got {shape}: z's 100 numbers, then the 10 of the "
                                                  "one-hot label, side by side in each row.")
    require(out.is_floating_point(), "noise_with_labels returns integers: F.one_hot makes integer vectors, and the "
                                     "generator's layers take floats. Convert them to z's dtype before "
                                     "concatenating.")
    require(out.dtype == z.dtype, f"noise_with_labels returns {out.dtype} for float32 noise: the one-hot vectors were "
                                  "made another float type (e.g. .double()), and torch.cat promoted z to it. Give "
                                  "them z's own dtype, so the generator's float32 layers can take the result.")
    if torch.allclose(out[:, N_CLASSES:], z) and torch.allclose(out[:, :N_CLASSES], one_hot):
        raise CheckFailed("noise_with_labels puts the one-hot label first: z comes first, then the label, so the "
                          "generator's input layout is the one documented (and the one the sampling tools assume).")
    require(torch.allclose(out[:, :LATENT_DIM], z), "The first 100 numbers of noise_with_labels must be z unchanged.")
    require(torch.allclose(out[:, LATENT_DIM:], one_hot),
            "The last 10 numbers must be the one-hot label: a 1 at position labels[i] and 0 elsewhere.")
    few = torch.tensor([0, 2, 1, 2, 0])                   # a batch without the classes 3-9
    short = call_student(noise_with_labels, "noise_with_labels(z, labels) with labels 0-2 only", z, few)
    require(tuple(short.shape) == (5, LATENT_DIM + N_CLASSES), _ONE_HOT_SIZE.format(
        name="noise_with_labels", shape=tuple(short.shape)))

    x = torch.rand(5, 1, 28, 28) * 2 - 1
    maps_hint = ("The label maps must be (B, 10, 28, 28), the image's height and width, before they join the "
                 "image along dim 1: give the (B, 10) one-hot vectors two axes of size 1 and expand them over the "
                 "image's height and width.")
    out = call_student(images_with_labels, "images_with_labels(x, labels) with x (5, 1, 28, 28)", x, labels,
                       hint=maps_hint)
    require(torch.is_tensor(out), f"images_with_labels must return a tensor, got {type(out).__name__}.")
    shape = tuple(out.shape)
    if shape == (5, 2, 28, 28):
        raise CheckFailed("images_with_labels returns (B, 2, 28, 28): the label was stored as one channel holding "
                          "its number. Use ten channels, one per class (one-hot), all ones for the image's class.")
    require(shape == (5, 1 + N_CLASSES, 28, 28), f"images_with_labels(x, labels) with x (5, 1, 28, 28) must return "
                                                  f"(5, 11, 28, 28), got {shape}.")
    require(out.dtype == x.dtype, f"images_with_labels returns {out.dtype} for float32 images: give the label maps "
                                  "x's own dtype, so the critic's float32 layers can take the result.")
    if torch.allclose(out[:, N_CLASSES:], x) and not torch.allclose(out[:, :1], x):
        raise CheckFailed("images_with_labels puts the label channels first: the image is channel 0, then the ten "
                          "label channels, the layout the critic's first convolution was described with.")
    require(torch.allclose(out[:, :1], x), "Channel 0 of images_with_labels must be the image unchanged.")
    maps = out[:, 1:]
    require(bool(torch.all((maps == 0) | (maps == 1))), "The label channels must hold only 0 and 1.")
    per_channel = maps.flatten(2)
    if not torch.all(per_channel.min(dim=2).values == per_channel.max(dim=2).values):
        raise CheckFailed("A label channel is not constant: each of the ten channels must be all ones (the image's "
                          "class) or all zeros over the whole 28×28 image. Expand the one-hot vector over every "
                          "pixel; do not write it into a few pixels.")
    require(torch.allclose(per_channel[:, :, 0], one_hot),
            "The label channels do not match the labels: channel 1 + k must be all ones exactly when the label is k.")
    short = call_student(images_with_labels, "images_with_labels(x, labels) with labels 0-2 only", x, few,
                         hint=maps_hint)
    require(tuple(short.shape) == (5, 1 + N_CLASSES, 28, 28), _ONE_HOT_SIZE.format(
        name="images_with_labels", shape=tuple(short.shape)))
    passed("conditioning: z (5, 100) -> (5, 110) with the one-hot label last; images (5, 1, 28, 28) -> "
           "(5, 11, 28, 28) with one all-ones channel per image")


# --------------------------------------------------------------------------- TODO 2: the critic


def check_critic(Critic) -> None:
    """Critic(): (B, 1, 28, 28), labels -> (B, 1) unbounded scores; 11 input channels, no batch norm, no sigmoid."""
    torch.manual_seed(0)
    try:
        C = build_student_model(Critic, "Critic").eval()
    except ValueError as exc:
        if "size" not in str(exc):
            raise
        raise CheckFailed("down_block(..., norm=Norm.LAYER) needs size=, the side of the block's output: layer norm "
                          "normalises over channels × height × width, so it must know them. Work the side out for "
                          "each block from the shapes in the text (28 -> 14 -> 7 -> 4).") from None
    require(_count(C, nn.Sigmoid) == 0, "The critic has a Sigmoid: a WGAN critic outputs a score (any real number), "
                                        "not a probability. Remove it.")
    require(_count(C, nn.BatchNorm2d, nn.BatchNorm1d) == 0,
            "The critic has batch norm: the gradient penalty is computed per sample, and batch norm makes each "
            "score depend on the rest of the batch. Use layer norm (norm=Norm.LAYER) or none.")
    convs = [m for m in C.modules() if isinstance(m, nn.Conv2d)]
    require(3 <= len(convs) <= 4, f"The critic has {len(convs)} Conv2d layers: use 3-4, as in lab 3.")
    require(_count(C, nn.Linear) == 1, f"The critic has {_count(C, nn.Linear)} Linear layers: use exactly one, last.")
    require(convs[0].in_channels == 1 + N_CLASSES,
            f"The critic's first convolution takes {convs[0].in_channels} channels; it sees images_with_labels's "
            "output: 1 image channel + 10 label channels = 11.")
    x = torch.rand(6, 1, 28, 28) * 2 - 1
    labels = torch.arange(6)
    try:
        with torch.no_grad():
            out, other = C(x, labels), C(x, (labels + 5) % N_CLASSES)
    except RuntimeError as exc:
        raise CheckFailed(f"C(x, labels) with x (6, 1, 28, 28) failed: {exc}. Check each layer's in_channels, the "
                          "nn.Flatten() before the Linear layer and its in_features (channels × 4 × 4 after the last "
                          "block).") from None
    shape = tuple(out.shape)
    require(shape == (6, 1), f"C(x, labels) must return one score per image, shape (B, 1); got {shape}.")
    # Scale the last linear layer up: an unbounded score grows with it, a squashed one (tanh, sigmoid) cannot.
    far = []
    for sign in (1.0, -1.0):               # both signs: a score clipped at 0 (ReLU) shows as never negative
        loud = copy.deepcopy(C)
        head = [m for m in loud.modules() if isinstance(m, nn.Linear)][-1]
        with torch.no_grad():
            head.weight.mul_(sign * 1e4), head.bias.mul_(sign * 1e4)
            far.append(loud(x, labels))
    far = torch.cat(far)
    require(float(far.abs().max()) > 1, "The critic's scores stay within [-1, 1] however large its last layer's "
                                        "weights: remove the final squashing (tanh, sigmoid, softmax): the score must "
                                        "be unbounded, the raw output of the Linear layer.")
    require(float(far.min()) < 0, "The critic's scores are never negative: remove the final activation (ReLU, abs, "
                                  "softplus): the score is the raw output of the Linear layer, any real number.")
    require(float(out.std()) > 0, "C(x, labels) gives the same score for every image: does forward use x?")
    require(not torch.allclose(out, other), "The critic's score does not change with the label: forward must feed "
                                            "images_with_labels(x, labels) to the network.")
    passed(f"Critic: (6, 1, 28, 28) + labels -> {shape}, {len(convs)} convolutions (11 input channels) + 1 linear, "
           "no batch norm, no sigmoid")


# --------------------------------------------------------------------------- TODO 3: losses


def check_wasserstein_losses(get_WLoss_generator, get_WLoss_discriminator) -> None:
    """get_WLoss_generator = -mean(score_fake); get_WLoss_discriminator = mean(score_fake) - mean(score_real)."""
    score_fake = torch.tensor([[0.5], [-1.0], [2.0], [0.3]], requires_grad=True)
    score_real = torch.tensor([[1.5], [0.2], [-0.3], [2.6]], requires_grad=True)
    mean_fake, mean_real = float(score_fake.detach().mean()), float(score_real.detach().mean())

    value = require_loss_tensor(call_student(get_WLoss_generator, "get_WLoss_generator(score_fake)", score_fake),
                                "get_WLoss_generator")
    require_value(value, -mean_fake, [
        (mean_fake, "get_WLoss_generator has the wrong sign: the generator wants high scores for its fakes, so its "
                    "loss must fall as their mean score rises: it minimises MINUS that mean."),
        (-float(score_fake.detach().sum()), "get_WLoss_generator sums the scores: take the mean over the batch."),
    ], f"get_WLoss_generator gives {value:.4f} on these scores, expected minus their mean, {-mean_fake:.4f}. "
       "No log and no sigmoid: WGAN uses the raw scores.")

    critic_loss = lambda fake, real: require_loss_tensor(call_student(  # noqa: E731
        get_WLoss_discriminator, "get_WLoss_discriminator(score_fake, score_real)", fake, real), "get_WLoss_discriminator")
    value, expected = critic_loss(score_fake, score_real), mean_fake - mean_real
    if close(value, -expected) and close(critic_loss(score_real, score_fake), -expected):
        raise CheckFailed("get_WLoss_discriminator is never negative (an abs or a square?): the critic's loss is the "
                          "difference of the mean scores itself, with its sign; the critic minimises it, so it goes "
                          "below 0 once real images score higher.")
    require_value(value, expected, [
        (-expected, "get_WLoss_discriminator has the wrong sign (real and fake swapped): the critic minimises the "
                    "mean fake score minus the mean real score, so real images end up with the higher scores."),
        (float(score_fake.detach().sum() - score_real.detach().sum()), "get_WLoss_discriminator sums the scores: use means."),
        (mean_fake, "get_WLoss_discriminator uses only the fake scores: subtract the mean real score."),
        (-mean_real, "get_WLoss_discriminator uses only the real scores: add the mean fake score."),
    ], f"get_WLoss_discriminator gives {value:.4f}, expected the mean fake score minus the mean real score, "
       f"{expected:.4f}. No log and no sigmoid: WGAN uses the raw scores.")
    passed(f"Wasserstein losses: generator {-mean_fake:.4f}, critic {expected:.4f} on fixed scores")


# --------------------------------------------------------------------------- TODO 4: interpolates


def _eps_behind(interpolates, real, fake) -> torch.Tensor:
    """(B, pixels): the eps that would give each pixel of ``interpolates`` from ``real`` and ``fake`` (never equal)."""
    return ((interpolates - fake) / (real - fake)).detach().flatten(1)


def check_interpolates(get_interpolates) -> None:
    """eps * real + (1 - eps) * fake with one eps ~ U[0, 1] per sample, new at every call."""
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(6, 1, 28, 28, generator=gen) * 0.8 + 0.2     # in [0.2, 1]
    fake = -torch.rand(6, 1, 28, 28, generator=gen) * 0.8 - 0.2    # in [-1, -0.2]: never equal to real
    torch.manual_seed(0)
    out = call_student(get_interpolates, "get_interpolates(real, fake) with (6, 1, 28, 28) batches", real, fake,
                       hint="eps must broadcast over each image: one number per sample, in a tensor of shape "
                            "(B, 1, 1, 1).")
    require(torch.is_tensor(out) and tuple(out.shape) == (6, 1, 28, 28),
            f"get_interpolates(real, fake) with (6, 1, 28, 28) batches must return (6, 1, 28, 28), got "
            f"{tuple(out.shape) if torch.is_tensor(out) else type(out).__name__}: eps of shape (B, 1, 1, 1) "
            "broadcasts over the image.")
    eps = _eps_behind(out, real, fake)                             # (6, 784): the eps behind every pixel
    require(float(eps.min()) >= -1e-5 and float(eps.max()) <= 1 + 1e-5,
            "Some interpolates do not lie between their real and fake image: eps must be in [0, 1] (uniform, as "
            "torch.rand draws; not torch.randn, which is normal), with weight eps on the real image and 1 - eps on "
            "the fake.")
    spread_in_sample = float((eps.max(dim=1).values - eps.min(dim=1).values).max())
    if spread_in_sample > 1e-4:
        raise CheckFailed("The interpolates do not lie on the straight line from real to fake: either eps differs "
                          "from pixel to pixel (draw ONE eps per sample, shape (B, 1, 1, 1), not the image's shape) "
                          "or the mix is not the formula's: weight eps on the real image, 1 - eps on the fake, so "
                          "that the two weights sum to 1.")
    per_sample = eps[:, 0]
    for end, which in ((1.0, "real"), (0.0, "fake")):
        require(not torch.allclose(per_sample, torch.full_like(per_sample, end), atol=1e-4),
                f"The interpolates are the {which} images themselves: mix real and fake with the random eps, so the "
                "points lie between them.")
    if float(per_sample.max() - per_sample.min()) < 1e-4:
        raise CheckFailed(f"Every sample got the same eps ({float(per_sample[0]):.3f}): draw one eps per sample, "
                          "a tensor of shape (B, 1, 1, 1), not one number for the whole batch.")
    again = _eps_behind(get_interpolates(real, fake), real, fake)[:, 0]
    require(not torch.allclose(again, per_sample), "Two calls gave the same eps: draw a new random eps at every call.")
    _require_uniform_eps(get_interpolates)
    passed(f"interpolates: one eps per sample in [0, 1] (here {', '.join(f'{e:.2f}' for e in per_sample.tolist())})")


def _require_uniform_eps(get_interpolates, n: int = 2000) -> None:
    """The eps of ``n`` samples cover [0, 1] evenly: U[0, 0.5] or a squared eps pass every other test of the mix.

    With n = 2000 draws of U[0, 1] the smallest is below 0.01 and the largest above 0.99 except with odds of
    about 2e-9 each, and the mean lies within 0.04 of 0.5 (6 standard deviations).
    """
    real = torch.ones(n, 1, 2, 2)
    fake = -torch.ones(n, 1, 2, 2)
    eps = _eps_behind(get_interpolates(real, fake), real, fake)[:, 0]   # (n,)
    low, high, mean = float(eps.min()), float(eps.max()), float(eps.mean())
    require(low < 0.01 and high > 0.99 and abs(mean - 0.5) < 0.04,
            f"On {n} samples your eps ran from {low:.3f} to {high:.3f} with mean {mean:.3f}; eps ~ U[0, 1] runs "
            "from about 0 to 1 with mean 0.5. Use the uniform draw as it is, not scaled, shifted or squared: the "
            "penalty must hold on the whole segment between real and fake.")


# --------------------------------------------------------------------------- TODO 5: gradient penalty


def _gradients_with_norms(norms, seed: int = 0) -> torch.Tensor:
    """A (B, 1, 28, 28) batch of random directions scaled so that sample i has L2 norm ``norms[i]``."""
    gen = torch.Generator().manual_seed(seed)
    g = torch.randn(len(norms), 1, 28, 28, generator=gen)
    g = g / g.flatten(1).norm(dim=1)[:, None, None, None]
    return g * torch.as_tensor(norms, dtype=torch.float32)[:, None, None, None]


def _penalty_mistakes(g: torch.Tensor, lam: float):
    norms = g.flatten(1).norm(dim=1)
    return [
        (lam * float((norms.mean() - 1) ** 2),
         "The penalty takes the mean of the norms and then squares: square each sample's (norm - 1) first, then "
         "average the squares (a batch whose norms average 1 though none is 1 must still pay)."),
        (lam * float((g.norm() - 1) ** 2), "The penalty uses one norm of the whole batch: take one L2 norm per sample, "
                                           "over all its pixels, a tensor of shape (B,)."),
        (lam * float(((norms ** 2 - 1) ** 2).mean()),
         "The penalty uses the squared norm: take the L2 norm itself, the square root of the sum of squares."),
        (float(((norms - 1) ** 2).mean()), "The penalty is missing its weight: multiply by lambda_gp."),
        (10.0 * float(((norms - 1) ** 2).mean()), "The penalty ignores its lambda_gp argument (the check passes "
                                                  f"lambda_gp={lam}, and 10 was used): multiply by lambda_gp."),
        (lam * float(((norms - 1) ** 2).sum()), "The penalty sums over samples: take the mean."),
        (lam * float((norms - 1).abs().mean()), "The penalty uses |norm - 1|: WGAN-GP squares the distance from 1."),
        (lam * float((norms - 1).mean()), "The penalty does not square (norm - 1): norms above and below 1 then "
                                          "cancel out. Square each sample's distance from 1, then average."),
        (lam * float((torch.relu(norms - 1) ** 2).mean()),
         "The penalty is one-sided (norms below 1 cost nothing): WGAN-GP squares (norm - 1) for every sample, "
         "below 1 as well as above."),
        (lam ** 2 * float(((norms - 1) ** 2).mean()), "lambda_gp is inside the square: the weight multiplies the mean "
                                                      "of the squares, once, after squaring."),
        (lam * float(((g.norm(2, dim=1) - 1) ** 2).mean()),
         "The penalty takes the norm over dim=1 of the (B, 1, 28, 28) gradient, i.e. per pixel: flatten each sample "
         "into one row of 784 numbers first, then take one norm per row."),
        (lam * float(((g.norm(2, dim=-1) - 1) ** 2).mean()),
         "The penalty takes the norm of each image row (dim=-1): flatten each sample into one row of 784 numbers "
         "first, then take one norm per row."),
    ]


def check_gradient_penalty(get_gradient_regularisation) -> None:
    """lambda * mean((||grad_i||_2 - 1) ** 2): 0 when every norm is 1, analytic on norms 0.5, 1, 2, 3."""
    unit = _gradients_with_norms([1.0, 1.0, 1.0, 1.0], seed=1).requires_grad_(True)
    out = require_loss_tensor(call_student(lambda g: get_gradient_regularisation(g, lambda_gp=10.0),
                                           "get_gradient_regularisation(gradient)", unit), "get_gradient_regularisation")
    require(abs(out) < 1e-5, f"Every sample's gradient has norm 1, so the penalty must be 0; got {out:.4g}. Take each "
                             "sample's L2 norm over all its pixels at once (one norm per sample, shape (B,)), not "
                             "per row, per pixel or over the whole batch.")
    lam = 2.0
    g = _gradients_with_norms([0.5, 1.0, 2.0, 3.0], seed=2)
    expected = lam * float(((torch.tensor([0.5, 1.0, 2.0, 3.0]) - 1) ** 2).mean())
    value = float(get_gradient_regularisation(g, lambda_gp=lam))
    require_value(value, expected, _penalty_mistakes(g, lam),
                  f"On gradients with per-sample norms 0.5, 1, 2, 3 and lambda_gp={lam} the penalty must be "
                  f"{lam} * mean((n - 1)^2) = {expected:.4f}; got {value:.4f}.")
    passed(f"gradient penalty: 0 for unit norms, {expected:.4f} for norms 0.5, 1, 2, 3 with lambda_gp={lam}")


# --------------------------------------------------------------------------- TODO 6: one critic step, one G step


def fixed_case(seed: int = CASE_SEED):
    """Tiny conditional DCGAN G and layer-norm critic, SGD optimisers, a batch, its labels and noise, from ``seed``."""
    torch.manual_seed(seed)
    G, C = cwgan_case_networks()
    opt_g = torch.optim.SGD(G.parameters(), lr=CASE_LR)
    opt_c = torch.optim.SGD(C.parameters(), lr=CASE_LR)
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(CASE_BATCH, 1, 28, 28, generator=gen) * 2 - 1
    labels = torch.randint(0, N_CLASSES, (CASE_BATCH,), generator=gen)
    z = torch.randn(CASE_BATCH, CASE_LATENT, generator=gen)
    return G, C, opt_g, opt_c, real, labels, z


def run_critic_step(critic_step, seed: int = CASE_SEED):
    """``critic_step`` on the fixed case, with stale gradients, a spy and torch seeded for eps; returns
    (result, G, C, spy)."""
    G, C, _, opt_c, real, labels, z = fixed_case(seed)
    stale_gradients(G)
    stale_gradients(C)
    spy = OptimizerSpy(opt_c, G=G)
    torch.manual_seed(seed + 1)  # the interpolates' eps
    out = critic_step(G, C, opt_c, real, labels, z, CASE_LAMBDA)
    return out, G, C, spy


def run_generator_step(generator_step, seed: int = CASE_SEED):
    """``generator_step`` on the fixed case with stale gradients and a spy; returns (result, G, C, spy)."""
    G, C, opt_g, _, _, labels, z = fixed_case(seed)
    stale_gradients(G)
    stale_gradients(C)
    spy = OptimizerSpy(opt_g, C=C)
    out = generator_step(G, C, opt_g, labels, z)
    return out, G, C, spy


def _critic_parts(seed: int = CASE_SEED):
    """Mean scores and penalties of the untouched fixed case, for naming mistakes: at the interpolates with
    the reference eps, at the real and at the fake images."""
    G, C, _, _, real, labels, z = fixed_case(seed)
    G.train()
    with torch.no_grad():
        fake = G(z, labels)
    torch.manual_seed(seed + 1)
    eps = torch.rand(len(real), 1, 1, 1)

    def penalty(points):
        points = points.detach().requires_grad_(True)
        grad, = torch.autograd.grad(C(points, labels).sum(), points)
        return CASE_LAMBDA * float(((grad.flatten(1).norm(dim=1) - 1) ** 2).mean())

    with torch.no_grad():
        w = float(C(real, labels).mean() - C(fake, labels).mean())
    return {"wasserstein": w, "gp": penalty(eps * real + (1 - eps) * fake), "gp_real": penalty(real),
            "gp_fake": penalty(fake)}


def _critic_after_without_penalty_gradient(seed: int = CASE_SEED) -> np.ndarray:
    """The critic's weights after the reference step with the penalty's value in loss_c but not its gradient (what
    create_graph=False in get_grad_function, or a detached penalty, gives)."""
    G, C, _, opt_c, real, labels, z = fixed_case(seed)
    torch.manual_seed(seed + 1)                       # the interpolates' eps, as run_critic_step draws it
    with torch.no_grad():
        fake = G(z, labels)
    eps = torch.rand(len(real), 1, 1, 1)
    points = (eps * real + (1 - eps) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(C(points, labels).sum(), points)
    gp = CASE_LAMBDA * ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    opt_c.zero_grad()
    (C(fake, labels).mean() - C(real, labels).mean() + gp.detach()).backward()
    opt_c.step()
    return flat_params(C)


def _run_step(run, step, loss: str, advice: str):
    """``run(step)``, with a RuntimeError from a loss without a graph turned into a message naming ``loss``."""
    try:
        return run(step)
    except RuntimeError as exc:
        if "does not require grad" in str(exc):
            raise CheckFailed(f"{loss} has no graph to backpropagate through: {advice}.") from None
        raise


def check_critic_step(critic_step) -> None:
    """One critic step: fake without a graph into G, Wasserstein loss + penalty at the interpolates, one update."""
    ref = reference("cwgan_gp_fashion")
    parts = _critic_parts()
    out, G, C, spy = _run_step(run_critic_step, critic_step, "loss_c", "only the fakes are made under "
                               "torch.no_grad(); score them and compute the penalty outside it")
    values = result_dict(out, CRITIC_KEYS, "critic_step")
    require(len(spy.calls) == 1, f"opt_c.step() ran {len(spy.calls)} times: once per critic step.")
    g_grads = spy.calls[0]["G"]
    require(np.allclose(g_grads, STALE_GRADIENT) or np.allclose(g_grads, 0),
            "The generator received gradients in the critic step: make the fakes without a graph into G (under "
            "torch.no_grad(), or detached), since this step trains only the critic.")
    w, expected_w = values["wasserstein"], float(ref["critic_step.wasserstein"])
    with_penalty = ("'wasserstein' is loss_c, penalty included: log the critic's estimate alone, mean C(real) - "
                    "mean C(fake), the Wasserstein loss negated, without the penalty.")
    require_value(w, expected_w, [
        (-expected_w, "The critic's loss has the wrong sign: get_WLoss_discriminator takes the fake scores first, "
                      "then the real ones (look at its arguments' names)."
         if close(values["loss_c"], expected_w + values["gp"]) else
         "'wasserstein' has the wrong sign: log the critic's estimate mean C(real) - mean C(fake), the negated "
         "Wasserstein loss."),
        (values["loss_c"], with_penalty), (-values["loss_c"], with_penalty),
    ], f"wasserstein = {w:.5f}, expected mean C(real) - mean C(fake) = {expected_w:.5f} (scored before the update, "
       "on fakes made from the z and labels given).")
    gp, expected_gp = values["gp"], float(ref["critic_step.gp"])
    alternatives = [float(ref["critic_step.gp_swapped"])]  # eps * fake + (1 - eps) * real is as valid
    if not any(close(gp, a) for a in alternatives):
        require_value(gp, expected_gp, [
            (parts["gp_real"], "The penalty is measured at the real images: WGAN-GP measures it at random points "
                               "between real and fake images (TODO 4's interpolates)."),
            (parts["gp_fake"], "The penalty is measured at the fake images: WGAN-GP measures it at random points "
                               "between real and fake images (TODO 4's interpolates)."),
            (expected_gp * 10.0 / CASE_LAMBDA, "critic_step ignores its lambda_gp argument (the check passes "
                                               f"lambda_gp={CASE_LAMBDA}): pass lambda_gp to get_gradient_regularisation."),
            (0.0, "gp is 0: the critic step computes the gradient penalty (TODO 5) on the critic's gradient at the "
                  "interpolates (TODO 4, get_grad_function) and logs it."),
        ], f"gp = {gp:.5f}, expected {expected_gp:.5f}: the penalty on the critic's gradient at the interpolates of "
           "this batch's real and fake images, with the critic before its update.")
    loss_c = values["loss_c"]
    if close(loss_c, -w) and not close(gp, 0):
        raise CheckFailed("loss_c is the Wasserstein loss alone: the critic minimises the Wasserstein loss PLUS the "
                          "gradient penalty, otherwise nothing keeps it 1-Lipschitz.")
    require(not close(loss_c, -w - gp) or close(gp, 0), "loss_c subtracts the penalty: the critic minimises the "
                                                       "Wasserstein loss PLUS it (a penalty is a cost).")
    require(not close(loss_c, w + gp) or close(w, 0), "loss_c = mean C(real) - mean C(fake) + gp: the critic's loss has "
                                                      "the wrong sign; get_WLoss_discriminator takes the fake scores "
                                                      "first, then the real ones.")
    require(close(loss_c, -w + gp), f"loss_c = {loss_c:.5f}, expected the Wasserstein loss plus the penalty "
                                    f"{-w + gp:.5f}.")
    require(not spy.erased_before_step, "opt_c.zero_grad() comes after loss_c.backward(), so it erases the gradients "
                                        "opt_c.step() needs: call it before the backward pass.")
    targets = [ref["critic_step.C_after"], ref["critic_step.C_after_swapped"]]
    if close(flat_params(C), _critic_after_without_penalty_gradient(), 1e-4):
        raise CheckFailed("loss_c is right but the penalty does not train the critic: its gradient was taken without "
                          "a graph (create_graph=False in get_grad_function) or the penalty was detached (.item(), "
                          ".detach()), so only the Wasserstein loss moved the weights. Keep create_graph=True, as "
                          "given: the penalty must be differentiated again with respect to the critic's weights.")
    if not any(close(flat_params(C), t, 1e-4) for t in targets):
        raise CheckFailed("The losses are right but the critic's update is not: call opt_c.zero_grad() before "
                          "loss_c.backward() (the check leaves old gradients in C to catch this), and backpropagate "
                          "loss_c (Wasserstein loss + penalty), not only one of them.")
    passed(f"critic_step: loss_c {loss_c:.5f}, Wasserstein estimate {w:.5f}, penalty {gp:.5f}; fakes detached, "
           "one update")


def check_generator_step(generator_step) -> None:
    """One generator step: minus the mean critic score of fresh fakes, gradient through C into G, one update."""
    ref = reference("cwgan_gp_fashion")
    G0 = fixed_case()[0]
    out, G, C, spy = _run_step(run_generator_step, generator_step, "loss_g", "do not make or score the fakes under "
                               "torch.no_grad() or detach them here: the gradient must reach G")
    values = result_dict(out, ("loss_g",), "generator_step")
    require(len(spy.calls) == 1, f"opt_g.step() ran {len(spy.calls)} times: once per generator step.")
    loss_g, expected = values["loss_g"], float(ref["generator_step.loss_g"])
    require_value(loss_g, expected, [
        (-expected, "loss_g has the wrong sign: the generator minimises its Wasserstein loss (TODO 3), minus the "
                    "mean critic score of its fakes."),
    ], f"loss_g = {loss_g:.5f}, expected {expected:.5f}: the generator's Wasserstein loss (TODO 3) on the critic's "
       "scores of fakes made from the z and labels given.")
    require(not spy.erased_before_step, "opt_g.zero_grad() comes after loss_g.backward(), so it erases the gradients "
                                        "opt_g.step() needs: call it before the backward pass.")
    require(not close(flat_params(G), flat_params(G0), 0),
            "The generator's weights did not change: do not detach the fakes here (the gradient must reach G), then "
            "call loss_g.backward() and opt_g.step().")
    require(close(flat_params(G), ref["generator_step.G_after"], 1e-4),
            "loss_g is right but G's update is not: call opt_g.zero_grad() before loss_g.backward() (the check "
            "leaves old gradients in G to catch this).")
    passed(f"generator_step: loss_g {loss_g:.5f}; gradient through the critic into G, one update")


# The full run's settings are the student's (issue 25): the handout states these ranges, the check only enforces
# them. Outside them a run is not a choice but a failure the sweep already shows. LAMBDA_GP is no choice: the
# penalty's weight stays the paper's.
CHOICES = (
    learning_rate("lr_g", "generator", "critic"),
    learning_rate("lr_c", "critic", "generator"),
    adam_beta1(0.9),
    Allowed("n_critic", 1, 10, "the critic's updates per generator update", integer=True,
            why="The critic is updated at least once per generator update; beyond 10 the generator gets so few "
                "updates per epoch that a full run learns little."),
)


def check_choices(**choices) -> None:
    """The full run's settings the student chose (``lr_g``, ``lr_c``, ``beta1``, ``n_critic``): each inside its
    range."""
    check_choices_in_ranges(CHOICES, choices)


def check_history(history, expected_length: int) -> None:
    """The training log: one epoch mean per epoch of each key; the penalty and the FCD are non-negative."""
    require_history(history, HISTORY_KEYS, expected_length)
    require(np.all(np.asarray(history["gp"]) >= 0), "history['gp'] has negative values: the penalty is a mean of "
                                                    "squares, never negative.")
    require(np.all(np.asarray(history["fcd"]) >= 0), "history['fcd'] has negative values: a distance is never negative.")
    require(np.any(np.asarray(history["wasserstein"]) > 0),
            "history['wasserstein'] is negative at every epoch: log the critic's estimate mean C(real) - mean C(fake), "
            "that is -loss_w, which a working critic keeps above 0.")
    passed(f"training log: {len(HISTORY_KEYS)} curves of {expected_length} epoch means")


# --------------------------------------------------------------------------- TODO 7: generate(n, c)


class ClassTemplates(nn.Module):
    """A stand-in conditional generator that draws *real* Fashion-MNIST images of the asked class.

    ``G(z, labels)`` returns, for each sample, one of up to 20 shipped real images of class ``labels[i]``
    (chosen by ``z``) that the metric classifier recognises, in [-1, 1]. ``generate(n, c, G=templates)`` therefore
    gives images the classifier calls ``c`` exactly when ``generate`` passes the class correctly.
    """

    def __init__(self, per_class: int = 20):
        super().__init__()
        from ..metrics import classifier_outputs, shipped_reference_images

        images, labels, _ = shipped_reference_images("fashion_mnist")
        predicted = classifier_outputs(images, "fashion_mnist")[0].argmax(axis=1)
        pool = []
        for c in range(N_CLASSES):
            chosen = images[(labels == c) & (predicted == c)][:per_class]
            pool.append(torch.as_tensor(chosen, dtype=torch.float32) * 2 - 1)
        self.register_buffer("pool", torch.stack(pool))                # (10, per_class, 28, 28)
        self.latent_dim, self.n_classes = LATENT_DIM, N_CLASSES
        self.scale = nn.Parameter(torch.ones(()))                       # a parameter, for next(G.parameters())
        self.called_in_training_mode = False                            # set by a call before G.eval()
        self.calls = 0

    def forward(self, z, labels):
        self.calls += 1
        self.called_in_training_mode |= self.training
        pick = (z[:, 0].abs() * 1000).long() % self.pool.shape[1]
        return (self.pool[labels.long(), pick] * self.scale)[:, None]   # (B, 1, 28, 28)


def _class_agreement(images: np.ndarray, c: int) -> float:
    from ..metrics import classifier_outputs

    return float((classifier_outputs(images, "fashion_mnist")[0].argmax(axis=1) == c).mean())


def _generated(generate, n: int, c, G=None):
    """``generate(n, c)`` (with ``G=G`` if given), an error inside it turned into a CheckFailed that names the call."""
    args = (n, c) if G is None else (n, c, G)
    what = f"generate({n}, {c!r}{', G=...' if G is not None else ''})"
    try:
        return generate(*args)
    except NotImplementedError:
        raise CheckFailed(f"{what} still raises NotImplementedError: write the TODO lines and run the cell.") from None
    except (RuntimeError, TypeError, IndexError, AttributeError) as exc:
        message = str(exc).splitlines()[0]
        hint = (" Run G under torch.no_grad(): .numpy() refuses a tensor attached to a graph." if "requires grad" in
                message else " The labels must be a tensor of n integers (dtype torch.long), all equal to c, on G's "
                "device." if "one_hot" in message or "index" in message.lower() else "")
        raise CheckFailed(f"{what} failed: {type(exc).__name__}: {message}.{hint}") from None


def _require_names_in_any_case(generate, templates: "ClassTemplates") -> None:
    """generate(n, "sneaker") must draw sneakers; a crash or a case-sensitive lookup is named."""
    try:
        by_name = _class_agreement(generate(20, "sneaker", G=templates), 7)
    except Exception as exc:        # the student's own lookup may raise anything
        try:
            exact = _class_agreement(generate(20, "Sneaker", G=templates), 7) >= 0.9
        except Exception:
            exact = False
        if exact:
            raise CheckFailed("generate(n, 'sneaker') fails while generate(n, 'Sneaker') works: the name lookup is "
                              "case-sensitive. labkit's class_index accepts any case.") from None
        raise CheckFailed(f"generate(n, 'sneaker') raised {type(exc).__name__}: {str(exc).splitlines()[0]}. A class "
                          "name must be turned into its number first, before any tensor is made: that is what "
                          "class_index is for.") from None
    require(by_name >= 0.9, "generate(n, 'sneaker') did not draw sneakers: turn a name into its class number "
                            "(class_index) before making the labels.")


def check_generate(generate) -> None:
    """generate(n, c) -> numpy float32 (n, 28, 28) in [0, 1] of class c (a number or a name); bad classes raise."""
    out = _generated(generate, 6, 3)
    low, high = require_generated_images(out, "generate(6, 3)", "generate(n, c)")
    templates = ClassTemplates()
    _generated(generate, 2, 0, templates)
    require(templates.calls > 0, "generate(n, c, G=...) did not call the generator it was given: use G (the "
                                 "argument, G_ema by default), not G_ema or another global model, in the TODO lines.")
    _require_mapped(generate, templates)
    require(not templates.called_in_training_mode, "generate called G in training mode: call G.eval() first, so "
                                                   "batch norm uses its running statistics, not the batch's.")
    for c in (0, 7, 9):
        agreement = _class_agreement(_generated(generate, 40, c, templates), c)
        require(agreement >= 0.9, f"Asked for class {c} ({_name(c)}), the images are of that class only "
                                  f"{agreement:.0%} of the time (checked with a stand-in generator of real images): "
                                  "every label G gets must be the class asked for, c itself, not another.")
    _require_names_in_any_case(generate, templates)
    for bad in (10, "sneakers", -1):
        try:
            generate(2, bad, G=templates)
        except ValueError:
            continue
        except Exception as exc:  # an IndexError deep in torch is not a clear error for a user
            raise CheckFailed(f"generate(2, {bad!r}) raised {type(exc).__name__}: {exc}. Check the class first, "
                              "with class_index: it raises a ValueError that lists the classes.") from None
        raise CheckFailed(f"generate(2, {bad!r}) did not raise an error: there is no such class. Check the class "
                          "first, with class_index: it raises a ValueError that lists the classes.")
    passed(f"generate: (6, 28, 28) float32 in [{low:.2f}, {high:.2f}]; the class asked for (by number or name); "
           "a clear error for 10, 'sneakers' and -1")


def _require_mapped(generate, templates: ClassTemplates) -> None:
    """Each image must be (x + 1) / 2 of one of the stand-in's images x; else name the map used. The stand-in's
    images are halved to [-0.5, 0.5] here, so a map that depends on the batch's range (min-max) shows too."""
    with torch.no_grad():
        templates.scale.fill_(0.5)
    try:
        images = generate(40, 0, G=templates)
    finally:
        with torch.no_grad():
            templates.scale.fill_(1.0)
    pool = 0.5 * templates.pool.flatten(0, 1).flatten(1)               # (10 * per_class, 784) in [-0.5, 0.5]
    got = torch.as_tensor(np.asarray(images, dtype=np.float32)).flatten(1)

    def matches(candidates):
        return bool(((got[:, None] - candidates[None]).abs().amax(dim=2).min(dim=1).values < 1e-4).all())

    if matches((pool + 1) / 2):
        return
    require(not matches(pool.clamp(0, 1)), "generate clamps G's [-1, 1] output to [0, 1], which makes every dark pixel "
                                           "black: map it with (x + 1) / 2.")
    raise CheckFailed("generate does not return (x + 1) / 2 of G's images (checked with a stand-in generator of real "
                      "images): map [-1, 1] to [0, 1] with that fixed map, not one that depends on the batch (min-max "
                      "scaling) or abs.")


def _name(c: int) -> str:
    from ..models.classifier import CLASS_NAMES

    return CLASS_NAMES["fashion_mnist"][c]


# --------------------------------------------------------------------------- quality of the saved generator

QUALITY_SAMPLES = 5000
# Tiers on 5,000 samples (500 per class) scored by the Fashion-MNIST metric classifier (91.7 % on real test images;
# never shown to a generator); the FCD ratio compares them with labkit's 1,000 shipped test images (5 splits).
# Measured (conditional accuracy / weakest class / FCD ratio; docs/benchmarks.md): the reference (48 epochs, seed 1)
# 88.1-88.8 % / 65-70 % (Shirt) / 3.2-3.4; the recipe with seed 0 after 26 epochs 86.2 % / 57 % (Shirt) / 5.4, after 20
# epochs 84.4 % / 55 % (Shirt) / 6.4; the same run's EMA generator after 8 epochs 77 % / 35 % / 13 and after 6
# epochs 71 % / 20 % / 17 (2,000 samples each); the BCE cGAN baseline and the WGAN-GP after 6 minutes on 10,000
# images 65 % / 3 % / 27 and 54 % / 10 % / 33; real test images, which the classifier never trained on, 91.7 % / 74 %
# (Shirt) / 1.0. "good" is about half the reference's training with a margin, "fair" the recipe stopped at about 8 epochs; six minutes of either loss fail both.
QUALITY_TIERS = MappingProxyType({
    "good": MappingProxyType({"accuracy": 0.80, "weakest_class": 0.50, "fcd_over_floor": 9.0}),
    "fair": MappingProxyType({"accuracy": 0.70, "weakest_class": 0.30, "fcd_over_floor": 15.0}),
})


def graded_scores(generator, n: int = QUALITY_SAMPLES, seed: int = 0) -> dict:
    """What the quality checks grade: conditional accuracy (overall and per class) on ``n`` samples with labels
    cycling through the classes, and the FCD ratio against labkit's shipped real test images."""
    return conditional_generator_scores(generator, "fashion_mnist", n=n, seed=seed)


def sweep_scores(generator, n: int, seed: int = 0) -> dict:
    """The graded measures, one number each, for a sweep's table: conditional accuracy, its weakest class and the
    FCD ratio (:func:`graded_scores` on ``n`` samples)."""
    return conditional_measures(graded_scores(generator, n=n, seed=seed))


def tiers_met(scores) -> list:
    """The names of the tiers whose three thresholds ``scores`` (from :func:`graded_scores`) meet."""
    return conditional_tiers_met(scores, QUALITY_TIERS)


def check_quality(path, tier: str, n: int = QUALITY_SAMPLES, seed: int = 0) -> None:
    """Score the saved generator at ``path``: conditional accuracy, its weakest class, FCD against real images."""
    from ..models.classifier import CLASS_NAMES

    check_conditional_quality(path, tier, QUALITY_TIERS, graded_scores, CLASS_NAMES["fashion_mnist"], n=n, seed=seed)


# --------------------------------------------------------------------------- expected values


def expected_values(solution) -> dict:
    """The values the step checks compare with, computed by the solution's own steps (``solution``: the exports of
    notebooks/solutions/04_cwgan_gp_fashion.ipynb); ``scripts/make_references.py`` stores them in
    ``labkit/data/references/cwgan_gp_fashion.npz``."""
    out, _, C, _ = run_critic_step(solution.critic_step)
    # eps * fake + (1 - eps) * real is as valid an interpolate (eps is symmetric): its values are accepted too
    mix = solution.get_interpolates
    solution.get_interpolates = lambda real, fake: mix(fake, real)
    try:
        swapped, _, C_swapped, _ = run_critic_step(solution.critic_step)
    finally:
        solution.get_interpolates = mix
    g_out, G, _, _ = run_generator_step(solution.generator_step)
    return {
        **{f"critic_step.{key}": value for key, value in out.items()},
        "critic_step.C_after": flat_params(C), "critic_step.gp_swapped": swapped["gp"],
        "critic_step.C_after_swapped": flat_params(C_swapped),
        "generator_step.loss_g": g_out["loss_g"], "generator_step.G_after": flat_params(G),
    }
