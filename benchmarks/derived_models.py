"""How far a fine-tune of a reference moves its weights, against how far apart independent trainings end.

    OMP_NUM_THREADS=1 python benchmarks/derived_models.py [--lab gan1d] [--seeds 1 2] [--skip-full]
    OMP_NUM_THREADS=1 python benchmarks/derived_models.py --lab cgan_mnist      # or dcgan_mnist, cwgan_gp_fashion

The grader flags a handed-in model whose canonical weights lie within ``DERIVED_DISTANCE`` of a reference
(labkit/grading/fingerprints.py: relative L2 distance, the first layer's latent inputs signed and sorted). This
prints the distances that threshold must separate, with the solution's own recipe (``tuned_config``,
``train_gan`` from notebook 01's exports):

* the reference (the Petit Prince run of seed 0, as shipped) fine-tuned from its own G and D for 31 steps, one
  epoch and a full default run;
* independent trainings of other seeds, and a second training of the same seed.

For the image labs (``--lab``), the same with the lab's reference recipe (``labkit.reference.training``): the
shipped generator and its discriminator or critic fine-tuned for 31 steps, one epoch and a full default run, and
independent full runs. ``--skip-full`` leaves out the runs as long as a full training.

Numbers, not assertions: docs/benchmarks.md quotes them.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import torch

from labkit.checkpoint import read_checkpoint
from labkit.grading.fingerprints import DERIVED_DISTANCE, canonical_weights, relative_distance
from labkit.instructor.notebook import load_exports

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "notebooks" / "solutions"
TARGET = "petitprince"


def _fine_tune(solution, reference_g: dict, reference_d: dict, config):
    """train_gan with its networks starting from the reference's weights instead of the seed's."""
    original = solution.build_gan

    def from_reference(cfg):
        nets = original(cfg)
        nets.G.load_state_dict(reference_g)
        nets.D.load_state_dict(reference_d)
        return nets

    solution.train_gan.__globals__["build_gan"] = from_reference
    try:
        return solution.train_gan(config, snapshot_every=config.epochs)
    finally:
        solution.train_gan.__globals__["build_gan"] = original


def _report(rows: list, what: str, state_dict, ref_weights, seconds: float) -> None:
    distance = relative_distance(canonical_weights(state_dict), ref_weights)
    flagged = distance is not None and distance <= DERIVED_DISTANCE
    rows.append((what, distance, flagged, seconds))
    print(f"{what:<48} distance {distance:.4f}   {'flagged' if flagged else 'not flagged'}   ({seconds:.0f} s)",
          flush=True)


def image_lab(name: str, seeds, skip_full: bool) -> int:
    """Fine-tunes of the lab's shipped reference, and independent trainings, with its reference recipe."""
    from labkit.reference.training import RECIPES, Options, reference_networks, train_reference

    recipe = RECIPES[name]
    solution = recipe.solution()
    ref_weights = canonical_weights(read_checkpoint(recipe.checkpoint)["state_dict"])
    from_reference = reference_networks(recipe, solution)

    batch = getattr(solution, "BATCH_SIZE", 64)
    full = recipe.epochs(solution)
    print(f"lab {name}, reference {recipe.checkpoint.name} and {recipe.second}, threshold {DERIVED_DISTANCE}; "
          f"torch {torch.__version__}, 1 thread, full run {full} epochs")
    rows = []
    runs = [("fine-tune: 31 steps", Options(epochs=1, limit=31 * batch, seed=7), from_reference),
            ("fine-tune: one epoch", Options(epochs=1, seed=7), from_reference)]
    if not skip_full:
        runs.append(("fine-tune: a full default run", Options(seed=7), from_reference))
        runs += [(f"independent training, seed {seed}", Options(seed=seed), None) for seed in seeds]
    for what, options, networks in runs:
        run = train_reference(recipe, options, networks=networks, solution=solution)
        _report(rows, what, run.G_ema.state_dict(), ref_weights, run.seconds)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lab", default="gan1d", choices=["gan1d", "cgan_mnist", "dcgan_mnist", "cwgan_gp_fashion"])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    parser.add_argument("--skip-full", action="store_true", help="image labs: only the two short fine-tunes")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.lab != "gan1d":
        return image_lab(args.lab, args.seeds, args.skip_full)
    solution = load_exports(SOLUTIONS / "01_gan_1d.ipynb")
    reference = read_checkpoint(SOLUTIONS / "gan1d_final.pt")["state_dict"]
    reference_d = read_checkpoint(SOLUTIONS / "gan1d_final_D.pt")["state_dict"]
    ref_weights = canonical_weights(reference)
    base = solution.tuned_config(TARGET, seed=0)
    rows = []

    def report(what: str, generator, seconds: float) -> None:
        _report(rows, what, generator.state_dict(), ref_weights, seconds)

    print(f"lab 01, target {TARGET}, reference notebooks/solutions/gan1d_final.pt, threshold {DERIVED_DISTANCE}; "
          f"torch {torch.__version__}, 1 thread")
    for what, config in (
            ("fine-tune: 31 steps", dataclasses.replace(base, epochs=1, steps_per_epoch=31, seed=7)),
            ("fine-tune: one epoch", dataclasses.replace(base, epochs=1, seed=7)),
            ("fine-tune: a full default run", dataclasses.replace(base, seed=7))):
        start = time.monotonic()
        result = _fine_tune(solution, reference, reference_d, config)
        report(what, result.generator, time.monotonic() - start)
    for seed in [0] + list(args.seeds):
        start = time.monotonic()
        result = solution.train_gan(solution.tuned_config(TARGET, seed=seed), snapshot_every=base.epochs)
        report(f"independent training, seed {seed}" + (" (the reference's)" if seed == 0 else ""), result.generator,
               time.monotonic() - start)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
