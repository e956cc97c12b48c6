"""Reproducibility, device choice, quick mode and the notebooks' setup call."""
from __future__ import annotations

import os
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

__all__ = ["seed_everything", "get_device", "quick_mode", "in_colab", "setup", "Lab", "QUICK_ENV"]

QUICK_ENV = "LABKIT_QUICK"


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

    prefer = prefer or os.environ.get("LABKIT_DEVICE")
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


def _mount_drive(name: str) -> Optional[Path]:
    try:
        from google.colab import drive  # type: ignore

        drive.mount("/content/drive")
        return Path("/content/drive/MyDrive/gan-course") / name
    except Exception as exc:  # declined or unavailable: keep going with local files
        print(f"Google Drive not mounted ({exc}); saving to the Colab disk, which is wiped when the session ends.")
        return None


def setup(name: str, seed: int = 0, quick: Optional[bool] = None, use_drive: bool = False) -> Lab:
    """Seed, choose the device and the output folder, print them, and return a :class:`Lab`.

    quick: ``None`` follows ``$LABKIT_QUICK``; ``True``/``False`` forces quick mode.
    use_drive: in Colab, keep outputs and saved models in Google Drive.
    """
    from . import __version__
    from .paths import checkpoints_dir

    quick = quick_mode(quick)
    seed_everything(seed)
    device = get_device()
    output = None
    if use_drive and in_colab():
        output = _mount_drive(name)
    if output is None:
        output = Path(os.environ.get("LABKIT_OUTPUT") or "output") / name
    output.mkdir(parents=True, exist_ok=True)
    lab = Lab(name=name, seed=seed, device=device, quick=quick, output=output, checkpoints=checkpoints_dir())
    print(
        f"labkit {__version__} | {name} | device {device} | seed {seed} | "
        f"quick mode {'ON (small data, few epochs)' if quick else 'off'} | outputs in {output}"
    )
    return lab
