"""A live view of training: a progress bar with the latest numbers, and in Jupyter a plot that redraws.

Outside Jupyter (scripts, nbval, grading) it prints a plain line every few updates instead.
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from typing import Callable, Dict, Optional

__all__ = ["LiveView", "in_notebook"]


def in_notebook() -> bool:
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"
    except ImportError:
        return False


class LiveView:
    """Track logged values during training.

        view = LiveView(total=epochs, plot_every=5)
        for epoch in range(epochs):
            ...
            view.update(loss_d=..., loss_g=..., d_real=..., d_fake=...)
        view.close()
        view.history   # {"loss_d": [...], ...}

    plot: optional ``plot(history) -> figure`` drawn every ``plot_every`` updates in Jupyter.
    """

    def __init__(self, total: int, desc: str = "training", plot_every: int = 0, plot: Optional[Callable] = None,
                 print_every: Optional[int] = None, live: Optional[bool] = None):
        self.total = total
        self.history: Dict[str, list] = defaultdict(list)
        self.live = in_notebook() if live is None else live
        self.plot_every = plot_every
        self.plot = plot
        self.print_every = print_every or max(1, total // 10)
        self.count = 0
        self.start = time.perf_counter()
        self._handle = None
        if self.live:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc)
        else:
            self._bar = None
            self.desc = desc

    def update(self, **values) -> None:
        self.count += 1
        for key, value in values.items():
            self.history[key].append(float(value))
        summary = " ".join(f"{k}={float(v):.4g}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix_str(summary, refresh=False)
            self._bar.update(1)
            if self.plot and self.plot_every and self.count % self.plot_every == 0:
                self._redraw()
        elif self.count % self.print_every == 0 or self.count == self.total:
            elapsed = time.perf_counter() - self.start
            print(f"[{self.desc}] {self.count}/{self.total} {summary} ({elapsed:.1f}s)", file=sys.stdout, flush=True)

    def _redraw(self) -> None:
        import matplotlib.pyplot as plt
        from IPython.display import display

        fig = self.plot(dict(self.history))
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)
        plt.close(fig)

    def close(self) -> Dict[str, list]:
        if self._bar is not None:
            self._bar.close()
        return dict(self.history)
