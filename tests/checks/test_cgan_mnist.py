"""Notebook 02's checks: the solution passes each one, and each typical wrong answer fails with a message that
names the mistake (the wrong answers are the solution's code with one mistake in it)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from labkit.checks import CheckFailed
from labkit.checks import cgan_mnist as checks
from labkit.instructor.notebook import load_exports

from tests.grading.lab_grading import SOLUTIONS

NOTEBOOK = SOLUTIONS / "02_cgan_mnist.ipynb"


@pytest.fixture(scope="module")
def solution():
    return load_exports(NOTEBOOK)


def fails(check, *args, match):
    with pytest.raises(CheckFailed, match=match):
        check(*args)


# --------------------------------------------------------------------------- TODO 1: the generator


def generator_variant(solution, embedding=None, in_channels=None, from_embedding=None, forward=None):
    """The solution's Generator with one part replaced: embedding(latent, embed) -> module, in_channels(latent, embed),
    from_embedding(self, z, e), forward(self, z, labels)."""
    Base = solution.Generator

    class Variant(Base):
        def __init__(self, latent_dim=100, embed_dim=32, channels=4):
            super().__init__(latent_dim, embed_dim, channels)
            if embedding is not None:
                self.embedding = embedding(latent_dim, embed_dim)
            if in_channels is not None:
                self.net[0][0] = nn.ConvTranspose2d(in_channels(latent_dim, embed_dim), 4 * channels, 7, 1, 0, bias=False)

    if from_embedding is not None:
        Variant.from_embedding = from_embedding
    if forward is not None:
        Variant.forward = forward
    return Variant


def test_generator_solution_passes(solution):
    checks.check_generator(solution.Generator)


@pytest.mark.parametrize("kwargs, match", [
    ({"embedding": lambda L, E: nn.Embedding(E, 10)}, r"wrong size.*the other way round.*how many vectors, the size of each"),
    ({"embedding": lambda L, E: nn.Embedding(10, 32)}, "use the embed_dim argument"),
    ({"in_channels": lambda L, E: L}, "in_channels must count e's numbers too"),
    ({"forward": lambda self, z, labels: self.from_embedding(z, torch.zeros(len(z), self.embed_dim))},
     "does not change with the labels"),
    ({"from_embedding": lambda self, z, e: self.net(torch.cat([e, z], 1)[:, :, None, None])}, "puts e before z"),
    ({"forward": lambda self, z, labels: self.net(torch.cat([z, self.embedding((labels + 1) % 10)], 1)[:, :, None, None])},
     r"differs from from_embedding\(z, e\)"),
])
def test_generator_names_mistakes(solution, kwargs, match):
    fails(checks.check_generator, generator_variant(solution, **kwargs), match=match)


@pytest.mark.parametrize("kwargs, match", [
    ({"in_channels": lambda L, E: L + 10}, "not a one-hot vector"),
    ({"forward": lambda self, z, labels: self.from_embedding(self.embedding(labels), z)}, r"from_embedding\(e, z\)"),
    ({"from_embedding": lambda self, z, e: self.net(torch.cat([z, 0 * e], 1)[:, :, None, None])}, "does not use e"),
    ({"from_embedding": lambda self, z, e: self.net(torch.cat([z, e], 1))}, "two spatial axes of size 1"),
])
def test_generator_names_more_mistakes(solution, kwargs, match):
    fails(checks.check_generator, generator_variant(solution, **kwargs), match=match)


def test_generator_still_raising_is_named():
    class Todo(nn.Module):
        def __init__(self, **kwargs):
            super().__init__()
            raise NotImplementedError
    fails(checks.check_generator, Todo, match="NotImplementedError")


# --------------------------------------------------------------------------- TODO 2: the discriminator


def discriminator_variant(solution, project=None, embedding=None, forward=None):
    Base = solution.Discriminator

    class Variant(Base):
        def __init__(self, embed_dim=32, channels=4):
            super().__init__(embed_dim, channels)
            if project is not None:
                self.project = project(64 * channels, embed_dim)
            if embedding is not None:
                self.embedding = embedding(embed_dim)

    if forward is not None:
        Variant.forward = forward
    return Variant


def test_discriminator_solution_passes(solution):
    checks.check_discriminator(solution.Discriminator)


@pytest.mark.parametrize("kwargs, match", [
    ({"embedding": lambda E: nn.Embedding(E, 10)}, "wrong size"),
    ({"project": lambda F_, E: nn.Linear(E, F_, bias=False)}, "the other way round"),
    ({"forward": lambda self, x, labels: torch.sigmoid(self.head(self.features(x)))}, "does not change with the label"),
    ({"forward": lambda self, x, labels: torch.sigmoid(
        self.head(self.features(x)) + 0 * self.embedding(labels).sum(1, keepdim=True))}, "does not change with the label"),
    ({"forward": lambda self, x, labels: torch.sigmoid(
        (self.embedding(labels) * self.project(self.features(x))).sum(1, keepdim=True))}, "head\\(h\\) is missing"),
    ({"forward": lambda self, x, labels: torch.sigmoid(self.head(self.features(x)) + (
        self.embedding(labels) * self.project(self.features(x))).mean(1, keepdim=True))}, "a sum"),
    ({"forward": lambda self, x, labels: self.head(self.features(x)) + (
        self.embedding(labels) * self.project(self.features(x))).sum(1, keepdim=True)}, "sigmoid"),
    ({"forward": lambda self, x, labels: torch.sigmoid(self.head(self.features(x)) + (
        self.embedding(labels) * self.project(self.features(x))).sum(1))}, "keepdim=True"),
])
def test_discriminator_names_mistakes(solution, kwargs, match):
    fails(checks.check_discriminator, discriminator_variant(solution, **kwargs), match=match)


def _scored(score):
    """A forward computing ``score(head(h), embedding(labels), project(h))``."""
    return lambda self, x, labels: score(self.head(self.features(x)), self.embedding(labels),
                                         self.project(self.features(x)))


@pytest.mark.parametrize("score, match", [
    (lambda head, e, p: torch.sigmoid(head + e @ p.T), "matrix product"),
    (lambda head, e, p: torch.sigmoid(head + (e * p).sum()), "whole batch"),
    (lambda head, e, p: torch.sigmoid(head * (e * p).sum(1, keepdim=True)), "multiplies head"),
    (lambda head, e, p: torch.sigmoid(torch.sigmoid(head + (e * p).sum(1, keepdim=True))), "twice"),
    (lambda head, e, p: torch.softmax(head + (e * p).sum(1, keepdim=True), dim=0), "softmax"),
])
def test_discriminator_names_score_mistakes(solution, score, match):
    fails(checks.check_discriminator, discriminator_variant(solution, forward=_scored(score)), match=match)


def test_discriminator_accepts_other_inner_products(solution):
    for score in (lambda head, e, p: torch.sigmoid(head + torch.einsum("be,be->b", e, p)[:, None]),
                  lambda head, e, p: torch.sigmoid(head + torch.bmm(e[:, None], p[:, :, None])[:, 0])):
        checks.check_discriminator(discriminator_variant(solution, forward=_scored(score)))


def test_discriminator_without_projection_layer_is_named(solution):
    class NoProject(solution.Discriminator):
        def __init__(self, embed_dim=32, channels=4):
            super().__init__(embed_dim, channels)
            del self.project
    fails(checks.check_discriminator, NoProject, match="self.project")


# --------------------------------------------------------------------------- TODO 3: the training step


def step(detach=True, swap=False, d_labels=True, g_labels=True, zero_d=True, zero_g=True, g_target=1.0,
         acc="right", zero_late=(), acc_scale=1.0, target_first=False):
    """The solution's train_step with one mistake switched on; zero_late names the optimisers ("d", "g") whose
    zero_grad() comes between backward() and step()."""
    def train_step(G, D, opt_g, opt_d, criterion, real, labels, z):
        if target_first:
            criterion = (lambda bce: lambda p, target: bce(target, p))(criterion)
        dl = (labels,) if d_labels else ()
        if zero_d:
            opt_d.zero_grad()
        p_real = D(real, *dl)
        fake = G(z, labels) if g_labels else G(z)
        p_fake = D(fake.detach() if detach else fake, *dl)
        t_real, t_fake = (torch.zeros_like(p_real), torch.ones_like(p_fake)) if swap else \
            (torch.ones_like(p_real), torch.zeros_like(p_fake))
        loss_d = criterion(p_real, t_real) + criterion(p_fake, t_fake)
        loss_d.backward(retain_graph=not detach)
        if "d" in zero_late:
            opt_d.zero_grad()
        opt_d.step()
        if zero_g:
            opt_g.zero_grad()
        p_g = D(fake, *dl)
        loss_g = criterion(p_g, torch.full_like(p_g, g_target))
        loss_g.backward()
        if "g" in zero_late:
            opt_g.zero_grad()
        opt_g.step()
        real_ok, fake_ok = (p_real > 0.5).float().mean(), (p_fake < 0.5).float().mean()
        d_acc = {"right": (real_ok + fake_ok) / 2, "real_only": real_ok, "inverted": (real_ok + 1 - fake_ok) / 2}[acc]
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
                "d_fake": p_fake.mean().item(), "d_acc": acc_scale * d_acc.item()}
    return train_step


def test_train_step_solution_passes(solution):
    checks.check_train_step(solution.train_step)
    checks.check_train_step(step())


@pytest.mark.parametrize("kwargs, match", [
    ({"d_labels": False}, "D was called without the labels"),
    ({"g_labels": False}, "G was called without the labels"),
    ({"detach": False}, "received gradients during the discriminator's update"),
    ({"swap": True}, "swapped targets"),
    ({"zero_d": False}, "opt_d.zero_grad"),
    ({"zero_g": False}, "opt_g.zero_grad"),
    ({"g_target": 0.0}, "target 0"),
    ({"acc": "real_only"}, "only the real images"),
    ({"acc": "inverted"}, "p_fake < 0.5"),
    ({"zero_late": ("d",)}, r"opt_d.zero_grad\(\) comes after loss_d.backward\(\)"),
    ({"zero_late": ("g",)}, r"opt_g.zero_grad\(\) comes after loss_g.backward\(\)"),
    ({"acc_scale": 100.0}, "percentage"),
    ({"target_first": True}, "arguments swapped"),
])
def test_train_step_names_mistakes(kwargs, match):
    fails(checks.check_train_step, step(**kwargs), match=match)


def test_train_step_with_g_loss_from_d_before_its_update_is_named():
    def early(G, D, opt_g, opt_d, criterion, real, labels, z):
        opt_d.zero_grad()
        p_real = D(real, labels)
        fake = G(z, labels)
        p_fake_d = D(fake.detach(), labels)
        p_fake_g = D(fake, labels)                       # scored before D's update
        loss_d = criterion(p_real, torch.ones_like(p_real)) + criterion(p_fake_d, torch.zeros_like(p_fake_d))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        loss_g = criterion(p_fake_g, torch.ones_like(p_fake_g))
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
                "d_fake": p_fake_d.mean().item(), "d_acc": 0.5}
    fails(checks.check_train_step, early, match="from before its update")


def test_history_check(solution):
    good = {k: [0.5, 0.6] for k in checks.HISTORY_KEYS}
    good["seconds"] = [10.0, 20.0]
    checks.check_history(good, expected_length=2)
    fails(checks.check_history, {k: v for k, v in good.items() if k != "d_acc_test"}, 2, match="d_acc_test")
    fails(checks.check_history, {**good, "d_acc": [1.2, 0.5]}, 2, match="probabilities")
    fails(checks.check_history, {**good, "seconds": [20.0, 10.0]}, 2, match="growing")
    fails(checks.check_history, {**good, "d_acc": [55.0, 60.0]}, 2, match="percentage")
    fails(checks.check_history, {**good, "loss_d": [torch.tensor(0.5, requires_grad=True) * 1] * 2}, 2,
          match=r"loss.item\(\)")
    fails(checks.check_history, {**good, "loss_d": [0.5] * 20}, 2, match="10 per epoch")
    fails(checks.check_history, {**good, "loss_d": [[0.5, 0.4]] * 2}, 2, match="a list per epoch")
    fails(checks.check_history, {k: [v[0]] + v for k, v in good.items()}, 2, match="One too many")



# --------------------------------------------------------------------------- the full run's settings (issue 25)


@pytest.mark.parametrize("choices", [
    dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, d_steps=1, g_steps=1),      # one rate, no advantage
    dict(lr_g=1e-4, lr_d=4e-4, beta1=0.0, d_steps=2, g_steps=1),      # TTUR without momentum, D's advantage
    dict(lr_g=1e-5, lr_d=2e-3, beta1=0.9, d_steps=5, g_steps=5),      # the ends of the ranges
    dict(lr_g=2e-3, lr_d=1e-5, beta1=0.0, d_steps=1, g_steps=1),
    dict(lr_g=np.float32(3e-4), lr_d=np.float64(3e-4), beta1=0.5, d_steps=np.int64(1), g_steps=2.0),
])
def test_choices_inside_the_ranges_pass(choices, capsys):
    checks.check_choices(**choices)
    assert "inside the allowed ranges" in capsys.readouterr().out


GOOD = dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, d_steps=1, g_steps=1)


@pytest.mark.parametrize("change, message", [
    (dict(lr_g=0.02), "lr_g = 0.02 is above the allowed range"),
    (dict(lr_d=0), "lr_d = 0 is below the allowed range"),
    (dict(beta1=0.999), "beta1 = 0.999 is above"),
    (dict(beta1=-0.5), "beta1 = -0.5 is below"),
    (dict(lr_g="2e-4"), "is a str, not a number"),
    (dict(beta1=(0.5, 0.999)), "is a tuple, not a number"),            # the betas pair, not beta1
    (dict(lr_d=float("nan")), "not a finite number"),
    (dict(beta1=True), "is a bool"),
    (dict(lr_g=...), "lr_g is not set"),
    (dict(g_steps=None), "g_steps is not set"),
    (dict(d_steps=1.5), "d_steps = 1.5 must be a whole number"),
    (dict(d_steps=0), "d_steps = 0 is below the allowed range"),
    (dict(g_steps=6), "g_steps = 6 is above the allowed range"),
    (dict(d_steps=True), "is a bool"),
    (dict(lr_c=1e-4), "unknown choice"),                                # lab 04's name
])
def test_choices_outside_the_ranges_are_refused_with_the_rule(change, message):
    fails(lambda: checks.check_choices(**{**GOOD, **change}), match=message)


def test_a_choice_left_out_is_named():
    fails(lambda: checks.check_choices(**{k: v for k, v in GOOD.items() if k != "beta1"}), match="beta1 is not set")


def test_the_solution_choices_and_no_recommended_value_in_the_student_text():
    """The solution's choices pass their own check; the student release sets none of them and its text names no
    value for them (the handout gives the ranges, the ideas and the sweep, not the reference's numbers)."""
    import re

    import nbformat

    solution = load_exports(NOTEBOOK, tags=("export", "choices"), name="cgan_choices_for_tests")
    checks.check_choices(lr_g=solution.LR_G, lr_d=solution.LR_D, beta1=solution.BETA1, d_steps=solution.D_STEPS,
                         g_steps=solution.G_STEPS)
    student = nbformat.read(NOTEBOOK.parent.parent / "02_cgan_mnist.ipynb", as_version=4)
    code = "\n".join(c.source for c in student.cells if c.cell_type == "code")
    text = "\n".join(c.source for c in student.cells if c.cell_type == "markdown")
    for name in ("LR_G", "LR_D", "BETA1", "BETAS", "D_STEPS", "G_STEPS"):
        assert not re.search(rf"^\s*(\w+\s*,\s*)*{name}\b[^=\n]*=(?!=)", code, re.M), f"the student release sets {name}"
    for value in ("2e-4", "4e-4", "2\\cdot10^{-4}", "4\\cdot10^{-4}", "0.0002", "0.0004", "(0.5, 0.999)", "twice",
                  "D_STEPS = G_STEPS = 1", "no advantage"):
        assert value not in text, value
    assert "(0.5, 0.999)" not in code and "2e-4" not in code and "4e-4" not in code
    assert not re.search(r"def (make_optimizers|train)\([^)]*=\s*(LR_|BETA|[0-9])", code), "a default hands a value"


def test_the_student_release_loads_without_the_choices_and_stops_at_them():
    """Issue 25: the exported cells of the release load without the choices cell (nothing exported reads a choice
    at import time), and the choices cell itself is a TODO that raises."""
    import nbformat

    release = NOTEBOOK.parent.parent / "02_cgan_mnist.ipynb"
    student = load_exports(release, name="cgan_release_for_tests")
    assert not hasattr(student, "LR_G") and callable(student.train) and callable(student.training_step)
    cell = next(c for c in nbformat.read(release, as_version=4).cells if "choices" in c.metadata.get("tags", []))
    with pytest.raises(NotImplementedError):
        exec(cell.source, {})


def test_one_update_each_is_one_call_of_train_step(solution):
    """With d_steps = g_steps = 1 a training step is exactly the student's train_step with new noise (the reference
    run's loop is unchanged); with more, each network is updated as often as it is told, the other one left alone."""
    G, D, opt_g, opt_d, real, labels, _ = checks.fixed_case()
    G2, D2 = checks.fixed_case()[:2]
    torch.manual_seed(5)
    logged = solution.training_step(G, D, opt_g, opt_d, nn.BCELoss(), real, labels, 1, 1)
    torch.manual_seed(5)
    z = torch.randn(len(real), G2.latent_dim)
    expected = solution.train_step(G2, D2, torch.optim.SGD(G2.parameters(), lr=checks.CASE_LR),
                                   torch.optim.SGD(D2.parameters(), lr=checks.CASE_LR), nn.BCELoss(), real, labels, z)
    assert logged == pytest.approx(expected, abs=1e-6)
    assert np.allclose(checks.flat_params(G), checks.flat_params(G2))
    assert np.allclose(checks.flat_params(D), checks.flat_params(D2))


@pytest.mark.parametrize("d_steps, g_steps", [(3, 1), (1, 2), (2, 2)])
def test_each_network_is_updated_as_often_as_chosen(solution, d_steps, g_steps):
    G, D, opt_g, opt_d, real, labels, _ = checks.fixed_case()
    counts = {"g": 0, "d": 0}
    for name, opt in (("g", opt_g), ("d", opt_d)):
        def counted(*args, _step=opt.step, _name=name, **kwargs):
            counts[_name] += 1
            return _step(*args, **kwargs)
        opt.step = counted
    logged = solution.training_step(G, D, opt_g, opt_d, nn.BCELoss(), real, labels, d_steps, g_steps)
    assert counts == {"g": g_steps, "d": d_steps}
    assert set(logged) == set(checks.STEP_KEYS) and all(isinstance(v, float) for v in logged.values())

# --------------------------------------------------------------------------- TODO 4: per-class report


def report_variant(solution, change):
    def report(p_real, p_fake, labels):
        out = solution.discriminator_report(p_real, p_fake, labels)
        return change(out, torch.as_tensor(p_real), torch.as_tensor(p_fake), torch.as_tensor(labels))
    return report


def _overall(out, p_real, p_fake, labels):
    acc = ((p_real > 0.5).float().mean() + (p_fake <= 0.5).float().mean()).item() / 2
    called = ((p_real > 0.5).float().mean() + (p_fake > 0.5).float().mean()).item() / 2
    return {"accuracy": np.full(10, acc), "called_real": np.full(10, called),
            "false_positive": np.full(10, (p_fake > 0.5).float().mean().item()),
            "false_negative": np.full(10, (p_real <= 0.5).float().mean().item())}


def test_discriminator_report_solution_passes(solution):
    checks.check_discriminator_report(solution.discriminator_report)


@pytest.mark.parametrize("change, match", [
    (lambda o, r, f, y: {**o, "false_positive": o["false_negative"], "false_negative": o["false_positive"]}, "swapped"),
    (lambda o, r, f, y: {**o, "accuracy": 1 - o["accuracy"]}, "inverted"),
    (lambda o, r, f, y: {**o, "called_real": 1 - o["false_negative"]}, "counts only the real images"),
    (lambda o, r, f, y: {**o, "false_positive": o["false_positive"] * 6}, "counts"),
    (_overall, "over all images"),
    (lambda o, r, f, y: {k: v for k, v in o.items() if k != "called_real"}, "missing"),
    (lambda o, r, f, y: {**o, "accuracy": o["accuracy"][:5]}, "one number per class"),
])
def test_discriminator_report_names_mistakes(solution, change, match):
    fails(checks.check_discriminator_report, report_variant(solution, change), match=match)


def _by_position(p_real, p_fake, labels):
    real, fake = ((torch.as_tensor(p) > 0.5).float().reshape(10, -1).mean(1).numpy() for p in (p_real, p_fake))
    return {"accuracy": (real + 1 - fake) / 2, "called_real": (real + fake) / 2, "false_positive": fake,
            "false_negative": 1 - real}


@pytest.mark.parametrize("change, match", [
    (lambda o, r, f, y: {k: 100 * v for k, v in o.items()}, "percentages"),
    (lambda o, r, f, y: {**o, "called_real": 2 * o["called_real"]}, "adds the share"),
    (lambda o, r, f, y: {**o, "called_real": o["false_positive"]}, "only the generated images"),
    (lambda o, r, f, y: {**o, "accuracy": 1 - o["false_negative"]}, "accuracy'\\] counts only the real"),
])
def test_discriminator_report_names_more_mistakes(solution, change, match):
    fails(checks.check_discriminator_report, report_variant(solution, change), match=match)


def test_discriminator_report_grouped_by_position_is_named():
    fails(checks.check_discriminator_report, _by_position, match="by position")


# --------------------------------------------------------------------------- TODO 5: 1-NN


def test_nearest_label_solution_passes(solution):
    checks.check_nearest_label(solution.nearest_label)


@pytest.mark.parametrize("wrong, match", [
    (lambda e, t: torch.cdist(e, t).argmax(1), "FARTHEST"),
    (lambda e, t: (e @ t.T).argmax(1), "inner product"),
    (lambda e, t: (F.normalize(e, dim=1) @ F.normalize(t, dim=1).T).argmax(1), "cosine"),
    (lambda e, t: torch.cdist(e, t), r"\(N, C\) distances"),
    (lambda e, t: torch.cdist(e, t).argmin(1).float(), "floats"),
    (lambda e, t: torch.cdist(e, t, p=1).argmin(1), "agrees with the Euclidean"),
    (lambda e, t: torch.cdist(e, t).argmin(0), "wrong axis"),
    (lambda e, t: torch.cdist(e, t).argmin(), "without dim"),
    (lambda e, t: t[torch.cdist(e, t).argmin(1)], "nearest table rows"),
    (lambda e, t: torch.cdist(e, t).min(1).values, "smallest distances"),
    (lambda e, t: torch.cdist(e, t).min(1), r"\(values, indices\)"),
])
def test_nearest_label_names_mistakes(wrong, match):
    fails(checks.check_nearest_label, wrong, match=match)


# --------------------------------------------------------------------------- TODO 6: interpolation


def _lerp(ts):
    return lambda a, b, steps: (1 - ts(steps)[:, None]) * a + ts(steps)[:, None] * b


def test_interpolate_solution_passes(solution):
    checks.check_interpolate(solution.interpolate)


@pytest.mark.parametrize("wrong, match", [
    (lambda a, b, steps: _lerp(lambda s: torch.linspace(0, 1, s))(b, a, steps), "swapped"),
    (_lerp(lambda s: torch.arange(s) / s), "not reached"),
    (_lerp(lambda s: torch.arange(1, s + 1) / s), "Row 0 is not a"),
    (lambda a, b, steps: _lerp(lambda s: torch.linspace(0, 1, s))(a, b, steps).T, r"\(D, steps\)"),
    (_lerp(lambda s: torch.linspace(0, 1, s) ** 2), "evenly spaced"),
    (lambda a, b, steps: (1 - torch.linspace(0, 1, steps)) * a + torch.linspace(0, 1, steps) * b, "t a column"),
    (_lerp(lambda s: torch.linspace(0, 1, s - 1)), "one short"),
    (_lerp(lambda s: torch.linspace(0, 1, s + 1)), "one too many"),
    (lambda a, b, steps: torch.cat([(1 - t) * a + t * b for t in torch.linspace(0, 1, steps)]), "not torch.cat"),
    (lambda a, b, steps: [(1 - t) * a + t * b for t in torch.linspace(0, 1, steps)], "torch.stack"),
    (lambda a, b, steps: (1 - (t := torch.linspace(0, 1, steps)[:, None])) * a + t * (b - a), "give b exactly"),
])
def test_interpolate_names_mistakes(wrong, match):
    fails(checks.check_interpolate, wrong, match=match)


# --------------------------------------------------------------------------- TODO 7: noise variations


def noisy(z_scale=lambda s: s, on_swap=False, z_base="zeros", same_noise=False, fixed_seed=False, label_shift=0,
          both=False, draw=torch.randn, multiply=False, repeat=True, swap_out=False):
    def variations(G, label, sigma, n, on="z", seed=0):
        gen = torch.Generator().manual_seed(0 if fixed_seed else seed)
        target = ("embedding" if on == "z" else "z") if on_swap else on
        z = torch.zeros(n, G.latent_dim) if z_base == "zeros" else torch.randn(n, G.latent_dim, generator=gen)
        e = G.embedding.weight[(label + label_shift) % 10].detach().repeat(n, 1)
        rows = 1 if same_noise else n
        if target == "z" or both:
            z = z + z_scale(sigma) * draw(rows, G.latent_dim, generator=gen).expand(n, -1)
        if target == "embedding" or both:
            noise = z_scale(sigma) * draw(rows, e.shape[1], generator=gen).expand(n, -1)
            e = e * (1 + noise) if multiply else e + noise
        if not repeat and target == "z":
            e = e[0]
        return (e, z) if swap_out else (z, e)
    return variations


def test_variations_solution_passes(solution):
    checks.check_variations(solution.variations)
    checks.check_variations(noisy())


@pytest.mark.parametrize("kwargs, match", [
    ({"on_swap": True}, "noise was added to the embedding"),
    ({"z_scale": lambda s: s ** 2}, "sigma²"),
    ({"z_scale": lambda s: 1.0}, "standard deviation 1"),
    ({"z_base": "random"}, "ZERO vector"),
    ({"same_noise": True}, "same noise in every row"),
    ({"fixed_seed": True}, "seed=1 gave the same noise"),
    ({"label_shift": 1}, "label's embedding"),
    ({"both": True}, "noise was added to the embedding"),
    ({"draw": torch.rand}, "uniform"),
    ({"z_scale": lambda s: s ** 0.5}, r"sqrt\(sigma\)"),
    ({"multiply": True}, "multiplies the embedding"),
    ({"repeat": False}, "repeat it once per variation"),
    ({"swap_out": True}, r"returns \(e, z\)"),
])
def test_variations_names_mistakes(kwargs, match):
    fails(checks.check_variations, noisy(**kwargs), match=match)


def test_variations_on_the_embedding_names_noise_on_z(solution):
    def wrong(G, label, sigma, n, on="z", seed=0):
        z, e = solution.variations(G, label, sigma, n, on="z", seed=seed)
        return z, e                                       # always on z, whatever `on` says
    fails(checks.check_variations, wrong, match="With on='embedding' the noise was added to z")


def test_variations_centred_on_another_class_is_named(solution):
    def wrong(G, label, sigma, n, on="z", seed=0):
        return solution.variations(G, (label + 2) % 10 if on == "embedding" else label, sigma, n, on=on, seed=seed)
    fails(checks.check_variations, wrong, match="centred on class 5")


# --------------------------------------------------------------------------- quality


def test_quality_check_names_a_missing_file_and_an_unknown_tier(tmp_path):
    fails(checks.check_quality, tmp_path / "cgan_final.pt", "good", match="saveModel")
    with pytest.raises(ValueError, match="Unknown tier"):
        checks.check_quality(tmp_path / "x.pt", "excellent")


def test_tiers_met_reads_all_three_thresholds():
    scores = {"conditional_accuracy": 0.99, "per_class_accuracy": [0.98] * 10, "fcd_over_floor": 3.0}
    assert checks.tiers_met(scores) == ["good", "fair"]
    assert checks.tiers_met({**scores, "per_class_accuracy": [0.98] * 9 + [0.8]}) == ["fair"]
    assert checks.tiers_met({**scores, "fcd_over_floor": 20.0}) == []


# --------------------------------------------------------------------------- issue 24: the wrong answers students gave

SHARED = nn.Embedding(10, 32)    # one table made at module level, as a student might


def test_an_embedding_made_outside_the_class_is_named(solution):
    class SharedG(solution.Generator):
        def __init__(self, latent_dim=100, embed_dim=32, channels=4):
            super().__init__(latent_dim, embed_dim, channels)
            self.embedding = SHARED

    class SharedD(solution.Discriminator):
        def __init__(self, embed_dim=32, channels=4):
            super().__init__(embed_dim, channels)
            self.embedding = SHARED

    fails(checks.check_generator, SharedG, match="made outside the class")
    fails(checks.check_discriminator, SharedD, match="made outside the class")


def test_g_and_d_sharing_one_embedding_after_construction_is_named(solution):
    G, D = solution.Generator(channels=4), solution.Discriminator(channels=4)
    checks.check_own_embeddings(G, D)
    D.embedding = G.embedding
    fails(checks.check_own_embeddings, G, D, match=r"share one label embedding")
    D2 = solution.Discriminator(channels=4)
    D2.embedding.weight = G.embedding.weight             # the same parameter in two modules
    fails(checks.check_own_embeddings, G, D2, match=r"share one label embedding")


def test_the_history_cell_checks_the_embeddings_are_apart():
    import json

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]]
    assert any("checks.check_history(" in c and "checks.check_own_embeddings(G, D)" in c for c in cells)


@pytest.mark.parametrize("kind", ["generator", "discriminator"])
def test_a_detached_embedding_that_never_learns_is_named(solution, kind):
    if kind == "generator":
        variant = generator_variant(solution, forward=lambda self, z, labels: self.from_embedding(
            z, self.embedding(labels).detach()))
        fails(checks.check_generator, variant, match="No gradient reaches the generator's embedding")
    else:
        def forward(self, x, labels):
            h = self.features(x)
            e = self.embedding.weight.data[labels]                          # .data: outside autograd
            return torch.sigmoid(self.head(h) + (e * self.project(h)).sum(1, keepdim=True))
        fails(checks.check_discriminator, discriminator_variant(solution, forward=forward),
              match="No gradient reaches the discriminator's embedding")


def test_interpolate_with_t_from_numpy_linspace_passes():
    checks.check_interpolate(lambda a, b, steps: (1 - (t := torch.tensor(np.linspace(0, 1, steps))[:, None])) * a
                             + t * b)                                       # float64 rows
    checks.check_interpolate(lambda a, b, steps: (1 - (t := torch.from_numpy(np.linspace(0, 1, steps)).float()
                                                       [:, None])) * a + t * b)
    checks.check_interpolate(lambda a, b, steps: torch.stack([torch.lerp(a, b, float(t))
                                                              for t in np.linspace(0, 1, steps)]))


def test_interpolate_with_a_numpy_t_mixed_into_tensors_is_named():
    fails(checks.check_interpolate, lambda a, b, steps: (1 - (t := np.linspace(0, 1, steps)[:, None])) * a + t * b,
          match="mixes a numpy array with tensors")


def test_the_interpolation_cell_casts_the_path_to_float32():
    import json

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]]
    cell = next(c for c in cells if "def path(a, b, n=steps)" in c)
    assert "torch.float32" in cell and "interpolate(z_a, z_b, steps)" not in cell


def test_nearest_label_returning_numpy_is_named():
    fails(checks.check_nearest_label, lambda e, t: torch.cdist(e, t).argmin(1).numpy(), match="numpy array")
    fails(checks.check_nearest_label, lambda e, t: np.argmin(torch.cdist(e, t).numpy(), axis=1), match="numpy array")


def test_noise_on_the_class_index_is_named(solution):
    def on_index(G, label, sigma, n, on="z", seed=0):
        if on == "z":
            return solution.variations(G, label, sigma, n, on="z", seed=seed)
        gen = torch.Generator().manual_seed(seed)
        index = (label + sigma * torch.randn(n, generator=gen)).round().long().clamp(0, 9)
        return torch.zeros(n, G.latent_dim), G.embedding.weight[index].detach()
    fails(checks.check_variations, on_index, match="added to the class index")


# ------------------------------------------------------------- issue 24: more wrong answers, and more valid forms


@pytest.mark.parametrize("wrong, match", [
    # a Linear layer of a one-hot vector instead of nn.Embedding
    (lambda s: generator_variant(s, embedding=lambda L, E: nn.Linear(10, E)), "no nn.Embedding"),
    # the label appended as one number
    (lambda s: generator_variant(s, in_channels=lambda L, E: L + 1), "takes 101 channels|receives z and e joined"),
])
def test_more_generator_mistakes_are_named(solution, wrong, match):
    fails(checks.check_generator, wrong(solution), match=match)


def _random_label_step(G, D, opt_g, opt_d, criterion, real, labels, z):
    """The fakes made for random labels, not the real batch's."""
    fake_labels = torch.randint(0, 10, labels.shape, generator=torch.Generator().manual_seed(1))
    opt_d.zero_grad()
    p_real = D(real, labels)
    fake = G(z, fake_labels)
    p_fake = D(fake.detach(), fake_labels)
    loss_d = criterion(p_real, torch.ones_like(p_real)) + criterion(p_fake, torch.zeros_like(p_fake))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    p_g = D(fake, fake_labels)
    loss_g = criterion(p_g, torch.ones_like(p_g))
    loss_g.backward()
    opt_g.step()
    return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
            "d_fake": p_fake.mean().item(), "d_acc": 0.5}


def _tensor_losses(G, D, opt_g, opt_d, criterion, real, labels, z):
    out = step()(G, D, opt_g, opt_d, criterion, real, labels, z)
    return {**out, "loss_d": torch.tensor(out["loss_d"], requires_grad=True)}


def _accuracy_after_update(G, D, opt_g, opt_d, criterion, real, labels, z):
    out = step()(G, D, opt_g, opt_d, criterion, real, labels, z)
    with torch.no_grad():
        p_real, p_fake = D(real, labels), D(G(z, labels), labels)
    return {**out, "d_acc": (((p_real > 0.5).float().mean() + (p_fake < 0.5).float().mean()) / 2).item()}


@pytest.mark.parametrize("wrong, match", [
    (_random_label_step, "fakes are made from the z given with the real batch's labels"),
    (_tensor_losses, "attached to the graph"),
    (_accuracy_after_update, "before opt_d.step"),
])
def test_more_train_step_mistakes_are_named(wrong, match):
    fails(checks.check_train_step, wrong, match=match)


def test_train_step_drawing_the_fakes_again_for_g_passes():
    """Making the D step's fakes under no_grad and G's again with a graph is as right (G has not changed)."""
    def twice(G, D, opt_g, opt_d, criterion, real, labels, z):
        opt_d.zero_grad()
        p_real = D(real, labels)
        with torch.no_grad():
            fake = G(z, labels)
        p_fake = D(fake, labels)
        loss_d = criterion(p_real, torch.ones_like(p_real)) + criterion(p_fake, torch.zeros_like(p_fake))
        loss_d.backward()
        opt_d.step()
        opt_g.zero_grad()
        p_g = D(G(z, labels), labels)
        loss_g = criterion(p_g, torch.ones_like(p_g))
        loss_g.backward()
        opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), "d_real": p_real.mean().item(),
                "d_fake": p_fake.mean().item(),
                "d_acc": (((p_real > 0.5).float().mean() + (p_fake < 0.5).float().mean()) / 2).item()}
    checks.check_train_step(twice)


def test_nearest_label_valid_forms_pass():
    checks.check_nearest_label(lambda e, t: ((e[:, None] - t[None]) ** 2).sum(-1).argmin(1))     # squared distance
    checks.check_nearest_label(lambda e, t: torch.cdist(e, t).argmin(1).int())                      # int32 labels
    checks.check_nearest_label(lambda e, t: torch.cdist(e, t).min(1).indices)


def test_report_as_tensors_or_lists_passes(solution):
    checks.check_discriminator_report(report_variant(solution, lambda o, r, f, y: {k: torch.as_tensor(v)
                                                                                    for k, v in o.items()}))
    checks.check_discriminator_report(report_variant(solution, lambda o, r, f, y: {k: list(v) for k, v in o.items()}))


@pytest.mark.parametrize("kwargs, match", [
    ({"fixed_seed": True, "draw": lambda *shape, generator: torch.randn(*shape)}, "same seed gave different noise"),
])
def test_more_variations_mistakes_are_named(kwargs, match):
    fails(checks.check_variations, noisy(**kwargs), match=match)
