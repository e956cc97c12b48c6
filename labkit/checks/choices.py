"""Check a student's training choices (learning rates, momentum, steps per update) against the handout's ranges.

The image labs leave these numbers to the student: a TODO cell sets them after a short sweep, and this check only
says whether each is a number of the right kind inside the range the handout allows, and why a value outside it
is refused. It holds no recommended value: the range is the rule, the choice is the student's.

    CHOICES = (Allowed("lr_g", 1e-5, 1e-3, "the generator's learning rate"), ...)
    check_choices(CHOICES, {"lr_g": LR_G, ...})
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from . import CheckFailed, passed

__all__ = ["Allowed", "check_choices", "describe_ranges", "learning_rate", "adam_beta1"]


@dataclass(frozen=True)
class Allowed:
    """One choice the student makes: its name in the notebook, its inclusive range and what it is."""
    name: str
    low: float
    high: float
    meaning: str
    integer: bool = False
    why: str = ""                            # why the range stops where it does (said when a value is outside it)

    def describe(self) -> str:
        kind = "a whole number" if self.integer else "a number"
        return f"{self.name}: {kind} from {self.low:g} to {self.high:g} ({self.meaning})"

    def problem(self, value: Any) -> str:
        """What is wrong with ``value`` for this choice ("" when nothing is)."""
        if value is ... or value is None:
            return f"{self.name} is not set: write your choice, {self.describe()}."
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            shown = f"{value!r}"[:60]
            return (f"{self.name} = {shown} is a {type(value).__name__}, not a number: write it as a Python number "
                    f"(e.g. 3e-4 or 5, without quotes or brackets); {self.describe()}.")
        number = float(value)     # a plain float: a subclass of float cannot bend the comparisons below
        if not math.isfinite(number):
            return f"{self.name} = {value} is not a finite number; {self.describe()}."
        if self.integer and number != int(number):
            return f"{self.name} = {number:g} must be a whole number (it counts updates); {self.describe()}."
        if not self.low <= number <= self.high:
            side = "below" if number < self.low else "above"
            reason = f" {self.why}" if self.why else ""
            return f"{self.name} = {number:g} is {side} the allowed range: {self.describe()}.{reason}"
        return ""


def learning_rate(name: str, network: str, other: str) -> Allowed:
    """The range every image lab allows for a network's Adam learning rate (``other``: the network it plays)."""
    return Allowed(name, 1e-5, 2e-3, f"the {network}'s Adam learning rate",
                   why=f"Below 1e-5 the {network} barely moves in a full run; above 2e-3 Adam's steps throw it around "
                       f"faster than the {other} can follow, and the sweep's curves jump.")


def adam_beta1(beta2: float) -> Allowed:
    """Adam's beta1 for both networks (``beta2`` stays the lab's)."""
    return Allowed("beta1", 0.0, 0.9, f"Adam's beta1 for both networks; beta2 stays {beta2:g}",
                   why="beta1 is a momentum between 0 (none) and Adam's default 0.9; more than that averages "
                       "gradients over so many steps that, in a game, they point where the other network was long ago.")


def describe_ranges(allowed: Sequence[Allowed]) -> str:
    """The allowed ranges, one per line, as the check states them."""
    return "\n".join(f"  {choice.describe()}" for choice in allowed)


def check_choices(allowed: Sequence[Allowed], choices: Mapping[str, Any]) -> None:
    """Pass when every allowed choice is set, a number of the right kind and inside its range; fail naming each
    one that is not. Unknown names fail too (a typo would otherwise leave a choice at a value nobody wrote)."""
    known = {choice.name for choice in allowed}
    unknown = sorted(set(choices) - known)
    if unknown:
        raise CheckFailed(f"unknown choice(s) {', '.join(unknown)}: the choices are {', '.join(sorted(known))}.")
    problems = [problem for choice in allowed if (problem := choice.problem(choices.get(choice.name)))]
    if problems:
        raise CheckFailed("\n".join(problems))
    passed("your choices are inside the allowed ranges: " +
           ", ".join(f"{choice.name} = {choices[choice.name]:g}" for choice in allowed))
