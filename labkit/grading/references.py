"""Refuse credit for handed-in models that are shipped or reference checkpoints, or fine-tunes of them: keep what
the sandboxed inspection found, and take the points of the checks that grade such a file.

    references = ReferenceModels(ReferencePolicy.REFUSE)          # one per grading run: index and pack built once
    record_reports(prepared, reports, references.policy)            # in prepare(), from inspection.inspect_models
    refuse_reference_models(grade, prepared.references, assignment)  # in score(): those checks get no points

A model is a reference when :class:`~labkit.grading.fingerprints.ReferenceIndex` says so (the same canonical
weights, weights within a fine-tune's distance, or the same outputs on fixed noise as ``checkpoints/*.pt`` or
``notebooks/solutions/*.pt``). The checks that grade a model file are the check cells that name it
(:func:`~.cells.files_read_by_checks`); they read the snapshot taken before the run, so what a notebook copies
into place while it runs is never graded. The course's own solution is handed in with its reference models:
``labkit grade --allow-reference-models`` (and ``labkit check --allow-reference-models``) then credits them and
only notes the match.
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from .fingerprints import ReferenceIndex
from .types import ReferencePolicy
from .types import ReferenceMatch
from .cells import files_read_by_checks

if TYPE_CHECKING:
    from .assignment import Assignment
    from .inspection import ModelReport
    from .prepare import Prepared
    from .types import Grade

__all__ = ["ReferenceModels", "checks_reading", "record_reports", "refuse_reference_models",
           "allowed_note"]


class ReferenceModels:
    """The reference index of one grading run (built once, on first use, whatever the number of threads), from
    the reference model files, or read from a saved index (``index_folder``: the autograder's, which ships no
    reference model)."""

    def __init__(self, policy: ReferencePolicy = ReferencePolicy.REFUSE, references: Optional[Sequence] = None,
                 index_folder: Optional[Path] = None):
        self.policy = ReferencePolicy(policy)
        self._references = references       # model files; None: checkpoints/ and notebooks/solutions/
        self._index_folder = index_folder
        self._index: Optional[ReferenceIndex] = None
        self._lock = threading.Lock()

    @property
    def index(self) -> ReferenceIndex:
        with self._lock:
            if self._index is None and self._index_folder is not None:
                self._index = ReferenceIndex.read(self._index_folder)
            elif self._index is None:
                self._index = ReferenceIndex.build(self._references)
            return self._index


def checks_reading(assignment: "Assignment") -> Dict[str, List[str]]:
    """file -> ids of the assignment's check cells that grade that model file (they name it)."""
    return files_read_by_checks(assignment.solution)


def record_reports(prepared: "Prepared", reports: Dict[str, "ModelReport"], policy: ReferencePolicy) -> None:
    """Keep what the inspection of the graded files found: references to refuse (or, when allowed, to note),
    random-drawing generators and stopped inspections as flags."""
    for report in reports.values():
        prepared.flags += report.flags()
        if report.problem and report.problem.startswith("reading this file was stopped"):
            prepared.flags.append(f"{report.file}: {report.problem}")
        if report.match is None:
            continue
        if policy is ReferencePolicy.ALLOW:
            note = allowed_note(report.match)
            if note not in prepared.notes:
                prepared.notes.append(note)
        elif report.match not in prepared.references:
            prepared.references.append(report.match)


def allowed_note(match: ReferenceMatch) -> str:
    """The note for a reference model credited under ``--allow-reference-models``."""
    return (f"{match.file} is the reference model {match.reference} ({match.describe()}); credited because the grader "
            "was told --allow-reference-models (the course's own solution)")


def refuse_reference_models(grade: "Grade", matches: List[ReferenceMatch], assignment: "Assignment") -> None:
    """Flag each match; the checks that grade its file get no points, whatever they gave (``grade`` in place)."""
    from .types import CheckState

    readers = checks_reading(assignment)
    for match in matches:
        ids = [cid for cid in readers.get(match.file, []) if cid in grade.checks]
        flag = match.flag()
        if ids:
            flag += f" (checks {', '.join(ids)}: 0 points)"
        grade.flags.append(flag)
        grade.references.append(match)
        for cid in ids:
            check = grade.checks[cid]
            before = f"; the check itself: {check.message}" if check.message else ""
            check.points, check.state = 0.0, CheckState.FAILED
            check.message = (f"no points: {match.file}, the model this check grades, is the reference model "
                             f"{match.reference} ({match.describe()}), not one the group trained{before}")
