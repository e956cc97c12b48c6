"""Draw samples from a saved generator, whatever notebook defined it.

A generator takes ``z`` of shape ``(n, *latent_shape)`` drawn from N(0, I) (and,
if it has ``n_classes``, integer labels of shape ``(n,)``). Its output is either one
number per sample (1D GAN) or a 28×28 image in the tanh range [-1, 1].
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch

__all__ = ["generate", "latent_shape"]


def latent_shape(model) -> Tuple[int, ...]:
    shape = getattr(model, "latent_shape", None) or (getattr(model, "latent_dim", None),)
    if shape[0] is None:
        raise ValueError(f"{type(model).__name__} has no latent_dim attribute, so labkit cannot tell what noise to feed it.")
    return tuple(int(s) for s in shape)


@torch.no_grad()
def generate(model, n: int, labels=None, seed: Optional[int] = None, batch_size: int = 1000):
    """Return ``(samples, labels)``: samples ``(n,)`` float for a 1D generator, ``(n, 28, 28)`` float32 in
    [0, 1] for an image generator; labels ``(n,)`` int64 for a conditional generator (cycling 0..C-1 unless
    given), else ``None``. The model's train/eval mode is left as it was."""
    if int(n) <= 0:
        raise ValueError(f"n must be a positive number of samples, got {n}.")
    n = int(n)
    n_classes = getattr(model, "n_classes", None)
    if labels is not None and not n_classes:
        raise ValueError("This generator is not conditional: it takes no label.")
    if n_classes:
        if labels is None:
            labels = np.arange(n) % n_classes
        labels = np.broadcast_to(np.asarray(labels, dtype=np.int64), (n,)).copy()
        if labels.min() < 0 or labels.max() >= n_classes:
            raise ValueError(f"Labels must be in 0..{n_classes - 1}, got values from {labels.min()} to {labels.max()}.")
    device = next(iter(model.parameters()), torch.empty(0)).device if hasattr(model, "parameters") else "cpu"
    gen = torch.Generator().manual_seed(0 if seed is None else int(seed))
    shape = latent_shape(model)
    was_training = model.training
    model.eval()  # batch-norm running statistics, no dropout
    chunks = []
    try:
        for start in range(0, n, batch_size):
            stop = min(n, start + batch_size)
            z = torch.randn(stop - start, *shape, generator=gen).to(device)
            inputs = (z,) if not n_classes else (z, torch.as_tensor(labels[start:stop]).to(device))
            chunks.append(model(*inputs).detach().float().cpu())
    finally:
        model.train(was_training)
    out = torch.cat(chunks).reshape(n, -1).numpy()
    if out.shape[1] == 1:
        return out[:, 0].astype(np.float64), None if not n_classes else labels
    side = int(round(np.sqrt(out.shape[1])))
    if side * side != out.shape[1]:
        raise ValueError(f"The generator outputs {out.shape[1]} values per sample: neither 1 (1D) nor a square image.")
    images = np.clip((out.reshape(n, side, side) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)
    return images, labels if n_classes else None
