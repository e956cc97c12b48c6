"""DCGAN vs the lecture's fully connected GAN on MNIST: same data, same step, same wall-clock budget, one run.

    python scripts/make_offline_mnist.py                 # once: 10,000 real training digits in ./data
    python benchmarks/dcgan_mnist.py [--epochs 20] [--threads 1] [--quick]

Both models are trained by the solution notebook's own ``train`` and ``train_step`` (cells tagged
``export`` in notebooks/solutions/03_dcgan_mnist.ipynb). The DCGAN trains ``--epochs`` epochs; the
baseline trains for as many seconds of training time. Both are scored on 5,000 samples by the MNIST
metric classifier, next to real training digits (what a generator that copied its data would score).
Numbers are printed, never asserted: the targets are in the DCGAN issue and docs/benchmarks.md.
"""
import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="2,000 digits, 1 epoch: a smoke test of the script")
    parser.add_argument("--samples", type=int, default=5000)
    args = parser.parse_args()
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    import torch

    torch.set_num_threads(args.threads)
    from labkit import datasets, runtime
    from labkit.instructor.notebook import load_exports
    from labkit import saveModel
    from labkit.checks.dcgan_mnist import QUALITY_TIERS
    from labkit.metrics import evaluate_generator, evaluate_images, metrics_table, shipped_reference_images
    from labkit.models.mlp import FCImageDiscriminator, FCImageGenerator

    solution = load_exports(ROOT / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb")
    images, labels = datasets.tensors("mnist", limit=2000 if args.quick else None)
    epochs = 1 if args.quick else args.epochs
    runtime.seed_everything(0)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(0))
    fixed_z = torch.randn(64, solution.LATENT_DIM, generator=torch.Generator().manual_seed(0))
    scratch = ROOT / "scratch"
    scratch.mkdir(exist_ok=True)
    device = torch.device("cpu")
    results, graded, seconds = {}, {}, {}
    shipped, _, _ = shipped_reference_images("mnist")  # what the graded quality checks compare with
    budget = None
    for name, build in (("DCGAN", lambda: (solution.Generator(), solution.Discriminator())),
                        ("fully connected", lambda: (FCImageGenerator(), FCImageDiscriminator()))):
        torch.manual_seed(0)
        G, D = build()
        opt_g, opt_d = solution.make_optimizers(G, D)
        state = scratch / f"benchmark_{name.replace(' ', '_')}.pt"
        state.unlink(missing_ok=True)
        start = time.perf_counter()
        G_ema, history, _, seconds[name] = solution.train(
            G, D, opt_g, opt_d, torch.nn.BCELoss(), loader, epochs if budget is None else 100 * epochs, state, fixed_z,
            device, max_seconds=budget, name=name)
        budget = budget or seconds[name]
        sampling_start = time.perf_counter()
        results[name] = evaluate_generator(G_ema, "mnist", n=args.samples, seed=0)
        graded[name] = evaluate_generator(G_ema, "mnist", n=args.samples, seed=0, reference=shipped)
        saveModel(G_ema.cpu(), scratch / f"benchmark_{name.replace(' ', '_')}_G.pt", dataset="mnist")
        print(f"{name}: {len(history['loss_d'])} epochs, {seconds[name]:.0f} s training "
              f"({time.perf_counter() - start:.0f} s with scoring: {time.perf_counter() - sampling_start:.1f} s to "
              f"sample and score {args.samples:,}), {args.threads} thread(s)", flush=True)
    real = ((images[:args.samples, 0] + 1) / 2).numpy()
    results["real training digits"] = evaluate_images(real, "mnist")
    graded["real training digits"] = evaluate_images(real, "mnist", reference=shipped)
    print(metrics_table(results))
    dc, fc = results["DCGAN"], results["fully connected"]
    print("ratios (fully connected / DCGAN, same budget): "
          f"FCD {fc['fcd'] / dc['fcd']:.1f}x, 1 - confidence {(1 - fc['mean_confidence']) / (1 - dc['mean_confidence']):.1f}x, "
          f"KL from uniform {fc['kl_from_uniform'] / max(dc['kl_from_uniform'], 1e-9):.1f}x")
    for name, r in results.items():
        print(f"{name}: FCD / real floor = {r['fcd'] / r['fcd_real_floor']:.1f}, shares "
              f"{r['min_class_share']:.1%}-{r['max_class_share']:.1%} (ratio {r['class_share_ratio']:.2f}), "
              f"confidence {r['mean_confidence']:.3f}")
    print("as graded (FCD against labkit's 1,000 shipped held-out digits; tiers: "
          + "; ".join(f"{t}: ratio >= {v['share_ratio']}, confidence >= {v['confidence']}, FCD/floor <= "
                      f"{v['fcd_over_floor']}" for t, v in QUALITY_TIERS.items()) + ")")
    for name, r in graded.items():
        ratio = r["fcd"] / r["fcd_real_floor"]
        tiers = [t for t, v in QUALITY_TIERS.items() if r["class_share_ratio"] >= v["share_ratio"]
                 and r["mean_confidence"] >= v["confidence"] and ratio <= v["fcd_over_floor"]]
        print(f"{name}: FCD {r['fcd']:.2f} / floor {r['fcd_real_floor']:.2f} = {ratio:.1f}, tiers passed: "
              f"{', '.join(tiers) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
