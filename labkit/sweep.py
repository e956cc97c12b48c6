"""Short training sweeps a student runs before choosing the full run's settings: a table and curves in minutes.

The image labs ask the student to choose the learning rates (and, in lab 04, the critic steps per generator step).
A sweep trains the student's own networks with the student's own step for a few hundred steps once per candidate
setting, from the same initial weights and the same batches, and shows what each setting does::

    runs = sweep({"lr 1e-4": dict(lr=1e-4), "lr 1e-3": dict(lr=1e-3)}, build, step, loader, steps=300,
                 score=lambda G: graded_scores(G, n=1000))
    print(sweep_table(runs))        # one row per candidate: final losses, time, scores
    plot_sweep(runs, ["loss_d", "loss_g"])

``build(settings)`` returns the candidate's :class:`Nets` (fresh networks and their optimisers), ``step(nets,
batch, index)`` trains on one batch from the loader and returns the logged numbers. Nothing here knows a lab's
networks or losses: both come from the notebook, so a sweep answers no TODO.
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np
import torch

__all__ = ["Nets", "SweepRun", "sweep", "sweep_table", "plot_sweep", "smooth"]


@dataclass
class Nets:
    """One candidate's networks and optimisers, with the settings they were built from."""
    G: torch.nn.Module
    D: torch.nn.Module                       # the discriminator, or lab 04's critic
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    settings: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SweepRun:
    """What one candidate did: its settings, every step's logged numbers, its time and its generator's scores."""
    name: str
    settings: Mapping[str, Any]
    log: Mapping[str, List[float]]          # key -> one value per step that logged it
    steps: int
    seconds: float
    scores: Mapping[str, float]
    generator: torch.nn.Module


def _number(value) -> float:
    return float(value.detach().item()) if torch.is_tensor(value) else float(value)


def _batches(loader: Iterable, steps: int):
    """``steps`` batches, going round the loader as often as needed (its shuffling follows its own generator)."""
    if steps < 1:
        raise ValueError(f"a sweep needs at least one step per candidate, not {steps}")
    return itertools.islice(itertools.chain.from_iterable(loader for _ in itertools.count()), steps)


def sweep(candidates: Mapping[str, Mapping[str, Any]], build: Callable[[Mapping[str, Any]], Nets],
          step: Callable[[Nets, Any, int], Mapping[str, Any]], loader: Iterable, steps: int,
          score: Optional[Callable[[torch.nn.Module], Mapping[str, float]]] = None, seed: int = 0,
          progress: bool = True) -> List[SweepRun]:
    """Train one short run per ``{name: settings}`` and return a :class:`SweepRun` for each, in order.

    Every candidate starts from ``torch.manual_seed(seed)`` before ``build`` (so from the same initial weights when
    the settings leave the networks alone) and sees the batches in the same order (the loader's shuffling is
    reseeded the same way when it has a ``generator``). ``score(G)`` runs on the generator in eval mode, without
    gradients; its numbers go in the table.
    """
    if not candidates:
        raise ValueError("a sweep needs at least one candidate: pass {name: settings}")
    runs = []
    sampler_generator = getattr(loader, "generator", None)
    if not isinstance(sampler_generator, torch.Generator):
        sampler_generator = None
    before = sampler_generator.get_state() if sampler_generator is not None else None
    for name, settings in candidates.items():
        torch.manual_seed(seed)
        if sampler_generator is not None:
            sampler_generator.manual_seed(seed)
        nets = build(dict(settings))
        log: Dict[str, List[float]] = {}
        start = time.perf_counter()
        done = 0
        for index, batch in enumerate(_batches(loader, steps)):
            for key, value in step(nets, batch, index).items():
                log.setdefault(key, []).append(_number(value))
            done = index + 1
        seconds = time.perf_counter() - start
        nets.G.eval()
        with torch.no_grad():
            scores = dict(score(nets.G)) if score is not None else {}
        nets.G.train()
        runs.append(SweepRun(name, dict(settings), log, done, seconds, scores, nets.G))
        if progress:
            last = ", ".join(f"{k} {np.mean(v[-max(1, len(v) // 10):]):.3g}" for k, v in log.items())
            print(f"[sweep] {name}: {done} steps in {seconds:.0f} s; last tenth: {last}", flush=True)
    if sampler_generator is not None:      # the full run after the sweep sees the batches it would have seen
        sampler_generator.set_state(before)
    return runs


def sweep_table(runs: Sequence[SweepRun], keys: Sequence[str] = None, scores: Sequence[str] = None) -> List[dict]:
    """One row per run: its name, the mean of each logged value over the last tenth of its steps (``keys``:
    default all), its seconds, and its scores (``scores``: default all). Print it with ``labkit.tables.format_table``.
    """
    rows = []
    for run in runs:
        row: Dict[str, Any] = {"candidate": run.name}
        for key in keys or list(run.log):
            values = run.log.get(key, [])
            row[f"{key} (end)"] = float(np.mean(values[-max(1, len(values) // 10):])) if values else float("nan")
        row["seconds"] = round(run.seconds, 1)
        for key in scores or list(run.scores):
            row[key] = run.scores.get(key, float("nan"))
        rows.append(row)
    return rows


def smooth(values: Sequence[float], window: int) -> np.ndarray:
    """A running mean over ``window`` steps (shorter at the start), so a curve of noisy per-batch losses reads as a
    trend; the result has one value per input value."""
    values = np.asarray(values, dtype=float)
    if window <= 1 or len(values) == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_sweep(runs: Sequence[SweepRun], keys: Sequence[str], window: Optional[int] = None, title: str = "sweep"):
    """One panel per logged key, two panels a row (legible at a notebook's width), one curve per candidate (a running
    mean over ``window`` steps: default a twentieth of the run), x = the step. Returns the figure."""
    import matplotlib.pyplot as plt

    from .viz.plotting import whole_number_axis

    if not runs:
        raise ValueError("nothing to plot: the sweep has no runs")
    columns = min(2, len(keys))
    rows = -(-len(keys) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(5.2 * columns, 3.0 * rows), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.remove()
    for ax, key in zip(axes.flat, keys):
        longest = max((len(run.log.get(key, [])) for run in runs), default=1)
        for run in runs:
            values = run.log.get(key, [])
            if not values:
                continue
            width = window or max(1, len(values) // 20)
            ax.plot(np.arange(1, len(values) + 1), smooth(values, width), label=run.name,
                    marker="o" if len(values) <= 20 else None, markersize=3)
        whole_number_axis(ax, longest)                    # steps are whole: no 1.25 ticks on a short run
        if not any(run.log.get(key) for run in runs):     # e.g. a generator loss in fewer steps than one G step
            ax.text(0.5, 0.5, f"no {key} logged in these steps", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(key)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig
