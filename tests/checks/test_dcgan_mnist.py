"""Notebook 03's checks: the solution passes, and each typical wrong answer fails with a message naming it."""
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit.checks import CheckFailed
from labkit.checks import dcgan_mnist as checks
from labkit.instructor.notebook import load_exports
from tests.checks.answers import require_no_answer

SOLUTION = Path(__file__).resolve().parents[2] / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb"


@pytest.fixture(scope="module")
def solution():
    torch.set_num_threads(1)
    return load_exports(SOLUTION, name="dcgan_solution_for_tests")


def fails(check, *args, match: str):
    """``check(*args)`` fails with a message that matches ``match`` and names the mistake without dictating the
    answer's code (issue 25)."""
    with pytest.raises(CheckFailed, match=match) as failure:
        check(*args)
    require_no_answer(str(failure.value), SOLUTION)


# --------------------------------------------------------------------------- architectures


def test_solution_architectures_pass(solution):
    checks.check_generator(solution.Generator)
    checks.check_discriminator(solution.Discriminator)


def _generator(layers, latent_dim=100):
    class G(nn.Module):
        def __init__(self, latent_dim=100):
            super().__init__()
            self.latent_dim = latent_dim
            self.net = layers()

        def forward(self, z):
            return self.net(z.view(len(z), -1, 1, 1))

    return G


def _good_g_layers(last=nn.Tanh, third=(4, 2, 1), act=nn.ReLU, output_norm=False):
    return lambda: nn.Sequential(
        nn.ConvTranspose2d(100, 16, 7, 1, 0), nn.BatchNorm2d(16), act(),
        nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.BatchNorm2d(8), act(),
        nn.ConvTranspose2d(8, 1, *third), *([nn.BatchNorm2d(1)] if output_norm else []), last())


def test_generator_mistakes_are_named():
    fails(checks.check_generator, _generator(_good_g_layers(last=nn.Identity)), match="leave \\[-1, 1\\].*Tanh")
    fails(checks.check_generator, _generator(_good_g_layers(last=nn.Sigmoid)), match="never negative.*tanh")
    fails(checks.check_generator, _generator(_good_g_layers(third=(3, 2, 1))), match="27×27.*stride")
    one_layer = _generator(lambda: nn.Sequential(nn.ConvTranspose2d(100, 1, 28, 1, 0), nn.BatchNorm2d(1), nn.Tanh()))
    fails(checks.check_generator, one_layer, match="1 ConvTranspose2d.*2-3")
    no_bn = _generator(lambda: nn.Sequential(nn.ConvTranspose2d(100, 16, 7), nn.ReLU(), nn.ConvTranspose2d(16, 8, 4, 2, 1),
                                             nn.ReLU(), nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh()))
    fails(checks.check_generator, no_bn, match="no BatchNorm2d")

    class Todo(nn.Module):
        def __init__(self, latent_dim=100):
            raise NotImplementedError

    fails(checks.check_generator, Todo, match="NotImplementedError")


@pytest.mark.parametrize("layers, message", [
    (_good_g_layers(output_norm=True), "output layer is followed by batch norm.*leaves batch norm out"),
    (_good_g_layers(act=nn.Identity), "no ReLU between its layers: without a non-linearity"),
    (_good_g_layers(act=lambda: nn.LeakyReLU(0.2)), "no ReLU.*uses LeakyReLU.*ReLU in G, LeakyReLU in D"),
    (lambda: nn.Sequential(nn.ConvTranspose2d(100, 16, 7), nn.BatchNorm2d(16), nn.ReLU(),
                           nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.BatchNorm2d(8),
                           nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh()), "Layer 2 of the generator.*not followed by a ReLU"),
    (lambda: nn.Sequential(nn.ConvTranspose2d(100, 16, 7), nn.BatchNorm2d(16), nn.ReLU(),
                           nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.ReLU(),
                           nn.ConvTranspose2d(8, 1, 4, 2, 1), nn.Tanh()), "Layer 2 of the generator.*no BatchNorm2d"),
])
def test_generator_rule_breaks_are_named(layers, message):
    fails(checks.check_generator, _generator(layers), match=message)


def test_generator_valid_forms_pass():
    upsample = lambda: nn.Sequential(  # noqa: E731 -- Upsample + Conv2d pairs instead of transposed convolutions
        nn.ConvTranspose2d(100, 16, 7), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(16, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.Upsample(scale_factor=2), nn.Conv2d(8, 1, 3, 1, 1), nn.Tanh())
    checks.check_generator(_generator(upsample))
    checks.check_generator(_generator(_good_g_layers(act=lambda: nn.ReLU(True))))

    class Functional(nn.Module):  # activations written as functions in forward, not modules
        def __init__(self, latent_dim=100):
            super().__init__()
            self.latent_dim = latent_dim
            self.up1, self.bn1 = nn.ConvTranspose2d(100, 16, 7), nn.BatchNorm2d(16)
            self.up2, self.bn2 = nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.BatchNorm2d(8)
            self.up3 = nn.ConvTranspose2d(8, 1, 4, 2, 1)

        def forward(self, z):
            x = torch.relu(self.bn1(self.up1(z[:, :, None, None])))
            x = torch.nn.functional.relu(self.bn2(self.up2(x)))
            return torch.tanh(self.up3(x))

    checks.check_generator(Functional)


def _discriminator(layers):
    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = layers()

        def forward(self, x):
            return self.net(x)

    return D


def _d_layers(pool=False, sigmoid=True, linears=1, in_features=64 * 16, input_norm=False, image_norm=False,
              act=lambda: nn.LeakyReLU(0.2), norm=True, flatten=True, last=None):
    def build():
        down = [nn.MaxPool2d(2)] if pool else []
        stride = 1 if pool else 2
        bn = (lambda c: [nn.BatchNorm2d(c)]) if norm else (lambda c: [])
        layers = [*([nn.BatchNorm2d(1)] if image_norm else []),
                  nn.Conv2d(1, 16, 4, stride, 1 if not pool else 2), *down, *([nn.BatchNorm2d(16)] if input_norm else []),
                  act(), nn.Conv2d(16, 32, 4, 2, 1), *bn(32), act(), nn.Conv2d(32, 64, 3, 2, 1), *bn(64), act(),
                  *([nn.Flatten()] if flatten else [])]
        layers += [nn.Linear(in_features, 16), nn.LeakyReLU(0.2)] * (linears - 1) if linears > 1 else []
        layers += [nn.Linear(16 if linears > 1 else in_features, 1)]
        layers += [last()] if last else [nn.Sigmoid()] if sigmoid else []
        return nn.Sequential(*layers)
    return build


def test_discriminator_mistakes_are_named():
    checks.check_discriminator(_discriminator(_d_layers()))
    fails(checks.check_discriminator, _discriminator(_d_layers(pool=True)), match="pools.*strided")
    fails(checks.check_discriminator, _discriminator(_d_layers(linears=2)), match="2 Linear layers")
    fails(checks.check_discriminator, _discriminator(_d_layers(in_features=64 * 49)), match="in_features")


@pytest.mark.parametrize("options, message", [
    (dict(input_norm=True), "Batch norm on the discriminator's input layer: DCGAN leaves it out"),
    (dict(image_norm=True), "Batch norm on the discriminator's input layer"),
    (dict(last=lambda: nn.Softmax(dim=1)), "ends in a softmax: over one output per image a softmax is always 1"),
    (dict(flatten=False), "Linear layer got images, not vectors.*flattened"),
    (dict(flatten=False, in_features=4), "Linear layer got the feature maps unflattened"),
    (dict(act=nn.ReLU), "followed by ReLU: DCGAN puts LeakyReLU\\(0.2\\) after every hidden layer"),
    (dict(norm=False), "no BatchNorm2d: DCGAN puts batch norm in both networks"),
    (dict(last=nn.Tanh), "D ends in Tanh: its output must be a probability"),
])
def test_discriminator_rule_breaks_are_named(options, message):
    fails(checks.check_discriminator, _discriminator(_d_layers(**options)), match=message)


def test_discriminator_without_sigmoid_passes_as_logits(capsys):
    checks.check_discriminator(_discriminator(_d_layers(sigmoid=False)))
    assert "logits" in capsys.readouterr().out
    assert checks.discriminator_scores(_discriminator(_d_layers(sigmoid=False))) is checks.Scores.LOGITS
    assert checks.discriminator_scores(_discriminator(_d_layers())) is checks.Scores.PROBABILITIES


# --------------------------------------------------------------------------- loss and optimisers


SIGMOID_D, LOGITS_D = _discriminator(_d_layers()), _discriminator(_d_layers(sigmoid=False))


def test_criterion_goes_with_the_discriminator(solution):
    checks.check_criterion(nn.BCELoss(), solution.Discriminator)
    checks.check_criterion(nn.BCELoss(), SIGMOID_D)
    checks.check_criterion(nn.BCEWithLogitsLoss(), LOGITS_D)  # the path the loss section recommends
    fails(checks.check_criterion, nn.BCEWithLogitsLoss(), SIGMOID_D, match="already ends in a sigmoid.*second time")
    fails(checks.check_criterion, nn.BCELoss(), LOGITS_D, match="outputs logits.*expects probabilities")


@pytest.mark.parametrize("criterion, message", [
    (nn.MSELoss(), "least-squares"),
    (nn.BCELoss(reduction="sum"), "summed over the batch"),
    (nn.BCELoss(reduction="none"), "one loss per sample"),
    (nn.L1Loss(), "expected the binary cross-entropy"),
])
def test_criterion_mistakes_are_named(criterion, message):
    fails(checks.check_criterion, criterion, SIGMOID_D, match=message)


def test_optimizer_mistakes_are_named(solution):
    G, D = solution.Generator, solution.Discriminator
    checks.check_optimizers(solution.make_optimizers, G, D)
    adam = torch.optim.Adam

    def swapped(G, D, lr_g, lr_d, betas):
        return adam(D.parameters(), lr=lr_g, betas=betas), adam(G.parameters(), lr=lr_d, betas=betas)

    def both(G, D, lr_g, lr_d, betas):
        params = list(G.parameters()) + list(D.parameters())
        return adam(params, lr=lr_g, betas=betas), adam(params, lr=lr_d, betas=betas)

    def fixed_lr(G, D, lr_g, lr_d, betas):
        return adam(G.parameters(), lr=2e-4, betas=betas), adam(D.parameters(), lr=2e-4, betas=betas)

    def default_betas(G, D, lr_g, lr_d, betas):
        return adam(G.parameters(), lr=lr_g), adam(D.parameters(), lr=lr_d)

    def swapped_lr(G, D, lr_g, lr_d, betas):
        return adam(G.parameters(), lr=lr_d, betas=betas), adam(D.parameters(), lr=lr_g, betas=betas)

    def fixed_betas(G, D, lr_g, lr_d, betas):   # the paper's numbers written in: the choice is no longer the caller's
        return adam(G.parameters(), lr=lr_g, betas=(0.5, 0.999)), adam(D.parameters(), lr=lr_d, betas=(0.5, 0.999))

    def sgd(G, D, lr_g, lr_d, betas):
        return torch.optim.SGD(G.parameters(), lr=lr_g), torch.optim.SGD(D.parameters(), lr=lr_d)

    checks.check_optimizers(lambda *args, **kwargs: list(solution.make_optimizers(*args, **kwargs)), G, D)  # a list unpacks too
    def one_lr(G, D, lr_g, lr_d, betas):
        return adam(G.parameters(), lr=lr_g, betas=betas), adam(D.parameters(), lr=lr_g, betas=betas)

    fails(checks.check_optimizers, one_lr, G, D, match="use the arguments")
    for wrong, message in ((swapped, "optimisers are swapped"), (both, "exactly G's parameters"),
                           (fixed_lr, "use the arguments"), (default_betas, "the betas argument"),
                           (fixed_betas, "the betas argument"),
                           (swapped_lr, "learning rates are swapped"), (sgd, "uses Adam")):
        fails(checks.check_optimizers, wrong, G, D, match=message)


@pytest.mark.parametrize("choices", [
    dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5),          # the paper's
    dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0),          # TTUR without momentum
    dict(lr_g=1e-5, lr_d=2e-3, beta1=0.9),          # the ends of the ranges
    dict(lr_g=np.float32(3e-4), lr_d=3e-4, beta1=0.5),
])
def test_choices_inside_the_ranges_pass(choices, capsys):
    checks.check_choices(**choices)
    assert "inside the allowed ranges" in capsys.readouterr().out


@pytest.mark.parametrize("choices, message", [
    (dict(lr_g=0.02, lr_d=2e-4, beta1=0.5), "lr_g = 0.02 is above the allowed range"),
    (dict(lr_g=2e-4, lr_d=0, beta1=0.5), "lr_d = 0 is below the allowed range"),
    (dict(lr_g=2e-4, lr_d=2e-4, beta1=0.999), "beta1 = 0.999 is above"),
    (dict(lr_g=2e-4, lr_d=2e-4, beta1=-0.5), "beta1 = -0.5 is below"),
    (dict(lr_g="2e-4", lr_d=2e-4, beta1=0.5), "is a str, not a number"),
    (dict(lr_g=2e-4, lr_d=2e-4, beta1=(0.5, 0.999)), "is a tuple, not a number"),  # the betas pair, not beta1
    (dict(lr_g=2e-4, lr_d=float("nan"), beta1=0.5), "not a finite number"),
    (dict(lr_g=2e-4, lr_d=2e-4, beta1=True), "is a bool"),
    (dict(lr_g=..., lr_d=2e-4, beta1=0.5), "lr_g is not set"),
    (dict(lr_g=2e-4, lr_d=2e-4), "beta1 is not set"),
    (dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, lr_c=1e-4), "unknown choice"),
])
def test_choices_outside_the_ranges_are_refused_with_the_rule(choices, message):
    fails(lambda: checks.check_choices(**choices), match=message)


def test_the_solution_choices_and_no_recommended_value_in_the_student_text():
    """The solution's choices pass their own check; the student release sets none of them and its text names no
    value for them (the handout gives the ranges and the sweep, not the reference's numbers)."""
    import nbformat

    from labkit.instructor.notebook import load_exports

    solution = load_exports(SOLUTION, tags=("export", "choices"), name="dcgan_choices_for_tests")
    checks.check_choices(lr_g=solution.LR_G, lr_d=solution.LR_D, beta1=solution.BETA1)
    student = nbformat.read(SOLUTION.parent.parent / "03_dcgan_mnist.ipynb", as_version=4)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    assert not re.search(r"^\s*LR_G\b.*=", code, re.M), "the student release sets LR_G"
    for value in ("2e-4", "2\\cdot10^{-4}", "0.0002", "(0.5, 0.999)"):   # the sweep's fixed beta1 is said, as such
        assert value not in text, value
    assert "(0.5, 0.999)" not in code.replace('settings.get("beta1", 0.5), 0.999', "")


# --------------------------------------------------------------------------- the training step


def _step(*, detach=True, real_target=1.0, fake_target=0.0, g_target=1.0, zero_d=True, zero_g=True,
          concatenated=False, saturating=False, g_before_update=False, g_detached=False):
    """A train_step with one typical mistake switched on."""
    def train_step(G, D, opt_g, opt_d, criterion, real, z):
        if zero_d:
            opt_d.zero_grad()
        if g_before_update and zero_g:
            opt_g.zero_grad()
        fake = G(z)
        if concatenated:
            p = D(torch.cat([real, fake.detach()]))
            p_real, p_fake = p[:len(real)], p[len(real):]
            loss_d = criterion(p, torch.cat([torch.ones_like(p_real), torch.zeros_like(p_fake)]))
        else:
            p_real = D(real)
            p_fake = D(fake.detach() if detach else G(z))  # a second forward pass, so nothing crashes
            loss_d = (criterion(p_real, torch.full_like(p_real, real_target))
                      + criterion(p_fake, torch.full_like(p_fake, fake_target)))
        if g_before_update:  # both losses from the same D, both backward passes before either step
            p = D(fake)
            loss_g = criterion(p, torch.ones_like(p))
            loss_d.backward()
            loss_g.backward()
            opt_d.step()
            opt_g.step()
        else:
            loss_d.backward()
            opt_d.step()
            if zero_g:
                opt_g.zero_grad()
            p = D(fake.detach() if g_detached else fake)
            loss_g = torch.log(1 - p).mean() if saturating else criterion(p, torch.full_like(p, g_target))
            if loss_g.requires_grad:
                loss_g.backward()
            opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
                "d_fake": p_fake.mean().item()}
    return train_step


def test_solution_step_passes(solution):
    checks.check_train_step(solution.train_step)
    checks.check_train_step(_step())  # the test's own correct version agrees


@pytest.mark.parametrize("mistake, message", [
    (dict(detach=False), "generator received gradients.*detach"),
    (dict(real_target=0.0, fake_target=1.0), "swapped labels"),
    (dict(concatenated=True), "separate mini-batches"),
    (dict(g_target=0.0), "target 0"),
    (dict(saturating=True), "saturating loss"),
    (dict(g_before_update=True), "before its update"),
    (dict(g_detached=True), "did not change.*not detached"),
    (dict(zero_d=False), "opt_d.zero_grad"),
    (dict(zero_g=False), "opt_g.zero_grad"),
])
def test_step_mistakes_are_named(mistake, message):
    fails(checks.check_train_step, _step(**mistake), match=message)


def test_step_that_crashes_without_detach_is_named():
    def crashing(G, D, opt_g, opt_d, criterion, real, z):
        opt_d.zero_grad()
        fake = G(z)
        p_real, p_fake = D(real), D(fake)  # no detach: loss_d.backward() frees G's part of the graph
        (criterion(p_real, torch.ones_like(p_real)) + criterion(p_fake, torch.zeros_like(p_fake))).backward()
        opt_d.step()
        opt_g.zero_grad()
        p = D(fake)
        criterion(p, torch.ones_like(p)).backward()
        opt_g.step()

    fails(checks.check_train_step, crashing, match="second time.*detached")


def _variant(*, targets=lambda p, value: torch.full_like(p, value), d_loss=None, zero_after_backward=None,
             g_optimizer="opt_g", g_scores_early=False, log=None, logits=False, g_noise=None, g_no_grad=False,
             mode=None, d_steps=1, step_first=None, g_loss=None):
    """The solution's step written out, with one change: each keyword swaps in a mistake (or a valid variant)."""
    def train_step(G, D, opt_g, opt_d, criterion, real, z):
        if mode:
            getattr(G, mode)(), getattr(D, mode)()
        opt_d.zero_grad()
        p_real = D(real)
        fake = G(z)
        p_fake = D(fake.detach())
        if g_scores_early:
            p_for_g = D(fake)  # scored before D's update: the graph goes stale when opt_d.step() changes D
        if d_loss is None:
            loss_d = criterion(p_real, targets(p_real, 1.0)) + criterion(p_fake, targets(p_fake, 0.0))
        else:
            loss_d = d_loss(criterion, D, real, fake, p_real, p_fake)
        if step_first == "d":
            opt_d.step()
        loss_d.backward()
        if zero_after_backward == "d":
            opt_d.zero_grad()
        for _ in range(d_steps if step_first != "d" else 0):
            opt_d.step()
        optimizer = opt_g if g_optimizer == "opt_g" else opt_d
        optimizer.zero_grad()
        if not g_scores_early:
            g_fake = G(g_noise(z)) if g_noise else fake
            with torch.set_grad_enabled(not g_no_grad):
                p_for_g = D(g_fake)
        with torch.set_grad_enabled(not g_no_grad):
            loss_g = criterion(p_for_g, targets(p_for_g, 1.0))
        if g_loss is not None:
            loss_g = g_loss(p_for_g)
        if step_first == "g":
            optimizer.step()
        loss_g.backward()
        if zero_after_backward == "g":
            optimizer.zero_grad()
        if step_first != "g":
            optimizer.step()
        to_p = torch.sigmoid if logits else (lambda s: s)
        d_real, d_fake = (to_p(p_real).mean().item(), to_p(p_fake).mean().item()) if log is None else log(D, real, fake)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": d_real, "d_fake": d_fake}
    return train_step


def _two_bce_on_one_batch(criterion, D, real, fake, p_real, p_fake):
    p = D(torch.cat([real, fake.detach()]))
    return criterion(p[:len(real)], torch.ones_like(p[:len(real)])) + criterion(p[len(real):], torch.zeros_like(p[len(real):]))


def _late_log(D, real, fake):
    with torch.no_grad():
        return D(real).mean().item(), D(fake).mean().item()


@pytest.mark.parametrize("mistake, message", [
    (dict(zero_after_backward="d"), "opt_d.zero_grad\\(\\) ran between loss_d.backward\\(\\) and opt_d.step"),
    (dict(zero_after_backward="g"), "opt_g.zero_grad\\(\\) ran between loss_g.backward\\(\\) and opt_g.step"),
    (dict(d_loss=_two_bce_on_one_batch), "one discriminator pass on real and fake images together.*separate"),
    (dict(targets=lambda p, value: torch.ones_like(p)), "target 1 for the fake images too"),
    (dict(targets=lambda p, value: torch.zeros_like(p)), "target 0 for the real images too"),
    (dict(g_optimizer="opt_d"), "generator's step used the discriminator's optimiser"),
    (dict(g_scores_early=True), "computed before opt_d.step\\(\\).*in place"),
    (dict(targets=lambda p, value: torch.full((len(p), 1), value)), "makes a tensor on the CPU.*device="),
    # wrong answers no earlier test fed
    (dict(d_loss=lambda c, D, r, f, pr, pf: c(torch.ones_like(pr), pr) + c(torch.zeros_like(pf), pf)),
     "prediction\\s+first, then the target"),
    (dict(d_loss=lambda c, D, r, f, pr, pf: c(pr, torch.full_like(pr, 0.9)) + c(pf, torch.zeros_like(pf))),
     "label smoothing"),
    (dict(d_loss=lambda c, D, r, f, pr, pf: (c(pr, torch.ones_like(pr)) + c(pf, torch.zeros_like(pf))) / 2),
     "half the expected value: the two losses are averaged"),
    (dict(log=_late_log), "come from D after its update"),
    (dict(d_steps=2), "opt_d.step\\(\\) ran 2 times"),
    (dict(g_noise=torch.randn_like), "noise other than the z it was given"),
    (dict(mode="eval"), "in eval mode: training steps run the networks in training mode"),
    (dict(g_no_grad=True), "does not reach any weight.*torch.no_grad"),
    (dict(targets=lambda p, value: torch.full((len(p),), value)), "targets of another shape than the scores"),
    (dict(step_first="d"), "opt_d.step\\(\\) ran before loss_d.backward\\(\\)"),
    (dict(step_first="g"), "opt_g.step\\(\\) ran before loss_g.backward\\(\\)"),
])
def test_more_step_mistakes_are_named(mistake, message):
    fails(checks.check_train_step, _variant(**mistake), match=message)


def test_logits_step_is_checked_with_a_logits_discriminator():
    checks.check_train_step(_variant(logits=True), nn.BCEWithLogitsLoss())
    fails(checks.check_train_step, _variant(), nn.BCEWithLogitsLoss(), match="means of logits.*sigmoid")
    checks.check_train_step(_variant(), nn.BCELoss())


def test_retain_graph_instead_of_detach_is_named():
    def retained(G, D, opt_g, opt_d, criterion, real, z):  # the usual "fix" for the second-backward crash
        opt_d.zero_grad()
        fake = G(z)
        p_real, p_fake = D(real), D(fake)
        loss_d = criterion(p_real, torch.ones_like(p_real)) + criterion(p_fake, torch.zeros_like(p_fake))
        loss_d.backward(retain_graph=True)
        opt_d.step()
        opt_g.zero_grad()
        p = D(fake)
        loss_g = criterion(p, torch.ones_like(p))
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
                "d_fake": p_fake.mean().item()}

    fails(checks.check_train_step, retained, match="generator received gradients during the discriminator's update")


def test_step_valid_forms_pass(solution):
    checks.check_train_step(_variant())
    checks.check_train_step(_variant(targets=lambda p, value: torch.full((len(p), 1), value, device=p.device)))
    checks.check_train_step(_variant(g_noise=lambda z: z))  # a second forward pass of G on the same z
    checks.check_train_step(_variant(g_loss=lambda p: -torch.log(p).mean()))  # the non-saturating loss by hand

    def module_zero_grad(G, D, opt_g, opt_d, criterion, real, z):  # D.zero_grad() / G.zero_grad() clear the same
        opt_d.zero_grad = D.zero_grad
        opt_g.zero_grad = G.zero_grad
        return solution.train_step(G, D, opt_g, opt_d, criterion, real, z)

    checks.check_train_step(module_zero_grad)


def test_step_result_mistakes_are_named(solution):
    def tensors(*args):
        out = solution.train_step(*args)
        return {k: torch.tensor(v, requires_grad=True) for k, v in out.items()}

    def missing(*args):
        out = solution.train_step(*args)
        out.pop("d_fake")
        return out

    def no_return(*args):
        solution.train_step(*args)

    fails(checks.check_train_step, tensors, match="attached to the graph")
    fails(checks.check_train_step, missing, match="missing \\['d_fake'\\]")
    fails(checks.check_train_step, no_return, match="must return a dict")


# --------------------------------------------------------------------------- log, generate


def test_history_mistakes_are_named():
    good = {"loss_d": [1.2, 1.1], "loss_g": [0.9, 1.0], "d_real": [0.6, 0.7], "d_fake": [0.4, 0.3]}
    checks.check_history(good, 2)
    fails(checks.check_history, {**good, "loss_d": [1.2]}, 2, match="1 values, expected 2")
    fails(checks.check_history, {k: v for k, v in good.items() if k != "d_fake"}, 2, match="no 'd_fake'")
    fails(checks.check_history, {**good, "d_real": [1.3, 1.4]}, 2, match="probabilities")
    fails(checks.check_history, {**good, "loss_g": [float("nan"), 1.0]}, 2, match="NaN")
    fails(checks.check_history, {**good, "d_fake": good["d_real"]}, 2, match="identical")
    per_batch = {k: v * 3 for k, v in good.items()}  # appended after every batch, not once per epoch
    fails(checks.check_history, per_batch, 2, match="3 per epoch")


def _train_with(solution, old: str, new: str):
    """The notebook's given train() with ``old`` replaced by ``new`` in its source (a student's edit)."""
    import json

    cells = json.loads(SOLUTION.read_text())["cells"]
    source = next("".join(c["source"]) for c in cells if "".join(c["source"]).startswith("def train("))
    assert old in source
    namespace = dict(vars(solution))
    exec(source.replace(old, new), namespace)
    return namespace["train"]


def test_loop_keeps_the_fixed_noise(solution):
    good = {"loss_d": [1.2, 1.1], "loss_g": [0.9, 1.0], "d_real": [0.6, 0.7], "d_fake": [0.4, 0.3]}
    checks.check_history(good, 2, train=solution.train)
    redrawn = _train_with(solution, "        G.train(), D.train()\n",
                          "        G.train(), D.train()\n        snapshots.noise = (torch.randn(64, G.latent_dim, "
                          "device=device),)  # 'fixed' noise drawn anew every epoch\n")
    fails(checks.check_history, good, 2, redrawn, match="two epochs come from different noise.*drawn once")
    own = _train_with(solution, "Snapshots((fixed_z,)", "Snapshots((torch.randn(64, G.latent_dim),)")
    fails(checks.check_history, good, 2, own, match="do not come from the fixed_z")
    crashing = _train_with(solution, "log.add(train_step(", "log.add(train_step(None, ")
    fails(checks.check_history, good, 2, crashing, match="train\\(...\\) failed on a small case")


def _generate(*, eval_mode=True, train_mode=False, no_grad=True, to_unit=lambda x: (x + 1) / 2, noise=torch.randn,
              device=True, cpu=True):
    """The solution's generate(n, G) written out, with one change: each keyword swaps in a mistake (or a valid
    variant)."""
    default = checks.NoiseImages().eval()

    def generate(n, G=None):
        G = default if G is None else G
        where = next(G.parameters()).device
        if eval_mode:
            G.eval()
        if train_mode:
            G.train()
        with torch.set_grad_enabled(not no_grad):
            x = G(noise(n, 100, device=where) if device else noise(n, 100))
        x = to_unit(x[:, 0].detach())
        return (x.cpu() if cpu else x).numpy().astype(np.float32)
    return generate


def test_generate_mistakes_are_named():
    rng = np.random.default_rng(0)

    def good(n, G=None):
        return rng.random((n, 28, 28), dtype=np.float32)

    fails(checks.check_generate, lambda n, G=None: torch.from_numpy(good(n)), match="numpy array")
    fails(checks.check_generate, lambda n, G=None: good(n)[:, None], match="channel axis")
    fails(checks.check_generate, lambda n, G=None: good(n).astype(np.float64), match="float32")
    fails(checks.check_generate, lambda n, G=None: good(n) * 2 - 1, match="\\(x \\+ 1\\) / 2")
    fails(checks.check_generate, lambda n, G=None: good(n) * 255, match="above 1")
    fails(checks.check_generate, lambda n, G=None: np.repeat(good(1), n, axis=0), match="same image")
    fails(checks.check_generate, good, match="never called the G it was given")
    squeezed = _generate(to_unit=lambda x: ((x + 1) / 2).squeeze())  # (28, 28) for n = 1
    fails(checks.check_generate, squeezed, match="generate\\(1\\) must return shape \\(1, 28, 28\\)")


def _min_max(x):
    return (x - x.min()) / (x.max() - x.min())


@pytest.mark.parametrize("mistake, message", [
    (dict(eval_mode=False), "ran G in training mode: switch it to eval mode"),
    (dict(train_mode=True), "ran G in training mode"),
    (dict(to_unit=lambda x: x.clamp(0, 1)), "clamps G's \\[-1, 1\\] output.*linearly"),
    (dict(to_unit=_min_max), "depends on the batch, such as min-max"),
    (dict(no_grad=False), "autograd recording.*torch.no_grad"),
    # wrong answers no earlier test fed
    (dict(noise=torch.rand), "standard normal noise, N\\(0, I\\)"),
    (dict(to_unit=lambda x: x.abs()), "fixed linear map"),
    (dict(to_unit=lambda x: x * 0.5 + 0.5 + 0 * x.mean()), None),   # valid: the same map, written otherwise
    (dict(device=False), "noise on the CPU whatever the generator's device"),
    (dict(cpu=False), "\\.numpy\\(\\) on a tensor still on the generator's device"),
])
def test_generate_rule_breaks_are_named(mistake, message):
    if message is None:
        checks.check_generate(_generate(**mistake))
    else:
        fails(checks.check_generate, _generate(**mistake), match=message)


def test_generate_valid_forms_pass():
    checks.check_generate(_generate())

    def inference_mode_restoring(n, G=None):  # torch.inference_mode, and the mode restored afterwards
        G = G or checks.NoiseImages().eval()
        was_training = G.training
        G.eval()
        with torch.inference_mode():
            x = G(torch.randn(n, 100, device=next(G.parameters()).device))
        G.train(was_training)
        return ((x[:, 0] + 1) / 2).clamp(0, 1).cpu().numpy().astype(np.float32)

    checks.check_generate(inference_mode_restoring)


def test_student_release_stops_at_every_todo():
    student = load_exports(SOLUTION.parent.parent / "03_dcgan_mnist.ipynb", name="dcgan_release_for_tests")
    fails(checks.check_generator, student.Generator, match="NotImplementedError")
    fails(checks.check_discriminator, student.Discriminator, match="NotImplementedError")
    for call in (lambda: student.make_optimizers(nn.Linear(1, 1), nn.Linear(1, 1), 1e-4, 1e-4, (0.6, 0.99)),
                 lambda: student.train_step(*checks.fixed_case()[:4], nn.BCELoss(), *checks.fixed_case()[4:])):
        with pytest.raises(NotImplementedError):
            call()
