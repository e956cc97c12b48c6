"""Training as a GIF: collect one frame per snapshot, write them with imageio, show them in Jupyter."""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from .plotting import figure_to_array

__all__ = ["GifWriter", "show_gif", "write_grid_gif"]


class GifWriter:
    """Collect frames (matplotlib figures or RGB arrays) and write an animated GIF.

        gif = GifWriter("output/training.gif", fps=4)
        for epoch in ...:
            gif.add(plot_1d(samples, target, title=f"epoch {epoch}"))   # the figure is closed for you
        gif.save()
    """

    def __init__(self, path, fps: float = 4, hold_last: int = 4):
        self.path = Path(path)
        self.fps = fps
        self.hold_last = hold_last  # the final frame stays this many frame times longer
        self.frames: List[np.ndarray] = []

    def add(self, frame) -> None:
        if hasattr(frame, "canvas"):
            import matplotlib.pyplot as plt

            array = figure_to_array(frame)
            plt.close(frame)
        else:
            array = np.asarray(frame)
        if array.ndim != 3 or array.shape[2] not in (3, 4):
            raise ValueError(f"A GIF frame must be a figure or an H×W×3 array, got shape {array.shape}.")
        if self.frames and array.shape != self.frames[0].shape:
            raise ValueError(f"All frames must have the same size: first {self.frames[0].shape}, now {array.shape}.")
        self.frames.append(array.astype(np.uint8))

    def __len__(self) -> int:
        return len(self.frames)

    def save(self) -> Path:
        import imageio.v3 as iio

        if not self.frames:
            raise ValueError("No frames were added; call add() during training before save().")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        frame_ms = 1000.0 / self.fps
        durations = [frame_ms] * (len(self.frames) - 1) + [frame_ms * (1 + self.hold_last)]
        if len(self.frames) == 1:  # pillow takes a single frame's duration as a number, not a list
            durations = durations[0]
        iio.imwrite(self.path, np.stack(self.frames), extension=".gif", plugin="pillow", duration=durations, loop=0)
        return self.path


def write_grid_gif(frames, path, nrow: int = 16, title: str = "", fps: float = 3, labels=None,
                   class_names=None) -> Path:
    """A GIF of image grids, one frame per ``(epoch, images)`` snapshot (images in tanh range [-1, 1]).

    frames: what :class:`labkit.train.Snapshots` collects; each frame is titled with its epoch.
    labels, class_names: the class of each image of a conditional snapshot (the same in every frame), drawn as
    :func:`~labkit.viz.plotting.image_grid` draws them: row labels when each row is one class.
    """
    from .plotting import image_grid

    if not frames:
        raise ValueError("No snapshots to animate: train at least one epoch first.")
    gif = GifWriter(path, fps=fps)
    for epoch, images in frames:
        gif.add(image_grid(images, labels, nrow=nrow, class_names=class_names,
                           title=f"{title + ': ' if title else ''}epoch {epoch + 1}"))
    return gif.save()


def show_gif(path):
    """Display a GIF inline in Jupyter (returns the display object)."""
    from IPython.display import Image

    return Image(filename=str(path))
