"""`labkit evaluate`: the quality numbers of any saved generator, offline, as a small plain-text table."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence, Union

import numpy as np

from ..checkpoint import loadModel
from ..sampling import generate
from .images import evaluate_generator
from .oned import compare_1d

__all__ = ["evaluate_checkpoint", "metrics_table"]


def evaluate_checkpoint(path, dataset=None, n: int = 5000, seed: int = 0, target=None) -> str:
    """Sample ``n`` outputs of the generator saved at ``path`` and format its metrics.

    A 1D generator is compared with its target distribution (``target`` or the one recorded
    in the checkpoint's metadata); an image generator is scored by the metric classifier of
    ``dataset`` (or the one recorded as ``dataset=`` when it was saved).
    """
    from .. import distributions

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
        result = compare_1d(samples, distributions.get(spec))
        title = f"{name}: {n:,} samples against {distributions.get(spec).label}"
    else:
        dataset = dataset or meta.get("dataset")
        if dataset is None:
            raise ValueError(f"{name} is an image generator that does not record its data set; pass "
                             "--dataset mnist or --dataset fashion_mnist.")
        result = evaluate_generator(model, dataset, n=n, seed=seed)
        title = f"{name}: {n:,} images scored by the {dataset} classifier"
    return title + "\n" + metrics_table({name: result})


_LABELS = {
    "n": "images",
    "classes_covered": "classes covered",
    "min_class_share": "rarest class share",
    "max_class_share": "commonest class share",
    "class_share_ratio": "rarest / commonest share",
    "kl_from_uniform": "KL(classes || uniform)",
    "inception_score": "classifier IS",
    "mean_confidence": "mean confidence",
    "conditional_accuracy": "conditional accuracy",
    "fcd": "FCD (Fréchet classifier distance)",
    "fcd_real_floor": "FCD real-vs-real floor",
    "fcd_n": "FCD images per set",
    "ks": "KS statistic",
    "w1": "W1",
    "w1_over_std": "W1 / target std",
    "mean": "mean",
    "std": "std",
    "target_mean": "target mean",
    "target_std": "target std",
}


def _format_value(value) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    value = float(value)
    if math.isnan(value):
        return "n/a"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"


def metrics_table(results: Union[Mapping[str, Any], Mapping[str, Mapping[str, Any]], Sequence[Mapping[str, Any]]]) -> str:
    """A plain-text table of the numeric scores in ``results``.

    results: one result dict (from ``compare_1d``, ``evaluate_images`` or
    ``evaluate_generator``), ``{"model name": result, ...}`` for one column per
    model, or a list of result dicts. Lists (histograms, per-class accuracies) and
    strings are left out; a metric missing for a model shows as "-".
    """
    if isinstance(results, Mapping) and results and all(isinstance(v, Mapping) for v in results.values()):
        columns = {str(name): dict(r) for name, r in results.items()}
    elif isinstance(results, Mapping):
        columns = {"value": dict(results)}
    else:
        columns = {f"#{i + 1}": dict(r) for i, r in enumerate(results)}

    def numeric(value):
        return isinstance(value, (int, float, np.integer, np.floating, bool, np.bool_))

    keys = []
    for result in columns.values():
        for key, value in result.items():
            if numeric(value) and key not in keys and key not in ("seed", "conditional"):
                keys.append(key)
    order = list(_LABELS)
    keys.sort(key=lambda k: order.index(k) if k in order else len(order))
    rows = [["metric", *columns]]
    for key in keys:
        cells = [_format_value(r[key]) if key in r and numeric(r[key]) else "-" for r in columns.values()]
        rows.append([_LABELS.get(key, key), *cells])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
