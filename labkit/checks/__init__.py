"""Immediate feedback after each TODO.

Every check raises :class:`CheckFailed` (an ``AssertionError``, so nbval and the
grader see a failed cell) with a message that names the likely mistake, and
prints one ``✔`` line when it passes. Reference values live in
``labkit/data/references/*.npz``, written from the solution notebooks by
``scripts/make_references.py``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["CheckFailed", "passed", "require", "close", "reference"]

REFERENCES = Path(__file__).resolve().parent.parent / "data" / "references"


class CheckFailed(AssertionError):
    """A check cell found a mistake; the message says which."""


def passed(what: str) -> None:
    print(f"✔ {what}")


def require(condition, message: str) -> None:
    """Fail the check with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailed(message)


def close(value, expected, tol: float = 1e-4) -> bool:
    value = np.asarray(value, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    return value.shape == expected.shape and bool(np.all(np.abs(value - expected) <= tol))


def reference(name: str) -> dict:
    """The reference values of one notebook, e.g. ``reference("gan1d")["d_step.loss_d"]``."""
    path = REFERENCES / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"Reference values {path} are missing; run scripts/make_references.py.")
    with np.load(path) as data:
        return {k: data[k] for k in data.files}
