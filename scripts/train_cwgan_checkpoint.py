"""Train the cWGAN-GP lab's reference generator with the solution notebook's own code, and check it.

    sudo apt-get install -y dataset-fashion-mnist     # once: the full Fashion-MNIST, offline
    python scripts/train_cwgan_checkpoint.py [--epochs 20] [--threads 1] [--device cpu]

Uses Generator, Critic, make_optimizers, critic_step, generator_step and train from the cells of
notebooks/solutions/04_cwgan_gp_fashion.ipynb tagged ``export``: the checkpoint is exactly what the
solution trains. Writes checkpoints/cwgan_gp_fashion.pt (loadable by ``labkit sample`` and ``labkit
evaluate``) and the same file as notebooks/solutions/cwgan_final.pt (what the solution's graded quality
checks load), the critic as notebooks/solutions/cwgan_final_C.pt, then prints the issue's targets on
5,000 samples and the graded tiers.
"""
import argparse
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (report them with the time)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "checkpoints" / "cwgan_gp_fashion.pt")
    parser.add_argument("--state", type=Path, default=ROOT / "scratch" / "cwgan_reference_training.pt",
                        help="the training checkpoint; an existing one is resumed (--fresh deletes it)")
    parser.add_argument("--fresh", action="store_true")
    parser.add_argument("--critic-channels", type=int, help="the critic's width c (default: the solution's)")
    parser.add_argument("--n-critic", type=int, help="critic steps per generator step (default: the solution's)")
    parser.add_argument("--lr-g", type=float, help="the generator's learning rate (default: the solution's)")
    parser.add_argument("--lr-c", type=float, help="the critic's learning rate (default: the solution's)")
    parser.add_argument("--max-seconds", type=float, help="stop training after this many seconds of training")
    return parser.parse_args()


def main():
    args = parse_args()
    import torch

    torch.set_num_threads(args.threads)
    from labkit import datasets, runtime, saveModel
    from labkit.checks import cwgan_gp_fashion as checks
    from labkit.instructor.notebook import load_exports
    from labkit.metrics import metrics_table

    solution = load_exports(ROOT / "notebooks" / "solutions" / "04_cwgan_gp_fashion.ipynb")
    runtime.seed_everything(args.seed)
    images, labels = datasets.tensors("fashion_mnist")
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, labels), batch_size=64, shuffle=True,
                                         drop_last=True, generator=torch.Generator().manual_seed(args.seed))
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    C = solution.Critic(channels=args.critic_channels) if args.critic_channels else solution.Critic()
    G, C = solution.Generator().to(device), C.to(device)
    learning_rates = {key: value for key, value in (("lr_g", args.lr_g), ("lr_c", args.lr_c)) if value is not None}
    n_critic = args.n_critic or solution.N_CRITIC
    opt_g, opt_c = solution.make_optimizers(G, C, **learning_rates)
    fixed_z = torch.randn(10, solution.LATENT_DIM, generator=torch.Generator().manual_seed(args.seed)).repeat(10, 1)
    fixed_labels = torch.arange(10).repeat_interleave(10)
    if args.fresh:
        args.state.unlink(missing_ok=True)
    start = time.perf_counter()
    G_ema, history, _, seconds = solution.train(G, C, opt_g, opt_c, loader, args.epochs, args.state,
                                                (fixed_z.to(device), fixed_labels.to(device)), device,
                                                n_critic=n_critic,
                                                max_seconds=args.max_seconds)
    wall = time.perf_counter() - start
    G_ema = G_ema.cpu()
    recipe = {"n_critic": n_critic, "lr_g": opt_g.param_groups[0]["lr"],
              "lr_c": opt_c.param_groups[0]["lr"], "epochs_run": len(history.get("fcd", []))}
    saveModel(G_ema, args.out, dataset="fashion_mnist", epochs=args.epochs, seed=args.seed, losses=history, **recipe,
              train_seconds=round(seconds, 1), threads=args.threads, device=str(device),
              data=f"{len(images):,} Fashion-MNIST training images")
    if args.out.resolve() == (ROOT / "checkpoints" / "cwgan_gp_fashion.pt"):
        shutil.copy(args.out, ROOT / "notebooks" / "solutions" / "cwgan_final.pt")  # what the solution hands in
        saveModel(C.cpu(), ROOT / "notebooks" / "solutions" / "cwgan_final_C.pt", dataset="fashion_mnist",
                  seed=args.seed)
    else:  # a trial: its critic beside it, so the pair can be installed later
        saveModel(C.cpu(), args.out.with_name(args.out.stem + "_C.pt"), dataset="fashion_mnist", seed=args.seed)
    print(f"recipe {recipe}")
    print(f"trained {args.epochs} epochs on {len(images):,} images: {seconds:.0f} s of training (this call), "
          f"{wall:.0f} s wall, {args.threads} thread(s) on {device}; wrote {args.out} "
          f"({args.out.stat().st_size / 1e6:.2f} MB)")
    print("per epoch: wasserstein", [round(v, 3) for v in history["wasserstein"]])
    print("per epoch: fcd        ", [round(v, 2) for v in history["fcd"]])
    scores = checks.graded_scores(G_ema)
    print(metrics_table({"cwgan_gp_fashion.pt": scores}))
    per_class = scores["per_class_accuracy"]
    print(f"targets: conditional accuracy {scores['conditional_accuracy']:.1%} (>= 85 %), weakest class "
          f"{min(per_class):.1%} (>= 60 %); per class {', '.join(f'{a:.0%}' for a in per_class)}; FCD ratio "
          f"{scores['fcd_over_floor']:.2f}; tiers met: {checks.tiers_met(scores)}")


if __name__ == "__main__":
    main()
