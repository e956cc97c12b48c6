"""Checks behind the cells of notebook 03 (DCGAN on MNIST): architectures, loss, optimisers, step, log, generate, quality.

Each check raises :class:`~labkit.checks.CheckFailed` naming the likely mistake, or prints one ✔ line.
The architecture checks read the layers each network runs (:mod:`labkit.checks.layers`) to test the DCGAN rules
the notebook teaches. The training-step check runs the student's ``train_step`` on tiny DCGAN networks from
:mod:`labkit.checks.cases` with fixed seeds and compares with reference values written from the
solution by ``scripts/make_references.py``, then once on the ``meta`` device to catch tensors made on the CPU.
``generate`` and the training loop are run with :class:`NoiseImages`, a stand-in generator whose images depend on
the noise alone, so the checks can tell what was done to the noise and to the images.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from enum import Enum
from pathlib import Path
from types import MappingProxyType
from typing import List, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import CheckFailed, close, passed, reference, require
from .cases import CASE_LATENT, dcgan_case_networks
from .samples import require_generated_images
from .layers import ACTIVATIONS, WEIGHT_OPS, Layer, Op, between, trace
from .choices import adam_beta1, learning_rate, check_choices as check_choices_in_ranges
from .quality import saved_generator_scores
from .steps import (STALE_GRADIENT, DeviceSlip, OptimizerSpy, build_student_model, device_slip, flat_grads, flat_params,
                    name_torch_error, require_history, require_value, result_dict, stale_gradients)

__all__ = ["NOTEBOOK", "expected_values", 
    "check_generator", "check_discriminator", "check_criterion", "check_optimizers", "check_choices", "CHOICES",
    "check_train_step",
    "check_history", "check_generate", "check_quality", "graded_scores", "tiers_met", "run_train_step", "fixed_case",
    "flat_params", "run_loop_case", "discriminator_scores", "Scores", "NoiseImages", "QUALITY_TIERS",
]

NOTEBOOK = "03_dcgan_mnist"  # the solution notebook whose exports expected_values() runs

LATENT_DIM = 100
CASE_SEED = 1234
CASE_BATCH = 8
CASE_LR = 0.1
STEP_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")


def _count(module: nn.Module, *types) -> int:
    return sum(isinstance(m, types) for m in module.modules())


# --------------------------------------------------------------------------- architectures


class Scores(Enum):
    """What the student's discriminator outputs, which decides the loss that goes with it."""
    PROBABILITIES = "probabilities"    # ends in a sigmoid: nn.BCELoss
    LOGITS = "logits"                  # ends in its Linear layer: nn.BCEWithLogitsLoss


def _run(model: nn.Module, inputs: torch.Tensor, call: str, hint: str):
    """``model(inputs)``, the layers it ran, and ``model(1000 * inputs)`` (far-out inputs push an unbounded last
    layer out of range); a RuntimeError becomes a CheckFailed with ``hint``, or names a Linear fed images."""
    try:
        with torch.no_grad():
            out, layers = trace(model, inputs)
            extreme = model(inputs * 1000)
    except RuntimeError as exc:
        if any(layer.op is Op.LINEAR and layer.input_dims > 2 for layer in getattr(exc, "layers", ())):
            raise CheckFailed(f"{call} failed: the Linear layer got images, not vectors: a Linear layer multiplies "
                              "the last axis only, so the feature maps must be flattened to (B, features) before "
                              "it (nn.Flatten()).") from None
        raise CheckFailed(f"{call} failed: {exc}. {hint}") from None
    return out, extreme, layers


def _weight_layers(layers: Sequence[Layer]) -> List[int]:
    return [i for i, layer in enumerate(layers) if layer.op in WEIGHT_OPS]


def _require_generator_layers(layers: Sequence[Layer]) -> None:
    """DCGAN's rules for G, as the text teaches them: batch norm and ReLU after every layer but the output layer,
    none of either after it."""
    weights = _weight_layers(layers)
    after_last = between(layers, weights[-1], len(layers))
    require(Op.BATCH_NORM not in after_last,
            "The generator's output layer is followed by batch norm: DCGAN leaves batch norm out of G's output "
            "layer (normalising the images each batch made samples oscillate and training unstable); the output "
            "layer goes straight to Tanh.")
    hidden = [between(layers, i, j) for i, j in zip(weights, weights[1:])]
    used = {op for ops in hidden for op in ops}
    if Op.RELU not in used:
        other = sorted(op.value for op in used & ACTIVATIONS)
        raise CheckFailed("The generator has no ReLU between its layers" + (
            f" (it uses {', '.join(other)}): DCGAN's rule is ReLU in G, LeakyReLU in D." if other else
            ": without a non-linearity the stacked layers are one linear map. DCGAN puts ReLU after every layer of G "
            "but the output layer."))
    for k, ops in enumerate(hidden, start=1):
        require(Op.RELU in ops, f"Layer {k} of the generator (of {len(weights)}) is not followed by a ReLU: DCGAN puts "
                                "ReLU after every layer of G but the output layer.")
        require(Op.BATCH_NORM in ops, f"Layer {k} of the generator (of {len(weights)}) has no BatchNorm2d after it: "
                                      "DCGAN puts batch norm after every layer of G but the output layer.")


def check_generator(Generator) -> None:
    """Generator(latent_dim=100): (B, 100) noise -> (B, 1, 28, 28) in [-1, 1], 2-3 upsampling layers, batch norm
    and ReLU after each but the last."""
    torch.manual_seed(0)
    G = build_student_model(Generator, "Generator", latent_dim=LATENT_DIM).eval()
    n_up = _count(G, nn.ConvTranspose2d)
    n_upsample = _count(G, nn.Upsample)
    require(2 <= n_up + n_upsample <= 3,
            f"The generator has {n_up} ConvTranspose2d (and {n_upsample} Upsample) layers: the lab asks for 2-3 "
            "upsampling layers, transposed convolutions or Upsample + Conv2d pairs.")
    require(_count(G, nn.BatchNorm2d) >= 1, "The generator has no BatchNorm2d: DCGAN puts batch norm after every "
                                            "layer of G except the output layer.")
    require(_count(G, nn.MaxPool2d, nn.AvgPool2d) == 0, "The generator should not pool; it upsamples.")
    out, extreme, layers = _run(G, torch.randn(4, LATENT_DIM), "G(z) with z of shape (4, 100)",
                                "Reshape z to (B, 100, 1, 1) before the first transposed convolution, and check each "
                                "layer's in_channels.")
    shape = tuple(out.shape)
    if shape == (4, 784):
        raise CheckFailed("G(z) returns (B, 784): reshape to images of shape (B, 1, 28, 28).")
    if len(shape) == 4 and shape[:2] == (4, 1) and shape[2:] != (28, 28):
        raise CheckFailed(f"G(z) returns images of {shape[2]}×{shape[3]}, not 28×28: recompute each layer's output "
                          "with out = (in - 1)·stride - 2·padding + kernel.")
    require(shape == (4, 1, 28, 28), f"G(z) must return shape (B, 1, 28, 28) = (4, 1, 28, 28), got {shape}.")
    _require_generator_layers(layers)
    require(float(out.abs().max()) <= 1.0 + 1e-6 and float(extreme.abs().max()) <= 1.0 + 1e-6,
            "G(z) can leave [-1, 1]: end the generator with nn.Tanh() (the training images are scaled to [-1, 1]).")
    require(float(out.min()) < 0 < float(out.max()), "G(z) is never negative (or never positive): the last activation "
                                                     "must be tanh, not sigmoid or ReLU.")
    require(float(out.std(dim=0).mean()) > 1e-4, "G(z) gives the same image for every z: does forward use z?")
    passed(f"Generator: (4, 100) -> {shape}, values in [{float(out.min()):.2f}, {float(out.max()):.2f}], "
           f"{n_up + n_upsample} upsampling layers, batch norm and ReLU after each but the output layer")


def _require_discriminator_layers(layers: Sequence[Layer]) -> Scores:
    """DCGAN's rules for D: no batch norm on the input layer, batch norm after some later layer, LeakyReLU after
    every convolution, and a last activation that makes one score per image; returns what D outputs."""
    weights = _weight_layers(layers)
    first = [layer.op for layer in layers[:weights[0]]] + between(layers, weights[0], weights[1])
    require(Op.BATCH_NORM not in first,
            "Batch norm on the discriminator's input layer: DCGAN leaves it out there (normalising the images "
            "themselves made training unstable); it goes after the second convolution and later ones.")
    require(any(layer.op is Op.BATCH_NORM for layer in layers),
            "The discriminator has no BatchNorm2d: DCGAN puts batch norm in both networks, in D after every "
            "convolution but the first.")
    for k, (i, j) in enumerate(zip(weights, weights[1:]), start=1):
        ops = between(layers, i, j)
        if Op.LEAKY_RELU not in ops:
            used = sorted(op.value for op in set(ops) & ACTIVATIONS)
            raise CheckFailed(f"Layer {k} of the discriminator is followed by {', '.join(used) or 'no activation'}: "
                              "DCGAN puts LeakyReLU(0.2) after every hidden layer of D (a ReLU would block the "
                              "gradient that reaches G through negative inputs).")
    last = between(layers, weights[-1], len(layers))
    if Op.SOFTMAX in last:
        raise CheckFailed("D ends in a softmax: over one output per image a softmax is always 1, whatever the image. "
                          "A single probability comes from a sigmoid.")
    if last and last[-1] is Op.SIGMOID:
        return Scores.PROBABILITIES
    require(not (set(last) & ACTIVATIONS), f"D ends in {last[-1].value if last else '?'}: its output must be a "
                                           "probability (a sigmoid at the end) or a logit (the Linear layer's output).")
    return Scores.LOGITS


def _discriminator(Discriminator):
    torch.manual_seed(0)
    return build_student_model(Discriminator, "Discriminator").eval()


def discriminator_scores(Discriminator) -> Scores:
    """Whether the student's discriminator outputs probabilities or logits (its last op after its last layer)."""
    _, _, layers = _run(_discriminator(Discriminator), torch.zeros(2, 1, 28, 28), "D(x)", "")
    weights = _weight_layers(layers)
    last = between(layers, weights[-1], len(layers)) if weights else []
    return Scores.PROBABILITIES if last and last[-1] is Op.SIGMOID else Scores.LOGITS


def check_discriminator(Discriminator) -> None:
    """Discriminator(): (B, 1, 28, 28) -> (B, 1), a probability (sigmoid) or a logit per image, 3-4 convolutions
    and one linear layer, batch norm after every convolution but the first, LeakyReLU."""
    D = _discriminator(Discriminator)
    n_conv, n_linear = _count(D, nn.Conv2d), _count(D, nn.Linear)
    require(3 <= n_conv <= 4, f"The discriminator has {n_conv} Conv2d layers: the lab asks for 3-4.")
    require(n_linear == 1, f"The discriminator has {n_linear} Linear layers: the lab asks for exactly one, at the end.")
    require(_count(D, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d) == 0,
            "The discriminator pools: DCGAN downsamples with strided convolutions (stride=2) instead.")
    out, extreme, layers = _run(D, torch.rand(5, 1, 28, 28) * 2 - 1, "D(x) with x of shape (5, 1, 28, 28)",
                                "Check the Linear layer's in_features: channels × height × width of the last "
                                "convolution's output.")
    shape = tuple(out.shape)
    if len(shape) == 4 and any(layer.op is Op.LINEAR and layer.input_dims > 2 for layer in layers):
        raise CheckFailed(f"D(x) returns shape {shape}: the Linear layer got the feature maps unflattened and acted on "
                          "their last axis only. Flatten them to (B, features) before it (nn.Flatten()).")
    require(shape in ((5, 1), (5,)), f"D(x) must return one score per image, shape (B, 1); got {shape}.")
    scores = _require_discriminator_layers(layers)
    low, high = min(float(out.min()), float(extreme.min())), max(float(out.max()), float(extreme.max()))
    if scores is Scores.PROBABILITIES:
        require(low >= 0 and high <= 1, f"D(x) has values in [{low:.3g}, {high:.3g}] after its sigmoid: something "
                                         "after the sigmoid changes them.")
    require(float(out.std()) > 0, "D(x) gives the same score for every image: does forward use x?")
    what = ("probabilities in (0, 1): TODO 3's loss must take probabilities" if scores is Scores.PROBABILITIES else
            "logits (no sigmoid): TODO 3's loss must take logits")
    passed(f"Discriminator: (5, 1, 28, 28) -> {shape}, {n_conv} convolutions + 1 linear, {what}")


# --------------------------------------------------------------------------- loss and optimisers


def _takes_logits(criterion) -> bool:
    """Whether ``criterion`` is binary cross-entropy on logits (probed with scores outside [0, 1])."""
    s, y = torch.tensor([[2.0], [-1.5]]), torch.tensor([[1.0], [0.0]])
    try:
        with torch.no_grad():
            return close(float(criterion(s, y)), float(F.binary_cross_entropy_with_logits(s, y)))
    except (RuntimeError, ValueError, TypeError):
        return False


def check_criterion(criterion, Discriminator) -> None:
    """The loss is binary cross-entropy averaged over the batch, on what the discriminator outputs: probabilities
    (nn.BCELoss) after a sigmoid, logits (nn.BCEWithLogitsLoss) without one."""
    require(callable(criterion), f"criterion must be a loss module, called as criterion(scores, targets); got "
                                f"{type(criterion).__name__}.")
    scores = discriminator_scores(Discriminator)
    p = torch.tensor([[0.9], [0.2], [0.6]])
    y = torch.tensor([[1.0], [0.0], [1.0]])
    x = p if scores is Scores.PROBABILITIES else torch.logit(p)
    if scores is Scores.PROBABILITIES and _takes_logits(criterion):
        raise CheckFailed("This is the logits loss (BCEWithLogitsLoss applies a sigmoid itself), but your "
                          "discriminator already ends in a sigmoid: its probabilities would be squashed a second "
                          "time. A discriminator with a sigmoid goes with the loss on probabilities.")
    try:
        with torch.no_grad():
            value = criterion(x, y)
    except RuntimeError as exc:
        if scores is Scores.LOGITS and "between 0 and 1" in str(exc):
            raise CheckFailed("Your discriminator outputs logits (no sigmoid at the end), but this loss expects "
                              "probabilities in [0, 1]: with logits use the logits version of binary cross-entropy "
                              "(or end D with a sigmoid).") from None
        raise CheckFailed(f"criterion(scores, targets) failed: {exc}") from None
    require(torch.is_tensor(value) and value.numel() == 1,
            "criterion returns one loss per sample: keep the default reduction, the mean over the batch.")
    got = float(value)
    bce = float(F.binary_cross_entropy(p, y))
    if close(got, float(F.mse_loss(x, y))):
        raise CheckFailed("This is the mean squared error (a least-squares GAN); the lab uses binary cross-entropy.")
    if close(got, bce * 3):
        raise CheckFailed("The loss is summed over the batch: the lab averages it (the default reduction), so the "
                          "step size does not depend on the batch size.")
    require(close(got, bce), f"criterion(scores, targets) = {got:.5f}, expected the binary cross-entropy {bce:.5f}.")
    passed(f"criterion: binary cross-entropy on {scores.value}, averaged over the batch")


def check_optimizers(make_optimizers, Generator, Discriminator) -> None:
    """make_optimizers(G, D, lr_g, lr_d, betas) -> (opt_g, opt_d): Adam on each network's own parameters."""
    torch.manual_seed(0)
    G, D = build_student_model(Generator, "Generator", latent_dim=LATENT_DIM), build_student_model(Discriminator, "Discriminator")
    result = make_optimizers(G, D, lr_g=3e-4, lr_d=1e-4, betas=(0.6, 0.99))   # nobody's choice: fixed numbers show
    require(isinstance(result, (tuple, list)) and len(result) == 2, "make_optimizers must return a pair (opt_g, opt_d).")
    opt_g, opt_d = result
    for opt, name in ((opt_g, "opt_g"), (opt_d, "opt_d")):
        require(isinstance(opt, torch.optim.Adam), f"{name} is a {type(opt).__name__}; the DCGAN recipe uses Adam.")
    ids = {name: {id(p) for group in opt.param_groups for p in group["params"]} for name, opt in
           (("opt_g", opt_g), ("opt_d", opt_d))}
    g_ids, d_ids = {id(p) for p in G.parameters()}, {id(p) for p in D.parameters()}
    if ids["opt_g"] == d_ids and ids["opt_d"] == g_ids:
        raise CheckFailed("The optimisers are swapped: opt_g updates D's parameters and opt_d G's. Each optimiser "
                          "updates the network it is named after.")
    require(ids["opt_g"] == g_ids, "opt_g must optimise exactly G's parameters (not D's, not both): each network "
                                   "has its own optimiser, so each step moves only the network it trains.")
    require(ids["opt_d"] == d_ids, "opt_d must optimise exactly D's parameters (not G's, not both): each network "
                                   "has its own optimiser, so each step moves only the network it trains.")
    lr = (opt_g.param_groups[0]["lr"], opt_d.param_groups[0]["lr"])
    if lr == (1e-4, 3e-4):
        raise CheckFailed("The learning rates are swapped: opt_g gets lr_g and opt_d gets lr_d.")
    require(lr == (3e-4, 1e-4), f"Called with lr_g=3e-4, lr_d=1e-4 the optimisers have lr {lr}: use the arguments, "
                                "not fixed numbers.")
    betas = (tuple(opt_g.param_groups[0]["betas"]), tuple(opt_d.param_groups[0]["betas"]))
    require(betas == ((0.6, 0.99), (0.6, 0.99)), f"Called with betas=(0.6, 0.99) the optimisers have betas {betas}: "
                                                 "use the betas argument for both, not fixed numbers or Adam's "
                                                 "default: the betas are chosen outside the function.")
    passed("make_optimizers: Adam for G and for D, each on its own parameters, with the given lr and betas")


# The full run's settings are the student's (issue 25): the handout states these ranges, the check only enforces
# them. Outside them a run is not a choice but a failure the sweep already shows (docs/benchmarks.md).
CHOICES = (learning_rate("lr_g", "generator", "discriminator"), learning_rate("lr_d", "discriminator", "generator"),
           adam_beta1(0.999))


def check_choices(**choices) -> None:
    """The full run's settings the student chose (``lr_g``, ``lr_d``, ``beta1``): each inside its range."""
    check_choices_in_ranges(CHOICES, choices)


# --------------------------------------------------------------------------- one training step


def fixed_case(seed: int = CASE_SEED, scores: Scores = Scores.PROBABILITIES):
    """Tiny DCGAN G and D (D outputs ``scores``; same weights either way), SGD optimisers, a real batch and a
    noise batch, all from ``seed``."""
    torch.manual_seed(seed)
    G, D = dcgan_case_networks(probability=scores is Scores.PROBABILITIES)
    opt_g = torch.optim.SGD(G.parameters(), lr=CASE_LR)
    opt_d = torch.optim.SGD(D.parameters(), lr=CASE_LR)
    gen = torch.Generator().manual_seed(seed)
    real = torch.rand(CASE_BATCH, 1, 28, 28, generator=gen) * 2 - 1
    z = torch.randn(CASE_BATCH, CASE_LATENT, generator=gen)
    return G, D, opt_g, opt_d, real, z


def _loss_for(scores: Scores) -> nn.Module:
    return nn.BCELoss() if scores is Scores.PROBABILITIES else nn.BCEWithLogitsLoss()


class _CallWatch:
    """Forward pre-hooks that note, at every call of G and D, whether it ran in training mode, and whether G got
    the noise batch the step was given."""

    def __init__(self, G: nn.Module, D: nn.Module, z: torch.Tensor):
        self.eval_calls = []          # "G" / "D" for each call made in eval mode
        self.other_noise = False      # G was called with something other than z (or z.detach())

        def watch(name):
            def hook(module, inputs):
                if not module.training:
                    self.eval_calls.append(name)
                if name == "G" and not (torch.is_tensor(inputs[0]) and inputs[0].shape == z.shape
                                        and torch.equal(inputs[0].detach(), z)):
                    self.other_noise = True
            return hook

        G.register_forward_pre_hook(watch("G"))
        D.register_forward_pre_hook(watch("D"))


def run_train_step(train_step, seed: int = CASE_SEED, scores: Scores = Scores.PROBABILITIES):
    """Run ``train_step`` on the fixed case with stale gradients, spies and call watches; return
    (result, G, D, (spy_d, spy_g, watch))."""
    G, D, opt_g, opt_d, real, z = fixed_case(seed, scores)
    stale_gradients(G)
    stale_gradients(D)
    spy_d, spy_g = OptimizerSpy(opt_d, G=G), OptimizerSpy(opt_g, D=D)
    watch = _CallWatch(G, D, z)
    try:
        out = train_step(G, D, opt_g, opt_d, _loss_for(scores), real, z)
    except NotImplementedError:
        raise CheckFailed("train_step still raises NotImplementedError: write the TODO lines and run the cell.") from None
    except ValueError as exc:
        if "target size" in str(exc):
            raise CheckFailed(f"criterion got targets of another shape than the scores ({exc}): a target holds one "
                              "number per score, in the scores' shape (B, 1).") from None
        raise
    except RuntimeError as exc:
        name_torch_error(exc, {
            "second time": "train_step went backward through G(z) a second time: the D step's loss reached into G. "
                           "The D step must score fake images cut off from G's graph (detached), so "
                           "loss_d.backward() stops at them and the G step can still backpropagate through G.",
            "inplace operation": "loss_g's graph went stale: D's scores for the generator were computed before "
                                 "opt_d.step(), which then changed D's weights in place. The G step scores the fakes "
                                 "with D after its update.",
            "between 0 and 1": "criterion got a first argument outside [0, 1] (or NaN): a loss takes the prediction "
                               "first, then the target. With the two swapped, D's update explodes and its next scores "
                               "are NaN.",
            "does not require grad": "A loss does not reach any weight ({first_line}): the G step's scores must come "
                                     "from fakes still attached to G (not detached, not the D step's scores, not "
                                     "under torch.no_grad()).",
        })
        raise
    return out, G, D, (spy_d, spy_g, watch)


def _wrong_values(ref, seed: int = CASE_SEED):
    """Values of typical mistakes on the fixed case: D-step ones from the untouched networks, G-step ones and
    probabilities logged late from D after the reference update (the D the generator's step must use)."""
    G, D, _, _, real, z = fixed_case(seed)
    G.train(), D.train()
    bce = F.binary_cross_entropy
    with torch.no_grad():
        fake = G(z)
        p_real, p_fake = D(real), D(fake)
        ones, zeros = torch.ones_like(p_real), torch.zeros_like(p_real)
        both = D(torch.cat([real, fake]))
        concatenated = bce(both, torch.cat([ones, zeros])).item()
        wrong = {
            "swapped": (bce(p_real, zeros) + bce(p_fake, ones)).item(),
            "both_ones": (bce(p_real, ones) + bce(p_fake, ones)).item(),
            "both_zeros": (bce(p_real, zeros) + bce(p_fake, zeros)).item(),
            "arguments_swapped": (bce(ones, p_real) + bce(zeros, p_fake)).item(),
            "smoothed": (bce(p_real, torch.full_like(p_real, 0.9)) + bce(p_fake, zeros)).item(),
            "concatenated": concatenated,
            "concatenated_two_losses": (bce(both[:len(real)], ones) + bce(both[len(real):], zeros)).item(),
            "g_before_update": bce(p_fake, ones).item(),
            "logit_means": [D.logits(real).mean().item(), D.logits(fake).mean().item()],
        }
        nn.utils.vector_to_parameters(torch.as_tensor(ref["train_step.D_after"], dtype=torch.float32), D.parameters())
        p_after = D(fake)
        wrong["g_target_zero"] = bce(p_after, zeros).item()
        wrong["g_saturating"] = torch.log(1 - p_after).mean().item()
        wrong["late_means"] = [D(real).mean().item(), p_after.mean().item()]
    return wrong


def _fresh_gradients(module: nn.Module) -> bool:
    """Whether a backward pass wrote gradients into ``module`` (neither none nor the stale ones the check left)."""
    grads = flat_grads(module)
    return not bool(np.all(np.isclose(grads, STALE_GRADIENT) | (grads == 0)))


def _require_step_calls(spy_d: OptimizerSpy, spy_g: OptimizerSpy, watch: _CallWatch, G: nn.Module,
                        D: nn.Module) -> None:
    """Each optimiser steps once, with fresh gradients, and G and D run in training mode on the given noise."""
    networks = {"opt_d": D, "opt_g": G}
    if len(spy_g.calls) == 0 and len(spy_d.calls) >= 2:
        raise CheckFailed("opt_d.step() ran twice and opt_g.step() never: the generator's step used the "
                          "discriminator's optimiser, which holds only D's weights, so G never learns and D takes a "
                          "step towards the generator's goal.")
    require(len(spy_d.calls) >= 1, "opt_d.step() was never called: the discriminator must be updated in every step.")
    require(len(spy_g.calls) >= 1, "opt_g.step() was never called: the generator must be updated in every step.")
    require(len(spy_d.calls) == 1 and len(spy_g.calls) == 1,
            f"opt_d.step() ran {len(spy_d.calls)} times and opt_g.step() {len(spy_g.calls)} times: one each per step.")
    for spy, name, loss in ((spy_d, "opt_d", "loss_d"), (spy_g, "opt_g", "loss_g")):
        require(not spy.erased_before_step,
                f"{name}.zero_grad() ran between {loss}.backward() and {name}.step(): it erased the gradients the "
                "backward pass had just computed, so the step had nothing to apply. Gradients are cleared before "
                "the backward pass.")
        stepped_without = not all(fresh for kind, fresh in spy.events if kind == "step")
        require(not (stepped_without and _fresh_gradients(networks[name])),  # backward came, but after the step
                f"{name}.step() ran before {loss}.backward(): a step applies the gradients already there, so it "
                "used none (or old ones). The order is: clear, forward, backward, step.")
    require(not watch.other_noise, "train_step called G on noise other than the z it was given: it draws its own. The "
                                   "training loop passes z (on the right device, of the right size); use that one.")
    require(not watch.eval_calls, f"train_step ran {watch.eval_calls[0] if watch.eval_calls else ''} in eval mode: "
                                  "training steps run the networks in training mode (batch norm then normalises with "
                                  "the batch's own statistics); eval mode is for sampling, after training.")


def _require_device_free(train_step, scores: Scores) -> None:
    """Run the step once on the ``meta`` device: a tensor it makes on the CPU (targets without device=, its own
    noise) fails there as it would on a GPU."""
    G, D, _, _, real, z = fixed_case(scores=scores)
    G, D = G.to("meta"), D.to("meta")
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=CASE_LR), torch.optim.SGD(D.parameters(), lr=CASE_LR)
    slip = device_slip(train_step, G, D, opt_g, opt_d, _loss_for(scores), real.to("meta"), z.to("meta"))
    require(slip is not DeviceSlip.CPU_TENSOR,
            "train_step makes a tensor on the CPU whatever the batch's device (targets built with torch.ones(...) or "
            "torch.zeros(...) without device=, typically): on a GPU the step crashes. Every tensor a step creates "
            "belongs on the batch's device (checked by running the step once on a stand-in device).")


def check_train_step(train_step, criterion=None) -> None:
    """One DCGAN step: D on separate real and fake batches (fake detached), then the non-saturating G step.

    ``criterion``: the notebook's loss; with a logits loss the step runs with a discriminator that outputs logits
    (the same weights), so either choice of TODO 3 is checked with the discriminator it goes with."""
    scores = Scores.LOGITS if criterion is not None and _takes_logits(criterion) else Scores.PROBABILITIES
    ref = reference("dcgan_mnist")
    wrong = _wrong_values(ref)
    G0 = fixed_case()[0]
    out, G, D, (spy_d, spy_g, watch) = run_train_step(train_step, scores=scores)
    values = result_dict(out, STEP_KEYS, "train_step")
    _require_step_calls(spy_d, spy_g, watch, G, D)
    if close(values["loss_g"], wrong["g_before_update"]):
        raise CheckFailed("loss_g was computed with D from before its update: the generator's step scores the fakes "
                          "with the discriminator as it is after opt_d.step().")
    g_grads = spy_d.calls[0]["G"]
    require(np.allclose(g_grads, STALE_GRADIENT) or np.allclose(g_grads, 0),
            "The generator received gradients during the discriminator's update: the D step must score fake images "
            "cut off from G's graph (detached), so loss_d.backward() stops at them.")
    loss_d, expected_d = values["loss_d"], float(ref["train_step.loss_d"])
    concatenated = ("loss_d matches one discriminator pass on real and fake images together. With batch norm in D "
                    "the two would share batch statistics: DCGAN scores real and fake in separate mini-batches and "
                    "adds the two losses.")
    require_value(loss_d, expected_d, [
        (wrong["swapped"], "loss_d matches swapped labels: the discriminator's targets are 1 for real images and 0 "
                           "for fakes."),
        (wrong["both_ones"], "loss_d matches target 1 for the fake images too: the discriminator learns to call "
                             "fakes fake, target 0."),
        (wrong["both_zeros"], "loss_d matches target 0 for the real images too: the discriminator learns to call "
                              "real images real, target 1."),
        (wrong["arguments_swapped"], "loss_d matches criterion(targets, scores): a loss takes the prediction first, "
                                     "then the target."),
        (wrong["smoothed"], "loss_d matches real targets of 0.9 (label smoothing): this lab's step uses 1."),
        (wrong["concatenated"], concatenated),
        (wrong["concatenated_two_losses"], concatenated),
        (expected_d / 2, "loss_d is half the expected value: the two losses are averaged. This lab adds them "
                         "(as the DCGAN paper's discriminator loss does), which also sets the step size."),
    ], f"loss_d = {loss_d:.5f}, expected {expected_d:.5f}: the discriminator's loss is the BCE of the real batch "
       "against 1 plus the BCE of the fake batch against 0, each averaged over the batch.")
    logged = [values["d_real"], values["d_fake"]]
    expected_p = [float(ref["train_step.d_real"]), float(ref["train_step.d_fake"])]
    if not close(logged, expected_p):
        if close(logged, wrong["logit_means"]):
            raise CheckFailed("d_real/d_fake are means of logits: log probabilities, the sigmoid of D's scores, so "
                              "0.5 means D cannot tell.")
        if close(logged, wrong["late_means"]):
            raise CheckFailed("d_real/d_fake come from D after its update: log the scores of the discriminator step "
                              "itself, the ones its loss was computed from.")
        raise CheckFailed(f"d_real/d_fake = {logged[0]:.5f}/{logged[1]:.5f}, expected {expected_p[0]:.5f}/"
                          f"{expected_p[1]:.5f}: log the mean D(x) of the real batch and of the fake batch of the "
                          "discriminator step, before its update.")
    require(close(flat_params(D), ref["train_step.D_after"], 1e-4),
            "loss_d is right but D's update is not: opt_d.zero_grad() must clear the old gradients before "
            "loss_d.backward() (the check leaves old gradients in D to catch this), and D steps only once.")
    loss_g, expected_g = values["loss_g"], float(ref["train_step.loss_g"])
    saturating = ("This is the saturating loss log(1 - D(G(z))). The lab uses the non-saturating one, -log D(G(z)), "
                  "which keeps gradients alive when D wins.")
    require_value(loss_g, expected_g, [
        (wrong["g_target_zero"], "loss_g uses target 0: the generator wants D to call its images real, target 1."),
        (wrong["g_saturating"], saturating),
        (-wrong["g_saturating"], saturating),
    ], f"loss_g = {loss_g:.5f}, expected {expected_g:.5f}: the generator's loss is the BCE of D's scores of the fakes, "
       "with D after its update, against 1, averaged over the batch.")
    require(not close(flat_params(G), flat_params(G0), 0),
            "The generator's weights did not change: in the G step the gradient must reach G (the fakes not "
            "detached), then loss_g.backward() and opt_g.step().")
    require(close(flat_params(G), ref["train_step.G_after"], 1e-4),
            "The losses are right but G's update is not: opt_g.zero_grad() must clear the old gradients before "
            "loss_g.backward() (the check leaves old gradients in G to catch this; they also hold what loss_d.backward() left there).")
    _require_device_free(train_step, scores)
    passed(f"train_step: loss_d {loss_d:.5f}, loss_g {loss_g:.5f}, D(x) {values['d_real']:.3f}, "
           f"D(G(z)) {values['d_fake']:.3f}; detach, labels, updates and devices correct")


class NoiseImages(nn.Module):
    """A stand-in generator whose images depend on z alone, not on its weights, in [-0.5, 0.5] (inside tanh's range,
    so a map from [-1, 1] to [0, 1] that depends on the batch, or a clamp, shows).

    Two snapshots of the same noise are equal however training changed the weights, and ``generate`` can be
    compared with ``(x + 1) / 2`` of the images it was given. Each call notes the mode, whether autograd was
    recording, and the noise and images.
    """

    def __init__(self, latent_dim: int = LATENT_DIM):
        super().__init__()
        self.latent_dim = latent_dim
        projection = torch.randn(latent_dim, 28 * 28, generator=torch.Generator().manual_seed(0)) / latent_dim ** 0.5
        self.register_buffer("projection", projection)
        self.weight = nn.Parameter(torch.zeros(()))    # something to optimise and to find the device by
        self.calls = []                                 # (training, grad enabled, z, images) per call

    def forward(self, z):
        x = (0.5 * torch.tanh(z @ self.projection) + 0 * self.weight).view(len(z), 1, 28, 28)
        if z.device.type != "meta":
            self.calls.append((self.training, torch.is_grad_enabled(), z.detach().cpu(), x.detach().cpu()))
        return x


def run_loop_case(train, epochs: int = 2):
    """The notebook's ``train`` for ``epochs`` epochs of two tiny batches with the stand-in generator; returns the
    snapshot frames and the images of the fixed noise the case passed."""
    from unittest import mock

    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(CASE_SEED)
    G = NoiseImages()
    D = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 1), nn.Sigmoid())
    opt_g, opt_d = torch.optim.SGD(G.parameters(), lr=CASE_LR), torch.optim.SGD(D.parameters(), lr=CASE_LR)
    loader = DataLoader(TensorDataset(torch.rand(8, 1, 28, 28) * 2 - 1, torch.zeros(8)), batch_size=4)
    fixed_z = torch.randn(6, LATENT_DIM, generator=torch.Generator().manual_seed(CASE_SEED))
    # no progress bar or live plot of this case in Jupyter, no printed lines elsewhere
    with tempfile.TemporaryDirectory() as tmp, mock.patch("labkit.viz.live.in_notebook", return_value=False), \
            contextlib.redirect_stdout(io.StringIO()):
        try:
            _, _, frames, _ = train(G, D, opt_g, opt_d, nn.BCELoss(), loader, epochs, Path(tmp) / "loop_case.pt",
                                    fixed_z, "cpu")
        except Exception as exc:  # noqa: BLE001 -- the student's loop may fail in any way; say where
            raise CheckFailed(f"train(...) failed on a small case of {epochs} epochs: {type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
    with torch.no_grad():
        expected = NoiseImages()(fixed_z).numpy()
    return frames, expected


def check_history(history, expected_length: int, train=None) -> None:
    """The training log: one epoch mean per epoch for each key; D(x) and D(G(z)) are probabilities. With ``train``,
    also the loop: its snapshots show the fixed noise it was given, the same at every epoch."""
    require_history(history, STEP_KEYS, expected_length, probability_keys=("d_real", "d_fake"))
    require(expected_length < 2 or not np.allclose(history["d_real"], history["d_fake"]),
            "d_real and d_fake are identical: log D(real) and D(fake) separately.")
    checked = ""
    if train is not None:
        frames, expected = run_loop_case(train)
        require(len(frames) == 2, f"train(...) took {len(frames)} snapshots in 2 epochs: one per epoch, of the fixed "
                                  "noise.")
        first, second = (np.asarray(images) for _, images in frames)
        require(first.shape == second.shape and np.allclose(first, second, atol=1e-5),
                "The snapshots of two epochs come from different noise: the fixed noise is redrawn during training. "
                "It is drawn once, before training, so that the grid and the GIF show the generator changing, not "
                "the sampling luck of each epoch.")
        require(first.shape == expected.shape and np.allclose(first, expected, atol=1e-5),
                "The snapshots do not come from the fixed_z that train(...) was given: the frames must show that "
                "batch, the same noise the notebook (and a resumed run) passes in.")
        checked = "; the loop's snapshots use the fixed noise, unchanged across epochs"
    passed(f"training log: {len(STEP_KEYS)} curves of {expected_length} epoch means{checked}")


# --------------------------------------------------------------------------- generate(n)


def _require_sampling_rules(generate) -> None:
    """``generate`` with the stand-in generator, left in training mode: eval mode, no autograd, noise from
    N(0, I) of shape (n, latent_dim), the fixed map (x + 1) / 2."""
    G = NoiseImages().train()
    images = generate(64, G)
    require(G.calls, "generate(n, G) never called the G it was given: use it (the default is G_ema).")
    training, grad_enabled, z, x = G.calls[-1]
    require(not training, "generate ran G in training mode: switch it to eval mode first, so batch norm uses the "
                          "statistics it learned instead of the batch's own (a sample then depends on the others "
                          "drawn with it).")
    require(not grad_enabled, "generate ran G with autograd recording: sampling needs no gradients, and recording "
                              "them keeps every intermediate tensor in memory. Run G under torch.no_grad().")
    require(z.shape == (64, LATENT_DIM), f"generate gave G noise of shape {tuple(z.shape)}: one latent vector of "
                                         f"{LATENT_DIM} numbers per image, (n, {LATENT_DIM}).")
    require(float(z.min()) < 0 and 0.8 < float(z.std()) < 1.2 and abs(float(z.mean())) < 0.1,
            f"generate's noise has mean {float(z.mean()):.2f}, std {float(z.std()):.2f}, minimum {float(z.min()):.2f}: "
            "G was trained on standard normal noise, N(0, I), and maps only that distribution to digits.")
    got = np.asarray(images, dtype=np.float32).reshape(len(x), -1)
    x = x.reshape(len(x), -1).numpy()
    if got.shape == x.shape and np.allclose(got, (x + 1) / 2, atol=1e-5):
        return
    if got.shape == x.shape and np.allclose(got, x.clip(0, 1), atol=1e-5):
        raise CheckFailed("generate clamps G's [-1, 1] output to [0, 1]: every pixel below 0 becomes black, half of "
                          "tanh's range lost. Map the range linearly, -1 to 0 and 1 to 1.")
    raise CheckFailed("generate does not map G's images with the fixed linear map from [-1, 1] to [0, 1] (checked with "
                      "a stand-in generator whose images lie in [-0.5, 0.5]): a map that depends on the batch, such "
                      "as min-max scaling, makes every batch span [0, 1] and changes an image with the others drawn "
                      "beside it.")


def check_generate(generate) -> None:
    """generate(n) -> numpy float32 array (n, 28, 28) in [0, 1], different images; G in eval mode, without
    autograd, on N(0, I) noise, mapped with (x + 1) / 2, every tensor on the generator's device."""
    out = generate(6)
    low, high = require_generated_images(out, "generate(6)", "generate(n)")
    require(generate(1).shape == (1, 28, 28), "generate(1) must return shape (1, 28, 28).")
    _require_sampling_rules(generate)
    slip = device_slip(generate, 6, NoiseImages().to("meta"))
    require(slip is not DeviceSlip.CPU_TENSOR, "generate draws its noise on the CPU whatever the generator's device "
                                               "(torch.randn without device=): on a GPU it crashes. New tensors "
                                               "belong on the model's device (checked on a stand-in device).")
    require(slip is not DeviceSlip.NUMPY_ON_DEVICE, "generate calls .numpy() on a tensor still on the generator's "
                                                    "device: on a GPU that fails. Move the images to the CPU first.")
    passed(f"generate: (6, 28, 28) float32 in [{low:.2f}, {high:.2f}], six different images; eval mode, no "
           "gradients, N(0, I) noise, (x + 1) / 2, device-safe")


# --------------------------------------------------------------------------- quality of the saved generator

# Tiers on 5,000 samples scored by the MNIST metric classifier (never shown to a generator); the FCD ratio
# compares 500 of them with labkit's 1,000 shipped held-out digits, averaged over 5 splits (frechet_ratio).
# Measured (share ratio / confidence / FCD ratio, sample seeds 0 and 1; docs/benchmarks.md): the reference recipe
# (D 64/128/256) after 100 epochs of 14,000 digits (the reference) 0.61-0.65 / 0.917-0.920 / 2.7, after 50 epochs
# 0.55-0.57 / 0.899-0.900 / 3.8-4.0, after 10 epochs 0.40-0.44 / 0.839-0.841 / 8.4; the previous recipe (D 16/32/64) after 50 epochs of 10,000 digits 0.36-0.40 / 0.870
# / 7.4-7.5, after 30 epochs 0.25 / 0.83 / 11.9; the lecture's fully connected GAN at a 15-epoch budget 0.00 (a digit
# never drawn) / 0.85 / far above 15; labkit's 1,000 shipped held-out digits (which the classifier never trained on)
# 0.80 / 0.995 / about 1. "good" is half the reference's training with a margin (the narrow discriminator's best
# does not reach it); "fair" a DCGAN that draws every digit in balance but trained a tenth as long; the fully
# connected baseline fails both.
QUALITY_TIERS = MappingProxyType({
    "good": MappingProxyType({"share_ratio": 0.40, "confidence": 0.87, "fcd_over_floor": 6.0}),
    "fair": MappingProxyType({"share_ratio": 0.20, "confidence": 0.80, "fcd_over_floor": 12.0}),
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


# --------------------------------------------------------------------------- expected values


def expected_values(solution) -> dict:
    """The values :func:`check_train_step` compares with, computed by the solution's own ``train_step``
    (``solution``: the exports of notebooks/solutions/03_dcgan_mnist.ipynb); ``scripts/make_references.py`` stores
    them in ``labkit/data/references/dcgan_mnist.npz``."""
    out, G, D, _ = run_train_step(solution.train_step)
    return {
        **{f"train_step.{key}": value for key, value in out.items()},
        "train_step.D_after": flat_params(D), "train_step.G_after": flat_params(G),
    }
