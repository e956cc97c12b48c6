"""Notebook 03's checks: the solution passes, and each typical wrong answer fails with a message naming it."""
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from labkit.checks import CheckFailed
from labkit.checks import dcgan_mnist as checks
from labkit.instructor.notebook import load_exports

SOLUTION = Path(__file__).resolve().parent.parent / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb"


@pytest.fixture(scope="module")
def solution():
    torch.set_num_threads(1)
    return load_exports(SOLUTION, name="dcgan_solution_for_tests")


def fails(check, *args, match: str):
    with pytest.raises(CheckFailed, match=match):
        check(*args)


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


def _good_g_layers(last=nn.Tanh, third=(4, 2, 1)):
    return lambda: nn.Sequential(
        nn.ConvTranspose2d(100, 16, 7, 1, 0), nn.BatchNorm2d(16), nn.ReLU(),
        nn.ConvTranspose2d(16, 8, 4, 2, 1), nn.BatchNorm2d(8), nn.ReLU(),
        nn.ConvTranspose2d(8, 1, *third), last())


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


def _discriminator(layers):
    class D(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = layers()

        def forward(self, x):
            return self.net(x)

    return D


def _d_layers(pool=False, sigmoid=True, linears=1, in_features=64 * 16):
    def build():
        down = [nn.MaxPool2d(2)] if pool else []
        stride = 1 if pool else 2
        layers = [nn.Conv2d(1, 16, 4, stride, 1 if not pool else 2), *down, nn.LeakyReLU(0.2),
                  nn.Conv2d(16, 32, 4, 2, 1), nn.BatchNorm2d(32), nn.LeakyReLU(0.2),
                  nn.Conv2d(32, 64, 3, 2, 1), nn.BatchNorm2d(64), nn.LeakyReLU(0.2), nn.Flatten()]
        layers += [nn.Linear(in_features, 16), nn.LeakyReLU(0.2)] * (linears - 1) if linears > 1 else []
        layers += [nn.Linear(16 if linears > 1 else in_features, 1)] + ([nn.Sigmoid()] if sigmoid else [])
        return nn.Sequential(*layers)
    return build


def test_discriminator_mistakes_are_named():
    checks.check_discriminator(_discriminator(_d_layers()))
    fails(checks.check_discriminator, _discriminator(_d_layers(sigmoid=False)), match="not probabilities.*Sigmoid")
    fails(checks.check_discriminator, _discriminator(_d_layers(pool=True)), match="pools.*strided")
    fails(checks.check_discriminator, _discriminator(_d_layers(linears=2)), match="2 Linear layers")
    fails(checks.check_discriminator, _discriminator(_d_layers(in_features=64 * 49)), match="in_features")


# --------------------------------------------------------------------------- loss and optimisers


def test_criterion_mistakes_are_named():
    checks.check_criterion(nn.BCELoss())
    fails(checks.check_criterion, nn.BCEWithLogitsLoss(), match="expects logits")
    fails(checks.check_criterion, nn.MSELoss(), match="least-squares")
    fails(checks.check_criterion, nn.BCELoss(reduction="sum"), match="summed")


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

    def sgd(G, D, lr_g, lr_d, betas):
        return torch.optim.SGD(G.parameters(), lr=lr_g), torch.optim.SGD(D.parameters(), lr=lr_d)

    for wrong, message in ((swapped, "optimisers are swapped"), (both, "exactly G.parameters"),
                           (fixed_lr, "use the arguments"), (default_betas, "betas=betas"),
                           (swapped_lr, "learning rates are swapped"), (sgd, "uses Adam")):
        fails(checks.check_optimizers, wrong, G, D, match=message)


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
    (dict(g_detached=True), "did not change.*do not detach"),
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

    fails(checks.check_train_step, crashing, match="second time.*fake.detach")


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


def test_generate_mistakes_are_named():
    rng = np.random.default_rng(0)

    def good(n):
        return rng.random((n, 28, 28), dtype=np.float32)

    checks.check_generate(good)
    fails(checks.check_generate, lambda n: torch.from_numpy(good(n)), match="numpy array")
    fails(checks.check_generate, lambda n: good(n)[:, None], match="channel axis")
    fails(checks.check_generate, lambda n: good(n).astype(np.float64), match="float32")
    fails(checks.check_generate, lambda n: good(n) * 2 - 1, match="\\(x \\+ 1\\) / 2")
    fails(checks.check_generate, lambda n: good(n) * 255, match="above 1")
    fails(checks.check_generate, lambda n: np.repeat(good(1), n, axis=0), match="same image")


def test_student_release_stops_at_every_todo():
    student = load_exports(SOLUTION.parent.parent / "03_dcgan_mnist.ipynb", name="dcgan_release_for_tests")
    fails(checks.check_generator, student.Generator, match="NotImplementedError")
    fails(checks.check_discriminator, student.Discriminator, match="NotImplementedError")
    for call in (lambda: student.make_optimizers(nn.Linear(1, 1), nn.Linear(1, 1)),
                 lambda: student.train_step(*checks.fixed_case()[:4], nn.BCELoss(), *checks.fixed_case()[4:])):
        with pytest.raises(NotImplementedError):
            call()
