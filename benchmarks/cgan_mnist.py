"""Conditional DCGAN with a projection discriminator (lab 02's recipe) vs the classic fully connected cGAN on MNIST:
same data, training loop and wall-clock budget, one run each; metrics and ratios printed, never asserted.

    python scripts/make_offline_mnist.py       # once: 10,000 real training digits in ./data
    python benchmarks/cgan_mnist.py [--epochs N] [--threads 1] [--quick]

Both models are trained by the solution notebook's own ``train`` and ``train_step`` (cells tagged ``export`` in
notebooks/solutions/02_cgan_mnist.ipynb), each with Adam at the solution's learning rates and an EMA of the
generator. The lab's networks train for ``--epochs`` (default: the solution's EPOCHS_FULL); the baseline
(:class:`labkit.labs.cgan_mnist.FCConditionalGenerator` / ``FCConditionalDiscriminator``: an embedding of the
label concatenated to the noise and to the flattened image, MLPs of 256-512-1024 units) for as many seconds of
training. Both EMA generators are scored as the graded quality checks score them (5,000 samples).
"""
import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, help="the lab's epochs (default: the solution's); the baseline gets its time")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 digits, 1 epoch: a smoke test of the script")
    args = parser.parse_args()
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    import torch

    torch.set_num_threads(args.threads)
    from labkit import datasets, runtime
    from labkit.checks.cgan_mnist import graded_scores, tiers_met
    from labkit.instructor.notebook import load_exports
    from labkit.labs.cgan_mnist import FCConditionalDiscriminator, FCConditionalGenerator
    from labkit.metrics import metrics_table

    solution = load_exports(ROOT / "notebooks" / "solutions" / "02_cgan_mnist.ipynb")
    images, labels = datasets.tensors("mnist", limit=2000 if args.quick else None)
    test = datasets.tensors("mnist", train=False, limit=500 if args.quick else None)
    epochs = 1 if args.quick else (args.epochs or solution.EPOCHS_FULL)
    fixed = (torch.randn(10, solution.LATENT_DIM, generator=torch.Generator().manual_seed(0)).repeat(10, 1),
             torch.arange(10).repeat_interleave(10))
    scratch = ROOT / "scratch"
    scratch.mkdir(exist_ok=True)
    runs, budget = {}, None
    for name, build in (("cGAN (projection D)", lambda: (solution.Generator(), solution.Discriminator())),
                        ("fully connected cGAN", lambda: (FCConditionalGenerator(), FCConditionalDiscriminator()))):
        runtime.seed_everything(0)
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels),
                                             batch_size=solution.BATCH_SIZE, shuffle=True, drop_last=True,
                                             generator=torch.Generator().manual_seed(0))
        G, D = build()
        opt_g, opt_d = solution.make_optimizers(G, D)
        state = scratch / f"benchmark_cgan_{name.split()[0]}.pt"
        state.unlink(missing_ok=True)
        # the baseline trains for the lab model's seconds: room for more epochs, stopped on time
        run_epochs = epochs if budget is None else 10 * epochs
        start = time.perf_counter()
        G_ema, history, _, seconds = solution.train(G, D, opt_g, opt_d, torch.nn.BCELoss(), loader, run_epochs, state,
                                                    fixed, torch.device("cpu"), test, max_seconds=budget, name=name)
        wall = time.perf_counter() - start
        budget = budget or seconds
        load = os.getloadavg()[0]
        scores = graded_scores(G_ema, n=1000 if args.quick else 5000)
        runs[name] = {"scores": scores, "seconds": seconds, "epochs": len(history["loss_d"]), "wall": wall, "load": load}
        print(f"{name}: {len(history['loss_d'])} epochs, {seconds:.0f} s of training ({wall:.0f} s wall), "
              f"{args.threads} thread(s), load average {load:.2f}; tiers met: {tiers_met(scores)}", flush=True)
    print(metrics_table({name: run["scores"] for name, run in runs.items()}))
    (ours, base) = (run["scores"] for run in runs.values())
    for name, run in runs.items():
        s = run["scores"]
        print(f"{name:>22}: conditional accuracy {s['conditional_accuracy']:.2%}, weakest class "
              f"{min(s['per_class_accuracy']):.2%}, FCD ratio {s['fcd_over_floor']:.2f}")
    print(f"ratios (fully connected / lab model, same budget): 1 - conditional accuracy "
          f"{(1 - base['conditional_accuracy']) / max(1e-9, 1 - ours['conditional_accuracy']):.1f}x, FCD "
          f"{base['fcd'] / ours['fcd']:.1f}x, FCD ratio {base['fcd_over_floor'] / ours['fcd_over_floor']:.1f}x")


if __name__ == "__main__":
    main()
