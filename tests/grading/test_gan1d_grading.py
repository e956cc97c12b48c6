"""`labkit grade` on the real 1D-GAN lab: the reference solution with its saved model gets every automatic
point (graded with --allow-reference-models: its model is the reference), the untouched student release gets
none, the grader restores the instructor's checks, and a saved "generator" that draws its own noise is refused
(issue 12); the quality check loads models as data. Without that option, a handed-in reference checkpoint
(the solution's own model, checkpoints/gan1d_laplace.pt copied to gan1d_final.pt, or a model derived from one) is flagged and its quality
checks get no points, in `labkit grade` and `labkit check` alike (issue 14)."""
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

from labkit import cli, loadModel, saveModel
from labkit.checks import CheckFailed
from labkit.checks.gan1d import check_final_model
from labkit.grading.sandbox import sandbox_works
from labkit.notebook_format import checks_in
from labkit.models.mlp import MLPGenerator
from labkit.student.check import check_notebook

REPO = Path(__file__).resolve().parents[2]
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

# slow: three `labkit grade` runs and a `labkit check` of the real lab.
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits"),
              pytest.mark.slow]




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
                         "--allow-reference-models", *sandbox, str(solution), str(release), str(cheat), str(noisy)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return code, rows, out


def _with_target(nb, target: str):
    """The notebook with its TARGET cell choosing ``target``."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "TARGET = distributions.get(" in cell.source:
            lines = cell.source.splitlines()
            cell.source = "\n".join(f'TARGET = distributions.get("{target}")' if line.startswith("TARGET =") else line
                                    for line in lines)
            return nb
    raise AssertionError("no TARGET cell in the solution")


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Graded without --allow-reference-models: the reference solution with its models, and a student who
    copied checkpoints/gan1d_laplace.pt to gan1d_final.pt with TARGET = laplace (the issue's example)."""
    subs = tmp_path_factory.mktemp("gan1d-reference-copies")
    solution = subs / "reference"
    solution.mkdir()
    for name in ("01_gan_1d.ipynb", "gan1d_final.pt", "gan1d_final_D.pt"):
        shutil.copy(SOLUTIONS / name, solution / name)
    copied = subs / "copied_laplace"
    copied.mkdir()
    nbformat.write(_with_target(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4), "laplace"),
                   copied / "01_gan_1d.ipynb")
    shutil.copy(REPO / "checkpoints" / "gan1d_laplace.pt", copied / "gan1d_final.pt")
    # The solution's own model moved by 2 % of its weights' size (as a short fine-tune moves it, issue 25: derived).
    derived = subs / "derived"
    derived.mkdir()
    shutil.copy(SOLUTIONS / "01_gan_1d.ipynb", derived / "01_gan_1d.ipynb")
    torch.manual_seed(5)
    model = loadModel(SOLUTIONS / "gan1d_final.pt")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn_like(p))
    saveModel(model, derived / "gan1d_final.pt", target="petitprince")
    out = tmp_path_factory.mktemp("gan1d-refused-grades")
    sandbox = [] if sandbox_works() else ["--unsafe-no-sandbox"]
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["grade", "--assignment", "01_gan_1d", "--out", str(out), "--no-progress", "--jobs", "2",
                         *sandbox, str(solution), str(copied), str(derived)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return code, rows, out, {"reference": solution, "copied_laplace": copied, "derived": derived}


CHECK_IDS = list(checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)))
QUALITY = [c for c in CHECK_IDS if "quality" in c]


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
    assert "gan1d_final.pt is the reference model checkpoints/gan1d_petitprince.pt (same weights); credited" in row["notes"]


def test_without_the_option_the_reference_solution_loses_its_quality_points(refused):
    _, rows, out, _ = refused
    row = rows["reference"]
    expected = sum(c["points"] for c in checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)).values())
    quality = sum(c["points"] for cid, c in checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb",
                                                                     as_version=4)).items() if cid in QUALITY)
    assert QUALITY == ["ex2_quality_fair", "ex2_quality_good"] and quality == pytest.approx(0.10)
    assert row["status"] == "ok", row["reason"]
    assert float(row["auto_points"]) == pytest.approx(expected - quality), row
    assert all(float(row[c]) == 0 for c in QUALITY)
    flags = row["flags"].split(" | ")
    # Only the files the checks grade are inspected (issue 28: a snapshot, read in a sandbox); the discriminator
    # gan1d_final_D.pt is graded by no check, so it is neither read nor flagged.
    assert flags == [
        "gan1d_final.pt is the reference model checkpoints/gan1d_petitprince.pt (same weights): a shipped or "
        "reference checkpoint, or a fine-tune of one, handed in as the group's own model earns no quality points "
        "(checks ex2_quality_fair, ex2_quality_good: 0 points)"]


def test_a_copied_laplace_checkpoint_is_flagged_and_gets_no_quality_points(refused):
    """The issue's example: on its own it passes both quality tiers (the check's own ✔ is kept in the message)."""
    _, rows, out, _ = refused
    row = rows["copied_laplace"]
    assert row["status"] == "ok", row["reason"]
    assert _results(out, "copied_laplace") == {c: ("failed" if c in QUALITY else "passed") for c in CHECK_IDS}
    assert all(float(row[c]) == 0 for c in QUALITY)
    assert row["flags"].startswith("gan1d_final.pt is the reference model checkpoints/gan1d_laplace.pt "
                                   "(same weights)") and " | " not in row["flags"]
    feedback = (out / "feedback" / "copied_laplace.md").read_text(encoding="utf-8")
    assert "## Models that are reference checkpoints" in feedback and "## Flagged for the instructor" not in feedback
    for cid in QUALITY:
        line = next(l for l in feedback.splitlines() if l.startswith(f"| {cid} |"))
        assert "no points: gan1d_final.pt, the model this check grades, is the reference model " \
               "checkpoints/gan1d_laplace.pt (same weights)" in line
        assert "the check itself: ✔" in line  # it passed: only the refusal took its points


def test_labkit_check_warns_and_gives_the_graders_points(refused):
    _, rows, _, folders = refused
    row = rows["copied_laplace"]
    result = check_notebook(folders["copied_laplace"] / "01_gan_1d.ipynb")
    assert result.grade.auto_points == pytest.approx(float(row["auto_points"]))
    assert {c: result.grade.checks[c].points for c in CHECK_IDS} == {c: float(row[c]) for c in CHECK_IDS}
    text = result.text()
    assert text.startswith("warning: gan1d_final.pt is checkpoints/gan1d_laplace.pt (same weights)")
    assert "Flagged for the instructor" in text


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
    with pytest.raises(CheckFailed, match=r"harder target than the baseline's N\(4, 0.5\)"):
        check_final_model(path, tier="fair")


def test_a_derived_model_gets_no_quality_points_in_grade_and_check_alike(refused):
    """A model a short way from a reference (within DERIVED_DISTANCE) is flagged as derived on both sides."""
    _, rows, _, folders = refused
    row = rows["derived"]
    assert row["status"] == "ok", row["reason"]
    assert all(float(row[c]) == 0 for c in QUALITY), row
    assert row["flags"].startswith("gan1d_final.pt is the reference model ") and "(derived from it: weights 0.0" in row["flags"]
    result = check_notebook(folders["derived"] / "01_gan_1d.ipynb")
    assert {c: result.grade.checks[c].points for c in CHECK_IDS} == {c: float(row[c]) for c in CHECK_IDS}
    assert result.text().startswith("warning: gan1d_final.pt is ") and "(derived)" in result.text().splitlines()[0]
