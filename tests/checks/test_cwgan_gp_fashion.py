"""Notebook 04's checks: the solution passes each one, and each typical wrong answer fails with a message that
names the mistake (the wrong answers are the solution's code with one mistake in it)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.checks import CheckFailed
from labkit.checks import cwgan_gp_fashion as checks
from labkit.instructor.notebook import load_exports
from labkit.models.conv import Norm, down_block
from tests.checks.answers import require_no_answer

from tests.grading.lab_grading import SOLUTIONS

NOTEBOOK = SOLUTIONS / "04_cwgan_gp_fashion.ipynb"


@pytest.fixture(scope="module")
def solution():
    module = load_exports(NOTEBOOK)
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    source = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("def generate"))
    exec(source, module.__dict__)          # generate(n, c, G=None) is not exported: it defaults to G_ema
    torch.manual_seed(0)
    module.G_ema = module.Generator().eval()
    return module


def fails(check, *args, match):
    """``check(*args)`` fails with a message that matches ``match`` and names the mistake without dictating the
    answer's code (issue 25)."""
    with pytest.raises(CheckFailed, match=match) as failure:
        check(*args)
    require_no_answer(str(failure.value), NOTEBOOK)


# --------------------------------------------------------------------------- TODO 1


def test_conditioning_solution_passes(solution):
    checks.check_conditioning(solution.noise_with_labels, solution.images_with_labels)


@pytest.mark.parametrize("wrong, match", [
    (lambda z, y: torch.cat([z, y[:, None].float()], 1), "one number"),
    (lambda z, y: torch.cat([F.one_hot(y, 10).float(), z], 1), "z comes first"),
    (lambda z, y: torch.cat([z, F.one_hot((y + 1) % 10, 10).float()], 1), "one-hot label"),
    (lambda z, y: z, r"\(5, 110\)"),
    (lambda z, y: torch.cat([z, F.one_hot(y).float()], 1), "without num_classes"),
    (lambda z, y: torch.cat([z, F.one_hot(y, 10).float()], 0), "along dim 1"),
])
def test_conditioning_names_noise_mistakes(solution, wrong, match):
    fails(checks.check_conditioning, wrong, solution.images_with_labels, match=match)


def _maps(y, size=28):
    return F.one_hot(y, 10).float()[:, :, None, None].expand(-1, -1, size, size)


def _one_pixel(x, y):
    maps = torch.zeros(len(x), 10, 28, 28)
    maps[:, :, 0, 0] = F.one_hot(y, 10).float()
    return torch.cat([x, maps], 1)


@pytest.mark.parametrize("wrong, match", [
    (lambda x, y: torch.cat([x, y.float()[:, None, None, None].expand(-1, 1, 28, 28)], 1), "one channel holding"),
    (lambda x, y: torch.cat([_maps(y), x], 1), "image is channel 0"),
    (_one_pixel, "not constant"),
    (lambda x, y: torch.cat([x, _maps((y + 1) % 10)], 1), "do not match the labels"),
    (lambda x, y: torch.cat([x, F.one_hot(y).float()[:, :, None, None].expand(-1, -1, 28, 28)], 1),
     "without num_classes"),
    (lambda x, y: torch.cat([x, F.one_hot(y, 10).float()[:, :, None, None]], 1), "expand them over"),
])
def test_conditioning_names_image_mistakes(solution, wrong, match):
    fails(checks.check_conditioning, solution.noise_with_labels, wrong, match=match)


# --------------------------------------------------------------------------- TODO 2


def critic_class(solution, layers):
    """A Critic class like the solution's, with ``layers(c)`` as its network."""
    class Critic(nn.Module):
        def __init__(self, channels=4):
            super().__init__()
            self.net = layers(channels)

        def forward(self, x, labels):
            return self.net(solution.images_with_labels(x, labels))
    return Critic


def test_critic_solution_passes(solution):
    checks.check_critic(solution.Critic)


def _stack(c, first_in=11, norm=Norm.LAYER, tail=()):
    return nn.Sequential(down_block(first_in, c, norm=Norm.NONE), down_block(c, 2 * c, norm=norm, size=7),
                         down_block(2 * c, 4 * c, kernel=3, norm=norm, size=4), nn.Flatten(), nn.Linear(64 * c, 1),
                         *tail)


@pytest.mark.parametrize("layers, match", [
    (lambda c: _stack(c, tail=(nn.Sigmoid(),)), "Sigmoid"),
    (lambda c: _stack(c, norm=Norm.BATCH), "batch norm"),
    (lambda c: _stack(c, first_in=1), "11"),
    (lambda c: _stack(c, tail=(nn.Tanh(),)), "squashing"),
    (lambda c: _stack(c, tail=(nn.ReLU(),)), "never negative"),
])
def test_critic_names_mistakes(solution, layers, match):
    fails(checks.check_critic, critic_class(solution, layers), match=match)


def test_critic_that_ignores_the_label_is_named(solution):
    class Blind(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _stack(4)

        def forward(self, x, labels):
            return self.net(torch.cat([x, torch.zeros(len(x), 10, 28, 28)], 1))
    fails(checks.check_critic, Blind, match="does not change with the label")


# --------------------------------------------------------------------------- TODO 3


def test_losses_solution_passes(solution):
    checks.check_wasserstein_losses(solution.get_WLoss_generator, solution.get_WLoss_discriminator)


@pytest.mark.parametrize("wrong_g, match", [
    (lambda f: f.mean(), "wrong sign"),
    (lambda f: -f.sum(), "sums"),
    (lambda f: -f.mean().item(), "graph"),
    (lambda f: F.binary_cross_entropy_with_logits(f, torch.ones_like(f)), "No log"),
    (lambda f: -f, r"shape \(4, 1\), one value per sample"),
    (lambda f: -f.mean().detach(), "detached"),
])
def test_generator_loss_mistakes_are_named(solution, wrong_g, match):
    fails(checks.check_wasserstein_losses, wrong_g, solution.get_WLoss_discriminator, match=match)


@pytest.mark.parametrize("wrong_d, match", [
    (lambda f, r: r.mean() - f.mean(), "wrong sign"),
    (lambda f, r: f.sum() - r.sum(), "sums"),
    (lambda f, r: f.mean(), "only the fake"),
    (lambda f, r: -r.mean(), "only the real"),
    (lambda f, r: -f.mean(), "expected the mean fake score minus"),   # the generator's loss returned for the critic's
    (lambda f, r: f - r, "one value per sample"),
    (lambda f, r: (f.mean() - r.mean()).abs(), "never negative"),
])
def test_critic_loss_mistakes_are_named(solution, wrong_d, match):
    fails(checks.check_wasserstein_losses, solution.get_WLoss_generator, wrong_d, match=match)


def test_elementwise_difference_is_accepted(solution):
    checks.check_wasserstein_losses(solution.get_WLoss_generator, lambda f, r: (f - r).mean())


# --------------------------------------------------------------------------- TODO 4


def test_interpolates_solution_passes(solution):
    checks.check_interpolates(solution.get_interpolates)


def test_interpolates_with_real_and_fake_swapped_pass():
    def swapped(real, fake):
        eps = torch.rand(len(real), 1, 1, 1)
        return eps * fake + (1 - eps) * real
    checks.check_interpolates(swapped)


@pytest.mark.parametrize("wrong, match", [
    (lambda r, f: (e := torch.rand_like(r)) * r + (1 - e) * f, "pixel to pixel"),
    (lambda r, f: (e := torch.rand(1)) * r + (1 - e) * f, "same eps"),
    (lambda r, f: 0.5 * r + 0.5 * f, "same eps"),
    (lambda r, f: (e := torch.randn(len(r), 1, 1, 1)) * r + (1 - e) * f, "torch.randn"),
    (lambda r, f: (e := torch.rand(len(r), 1, 1, 1)) * r + e * f, "not the formula's"),
    (lambda r, f: (e := torch.rand(len(r), 1)) * r.flatten(1) + (1 - e) * f.flatten(1), r"\(B, 1, 1, 1\)"),
    (lambda r, f: (e := torch.rand(len(r))) * r + (1 - e) * f, r"broadcast over each image"),
    (lambda r, f: r * 1.0, "the real images themselves"),
    (lambda r, f: f * 1.0, "the fake images themselves"),
    (lambda r, f: (e := 0.5 * torch.rand(len(r), 1, 1, 1)) * r + (1 - e) * f, r"not scaled"),
    (lambda r, f: (e := torch.rand(len(r), 1, 1, 1) ** 2) * r + (1 - e) * f, r"mean 0\.3"),
])
def test_interpolate_mistakes_are_named(wrong, match):
    fails(checks.check_interpolates, wrong, match=match)


def test_same_eps_at_every_call_is_named():
    gen_seed = [0]

    def frozen(real, fake):
        eps = torch.rand(len(real), 1, 1, 1, generator=torch.Generator().manual_seed(gen_seed[0]))
        return eps * real + (1 - eps) * fake
    fails(checks.check_interpolates, frozen, match="new random eps")


# --------------------------------------------------------------------------- TODO 5


def test_gradient_penalty_solution_passes(solution):
    checks.check_gradient_penalty(solution.get_gradient_regularisation)


@pytest.mark.parametrize("wrong, match", [
    (lambda g, lambda_gp=10.0: lambda_gp * (g.flatten(1).norm(2, dim=1).mean() - 1) ** 2, "mean of the norms"),
    (lambda g, lambda_gp=10.0: lambda_gp * (g.norm() - 1) ** 2, "must be 0"),
    (lambda g, lambda_gp=10.0: lambda_gp * ((g.flatten(1).pow(2).sum(1) - 1) ** 2).mean(), "squared norm"),
    (lambda g, lambda_gp=10.0: ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean(), "missing its weight"),
    (lambda g, lambda_gp=10.0: 10.0 * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean(), "ignores its lambda_gp"),
    (lambda g, lambda_gp=10.0: lambda_gp * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).sum(), "sums over samples"),
    (lambda g, lambda_gp=10.0: lambda_gp * (g.flatten(1).norm(2, dim=1) - 1).abs().mean(), r"\|norm - 1\|"),
    (lambda g, lambda_gp=10.0: lambda_gp * ((g.norm(2, dim=1) - 1) ** 2).mean(), "must be 0|per pixel"),
    (lambda g, lambda_gp=10.0: lambda_gp * ((g.norm(2, dim=-1) - 1) ** 2).mean(), "must be 0|image row"),
    (lambda g, lambda_gp=10.0: (lambda_gp * ((g.flatten(1).norm(2, dim=1) - 1) ** 2).mean()).item(), "graph"),
    (lambda g, lambda_gp=10.0: lambda_gp * (F.relu(g.flatten(1).norm(2, dim=1) - 1) ** 2).mean(), "one-sided"),
    (lambda g, lambda_gp=10.0: lambda_gp * (g.flatten(1).norm(2, dim=1) - 1).mean(), "does not square"),
    (lambda g, lambda_gp=10.0: ((lambda_gp * (g.flatten(1).norm(2, dim=1) - 1)) ** 2).mean(), "inside the square"),
    (lambda g, lambda_gp=10.0: lambda_gp * (g.flatten(1).norm(2, dim=1) - 1) ** 2, "one value per sample"),
])
def test_gradient_penalty_mistakes_are_named(wrong, match):
    fails(checks.check_gradient_penalty, wrong, match=match)


# --------------------------------------------------------------------------- TODO 6


def test_steps_solution_passes(solution):
    checks.check_critic_step(solution.critic_step)
    checks.check_generator_step(solution.generator_step)


def critic_step_variant(solution, *, detach=True, zero_grad=True, sign=1.0, penalty_at="mix", use_lambda=True,
                        penalty=True, log_sign=1.0, zero_late=False, gp_sign=1.0, log="w"):
    s = solution

    def critic_step(G, C, opt_c, real, labels, z, lambda_gp=10.0):
        if zero_grad:
            opt_c.zero_grad()
        fake = G(z, labels)
        if detach:
            fake = fake.detach()
        loss_w = sign * s.get_WLoss_discriminator(C(fake, labels), C(real, labels))
        points = {"mix": lambda: s.get_interpolates(real, fake), "real": lambda: real, "fake": lambda: fake}[penalty_at]()
        gp = s.get_gradient_regularisation(s.get_grad_function(C, points, labels), lambda_gp if use_lambda else 10.0)
        loss = loss_w + gp_sign * gp if penalty else loss_w
        loss.backward()
        if zero_late:
            opt_c.zero_grad()
        opt_c.step()
        logged = {"w": log_sign * -loss_w.item(), "loss_c": loss.item()}[log]
        return {"loss_c": loss.item(), "wasserstein": logged, "gp": gp.item()}
    return critic_step


@pytest.mark.parametrize("kwargs, match", [
    (dict(detach=False), "generator received gradients"),
    (dict(zero_grad=False), "zero_grad"),
    (dict(sign=-1.0), "wrong sign"),
    (dict(log_sign=-1.0), "wrong sign"),
    (dict(penalty_at="real"), "at the real images"),
    (dict(penalty_at="fake"), "at the fake images"),
    (dict(use_lambda=False), "ignores its lambda_gp"),
    (dict(penalty=False), "Wasserstein loss alone"),
    (dict(sign=-1.0), "get_WLoss_discriminator takes the fake scores first"),
    (dict(sign=-1.0, log_sign=-1.0), "get_WLoss_discriminator takes the fake scores first"),
    (dict(zero_late=True), r"opt_c.zero_grad\(\) comes after loss_c.backward\(\)"),
    (dict(gp_sign=-1.0), "subtracts the penalty"),
    (dict(log="loss_c"), "penalty included"),
])
def test_critic_step_mistakes_are_named(solution, kwargs, match):
    fails(checks.check_critic_step, critic_step_variant(solution, **kwargs), match=match)


def test_critic_step_with_swapped_interpolation_passes(solution):
    s = solution

    def critic_step(G, C, opt_c, real, labels, z, lambda_gp=10.0):
        opt_c.zero_grad()
        fake = G(z, labels).detach()
        loss_w = s.get_WLoss_discriminator(C(fake, labels), C(real, labels))
        gp = s.get_gradient_regularisation(s.get_grad_function(C, s.get_interpolates(fake, real), labels), lambda_gp)
        (loss_w + gp).backward()
        opt_c.step()
        return {"loss_c": (loss_w + gp).item(), "wasserstein": -loss_w.item(), "gp": gp.item()}
    checks.check_critic_step(critic_step)


def generator_step_variant(solution, *, detach=False, zero_grad=True, sign=1.0, zero_late=False, no_grad=False):
    s = solution

    def generator_step(G, C, opt_g, labels, z):
        if zero_grad:
            opt_g.zero_grad()
        with torch.set_grad_enabled(not no_grad):
            fake = G(z, labels)
        if detach:
            fake = fake.detach().requires_grad_(True)
        loss = sign * s.get_WLoss_generator(C(fake, labels) if not no_grad else C(fake, labels).detach())
        loss.backward()
        if zero_late:
            opt_g.zero_grad()
        opt_g.step()
        return {"loss_g": loss.item()}
    return generator_step


@pytest.mark.parametrize("kwargs, match", [
    (dict(detach=True), "did not change"),
    (dict(zero_grad=False), "zero_grad"),
    (dict(sign=-1.0), "wrong sign"),
    (dict(zero_late=True), r"opt_g.zero_grad\(\) comes after loss_g.backward\(\)"),
    (dict(no_grad=True), "no graph"),
])
def test_generator_step_mistakes_are_named(solution, kwargs, match):
    fails(checks.check_generator_step, generator_step_variant(solution, **kwargs), match=match)


# --------------------------------------------------------------------------- the full run's settings (issue 25)


@pytest.mark.parametrize("choices", [
    dict(lr_g=1e-4, lr_c=1e-4, beta1=0.0, n_critic=5),                # the WGAN-GP paper's
    dict(lr_g=1e-4, lr_c=4e-4, beta1=0.5, n_critic=1),                # TTUR instead of critic steps
    dict(lr_g=1e-5, lr_c=2e-3, beta1=0.9, n_critic=10),               # the ends of the ranges
    dict(lr_g=2e-3, lr_c=1e-5, beta1=0.0, n_critic=1),
    dict(lr_g=np.float32(3e-4), lr_c=np.float64(3e-4), beta1=0.5, n_critic=np.int64(3)),
    dict(lr_g=3e-4, lr_c=3e-4, beta1=0.5, n_critic=4.0),
])
def test_choices_inside_the_ranges_pass(choices, capsys):
    checks.check_choices(**choices)
    assert "inside the allowed ranges" in capsys.readouterr().out


GOOD = dict(lr_g=1e-4, lr_c=1e-4, beta1=0.5, n_critic=5)


@pytest.mark.parametrize("change, message", [
    (dict(lr_g=0.02), "lr_g = 0.02 is above the allowed range"),
    (dict(lr_c=0), "lr_c = 0 is below the allowed range"),
    (dict(beta1=0.99), "beta1 = 0.99 is above"),
    (dict(beta1=-0.1), "beta1 = -0.1 is below"),
    (dict(lr_c="1e-4"), "is a str, not a number"),
    (dict(beta1=(0.5, 0.9)), "is a tuple, not a number"),              # the betas pair, not beta1
    (dict(lr_g=float("nan")), "not a finite number"),
    (dict(beta1=False), "is a bool"),
    (dict(n_critic=True), "is a bool"),
    (dict(lr_g=...), "lr_g is not set"),
    (dict(n_critic=None), "n_critic is not set"),
    (dict(n_critic=2.5), "n_critic = 2.5 must be a whole number"),
    (dict(n_critic=0), "n_critic = 0 is below the allowed range"),
    (dict(n_critic=11), "n_critic = 11 is above the allowed range"),
    (dict(lr_d=1e-4), "unknown choice"),                                # lab 02's and 03's name
    (dict(lambda_gp=10.0), "unknown choice"),                           # not a choice here
])
def test_choices_outside_the_ranges_are_refused_with_the_rule(change, message):
    fails(lambda: checks.check_choices(**{**GOOD, **change}), match=message)


def test_a_choice_left_out_is_named():
    fails(lambda: checks.check_choices(**{k: v for k, v in GOOD.items() if k != "n_critic"}),
          match="n_critic is not set")


def test_the_solution_choices_and_no_recommended_value_in_the_student_text():
    """The solution's choices pass their own check; the student release sets none of them and its text names no
    value for them (the handout gives the ranges, the ideas and the sweep, not the reference's numbers)."""
    import re

    import nbformat

    solution = load_exports(NOTEBOOK, tags=("export", "choices"), name="cwgan_choices_for_tests")
    checks.check_choices(lr_g=solution.LR_G, lr_c=solution.LR_C, beta1=solution.BETA1, n_critic=solution.N_CRITIC)
    student = nbformat.read(NOTEBOOK.parent.parent / "04_cwgan_gp_fashion.ipynb", as_version=4)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    for name in ("LR_G", "LR_C", "BETA1", "N_CRITIC"):
        assert not re.search(rf"^\s*(\w+\s*,\s*)*{name}\b[^=\n]*=(?!=)", code, re.M), f"the student release sets {name}"
    for value in ("2e-4", "2\\cdot10^{-4}", "0.0002", "(0.5, 0.9)", "trains faster here", "N_CRITIC = 5",
                  "N_CRITIC=5"):
        assert value not in text, value
    assert "(0.5, 0.9)" not in code and "2e-4" not in code
    assert not re.search(r"def (make_optimizers|train)\([^)]*(lr_\w+|betas|n_critic)\s*=", code), \
        "a default hands a value"


def test_the_student_release_loads_without_the_choices_and_stops_at_them():
    """Issue 25: the exported cells of the release load without the choices cell (nothing exported reads a choice
    at import time), and the choices cell itself is a TODO that raises."""
    import nbformat

    release = NOTEBOOK.parent.parent / "04_cwgan_gp_fashion.ipynb"
    student = load_exports(release, name="cwgan_release_for_tests")
    assert not hasattr(student, "N_CRITIC") and callable(student.train) and callable(student.training_step)
    cell = next(c for c in nbformat.read(release, as_version=4).cells if "choices" in c.metadata.get("tags", []))
    with pytest.raises(NotImplementedError):
        exec(cell.source, {})


def test_the_training_step_steps_the_generator_every_n_critic_th_batch(solution):
    """train's step: a critic step on every batch, a generator step after every n_critic-th, the same calls as
    before the choice was the student's (the reference run's loop is unchanged)."""
    G, C, opt_g, opt_c, real, labels, _ = checks.fixed_case()
    logged = [solution.training_step(G, C, opt_g, opt_c, real, labels, step, 3) for step in range(6)]
    assert ["loss_g" in log for log in logged] == [False, False, True, False, False, True]
    assert all({"loss_c", "wasserstein", "gp"} <= set(log) for log in logged)


# --------------------------------------------------------------------------- history, generate


def _history(n=3, **changes):
    h = {"loss_c": [-1.0, -0.5, -0.2][:n], "wasserstein": [2.0, 1.0, 0.5][:n], "gp": [0.3, 0.1, 0.05][:n],
         "loss_g": [0.5, 0.2, 0.1][:n], "fcd": [30.0, 10.0, 5.0][:n]}
    h.update(changes)
    return h


def test_history_check():
    checks.check_history(_history(), expected_length=3)
    fails(checks.check_history, _history(fcd=[1.0]), 3, match="one per epoch")
    fails(checks.check_history, _history(gp=[0.1, -0.2, 0.1]), 3, match="negative")
    fails(checks.check_history, _history(wasserstein=[-2.0, -1.0, -0.5]), 3, match="negative at every epoch")
    h = _history()
    del h["wasserstein"]
    fails(checks.check_history, h, 3, match="wasserstein")


def test_generate_solution_passes(solution):
    checks.check_generate(solution.generate)
    checks.check_generate(_generate_variant(solution, to_unit=lambda x: x * 0.5 + 0.5))


def _generate_variant(solution, *, offset=0, names=True, clamp=True, squeeze=True, dtype=np.float32, to_unit=None,
                      eval_mode=True):
    from labkit.models.classifier import class_index

    def generate(n, c, G=None):
        G = solution.G_ema if G is None else G
        c = class_index("fashion_mnist", c) if names else int(c)
        if eval_mode:
            G.eval()
        with torch.no_grad():
            x = G(torch.randn(n, 100), torch.full((n,), (c + offset) % 10, dtype=torch.long))
        x = to_unit(x) if to_unit is not None else (x + 1) / 2 if clamp else x
        x = x[:, 0] if squeeze else x
        return x.numpy().astype(dtype)
    return generate


@pytest.mark.parametrize("kwargs, match", [
    (dict(offset=1), "class 0"),
    (dict(clamp=False), r"map the generator's tanh range"),
    (dict(squeeze=False), r"drop the channel axis"),
    (dict(dtype=np.float64), "float32"),
    (dict(eval_mode=False), r"G.eval\(\)"),
    (dict(to_unit=lambda x: x.clamp(0, 1)), "clamps"),
    (dict(to_unit=lambda x: (x - x.min()) / (x.max() - x.min())), "min-max"),
])
def test_generate_mistakes_are_named(solution, kwargs, match):
    fails(checks.check_generate, _generate_variant(solution, **kwargs), match=match)


def test_generate_without_class_names_or_bad_class_errors_is_named(solution):
    def no_validation(n, c, G=None):
        G = solution.G_ema if G is None else G
        labels = torch.full((n,), 7 if c == "sneaker" else c, dtype=torch.long)
        G.eval()
        with torch.no_grad():
            return ((G(torch.randn(n, 100), labels % 10)[:, 0] + 1) / 2).numpy().astype(np.float32)
    fails(checks.check_generate, no_validation, match="did not raise an error")


def test_class_templates_draw_the_asked_class():
    from labkit.metrics import classifier_outputs

    templates = checks.ClassTemplates()
    labels = torch.arange(10).repeat(3)
    images = ((templates(torch.randn(30, 100), labels)[:, 0] + 1) / 2).detach().numpy()
    assert (classifier_outputs(images, "fashion_mnist")[0].argmax(axis=1) == labels.numpy()).all()


def test_quality_tiers_are_ordered():
    good, fair = checks.QUALITY_TIERS["good"], checks.QUALITY_TIERS["fair"]
    assert good["accuracy"] > fair["accuracy"] and good["weakest_class"] > fair["weakest_class"]
    assert good["fcd_over_floor"] < fair["fcd_over_floor"]
    with pytest.raises(ValueError, match="Unknown tier"):
        checks.check_quality("x.pt", tier="excellent")


def test_quality_of_a_missing_file_says_to_save(tmp_path):
    fails(checks.check_quality, tmp_path / "cwgan_final.pt", "fair", match="saveModel")


def test_quality_of_an_untrained_generator_names_the_class_accuracy(solution, tmp_path):
    from labkit import saveModel

    torch.manual_seed(0)
    path = tmp_path / "cwgan_final.pt"
    saveModel(solution.Generator(), path, dataset="fashion_mnist")
    fails(checks.check_quality, path, "fair", 1000, match="not of the class asked for")


# --------------------------------------------------------------------------- issue 24: the wrong answers students gave


def test_a_penalty_without_a_graph_to_the_critic_is_named(solution):
    """create_graph=False in the given get_grad_function, or a detached penalty: the value is right, the update not."""
    s = solution

    def no_double_backward(critic, interpolates, labels):
        interpolates = interpolates.detach().requires_grad_(True)
        gradient, = torch.autograd.grad(critic(interpolates, labels).sum(), interpolates, create_graph=False)
        return gradient

    def critic_step(G, C, opt_c, real, labels, z, lambda_gp=10.0, grad_function=no_double_backward, detach=False):
        opt_c.zero_grad()
        with torch.no_grad():
            fake = G(z, labels)
        loss_w = s.get_WLoss_discriminator(C(fake, labels), C(real, labels))
        gp = s.get_gradient_regularisation(grad_function(C, s.get_interpolates(real, fake), labels), lambda_gp)
        loss_c = loss_w + (gp.detach() if detach else gp)
        loss_c.backward()
        opt_c.step()
        return {"loss_c": loss_c.item(), "wasserstein": -loss_w.item(), "gp": gp.item()}

    fails(checks.check_critic_step, critic_step, match="create_graph=False")
    fails(checks.check_critic_step, lambda *a: critic_step(*a, grad_function=s.get_grad_function, detach=True),
          match="penalty was detached")


def test_layer_norm_without_its_size_is_named(solution):
    def layers(c):
        return nn.Sequential(down_block(11, c, norm=Norm.NONE), down_block(c, 2 * c, norm=Norm.LAYER),
                             down_block(2 * c, 4 * c, kernel=3, norm=Norm.LAYER, size=4), nn.Flatten(),
                             nn.Linear(64 * c, 1))
    fails(checks.check_critic, critic_class(solution, layers), match="needs size=")


def _generate_with(solution, to_number):
    """generate with its own class lookup ``to_number(c)`` instead of class_index."""
    def generate(n, c, G=None):
        G = solution.G_ema if G is None else G
        c = to_number(c)
        G.eval()
        with torch.no_grad():
            x = G(torch.randn(n, 100), torch.full((n,), c, dtype=torch.long))
        return ((x[:, 0] + 1) / 2).numpy().astype(np.float32)
    return generate


def test_generate_without_class_index_is_named(solution):
    fails(checks.check_generate, _generate_with(solution, lambda c: c), match="turned into its number first")


def test_generate_with_a_case_sensitive_lookup_is_named(solution):
    from labkit.models.classifier import CLASS_NAMES

    names = CLASS_NAMES["fashion_mnist"]
    fails(checks.check_generate, _generate_with(solution, lambda c: names.index(c) if isinstance(c, str) else c),
          match="case-sensitive")


# ------------------------------------------------------------- issue 24: more wrong answers, and more valid forms


def test_generate_without_no_grad_is_named(solution):
    def generate(n, c, G=None):
        from labkit.models.classifier import class_index

        G = solution.G_ema if G is None else G
        G.eval()
        x = G(torch.randn(n, 100), torch.full((n,), class_index("fashion_mnist", c), dtype=torch.long))
        return ((x[:, 0] + 1) / 2).numpy().astype(np.float32)
    fails(checks.check_generate, generate, match="torch.no_grad")


def test_generate_with_float_labels_is_named(solution):
    def generate(n, c, G=None):
        from labkit.models.classifier import class_index

        G = solution.G_ema if G is None else G
        G.eval()
        with torch.no_grad():
            x = G(torch.randn(n, 100), torch.full((n,), float(class_index("fashion_mnist", c))))
        return ((x[:, 0] + 1) / 2).numpy().astype(np.float32)
    fails(checks.check_generate, generate, match="dtype torch.long")


def test_generate_ignoring_its_g_argument_is_named(solution):
    def generate(n, c, G=None):
        from labkit.models.classifier import class_index

        model = solution.G_ema                       # the global model, whatever G says
        model.eval()
        with torch.no_grad():
            x = model(torch.randn(n, 100), torch.full((n,), class_index("fashion_mnist", c), dtype=torch.long))
        return ((x[:, 0] + 1) / 2).numpy().astype(np.float32)
    fails(checks.check_generate, generate, match="did not call the generator it was given")


def test_label_vectors_of_another_float_type_are_named(solution):
    fails(checks.check_conditioning, lambda z, y: torch.cat([z, F.one_hot(y, 10).double()], dim=1),
          solution.images_with_labels, match="float64 for float32 noise")
    fails(checks.check_conditioning, solution.noise_with_labels,
          lambda x, y: torch.cat([x, F.one_hot(y, 10).double()[:, :, None, None].expand(-1, -1, 28, 28)], dim=1),
          match="float64 for float32 images")


def _own_noise(step):
    """``step`` with the z it is given replaced by new noise."""
    def wrapped(*args):
        args = list(args)
        z_at = 5 if len(args) >= 7 else 4                  # critic_step(G, C, opt, real, labels, z, ...) / generator_step
        args[z_at] = torch.randn_like(args[z_at])
        return step(*args)
    return wrapped


def test_steps_that_draw_their_own_noise_are_named(solution):
    fails(checks.check_critic_step, _own_noise(solution.critic_step), match="from the z and labels given")
    fails(checks.check_generator_step, _own_noise(solution.generator_step), match="z and labels given")


def test_a_critic_step_returning_tensors_is_named(solution):
    def tensors(*args):
        out = critic_step_variant(solution)(*args)
        return {**out, "loss_c": torch.tensor(out["loss_c"], requires_grad=True)}
    fails(checks.check_critic_step, tensors, match="attached to the graph")


def test_critic_valid_forms_pass(solution):
    for layers in (lambda c: _stack(c, norm=Norm.NONE),                                  # no normalisation at all
                   lambda c: nn.Sequential(down_block(11, c, norm=Norm.NONE), down_block(c, 2 * c, norm=Norm.NONE),
                                           nn.InstanceNorm2d(2 * c, affine=True),        # per sample, as layer norm
                                           down_block(2 * c, 4 * c, kernel=3, norm=Norm.NONE), nn.Flatten(),
                                           nn.Linear(64 * c, 1)),
                   lambda c: nn.Sequential(down_block(11, c, norm=Norm.NONE), down_block(c, 2 * c, norm=Norm.NONE),
                                           down_block(2 * c, 4 * c, kernel=3, norm=Norm.NONE), nn.Flatten(),
                                           nn.Dropout(0.0), nn.Linear(64 * c, 1))):
        checks.check_critic(critic_class(solution, layers))


@pytest.mark.parametrize("kwargs, match", [
    (dict(to_unit=lambda x: torch.sigmoid(x)), r"\(x \+ 1\) / 2"),          # a squashing map instead of the fixed one
    (dict(to_unit=lambda x: (x + 1) / 2, dtype=None), "numpy array"),       # a tensor returned
])
def test_more_generate_mistakes_are_named(solution, kwargs, match):
    if kwargs.get("dtype", np.float32) is None:
        generate = _generate_variant(solution, to_unit=kwargs["to_unit"])
        fails(checks.check_generate, lambda n, c, G=None: torch.from_numpy(generate(n, c, G)), match=match)
    else:
        fails(checks.check_generate, _generate_variant(solution, **kwargs), match=match)
