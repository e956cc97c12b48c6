"""``labkit check``: what the grader will give one notebook: each check's points or message, then what is still
missing (answers, saved models, TODOs).

    labkit check notebooks/01_gan_1d.ipynb

It grades the hand-in ``labkit pack`` would build (the notebook, the model files it names, its own
modules, READ_ME.txt) with the grader itself (:func:`labkit.grading.batch.grade_submissions`),
in quick mode, with the course's check cells and the grader's limits, so its points are the ones
``labkit grade`` gives that hand-in; a saved model that is a shipped or reference checkpoint gets the same
warning and no points from it (``--allow-reference-models``, for the instructor's own solution, as in
``labkit grade``). In the students' distribution the check cells come from the release
copies it ships; in the course's repository from the solutions, as for ``labkit grade``.
"""
from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

from ..grading.assignment import load_assignment
from ..grading.batch import grade_submissions
from ..grading.options import DEFAULTS
from ..grading.references import ReferenceModels
from ..grading.preflight import preflight
from ..grading.sandbox import SandboxUnavailable, find_sandbox
from ..grading.types import CheckState, Grade, ReferencePolicy
from ..course import assignment_source
from .handin import HandIn, read_hand_in

__all__ = ["NotebookCheck", "check_notebook"]

_MARK = {CheckState.PASSED: "✔", CheckState.FAILED: "✘", CheckState.NOT_RUN: "–"}


@dataclass
class NotebookCheck:
    """The grader's result for one notebook, and what its hand-in still lacks."""

    grade: Grade
    hand_in: HandIn
    sandboxed: bool

    def warnings(self) -> List[str]:
        """What the student must fix before handing in, whatever the points: models that are not their own."""
        return [f"{m.file} is {m.reference} ({m.how}), a checkpoint the course ships or a reference model: "
                "the grader gives the checks that grade it no points. Hand in the model your group trained "
                "(a full run, QUICK = False, saves it)." for m in self.grade.references]

    def missing(self) -> List[str]:
        hand_in, lines = self.hand_in, []
        if hand_in.unanswered:
            lines.append("answers not written: " + ", ".join(hand_in.unanswered))
        for name in hand_in.missing:
            readers = ", ".join(hand_in.graded_files[name])
            lines.append(f"model not saved next to the notebook: {name} (read by {readers})")
        for todo in hand_in.todos:
            lines.append(f"cell {todo.cell} (`{todo.first_line}`) still raises NotImplementedError: {todo.hint}")
        return lines

    def text(self) -> str:
        g = self.grade
        head = (f"{self.hand_in.name}: {g.auto_points:.6g} / {g.auto_max:.6g} automatic points "
                f"(status {g.status.value}: {g.reason})")
        if g.manual_max:
            head += f"; the written answers ({g.manual_max:.6g} points) are graded by hand"
        width = max((len(cid) for cid in g.checks), default=0)
        lines = [f"warning: {w}" for w in self.warnings()] + [head, ""]
        for cid, check in g.checks.items():
            points = f"{check.points:.6g} / {check.max:.6g}"
            lines.append(f"  {_MARK[check.state]} {cid:<{width}}  {points}  {check.message}")
        missing = self.missing()
        lines += ["", "Still missing:" if missing else "Nothing missing: every answer written, every graded model "
                  "saved, no TODO left."] + [f"  - {line}" for line in missing]
        if g.flags:
            lines += ["", "Flagged for the instructor:"] + [f"  - {flag}" for flag in g.flags]
        if g.errors:
            lines += ["", "Errors while running:"]
            lines += [f"  - {e.where}: {(e.error.splitlines() or [''])[0][:200]}" for e in g.errors]
        if not self.sandboxed:
            lines += ["", "(run without the grader's sandbox: bubblewrap is not available here; the points are "
                          "the same for a notebook that only does its work)"]
        return "\n".join(lines)


def check_notebook(notebook, source: Optional[Path] = None, out: Optional[Path] = None,
                   references: ReferencePolicy = ReferencePolicy.REFUSE) -> NotebookCheck:
    """Grade ``notebook``'s hand-in as ``labkit grade`` would; keep grades.csv and the feedback in ``out`` if given.

    ``references``: what to do with a saved model that is a reference checkpoint, as ``labkit grade``'s
    ``--allow-reference-models`` (ALLOW) or its default (REFUSE).
    """
    hand_in = read_hand_in(notebook, source)
    assignment = load_assignment(hand_in.name, Path(source) if source else assignment_source())
    try:
        sandbox = find_sandbox()
    except SandboxUnavailable:
        sandbox = None  # the student's own notebook on the student's own machine
    limits = DEFAULTS   # the limits `labkit grade` uses by default, from their one home
    preflight(limits, sandbox)  # PreflightFailed says what this environment lacks, before any point is given
    with tempfile.TemporaryDirectory(prefix="labkit-check-") as tmp:
        folder = Path(tmp) / hand_in.notebook.stem
        folder.mkdir()
        for name in hand_in.payload + (["READ_ME.txt"] if (hand_in.folder / "READ_ME.txt").is_file() else []):
            shutil.copy2(hand_in.folder / name, folder / name)
        grades = grade_submissions(assignment, [folder], Path(out) if out else Path(tmp) / "grades",
                                   limits, jobs=1, progress=False, log=lambda *_: None,
                                   sandbox=sandbox, references=ReferenceModels(references))
    return NotebookCheck(grades[0], hand_in, sandboxed=sandbox is not None)
