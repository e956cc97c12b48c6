"""Refuse credit for handed-in models that are shipped or reference checkpoints: find them in a submission, and take
the points of the checks that grade them (the grader's stage between scan and score).

    references = ReferenceModels(ReferencePolicy.REFUSE)       # one per grading run: the index is built once, lazily
    record_reference_models(prepared, references, assignment)   # in prepare(), and again after the run
    refuse_reference_models(grade, prepared.references, assignment)  # in score(): those checks get no points

A model is a reference when :class:`~labkit.instructor.reference_models.ReferenceIndex` says so (the same weights,
or the same outputs on fixed noise, as ``checkpoints/*.pt`` or ``notebooks/solutions/*.pt``). The checks that
grade a model file are the check cells that name it (:func:`~.cells.files_read_by_checks`). The files are compared
before the run and again after it (a notebook could copy a reference into place while it runs). The course's own
solution is handed in with its reference models: ``labkit grade --allow-reference-models`` (and ``labkit check
--allow-reference-models``) then credits them and only notes the match.
"""
from __future__ import annotations

import threading
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from ..reference_models import MODEL_SUFFIXES, ReferenceIndex, ReferenceMatch
from .cells import files_read_by_checks

if TYPE_CHECKING:
    from .assignment import Assignment
    from .prepare import Prepared
    from .score import Grade

__all__ = ["ReferencePolicy", "ReferenceModels", "checks_reading", "record_reference_models",
           "refuse_reference_models", "allowed_note", "MAX_MODELS", "MAX_MODEL_BYTES"]

MAX_MODELS = 20                 # model files looked at per submission (the scan's limits)
MAX_MODEL_BYTES = 512 * 2**20


class ReferencePolicy(str, Enum):
    """What the grader does with a handed-in model that is a reference checkpoint."""

    REFUSE = "refuse"   # flag it; the checks that grade it get no points (students' hand-ins)
    ALLOW = "allow"     # note it and credit it: the course's own solution (--allow-reference-models)

    def __str__(self) -> str:
        return self.value


class ReferenceModels:
    """The reference index of one grading run (built on first use, once, whatever the number of threads)."""

    def __init__(self, policy: ReferencePolicy = ReferencePolicy.REFUSE, references: Optional[Sequence] = None):
        self.policy = ReferencePolicy(policy)
        self._references = references       # model files; None: checkpoints/ and notebooks/solutions/
        self._index: Optional[ReferenceIndex] = None
        self._lock = threading.Lock()

    @property
    def index(self) -> ReferenceIndex:
        with self._lock:
            if self._index is None:
                self._index = ReferenceIndex.build(self._references)
            return self._index

    def find(self, root: Path, workdir: Optional[Path] = None, graded: Sequence[str] = ()) -> List[ReferenceMatch]:
        """The model files in the copy ``root`` of a submission that are reference models, each named by its path
        relative to ``workdir`` (the notebook's folder, where the check cells look for them) when it is there.

        The ``graded`` files (names relative to ``workdir``) come first, so that no number of other files can
        push them past :data:`MAX_MODELS`. Read as data: nothing a submission holds runs. A submission without
        model files costs nothing (the index is not even built).
        """
        root = Path(root)
        workdir = Path(workdir) if workdir is not None else root
        first = [workdir / name for name in graded]
        others = [p for p in sorted(root.rglob("*")) if p.suffix in MODEL_SUFFIXES and p not in first]
        files = [p for p in first + others if p.is_file() and not p.is_symlink()
                 and p.stat().st_size <= MAX_MODEL_BYTES][:MAX_MODELS]
        found = []
        for path in files:
            match = self.index.match(path)
            if match:
                found.append(ReferenceMatch(_relative(path, root, workdir), match.reference, match.how))
        return found


def _relative(path: Path, root: Path, workdir: Optional[Path]) -> str:
    base = workdir if workdir is not None and Path(workdir) in path.parents else root
    return path.relative_to(base).as_posix()


def checks_reading(assignment: "Assignment") -> Dict[str, List[str]]:
    """file -> ids of the assignment's check cells that grade that model file (they name it)."""
    return files_read_by_checks(assignment.solution)


def record_reference_models(prepared: "Prepared", references: ReferenceModels, assignment: "Assignment") -> None:
    """Compare the submission's model files with the references: a match is kept in ``prepared.references`` (to be
    refused) or, when allowed, noted. Called before the run and after it; a file already found is not repeated."""
    found = references.find(prepared.root, prepared.workdir, graded=list(checks_reading(assignment)))
    if references.policy is ReferencePolicy.ALLOW:
        prepared.notes += [note for note in map(allowed_note, found) if note not in prepared.notes]
    else:
        prepared.references += [m for m in found if m not in prepared.references]


def allowed_note(match: ReferenceMatch) -> str:
    """The note for a reference model credited under ``--allow-reference-models``."""
    return (f"{match.file} is the reference model {match.reference} ({match.how}); credited because the grader "
            "was told --allow-reference-models (the course's own solution)")


def refuse_reference_models(grade: "Grade", matches: List[ReferenceMatch], assignment: "Assignment") -> None:
    """Flag each match; the checks that grade its file get no points, whatever they gave (``grade`` in place)."""
    from .score import CheckState

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
                             f"{match.reference} ({match.how}), not one the group trained{before}")
