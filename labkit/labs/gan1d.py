"""Lab 01 (a GAN in one dimension): the recipe, the networks and optimisers built from it, and trials.

The training loop itself, ``train_gan``, stays in ``notebooks/01_gan_1d.ipynb`` with the parts the
student writes (``d_step``, ``g_step``, ``epoch_means``); this module holds what that loop and the
notebook's experiments use around it::

    nets = build_gan(config)                  # seeded G, D, opt_g, opt_d, lr schedules, EMA of G
    real_batches = sample_real(config)        # next(real_batches): a (batch_size, 1) real batch
    ...                                       # the notebook's loop: d_step, g_step, nets.after_step()
    result, row = run_trial(train_gan, config, "baseline", out_dir)   # train, measure, write the GIF

The order of the random draws (seed, G, D, then the fixed snapshot noise drawn by the loop, then the
training noise) is the recipe's: the shipped checkpoints in ``checkpoints/gan1d_*.pt`` follow from it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from .. import distributions
from ..metrics import compare_1d
from ..models.mlp import MLPDiscriminator, MLPGenerator
from ..runtime import seed_everything
from ..train import WeightAverage
from ..viz.animation import GifWriter
from ..viz.live import LiveView
from ..viz.plotting import plot_1d

__all__ = ["GanConfig", "TrainResult", "GanNets", "build_gan", "sample_real", "progress_view", "write_gif",
           "run_trial", "EVAL_SAMPLES"]

EVAL_SAMPLES = 20_000  # samples run_trial measures a generator on (two samples this size differ by KS ~0.01)


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
    lr_decay: bool = False
    ema: float = 0.0              # > 0: evaluate an EMA of G's weights with this decay
    seed: int = 0

    def quick(self) -> "GanConfig":
        """A shortened copy for quick mode (tests, grading): same recipe, a few epochs."""
        return replace(self, epochs=min(self.epochs, 6), steps_per_epoch=min(self.steps_per_epoch, 25))


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
    weights with that decay (:class:`labkit.train.WeightAverage`).
    """
    seed_everything(config.seed)
    target = distributions.get(config.target)
    mean, std = (target.mean, target.std) if config.normalize else (0.0, 1.0)
    G = MLPGenerator(config.latent_dim, config.g_hidden, config.activation, data_mean=mean, data_std=std)
    D = MLPDiscriminator(config.d_hidden, config.activation, data_mean=mean, data_std=std)
    opt_g = torch.optim.Adam(G.parameters(), lr=config.lr_g, betas=config.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=config.lr_d, betas=config.betas)
    total_steps = config.epochs * config.steps_per_epoch
    schedulers = [torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps * k)
                  for opt, k in ((opt_g, 1), (opt_d, config.d_steps))] if config.lr_decay else []
    ema = WeightAverage(G, decay=config.ema) if config.ema else None
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


def write_gif(snapshots, target, path, name: str, epochs: int, fps: float = 6) -> Path:
    """One histogram per ``(epoch, samples)`` snapshot against the target's density, as a GIF at ``path``."""
    target = distributions.get(target)
    lo, hi = target.support(0.998)
    xlim = (lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))  # room for a generator that is still off target
    gif = GifWriter(path, fps=fps)
    for epoch, samples in snapshots:
        gif.add(plot_1d(samples, target, title=f"{name}: epoch {epoch + 1}/{epochs}", xlim=xlim))
    return gif.save()


def run_trial(train: Callable[..., TrainResult], config: GanConfig, name: str, out_dir, quick: bool = False,
              gif_frames: int = 30) -> Tuple[TrainResult, dict]:
    """Train with ``train(config, snapshot_every=..., progress=True)`` (the notebook's ``train_gan``), measure the
    generator on 20,000 fresh samples, write ``<name>.gif`` in ``out_dir``; return ``(result, table row)``.

    ``quick`` shortens the run with :meth:`GanConfig.quick`. The row holds the trial's name, target, KS,
    W1/std, the generated mean and std, the training seconds and the GIF's file name.
    """
    config = config.quick() if quick else config
    result = train(config, snapshot_every=max(1, config.epochs // gif_frames), progress=True)
    target = distributions.get(config.target)
    with torch.no_grad():
        samples = result.generator(torch.randn(EVAL_SAMPLES, config.latent_dim)).squeeze(1).numpy()
    metrics = compare_1d(samples, target)
    gif = write_gif(result.snapshots, target, Path(out_dir) / f"{name}.gif", name, config.epochs)
    row = {"trial": name, "target": target.name, "KS": metrics["ks"], "W1/std": metrics["w1_over_std"],
           "mean": metrics["mean"], "std": metrics["std"], "seconds": result.seconds, "gif": gif.name}
    return result, row
