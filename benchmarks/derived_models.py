"""How far a fine-tune of a reference moves its weights, against how far apart independent trainings end (lab 01).

    OMP_NUM_THREADS=1 python benchmarks/derived_models.py [--seeds 1 2]

The grader flags a handed-in model whose canonical weights lie within ``DERIVED_DISTANCE`` of a reference
(labkit/grading/fingerprints.py: relative L2 distance, the first layer's latent inputs signed and sorted). This
prints the distances that threshold must separate, with the solution's own recipe (``tuned_config``,
``train_gan`` from notebook 01's exports):

* the reference (the Petit Prince run of seed 0, as shipped) fine-tuned from its own G and D for 31 steps, one
  epoch and a full default run;
* independent trainings of other seeds, and a second training of the same seed.

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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    solution = load_exports(SOLUTIONS / "01_gan_1d.ipynb")
    reference = read_checkpoint(SOLUTIONS / "gan1d_final.pt")["state_dict"]
    reference_d = read_checkpoint(SOLUTIONS / "gan1d_final_D.pt")["state_dict"]
    ref_weights = canonical_weights(reference)
    base = solution.tuned_config(TARGET, seed=0)
    rows = []

    def report(what: str, generator, seconds: float) -> None:
        distance = relative_distance(canonical_weights(generator.state_dict()), ref_weights)
        flagged = distance is not None and distance <= DERIVED_DISTANCE
        rows.append((what, distance, flagged, seconds))
        print(f"{what:<48} distance {distance:.4f}   {'flagged' if flagged else 'not flagged'}   ({seconds:.0f} s)",
              flush=True)

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
