"""Reference runs: train an image lab's models with its solution notebook's own exported code.

One :class:`Recipe` per image lab names the notebook, the data, how its networks are built and trained, the files a
reference run writes and the targets it prints. :func:`train_reference` runs any recipe; ``scripts/train_reference.py``
is its command line and the benchmarks call it for their runs (with other networks where they compare). Instructor
code: it reads notebooks/solutions, which students never get.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import torch

ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS = ROOT / "notebooks" / "solutions"
CHECKPOINTS = ROOT / "checkpoints"
SCRATCH = ROOT / "scratch"

__all__ = ["Options", "TrainingData", "Run", "Recipe", "RECIPES", "training_data", "train_reference", "write_reference",
           "targets_report", "write_sample_grid", "reference_networks", "DOCS"]
DOCS = ROOT / "docs"


@dataclass(frozen=True)
class Options:
    """How one reference run trains; ``None`` means "the recipe's (the solution's) value"."""
    epochs: Optional[int] = None
    threads: int = 1
    device: str = "cpu"
    seed: Optional[int] = None               # None: the recipe's (the shipped reference's)
    max_seconds: Optional[float] = None      # stop after this much training time (the notebooks' Stopwatch)
    lr_g: Optional[float] = None
    lr_d: Optional[float] = None             # the discriminator's, or the critic's
    beta1: Optional[float] = None            # Adam's beta1 for both networks
    d_channels: Optional[int] = None         # the discriminator's (critic's) width c
    n_critic: Optional[int] = None           # lab 04 only: critic steps per generator step
    limit: Optional[int] = None              # N training images at random: a smoke test, a few steps
    state: Optional[Path] = None             # the training checkpoint; None: a fresh one in scratch/
    name: str = "reference"                  # the progress bar's label


@dataclass(frozen=True)
class TrainingData:
    images: torch.Tensor                     # (N, 1, 28, 28) in [-1, 1]
    labels: torch.Tensor                     # (N,)
    test: Tuple[torch.Tensor, torch.Tensor]  # held-out images and labels (lab 02 logs D's accuracy on them)
    description: str


@dataclass
class Run:
    """What :func:`train_reference` returns: the EMA generator, the discriminator or critic, the epoch log."""
    recipe: "Recipe"
    options: Options
    G_ema: torch.nn.Module
    D: torch.nn.Module
    history: Dict[str, list]
    seconds: float                           # training time, as the notebook's train measures it
    wall: float                              # the call's wall-clock time
    data: TrainingData
    load_average: float

    @property
    def epochs_run(self) -> int:
        return len(next(iter(self.history.values()), []))


@dataclass(frozen=True)
class Recipe:
    name: str                                # the reference checkpoint's stem: checkpoints/<name>.pt
    notebook: str                            # in notebooks/solutions
    dataset: str
    epochs: Callable[[Any], int]             # the full run's epochs, from the solution's exports
    fit: Callable[..., Tuple[torch.nn.Module, Dict[str, list], float]]
    handed_in: str                           # the generator's file beside the solution notebook
    second: str                              # the discriminator's (critic's) file beside the solution notebook
    second_checkpoint: Optional[str] = None  # the discriminator's copy in checkpoints/, where the lab loads it
    unshipped_test_digits: bool = False      # also train on the test images outside labkit's graded sample
    targets: Callable[[Mapping], str] = field(default=lambda scores: "")
    # The seed the shipped reference was trained with. Where a student's full run sees the reference's own data
    # (lab 04: the whole Fashion-MNIST, which Colab downloads), it is not the notebooks' SEED = 0, which the grader
    # restores: a student who happens to choose the reference's settings trains a model of their own, not a copy
    # the derived-model check would refuse. Labs 02 and 03 train on data no student's notebook loads.
    seed: int = 0

    @property
    def checkpoint(self) -> Path:
        return CHECKPOINTS / f"{self.name}.pt"

    @property
    def second_class(self) -> str:
        """The solution's class of the second network: ``Critic`` (its file ends in ``_C.pt``) or ``Discriminator``."""
        return "Critic" if self.second.endswith("_C.pt") else "Discriminator"

    def solution(self):
        from ..instructor.notebook import load_exports

        return load_exports(SOLUTIONS / self.notebook, tags=("export", "choices"))


def _key_rows(images: torch.Tensor) -> list:
    """One bytes key per image, from its 8-bit pixels: equal keys mean the same picture."""
    pixels = ((images.reshape(len(images), -1).float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
    return [bytes(row) for row in pixels.numpy()]


def training_data(recipe: Recipe, limit: Optional[int] = None) -> TrainingData:
    """The recipe's training images; with ``unshipped_test_digits`` also every test image that labkit's graded
    sample (:func:`labkit.metrics.shipped_reference_images`) does not hold, so no graded score ever sees a training
    image."""
    from .. import datasets
    from ..metrics.images import shipped_reference_images

    images, labels = datasets.tensors(recipe.dataset)
    test = datasets.tensors(recipe.dataset, train=False, limit=500 if limit else None)
    if limit:   # a random subset: the training files are sorted by class, their first images are all one digit
        pick = torch.randperm(len(images), generator=torch.Generator().manual_seed(0))[:limit]
        images, labels = images[pick], labels[pick]
    description = f"{len(images):,} {recipe.dataset} training images"
    if recipe.unshipped_test_digits and limit is None:
        shipped, _, _ = shipped_reference_images(recipe.dataset)
        graded = set(_key_rows(torch.as_tensor(shipped)[:, None] * 2 - 1))
        keep = torch.tensor([key not in graded for key in _key_rows(test[0])])
        images, labels = torch.cat([images, test[0][keep]]), torch.cat([labels, test[1][keep]])
        description += f" + {int(keep.sum()):,} test images outside labkit's graded sample"
    return TrainingData(images, labels, test, description)


def _loader(data: TrainingData, batch_size: int, seed: int):
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(data.images, data.labels), batch_size=batch_size,
                                       shuffle=True, drop_last=True, generator=torch.Generator().manual_seed(seed))


def _fixed_labelled_noise(solution, seed: int, device):
    """Ten noise vectors, each shown with the ten labels: the conditional labs' GIF grid."""
    z = torch.randn(10, solution.LATENT_DIM, generator=torch.Generator().manual_seed(seed)).repeat(10, 1)
    return z.to(device), torch.arange(10).repeat_interleave(10).to(device)


def _adam_choices(solution, options: Options, second: str, second_choice: str, beta2: float) -> dict:
    """make_optimizers' arguments: the solution's choices (its cell tagged ``choices``) where the options leave
    them; ``second`` is the argument of the discriminator's (critic's) rate, ``second_choice`` the solution's name."""
    beta1 = solution.BETA1 if options.beta1 is None else options.beta1    # 0 is a choice: no momentum
    return {"lr_g": options.lr_g or solution.LR_G, second: options.lr_d or getattr(solution, second_choice),
            "betas": (beta1, beta2)}


def _second(solution, cls: str, options: Options):
    build = getattr(solution, cls)
    return build(channels=options.d_channels) if options.d_channels else build()


def reference_networks(recipe: "Recipe", solution=None) -> Callable[[], Tuple[torch.nn.Module, torch.nn.Module]]:
    """A ``networks`` argument for :func:`train_reference`: the lab's own networks holding the shipped reference
    generator's weights and its discriminator's (or critic's), as a group that fine-tunes the reference starts."""
    from ..checkpoint import read_checkpoint

    solution = solution or recipe.solution()
    generator = read_checkpoint(recipe.checkpoint)["state_dict"]
    second = read_checkpoint(SOLUTIONS / recipe.second)["state_dict"]

    def build():
        G, D = solution.Generator(), getattr(solution, recipe.second_class)()
        G.load_state_dict(generator)
        D.load_state_dict(second)
        return G, D

    return build


# --------------------------------------------------------------------------- the three image labs


def _fit_dcgan(solution, options: Options, data: TrainingData, epochs: int, state: Path, device, networks=None):
    G, D = networks() if networks else (solution.Generator(), _second(solution, "Discriminator", options))
    G, D = G.to(device), D.to(device)
    opt_g, opt_d = solution.make_optimizers(G, D, **_adam_choices(solution, options, "lr_d", "LR_D", beta2=0.999))
    fixed_z = torch.randn(64, solution.LATENT_DIM, generator=torch.Generator().manual_seed(options.seed)).to(device)
    G_ema, history, _, seconds = solution.train(G, D, opt_g, opt_d, torch.nn.BCELoss(), _loader(data, 64, options.seed),
                                                epochs, state, fixed_z, device, max_seconds=options.max_seconds,
                                                name=options.name)
    return G_ema, D, history, seconds


def _fit_cgan(solution, options: Options, data: TrainingData, epochs: int, state: Path, device, networks=None):
    G, D = networks() if networks else (solution.Generator(), _second(solution, "Discriminator", options))
    G, D = G.to(device), D.to(device)
    opt_g, opt_d = solution.make_optimizers(G, D, **_adam_choices(solution, options, "lr_d", "LR_D", beta2=0.999))
    G_ema, history, _, seconds = solution.train(G, D, opt_g, opt_d, torch.nn.BCELoss(),
                                                _loader(data, solution.BATCH_SIZE, options.seed), epochs, state,
                                                _fixed_labelled_noise(solution, options.seed, device), device,
                                                data.test, d_steps=solution.D_STEPS, g_steps=solution.G_STEPS,
                                                max_seconds=options.max_seconds)
    return G_ema, D, history, seconds


def _fit_cwgan(solution, options: Options, data: TrainingData, epochs: int, state: Path, device, networks=None):
    G, C = networks() if networks else (solution.Generator(), _second(solution, "Critic", options))
    G, C = G.to(device), C.to(device)
    opt_g, opt_c = solution.make_optimizers(G, C, **_adam_choices(solution, options, "lr_c", "LR_C", beta2=0.9))
    G_ema, history, _, seconds = solution.train(G, C, opt_g, opt_c, _loader(data, 64, options.seed), epochs, state,
                                                _fixed_labelled_noise(solution, options.seed, device), device,
                                                n_critic=options.n_critic or solution.N_CRITIC,
                                                max_seconds=options.max_seconds)
    return G_ema, C, history, seconds


def _share(value: float) -> str:
    return f"{value:.1%}"


def _dcgan_targets(scores: Mapping) -> str:
    """Issue 26's targets: graded FCD ratio <= 3, rarest/commonest digit >= 0.6, mean confidence >= 0.90."""
    met = (scores["fcd_over_floor"] <= 3 and scores["class_share_ratio"] >= 0.6 and scores["mean_confidence"] >= 0.90)
    return (f"targets {'MET' if met else 'NOT met'}: FCD ratio {scores['fcd_over_floor']:.2f} (<= 3), share ratio "
            f"{scores['class_share_ratio']:.2f} (>= 0.6; shares {_share(scores['min_class_share'])}-"
            f"{_share(scores['max_class_share'])}), confidence {scores['mean_confidence']:.3f} (>= 0.90)")


def _cgan_targets(scores: Mapping) -> str:
    per_class = scores["per_class_accuracy"]
    met = scores["conditional_accuracy"] >= 0.99 and min(per_class) >= 0.97
    return (f"targets {'MET' if met else 'NOT met'}: conditional accuracy {scores['conditional_accuracy']:.2%} "
            f"(>= 99 %), weakest class {min(per_class):.2%} (>= 97 %); FCD ratio {scores['fcd_over_floor']:.2f}")


def real_class_accuracy(dataset: str) -> Tuple[float, list]:
    """The metric classifier's accuracy on the real test images of ``dataset``: overall and per class."""
    import numpy as np

    from ..metrics.images import classifier_outputs, reference_images

    images, labels, _ = reference_images(dataset)
    probabilities, _ = classifier_outputs(images, dataset)
    predicted = probabilities.argmax(axis=1)
    right = predicted == labels
    return float(right.mean()), [float(right[labels == c].mean()) for c in np.unique(labels)]


def _cwgan_targets(scores: Mapping) -> str:
    """Issue 26's targets, relative to the classifier on real test images: overall >= 0.95x, each class >= 0.8x."""
    from ..models.classifier import CLASS_NAMES

    overall, per_class_real = real_class_accuracy("fashion_mnist")
    per_class = scores["per_class_accuracy"]
    ratios = [got / real for got, real in zip(per_class, per_class_real)]
    met = scores["conditional_accuracy"] >= 0.95 * overall and min(ratios) >= 0.8
    rows = "\n".join(f"  {name:<12} {got:6.1%} {real:6.1%} {ratio:5.2f}x" for name, got, real, ratio in
                     zip(CLASS_NAMES["fashion_mnist"], per_class, per_class_real, ratios))
    return (f"targets {'MET' if met else 'NOT met'}: conditional accuracy {scores['conditional_accuracy']:.1%} = "
            f"{scores['conditional_accuracy'] / overall:.2f}x real ({overall:.1%}; >= 0.95x), weakest class "
            f"{min(ratios):.2f}x real (>= 0.8x); FCD ratio {scores['fcd_over_floor']:.2f}\n"
            f"  class        generated  real  ratio\n{rows}")


RECIPES: Dict[str, Recipe] = {recipe.name: recipe for recipe in (
    Recipe("cgan_mnist", "02_cgan_mnist.ipynb", "mnist", epochs=lambda solution: solution.EPOCHS_FULL, fit=_fit_cgan,
           handed_in="cgan_final.pt", second="cgan_final_D.pt", second_checkpoint="cgan_mnist_D.pt",
           targets=_cgan_targets),
    Recipe("dcgan_mnist", "03_dcgan_mnist.ipynb", "mnist", epochs=lambda solution: 100, fit=_fit_dcgan,
           handed_in="dcgan_final.pt", second="dcgan_final_D.pt", unshipped_test_digits=True, targets=_dcgan_targets),
    Recipe("cwgan_gp_fashion", "04_cwgan_gp_fashion.ipynb", "fashion_mnist", epochs=lambda solution: 48,
           fit=_fit_cwgan, handed_in="cwgan_final.pt", second="cwgan_final_C.pt", targets=_cwgan_targets, seed=1),
)}


def train_reference(recipe: Recipe, options: Options = Options(), networks: Optional[Callable] = None,
                    solution=None) -> Run:
    """Train ``recipe`` with its solution's ``train``: a fresh run unless ``options.state`` names a checkpoint to
    resume. ``networks`` (a function returning ``(G, D)``) trains other networks with the same loop (the benchmarks'
    baselines)."""
    from .. import runtime

    torch.set_num_threads(options.threads)
    options = replace(options, seed=recipe.seed if options.seed is None else options.seed)
    solution = solution or recipe.solution()
    epochs = options.epochs or recipe.epochs(solution)
    data = training_data(recipe, options.limit)
    state = options.state
    if state is None:
        SCRATCH.mkdir(exist_ok=True)
        state = SCRATCH / f"{recipe.name}_{options.name.replace(' ', '_')}_training.pt"
        state.unlink(missing_ok=True)  # a fresh run never resumes another's
    runtime.seed_everything(options.seed)
    torch.manual_seed(options.seed)
    start = time.perf_counter()
    G_ema, D, history, seconds = recipe.fit(solution, options, data, epochs, Path(state), torch.device(options.device),
                                            networks=networks)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return Run(recipe, replace(options, epochs=epochs), G_ema.cpu(), D.cpu().eval(), history, seconds,
               time.perf_counter() - start, data, load)


def write_reference(run: Run, out: Optional[Path] = None) -> Tuple[Path, Path]:
    """Save the run's generator (and its discriminator or critic beside it). At the recipe's own checkpoint path the
    files also go where the lab reads them: the solution's hand-in and, for lab 02, the discriminator's checkpoint."""
    from .. import saveModel

    recipe, options = run.recipe, run.options
    out = Path(out or recipe.checkpoint)
    second = out.with_name(f"{out.stem}_{recipe.second_class[0]}.pt")   # _C.pt or _D.pt
    saveModel(run.G_ema, out, dataset=recipe.dataset, epochs=run.epochs_run, seed=options.seed, losses=run.history,
              train_seconds=round(run.seconds, 1), threads=options.threads, device=options.device,
              load_average=round(run.load_average, 2), data=run.data.description)
    saveModel(run.D, second, dataset=recipe.dataset, epochs=run.epochs_run, seed=options.seed)
    if out.resolve() == recipe.checkpoint.resolve():
        shutil.copy(out, SOLUTIONS / recipe.handed_in)
        shutil.copy(second, SOLUTIONS / recipe.second)
        if recipe.second_checkpoint is None:
            second.unlink()   # only lab 02 ships its discriminator (Section 2 loads it)
            second = SOLUTIONS / recipe.second
    return out, second


def targets_report(run: Run) -> str:
    """The graded scores of the run's generator (the lab's ``graded_scores``: 5,000 samples), its tiers and the
    recipe's targets."""
    import importlib

    from ..metrics import metrics_table

    checks = importlib.import_module(f"labkit.checks.{run.recipe.name}")   # each lab's checks are named as its recipe
    scores = checks.graded_scores(run.G_ema)
    return "\n".join([metrics_table({run.recipe.name: scores}), f"tiers met: {checks.tiers_met(scores)}",
                      run.recipe.targets(scores)])


def write_sample_grid(generator, recipe: Recipe, path: Path, seed: int = 0) -> Path:
    """100 samples as the README and docs show them: a conditional generator's ten per class in rows named on the
    left, an unconditional one's each with the metric classifier's digit and confidence under its tile (text never
    covers a tile)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..metrics.images import classifier_outputs
    from ..models.classifier import CLASS_NAMES
    from ..sampling import generate
    from ..viz.plotting import image_grid

    labels = np.repeat(np.arange(10), 10) if getattr(generator, "n_classes", None) else None
    images, labels = generate(generator, 100, labels=labels, seed=seed)
    title = f"checkpoints/{recipe.checkpoint.name}: 100 samples (seed {seed})"
    if labels is not None:
        image_grid(images, labels, nrow=10, class_names=CLASS_NAMES[recipe.dataset], value_range=(0, 1), title=title)
    else:
        probabilities, _ = classifier_outputs(images, recipe.dataset)
        captions = [f"{p.argmax()} ({p.max():.2f})" for p in probabilities]
        image_grid(images, nrow=10, value_range=(0, 1), captions=captions,
                   title=title + "; under each: the metric classifier's digit (confidence)")
    fig = plt.gcf()
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)
    return Path(path)
