"""What an image lab's ``generate`` must return: a numpy float32 array (n, 28, 28) in [0, 1] of different images.

Shared by the ``check_generate`` of every image lab, which then checks what is its own (class, names, sizes).
"""
from __future__ import annotations

import numpy as np

from . import CheckFailed, require

__all__ = ["require_generated_images"]


def require_generated_images(out, call: str, name: str) -> tuple:
    """Fail with the likely mistake unless ``out`` (what ``call``, e.g. "generate(6)", returned) is a numpy float32
    array (6, 28, 28) of finite, different images in [0, 1]; ``name`` is how messages name the function, e.g.
    "generate(n)". Returns the (min, max) of the values."""
    require(isinstance(out, np.ndarray), f"{name} must return a numpy array, got {type(out).__name__}: "
                                         "use .detach().cpu().numpy().")
    if out.shape == (6, 1, 28, 28):
        raise CheckFailed(f"{call} returns shape (6, 1, 28, 28): drop the channel axis, e.g. out[:, 0].")
    require(out.shape == (6, 28, 28), f"{call} must return shape (6, 28, 28), got {out.shape}.")
    require(out.dtype == np.float32, f"{name} must return float32, got {out.dtype}: use .astype(np.float32).")
    require(np.all(np.isfinite(out)), f"{name} returned NaN or inf.")
    low, high = float(out.min()), float(out.max())
    if low < 0:
        raise CheckFailed(f"{name} has values down to {low:.2f}: map the generator's tanh range [-1, 1] to "
                          "[0, 1] with (x + 1) / 2.")
    require(high <= 1.0, f"{name} has values up to {high:.2f}, above 1: map [-1, 1] to [0, 1] with (x + 1) / 2.")
    require(float(out.std(axis=0).mean()) > 1e-3, f"{name} returns the same image n times: draw a new z per image.")
    return low, high
