"""`labkit grade` on the real 1D-GAN lab: the reference solution with its saved model gets every automatic
point, the untouched student release gets none, the grader restores the instructor's checks, and a saved
"generator" that draws its own noise is refused (issue 12); the quality check loads models as data."""
from __future__ import annotations

import contextlib
import csv
import io
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest
import torch

from labkit import cli, saveModel
from labkit.checks import CheckFailed
from labkit.checks.gan1d import check_final_model
from labkit.instructor.grading.sandbox import sandbox_works
from labkit.instructor.release import checks_in
from labkit.models.mlp import MLPGenerator

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "notebooks" / "solutions"

# A "generator" whose forward draws its own noise, its class in a module of the submission (issue 12).
NOISY_MODULE = textwrap.dedent("""
    import torch
    from torch import nn

    class NoisyGenerator(nn.Module):
        latent_dim = 8

        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.zeros(1))

        def forward(self, z):  # exactly the Petit Prince, ½ N(4.0, 1.5) + ½ N(0.6, 1.35), from noise of its own
            one = z[:, :1]
            pick = (torch.rand_like(one) < 0.5).float()
            draws = pick * (4.0 + 1.5 * torch.randn_like(one)) + (1 - pick) * (0.6 + 1.35 * torch.randn_like(one))
            return draws + self.scale * one
""")


def _noisy_generator(folder: Path, target="petitprince") -> Path:
    (folder / "noisy_gen.py").write_text(NOISY_MODULE, encoding="utf-8")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from noisy_gen import NoisyGenerator; "
              "from labkit import saveModel; saveModel(NoisyGenerator(), sys.argv[1] + '/gan1d_final.pt', "
              f"target={target!r})")
    subprocess.run([sys.executable, "-c", script, str(folder)], check=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return folder / "gan1d_final.pt"

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits")




@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    subs = tmp_path_factory.mktemp("gan1d-submissions")
    solution = subs / "reference"
    solution.mkdir()
    for name in ("01_gan_1d.ipynb", "gan1d_final.pt", "gan1d_final_D.pt"):
        shutil.copy(SOLUTIONS / name, solution / name)
    shutil.copy(REPO / "READ_ME.txt", solution / "READ_ME.txt")
    release = subs / "untouched_release.ipynb"
    shutil.copy(REPO / "notebooks" / "01_gan_1d.ipynb", release)
    # The student's copy of the quality check is edited to pass; the grader must use the instructor's.
    cheat = subs / "cheater"
    cheat.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_gan_1d.ipynb", as_version=4)
    for cell in nb.cells:
        if cell.get("metadata", {}).get("labkit", {}).get("check"):
            cell.source = "print('all good')"
    nbformat.write(nb, cheat / "01_gan_1d.ipynb")
    # The reference notebook, handed in with a saved "generator" that samples the Petit Prince itself.
    noisy = subs / "noisy_generator"
    shutil.copytree(solution, noisy)
    _noisy_generator(noisy)
    out = tmp_path_factory.mktemp("gan1d-grades")
    sandbox = [] if sandbox_works() else ["--unsafe-no-sandbox"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["grade", "--assignment", "01_gan_1d", "--out", str(out), "--no-progress", "--jobs", "2",
                         *sandbox, str(solution), str(release), str(cheat), str(noisy)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return code, rows, out


CHECK_IDS = list(checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)))


def _results(out, name):
    """check id -> "passed" / "failed" / "not run", from the feedback's table of checks."""
    results = {}
    for line in (out / "feedback" / f"{name}.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in CHECK_IDS:
            results[cells[0]] = cells[2].split(" ", 1)[1]
    return results


def test_reference_solution_gets_every_automatic_point(graded):
    _, rows, _ = graded
    row = rows["reference"]
    expected = sum(c["points"] for c in checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)).values())
    assert row["status"] == "ok", row["reason"]
    assert row["flags"] == ""  # the course's own code is not "notebook code" to the guard
    assert float(row["auto_max"]) == pytest.approx(expected)
    assert float(row["auto_points"]) == pytest.approx(expected), row
    assert float(row["manual_max"]) == pytest.approx(0.3)


def test_untouched_release_gets_zero(graded):
    _, rows, out = graded
    row = rows["untouched_release"]
    assert (row["status"], float(row["auto_points"]), row["flags"]) == ("error", 0, "")
    assert "NotImplementedError" in row["reason"]  # the TODO cells, which ran to the end
    assert _results(out, "untouched_release") == {c: "failed" for c in CHECK_IDS}
    feedback = (out / "feedback" / "untouched_release.md").read_text()
    assert "NotImplementedError" in feedback


def test_edited_check_cells_are_restored(graded):
    # Every check cell was replaced by print('all good'): the instructor's checks ran instead and failed.
    _, rows, out = graded
    row = rows["cheater"]
    assert (row["status"], float(row["auto_points"]), row["flags"]) == ("error", 0, "")
    assert "NotImplementedError" in row["reason"]
    assert row["notes"].count("was edited in the submission; the original was used") == len(CHECK_IDS)
    assert _results(out, "cheater") == {c: "failed" for c in CHECK_IDS}


def test_a_generator_that_draws_its_own_noise_gets_no_quality_points(graded):
    _, rows, out = graded
    row = rows["noisy_generator"]
    quality = {c for c in CHECK_IDS if "final" in c or "quality" in c}
    expected = {c: ("failed" if c in quality else "passed") for c in CHECK_IDS}
    assert quality and _results(out, "noisy_generator") == expected
    assert row["status"] == "ok", row["reason"]
    assert row["flags"].startswith("gan1d_final.pt: the exported generator draws random numbers of its own (")
    assert " | " not in row["flags"]
    assert "draws random numbers of its own" in (out / "feedback" / "noisy_generator.md").read_text(encoding="utf-8")


def test_the_quality_check_loads_models_as_data(tmp_path, monkeypatch):
    """In-process, as in a graded kernel (LABKIT_GRADING=1): no code from the submission, canonical targets."""
    monkeypatch.setenv("LABKIT_GRADING", "1")
    with pytest.raises(CheckFailed, match="draws random numbers of its own"):
        check_final_model(_noisy_generator(tmp_path), tier="fair", target="petitprince")
    assert "noisy_gen" not in sys.modules
    # A hand-set MLP that is N(4, 0.5), saved as a "mixture" of the normal alone: not a harder target.
    G = MLPGenerator(latent_dim=1, hidden=(1,), activation="relu", data_mean=4.0, data_std=0.5)
    with torch.no_grad():
        G.net[0].weight.fill_(1.0), G.net[0].bias.fill_(10.0), G.net[2].weight.fill_(1.0), G.net[2].bias.fill_(-10.0)
    path = saveModel(G, tmp_path / "normal.pt", target={"normal": 1})
    with pytest.raises(CheckFailed, match="harder target than the baseline's normal"):
        check_final_model(path, tier="fair")
