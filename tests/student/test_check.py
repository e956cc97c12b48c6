"""``labkit check``: the grader's own result for one notebook (equal to ``labkit grade``'s row for the same hand-in),
and the list of what is still missing; also from the release copies the students' distribution ships."""
from __future__ import annotations

import contextlib
import csv
import io
import re
import sys
from pathlib import Path

import nbformat
import pytest

from labkit import cli
from labkit.notebook_format import release_notebook
from labkit.student.check import check_notebook
from tests.fixtures.grading import make_fixtures as fx

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "grading"
SOURCE = FIXTURES / "solutions"

# slow: checks and grades the reference notebook.
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits"),
              pytest.mark.slow]
CHECKS = ("square", "mean", "saved_model")


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    paths = {"solution": fx._folder(root, "solution", fx.toy_solution()),
             "release": fx._folder(root, "release", release_notebook(fx.toy_solution(), "toy"), model=None)}
    out = root / "grades"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["grade", "--source", str(SOURCE), "--assignment", "toy", "--out", str(out), "--no-progress",
                         "--jobs", "2", *[str(p) for p in paths.values()]]) == 0
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return paths, rows


def _same_as_row(result, row):
    grade = result.grade
    assert grade.status.value == row["status"]
    assert grade.auto_points == float(row["auto_points"]) and grade.auto_max == float(row["auto_max"])
    assert {cid: grade.checks[cid].points for cid in CHECKS} == {cid: float(row[cid]) for cid in CHECKS}


def test_reference_gets_full_marks_equal_to_grade_and_nothing_missing(submissions):
    paths, rows = submissions
    result = check_notebook(paths["solution"] / "toy.ipynb", source=SOURCE)
    _same_as_row(result, rows["solution"])
    assert result.grade.auto_points == 10
    assert "✔ saved_model  5 / 5" in result.text() and "Nothing missing" in result.text()


def test_release_gets_zero_equal_to_grade_and_lists_what_is_missing(submissions):
    paths, rows = submissions
    result = check_notebook(paths["release"] / "toy.ipynb", source=SOURCE)
    _same_as_row(result, rows["release"])
    assert result.grade.auto_points == 0
    text = result.text()
    assert "✘ saved_model  0 / 5  CheckFailed: No saved model" in text
    assert "answers not written: why_outliers" in text
    assert "model not saved next to the notebook: line_model.npy (read by saved_model)" in text
    assert text.count("still raises NotImplementedError") == 3


def test_command_with_the_release_copies_gives_the_graders_points(submissions, tmp_path, capsys):
    """In the students' distribution the check cells come from the release it ships, not from the solutions."""
    paths, rows = submissions
    copies = tmp_path / "releases"
    copies.mkdir()
    for name, nb in (("toy", fx.toy_solution()), ("other", fx.other_solution())):
        nbformat.write(release_notebook(nb, name), copies / f"{name}.ipynb")
    assert cli.main(["check", str(paths["solution"] / "toy.ipynb"), "--source", str(copies),
                     "--out", str(tmp_path / "kept")]) == 0
    out = capsys.readouterr().out
    assert f"toy: {float(rows['solution']['auto_points']):.6g} / 10 automatic points" in out
    for cid in CHECKS:
        assert re.search(rf"✔ {cid} +{float(rows['solution'][cid]):.6g} / ", out), cid
    assert (tmp_path / "kept" / "feedback" / "toy.md").is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
def test_check_refuses_a_symbolic_link_before_grading(tmp_path, capsys):
    """Issue 28: a saved model that links to /etc/shadow is neither copied nor graded; the student is told why."""
    folder = fx._folder(tmp_path, "sub", fx.toy_solution(), model=None)
    (folder / fx.MODEL_FILE).symlink_to("/etc/shadow")
    assert cli.main(["check", str(folder / "toy.ipynb"), "--source", str(SOURCE), "--out", str(tmp_path / "g")]) == 2
    err = capsys.readouterr().err
    assert f"labkit check: error: {folder / fx.MODEL_FILE} is a symbolic link (to /etc/shadow), not a file" in err
    assert not (tmp_path / "g").exists()   # refused before anything ran
