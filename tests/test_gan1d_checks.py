"""The 1D-GAN check cells: the solution passes, and each typical mistake gets the message that names it."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labkit.checks import CheckFailed
from labkit.checks import gan1d as checks
from labkit.instructor.notebook import load_exports

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def solution():
    return load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")


def bce(p, y):
    return F.binary_cross_entropy(p, torch.full_like(p, y))


def make_d_step(detach=True, swap=False, average=False, zero_grad=True, smooth=True, step=True):
    def d_step(G, D, opt_d, real, z, real_label=1.0):
        if zero_grad:
            opt_d.zero_grad()
        fake = G(z).detach() if detach else G(z)
        p_real, p_fake = D(real), D(fake)
        label = real_label if smooth else 1.0
        loss = bce(p_real, 0.0) + bce(p_fake, label) if swap else bce(p_real, label) + bce(p_fake, 0.0)
        if average:
            loss = loss / 2
        loss.backward()
        if step:
            opt_d.step()
        return {"loss_d": loss.item(), "d_real": p_real.mean().item(), "d_fake": p_fake.mean().item()}
    return d_step


def make_g_step(saturating=False, zero_grad=True, detach=False, as_tensor=False):
    def g_step(G, D, opt_g, z):
        if zero_grad:
            opt_g.zero_grad()
        fake = G(z).detach().requires_grad_() if detach else G(z)
        p = D(fake)
        loss = torch.log(1 - p).mean() if saturating else bce(p, 1.0)
        loss.backward()
        opt_g.step()
        return {"loss_g": loss if as_tensor else loss.item()}
    return g_step


def test_solution_passes_every_step_check(solution, capsys):
    checks.check_d_step(solution.d_step)
    checks.check_g_step(solution.g_step)
    checks.check_epoch_means(solution.epoch_means)
    assert capsys.readouterr().out.count("✔") == 3


def test_a_correct_independent_implementation_passes():
    checks.check_d_step(make_d_step())
    checks.check_g_step(make_g_step())


@pytest.mark.parametrize("mistake, message", [
    (dict(detach=False), "detach"),
    (dict(swap=True), "swapped labels"),
    (dict(average=True), "do not\\s+average"),
    (dict(zero_grad=False), "zero_grad"),
    (dict(smooth=False), "real_label"),
    (dict(step=False), "opt_d.step"),
])
def test_d_step_mistakes_are_named(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_d_step(make_d_step(**mistake))


@pytest.mark.parametrize("mistake, message", [
    (dict(saturating=True), "saturating loss"),
    (dict(zero_grad=False), "zero_grad"),
    (dict(detach=True), "weights did not change"),
    (dict(as_tensor=True), r"loss.item\(\)"),
])
def test_g_step_mistakes_are_named(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_g_step(make_g_step(**mistake))


def test_g_step_that_also_steps_d_is_caught():
    def g_step(G, D, opt_g, z):
        opt_g.zero_grad()
        loss = bce(D(G(z)), 1.0)
        loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.data -= 0.1 * p.grad
        return {"loss_g": loss.item()}
    with pytest.raises(CheckFailed, match="discriminator's weights changed"):
        checks.check_g_step(g_step)


def _last_values(totals, counts):
    """A wrong epoch_means that keeps the last logged value (it reads the check's case: the loop's values)."""
    return {key: values[-1] for key, values in checks.epoch_log_case()[2].items()}


@pytest.mark.parametrize("epoch_means, message", [
    (lambda t, c: {k: v / 3 for k, v in t.items()}, r"divided by steps_per_epoch \(3\).*loss_d was logged 6 times"),
    (lambda t, c: {k: v / c["loss_g"] for k, v in t.items()}, "not by steps_per_epoch"),
    (lambda t, c: {k: v / max(c.values()) for k, v in t.items()}, r"loss_g .* divided by the largest count \(6\)"),
    (lambda t, c: dict(t), "is the sum of its 6 values"),
    (_last_values, "last logged value"),
    (lambda t, c: {k: t[k] // c[k] for k in t}, "floor division"),
    (lambda t, c: {k: [t[k] / c[k]] for k in t}, "is a list; return one float per key"),
    (lambda t, c: {k: torch.tensor(t[k]) / c[k] for k in t}, "is a tensor; return a Python float"),
    (lambda t, c: {k: np.array([t[k] / c[k]]) for k in t}, "is a ndarray"),
    (lambda t, c: {k: t[k] / c[k] for k in ("loss_d", "loss_g", "d_real", "d_fake")}, r"missing \['grad_norm'\].*loop\s+over totals"),
    (lambda t, c: {}, "missing"),
    (lambda t, c: {**{k: t[k] / c[k] for k in t}, "loss": 1.0}, "never logged"),
    (lambda t, c: [t[k] / c[k] for k in t], "must return a dict"),
    (lambda t, c: {k: t[k] / c[k] + 1e-3 for k in t}, "expected the mean totals"),
])
def test_epoch_means_mistakes_are_named(epoch_means, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_epoch_means(epoch_means)


def test_epoch_means_accepts_numpy_floats_and_does_not_care_about_input_changes():
    checks.check_epoch_means(lambda t, c: {k: np.float64(t[k]) / c[k] for k in t})
    checks.check_epoch_means(lambda t, c: {k: t.pop(k) / c[k] for k in list(t)})  # emptying its input is fine


def test_epoch_means_case_tells_the_mistakes_apart():
    totals, counts, values = checks.epoch_log_case()
    assert counts["loss_d"] == 2 * counts["loss_g"] == 2 * checks.EPOCH_STEPS_PER_EPOCH
    for key in totals:
        mean = totals[key] / counts[key]
        wrong = [totals[key], values[key][-1]] + [totals[key] / n for n in (3, 6) if n != counts[key]]
        assert min(abs(mean - w) for w in wrong) > 0.01, key   # the check tolerates 1e-6


def test_history_check():
    good = {k: list(np.linspace(0.2, 0.6, 5) + i * 0.01) for i, k in enumerate(["loss_d", "loss_g", "d_real", "d_fake"])}
    checks.check_history(good, 5)
    with pytest.raises(CheckFailed, match="has 5 values, expected 6"):
        checks.check_history(good, 6)
    with pytest.raises(CheckFailed, match="no 'loss_g'"):
        checks.check_history({k: v for k, v in good.items() if k != "loss_g"}, 5)
    with pytest.raises(CheckFailed, match="probabilities"):
        checks.check_history({**good, "d_real": [1.5] * 5}, 5)
    with pytest.raises(CheckFailed, match="must be a dict"):
        checks.check_history([good], 5)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_history_with_nan_or_inf_is_refused(bad):
    good = {k: [0.4, 0.5, 0.6] for k in ["loss_d", "loss_g"]} | {"d_real": [0.6, 0.6, 0.6], "d_fake": [0.4, 0.4, 0.4]}
    for key in ("loss_d", "loss_g"):
        with pytest.raises(CheckFailed, match=rf"history\['{key}'\] holds NaN or inf"):
            checks.check_history({**good, key: [0.4, bad, 0.6]}, 3)


def test_history_with_identical_d_curves_is_refused():
    same = [0.5, 0.45, 0.48]
    history = {"loss_d": [1.3, 1.35, 1.4], "loss_g": [0.7, 0.72, 0.69], "d_real": list(same), "d_fake": list(same)}
    with pytest.raises(CheckFailed, match="d_real and d_fake are identical"):
        checks.check_history(history, 3)
    checks.check_history({**history, "d_real": [0.5, 0.45, 0.47]}, 3)


def test_student_release_raises_at_its_todos():
    student = load_exports(REPO / "notebooks" / "01_gan_1d.ipynb")
    with pytest.raises(NotImplementedError, match="detached fake"):
        checks.check_d_step(student.d_step)
    with pytest.raises(NotImplementedError):
        checks.check_g_step(student.g_step)
    with pytest.raises(NotImplementedError, match="its own count"):
        checks.check_epoch_means(student.epoch_means)
    with pytest.raises(NotImplementedError):
        student.tuned_config("laplace")
