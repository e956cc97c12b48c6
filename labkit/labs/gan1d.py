"""Lab 01 (a GAN in one dimension): the recipe, the networks and optimisers built from it, and trials.

The training loop itself, ``train_gan``, stays in ``notebooks/01_gan_1d.ipynb`` with the parts the
student writes (``d_step``, ``g_step``, ``epoch_means``); this module holds what that loop and the
notebook's experiments use around it::

    nets = build_gan(config)                  # seeded G, D, opt_g, opt_d, lr schedules, EMA of G
    real_batches = sample_real(config)        # next(real_batches): a (batch_size, 1) real batch
    ...                                       # the notebook's loop: d_step, g_step, nets.after_step()
    result, row = run_trial(train_gan, config, "baseline", out_dir)   # train, measure, write the GIF

``measure`` is the one measurement of a generator: the notebook's trials, the graded quality check
(``labkit.checks.gan1d``) and the benchmark all call it, so the numbers a student reads are the ones
that are graded.

The order of the random draws (seed, G, D, then the fixed snapshot noise drawn by the loop, then the
training noise) is the recipe's: the shipped checkpoints in ``checkpoints/gan1d_*.pt`` follow from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import math
import re

import numpy as np
import torch
from torch import nn

from .. import distributions
from ..metrics import compare_1d
from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..optim import FlatAdam
from ..runtime import seed_everything
from ..train import WeightAverage, ema_decay
from ..viz.animation import GifWriter
from ..viz.live import LiveView
from ..viz.plotting import Frames1D, figure_to_array, plot_1d, update_1d

__all__ = ["GanConfig", "TrainResult", "GanNets", "build_gan", "sample_real", "progress_view", "write_gif",
           "run_trial", "run_trials", "measure", "trial_file", "EVAL_SAMPLES", "EVAL_SEED",
           "EMA_HORIZON", "QUICK_FRACTION", "QUICK_STEPS", "QUICK_GIF_FRAMES"]

EVAL_SAMPLES = 100_000  # samples a generator is measured and graded on (sampling noise alone: KS ~0.003)
EVAL_SEED = 0          # the noise seed of that measurement: the notebook prints the graded numbers
EMA_HORIZON = 0.2      # the EMA averages over about this share of the run (never more than GanConfig.ema allows)
QUICK_FRACTION = 10    # quick mode trains 1/10 of the epochs, QUICK_STEPS steps each: ratios between runs stay
QUICK_STEPS = 10
QUICK_GIF_FRAMES = 2   # frames per GIF in quick mode, the first and the last (frames cost more than quick training)


@dataclass
class GanConfig:
    """One training run of the 1D GAN: every knob Exercise 2 tunes is a field. The defaults are the baseline."""

    target: object = "normal"     # a labkit.distributions name, distribution or mixture
    latent_dim: int = 5
    g_hidden: tuple = (15,)       # hidden layer widths of G (depth = number of entries)
    d_hidden: tuple = (25,)
    activation: str = "relu"      # relu, leaky_relu, elu, silu, gelu, tanh
    lr_g: float = 1e-4
    lr_d: float = 1e-4
    betas: tuple = (0.9, 0.999)   # Adam's; GANs often use beta1 = 0.5
    batch_size: int = 512
    epochs: int = 60
    steps_per_epoch: int = 50     # generator steps per epoch (data is unlimited: an epoch is a logging unit)
    d_steps: int = 1              # discriminator steps per generator step
    real_label: float = 1.0       # < 1: one-sided label smoothing
    normalize: bool = False
    lr_decay: bool = False        # cosine decay of both learning rates to 0 over the run, however long it is
    ema: float = 0.0              # > 0: evaluate an EMA of G's weights; the decay of a long run (0.999 spans the
                                  # last ~1,000 steps); shorter runs average over their last 20 % (see build_gan)
    seed: int = 0

    @property
    def total_steps(self) -> int:
        """Generator steps in the run."""
        return self.epochs * self.steps_per_epoch

    def quick(self) -> "GanConfig":
        """A small copy for quick mode (tests, grading): the same recipe over 1/10 of the epochs (at least 2), at
        most 10 steps each. A run ten times as long stays ten times as long, and the learning-rate schedule and
        the EMA scale with the shorter run (see :func:`build_gan`), so a quick run is the real one in miniature."""
        return replace(self, epochs=min(self.epochs, max(2, math.ceil(self.epochs / QUICK_FRACTION))),
                       steps_per_epoch=min(self.steps_per_epoch, QUICK_STEPS))


@dataclass
class TrainResult:
    """What ``train_gan`` returns. Snapshots are stored as ``(epoch, samples)`` with samples of shape (N,), float64."""

    config: GanConfig
    generator: nn.Module          # what to evaluate and save (the EMA copy when ema > 0)
    discriminator: nn.Module
    history: dict                 # per-epoch means: loss_d, loss_g, d_real, d_fake
    snapshots: list = field(default_factory=list)  # (epoch, samples) pairs
    seconds: float = 0.0          # training time, snapshots and progress lines left out

    def __post_init__(self):
        # labkit.train.Snapshots keeps the generator's raw (N, 1) float32 output; plots and moments want (N,).
        self.snapshots = [(epoch, np.asarray(samples, dtype=np.float64).reshape(-1)) for epoch, samples in self.snapshots]


@dataclass
class GanNets:
    """The networks, optimisers, learning-rate schedules and EMA of one run, as ``build_gan`` makes them."""

    target: distributions.Distribution
    G: MLPGenerator
    D: MLPDiscriminator
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    schedulers: List[torch.optim.lr_scheduler.LRScheduler] = field(default_factory=list)
    ema: Optional[WeightAverage] = None

    @property
    def generator(self) -> nn.Module:
        """The generator to look at and save: the EMA copy when the recipe has one, else G itself."""
        return self.ema.model if self.ema is not None else self.G

    def after_step(self) -> None:
        """After each generator step: one step of every learning-rate schedule, then update the EMA of G."""
        for scheduler in self.schedulers:
            scheduler.step()
        if self.ema is not None:
            self.ema.update(self.G)


def build_gan(config: GanConfig) -> GanNets:
    """Seed everything with ``config.seed`` and build G, D, their Adam optimisers, schedules and EMA.

    ``normalize`` gives both networks the target's mean and standard deviation (they then work at
    unit scale); ``lr_decay`` adds a cosine schedule to zero over the run for each optimiser (D steps
    ``d_steps`` times per generator step); ``ema > 0`` keeps an exponential moving average of G's
    weights (:class:`labkit.train.WeightAverage`) with decay ``ema_decay(total_steps, EMA_HORIZON,
    longest=ema)``: ``ema`` itself in a long run (0.999 for 5,000 steps and more), an average over the
    last 20 % of a shorter one (0.95 for a 100-step quick run, where 0.999 would leave the averaged
    generator at its initial weights). The optimisers are :class:`labkit.optim.FlatAdam`:
    ``torch.optim.Adam``'s results, bit for bit, at a fraction of its cost on networks this small.
    """
    seed_everything(config.seed)
    target = distributions.get(config.target)
    mean, std = (target.mean, target.std) if config.normalize else (0.0, 1.0)
    G = MLPGenerator(config.latent_dim, config.g_hidden, config.activation, data_mean=mean, data_std=std)
    D = MLPDiscriminator(config.d_hidden, config.activation, data_mean=mean, data_std=std)
    # torch.optim.Adam's updates, bit for bit, in one pass over each network's weights (labkit.optim)
    opt_g = FlatAdam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = FlatAdam(D.parameters(), lr=config.lr_d, betas=config.betas)
    total_steps = config.total_steps
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps * k)
                  for opt, k in ((opt_g, 1), (opt_d, config.d_steps))] if config.lr_decay else []
    ema = WeightAverage(G, decay=ema_decay(total_steps, EMA_HORIZON, longest=config.ema)) if config.ema else None
    return GanNets(target, G, D, opt_g, opt_d, schedulers, ema)


def sample_real(config: GanConfig) -> Iterator[torch.Tensor]:
    """Endless real batches of the target, each a float32 tensor of shape (batch_size, 1), from ``config.seed``."""
    target = distributions.get(config.target)
    rng = np.random.default_rng(config.seed)  # one stream for the whole run: every batch is new data
    while True:
        yield target.sample_tensor(config.batch_size, seed=rng)


def progress_view(config: GanConfig) -> LiveView:
    """A progress bar in Jupyter (a line every fifth of the run elsewhere) for ``train_gan(..., progress=True)``."""
    name = distributions.get(config.target).name
    return LiveView(config.epochs, desc=f"GAN on {name}", print_every=max(1, config.epochs // 5))


def measure(generator, target, n: int = EVAL_SAMPLES, seed: int = EVAL_SEED) -> dict:
    """KS, W1/std, mean and std of ``n`` samples of ``generator`` (noise from ``seed``) against ``target``.

    The same numbers as the graded quality check (``labkit.checks.gan1d.check_final_model``) for the same model.
    """
    from ..sampling import generate

    samples, _ = generate(generator, n, seed=seed)
    return compare_1d(samples, distributions.get(target))


def trial_file(name: str, target, suffix: str = ".gif") -> str:
    """The file name of a trial's output: ``<target>-<name><suffix>``, e.g. ``petitprince-baseline.gif``.

    The target is part of the name, so the baseline on N(4, 0.5) and a trial called "baseline" on another
    target write two files; anything but letters, digits, ``.``, ``_`` and ``-`` becomes ``_``.
    """
    slug = lambda text: re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "trial"
    return f"{slug(distributions.get(target).name)}-{slug(name)}{suffix}"


def gif_ylim(snapshots, target, xlim, bins: int = 80, most: float = 3.0) -> tuple:
    """One y-range for every frame of a training GIF: room for the true density and the tallest histogram
    bar of any frame, but no more than ``most`` times the density's peak (taller bars are cut off)."""
    target = distributions.get(target)
    lo, hi = xlim
    peak = float(np.max(target.pdf(np.linspace(lo, hi, 600))))
    edges = np.linspace(lo, hi, bins + 1)
    tallest = 0.0
    for _, samples in snapshots:
        counts, _ = np.histogram(samples, bins=edges)
        tallest = max(tallest, counts.max() / (len(samples) * (edges[1] - edges[0])) if len(samples) else 0.0)
    return 0.0, 1.1 * min(max(peak, tallest), most * peak)


def write_gif(snapshots, target, path, name: str, epochs: int, fps: float = 4, dpi: int = 72) -> Path:
    """One histogram per ``(epoch, samples)`` snapshot against the target's density, as a GIF at ``path``.

    Every frame has the same axes (so a growing or shrinking histogram is visible as such) and its KS
    statistic against the target (of the snapshot's samples, so the sampling floor is higher than on
    100,000 samples); samples outside the x-range are marked at the edges by ``plot_1d``.
    """
    target = distributions.get(target)
    lo, hi = target.support(0.998)
    xlim = (lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))  # room for a generator that is still off target
    ylim = gif_ylim(snapshots, target, xlim)
    gif = GifWriter(path, fps=fps)
    fig = frames = None
    for epoch, samples in snapshots:
        title = f"{name}: epoch {epoch + 1}/{epochs}, KS {compare_1d(samples, target)['ks']:.3f}"
        if fig is None:
            fig = plot_1d(samples, target, title=title, xlim=xlim, ylim=ylim)
            fig.set_dpi(dpi)                 # a small frame: drawing it is most of a GIF's cost
            gif.add(figure_to_array(fig))
            fig.set_layout_engine("none")    # the first frame's layout serves every frame
            frames = Frames1D(fig)           # ... and its axes, ticks and legend, drawn once
        else:
            gif.add(frames.frame(samples, title))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return gif.save()


def run_trial(train: Callable[..., TrainResult], config: GanConfig, name: str, out_dir, quick: bool = False,
              gif_frames: int = 10, progress: bool = True) -> Tuple[TrainResult, dict]:
    """Train with ``train(config, snapshot_every=..., progress=...)`` (the notebook's ``train_gan``), measure the
    generator (:func:`measure`: 100,000 samples, as graded), write ``<target>-<name>.gif`` in ``out_dir``
    (no GIF with ``gif_frames=0``); return ``(result, table row)``.

    ``quick`` shortens the run with :meth:`GanConfig.quick` (and the GIF to ``QUICK_GIF_FRAMES`` frames). The row
    holds the trial's name, target, KS, W1/std, the generated mean and std, the training seconds and the GIF's
    file name ("" without one).
    """
    config = config.quick() if quick else config
    gif_frames = min(gif_frames, QUICK_GIF_FRAMES) if quick else gif_frames
    every = max(1, config.epochs // gif_frames) if gif_frames else config.epochs
    result = train(config, snapshot_every=every, progress=progress)
    target = distributions.get(config.target)
    metrics = measure(result.generator, target)
    gif = ""
    if gif_frames:
        gif = write_gif(result.snapshots, target, Path(out_dir) / trial_file(name, target), name, config.epochs).name
    row = {"trial": name, "target": target.name, "KS": metrics["ks"], "W1/std": metrics["w1_over_std"],
           "mean": metrics["mean"], "std": metrics["std"], "seconds": result.seconds, "gif": gif}
    return result, row


def run_trials(train: Callable[..., TrainResult], trials: dict, out_dir, quick: bool = False,
               gif_frames: int = 10, progress: bool = True) -> Tuple[dict, list]:
    """:func:`run_trial` for each ``{name: config}`` in order; return ``({name: result}, [row, ...])``.

    One at a time, in this process: lab 01's full run, its baseline trained ten times longer included, stays
    within its time budget on one thread (docs/benchmarks.md, "Notebook run time"), and trials in a second process
    gained little on a 2-core machine whose other core is often busy.
    """
    results, rows = {}, []
    for name, config in trials.items():
        results[name], row = run_trial(train, config, name, out_dir, quick=quick, gif_frames=gif_frames,
                                       progress=progress)
        rows.append(row)
    return results, rows
