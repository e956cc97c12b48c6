"""What every lab's training loop shares: an EMA of weights, per-epoch means, fixed-noise snapshots, timing.

The loops themselves stay in the notebooks, where students write and read them; these are the small
parts around them that are the same in every lab::

    ema = WeightAverage(G, decay=ema_decay(total_steps))     # evaluate ema.model, not G
    log = EpochLog()
    for epoch in range(epochs):
        for real in loader:
            log.add(d_step(...)); log.add(g_step(...)); ema.update(G)
        history = log.end_epoch(history)                      # {"loss_d": [...], ...}
"""
from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field
import os
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

import torch
from torch import nn

__all__ = ["WeightAverage", "ema_decay", "EpochLog", "Snapshots", "Stopwatch", "save_training_state",
           "resume_training", "TrainingState"]


def ema_decay(total_steps: int, horizon: float = 0.1, longest: float = 0.999) -> float:
    """An EMA decay that averages over about ``horizon`` of a run of ``total_steps`` steps.

    The average of an EMA with decay ``d`` spans about ``1 / (1 - d)`` steps. A fixed 0.999 spans
    1,000 steps: right for a 10,000-step run, but over a 150-step quick run it leaves the averaged
    model at its initial weights. Scaling the span with the run keeps quick mode a small copy of
    the real recipe. Capped at ``longest``.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be positive, got {total_steps}.")
    span = max(1.0, horizon * total_steps)
    return min(longest, 1.0 - 1.0 / span)


class WeightAverage:
    """An exponential moving average (EMA) of a model's weights, kept in its own copy ``.model``.

    ``update(model)`` after each optimiser step does ``avg <- decay * avg + (1 - decay) * current``
    for parameters and for floating-point buffers (batch-norm running statistics) alike. Averaging
    the statistics with the weights keeps them consistent: the current model's statistics describe
    the current weights, and paired with averaged weights they turn a batch-norm generator's output
    into one repeated blob. GAN training circles around a solution; evaluating the average removes
    most of that wobble at no training cost. With ``decay == 0`` the average is the latest model.
    """

    def __init__(self, model: nn.Module, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"The EMA decay must be in [0, 1), got {decay}.")
        self.decay = float(decay)
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        weight = 1.0 - self.decay
        averaged, current = [], []
        for mine, theirs in zip(self.model.parameters(), model.parameters()):
            averaged.append(mine)
            current.append(theirs.detach())
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            if mine.is_floating_point():
                averaged.append(mine)
                current.append(theirs.detach())
            else:
                mine.copy_(theirs)  # counters such as num_batches_tracked
        if averaged:
            # One call for all tensors: the same lerp_ on each (bit for bit), without a Python round trip per
            # tensor, which is most of the cost for the 1D lab's small networks.
            torch._foreach_lerp_(averaged, current, weight)


    @torch.no_grad()
    def averaged(self, batches: int = 8, batch_size: int = 256) -> nn.Module:
        """The averaged model in eval mode; for a generator with batch norm, with the statistics recomputed.

        Batch-norm running statistics describe the weights they were collected with; averaged weights
        need their own ("standing statistics", as BigGAN evaluates its EMA generator): ``batches``
        forward passes of fresh noise in train mode, averaged with equal weights, then eval mode.
        """
        from .checkpoint import generator_inputs

        norms = [m for m in self.model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if norms and hasattr(self.model, "latent_dim"):
            device = next(self.model.parameters()).device
            momenta = [m.momentum for m in norms]
            for m in norms:
                m.reset_running_stats()
                m.momentum = None  # cumulative average over the calibration batches
            self.model.train()
            for _ in range(batches):
                self.model(*(t.to(device) for t in generator_inputs(self.model, batch_size)))
            for m, momentum in zip(norms, momenta):
                m.momentum = momentum
        return self.model.eval()


class EpochLog:
    """Sums of the numbers each training step returns, turned into one mean per key per epoch.

    ``add({"loss_d": 0.7, "d_real": 0.6})`` after every step; ``end_epoch(history)`` appends each
    key's mean over the steps that reported it (a key logged twice per step, e.g. with 2 D steps,
    is averaged over its own count) and starts the next epoch.
    """

    def __init__(self):
        self.totals: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def add(self, values: Mapping[str, float]) -> None:
        for key, value in values.items():
            self.totals[key] = self.totals.get(key, 0.0) + float(value)
            self.counts[key] = self.counts.get(key, 0) + 1

    def means(self) -> Dict[str, float]:
        return {key: self.totals[key] / self.counts[key] for key in self.totals}

    def end_epoch(self, history: Optional[Dict[str, List[float]]] = None) -> Dict[str, List[float]]:
        history = {} if history is None else history
        for key, value in self.means().items():
            history.setdefault(key, []).append(value)
        self.totals, self.counts = {}, {}
        return history


@dataclass
class Snapshots:
    """Outputs of the (averaged) generator on one fixed noise batch, taken every ``every`` epochs.

    The same noise at every snapshot makes the frames comparable: a GIF of them shows training,
    not sampling noise. ``take(epoch, generator, last)`` stores ``(epoch, numpy array)``.
    """

    noise: tuple                      # the fixed inputs: (z,) or (z, labels)
    every: int = 1
    frames: list = field(default_factory=list)

    @torch.no_grad()
    def take(self, epoch: int, generator: nn.Module, last: bool = False) -> bool:
        if epoch % self.every and not last:
            return False
        was_training = generator.training
        generator.eval()
        try:
            device = next(generator.parameters()).device
            output = generator(*(t.to(device) for t in self.noise))
        finally:
            generator.train(was_training)
        self.frames.append((epoch, output.detach().float().cpu().numpy()))
        return True


class Stopwatch:
    """Wall time of a run, with the time spent outside training (snapshots, plots) left out."""

    def __init__(self):
        self._start = time.perf_counter()
        self._paused = 0.0

    @contextlib.contextmanager
    def pause(self):
        """``with watch.pause(): ...`` does not count the block."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self._paused += time.perf_counter() - t0

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._start - self._paused


@dataclass
class TrainingState:
    """Where a resumed run starts: the next epoch to train and the history so far."""

    next_epoch: int = 0
    history: Dict[str, List[float]] = field(default_factory=dict)
    extra: Dict[str, Any] = field(default_factory=dict)


def save_training_state(path, epoch: int, history: Mapping[str, List[float]], extra: Optional[Mapping] = None,
                        **parts) -> Path:
    """Save everything needed to resume after ``epoch``: the ``parts``' state dicts (networks, optimisers,
    a WeightAverage's model), the history and ``extra`` (e.g. snapshot frames).

    Written to a temporary file first, so an interrupted save never destroys the previous checkpoint.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    states = {name: (part.model if isinstance(part, WeightAverage) else part).state_dict() for name, part in parts.items()}
    payload = {"epoch": int(epoch), "history": {k: list(v) for k, v in history.items()}, "states": states,
               "extra": dict(extra or {})}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def resume_training(path, **parts) -> TrainingState:
    """Load a checkpoint written by :func:`save_training_state` into ``parts`` (same names) if ``path`` exists.

    Returns the :class:`TrainingState` to continue from (epoch 0 and an empty history when there is
    no checkpoint yet). A checkpoint of another architecture raises a clear error instead of
    silently training from scratch: delete it, or point ``path_to_checkpoint`` elsewhere.
    """
    path = Path(path)
    if not path.exists():
        return TrainingState()
    payload = torch.load(path, map_location="cpu", weights_only=False)
    missing = sorted(set(parts) - set(payload["states"]))
    if missing:
        raise ValueError(f"{path} has no saved state for {', '.join(missing)}; it was written by another run. "
                         "Delete it to start from scratch.")
    for name, part in parts.items():
        target = part.model if isinstance(part, WeightAverage) else part
        try:
            target.load_state_dict(payload["states"][name])
        except (RuntimeError, ValueError) as exc:
            raise ValueError(f"The training checkpoint {path} does not fit {name} ({str(exc).splitlines()[0]}). "
                             "Did the architecture change? Delete the file to train from scratch.") from None
    return TrainingState(next_epoch=payload["epoch"] + 1, history=payload["history"], extra=payload.get("extra", {}))
