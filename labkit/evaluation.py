"""`labkit evaluate`: the quality numbers of any saved generator, offline, as a small table."""
from __future__ import annotations

from pathlib import Path

from .checkpoint import loadModel
from .sampling import generate

__all__ = ["evaluate_checkpoint"]


def evaluate_checkpoint(path, dataset=None, n: int = 5000, seed: int = 0, target=None) -> str:
    """Sample ``n`` outputs of the generator saved at ``path`` and format its metrics.

    A 1D generator is compared with its target distribution (``target`` or the one recorded
    in the checkpoint's metadata); an image generator is scored by the metric classifier of
    ``dataset`` (or the one recorded as ``dataset=`` when it was saved).
    """
    from . import distributions, metrics

    model = loadModel(path)
    meta = getattr(model, "checkpoint_metadata", {}) or {}
    probe, _ = generate(model, 2, seed=seed)
    name = Path(path).name
    if probe.ndim == 1:
        spec = target or meta.get("target")
        if spec is None:
            raise ValueError(f"{name} does not record its target distribution; pass --target "
                             f"({', '.join(distributions.names())}).")
        samples, _ = generate(model, n, seed=seed)
        result = metrics.compare_1d(samples, distributions.get(spec))
        title = f"{name}: {n:,} samples against {distributions.get(spec).label}"
    else:
        dataset = dataset or meta.get("dataset")
        if dataset is None:
            raise ValueError(f"{name} is an image generator that does not record its data set; pass "
                             "--dataset mnist or --dataset fashion_mnist.")
        result = metrics.evaluate_generator(model, dataset, n=n, seed=seed)
        title = f"{name}: {n:,} images scored by the {dataset} classifier"
    return title + "\n" + metrics.format_table({name: result})
