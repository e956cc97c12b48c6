"""Grade a real lab's reference solution (with its saved models) and its untouched release in one `labkit grade`
(with --allow-reference-models: the solution's models are the reference checkpoints)."""
from __future__ import annotations

import contextlib
import csv
import io
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "notebooks" / "solutions"


def grade_reference_and_release(assignment: str, model_files, workdir: Path):
    """Returns (exit code, {submission: csv row}, grades folder) for 'reference' and 'untouched_release'."""
    from labkit import cli

    subs = workdir / "submissions"
    reference = subs / "reference"
    reference.mkdir(parents=True)
    for name in (f"{assignment}.ipynb", *model_files):
        shutil.copy(SOLUTIONS / name, reference / name)
    shutil.copy(REPO / "READ_ME.txt", reference / "READ_ME.txt")
    release = subs / "untouched_release.ipynb"
    shutil.copy(REPO / "notebooks" / f"{assignment}.ipynb", release)
    out = workdir / "grades"
    with contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["grade", "--assignment", assignment, "--out", str(out), "--no-progress", "--jobs", "2",
                         "--allow-reference-models", str(reference), str(release)])
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    return code, rows, out


def assert_reference_gets_every_point(rows, assignment: str) -> None:
    """The reference solution's row: status ok, every automatic point of its check cells, no flag."""
    import nbformat
    import pytest

    from labkit.notebook_format import checks_in

    row = rows["reference"]
    expected = sum(c["points"] for c in checks_in(nbformat.read(SOLUTIONS / f"{assignment}.ipynb", as_version=4)).values())
    assert row["status"] == "ok", row["reason"]
    assert float(row["auto_points"]) == pytest.approx(expected) == pytest.approx(float(row["auto_max"])), row
    assert row["flags"] == "", row["flags"]


def assert_release_gets_zero(rows, out: Path) -> None:
    """The untouched release's row: an error with zero points, and feedback that says where it stopped."""
    row = rows["untouched_release"]
    assert row["status"] == "error" and float(row["auto_points"]) == 0, row
    assert "NotImplementedError" in (out / "feedback" / "untouched_release.md").read_text(encoding="utf-8")
