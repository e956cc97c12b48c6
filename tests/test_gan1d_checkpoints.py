"""The shipped 1D-GAN checkpoints meet the lab's targets through `labkit sample`, and the graded
quality check tells good, fair and poor generators apart."""
import shutil
from pathlib import Path

import numpy as np
import pytest

from labkit import cli, distributions
from labkit.checkpoint import saveModel
from labkit.checks import CheckFailed
from labkit.checks import gan1d as checks
from labkit.metrics import compare_1d
from labkit.models.mlp import MLPGenerator

CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"


@pytest.mark.parametrize("name", distributions.names())
def test_reference_checkpoint_meets_the_targets_through_labkit_sample(name, tmp_path):
    out = tmp_path / "s.npy"
    assert cli.main(["sample", str(CHECKPOINTS / f"gan1d_{name}.pt"), "--n", "20000", "--out", str(out)]) == 0
    samples = np.load(out)
    assert samples.shape == (20_000,)
    result = compare_1d(samples, name)
    assert result["ks"] <= 0.03 and result["w1_over_std"] <= 0.06, result


def test_quality_check_passes_the_reference_in_both_tiers(tmp_path, monkeypatch, capsys):
    shutil.copy(CHECKPOINTS / "gan1d_laplace.pt", tmp_path / "gan1d_final.pt")
    monkeypatch.chdir(tmp_path)
    checks.check_final_model("gan1d_final.pt", tier="fair")
    checks.check_final_model("gan1d_final.pt", tier="good")
    assert capsys.readouterr().out.count("✔") == 2


def test_quality_check_refuses_an_untrained_generator(tmp_path):
    saveModel(MLPGenerator(latent_dim=5, data_mean=3.0, data_std=0.4), tmp_path / "g.pt", target="laplace")
    with pytest.raises(CheckFailed, match=r"laplace: KS .* \(needs <= 0.08\)"):
        checks.check_final_model(tmp_path / "g.pt", tier="fair")


def test_quality_check_explains_missing_file_target_and_easy_target(tmp_path):
    with pytest.raises(CheckFailed, match="No usable saved model"):
        checks.check_final_model(tmp_path / "gan1d_final.pt", tier="fair")
    saveModel(MLPGenerator(), tmp_path / "no_target.pt")
    with pytest.raises(CheckFailed, match="does not record its target"):
        checks.check_final_model(tmp_path / "no_target.pt", tier="fair")
    shutil.copy(CHECKPOINTS / "gan1d_normal.pt", tmp_path / "normal.pt")
    with pytest.raises(CheckFailed, match="harder target"):
        checks.check_final_model(tmp_path / "normal.pt", tier="fair")
