"""Conditional DCGAN with a projection discriminator (lab 02's recipe) vs the classic fully connected cGAN on MNIST:
same data, training loop and wall-clock budget, one run each; metrics and ratios printed, never asserted.

    python scripts/make_offline_mnist.py       # once: 10,000 real training digits in ./data
    python benchmarks/cgan_mnist.py [--epochs N] [--threads 1] [--quick]

Both models are trained by lab 02's reference recipe (labkit/reference/training.py: the solution notebook's own
``train`` and ``train_step``), each with Adam at the solution's learning rates and an EMA of the
generator. The lab's networks train for ``--epochs`` (default: the solution's EPOCHS_FULL); the baseline
(:class:`labkit.labs.cgan_mnist.FCConditionalGenerator` / ``FCConditionalDiscriminator``: an embedding of the
label concatenated to the noise and to the flattened image, MLPs of 256-512-1024 units) for as many seconds of
training. Both EMA generators are scored as the graded quality checks score them (5,000 samples).
"""
import argparse
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="the lab's epochs (default: the solution's); the baseline gets its time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 digits, 1 epoch: a smoke test of the script")
    args = parser.parse_args()
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    from labkit.checks.cgan_mnist import graded_scores, tiers_met
    from labkit.labs.cgan_mnist import FCConditionalDiscriminator, FCConditionalGenerator
    from labkit.metrics import metrics_table
    from labkit.reference.training import RECIPES, Options, train_reference

    recipe = RECIPES["cgan_mnist"]
    options = Options(epochs=1 if args.quick else args.epochs, threads=args.threads, limit=2000 if args.quick else None,
                      name="cGAN (projection D)")
    ours = train_reference(recipe, options)
    # the baseline trains for the lab model's seconds: room for more epochs, stopped on time
    base = train_reference(recipe, Options(**{**options.__dict__, "epochs": 10 * ours.options.epochs,
                                              "max_seconds": ours.seconds, "name": "fully connected cGAN"}),
                           networks=lambda: (FCConditionalGenerator(), FCConditionalDiscriminator()))
    n = 1000 if args.quick else 5000
    scores = {}
    for run in (ours, base):
        scores[run.options.name] = graded_scores(run.G_ema, n=n)
        print(f"{run.options.name}: {run.epochs_run} epochs of {run.data.description}, {run.seconds:.0f} s of training "
              f"({run.wall:.0f} s wall), {args.threads} thread(s), load average {run.load_average:.2f}; tiers met: "
              f"{tiers_met(scores[run.options.name])}", flush=True)
    print(metrics_table(scores))
    for name, s in scores.items():
        print(f"{name:>22}: conditional accuracy {s['conditional_accuracy']:.2%}, weakest class "
              f"{min(s['per_class_accuracy']):.2%}, FCD ratio {s['fcd_over_floor']:.2f}")
    mine, fc = scores[ours.options.name], scores[base.options.name]
    print(f"ratios (fully connected / lab model, same budget): 1 - conditional accuracy "
          f"{(1 - fc['conditional_accuracy']) / max(1e-9, 1 - mine['conditional_accuracy']):.1f}x, FCD "
          f"{fc['fcd'] / mine['fcd']:.1f}x, FCD ratio {fc['fcd_over_floor'] / mine['fcd_over_floor']:.1f}x")


if __name__ == "__main__":
    main()
