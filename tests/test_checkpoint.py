import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from labkit.checkpoint import (ArchitectureMismatchError, CheckpointError, Configurable, ExportedGenerator,
                               load_data_only, loadModel, random_operators, read_checkpoint, saveModel)
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


# --------------------------------------------------------------------------- loading as data, for grading


GENERATOR_MODULE = textwrap.dedent("""
    import os, torch
    from torch import nn
    from labkit.checkpoint import Configurable
    open(os.environ["IMPORT_MARKER"], "w").close()   # importing this module at load time is what grading must not do

    class Gen(Configurable):
        def __init__(self, noise=False):
            super().__init__()
            self.latent_dim, self.noise = 1, noise
            self.lin = nn.Linear(1, 1)
        def forward(self, z):
            out = self.lin(z)
            return out + torch.distributions.Laplace(0.0, 0.3).sample(z.shape) if self.noise else out
""")


@pytest.fixture
def student_models(tmp_path, monkeypatch):
    """gen_plain.pt and gen_noise.pt, saved from a class in a module of the "submission" (student_gen.py)."""
    (tmp_path / "student_gen.py").write_text(GENERATOR_MODULE, encoding="utf-8")
    marker = tmp_path / "imported"
    script = ("import sys; sys.path.insert(0, sys.argv[1]); import torch; from labkit.checkpoint import saveModel; "
              "from student_gen import Gen; torch.manual_seed(0); "
              "saveModel(Gen(False), sys.argv[1] + '/gen_plain.pt', target='laplace'); "
              "saveModel(Gen(True), sys.argv[1] + '/gen_noise.pt', target='laplace')")
    subprocess.run([sys.executable, "-c", script, str(tmp_path)], check=True,
                   env={**os.environ, "IMPORT_MARKER": str(tmp_path / "saved")})
    monkeypatch.setenv("IMPORT_MARKER", str(marker))
    monkeypatch.syspath_prepend(str(tmp_path))   # the class's module could be imported, as from a notebook's folder
    return tmp_path, marker


def test_reading_as_data_never_imports_the_class_named_in_the_file(student_models):
    folder, marker = student_models
    loaded = load_data_only(folder / "gen_plain.pt")
    assert isinstance(loaded, ExportedGenerator) and not marker.exists()
    z = torch.linspace(-1, 1, 5).reshape(5, 1)
    torch.testing.assert_close(loaded(z), loaded(z))   # deterministic


def test_grading_refuses_a_graph_that_draws_its_own_random_numbers(student_models, monkeypatch):
    folder, marker = student_models
    assert any("uniform_" in op for op in random_operators(read_checkpoint(folder / "gen_noise.pt")["exported"]))
    assert random_operators(read_checkpoint(folder / "gen_plain.pt")["exported"]) == []
    with pytest.raises(CheckpointError, match="draws random numbers of its own .*uniform_"):
        load_data_only(folder / "gen_noise.pt")
    assert not marker.exists()


def test_eval_mode_dropout_is_not_random_but_training_dropout_is(tmp_path):
    class DropGen(nn.Module):
        latent_dim = 2

        def __init__(self):
            super().__init__()
            self.lin, self.drop = nn.Linear(2, 1), nn.Dropout(0.5)

        def forward(self, z):
            return self.drop(self.lin(z))

    path = saveModel(DropGen(), tmp_path / "drop.pt")   # exported in eval mode: dropout(train=False)
    assert random_operators(read_checkpoint(path)["exported"]) == []


def test_labkit_classes_are_rebuilt_as_data_with_their_metadata(tmp_path):
    G = MLPGenerator(latent_dim=1, hidden=(1,), activation="relu", data_mean=4.0, data_std=0.5)
    path = saveModel(G, tmp_path / "g.pt", target={"normal": 1})
    loaded = load_data_only(path)
    assert type(loaded) is MLPGenerator and loaded.checkpoint_metadata["target"] == {"normal": 1}


def test_load_model_has_no_grading_mode(tmp_path, monkeypatch):
    """loadModel loads, whatever the environment says: the checks choose load_data_only themselves."""
    class Local(Configurable):   # a notebook's own class, with its constructor arguments recorded
        latent_dim = 1

        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(1, 1)

        def forward(self, z):
            return self.lin(z)

    import __main__
    monkeypatch.setattr(__main__, "Local", Local, raising=False)
    Local.__module__, Local.__qualname__ = "__main__", "Local"
    path = saveModel(Local(), tmp_path / "local.pt")
    monkeypatch.setenv("LABKIT_GRADING", "1")
    assert type(loadModel(path)) is Local
    assert type(load_data_only(path)) is not Local

def test_students_keep_the_ordinary_loader(student_models):
    folder, marker = student_models   # not grading: loadModel(path) rebuilds the student's own class
    loaded = loadModel(folder / "gen_noise.pt")
    assert type(loaded).__name__ == "Gen" and marker.exists()


def test_saved_models_are_told_from_other_files_without_torch(tmp_path):
    """`labkit run` counts saved models among a notebook's outputs with checkpoint_format, which imports no
    torch and runs nothing named in the file; it agrees with read_checkpoint."""
    import pickle
    import zipfile

    from labkit.checkpoint_format import is_saved_model

    saveModel(MLPGenerator(latent_dim=2, hidden=(4,)), tmp_path / "g.pt", epoch=1)   # with its exported graph
    saveModel(MLPDiscriminator(hidden=(4,)), tmp_path / "d.pt")
    torch.save({"generator": MLPGenerator().state_dict(), "epoch": 3}, tmp_path / "training_state.pt")
    torch.save({"format": "labkit.other"}, tmp_path / "other_format.pt")
    (tmp_path / "notes.pt").write_text("not a zip")
    marker = tmp_path / "ran"

    class Runs:   # a pickle that would create a file if anything in it were called
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with zipfile.ZipFile(tmp_path / "hostile.pt", "w") as archive:
        archive.writestr("hostile/data.pkl", pickle.dumps({"format": "labkit.model", "x": Runs()}, protocol=2))
    expected = {"g.pt": True, "d.pt": True, "training_state.pt": False, "other_format.pt": False,
                "notes.pt": False}
    code = ("import sys, json\nfrom labkit.checkpoint_format import is_saved_model\n"
            f"names = {sorted(expected)!r}\n"
            f"print(json.dumps([is_saved_model({str(tmp_path)!r} + '/' + n) for n in names] + ['torch' in sys.modules]))")
    *verdicts, torch_imported = __import__("json").loads(subprocess.check_output([sys.executable, "-c", code]))
    assert dict(zip(sorted(expected), verdicts)) == expected and not torch_imported
    for name, saved in expected.items():
        try:
            read_checkpoint(tmp_path / name)
            assert saved, name
        except CheckpointError:
            assert not saved, name
    assert is_saved_model(tmp_path / "hostile.pt") is True and not marker.exists()   # read, never run
