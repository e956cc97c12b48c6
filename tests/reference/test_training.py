"""labkit.reference.training: the image labs' reference runs (recipes, data, files), on tiny runs."""
import pytest
import torch

from labkit import loadModel
from labkit.reference import training
from labkit.reference.training import (RECIPES, Options, train_reference, training_data, write_reference,
                                       write_sample_grid)


@pytest.fixture
def shipped_data_only(monkeypatch, tmp_path):
    """No data set on disk and no download: labkit serves its shipped sample (train 3,000, test = the graded 1,000)."""
    monkeypatch.setenv("LABKIT_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("LABKIT_OFFLINE", "1")


def test_every_recipe_names_a_solution_that_exports_what_its_fit_uses():
    for recipe in RECIPES.values():
        solution = recipe.solution()
        assert recipe.epochs(solution) > 0
        for name in ("Generator", "make_optimizers", "train", "LATENT_DIM"):
            assert hasattr(solution, name), (recipe.name, name)
        assert recipe.checkpoint.exists(), recipe.checkpoint


def test_unshipped_test_digits_leave_out_every_graded_image(shipped_data_only):
    """Offline with only labkit's sample, every test image is in the graded sample: none may join the training."""
    plain = training_data(RECIPES["cgan_mnist"])
    widened = training_data(RECIPES["dcgan_mnist"])
    assert RECIPES["dcgan_mnist"].unshipped_test_digits and not RECIPES["cgan_mnist"].unshipped_test_digits
    assert len(widened.images) == len(plain.images)
    assert "+ 0 test images" in widened.description


def test_unshipped_test_digits_join_the_training_data(shipped_data_only, monkeypatch):
    """Test images that are not in the graded sample are added, the graded ones never."""
    from labkit import datasets

    real = datasets.tensors

    def with_two_new_test_images(name, train=True, limit=None):
        images, labels = real(name, train=train, limit=limit)
        if train:
            return images, labels
        new = torch.full((2, 1, 28, 28), 0.5)          # no shipped digit is flat grey
        return torch.cat([images, new]), torch.cat([labels, torch.tensor([3, 4])])

    monkeypatch.setattr(datasets, "tensors", with_two_new_test_images)
    plain = training_data(RECIPES["cgan_mnist"])
    widened = training_data(RECIPES["dcgan_mnist"])
    assert len(widened.images) == len(plain.images) + 2
    assert widened.labels[-2:].tolist() == [3, 4]


def test_a_tiny_run_trains_writes_and_reloads(shipped_data_only, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "SCRATCH", tmp_path / "scratch")
    run = train_reference(RECIPES["dcgan_mnist"], Options(epochs=1, limit=128, d_channels=4))
    assert run.epochs_run == 1 and run.options.epochs == 1
    assert set(run.history) >= {"loss_d", "loss_g"}
    generator, second = write_reference(run, tmp_path / "trial.pt")   # a trial: nothing goes beside the solution
    assert (generator, second) == (tmp_path / "trial.pt", tmp_path / "trial_D.pt")
    G = loadModel(generator)
    assert G(torch.randn(2, G.latent_dim)).shape == (2, 1, 28, 28)
    assert loadModel(second).net[0].out_channels == 4                 # the width the options asked for
    grid = write_sample_grid(G, RECIPES["dcgan_mnist"], tmp_path / "grid.png")
    assert grid.stat().st_size > 10_000                               # 100 tiles and their captions, as a PNG
