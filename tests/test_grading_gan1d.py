"""`labkit grade` on the real 1D-GAN lab: the reference solution with its saved model gets every automatic
point, the untouched student release gets none, and the grader restores the instructor's checks."""
from __future__ import annotations

import contextlib
import csv
import io
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import cli
from labkit.instructor.release import checks_in

REPO = Path(__file__).resolve().parent.parent
SOLUTIONS = REPO / "notebooks" / "solutions"

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
    out = tmp_path_factory.mktemp("gan1d-grades")
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["grade", "--assignment", "01_gan_1d", "--out", str(out), "--no-progress", "--jobs", "2",
                         str(solution), str(release), str(cheat)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return code, rows, out


def test_reference_solution_gets_every_automatic_point(graded):
    _, rows, _ = graded
    row = rows["reference"]
    expected = sum(c["points"] for c in checks_in(nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)).values())
    assert row["status"] == "ok", row["reason"]
    assert float(row["auto_max"]) == pytest.approx(expected)
    assert float(row["auto_points"]) == pytest.approx(expected), row
    assert float(row["manual_max"]) == pytest.approx(0.3)


def test_untouched_release_gets_zero(graded):
    _, rows, out = graded
    row = rows["untouched_release"]
    assert float(row["auto_points"]) == 0
    feedback = (out / "feedback" / "untouched_release.md").read_text()
    assert "NotImplementedError" in feedback


def test_edited_check_cells_are_restored(graded):
    _, rows, _ = graded
    assert float(rows["cheater"]["auto_points"]) == 0
