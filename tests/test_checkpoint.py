import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from labkit.checkpoint import (ArchitectureMismatchError, CheckpointError, Configurable, ExportedGenerator,
                               loadModel, read_checkpoint, saveModel)
from labkit.models.mlp import MLPDiscriminator, MLPGenerator


def test_round_trip_rebuilds_model_with_constructor_arguments_and_metadata(tmp_path):
    torch.manual_seed(0)
    G = MLPGenerator(latent_dim=4, hidden=(8, 6), activation="elu", data_mean=2.0, data_std=3.0)
    path = saveModel(G, tmp_path / "sub" / "g.pt", epoch=7, losses={"loss_d": [1.0, 0.5]}, seed=3)
    loaded = loadModel(path)
    assert type(loaded) is MLPGenerator and not loaded.training
    z = torch.randn(5, 4)
    torch.testing.assert_close(loaded(z), G(z))
    meta = loaded.checkpoint_metadata
    assert meta["epoch"] == 7 and meta["seed"] == 3 and meta["losses"]["loss_d"] == [1.0, 0.5]
    assert meta["labkit_version"]
    assert read_checkpoint(path)["init_args"] == {"args": [4, [8, 6], "elu", 2.0, 3.0], "kwargs": {}}


def test_loading_into_a_wrong_architecture_names_the_layers(tmp_path):
    saveModel(MLPDiscriminator(hidden=(25,)), tmp_path / "d.pt")
    with pytest.raises(ArchitectureMismatchError, match=r"net\.0\.weight: saved \(25, 1\), model \(10, 1\)"):
        loadModel(tmp_path / "d.pt", model=MLPDiscriminator(hidden=(10,)))
    with pytest.raises(ArchitectureMismatchError, match="In the model but not in the file"):
        loadModel(tmp_path / "d.pt", model=MLPDiscriminator(hidden=(25, 25)))


def test_missing_and_foreign_files_give_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="No checkpoint at .*saveModel first"):
        loadModel(tmp_path / "nothing.pt")
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    with pytest.raises(CheckpointError, match="not written by labkit.saveModel"):
        loadModel(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        loadModel(tmp_path / "junk.pt")


def test_unstorable_metadata_is_refused_before_writing(tmp_path):
    with pytest.raises(TypeError, match="activation='relu'"):
        saveModel(MLPGenerator(), tmp_path / "g.pt", activation=nn.ReLU)
    assert not (tmp_path / "g.pt").exists()


def test_plain_module_needs_an_instance_to_load(tmp_path):
    model = nn.Linear(3, 2)
    saveModel(model, tmp_path / "lin.pt")
    with pytest.raises(CheckpointError, match="constructor arguments"):
        loadModel(tmp_path / "lin.pt")
    fresh = loadModel(tmp_path / "lin.pt", model=nn.Linear(3, 2))
    torch.testing.assert_close(fresh.weight, model.weight)


def test_generator_defined_in_a_notebook_loads_without_its_class(tmp_path):
    """A conditional generator whose class exists only in another process (as in a student's notebook)."""
    script = textwrap.dedent(f"""
        import torch
        from torch import nn
        from labkit.checkpoint import Configurable, saveModel

        class TinyCGAN(Configurable):
            def __init__(self, latent_dim=6, n_classes=10):
                super().__init__()
                self.latent_dim, self.n_classes = latent_dim, n_classes
                self.embed = nn.Embedding(n_classes, 4)
                self.net = nn.Sequential(nn.Linear(latent_dim + 4, 784), nn.Tanh())
            def forward(self, z, labels):
                return self.net(torch.cat([z, self.embed(labels)], 1)).view(-1, 1, 28, 28)

        torch.manual_seed(0)
        g = TinyCGAN()
        saveModel(g, r"{tmp_path / 'cgan.pt'}")
        z = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
        torch.save(g(z, torch.tensor([0, 5, 9])).detach(), r"{tmp_path / 'expected.pt'}")
    """)
    subprocess.run([sys.executable, "-c", script], check=True)
    loaded = loadModel(tmp_path / "cgan.pt")
    assert isinstance(loaded, ExportedGenerator) and loaded.n_classes == 10 and loaded.latent_dim == 6
    z = torch.randn(3, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(loaded(z, torch.tensor([0, 5, 9])), torch.load(tmp_path / "expected.pt"))
    assert loaded(torch.randn(1, 6), torch.tensor([2])).shape == (1, 1, 28, 28)  # any batch size


def test_configurable_records_the_outermost_constructor():
    class Base(Configurable):
        def __init__(self, width=3):
            super().__init__()
            self.layer = nn.Linear(width, 1)

    class Child(Base):
        def __init__(self, depth, width=5):
            super().__init__(width=width)
            self.depth = depth

    assert Child(2).init_args == {"args": [2, 5], "kwargs": {}}
    assert Base(width=4).init_args == {"args": [4], "kwargs": {}}


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "g.pt"
    saveModel(MLPGenerator(), path, epoch=1)

    def broken_save(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        saveModel(MLPGenerator(), path, epoch=2)
    monkeypatch.undo()
    assert loadModel(path).checkpoint_metadata["epoch"] == 1
