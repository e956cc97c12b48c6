"""The checks read a handed-in model one way, in Jupyter as under the grader (issue 23: no hidden mode): the same
check cell gives the same verdict whether LABKIT_GRADING is set or not, for a target that is N(4, 0.5) under
another name, and a model whose class a notebook could define is rebuilt without importing it."""
import pytest
import torch

from labkit import saveModel
from labkit.checks import CheckFailed
from labkit.checks.gan1d import check_final_model
from labkit.models.mlp import MLPGenerator


def _normal_called_a_mixture(tmp_path):
    G = MLPGenerator(latent_dim=1, hidden=(1,), activation="relu", data_mean=4.0, data_std=0.5)
    with torch.no_grad():
        G.net[0].weight.fill_(1.0), G.net[0].bias.fill_(10.0), G.net[2].weight.fill_(1.0), G.net[2].bias.fill_(-10.0)
    return saveModel(G, tmp_path / "normal.pt", target={"normal": 1})


def _verdict(path, monkeypatch, grading: bool) -> str:
    if grading:
        monkeypatch.setenv("LABKIT_GRADING", "1")
    else:
        monkeypatch.delenv("LABKIT_GRADING", raising=False)
    with pytest.raises(CheckFailed) as failed:
        check_final_model(path, tier="fair", n=2000)
    return str(failed.value)


def test_one_check_cell_one_verdict_in_jupyter_and_under_the_grader(tmp_path, monkeypatch):
    path = _normal_called_a_mixture(tmp_path)
    in_jupyter = _verdict(path, monkeypatch, grading=False)
    under_grader = _verdict(path, monkeypatch, grading=True)
    assert in_jupyter == under_grader
    assert "harder target than the baseline's N(4, 0.5)" in in_jupyter
