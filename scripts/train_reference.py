"""Train an image lab's reference models with its solution notebook's own code, write them, and print the targets.

    python scripts/make_offline_mnist.py               # once, for the MNIST labs: the real digits offline, in ./data
    sudo apt-get install -y dataset-fashion-mnist       # once, for lab 04: the full Fashion-MNIST, offline
    python scripts/train_reference.py LAB [--epochs N] [--threads 1] [--device cpu] [--seed N] [--out PATH] ...

LAB is cgan_mnist, dcgan_mnist or cwgan_gp_fashion (the recipes in labkit/reference/training.py). The networks, the
optimisers and the loop are the cells tagged ``export`` in notebooks/solutions/: a reference is exactly what the
solution trains. Written at the default --out: checkpoints/LAB.pt (for ``labkit sample`` and ``labkit evaluate``),
the same file as the solution's hand-in, and the discriminator or critic beside the solution (lab 02 also ships
its discriminator in checkpoints/). Elsewhere (a trial), the generator and its discriminator go to --out only.
Then it scores the generator as the graded checks do (5,000 samples) and prints the tiers and the recipe's targets;
a shipped reference's 100 samples go to docs/LAB_samples.png.
Report the threads and the machine's load with the time: both are printed.
"""
import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    from labkit.reference.training import RECIPES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lab", choices=sorted(RECIPES))
    parser.add_argument("--epochs", type=int, help="default: the solution's full run")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (report them with the time)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, help="default: the recipe's, the shipped reference's (lab 04: 1)")
    parser.add_argument("--out", type=Path, help="the generator's file (default: checkpoints/LAB.pt)")
    parser.add_argument("--state", type=Path, help="a training checkpoint to resume (default: a fresh run)")
    parser.add_argument("--max-seconds", type=float, help="stop after this much training time")
    parser.add_argument("--d-channels", type=int, help="experiments: the discriminator's (critic's) width c")
    parser.add_argument("--lr-g", type=float, help="experiments: the generator's learning rate")
    parser.add_argument("--lr-d", type=float, help="experiments: the discriminator's (critic's) learning rate")
    parser.add_argument("--beta1", type=float, help="experiments: Adam's beta1 for both networks")
    parser.add_argument("--n-critic", type=int, help="experiments, lab 04: critic steps per generator step")
    return parser.parse_args()


def main():
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    args = parse_args()
    from labkit.reference.training import (DOCS, RECIPES, Options, targets_report, train_reference, write_reference,
                                          write_sample_grid)

    recipe = RECIPES[args.lab]
    if recipe.dataset == "mnist" and not (Path(os.environ["LABKIT_DATA"]) / "MNIST" / "raw").is_dir():
        sys.exit(f"No MNIST in {os.environ['LABKIT_DATA']}: run `python scripts/make_offline_mnist.py` first "
                 "(or set LABKIT_DATA to a folder with the real MNIST).")
    options = Options(epochs=args.epochs, threads=args.threads, device=args.device, seed=args.seed,
                      max_seconds=args.max_seconds, lr_g=args.lr_g, lr_d=args.lr_d, beta1=args.beta1, d_channels=args.d_channels,
                      n_critic=args.n_critic, state=args.state)
    run = train_reference(recipe, options)
    generator, second = write_reference(run, args.out)
    print(f"trained {run.epochs_run} of {run.options.epochs} epochs on {run.data.description}: {run.seconds:.0f} s "
          f"of training, {run.wall:.0f} s wall, {args.threads} thread(s) on {args.device}, load average "
          f"{run.load_average:.2f} at the end; wrote {generator} and {second}")
    for key, values in run.history.items():
        print(f"per epoch: {key:<12}", [round(v, 3) for v in values])
    print(targets_report(run))
    if generator.resolve() == recipe.checkpoint.resolve():   # the shipped reference: the docs show its samples
        print(f"wrote {write_sample_grid(run.G_ema, recipe, DOCS / f'{recipe.name}_samples.png')}")


if __name__ == "__main__":
    main()
