import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from labkit import cli
from labkit.checkpoint import Configurable, saveModel
from labkit.models.mlp import MLPGenerator


class TinyConditionalGenerator(Configurable):
    def __init__(self, latent_dim=4, n_classes=10):
        super().__init__()
        self.latent_dim, self.n_classes = latent_dim, n_classes
        self.embed = nn.Embedding(n_classes, 3)
        self.net = nn.Sequential(nn.Linear(latent_dim + 3, 784), nn.Tanh())

    def forward(self, z, labels):
        return self.net(torch.cat([z, self.embed(labels)], 1)).view(-1, 1, 28, 28)


def test_sample_1d_generator(tmp_path, capsys):
    saveModel(MLPGenerator(latent_dim=3, data_mean=4.0), tmp_path / "g.pt")
    assert cli.main(["sample", str(tmp_path / "g.pt"), "--n", "500", "--out", str(tmp_path / "s.npy"), "--seed", "3"]) == 0
    samples = np.load(tmp_path / "s.npy")
    assert samples.shape == (500,) and abs(samples.mean() - 4.0) < 2
    cli.main(["sample", str(tmp_path / "g.pt"), "--n", "500", "--out", str(tmp_path / "t.npy"), "--seed", "3"])
    np.testing.assert_array_equal(samples, np.load(tmp_path / "t.npy"))
    assert not (tmp_path / "s.labels.npy").exists()


def test_sample_conditional_image_generator_cycles_labels(tmp_path):
    saveModel(TinyConditionalGenerator(), tmp_path / "cg.pt")
    assert cli.main(["sample", str(tmp_path / "cg.pt"), "--n", "25", "--out", str(tmp_path / "x.npy")]) == 0
    images, labels = np.load(tmp_path / "x.npy"), np.load(tmp_path / "x.labels.npy")
    assert images.shape == (25, 28, 28) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(labels, np.arange(25) % 10)
    assert cli.main(["sample", str(tmp_path / "cg.pt"), "--n", "4", "--out", str(tmp_path / "y.npy"), "--label", "7"]) == 0
    assert not (tmp_path / "y.labels.npy").exists()


def test_sample_works_in_a_process_that_never_saw_the_class(tmp_path):
    saveModel(TinyConditionalGenerator(), tmp_path / "cg.pt")  # class lives in this test module only
    out = subprocess.run([sys.executable, "-m", "labkit", "sample", str(tmp_path / "cg.pt"), "--n", "3",
                          "--out", str(tmp_path / "z.npy")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "z.npy").shape == (3, 28, 28)


@pytest.mark.parametrize("args, message", [
    (["--n", "5", "--label", "3"], "not conditional"),
    (["--n", "0"], "positive number"),
])
def test_sample_bad_input_is_a_clear_error(tmp_path, capsys, args, message):
    saveModel(MLPGenerator(), tmp_path / "g.pt")
    assert cli.main(["sample", str(tmp_path / "g.pt"), "--out", str(tmp_path / "s.npy"), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_sample_missing_checkpoint(tmp_path, capsys):
    assert cli.main(["sample", str(tmp_path / "nope.pt"), "--n", "5", "--out", str(tmp_path / "s.npy")]) == 2
    assert "No checkpoint at" in capsys.readouterr().err


def test_label_out_of_range(tmp_path, capsys):
    saveModel(TinyConditionalGenerator(), tmp_path / "cg.pt")
    assert cli.main(["sample", str(tmp_path / "cg.pt"), "--n", "5", "--out", str(tmp_path / "s.npy"), "--label", "12"]) == 2
    assert "0..9" in capsys.readouterr().err


def test_release_check_passes_on_the_repository(capsys):
    assert cli.main(["release", "--check"]) == 0
    assert "fresh release" in capsys.readouterr().out


def test_a_name_that_looks_like_an_option_says_to_use_double_dash(tmp_path, capsys, monkeypatch):
    """Issue 28: a folder named -2+3 made `labkit grade ... *` fail as an unknown option, with no way out said."""
    monkeypatch.chdir(tmp_path)
    for argv in (["grade", "--assignment", "toy", "--out", "o", "-2+3"],
                 ["grade", "--assignment", "toy", "--out", "o", "a", "-2+3"]):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        assert exit_.value.code == 2
        assert "a file or folder name that starts with '-' goes after '--'" in capsys.readouterr().err
    parser = cli.build_parser()
    assert parser.parse_args(["grade", "--assignment", "toy", "--out", "o", "--", "-2+3", "--keep"]).submissions == [
        "-2+3", "--keep"]
    assert parser.parse_args(["pack", "--", "-x.ipynb"]).notebook == "-x.ipynb"
    assert parser.parse_args(["check", "--", "-x.ipynb"]).notebook == "-x.ipynb"


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits")
def test_grade_takes_a_folder_named_like_an_option_after_double_dash(tmp_path, monkeypatch):
    import csv
    from tests.fixtures.grading import make_fixtures as fx

    fixtures = fx.HERE   # tests/fixtures/grading
    fx._folder(tmp_path, "-2+3", fx.toy_solution())
    monkeypatch.chdir(tmp_path)
    # The sandbox is not what this test is about: the command line is.
    assert cli.main(["grade", "--source", str(fixtures / "solutions"), "--assignment", "toy", "--out", "out",
                     "--no-progress", "--unsafe-no-sandbox", "--", "-2+3"]) == 0
    with open(tmp_path / "out" / "grades.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert (row["submission"], row["status"], row["auto_points"], row["source"]) == ("'-2_3", "ok", "10", "'-2+3")
