"""The format of the course's notebooks, in one place: solution markers, cell metadata, the setup call, the answer
prompt, and the student version of a solution notebook.

Authoring conventions (in ``notebooks/solutions/*.ipynb``):

* Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is the answer to a TODO. Text after
  ``### BEGIN SOLUTION:`` becomes the student's hint. The release replaces the block by ``# TODO: <hint>``
  and ``raise NotImplementedError`` at the same indentation.
* In markdown, ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->`` is a model answer; students get an
  empty answer prompt (:data:`MD_ANSWER_PROMPT`).
* Check cells (immediate feedback) carry ``metadata.labkit = {"check": "<id>", "points": p}``; hand-graded
  answer cells carry ``{"answer": "<id>", "points": p}``. Ids are stable: the grader restores check cells by id.
* The setup cell calls ``labkit.setup("<notebook name>", ...)`` (:data:`SETUP_CALL` finds the name).

:mod:`labkit.instructor.release` stamps and releases notebooks with these; the grader and the student's
commands read them.
"""
from __future__ import annotations

import copy
import re
from typing import Dict, List, Optional, Tuple

import nbformat

__all__ = ["BEGIN", "END", "MD_BLOCK", "MD_ANSWER_PROMPT", "SETUP_CALL", "ReleaseError", "strip_solutions",
           "solution_lines", "labkit_meta", "cell_tags", "checks_in", "answers_in", "release_notebook"]

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?::\s*(?P<hint>.*))?\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
MD_BLOCK = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
MD_ANSWER_PROMPT = "*Your answer here (replace this line).*"
SETUP_CALL = re.compile(r"labkit\.setup\(\s*[\"']([\w.-]+)[\"']")


class ReleaseError(ValueError):
    """A solution notebook breaks the authoring conventions (unbalanced markers, duplicate ids...)."""


def strip_solutions(source: str, where: str = "cell") -> str:
    """Replace every solution block in a code cell's ``source`` by a TODO and ``raise NotImplementedError``."""
    out: List[str] = []
    inside: Optional[Tuple[str, str]] = None
    for number, line in enumerate(source.splitlines(), 1):
        start, stop = BEGIN.match(line), END.match(line)
        if start:
            if inside:
                raise ReleaseError(f"{where}, line {number}: BEGIN SOLUTION inside another solution block.")
            inside = (start.group("indent"), start.group("hint") or "your code here")
        elif stop:
            if not inside:
                raise ReleaseError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION.")
            indent, hint = inside
            out.append(f"{indent}# TODO: {hint}")
            out.append(f'{indent}raise NotImplementedError("{_quote(hint)}")')
            inside = None
        elif not inside:
            out.append(line)
    if inside:
        raise ReleaseError(f"{where}: BEGIN SOLUTION without END SOLUTION.")
    return "\n".join(out)


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def solution_lines(nb) -> List[str]:
    """The stripped, non-trivial lines inside solution blocks (to prove a release leaks none)."""
    lines = []
    for cell in nb.cells:
        if cell.cell_type == "code":
            inside = False
            for line in cell.source.splitlines():
                if BEGIN.match(line):
                    inside = True
                elif END.match(line):
                    inside = False
                elif inside and len(line.strip()) >= 12:
                    lines.append(line.strip())
        elif cell.cell_type == "markdown":
            for block in MD_BLOCK.findall(cell.source):
                lines += [l.strip() for l in block.splitlines()[1:-1] if len(l.strip()) >= 12]
    return lines


def labkit_meta(cell) -> Dict:
    """The cell's ``metadata.labkit`` (empty when missing or not a dict)."""
    value = cell.get("metadata", {}).get("labkit")
    return value if isinstance(value, dict) else {}


def cell_tags(cell) -> List[str]:
    """The cell's tags that are strings."""
    tags = cell.get("metadata", {}).get("tags", [])
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def checks_in(nb) -> Dict[str, Dict]:
    """``{check_id: {"points": p, "index": cell_index, "source": ...}}`` for the notebook's check cells."""
    found = {}
    for index, cell in enumerate(nb.cells):
        cid = labkit_meta(cell).get("check")
        if cid:
            if cid in found:
                raise ReleaseError(f"Check id {cid!r} is used by two cells; ids must be unique.")
            found[cid] = {"points": float(labkit_meta(cell).get("points", 0)), "index": index, "source": cell.source}
    return found


def answers_in(nb) -> Dict[str, Dict]:
    """``{answer_id: {"points": p, "index": i, "source": ...}}`` for the hand-graded answer cells."""
    return {
        labkit_meta(cell)["answer"]: {"points": float(labkit_meta(cell).get("points", 0)), "index": i, "source": cell.source}
        for i, cell in enumerate(nb.cells) if labkit_meta(cell).get("answer")
    }


def release_notebook(solution, name: str) -> nbformat.NotebookNode:
    """The student version of a (stamped) solution notebook: no solutions, no outputs."""
    nb = copy.deepcopy(solution)
    checks_in(nb)  # validates unique ids
    for index, cell in enumerate(nb.cells):
        where = f"{name} cell {index}"
        if cell.cell_type == "code":
            cell.source = strip_solutions(cell.source, where)
            cell.outputs = []
            cell.execution_count = None
        elif cell.cell_type == "markdown":
            cell.source = MD_BLOCK.sub(MD_ANSWER_PROMPT, cell.source)
        cell.pop("id", None)
    nb.metadata.pop("widgets", None)
    nb.nbformat, nb.nbformat_minor = 4, 4
    return nb
