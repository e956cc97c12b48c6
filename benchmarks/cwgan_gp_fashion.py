"""Conditional WGAN-GP vs a conditional GAN with the plain BCE loss on Fashion-MNIST: same networks, loop, data and
wall-clock budget, one run; also tests the WGAN claim (the loss tracks sample quality) on both.

    sudo apt-get install -y dataset-fashion-mnist    # once: the full Fashion-MNIST, offline
    python benchmarks/cwgan_gp_fashion.py [--images 10000] [--epochs 12] [--threads 1] [--write-history] [--quick]

Both models are trained by the solution notebook's own ``train`` (cells tagged ``export`` in
notebooks/solutions/04_cwgan_gp_fashion.ipynb), with its Generator and Critic. The WGAN-GP uses the
solution's critic_step / generator_step (5 critic steps per generator step); the baseline uses
:func:`labkit.reference.cwgan_bce_baseline.bce_critic_step` / ``bce_generator_step`` (the critic's score read as a
logit, 1 discriminator step per generator step) for as many seconds of training as the WGAN-GP took. ``train``
measures the FCD of 1,000 samples after every epoch, so each run gives a loss-against-quality correlation.
Both EMA generators are scored as the graded quality checks score them (5,000 samples). Numbers are printed,
never asserted. ``--write-history`` stores the baseline's per-epoch loss and FCD for the notebook's contrast plot.
"""
import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="training images (an epoch is one pass)")
    parser.add_argument("--epochs", type=int, default=12, help="the WGAN-GP's epochs; the baseline gets its time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--write-history", action="store_true",
                        help="write the baseline's per-epoch loss and FCD to labkit/data/references/")
    parser.add_argument("--quick", action="store_true", help="2,000 images, 2 epochs: a smoke test of the script")
    args = parser.parse_args()
    from labkit.checks.cwgan_gp_fashion import graded_scores, tiers_met
    from labkit.labs import cwgan_gp_fashion as lab4
    from labkit.metrics import metrics_table
    from labkit.reference import cwgan_bce_baseline as baseline
    from labkit.reference.training import RECIPES, Options, train_reference

    recipe = RECIPES["cwgan_gp_fashion"]
    wgan, bce = recipe.solution(), recipe.solution()
    bce.critic_step, bce.generator_step = baseline.bce_critic_step, baseline.bce_generator_step  # what bce.train calls
    options = Options(epochs=2 if args.quick else args.epochs, threads=args.threads,
                      limit=2000 if args.quick else args.images, n_critic=5, name="WGAN-GP")
    runs = {}
    for name, module, n_critic in (("WGAN-GP", wgan, 5), ("BCE cGAN", bce, 1)):
        first = runs.get("WGAN-GP")
        # the baseline trains for the WGAN-GP's seconds: give it room for more epochs and stop it on time
        run = train_reference(recipe, Options(**{**options.__dict__, "n_critic": n_critic, "name": name,
                                                 "epochs": options.epochs * (10 if first else 1),
                                                 "max_seconds": first["seconds"] if first else None}),
                              solution=module)
        loss_name = "wasserstein" if name == "WGAN-GP" else "loss_c"
        runs[name] = {"history": run.history, "seconds": run.seconds, "wall": run.wall, "epochs": run.epochs_run,
                      "scores": graded_scores(run.G_ema), "loss": run.history[loss_name]}
        print(f"{name}: {run.epochs_run} epochs of {run.data.description}, {run.seconds:.0f} s of training "
              f"({run.wall:.0f} s wall), {args.threads} thread(s), load average {run.load_average:.2f}", flush=True)

    print()
    print(metrics_table({name: run["scores"] for name, run in runs.items()}))
    w, b = runs["WGAN-GP"], runs["BCE cGAN"]
    for name, run in runs.items():
        s = run["scores"]
        r = lab4.loss_quality_correlation(run["loss"], run["history"]["fcd"])
        print(f"{name}: conditional accuracy {s['conditional_accuracy']:.1%}, weakest class "
              f"{min(s['per_class_accuracy']):.1%}, FCD ratio {s['fcd_over_floor']:.2f}, tiers {tiers_met(s)}; "
              f"correlation of its {'Wasserstein estimate' if name == 'WGAN-GP' else 'discriminator loss'} with the "
              f"FCD over {run['epochs']} epochs: {r:+.2f}")
    ws, bs = w["scores"], b["scores"]
    print(f"ratios WGAN-GP / BCE at the same budget: conditional accuracy "
          f"{ws['conditional_accuracy'] / max(bs['conditional_accuracy'], 1e-9):.2f}x, weakest class "
          f"{min(ws['per_class_accuracy']) / max(min(bs['per_class_accuracy']), 1e-9):.2f}x, FCD "
          f"{ws['fcd'] / bs['fcd']:.2f}x (lower is better)")
    if args.write_history and not args.quick:
        lab4.BCE_HISTORY.write_text(json.dumps({
            "loss_d": [round(v, 5) for v in b["history"]["loss_c"]], "fcd": [round(v, 4) for v in b["history"]["fcd"]],
            "source": f"benchmark: {b['epochs']} epochs of {args.images:,} images, {b['seconds']:.0f} s, "
                      f"{args.threads} thread",
        }, indent=1) + "\n")
        print(f"wrote {lab4.BCE_HISTORY}")


if __name__ == "__main__":
    main()
