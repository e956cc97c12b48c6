"""Lab 4 (conditional WGAN-GP) support: the BCE baseline's shipped history, and the "WGAN claim" plot.

The lab itself (conditioning, critic, losses, penalty, steps, training loop) is written in the notebook.
Here: the history of the plain-BCE baseline's reference run (trained by ``benchmarks/cwgan_gp_fashion.py`` with
the instructor-only steps of :mod:`labkit.reference.cwgan_bce_baseline`), and the plot of a loss against sample
quality over the epochs of a run.
"""
from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np

__all__ = ["loss_quality_correlation", "plot_loss_against_quality", "bce_baseline_history", "BCE_HISTORY"]

BCE_HISTORY = Path(__file__).resolve().parent.parent / "data" / "references" / "cwgan_bce_baseline.json"


def loss_quality_correlation(loss: Sequence[float], fcd: Sequence[float]) -> float:
    """Pearson correlation over epochs between a logged loss and the FCD (nan with fewer than 3 epochs)."""
    loss, fcd = np.asarray(loss, dtype=np.float64), np.asarray(fcd, dtype=np.float64)
    if loss.shape != fcd.shape:
        raise ValueError(f"Need one loss and one FCD per epoch; got {loss.size} and {fcd.size} values.")
    if loss.size < 3 or loss.std() == 0 or fcd.std() == 0:
        return float("nan")
    return float(np.corrcoef(loss, fcd)[0, 1])


def plot_loss_against_quality(loss: Sequence[float], fcd: Sequence[float], loss_name: str, ax=None,
                              title: str = "") -> float:
    """Plot a loss and the FCD over epochs on twin axes; return their correlation (shown in the title)."""
    import matplotlib.pyplot as plt

    from ..viz.plotting import whole_number_axis

    ax = ax or plt.gca()
    r = loss_quality_correlation(loss, fcd)
    epochs = np.arange(1, len(loss) + 1)
    ax.plot(epochs, loss, "o-", color="tab:blue", label=loss_name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(loss_name, color="tab:blue")
    twin = ax.twinx()
    twin.plot(epochs, fcd, "s--", color="tab:red", label="FCD (lower is better)")
    twin.set_ylabel("FCD to real images", color="tab:red")
    whole_number_axis(ax, len(epochs))
    note = "too few epochs for a correlation" if np.isnan(r) else f"correlation {r:+.2f}"
    # Two panels share a row: wrap the title so it stays above its own axes.
    ax.set_title(f"{textwrap.fill(title, 50)}\n{note}" if title else note, fontsize=10)
    return r


def bce_baseline_history() -> Dict[str, List[float]]:
    """The BCE baseline's per-epoch ``loss_d`` and ``fcd`` from the benchmark's reference run, and its ``source``."""
    if not BCE_HISTORY.exists():
        raise FileNotFoundError(f"{BCE_HISTORY} is missing: run benchmarks/cwgan_gp_fashion.py --write-history.")
    return json.loads(BCE_HISTORY.read_text())
