"""Match a student's cells with the release: put the instructor's check and standard cells back (restore_cells).

Every protected cell (see :mod:`labkit.grading.cells`) is found in the submission by
its metadata, else by its exact content. A found one is replaced by the instructor's original;
a missing one is re-inserted just before the first cell that follows it in the release and is
still in the submission (cells are aligned by content), so it runs after the student's code for
that TODO. :func:`written_answers` reads the hand-graded answers with the same alignment.
"""
from __future__ import annotations

import copy
import difflib
from typing import Dict, List, NamedTuple, Optional

from ..notebook_format import MD_ANSWER_PROMPT, cell_tags, labkit_meta
from .assignment import Assignment
from .cells import CellKey, norm

__all__ = ["Restored", "align", "restore_cells", "written_answers"]


class Restored(NamedTuple):
    """The cells to run, with the instructor's protected cells in place."""

    cells: list                          # the student's cells (labkit metadata cleaned) and the instructor's
    protected: Dict[int, CellKey]        # position in ``cells`` -> which protected cell stands there
    origins: List[Optional[int]]         # position in ``cells`` -> index in the submission (None: re-inserted)
    notes: List[str]                     # cells edited, missing, or claiming an id they may not


def align(release_cells, student_cells) -> Dict[int, int]:
    """Release index -> student index for cells that match exactly, or pair up in an edited stretch."""
    a = [(c.cell_type, norm(c.source)) for c in release_cells]
    b = [(c.cell_type, norm(c.source)) for c in student_cells]
    mapping = {}
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                mapping[i1 + k] = j1 + k
        elif tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                if a[i1 + k][0] == b[j1 + k][0]:
                    mapping[i1 + k] = j1 + k
    return mapping


def _clean_metadata(cell) -> None:
    """Drop the student's labkit metadata except an answer id (ids of checks come from the instructor)."""
    if "labkit" not in cell.get("metadata", {}):
        return
    answer = labkit_meta(cell).get("answer")
    if answer:
        cell.metadata["labkit"] = {"answer": answer}
    else:
        del cell.metadata["labkit"]


def _find_by_metadata(student, keys: Dict[CellKey, int], notes: List[str]) -> Dict[CellKey, int]:
    """Protected cell -> student index, for cells that carry the check id or the tag."""
    found: Dict[CellKey, int] = {}
    for i, cell in enumerate(student):
        cid = labkit_meta(cell).get("check")
        if cid is not None:
            key = CellKey.check(str(cid))
            if key in keys and key not in found:
                found[key] = i
            else:
                notes.append(f"a cell claimed check id {cid!r} ({'a duplicate' if key in keys else 'unknown'}); "
                             "it ran as ordinary code")
        for tag in cell_tags(cell):
            key = CellKey.tag(tag)
            if key in keys and key not in found and i not in found.values():
                found[key] = i
    return found


def _find_by_content(student, release, keys: Dict[CellKey, int], found: Dict[CellKey, int]) -> None:
    """Add the protected cells whose metadata was lost but whose content is intact."""
    for key, r in keys.items():
        if key in found:
            continue
        want = (release[r].cell_type, norm(release[r].source))
        for i, cell in enumerate(student):
            if i not in found.values() and (cell.cell_type, norm(cell.source)) == want:
                found[key] = i
                break


def _edit_note(key: CellKey, student_source: str, release_source: str) -> Optional[str]:
    if norm(student_source) == norm(release_source):
        return None
    what = "replaced by `pass`" if norm(student_source) in ("pass", "") else "edited"
    return f"{key.label} was {what} in the submission; the original was used"


def _place(assignment: Assignment, student, keys: Dict[CellKey, int], found: Dict[CellKey, int], notes: List[str]):
    """Which student cells the instructor's replace, and before which student cell each missing one goes."""
    release = assignment.release.cells
    mapping = align(release, student)
    for key, s in found.items():
        mapping[keys[key]] = s
    replaced: Dict[int, CellKey] = {}
    inserts: Dict[int, List[CellKey]] = {}
    for r, key in assignment.protected:
        if key in found:
            s = found[key]
            if s not in replaced:
                replaced[s] = key
                note = _edit_note(key, student[s].source, release[r].source)
                notes += [note] if note else []
            continue
        later = sorted((rr, s) for rr, s in mapping.items() if rr > r)
        inserts.setdefault(later[0][1] if later else len(student), []).append(key)
        notes.append(f"{key.label} was missing from the submission; the original was put back")
    return replaced, inserts


def restore_cells(assignment: Assignment, nb) -> Restored:
    """The student's cells with every protected cell replaced by (or re-inserted from) the instructor's."""
    release = assignment.release.cells
    student = [copy.deepcopy(c) for c in nb.cells]
    keys = {p.key: p.index for p in assignment.protected}
    notes: List[str] = []
    found = _find_by_metadata(student, keys, notes)
    for cell in student:
        _clean_metadata(cell)
    _find_by_content(student, release, keys, found)
    replaced, inserts = _place(assignment, student, keys, found, notes)
    instructor = {p.key: release[p.index] for p in assignment.protected}
    cells, protected, origins = [], {}, []
    for s in range(len(student) + 1):
        for key in inserts.get(s, []):
            protected[len(cells)] = key
            cells.append(copy.deepcopy(instructor[key]))
            origins.append(None)
        if s < len(student):
            if s in replaced:
                protected[len(cells)] = replaced[s]
            cells.append(copy.deepcopy(instructor[replaced[s]]) if s in replaced else student[s])
            origins.append(s)
    return Restored(cells, protected, origins, notes)


def written_answers(assignment: Assignment, nb) -> Dict[str, Optional[str]]:
    """Answer id -> the student's text ("" when the prompt is untouched, None when the cell is gone)."""
    release = assignment.release.cells
    mapping = align(release, nb.cells)
    result = {}
    for aid, info in assignment.answers.items():
        cell = next((c for c in nb.cells if labkit_meta(c).get("answer") == aid), None)
        if cell is None and info["index"] in mapping:
            candidate = nb.cells[mapping[info["index"]]]
            cell = candidate if candidate.cell_type == "markdown" else None
        if cell is None:
            result[aid] = None
        elif norm(cell.source) == norm(release[info["index"]].source) or MD_ANSWER_PROMPT in cell.source:
            result[aid] = ""
        else:
            result[aid] = cell.source.strip()
    return result
