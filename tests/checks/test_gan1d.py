"""The 1D-GAN check cells: the solution passes, and each typical mistake gets the message that names it."""
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from labkit.checks import CheckFailed
from labkit.checks import gan1d as checks
from labkit.instructor.notebook import load_exports

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def solution():
    return load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")


def bce(p, y):
    return F.binary_cross_entropy(p, torch.full_like(p, y))


def make_d_step(detach=True, swap=False, average=False, zero_grad=True, smooth=True, step=True, no_grad_real=False,
                no_grad_fake=False, log_after=False, steps=1):
    def d_step(G, D, opt_d, real, z, real_label=1.0):
        if zero_grad:
            opt_d.zero_grad()
        fake = G(z).detach() if detach else G(z)
        with torch.set_grad_enabled(not no_grad_real):
            p_real = D(real)
        with torch.set_grad_enabled(not no_grad_fake):
            p_fake = D(fake)
        label = real_label if smooth else 1.0
        loss = bce(p_real, 0.0) + bce(p_fake, label) if swap else bce(p_real, label) + bce(p_fake, 0.0)
        if average:
            loss = loss / 2
        loss.backward()
        for _ in range(steps if step else 0):
            opt_d.step()
        if log_after:
            with torch.no_grad():
                p_real, p_fake = D(real), D(fake)
        return {"loss_d": loss.item(), "d_real": p_real.mean().item(), "d_fake": p_fake.mean().item()}
    return d_step


def concatenated_d_step(G, D, opt_d, real, z, real_label=1.0):
    """The common one-call form: BCE over cat(real, fake) with targets cat(real_label, 0), i.e. the mean of the
    two terms."""
    opt_d.zero_grad()
    x = torch.cat([real, G(z).detach()])
    p = D(x)
    y = torch.cat([torch.full_like(real, real_label), torch.zeros(len(z), 1)])
    loss = F.binary_cross_entropy(p, y)
    loss.backward()
    opt_d.step()
    return {"loss_d": loss.item(), "d_real": p[:len(real)].mean().item(), "d_fake": p[len(real):].mean().item()}


def make_g_step(saturating=False, zero_grad=True, detach=False, plain_detach=False, as_tensor=False, target=1.0,
                steps=1):
    def g_step(G, D, opt_g, z):
        if zero_grad:
            opt_g.zero_grad()
        fake = G(z).detach().requires_grad_() if detach else G(z).detach() if plain_detach else G(z)
        p = D(fake)
        loss = torch.log(1 - p).mean() if saturating else bce(p, target)
        loss.backward()
        for _ in range(steps):
            opt_g.step()
        return {"loss_g": loss if as_tensor else loss.item()}
    return g_step


def test_solution_passes_every_step_check(solution, capsys):
    checks.check_d_step(solution.d_step)
    checks.check_g_step(solution.g_step)
    checks.check_epoch_means(solution.epoch_means)
    assert capsys.readouterr().out.count("✔") == 3


def test_a_correct_independent_implementation_passes(capsys):
    checks.check_d_step(make_d_step())
    checks.check_g_step(make_g_step())
    assert "the sum of the two BCE terms; 2 log 2" in capsys.readouterr().out


@pytest.mark.parametrize("d_step", [concatenated_d_step, make_d_step(average=True)], ids=["concatenated", "mean"])
def test_the_mean_form_of_d_loss_passes(d_step, capsys):
    """One BCE call on the concatenated batch is the mean of the two terms (half the sum): a valid form, accepted
    with its own equilibrium value, as long as the logged loss and the update use the same form."""
    checks.check_d_step(d_step)
    assert "one BCE over cat(real, fake); log 2 = 0.693 at equilibrium" in capsys.readouterr().out


@pytest.mark.parametrize("mistake, message", [
    (dict(detach=False), "detach"),
    (dict(swap=True), "swapped labels"),
    (dict(swap=True, average=True), "swapped labels"),
    (dict(zero_grad=False), r"still held last step's gradients.*zero_grad\(\)"),
    (dict(zero_grad=False, average=True), r"still held last step's gradients.*zero_grad\(\)"),
    (dict(smooth=False), "real_label"),
    (dict(smooth=False, average=True), "real_label"),
    (dict(step=False), r"call loss.backward\(\) and then opt_d.step\(\)"),
    (dict(steps=2), r"opt_d.step\(\) ran 2 times"),
    (dict(no_grad_real=True), r"only its fake term.*D\(real\) was computed under\s+torch.no_grad\(\)"),
    (dict(no_grad_real=True, zero_grad=False), r"D\(real\) was computed under\s+torch.no_grad\(\)"),
    (dict(no_grad_fake=True), r"only its real term.*score of the fake batch was computed under torch.no_grad"),
    (dict(log_after=True), r"D's outputs after opt_d.step\(\).*before the update"),
])
def test_d_step_mistakes_are_named(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_d_step(make_d_step(**mistake))


@pytest.mark.parametrize("mistake, message", [
    (dict(saturating=True), "saturating loss log"),
    (dict(target=0.0), r"BCE\(D\(G\(z\)\), 0\): target 0 trains G to make D call its samples fake"),
    (dict(zero_grad=False), r"still held last step's gradients.*opt_g.zero_grad\(\)"),
    (dict(detach=True), r"G received no gradient.*G\(z\) was detached"),
    (dict(plain_detach=True), r"G received no gradient.*G\(z\) was detached"),
    (dict(steps=2), r"opt_g.step\(\) ran 2 times"),
    (dict(steps=0), r"call loss.backward\(\) and then opt_g.step\(\)"),
    (dict(as_tensor=True), r"loss.item\(\)"),
])
def test_g_step_mistakes_are_named(mistake, message):
    with pytest.raises(CheckFailed, match=message):
        checks.check_g_step(make_g_step(**mistake))


def test_saturating_loss_message_is_kept_for_the_saturating_loss_only():
    with pytest.raises(CheckFailed) as target0:
        checks.check_g_step(make_g_step(target=0.0))
    assert "saturating" not in str(target0.value)


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
    (lambda t, c: {k: v / c["loss_g"] for k, v in t.items()}, "its own count, which is not steps_per_epoch"),
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
    (lambda t, c: {k: t[k] / c[k] + 1e-3 for k in t}, r"expected the epoch's mean of loss_d, 1\.29667: its total over its own count"),
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


def make_train_gan(log):
    """A training loop that calls the steps like the notebook's train_gan and logs with ``log(outs, config)``."""
    from labkit.labs.gan1d import TrainResult

    def train_gan(config, d_step, g_step, snapshot_size=5000, snapshot_every=1, progress=False):
        history, everything = {}, []
        for epoch in range(config.epochs):
            outs = []
            for _ in range(config.steps_per_epoch):
                for _ in range(config.d_steps):
                    outs.append(d_step(None, None, None, None, None, real_label=config.real_label))
                outs.append(g_step(None, None, None, None))
            everything += outs
            for key, value in log(outs, config, everything).items():
                history.setdefault(key, []).append(value)
        return TrainResult(config, None, None, history)
    return train_gan


def _values(outs, key):
    return [o[key] for o in outs if key in o]


LOOP_MISTAKES = {
    "mean": lambda outs, c, _: {k: float(np.mean(_values(outs, k))) for k in checks.LOOP_KEYS},
    "last batch": lambda outs, c, _: {k: _values(outs, k)[-1] for k in checks.LOOP_KEYS},
    "steps_per_epoch": lambda outs, c, _: {k: sum(_values(outs, k)) / c.steps_per_epoch for k in checks.LOOP_KEYS},
    "sum": lambda outs, c, _: {k: sum(_values(outs, k)) for k in checks.LOOP_KEYS},
    "running mean": lambda outs, c, every: {k: float(np.mean(_values(every, k))) for k in checks.LOOP_KEYS},
}


def test_history_check_runs_the_loop_and_passes_the_solution_and_a_plain_mean(solution, capsys):
    good = {k: [0.5, 0.6, 0.7] for k in ("loss_d", "loss_g")} | {"d_real": [0.6, 0.55, 0.5], "d_fake": [0.4, 0.45, 0.5]}
    checks.check_history(good, 3, train_gan=solution.train_gan)
    checks.check_history(good, 3, train_gan=make_train_gan(LOOP_MISTAKES["mean"]))
    assert capsys.readouterr().out.count("each epoch's mean of what the steps returned") == 2


@pytest.mark.parametrize("mistake, message", [
    ("last batch", r"is the last logged value \(one batch per epoch\)"),
    ("steps_per_epoch", r"loss_d = 2\.59333 is its total divided by steps_per_epoch \(3\), but loss_d was logged 6 times"),
    ("sum", "is the sum of its 6 values"),
    ("running mean", r"mean over epochs 1-2: the sums must start from zero every epoch"),
])
def test_history_check_names_the_loop_mistake(mistake, message):
    good = {k: [0.5, 0.6] for k in ("loss_d", "loss_g")} | {"d_real": [0.6, 0.55], "d_fake": [0.4, 0.45]}
    with pytest.raises(CheckFailed, match=message):
        checks.check_history(good, 2, train_gan=make_train_gan(LOOP_MISTAKES[mistake]))


def test_history_check_with_a_train_gan_of_another_signature():
    def train_gan(config):
        raise AssertionError("not called with these arguments")
    with pytest.raises(CheckFailed, match="keep the signature"):
        checks.check_history({}, 2, train_gan=train_gan)


def test_summed_d_means_are_called_a_sum_not_a_loss():
    history = {"loss_d": [70.0, 68.0], "loss_g": [35.0, 36.0], "d_real": [27.5, 26.0], "d_fake": [22.0, 23.5]}
    with pytest.raises(CheckFailed, match=r"reaches 27.5, above 1.*is a sum over the epoch's steps") as info:
        checks.check_history(history, 2)
    assert "not losses" not in str(info.value)
    with pytest.raises(CheckFailed, match="below 0.*not a loss or a logit"):
        checks.check_history({**history, "d_real": [-0.7, -0.6], "d_fake": [0.3, 0.2]}, 2)


def test_history_check():
    good = {k: list(np.linspace(0.2, 0.6, 5) + i * 0.01) for i, k in enumerate(["loss_d", "loss_g", "d_real", "d_fake"])}
    checks.check_history(good, 5)
    with pytest.raises(CheckFailed, match="has 5 values, expected 6"):
        checks.check_history(good, 6)
    with pytest.raises(CheckFailed, match="no 'loss_g'"):
        checks.check_history({k: v for k, v in good.items() if k != "loss_g"}, 5)
    with pytest.raises(CheckFailed, match="probabilities: a value above 1 is a sum"):
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


def _solution_notebook():
    import nbformat

    return nbformat.read(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb", as_version=4)


def test_points_follow_the_handout_exercise_1_and_exercise_2():
    """Exercise 1: 0.15 (written); Exercise 2: 0.35 = the TODO checks (0.10, weighted inside Exercise 2), the
    quality of the saved generator (0.10) and the written answers (0.15)."""
    from labkit.notebook_format import answers_in, checks_in

    nb = _solution_notebook()
    checks_, answers = checks_in(nb), answers_in(nb)
    points = {cid: info["points"] for cid, info in {**checks_, **answers}.items()}
    assert points == pytest.approx({"ex1_why_gan": 0.15, "d_step": 0.04, "g_step": 0.03, "epoch_means": 0.02,
                                    "history": 0.01, "ex2_quality_fair": 0.05, "ex2_quality_good": 0.05,
                                    "ex2_questions": 0.05, "ex2_conclusions": 0.10})
    assert sum(points.values()) == pytest.approx(0.5)
    header = nb.cells[0].source
    assert "**Exercise 1**: why a GAN? | **0.15**" in header and "**Exercise 2** | **0.35**" in header
    for cell in nb.cells:   # every check cell's comment states its own points
        meta = cell.get("metadata", {}).get("labkit", {})
        if "check" in meta:
            assert f"({meta['points']:g} " in cell.source or f"({meta['points']:g} more" in cell.source, cell.source


def test_the_limits_in_the_text_are_the_graded_ones():
    import re

    text = next(c.source for c in _solution_notebook().cells if c.source.startswith("## Exercise 2"))
    rows = re.findall(r"\| `\"(\w+)\"` \| KS ≤ ([\d.]+) and W1/std ≤ ([\d.]+) \| KS ≤ ([\d.]+) and W1/std ≤ ([\d.]+) \|",
                      text)
    assert {name for name, *_ in rows} == {"laplace", "halfnormal", "petitprince"}
    mixture = re.findall(r"\| `distributions.mixture\((\{.*?\})\)` \| KS ≤ ([\d.]+) and W1/std ≤ ([\d.]+) \| "
                         r"KS ≤ ([\d.]+) and W1/std ≤ ([\d.]+) \|", text)
    assert [eval(spec) for spec, *_ in mixture] == [checks.HANDOUT_MIXTURE]
    for name, gk, gw, fk, fw in rows + mixture:
        tiers = checks.quality_tiers(eval(name) if name.startswith("{") else name)
        assert tiers["good"] == (float(gk), float(gw)) and tiers["fair"] == (float(fk), float(fw)), name
    assert "100,000 samples" in text and "20,000" not in text
    assert "| another mixture | not graded" in text and "not harder" in text


def test_notebook_text_says_before_the_update_and_that_quality_checks_need_a_full_run():
    cells = _solution_notebook().cells
    todo1 = next(c.source for c in cells if c.source.startswith("## TODO 1"))
    assert "before the update" in todo1 and "concatenated batch" in todo1
    hand_in = next(c.source for c in cells if c.source.startswith("## What to hand in"))
    assert "in full once" in hand_in and "No usable saved model" in hand_in
    assert "every check should pass in a minute" not in hand_in
    assert any("D^*(x) = \\frac{p(x)}{p(x) + q(x)}" in c.source and "2\\log 2" in c.source for c in cells)
    assert any("Mode collapse" in c.source for c in cells)


# Issue 27: the last wrong answers that passed, crashed or were told another mistake, and the valid variants
# beside them.

def _d_step_with(fake_target=lambda real_label: 0.0, loss=F.binary_cross_entropy, zero="before", own_noise=False,
                 step_per_term=False, zero_with=None):
    """A d_step in the solution's shape with one thing changed: the fake batch's target (a function of
    real_label), the BCE, where zero_grad sits ("before", "between" backward and step), its own noise, a step
    after each BCE term, or zeroing through another object (``zero_with(D, opt_d)``)."""
    def d_step(G, D, opt_d, real, z, real_label=1.0):
        if zero == "before":
            (zero_with or (lambda D, opt: opt.zero_grad()))(D, opt_d)
        z = torch.randn_like(z) if own_noise else z
        p_real, p_fake = D(real), D(G(z).detach())
        real_term = loss(p_real, torch.full_like(p_real, real_label))
        fake_term = loss(p_fake, torch.full_like(p_fake, fake_target(real_label)))
        if step_per_term:
            real_term.backward()
            opt_d.step()
            fake_term.backward()
            opt_d.step()
        else:
            (real_term + fake_term).backward()
            if zero == "between":
                opt_d.zero_grad()
            opt_d.step()
        loss_d = real_term + fake_term
        return {"loss_d": loss_d.item(), "d_real": p_real.mean().item(), "d_fake": p_fake.mean().item()}
    return d_step


def _g_step_with(loss=lambda p: bce(p, 1.0), zero="before", own_noise=False, freeze=None):
    """A g_step in the solution's shape with one thing changed: the loss, where zero_grad sits, its own noise,
    or D frozen around the step (``freeze``: "leave" frozen, "restore" it, "loop": per parameter and restored)."""
    def g_step(G, D, opt_g, z):
        if freeze in ("leave", "restore"):
            D.requires_grad_(False)
        if freeze == "loop":
            for q in D.parameters():
                q.requires_grad = False
        if zero == "before":
            opt_g.zero_grad()
        z = torch.randn_like(z) if own_noise else z
        loss_g = loss(D(G(z)))
        loss_g.backward()
        if zero == "between":
            opt_g.zero_grad()
        opt_g.step()
        if freeze == "restore":
            D.requires_grad_(True)
        if freeze == "loop":
            for q in D.parameters():
                q.requires_grad = True
        return {"loss_g": loss_g.item()}
    return g_step


def _with_logits(p, y):
    return F.binary_cross_entropy_with_logits(p, torch.full_like(p, y))


@pytest.mark.parametrize("d_step, message", [
    (_d_step_with(fake_target=lambda r: 1 - r), r"With real_label=0.9 .*fake batch's target moved away from 0.*"
                                                r"one-sided: real_label is the target of the real batch only"),
    (_d_step_with(fake_target=lambda r: 0.0 if r == 1 else 0.9), "one-sided"),
    (_d_step_with(zero="between"), r"opt_d.zero_grad\(\) ran after loss_d.backward\(\): it erased the gradient"),
    (_d_step_with(own_noise=True), r"d_step drew its own random numbers .* instead of using the z it is given"),
    (_d_step_with(loss=lambda p, y: F.binary_cross_entropy_with_logits(p, y)),
     r"loss_d matches a BCE \*with logits\* .* second sigmoid"),
    (_d_step_with(step_per_term=True), r"d_step crashed with PyTorch's in-place error: opt_d.step\(\) ran between two "
                                       r"backward passes"),
])
def test_d_step_mistakes_of_issue_27_are_named(d_step, message):
    with pytest.raises(CheckFailed, match=message) as info:
        checks.check_d_step(d_step)
    assert "not a hard-coded 1" not in str(info.value) and "detach" not in str(info.value).lower()


def test_a_hard_coded_real_target_is_still_told_as_such():
    with pytest.raises(CheckFailed, match="not a hard-coded 1"):
        checks.check_d_step(make_d_step(smooth=False))


@pytest.mark.parametrize("d_step", [
    _d_step_with(),
    _d_step_with(zero_with=lambda D, opt: D.zero_grad()),                    # zeroing through the network
    _d_step_with(zero_with=lambda D, opt: opt.zero_grad(set_to_none=False)),
    _d_step_with(loss=lambda p, y: torch.nn.BCELoss()(p, y)),
], ids=["solution shape", "D.zero_grad", "zero_grad to zeros", "nn.BCELoss"])
def test_valid_d_step_variants_pass(d_step, capsys):
    checks.check_d_step(d_step)
    assert "✔ d_step" in capsys.readouterr().out


@pytest.mark.parametrize("g_step, message", [
    (_g_step_with(zero="between"), r"opt_g.zero_grad\(\) ran after loss_g.backward\(\): it erased the gradient"),
    (_g_step_with(freeze="leave"), r"g_step leaves D's weights frozen \(requires_grad False\) when it returns"),
    (_g_step_with(own_noise=True), r"g_step drew its own random numbers"),
    (_g_step_with(loss=lambda p: _with_logits(p, 1.0)), r"loss_g matches a BCE \*with logits\*"),
])
def test_g_step_mistakes_of_issue_27_are_named(g_step, message):
    with pytest.raises(CheckFailed, match=message) as info:
        checks.check_g_step(g_step)
    assert "was detached" not in str(info.value)


@pytest.mark.parametrize("g_step", [
    _g_step_with(freeze="restore"), _g_step_with(freeze="loop"), _g_step_with(loss=lambda p: -torch.log(p).mean()),
], ids=["D frozen and restored", "per-parameter freeze, restored", "-log D(G(z))"])
def test_valid_g_step_variants_pass(g_step, capsys):
    checks.check_g_step(g_step)
    assert "✔ g_step" in capsys.readouterr().out


def test_a_g_step_that_leaves_d_frozen_would_stop_the_next_d_step(solution):
    """What the frozen-D message says: the next d_step then fails with an autograd error."""
    G, D, opt_g, opt_d, real, z = checks.fixed_case()
    _g_step_with(freeze="leave")(G, D, opt_g, z)
    with pytest.raises(RuntimeError, match="does not require grad"):
        solution.d_step(G, D, opt_d, real, z)


# Targets: recognised by their distribution, "harder" by distance from N(4, 0.5), graded against their own limits.

CHECKPOINTS = REPO / "checkpoints"


def test_targets_are_recognised_by_distribution_not_name():
    from labkit import distributions

    assert checks.tier_key(distributions.mixture({"normal": 1.0})) == "normal"
    assert checks.tier_key(distributions.mixture([("normal", 0.5), ("normal", 0.5)])) == "normal"
    assert checks.tier_key({"halfnormal": 0.5, "laplace": 0.5}) == "laplace+halfnormal"   # order does not matter
    assert checks.tier_key(distributions.get("petitprince")) == "petitprince"
    assert checks.tier_key({"laplace": 0.3, "halfnormal": 0.7}) is None
    assert checks.distance_from_normal(distributions.mixture({"normal": 1.0})) < 1e-9
    # the nearest target one can write with the kit: 0.9 on N(4, 0.5) and 0.1 elsewhere is still another target
    assert checks.distance_from_normal({"normal": 0.9, "laplace": 0.1}) > checks.NOT_HARDER_KS
    for name in ("laplace", "halfnormal", "petitprince"):
        assert checks.distance_from_normal(name) > 0.3, name


def test_every_offered_target_has_its_own_limits_and_others_are_refused_by_name():
    for key in checks.TIER_TARGETS:
        (gk, gw), (fk, fw) = checks.quality_tiers(checks.TIER_TARGETS[key])["good"], checks.quality_tiers(
            checks.TIER_TARGETS[key])["fair"]
        assert gk < fk and gw < fw, key
    with pytest.raises(ValueError, match=r"No measured quality limits for 0.3·Laplace.*grade \"laplace\""):
        checks.quality_tiers({"laplace": 0.3, "halfnormal": 0.7})


@pytest.mark.parametrize("target, message", [
    ("laplace", r"✔ target Laplace\(3.0, 0.3\): graded .* full marks at KS <= 0.02"),
    ({"laplace": 0.5, "halfnormal": 0.5}, r"✔ target 0.5·Laplace.*full marks at KS <= "),
    ({"normal": 1.0}, r"✘ Exercise 2 asks for a harder target .* it is N\(4, 0.5\), whatever its name"),
    ({"laplace": 0.3, "halfnormal": 0.7}, r"✘ No measured quality limits"),
    ("Petit Prince: ½·N(4.0, 1.5) + ½·N(0.6, 1.35)", r"✘ TARGET is 'Petit Prince.*not a target labkit can rebuild"),
])
def test_check_target_says_whether_and_how_a_target_is_graded(target, message, capsys):
    import re

    checks.check_target(target)
    assert re.search(message, capsys.readouterr().out)


def _resave(tmp_path, source, name, **metadata):
    """The generator of checkpoint ``source`` saved again as ``name`` with other metadata."""
    from labkit.checkpoint import loadModel, saveModel

    model = loadModel(CHECKPOINTS / source)
    kept = {k: v for k, v in model.checkpoint_metadata.items() if k in ("config", "target")}
    saveModel(model, tmp_path / name, **{**kept, **metadata})
    return tmp_path / name


@pytest.mark.parametrize("target", [{"normal": 1.0}, [("normal", 0.5), ("normal", 0.5)]], ids=["1·normal", "2 normals"])
def test_a_target_that_is_secretly_the_baseline_normal_is_not_harder(tmp_path, target):
    from labkit import distributions

    spec = distributions.mixture(target).spec
    path = _resave(tmp_path, "gan1d_normal.pt", "g.pt", target=spec, config=None)
    with pytest.raises(CheckFailed, match=r"harder target than the baseline's N\(4, 0.5\).*whatever its name"):
        checks.check_final_model(path, tier="fair", target=distributions.mixture(target))


def test_a_label_saved_as_the_target_fails_the_check_instead_of_crashing(tmp_path):
    from labkit import distributions

    path = _resave(tmp_path, "gan1d_petitprince.pt", "g.pt", target=distributions.get("petitprince").label)
    with pytest.raises(CheckFailed, match=r"recorded in g.pt is 'Petit Prince: .*not a target labkit can rebuild.*"
                                          r"trained_on"):
        checks.check_final_model(path, tier="fair", target="petitprince")


def test_a_model_resaved_with_another_target_name_is_told_so(tmp_path):
    path = _resave(tmp_path, "gan1d_laplace.pt", "g.pt", target="petitprince")
    with pytest.raises(CheckFailed, match=r"records the target petitprince, but the run it holds trained on laplace"
                                          r".*not a name written in by hand") as info:
        checks.check_final_model(path, tier="fair", target="petitprince")
    assert "tuned_config" not in str(info.value)


def test_target_changed_after_the_full_run_is_told_so():
    with pytest.raises(CheckFailed, match=r"trained on laplace .* but TARGET is petitprince\. TARGET changed after the "
                                          r"full run") as info:
        checks.check_final_model(CHECKPOINTS / "gan1d_laplace.pt", tier="fair", target="petitprince")
    assert "tuned_config" not in str(info.value)


def test_a_model_on_an_unmeasured_target_is_not_graded_and_says_why(tmp_path):
    from labkit import distributions

    other = distributions.mixture({"laplace": 0.3, "halfnormal": 0.7})
    path = _resave(tmp_path, "gan1d_laplace.pt", "g.pt", target=other.spec, config=None)
    with pytest.raises(CheckFailed, match="No measured quality limits .* none were measured on this one"):
        checks.check_final_model(path, tier="fair", target=other)


@pytest.mark.parametrize("target", ["laplace", "Laplace", None], ids=["name", "capitalised", "none"])
def test_target_as_a_name_or_a_distribution_grades_the_same(target, capsys):
    from labkit import distributions

    checks.check_final_model(CHECKPOINTS / "gan1d_laplace.pt", tier="good", target=target)
    checks.check_final_model(CHECKPOINTS / "gan1d_laplace.pt", tier="good", target=distributions.get("laplace"))
    out = capsys.readouterr().out
    assert out.count("✔ laplace: KS 0.0093 <= 0.02") == 2


def test_the_given_target_cell_accepts_a_name_or_a_distribution(capsys):
    """The cell after the TARGET TODO turns what the student wrote into a distribution before using .label."""
    from labkit import distributions

    cell = next(c.source for c in _solution_notebook().cells if "TARGET = distributions.get(TARGET)" in c.source)
    given = cell.split("### END SOLUTION")[1]
    for chosen in ("laplace", distributions.get("laplace"), {"laplace": 0.5, "halfnormal": 0.5}):
        namespace = {"distributions": distributions, "checks": checks, "TARGET": chosen}
        exec(given, namespace)
        assert isinstance(namespace["TARGET"], distributions.Distribution)
    out = capsys.readouterr().out
    assert out.count("target: Laplace(3.0, 0.3)") == 2 and out.count("✔ target") == 3


# The formative checks: step 1 matched or not, and the saved recipe against the current tuned_config.

def _run_check_matched(config, ks=0.2, w1=0.5, quick=False, capsys=None):
    checks.check_matched(config, {"KS": ks, "W1/std": w1}, quick=quick)
    return capsys.readouterr().out


def test_check_matched_names_the_next_lever_or_says_it_matched(capsys):
    from dataclasses import replace

    from labkit.labs.gan1d import GanConfig

    base = GanConfig()
    full = replace(base, normalize=True, betas=(0.5, 0.999), lr_g=2e-3, lr_d=2e-3, lr_decay=True, ema=0.999)
    assert "✘ MATCHED is the baseline itself" in _run_check_matched(base, capsys=capsys)
    assert "Next lever from the text: normalisation" in _run_check_matched(base, capsys=capsys)
    out = _run_check_matched(replace(base, epochs=600), capsys=capsys)
    assert "changes only the procedure" in out and "epochs (60 -> 600)" in out
    assert "g_hidden ((15,) -> (64, 64))" in _run_check_matched(replace(base, g_hidden=(64, 64)), capsys=capsys)
    out = _run_check_matched(replace(base, normalize=True), capsys=capsys)
    assert "✘ step 1 has not matched N(4, 0.5) yet: KS 0.2000" in out and "next lever from the text: Adam's momentum" in out
    out = _run_check_matched(replace(full, ema=0.0), capsys=capsys)
    assert "next lever from the text: an EMA" in out
    assert "every lever is in use" in _run_check_matched(full, capsys=capsys)
    assert "✔ step 1 matched N(4, 0.5): KS 0.0080" in _run_check_matched(full, ks=0.008, w1=0.013, capsys=capsys)
    out = _run_check_matched(replace(base, normalize=True), ks=0.008, w1=0.013, quick=True, capsys=capsys)
    assert "quick mode" in out and "✔" not in out and "Adam's momentum" in out
    assert "is a dict" in _run_check_matched({"normalize": True}, capsys=capsys)


def test_check_matched_accepts_the_target_as_a_distribution(capsys):
    from dataclasses import replace

    from labkit import distributions
    from labkit.labs.gan1d import GanConfig

    config = replace(GanConfig(target=distributions.get("normal")), normalize=True)
    assert "changes" not in _run_check_matched(config, capsys=capsys)


def test_check_saved_recipe_shows_a_changed_tuned_config_before_the_quality_checks(solution, tmp_path, capsys):
    from dataclasses import replace

    from labkit import distributions

    saved = REPO / "notebooks" / "solutions" / "gan1d_final.pt"
    mine = solution.tuned_config(distributions.get("petitprince"), seed=0)   # the notebook's TARGET: a distribution
    checks.check_saved_recipe(saved, mine)
    assert "✔ gan1d_final.pt was trained with your current tuned_config on petitprince" in capsys.readouterr().out
    checks.check_saved_recipe(saved, replace(mine, lr_g=1e-3, epochs=120))
    out = capsys.readouterr().out
    assert "✘ gan1d_final.pt was trained with another recipe" in out and "lr_g: 0.0005 -> 0.001" in out
    assert "epochs: 100 -> 120" in out and "run the notebook in full again" in out
    checks.check_saved_recipe(saved, solution.tuned_config("laplace", seed=0))
    assert "target: petitprince -> laplace" in capsys.readouterr().out
    checks.check_saved_recipe(tmp_path / "gan1d_final.pt", mine)
    assert "no gan1d_final.pt yet" in capsys.readouterr().out


def test_trained_target_name_reads_every_form_of_the_saved_config():
    from labkit import distributions
    from labkit.labs.gan1d import GanConfig

    for target, name in (("laplace", "laplace"), (distributions.get("petitprince"), "petitprince"),
                         ({"laplace": 0.5, "halfnormal": 0.5}, "mixture(0.5·laplace, 0.5·halfnormal)"),
                         (distributions.mixture({"laplace": 0.5, "halfnormal": 0.5}),
                          "mixture(0.5·laplace, 0.5·halfnormal)")):
        assert checks.trained_target_name(repr(GanConfig(target=target))) == name
    assert checks.trained_target_name(None) is None and checks.trained_target_name("something else") is None
