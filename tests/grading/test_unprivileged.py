"""Grading as an unprivileged user where bubblewrap cannot run (a Gradescope container): the run's command goes
through setpriv without capabilities, its own folders belong to that user, the snapshot of the graded models is
read-only, and a root-only file stays unreadable to the notebook."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.grading.unprivileged import UnprivilegedUser, find_unprivileged_user

NOBODY = 65534
root_only = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                               reason="needs root and setpriv (util-linux) to switch users")


def _user() -> UnprivilegedUser:
    return UnprivilegedUser("nobody", NOBODY, NOBODY, shutil.which("setpriv"))


@root_only
def test_the_command_drops_to_the_user_and_gives_it_only_its_folders(tmp_path):
    folders = [tmp_path / name for name in ("submission", "notebook", "private", "models")]
    for folder in folders:
        folder.mkdir()
    (tmp_path / "models" / "g.pt").write_bytes(b"x")
    command = _user().command(["python", "-c", "pass"], *folders[:3], readonly=[(folders[3], "/grading/models")])
    assert command[0].endswith("setpriv") and f"--reuid={NOBODY}" in command and "--no-new-privs" in command
    assert command[-3:] == ["python", "-c", "pass"]
    assert all(f.stat().st_uid == NOBODY for f in folders[:3])
    assert (tmp_path / "models" / "g.pt").stat().st_uid == 0 and oct((tmp_path / "models" / "g.pt").stat().st_mode)[-3:] == "444"


def _python_reachable_by_nobody() -> bool:
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return False
    done = subprocess.run([shutil.which("setpriv"), f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                           sys.executable, "-c", "import labkit, subprocess, sys; "
                           "subprocess.run([sys.executable, '-c', 'pass'], check=True)"], capture_output=True)
    return done.returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _python_reachable_by_nobody(),
                    reason="this Python (or labkit) is not readable by an unprivileged user here (a home folder "
                           "closed to others); on Gradescope the kit is installed in /opt")
def test_a_graded_run_as_the_user_cannot_read_root_only_files(tmp_path):
    from labkit.grading.assignment import load_assignment
    from labkit.grading.batch import grade_submissions
    from labkit.grading.types import Limits
    from tests.fixtures.grading import make_fixtures as fixtures

    fixtures_dir = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
    secret = tmp_path / "instructor" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("solution")
    secret.parent.chmod(0o700)
    probe = f"try:\n    open({str(secret)!r}).read()\n    print('READ')\nexcept OSError:\n    print('DENIED')"
    solution = fixtures._folder(tmp_path / "subs", "solution", fixtures._insert_after_setup(fixtures.toy_solution(),
                                                                                           probe))
    assignment = load_assignment("toy", fixtures_dir / "solutions")
    grades = grade_submissions(assignment, [solution], tmp_path / "out", Limits(), sandbox=_user(), progress=False,
                               log=lambda *_: None)
    assert grades[0].auto_points == grades[0].auto_max, (grades[0].reason, grades[0].notes)
    log = (tmp_path / "out" / "logs" / "solution.log").read_text()
    assert "DENIED" in log and "READ\\n" not in log


def test_no_user_is_found_without_root_or_the_user(monkeypatch):
    assert find_unprivileged_user("no-such-user-here") is None
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert find_unprivileged_user("nobody") is None
