"""DCGAN vs the lecture's fully connected GAN on MNIST: same data, same step, same wall-clock budget, one run.

    python scripts/make_offline_mnist.py                 # once: the real digits available offline, in ./data
    python benchmarks/dcgan_mnist.py [--epochs 100] [--threads 1] [--quick]

Both models are trained by lab 03's reference recipe (labkit/reference/training.py: the solution notebook's own
``train`` and ``train_step``, on the reference's data); the DCGAN for ``--epochs`` epochs, the baseline for as many
seconds of training time. Both are scored as the graded quality checks score them (5,000 samples, FCD against
labkit's shipped held-out digits), next to real training digits (what a generator that copied its data would
score), and the ratios to the shipped reference checkpoint are printed. Numbers, never assertions: the targets
are in docs/benchmarks.md.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="default: the recipe's (the solution's full run)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 digits, 1 epoch: a smoke test of the script")
    args = parser.parse_args()
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    from labkit import loadModel
    from labkit.checks.dcgan_mnist import graded_scores, tiers_met
    from labkit.metrics import evaluate_images, metrics_table, shipped_reference_images
    from labkit.metrics.images import classifier_outputs, frechet_ratio
    from labkit.models.mlp import FCImageDiscriminator, FCImageGenerator
    from labkit.reference.training import RECIPES, Options, train_reference

    recipe = RECIPES["dcgan_mnist"]
    options = Options(epochs=1 if args.quick else args.epochs, threads=args.threads, limit=2000 if args.quick else None,
                      name="DCGAN")
    n = 1000 if args.quick else 5000
    dcgan = train_reference(recipe, options)
    baseline = train_reference(recipe, Options(**{**options.__dict__, "epochs": 10 * dcgan.options.epochs,
                                                  "max_seconds": dcgan.seconds, "name": "fully connected"}),
                               networks=lambda: (FCImageGenerator(), FCImageDiscriminator()))
    scores = {"DCGAN": graded_scores(dcgan.G_ema, n=n), "fully connected": graded_scores(baseline.G_ema, n=n),
              "shipped reference": graded_scores(loadModel(recipe.checkpoint), n=n)}
    shipped, _, _ = shipped_reference_images("mnist")
    import torch

    pick = torch.randperm(len(dcgan.data.images), generator=torch.Generator().manual_seed(0))[:n]  # the files are sorted
    real = ((dcgan.data.images[pick, 0] + 1) / 2).numpy()
    scores["real training digits"] = {**evaluate_images(real, "mnist", reference=False),   # graded the same way
                                      **frechet_ratio(classifier_outputs(real, "mnist")[1],
                                                      classifier_outputs(shipped, "mnist")[1])}
    for name, run in (("DCGAN", dcgan), ("fully connected", baseline)):
        print(f"{name}: {run.epochs_run} epochs of {run.data.description}, {run.seconds:.0f} s of training "
              f"({run.wall:.0f} s wall), {args.threads} thread(s), load average {run.load_average:.2f}")
    print(metrics_table(scores))
    for name, s in scores.items():
        print(f"{name}: FCD ratio {s['fcd_over_floor']:.2f}, shares {s['min_class_share']:.1%}-"
              f"{s['max_class_share']:.1%} (ratio {s['class_share_ratio']:.2f}), confidence {s['mean_confidence']:.3f}, "
              f"tiers {tiers_met(s)}")
    dc, fc, ref = scores["DCGAN"], scores["fully connected"], scores["shipped reference"]
    print(f"ratios (fully connected / DCGAN, same budget): FCD {fc['fcd'] / dc['fcd']:.1f}x, 1 - confidence "
          f"{(1 - fc['mean_confidence']) / (1 - dc['mean_confidence']):.1f}x")
    print(f"ratios (this run / the shipped reference): FCD ratio {dc['fcd_over_floor'] / ref['fcd_over_floor']:.2f}x, "
          f"share ratio {dc['class_share_ratio'] / max(ref['class_share_ratio'], 1e-9):.2f}x, confidence "
          f"{dc['mean_confidence'] / ref['mean_confidence']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
