"""Turn one submission into the notebook that runs: intake, restore, scan, reference models and build (prepare).

Each stage is its own module (:mod:`~labkit.grading.intake`,
:mod:`~labkit.grading.restore`, :mod:`~labkit.grading.scan`,
:mod:`~labkit.grading.references`, :mod:`~labkit.grading.build`); this one runs them
on one submission and keeps what they found in a :class:`Prepared`. Nothing here touches the submission itself:
everything happens on copies.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from .fingerprints import MODEL_SUFFIXES
from .types import ReferenceMatch
from .assignment import Assignment
from .build import CellRole, Role, build_notebook
from .cells import first_line
from .intake import Invalid, check_same_assignment, copy_submission, find_notebook, read_notebook, remove_shadowing
from .inspection import MODELS_DIR, inspect_models, snapshot_models, snapshot_paths
from .references import ReferenceModels, checks_reading, record_reports
from .restore import Restored, restore_cells, written_answers
from .run import seen_at
from .types import Limits
from .sandbox import Sandbox
from .scan import scan_code
from .types import Status

__all__ = ["Prepared", "prepare"]


@dataclass
class Prepared:
    submission: str                      # short name, unique in the run
    source: Path                         # what was handed in
    status: Optional[Status] = None      # Status.INVALID when it cannot be run
    reason: str = ""
    root: Optional[Path] = None          # the copy of the submission (the sandbox's writable folder)
    workdir: Optional[Path] = None       # the kernel's working folder: the notebook's folder in the copy
    notebook_name: str = ""
    graded: object = None                # the notebook to run
    roles: List[CellRole] = field(default_factory=list)   # one per code cell of ``graded``
    flags: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)    # check cells restored, files left out...
    answers: Dict[str, Optional[str]] = field(default_factory=dict)
    references: List[ReferenceMatch] = field(default_factory=list)  # models refused as reference models
    models: Optional[Path] = None        # the read-only snapshot of the graded model files, outside the copy


def _intake(assignment: Assignment, path: Path, workdir: Path, notes: List[str]):
    """Copy the submission to ``workdir``; its notebook's path and content (or :class:`Invalid`)."""
    workdir.mkdir(parents=True)
    copy_submission(path, workdir, notes)
    notebook = find_notebook(workdir, assignment.name)
    nb = read_notebook(notebook)
    check_same_assignment(assignment, nb)
    return notebook, nb


def _student_code_flags(assignment: Assignment, restored: Restored) -> List[str]:
    """The scan's findings in every code cell that is not the instructor's, each naming its cell."""
    flags = []
    for position, cell in enumerate(restored.cells):
        if position in restored.protected or cell.cell_type != "code":
            continue
        where = f"cell {restored.origins[position] + 1} (`{first_line(cell.source)}`)"
        flags += [f"{where}: {finding}" for finding in scan_code(assignment, cell.source)]
    return flags


def prepare(assignment: Assignment, path, name: str, workroot: Path, references: Optional[ReferenceModels] = None,
            sandbox: Optional[Sandbox] = None, limits: Optional[Limits] = None) -> Prepared:
    """Copy, validate and restore one submission; ``status`` is ``Status.INVALID`` when it cannot run.

    ``references``: the grading run's reference models (None: handed-in models are not inspected). The graded
    model files are snapshot and inspected in ``sandbox`` under ``limits``, as the run itself will be.
    """
    path = Path(path)
    prepared = Prepared(submission=name, source=path)
    workdir = Path(workroot) / name
    try:
        notebook, nb = _intake(assignment, path, workdir, prepared.notes)
    except Invalid as exc:
        prepared.status, prepared.reason = Status.INVALID, str(exc)
        return prepared
    prepared.root, prepared.workdir = workdir, notebook.parent
    prepared.notebook_name = str(notebook.relative_to(workdir))
    remove_shadowing(notebook.parent, prepared.flags, prepared.notes)
    graded_files = list(checks_reading(assignment))
    prepared.models = Path(workroot) / f"{name}.models"   # beside the copy, never inside it
    copied = snapshot_models(prepared.workdir, graded_files, prepared.models, prepared.notes)
    saved_models = [n for n in copied if n.endswith(MODEL_SUFFIXES)]   # torch files; .npy and the like are data
    if references is not None and saved_models:
        reports = inspect_models(prepared.models, saved_models, references.index, limits or Limits(), sandbox,
                                 Path(workroot) / "inspection")
        record_reports(prepared, reports, references.policy)
    restored = restore_cells(assignment, nb)
    prepared.notes += restored.notes
    prepared.flags += _student_code_flags(assignment, restored)
    prepared.answers = written_answers(assignment, nb)
    prepared.graded, prepared.roles = build_notebook(assignment, restored)
    _read_the_snapshot(prepared, graded_files, seen_at(sandbox, prepared.models, MODELS_DIR))
    return prepared


def _read_the_snapshot(prepared: Prepared, names: List[str], models_dir: str) -> None:
    """The check cells read the graded files from the snapshot, not from the copy the notebook may change."""
    code = [cell for cell in prepared.graded.cells if cell.cell_type == "code"]
    for cell, role in zip(code, prepared.roles):
        if role.role is Role.CHECK:
            cell.source = snapshot_paths(cell.source, names, models_dir)
