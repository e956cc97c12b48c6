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
