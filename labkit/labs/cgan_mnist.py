"""Support code of lab 02 (conditional GAN on MNIST): choosing the model to explore, embedding-space tools, plots, the explorer.

The graded parts (the networks' forward passes, the training step, the per-class report of the discriminator,
the 1-NN embedding classifier, interpolation and noise variations) are the student's; this module holds what
the notebook's figures need around them, for any generator with the lab's interface:

* ``G.latent_dim``, ``G.n_classes``, ``G.embedding`` (an ``nn.Embedding(n_classes, embed_dim)``);
* ``G.from_embedding(z, e)``: images ``(B, 1, 28, 28)`` in [-1, 1] from noise ``(B, latent_dim)`` and label
  embeddings ``(B, embed_dim)``, so vectors that belong to no label can be fed in;
* ``G(z, labels) == G.from_embedding(z, G.embedding(labels))``.

The explorer (:func:`explore`) redraws a grid live with ipywidgets in Jupyter and Colab; headless (nbval,
``labkit run``, tests) it draws one static frame with :func:`draw_explorer_frame`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoint import Configurable

__all__ = [
    "FCConditionalGenerator", "FCConditionalDiscriminator", "ExplorerSettings", "ModelChoice", "choose_models", "label_table", "random_embeddings", "classify_images",
    "sigma_effect", "plot_sigma_effect", "captioned_grid", "show_predictions", "explorer_inputs",
    "draw_explorer_frame", "explore", "require_explorable",
]

DATASET = "mnist"
# The explorer's seed k draws from torch seed EXPLORER_SEED_OFFSET + k: seed k itself would redraw the values that
# networks initialised after torch.manual_seed(k) started from (with seed 0, the label embedding's first rows).
EXPLORER_SEED_OFFSET = 1000


def require_explorable(G: nn.Module) -> None:
    """Raise a clear error unless ``G`` has the lab's generator interface (see the module docstring)."""
    missing = [name for name in ("latent_dim", "n_classes", "embedding", "from_embedding") if not hasattr(G, name)]
    if missing:
        raise TypeError(f"{type(G).__name__} lacks {', '.join(missing)}: the exploration tools need the lab's "
                        "Generator (latent_dim, n_classes, an nn.Embedding named embedding, from_embedding(z, e)). "
                        "A generator loaded from its exported copy has no embedding: load the weights into the "
                        "notebook's class with loadModel(path, model=Generator(...)).")
    if not isinstance(G.embedding, nn.Embedding):
        raise TypeError(f"G.embedding must be an nn.Embedding, got {type(G.embedding).__name__}.")


def _device(module: nn.Module) -> torch.device:
    return next(module.parameters()).device


@torch.no_grad()
def label_table(G: nn.Module) -> torch.Tensor:
    """The generator's label embeddings, one row per class: ``(n_classes, embed_dim)`` on the CPU."""
    require_explorable(G)
    return G.embedding.weight.detach().float().cpu().clone()


def random_embeddings(table: torch.Tensor, n: int, seed: int = 0, spread: float = 1.0) -> torch.Tensor:
    """``n`` embedding vectors that belong to no label: each coordinate drawn from a normal distribution with the
    mean and ``spread`` times the standard deviation of that coordinate over the table's rows. ``(n, embed_dim)``."""
    table = torch.as_tensor(table, dtype=torch.float32)
    if table.dim() != 2 or len(table) < 2:
        raise ValueError(f"table must be (n_classes >= 2, embed_dim), got shape {tuple(table.shape)}.")
    if n <= 0:
        raise ValueError(f"n must be positive, got {n}.")
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(int(n), table.shape[1], generator=gen)
    return table.mean(dim=0) + spread * table.std(dim=0) * noise


def classify_images(images, value_range=(-1.0, 1.0)) -> Tuple[np.ndarray, np.ndarray]:
    """The metric classifier's predicted digit ``(N,)`` and its confidence ``(N,)`` for images in ``value_range``."""
    from ..metrics import classifier_outputs

    probabilities, _ = classifier_outputs(images, DATASET, value_range=value_range, clip=True)
    return probabilities.argmax(axis=1), probabilities.max(axis=1)


# --------------------------------------------------------------------------- the fully connected baseline


class FCConditionalGenerator(Configurable):
    """The classic fully connected conditional generator (Mirza & Osindero, 2014; the lecture's FC GAN with a label):
    cat([z, embedding(labels)]) -> 256 -> 512 -> 1024 -> 784, LeakyReLU(0.2) between, tanh -> (B, 1, 28, 28).

    It has the lab's generator interface (``embedding``, ``from_embedding``), so everything in Section 2 runs on it:
    the benchmark's baseline (``benchmarks/cgan_mnist.py``).
    """

    def __init__(self, latent_dim: int = 100, embed_dim: int = 32, hidden: Sequence[int] = (256, 512, 1024),
                 n_classes: int = 10):
        super().__init__()
        from ..models.mlp import make_mlp

        self.latent_dim, self.embed_dim, self.n_classes = int(latent_dim), int(embed_dim), int(n_classes)
        self.embedding = nn.Embedding(self.n_classes, self.embed_dim)
        self.net = nn.Sequential(make_mlp([self.latent_dim + self.embed_dim, *hidden, 784], "leaky_relu"), nn.Tanh())

    def from_embedding(self, z: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([z, e], dim=1)).view(-1, 1, 28, 28)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.from_embedding(z, self.embedding(labels))


class FCConditionalDiscriminator(Configurable):
    """The classic fully connected conditional discriminator: cat([image (784), embedding(labels)]) -> 1024 -> 512
    -> 256 -> 1, LeakyReLU(0.2) and dropout after each hidden layer, sigmoid: a probability per image."""

    def __init__(self, embed_dim: int = 32, hidden: Sequence[int] = (1024, 512, 256), dropout: float = 0.3,
                 n_classes: int = 10):
        super().__init__()
        self.n_classes = int(n_classes)
        self.embedding = nn.Embedding(self.n_classes, int(embed_dim))
        layers, width = [], 784 + int(embed_dim)
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LeakyReLU(0.2), nn.Dropout(dropout)]
            width = size
        self.net = nn.Sequential(*layers, nn.Linear(width, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([x.flatten(1), self.embedding(labels)], dim=1))


# --------------------------------------------------------------------------- which model Section 2 explores


@dataclass
class ModelChoice:
    """The generator and discriminator Section 2 explores, and why they were chosen."""

    G: nn.Module
    D: Optional[nn.Module]
    source: str
    accuracy: Optional[float]


def _accuracy(G: nn.Module, n: int) -> float:
    from ..metrics import evaluate_generator

    return float(evaluate_generator(G, DATASET, n=n, seed=0, reference=False)["conditional_accuracy"])


def choose_models(own: Sequence[Tuple[Path, Path]], shipped: Path, build_G: Callable[[], nn.Module],
                  build_D: Callable[[], nn.Module], current: Tuple[nn.Module, nn.Module], min_accuracy: float = 0.9,
                  n: int = 1000) -> ModelChoice:
    """The first good pair of ``own`` (generator file, discriminator file) saved by the student, else the shipped
    checkpoint ``shipped`` (with ``shipped`` minus ``.pt`` plus ``_D.pt``), else ``current`` (this session's models),
    with a printed line saying which and why. "Good": a conditional accuracy of at least ``min_accuracy`` on ``n``
    samples. The files are loaded into ``build_G()`` / ``build_D()``, the notebook's own classes, so the
    embedding and ``from_embedding`` are there."""
    from ..checkpoint import CheckpointError, loadModel

    notes = []
    candidates = [(Path(g), Path(d), "your saved model") for g, d in own]
    shipped = Path(shipped)
    candidates.append((shipped, shipped.with_name(shipped.stem + "_D.pt"), "the course's reference checkpoint"))
    for g_path, d_path, what in candidates:
        if not g_path.exists():
            notes.append(f"{g_path.name}: not found")
            continue
        try:
            G = loadModel(g_path, model=build_G())
            D = loadModel(d_path, model=build_D()) if d_path.exists() else None
        except (CheckpointError, RuntimeError, ValueError, TypeError) as exc:
            notes.append(f"{g_path.name}: does not load into this notebook's classes ({str(exc).splitlines()[0]})")
            continue
        accuracy = _accuracy(G, n)
        if accuracy < min_accuracy:
            notes.append(f"{g_path.name}: conditional accuracy {accuracy:.1%} < {min_accuracy:.0%}")
            continue
        source = f"{what} {g_path}" + ("" if D is not None else f" (no discriminator at {d_path.name})")
        print(f"Section 2 explores {source}: conditional accuracy {accuracy:.1%} on {n} samples."
              + (f" Skipped: {'; '.join(notes)}." if notes else ""))
        return ModelChoice(G.eval(), None if D is None else D.eval(), source, accuracy)
    G, D = current
    accuracy = _accuracy(G, n)
    print(f"Section 2 explores the models trained in this session (conditional accuracy {accuracy:.1%} on {n} "
          f"samples): no good saved model ({'; '.join(notes)}). Train with QUICK = False and save, or get "
          f"{shipped.name} from the course repository, for meaningful figures.")
    return ModelChoice(G.eval(), D.eval(), "the models trained in this session", accuracy)


# --------------------------------------------------------------------------- noise and labels: measured


@torch.no_grad()
def sigma_effect(G: nn.Module, variations: Callable, sigmas: Sequence[float], n: int = 100, on: str = "z",
                 seed: int = 0) -> Dict[str, np.ndarray]:
    """For each sigma and class: the share of ``n`` variations (``variations(G, label, sigma, n, on, seed)`` ->
    ``(z, e)``) that the metric classifier still calls that class, and its mean confidence.

    Returns ``{"sigma": (S,), "kept": (S, C), "confidence": (S, C)}``.
    """
    require_explorable(G)
    G.eval()
    kept = np.zeros((len(sigmas), G.n_classes))
    confidence = np.zeros_like(kept)
    for i, sigma in enumerate(sigmas):
        for c in range(G.n_classes):
            z, e = variations(G, c, float(sigma), n, on=on, seed=seed)
            predicted, conf = classify_images(G.from_embedding(z, e))
            kept[i, c] = float((predicted == c).mean())
            confidence[i, c] = float(conf.mean())
    return {"sigma": np.asarray(sigmas, dtype=float), "kept": kept, "confidence": confidence}


def plot_sigma_effect(results: Dict[str, Dict[str, np.ndarray]], ax=None, title: str = "noise around the mean input"):
    """Label kept and confidence (means over the classes) against sigma, one pair of lines per entry of
    ``results`` (e.g. ``{"noise on z": ..., "noise on the embedding": ...}`` from :func:`sigma_effect`)."""
    import matplotlib.pyplot as plt

    if ax is None:   # constrained: the x label and the legend beside the axes stay inside the saved figure
        _, ax = plt.subplots(figsize=(8.5, 3.5), layout="constrained")
    for (name, r), color in zip(results.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        ax.plot(r["sigma"], r["kept"].mean(axis=1), "o-", color=color, label=f"{name}: label kept")
        ax.plot(r["sigma"], r["confidence"].mean(axis=1), "s--", color=color, label=f"{name}: confidence")
    ax.set_xlabel("σ of the noise")
    ax.set_ylabel("share / mean probability")
    ax.set_ylim(0, 1.02)
    ax.set_title(title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)   # beside the lines, over none
    return ax


def captioned_grid(images, captions: Sequence[str], colors: Optional[Sequence[str]] = None, nrow: int = 10,
                   title: Optional[str] = None, value_range=(-1.0, 1.0), row_labels: Optional[Sequence[str]] = None):
    """:func:`labkit.viz.plotting.image_grid` of 28×28 images with a caption under each, outside the tile
    (``colors``: one matplotlib colour per caption, default dark grey) and optional ``row_labels``."""
    from ..viz.plotting import image_grid

    captions = [str(c) for c in captions]
    n = len(images)
    if len(captions) != n:
        raise ValueError(f"Got {n} images but {len(captions)} captions: give one caption per image.")
    if colors is not None and len(colors) != n:
        raise ValueError(f"Got {n} images but {len(colors)} colours: give one colour per image, or none.")
    return image_grid(images, nrow=nrow, title=title, cell_size=1.25, value_range=value_range, captions=captions,
                      caption_colors=colors, row_labels=row_labels)


def show_predictions(images, probabilities, labels, nrow: int = 10, title: Optional[str] = None,
                     threshold: float = 0.5):
    """Images (tanh range) captioned "label: P(real)" with the discriminator's probability of "real", green when
    above ``threshold`` (called real) and red otherwise."""
    probabilities = torch.as_tensor(probabilities).detach().cpu().float().reshape(-1).numpy()
    labels = torch.as_tensor(labels).detach().cpu().reshape(-1).numpy()
    if not len(probabilities) == len(labels) == len(images):
        raise ValueError(f"Got {len(images)} images, {len(probabilities)} probabilities and {len(labels)} labels: "
                         "one of each per image.")
    return captioned_grid(images, [f"{int(y)}: {p:.2f}" for p, y in zip(probabilities, labels)],
                          ["tab:green" if p > threshold else "tab:red" for p in probabilities], nrow=nrow, title=title)


# --------------------------------------------------------------------------- the interactive explorer


@dataclass(frozen=True)
class ExplorerSettings:
    """One state of the explorer's sliders.

    label, sigma_z, sigma_e: the top row shows ``columns`` variations of class ``label``: z drawn around the mean
    latent (zero) with standard deviation ``sigma_z``, and the label's embedding with noise of ``sigma_e``.
    mix_with, mix: the embedding is ``(1 - mix) * e(label) + mix * e(mix_with)``.
    label_b, t: the bottom row interpolates from (z_a, label) to (z_b, label_b), both z and embedding; the large
    image on the right is the point at ``t``.
    """

    label: int = 3
    sigma_z: float = 1.0
    sigma_e: float = 0.0
    mix_with: int = 8
    mix: float = 0.0
    label_b: int = 7
    t: float = 0.5
    seed: int = 0
    columns: int = 10

    def validated(self, n_classes: int) -> "ExplorerSettings":
        for name in ("label", "mix_with", "label_b"):
            value = getattr(self, name)
            if not 0 <= int(value) < n_classes:
                raise ValueError(f"{name} must be a class 0-{n_classes - 1}, got {value}.")
        for name in ("mix", "t"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        if self.sigma_z < 0 or self.sigma_e < 0:
            raise ValueError(f"The noise levels must be >= 0, got sigma_z={self.sigma_z}, sigma_e={self.sigma_e}.")
        if self.columns < 2:
            raise ValueError(f"columns must be at least 2, got {self.columns}.")
        return self


# mix and t are read on a grid of this many points of the student's interpolate (the sliders move in steps of 0.05)
_FINE_STEPS = 101


@torch.no_grad()
def explorer_inputs(G: nn.Module, s: ExplorerSettings, *, interpolate: Callable, variations: Callable
                    ) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """The (z, e) batches of one explorer frame: ``"variations"`` (columns), ``"path"`` (columns), ``"point"`` (1).

    Made with the notebook's own ``interpolate(a, b, steps)`` (the mix of two labels, the path, its point at t)
    and ``variations(G, label, sigma, n, on, seed)`` (the noise on z and on the embedding).
    """
    require_explorable(G)
    s = s.validated(G.n_classes)
    table = label_table(G)
    seed, k, fine = EXPLORER_SEED_OFFSET + int(s.seed), s.columns, _FINE_STEPS

    def at(a: torch.Tensor, b: torch.Tensor, t: float) -> torch.Tensor:
        return interpolate(a, b, fine)[round(float(t) * (fine - 1))]

    e_mixed = at(table[s.label], table[s.mix_with], s.mix)
    z_var = variations(G, s.label, s.sigma_z, k, on="z", seed=seed)[0].float().cpu()
    e_noisy = variations(G, s.label, s.sigma_e, k, on="embedding", seed=seed + 1)[1].float().cpu()
    e_var = e_mixed + (e_noisy - table[s.label])                                    # the noise, around the mix
    z_a, z_b = torch.randn(2, G.latent_dim, generator=torch.Generator().manual_seed(seed + 2))
    path = (interpolate(z_a, z_b, k), interpolate(e_mixed, table[s.label_b], k))
    point = (at(z_a, z_b, s.t)[None], at(e_mixed, table[s.label_b], s.t)[None])
    return {"variations": (z_var, e_var), "path": path, "point": point}


@torch.no_grad()
def draw_explorer_frame(G: nn.Module, settings: ExplorerSettings, fig=None, *, interpolate: Callable,
                        variations: Callable):
    """Draw one frame of the explorer into ``fig`` (a new figure if None) and return it: the variations row, the
    interpolation row, and the interpolation's point at ``t`` large, each titled with the metric classifier's call.
    ``interpolate`` and ``variations`` are the notebook's (see :func:`explorer_inputs`)."""
    import matplotlib.pyplot as plt

    from ..viz.plotting import image_grid

    settings = settings.validated(G.n_classes)
    inputs = explorer_inputs(G, settings, interpolate=interpolate, variations=variations)
    was_training = G.training
    G.eval()
    device = _device(G)
    try:
        images = {name: G.from_embedding(z.to(device), e.to(device)).float().cpu() for name, (z, e) in inputs.items()}
    finally:
        G.train(was_training)
    if fig is None:
        fig = plt.figure(figsize=(12, 3.2))
    fig.clear()
    grid = fig.add_gridspec(2, 2, width_ratios=(settings.columns, 2.2))
    ax_var, ax_path, ax_point = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[1, 0]), fig.add_subplot(grid[:, 1])
    mixed = f"{settings.label}" if settings.mix == 0 else f"{1 - settings.mix:.2f}·e({settings.label}) + " \
                                                         f"{settings.mix:.2f}·e({settings.mix_with})"
    image_grid(images["variations"], nrow=settings.columns, ax=ax_var,
               title=f"label {mixed}, σ_z {settings.sigma_z:.2f}, σ_e {settings.sigma_e:.2f}")
    image_grid(images["path"], nrow=settings.columns, ax=ax_path,
               title=f"(z_a, {mixed}) → (z_b, {settings.label_b})")
    predicted, confidence = classify_images(images["point"])
    ax_point.imshow((images["point"][0, 0].numpy() + 1) / 2, cmap="gray", vmin=0, vmax=1)
    ax_point.set_axis_off()
    ax_point.set_title(f"t = {settings.t:.2f}: classified {int(predicted[0])} ({confidence[0]:.0%})", fontsize=9)
    return fig


def _headless() -> bool:
    from ..viz.live import in_notebook

    return bool(os.environ.get("LABKIT_HEADLESS")) or not in_notebook()


def explore(G: nn.Module, settings: Optional[ExplorerSettings] = None, interactive: Optional[bool] = None, *,
            interpolate: Callable, variations: Callable):
    """The interactive explorer: sliders for the class, σ on z, σ on the embedding, a second label to mix in, the
    interpolation's end label and its position t, redrawing :func:`draw_explorer_frame` live (Jupyter, Colab), with
    the notebook's own ``interpolate`` and ``variations`` (TODOs 6 and 7).

    Headless (``LABKIT_HEADLESS`` set, or not in a notebook) or without ipywidgets it draws one static frame and
    returns that figure; ``interactive`` forces either behaviour.
    """
    import matplotlib.pyplot as plt

    require_explorable(G)
    settings = (settings or ExplorerSettings()).validated(G.n_classes)
    if interactive is None:
        interactive = not _headless()
    try:
        import ipywidgets as widgets
        from IPython.display import display
    except ImportError:
        interactive = False
    if not interactive:
        fig = draw_explorer_frame(G, settings, interpolate=interpolate, variations=variations)
        plt.show()
        return fig
    last = G.n_classes - 1
    controls = {
        "label": widgets.IntSlider(settings.label, 0, last, description="class"),
        "sigma_z": widgets.FloatSlider(settings.sigma_z, min=0, max=2, step=0.1, description="σ on z"),
        "sigma_e": widgets.FloatSlider(settings.sigma_e, min=0, max=2, step=0.1, description="σ on e"),
        "mix_with": widgets.IntSlider(settings.mix_with, 0, last, description="mix with"),
        "mix": widgets.FloatSlider(settings.mix, min=0, max=1, step=0.05, description="mix"),
        "label_b": widgets.IntSlider(settings.label_b, 0, last, description="to class"),
        "t": widgets.FloatSlider(settings.t, min=0, max=1, step=0.05, description="t"),
        "seed": widgets.IntSlider(settings.seed, 0, 99, description="seed"),
    }
    out = widgets.Output()

    def redraw(**values):
        with out:
            out.clear_output(wait=True)
            fig = draw_explorer_frame(G, replace(settings, **values), interpolate=interpolate, variations=variations)
            plt.show()
            plt.close(fig)

    ui = widgets.VBox([widgets.HBox(list(controls.values())[i:i + 4]) for i in (0, 4)])
    widgets.interactive_output(redraw, controls)
    display(ui, out)
    return ui
