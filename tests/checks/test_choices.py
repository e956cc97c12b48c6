"""labkit.checks.choices: a student's training choices against the handout's ranges, with the rule when refused."""
import numpy as np
import pytest

from labkit.checks import CheckFailed
from labkit.checks.choices import Allowed, check_choices, describe_ranges

RATE = Allowed("lr", 1e-5, 1e-3, "the learning rate", why="Past 1e-3 the curves jump.")
STEPS = Allowed("n_critic", 1, 10, "critic steps per generator step", integer=True)


@pytest.mark.parametrize("choices", [dict(lr=1e-5, n_critic=1), dict(lr=1e-3, n_critic=10),
                                     dict(lr=np.float64(3e-4), n_critic=np.int64(5)), dict(lr=2e-4, n_critic=5.0)])
def test_values_inside_their_ranges_pass(choices, capsys):
    check_choices((RATE, STEPS), choices)
    assert "inside the allowed ranges" in capsys.readouterr().out


@pytest.mark.parametrize("choices, message", [
    (dict(lr=2e-3, n_critic=5), r"lr = 0.002 is above the allowed range: lr: a number from 1e-05 to 0.001 "
                                r"\(the learning rate\)\. Past 1e-3 the curves jump\."),
    (dict(lr=2e-4, n_critic=0), "n_critic = 0 is below the allowed range"),
    (dict(lr=2e-4, n_critic=2.5), "must be a whole number"),
    (dict(lr="1e-4", n_critic=5), "is a str, not a number"),
    (dict(lr=2e-4, n_critic=None), "n_critic is not set"),
    (dict(lr=float("inf"), n_critic=5), "not a finite number"),
    (dict(lr=2e-4, n_critic=5, lr_d=1e-4), "unknown choice"),
])
def test_values_outside_are_refused_naming_the_rule(choices, message):
    with pytest.raises(CheckFailed, match=message):
        check_choices((RATE, STEPS), choices)


def test_every_problem_is_named_at_once():
    with pytest.raises(CheckFailed) as failure:
        check_choices((RATE, STEPS), dict(lr=1.0, n_critic=-1))
    assert "lr = 1 is above" in str(failure.value) and "n_critic = -1 is below" in str(failure.value)


def test_ranges_are_described_one_per_line():
    assert describe_ranges((RATE, STEPS)).splitlines() == [
        "  lr: a number from 1e-05 to 0.001 (the learning rate)",
        "  n_critic: a whole number from 1 to 10 (critic steps per generator step)"]


def test_a_float_subclass_cannot_bend_the_comparisons():
    class AlwaysInside(float):          # what a student who games the check might hand in
        def __le__(self, other):
            return True

        def __ge__(self, other):
            return True

        def __lt__(self, other):
            return False

        def __gt__(self, other):
            return False

    with pytest.raises(CheckFailed, match="lr = 5 is above the allowed range"):
        check_choices((RATE, STEPS), dict(lr=AlwaysInside(5.0), n_critic=5))
