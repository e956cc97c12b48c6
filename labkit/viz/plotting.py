"""Figures the labs draw again and again: 1D densities, loss curves, image grids."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

import numpy as np

__all__ = ["plot_1d", "update_1d", "Frames1D", "plot_losses", "whole_number_axis", "plot_moments", "image_grid",
           "plot_class_histograms", "figure_to_array", "save_and_show"]


def _axes(ax, figsize=(6, 4)):
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _density_heights(values, edges) -> np.ndarray:
    """Bar heights of the density of *all* ``values``: mass outside ``edges`` is left out, not piled into the
    edge bins (as clipping would) nor spread over the shown bins (as ``density=True`` would)."""
    values = _as_numpy(values).reshape(-1)
    counts, _ = np.histogram(values, bins=edges)
    return counts / (max(values.size, 1) * np.diff(edges))


def _density_hist(ax, values, edges, **style):
    """The density histogram as one filled step patch (80 bar rectangles cost most of a GIF frame to build and
    draw); returns it, so :func:`update_1d` can give it new heights."""
    return ax.stairs(_density_heights(values, edges), edges, fill=True, **style)


def _share_text(share: float) -> str:
    return f"{share:.1%}" if share >= 0.001 else "<0.1%"


def _mark_off_axis(ax, values, lo: float, hi: float) -> list:
    """Write, at each edge of the x-range, the share of ``values`` that lies beyond it (nothing if none does);
    return the text artists."""
    values = _as_numpy(values).reshape(-1)
    below, above = float(np.mean(values < lo)), float(np.mean(values > hi))
    style = dict(xycoords="axes fraction", va="top", fontsize=8, color="tab:red",
                 bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="tab:red", alpha=0.9))
    marks = []
    if below > 0:
        marks.append(ax.annotate(f"\u2190 {_share_text(below)} of samples below {lo:.3g}", xy=(0.01, 0.97),
                                 ha="left", **style))
    if above > 0:
        marks.append(ax.annotate(f"{_share_text(above)} of samples above {hi:.3g} \u2192", xy=(0.99, 0.97),
                                 ha="right", **style))
    return marks


def plot_1d(generated, target=None, real=None, ax=None, bins: int = 80, title: Optional[str] = None, xlim=None,
            ylim=None):
    """Histogram of generated samples against the true density of ``target`` (and optionally real samples).

    The histogram is the density of all the samples: those outside the x-range are not drawn (clipping them
    into the edge bins would draw spikes that are not there); the share beyond each edge is written at that
    edge instead. ``xlim``/``ylim`` fix the axes (a GIF's frames share them). On a new figure the legend sits
    below the axes; on an ``ax`` you pass, where it covers the fewest bars and lines.
    """
    from .. import distributions

    generated = _as_numpy(generated).reshape(-1)
    if ax is None:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(8, 4.4), layout="constrained")
        legend = dict(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=3, frameon=False)
    else:
        fig, legend = ax.figure, dict(loc="best")
    if target is not None:
        target = distributions.get(target)
        lo, hi = xlim or target.support(0.998)
        if xlim is None:
            pad = 0.15 * (hi - lo)
            lo, hi = lo - pad, hi + pad
    else:
        lo, hi = xlim or (np.percentile(generated, 0.1), np.percentile(generated, 99.9))
    edges = np.linspace(lo, hi, bins + 1)
    if real is not None:
        _density_hist(ax, real, edges, alpha=0.35, color="tab:gray", label="real samples")
    histogram = _density_hist(ax, generated, edges, alpha=0.6, color="tab:orange", label="generated")
    if target is not None:
        grid = np.linspace(lo, hi, 600)
        ax.plot(grid, target.pdf(grid), color="tab:blue", lw=2, label=f"true pdf: {target.label}")
    marks = _mark_off_axis(ax, generated, lo, hi)
    ax.labkit_1d = {"histogram": histogram, "edges": edges, "marks": marks}   # what update_1d redraws
    ax.set_xlim(lo, hi)
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.set_xlabel("x")
    ax.set_ylabel("density")
    ax.legend(fontsize=8, **legend)
    if title:
        ax.set_title(title)
    return fig


def update_1d(fig, generated, title: Optional[str] = None):
    """Show new ``generated`` samples in a figure made by :func:`plot_1d` (same axes, bins and true density).

    Much cheaper than a new figure, so a GIF's frames reuse one (after drawing the first frame,
    ``fig.set_layout_engine("none")`` keeps its layout instead of solving it again for every frame).
    Returns ``fig``.
    """
    ax = fig.axes[0]
    state = ax.labkit_1d
    state["histogram"].set_data(values=_density_heights(generated, state["edges"]))
    for mark in state["marks"]:
        mark.remove()
    state["marks"] = _mark_off_axis(ax, generated, state["edges"][0], state["edges"][-1])
    if title is not None:
        ax.set_title(title)
    return fig


class Frames1D:
    """Frames of a :func:`plot_1d` figure for new samples, each drawn in a fraction of a full redraw (blitting).

    Axes, ticks, labels and legend do not change between a GIF's frames, and drawing their text is most of a
    frame's cost: they are drawn once into a background, and each frame restores it and draws only the
    histogram, then the true density and the axes' spines over it (as a full redraw orders them; none of
    these is in the background, so none is drawn twice), the off-axis marks and the title. The figure's
    layout must be fixed first (``fig.set_layout_engine("none")`` after a first full draw).

        frames = Frames1D(fig)
        gif.add(frames.frame(samples, title="epoch 3, KS 0.08"))   # an RGB uint8 array
    """

    def __init__(self, fig):
        self.fig, self.ax = fig, fig.axes[0]
        moving = self._drawn_per_frame()
        for artist in moving:
            artist.set_visible(False)
        fig.canvas.draw()
        self.background = fig.canvas.copy_from_bbox(fig.bbox)
        for artist in moving:
            artist.set_visible(True)

    def _drawn_per_frame(self) -> list:
        """The artists each frame draws over the background, in drawing order (the marks change every frame)."""
        ax, state = self.ax, self.ax.labkit_1d
        return [state["histogram"], *ax.lines, *ax.spines.values(), *state["marks"], ax.title]

    def frame(self, generated, title: Optional[str] = None) -> np.ndarray:
        """Show ``generated`` (as :func:`update_1d`) and return the frame as an RGB uint8 array."""
        update_1d(self.fig, generated, title)
        self.fig.canvas.restore_region(self.background)
        for artist in self._drawn_per_frame():
            self.ax.draw_artist(artist)
        return np.asarray(self.fig.canvas.buffer_rgba())[..., :3].copy()


def whole_number_axis(ax, n: int) -> None:
    """An x-axis for points 1..n (epochs): whole-number ticks only, also for n = 1 (not 0.96 ... 1.04)."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlim(0.5, max(n, 1) + 0.5)
    if n <= 12:
        ax.set_xticks(np.arange(1, max(n, 1) + 1))
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_losses(history: Dict[str, Sequence[float]], keys: Sequence[str] = None, ax=None, title: str = "Training curves",
                xlabel: str = "epoch"):
    """Curves of logged values (e.g. ``{"loss_d": [...], "loss_g": [...], "d_real": [...]}``), one point per entry,
    numbered from 1 (the labs log one mean per epoch).

    Short logs get a marker on every point: a one-epoch quick run would otherwise draw a line of one point,
    which is invisible, and the figure would look empty.
    """
    fig, ax = _axes(ax, figsize=(7, 4))
    longest = 0
    for key in keys or [k for k, v in history.items() if len(v) and np.isscalar(v[0])]:
        values = np.asarray(history[key], dtype=float)
        ax.plot(np.arange(1, len(values) + 1), values, marker="o" if len(values) <= 50 else None, markersize=4,
                label=key)
        longest = max(longest, len(values))
    whole_number_axis(ax, longest)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()   # keeps the x label inside the saved figure when several panels share a row
    return fig


def plot_moments(means: Sequence[float], stds: Sequence[float], target, ax=None):
    """Mean and standard deviation of generated samples over training, against the target's."""
    from .. import distributions

    target = distributions.get(target)
    fig, ax = _axes(ax, figsize=(7, 4))
    snapshots = np.arange(1, len(means) + 1)
    ax.plot(snapshots, means, color="tab:orange", label="generated mean")
    ax.plot(snapshots, stds, color="tab:green", label="generated std")
    ax.axhline(target.mean, color="tab:orange", ls="--", label=f"target mean {target.mean:.2f}")
    ax.axhline(target.std, color="tab:green", ls="--", label=f"target std {target.std:.2f}")
    ax.set_xlabel("snapshot")
    whole_number_axis(ax, len(means))  # snapshots 1..n, not 0.25, 0.5, ... in a short run
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig


def _grid_images(images) -> np.ndarray:
    """N images in any of image_grid's layouts as N×H×W (grey) or N×H×W×3 (colour) floats."""
    images = _as_numpy(images).astype(np.float32)
    if images.ndim == 2 and int(round(np.sqrt(images.shape[1]))) ** 2 == images.shape[1]:
        side = int(round(np.sqrt(images.shape[1])))
        images = images.reshape(-1, side, side)
    if images.ndim == 4 and images.shape[1] in (1, 3):   # N×C×H×W -> N×H×W×C
        images = images.transpose(0, 2, 3, 1)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] != 3):
        raise ValueError(f"image_grid expects N×H×W or N×1×H×W grey images, or N×H×W×3 / N×3×H×W colour images, "
                         f"got shape {images.shape}.")
    return images


def _rows_of_one_label(texts: Sequence[str], ncol: int) -> Optional[list]:
    """The label of each row when every row holds one label only (a class per row), else None."""
    rows = [texts[i:i + ncol] for i in range(0, len(texts), ncol)]
    return [row[0] for row in rows] if all(len(set(row)) == 1 for row in rows) else None


GRID_GAP = 2          # pixels of white between tiles
CAPTION_BAND = 11     # pixels of white under each row of tiles that carries captions


def image_grid(images, labels=None, nrow: int = 10, class_names: Sequence[str] = None, title: str = None,
               value_range=(-1.0, 1.0), ax=None, cell_size: float = 0.9, row_labels: Sequence[str] = None,
               captions: Sequence[str] = None, caption_colors: Sequence[str] = None):
    """Show N images (N×28×28, N×1×28×28, N×784, or colour N×H×W×3) in a grid, ``nrow`` per row.

    Text never covers a tile. ``labels`` (class numbers, shown as ``class_names`` if given) that are the same along
    each row (one class per row) become row labels left of the grid; mixed labels become captions under their
    tiles. ``row_labels`` names the rows directly (e.g. "σ = 0.5"); ``captions`` puts one text under each tile, in
    ``caption_colors`` (one matplotlib colour each; default dark grey).

    value_range: the range the images are in (``(-1, 1)`` for tanh generators, ``(0, 1)`` for sampled arrays).
    """
    images = _grid_images(images)
    n, h, w = images.shape[:3]
    ncol = min(nrow, n)
    nrows = int(np.ceil(n / ncol))
    if labels is not None:
        labels = _as_numpy(labels).reshape(-1)[:n]
        texts = [class_names[int(y)] if class_names is not None else str(int(y)) for y in labels]
        per_row = _rows_of_one_label(texts, ncol)
        if row_labels is None and per_row is not None:
            row_labels = per_row
        elif captions is None:
            captions = texts
    if row_labels is not None and len(row_labels) != nrows:
        raise ValueError(f"Got {len(row_labels)} row labels for {nrows} rows: give one per row.")
    if captions is not None and len(captions) != n:
        raise ValueError(f"Got {n} images but {len(captions)} captions: give one caption per image.")
    if caption_colors is not None and len(caption_colors) != n:
        raise ValueError(f"Got {n} images but {len(caption_colors)} caption colours: give one colour per image, or none.")
    band = CAPTION_BAND if captions is not None else 0
    pitch_y, pitch_x = h + GRID_GAP + band, w + GRID_GAP
    lo, hi = value_range
    canvas = np.full((nrows * pitch_y, ncol * pitch_x) + images.shape[3:], 1.0, dtype=np.float32)
    for i, img in enumerate(images):
        r, c = divmod(i, ncol)
        canvas[r * pitch_y + 1: r * pitch_y + 1 + h, c * pitch_x + 1: c * pitch_x + 1 + w] = (img - lo) / (hi - lo)
    import matplotlib.pyplot as plt

    if ax is None:
        label_width = 0.0 if row_labels is None else 0.12 * max(len(str(t)) for t in row_labels) + 0.2
        height = cell_size * nrows * pitch_y / (h + GRID_GAP) + (0.4 if title else 0.1)
        fig, ax = plt.subplots(figsize=(cell_size * ncol + label_width, height), layout="constrained")
    else:
        fig = ax.figure
    ax.imshow(np.clip(canvas, 0, 1), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    # The axes stay on (without spines or ticks) so that row labels are tick labels: the layout makes room for them.
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_xticks([])
    if row_labels is not None:
        ax.set_yticks([r * pitch_y + 1 + h / 2 for r in range(nrows)], [str(t) for t in row_labels], fontsize=10)
        ax.tick_params(axis="y", length=0, pad=3)
    else:
        ax.set_yticks([])
    if captions is not None:
        size = 8 if cell_size < 1.1 else 9
        for i, text in enumerate(captions):
            r, c = divmod(i, ncol)
            ax.text(c * pitch_x + 1 + w / 2, r * pitch_y + 1 + h + band / 2 + 0.5, str(text), ha="center",
                    va="center", fontsize=size, color=caption_colors[i] if caption_colors is not None else "0.15")
    if title:
        ax.set_title(title)
    return fig


def plot_class_histograms(histograms: Dict[str, Sequence[int]], class_names: Sequence[str] = None, ax=None,
                          title: str = "predicted classes"):
    """Bars of the share of each class, one colour per named histogram (counts are normalised to shares)."""
    fig, ax = _axes(ax, figsize=(8, 3.5))
    n_sets = len(histograms)
    width = 0.8 / max(n_sets, 1)
    for i, (name, counts) in enumerate(histograms.items()):
        counts = np.asarray(counts, dtype=np.float64)
        shares = counts / counts.sum()
        x = np.arange(len(shares)) + (i - (n_sets - 1) / 2) * width
        ax.bar(x, shares, width=width, label=name)
    n_classes = len(shares)
    ax.axhline(1 / n_classes, color="gray", ls=":", label="uniform")
    ax.set_xticks(range(n_classes))
    ax.set_xticklabels(class_names if class_names is not None else [str(c) for c in range(n_classes)])
    ax.set_ylabel("share of images")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return fig


def figure_to_array(fig) -> np.ndarray:
    """Render a matplotlib figure to an RGB uint8 array (a GIF frame)."""
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].copy()


def save_and_show(fig, path, dpi: int = 80) -> None:
    """Save ``fig`` as an image at ``path``, show that image in Jupyter and close the figure.

    Returns nothing, so that a notebook cell ending with it shows the figure and no ``PosixPath(...)`` line.

    One drawing instead of two: ``fig.savefig(path)`` then ``plt.show()`` draws the figure to save it and
    again to show it inline (with an extra layout pass for the tight bounding box): 1.5 s against 0.76 s for
    a figure of three histograms on the course's 2-core CPU. Outside Jupyter it only saves.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    try:
        from IPython import get_ipython
        from IPython.display import Image, display
    except ImportError:  # no IPython: a script
        return
    if get_ipython() is not None:
        display(Image(filename=str(path)))
