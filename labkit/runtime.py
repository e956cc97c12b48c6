"""Reproducibility, device choice, quick mode and the notebooks' setup call."""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from .environment import DEVICE, OUTPUT, QUICK, THREADS

__all__ = ["seed_everything", "get_device", "quick_mode", "in_colab", "setup", "Lab", "QUICK_ENV", "THREADS_ENV",
           "LAB_THREADS", "choose_threads"]

QUICK_ENV = QUICK.name
THREADS_ENV = THREADS.name

# Torch CPU threads for a lab, chosen by measurement (python benchmarks/benchmark.py --threads; docs/benchmarks.md).
# Lab 01's networks have a few hundred to a few thousand weights and batches of 512 numbers: an operation is too
# small to split. On the course's quiet 2-core CPU, 500 generator steps take the same time with 1 or 2 threads
# (2 threads: 0.89-1.14x the time of 1, three runs); with the other core busy, 2 threads take 4.5x and 13x as long
# (baseline 3.6-4.8 s against 13-25 s, tuned recipe 5.9-9.0 s against 75-115 s), and grading runs two notebooks
# at once. The generators are bit-identical either way. Labs not listed keep torch's default (one per core).
LAB_THREADS = {"01_gan_1d": 1}


def seed_everything(seed: int = 0) -> int:
    """Seed Python, NumPy and PyTorch (CPU and GPU) and make cuDNN deterministic."""
    import torch

    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}.")
    seed = int(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    # benchmark=True picks kernels by timing them, which changes results from run to run.
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return seed


def get_device(prefer: Optional[str] = None):
    """``cuda`` if available, else Apple's ``mps``, else ``cpu`` (or ``prefer`` / ``$LABKIT_DEVICE``)."""
    import torch

    prefer = prefer or DEVICE.get()
    if prefer:
        return torch.device(prefer)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def quick_mode(value: Optional[bool] = None) -> bool:
    """Whether quick mode is on. ``quick_mode(True)`` switches it on for this process.

    Quick mode shrinks data and epochs so every reference notebook runs in a few
    minutes on a laptop CPU; the automatic tests and grading use it.
    """
    if value is not None:
        os.environ[QUICK_ENV] = "1" if value else "0"
    return os.environ.get(QUICK_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def choose_threads(name: str, threads: Optional[int] = None):
    """Set torch's CPU thread count for lab ``name``; return ``(threads, why)``.

    ``threads`` if given, else ``$LABKIT_THREADS``, else :data:`LAB_THREADS` for the lab, else torch's default.
    """
    import torch

    if threads is None and os.environ.get(THREADS_ENV, "").strip():
        threads, why = int(os.environ[THREADS_ENV]), f"${THREADS_ENV}"
    elif threads is not None:
        why = "asked for"
    elif name in LAB_THREADS:
        threads, why = LAB_THREADS[name], "tiny networks: more threads only add overhead"
    else:
        return torch.get_num_threads(), "torch default"
    if threads < 1:
        raise ValueError(f"The number of threads must be at least 1, got {threads}.")
    torch.set_num_threads(threads)
    return threads, why


def in_colab() -> bool:
    return "google.colab" in sys.modules


@dataclass
class Lab:
    """What a notebook needs to know about where and how it runs (returned by ``setup``)."""

    name: str
    seed: int
    device: object
    quick: bool
    output: Path
    checkpoints: Path

    def pick(self, full, quick):
        """``quick`` in quick mode, else ``full``: ``EPOCHS = lab.pick(full=200, quick=3)``."""
        return quick if self.quick else full

    def path(self, filename: str) -> Path:
        """A file in this notebook's output folder."""
        return self.output / filename

    def save_model(self, filename: str, model, **metadata) -> Path:
        """Save the final ``model`` (with ``saveModel``'s metadata) where the quality checks grade it; return the path.

        A full run writes ``filename`` beside the notebook, the file the grader reads, and a second copy in the output
        folder when that is elsewhere (Google Drive with ``use_drive``); quick mode writes ``<name>_quick.pt`` in the
        output folder only, so a quick run never overwrites the model a full run trained.
        """
        import shutil

        from .checkpoint import saveModel

        if self.quick:
            return saveModel(model, self.path(Path(filename).stem + "_quick" + Path(filename).suffix), **metadata)
        path = saveModel(model, Path(filename), **metadata)
        if self.output.resolve() != Path.cwd().resolve():
            shutil.copy(path, self.path(Path(filename).name))
        return path

    def save_figure(self, filename: str, fig=None, dpi: int = 80) -> None:
        """Save ``fig`` (default: the current figure) as ``filename`` in the output folder and show it once
        (:func:`labkit.viz.plotting.save_and_show`: one drawing where ``savefig`` and ``plt.show()`` make two)."""
        import matplotlib.pyplot as plt

        from .viz.plotting import save_and_show

        save_and_show(plt.gcf() if fig is None else fig, self.path(filename), dpi=dpi)


def _mount_drive(name: str) -> Optional[Path]:
    try:
        from google.colab import drive  # type: ignore

        drive.mount("/content/drive")
        return Path("/content/drive/MyDrive/gan-course") / name
    except Exception as exc:  # declined or unavailable: keep going with local files
        print(f"Google Drive not mounted ({exc}); saving to the Colab disk, which is wiped when the session ends.")
        return None


def setup(name: str, seed: int = 0, quick: Optional[bool] = None, use_drive: bool = False,
          threads: Optional[int] = None) -> Lab:
    """Seed, choose the device, the CPU threads and the output folder, print them, and return a :class:`Lab`.

    quick: ``None`` follows ``$LABKIT_QUICK``; ``True``/``False`` forces quick mode.
    use_drive: in Colab, keep outputs and saved models in Google Drive.
    threads: torch's CPU threads; ``None`` chooses per lab (:func:`choose_threads`).
    """
    from .version import __version__
    from .paths import checkpoints_dir

    quick = quick_mode(quick)
    seed_everything(seed)
    device = get_device()
    n_threads, why = choose_threads(name, threads)
    output = None
    if use_drive and in_colab():
        output = _mount_drive(name)
    if output is None:
        output = Path(OUTPUT.get() or "output") / name
    output.mkdir(parents=True, exist_ok=True)
    lab = Lab(name=name, seed=seed, device=device, quick=quick, output=output, checkpoints=checkpoints_dir())
    print(
        f"labkit {__version__} | {name} | device {device} | {n_threads} CPU thread{'s' if n_threads != 1 else ''} "
        f"({why}) | seed {seed} | "
        f"quick mode {'ON (small data, few epochs)' if quick else 'off'} | outputs in {output}"
    )
    return lab
