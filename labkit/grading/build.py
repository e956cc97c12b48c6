"""Build the notebook that runs: an init cell, and a guard cell before each (unchanged) check cell.

The init cell (before any student code) imports what the check cells use and records the
genuine objects; each guard cell puts back what notebook code replaced (see
:mod:`labkit.grading.inside.guard`). Check cells run exactly as the instructor wrote them:
nothing in them, or anywhere in the kernel, tells a pass from a fail; the pytest plugin reads
that from the kernel's execute reply, outside the kernel. Every code cell of the result has a
:class:`CellRole`, in the order nbval numbers them.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from enum import Enum
from typing import List, Optional, Tuple

import nbformat

from .assignment import Assignment
from ..notebook_format import cell_tags, labkit_meta
from .cells import CellKey, first_line
from .restore import Restored

__all__ = ["Role", "CellRole", "build_notebook", "GUARD_MODULE"]

GUARD_MODULE = f"{__package__}.inside.guard"   # imported inside the graded kernel


class Role(str, Enum):
    """What a code cell of the graded notebook is."""

    INIT = "init"           # the grader's first cell
    GUARD = "guard"         # the grader's cell before each check cell (and one at the end)
    CHECK = "check"         # the instructor's check cell
    STANDARD = "standard"   # the instructor's parameters or setup cell
    STUDENT = "student"     # everything else

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class CellRole:
    """The role of one code cell of the graded notebook, and where it came from."""

    role: Role
    check: Optional[str] = None   # the check id (CHECK, and GUARD before a check)
    cell: Optional[int] = None    # 1-based number of the cell in the submission (None: added by the grader)
    tag: Optional[str] = None     # the tag of a STANDARD cell
    line: str = ""                # the cell's first line, to name it in messages

    def where(self) -> str:
        """How a message names the cell: ``check 'mean'``, ``cell 7 (`for i in ...`)`` ..."""
        if self.role is Role.CHECK:
            return f"check {self.check!r}"
        if self.role is Role.STANDARD:
            return f"the standard cell {self.tag!r}"
        if self.role is Role.INIT:
            return "the grader's first cell"
        if self.role is Role.GUARD:
            return "a grader cell"
        return f"cell {self.cell} (`{self.line}`)" if self.cell else f"a cell (`{self.line}`)"


def _grader_cell(source: str, role: Role, **meta):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["labkit_grading"] = {"role": role.value, **meta}
    cell.pop("id", None)
    return cell


def _guard_call(call: str) -> str:
    return f"import {GUARD_MODULE} as __labkit_guard__\n__labkit_guard__.{call}\ndel __labkit_guard__"


def _init_cell(assignment: Assignment):
    source = ("# Added by labkit grade: records the genuine check helpers before any notebook code runs.\n"
              + _guard_call(f"init(imports={assignment.imports!r}, aliases={[list(a) for a in assignment.aliases]!r})"))
    return _grader_cell(source, Role.INIT)


def _check_cells(cell, key: CellKey, number: Optional[int]):
    """The guard cell and the check cell, with their roles."""
    cid = key.name
    guard = _grader_cell(_guard_call(f"before_check({cid!r})"), Role.GUARD, check=cid)
    check = _grader_cell(cell.source.rstrip(), Role.CHECK, check=cid)
    check.metadata["labkit"] = dict(labkit_meta(cell))
    return [(guard, CellRole(Role.GUARD, check=cid)),
            (check, CellRole(Role.CHECK, check=cid, cell=number, line=first_line(cell.source)))]


def _plain_cell(cell, key: Optional[CellKey], number: Optional[int]):
    """A student's or a standard cell, without outputs and without nbval's own tags."""
    role = Role.STANDARD if key else Role.STUDENT
    run = copy.deepcopy(cell)
    run.outputs = []
    run.execution_count = None
    run.pop("id", None)
    run.metadata = {"tags": [t for t in cell_tags(cell) if not t.startswith(("nbval", "raises-exception"))],
                    "labkit_grading": {"role": role.value}}
    return run, CellRole(role, cell=number, tag=key.name if key else None, line=first_line(cell.source))


def build_notebook(assignment: Assignment, restored: Restored) -> Tuple[object, List[CellRole]]:
    """The notebook to run and the role of each of its code cells (nbval numbers code cells only)."""
    pairs = [(_init_cell(assignment), CellRole(Role.INIT))]
    for position, cell in enumerate(restored.cells):
        if cell.cell_type != "code":
            continue
        key = restored.protected.get(position)
        origin = restored.origins[position]
        number = None if origin is None else origin + 1
        if key and key.is_check:
            pairs += _check_cells(cell, key, number)
        else:
            pairs.append(_plain_cell(cell, key, number))
    pairs.append((_grader_cell(_guard_call("before_check(None)"), Role.GUARD), CellRole(Role.GUARD)))
    graded = nbformat.v4.new_notebook()
    graded.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    graded.cells = [cell for cell, _ in pairs]
    graded.nbformat, graded.nbformat_minor = 4, 4
    return graded, [role for _, role in pairs]
