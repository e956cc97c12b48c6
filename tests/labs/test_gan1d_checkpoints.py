"""The shipped 1D-GAN checkpoints meet the lab's targets through `labkit sample`, and the graded
quality check tells good, fair and poor generators apart."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from labkit import cli, distributions
from labkit.checkpoint import loadModel, saveModel
from labkit.checks import CheckFailed
from labkit.checks import gan1d as checks
from labkit.instructor.notebook import load_exports
from labkit.metrics import compare_1d
from labkit.models.mlp import MLPGenerator

REPO = Path(__file__).resolve().parents[2]
CHECKPOINTS = REPO / "checkpoints"


@pytest.fixture(scope="module")
def solution():
    return load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")


class _FirstEpochDone(Exception):
    pass


@pytest.mark.parametrize("name", distributions.names())
def test_checkpoints_are_what_the_solution_trains(name, solution, monkeypatch):
    """The shipped checkpoints still follow from the solution's code: same recipe, and the first epoch of the
    full-length run (same seed, networks, data, noise, learning-rate schedule) logs the numbers the checkpoint
    recorded. Fails when a change to train_gan or labkit.labs.gan1d changes the trained models: then retrain
    them with scripts/train_gan1d_checkpoints.py."""
    metadata = loadModel(CHECKPOINTS / f"gan1d_{name}.pt").checkpoint_metadata
    config = solution.tuned_config(name)
    assert metadata["config"] == repr(config)
    first = {}

    def first_epoch_means(totals, counts):
        first.update(solution_means(totals, counts))
        raise _FirstEpochDone

    solution_means = solution.epoch_means
    monkeypatch.setattr(solution, "epoch_means", first_epoch_means)  # train_gan looks it up at call time
    with pytest.raises(_FirstEpochDone):
        solution.train_gan(config)
    recorded = {key: values[0] for key, values in metadata["losses"].items()}
    # Bit for bit on the machine that trained them; 1e-6 leaves room for another CPU's float rounding and still
    # sees small recipe changes (D's learning-rate schedule over d_steps * steps instead of steps: 1.6e-5).
    assert first == pytest.approx(recorded, rel=1e-6, abs=0)


@pytest.mark.parametrize("name", distributions.names())
def test_reference_checkpoint_meets_the_targets_through_labkit_sample(name, tmp_path):
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(CHECKPOINTS / f"gan1d_{name}.pt"), "--n", "100000", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (100_000,)
    result = compare_1d(samples, name)
    good_ks, good_w1 = checks.quality_tiers(name)["good"]
    assert result["ks"] <= good_ks and result["w1_over_std"] <= good_w1, result


def test_quality_tiers_are_per_target_and_fair_is_looser():
    for name in distributions.names():
        (gk, gw), (fk, fw) = checks.quality_tiers(name)["good"], checks.quality_tiers(name)["fair"]
        assert gk < fk and gw < fw, name
    assert checks.quality_tiers("petitprince")["good"][0] < 0.0159   # the baseline x10's best KS (seeds 0-4)
    mix = distributions.mixture({"halfnormal": 0.5, "laplace": 0.5})   # the handout's mixture, parts in any order
    assert checks.quality_tiers(mix) == checks.QUALITY_TIERS["laplace+halfnormal"]
    with pytest.raises(ValueError, match="No measured quality limits"):   # a target nobody measured: not graded
        checks.quality_tiers({"laplace": 0.3, "halfnormal": 0.7})


def test_quality_check_passes_the_reference_in_both_tiers(tmp_path, monkeypatch, capsys):
    shutil.copy(CHECKPOINTS / "gan1d_laplace.pt", tmp_path / "gan1d_final.pt")
    monkeypatch.chdir(tmp_path)
    checks.check_final_model("gan1d_final.pt", tier="fair")
    checks.check_final_model("gan1d_final.pt", tier="good")
    assert capsys.readouterr().out.count("✔") == 2


def test_quality_check_refuses_an_untrained_generator(tmp_path):
    saveModel(MLPGenerator(latent_dim=5, data_mean=3.0, data_std=0.4), tmp_path / "g.pt", target="laplace")
    with pytest.raises(CheckFailed, match=r"laplace: KS .* \(needs <= 0.04\)"):
        checks.check_final_model(tmp_path / "g.pt", tier="fair")


def test_quality_check_names_a_model_trained_on_another_target_than_target(tmp_path):
    """A tuned_config that forgets target= trains on GanConfig's default, N(4, 0.5); the notebook saves the target
    the run trained on, and the check names the mismatch instead of grading against the wrong target."""
    shutil.copy(CHECKPOINTS / "gan1d_normal.pt", tmp_path / "gan1d_final.pt")
    with pytest.raises(CheckFailed, match=r"trained on normal \(N\(4.0, 0.5\)\), but TARGET is petitprince.*"
                                          r"target=target to GanConfig"):
        checks.check_final_model(tmp_path / "gan1d_final.pt", tier="fair", target="petitprince")
    shutil.copy(CHECKPOINTS / "gan1d_laplace.pt", tmp_path / "laplace.pt")
    with pytest.raises(CheckFailed, match="trained on laplace .* but TARGET is petitprince"):
        checks.check_final_model(tmp_path / "laplace.pt", tier="fair", target=distributions.get("petitprince"))
    checks.check_final_model(tmp_path / "laplace.pt", tier="fair", target="laplace")


def test_solution_saves_the_target_its_final_run_trained_on():
    import nbformat

    nb = nbformat.read(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb", as_version=4)
    save = next(c.source for c in nb.cells if c.cell_type == "code" and "final.generator" in c.source
                and "save_model(" in c.source)
    assert "distributions.get(final.config.target).spec" in save and "target=trained_on" in save
    assert "TARGET.spec" not in save
    graded = [c.source for c in nb.cells if c.get("metadata", {}).get("labkit", {}).get("check", "").startswith("ex2_")]
    assert len(graded) == 2 and all("target=TARGET" in source for source in graded)


def test_quality_check_explains_missing_file_target_and_easy_target(tmp_path):
    with pytest.raises(CheckFailed, match="No usable saved model.*full run"):
        checks.check_final_model(tmp_path / "gan1d_final.pt", tier="fair")
    saveModel(MLPGenerator(), tmp_path / "no_target.pt")
    with pytest.raises(CheckFailed, match="does not record its target"):
        checks.check_final_model(tmp_path / "no_target.pt", tier="fair")
    shutil.copy(CHECKPOINTS / "gan1d_normal.pt", tmp_path / "normal.pt")
    with pytest.raises(CheckFailed, match="harder target"):
        checks.check_final_model(tmp_path / "normal.pt", tier="fair")
