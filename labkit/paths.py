"""Where things live: the repository, the reference checkpoints, and the output folder."""
from __future__ import annotations

from pathlib import Path
from .environment import CHECKPOINTS, OUTPUT, REPO

__all__ = ["repo_root", "checkpoints_dir", "checkpoint", "output_dir"]


def repo_root() -> Path:
    """The course repository (labkit is installed from a clone, editable, or used in place)."""
    return Path(REPO.get() or Path(__file__).resolve().parent.parent)


def checkpoints_dir() -> Path:
    """Reference checkpoints: ``$LABKIT_CHECKPOINTS``, else ``<repo>/checkpoints``."""
    return Path(CHECKPOINTS.get() or repo_root() / "checkpoints")


def checkpoint(name: str) -> Path:
    """Path of a reference checkpoint, with a clear error when it is missing."""
    path = checkpoints_dir() / name
    if not path.exists():
        available = sorted(p.name for p in checkpoints_dir().glob("*.pt")) if checkpoints_dir().exists() else []
        raise FileNotFoundError(
            f"Reference checkpoint {name!r} not found in {checkpoints_dir()}. "
            f"Available: {', '.join(available) or 'none'}. Clone the whole course repository "
            "(the checkpoints/ folder ships with it) or set LABKIT_CHECKPOINTS to where they are."
        )
    return path


def output_dir() -> Path:
    """Where notebooks write figures, GIFs and models: ``$LABKIT_OUTPUT``, else ``./output``."""
    path = Path(OUTPUT.get() or "output")
    path.mkdir(parents=True, exist_ok=True)
    return path
