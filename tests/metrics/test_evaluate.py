"""`labkit evaluate` on generators saved with saveModel: a small image generator trained here, and a 1D one."""
from pathlib import Path

import pytest
import torch
from torch import nn

from labkit import cli, datasets
from labkit.checkpoint import Configurable, saveModel
from labkit.metrics import evaluate_generator

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


class PrototypeGenerator(Configurable):
    """Maps (z, label) to an image through a learnable per-class prototype plus a little noise."""

    def __init__(self, latent_dim=8, n_classes=10):
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.prototypes = nn.Embedding(n_classes, 784)
        self.noise = nn.Linear(latent_dim, 784)

    def forward(self, z, labels):
        return torch.tanh(self.prototypes(labels) + 0.1 * self.noise(z)).view(-1, 1, 28, 28)


@pytest.fixture(scope="module")
def trained_generator(tmp_path_factory):
    """Fit the prototypes to real MNIST digits for a few hundred steps (seconds on a CPU)."""
    torch.manual_seed(0)
    data = datasets.load("mnist", train=True, download=False, limit=2000)
    images = torch.stack([data[i][0] for i in range(len(data))])
    labels = torch.tensor([data[i][1] for i in range(len(data))])
    gen = PrototypeGenerator()
    opt = torch.optim.Adam(gen.parameters(), lr=0.05)
    for _ in range(150):
        idx = torch.randint(0, len(images), (256,))
        loss = ((gen(torch.randn(256, 8), labels[idx]) - images[idx]) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    path = tmp_path_factory.mktemp("gen") / "prototype_gan.pt"
    saveModel(gen, path, dataset="mnist", epoch=1)
    return gen, path


def test_evaluate_prints_a_table_for_an_image_generator(trained_generator, capsys):
    _, path = trained_generator
    assert cli.main(["evaluate", str(path), "--n", "500"]) == 0
    out = capsys.readouterr().out
    assert "scored by the mnist classifier" in out
    for label in ("conditional accuracy", "classifier IS", "FCD (Fréchet classifier distance)", "FCD real-vs-real floor"):
        assert label in out


def test_trained_prototypes_are_recognised_and_an_untrained_generator_is_not(trained_generator):
    gen, _ = trained_generator
    good = evaluate_generator(gen, "mnist", n=500)
    torch.manual_seed(1)
    bad = evaluate_generator(PrototypeGenerator(), "mnist", n=500)
    assert good["conditional_accuracy"] > 0.5   # blurry class means: recognisable, not perfect
    assert bad["conditional_accuracy"] < 0.3    # random prototypes: about chance
    assert good["fcd"] < bad["fcd"]


def test_evaluate_1d_checkpoint(capsys):
    assert cli.main(["evaluate", str(CHECKPOINTS / "gan1d_laplace.pt"), "--n", "5000"]) == 0
    out = capsys.readouterr().out
    assert "Laplace(3.0, 0.3)" in out and "KS statistic" in out


def test_evaluate_image_generator_without_dataset_says_what_to_pass(tmp_path, capsys):
    saveModel(PrototypeGenerator(), tmp_path / "g.pt")
    assert cli.main(["evaluate", str(tmp_path / "g.pt")]) == 2
    assert "--dataset mnist" in capsys.readouterr().err
