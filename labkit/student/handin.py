"""What a student's notebook holds and lacks for its hand-in: its lab, the release it started from, the model
files it saves and the checks read, open TODOs and unanswered questions (read_hand_in).

``labkit pack`` and ``labkit check`` both start from a :class:`HandIn`; nothing here runs the notebook. Both
take regular files only: a symbolic link among the files of a hand-in (``gan1d_final.pt -> /etc/shadow``) is
refused with :class:`LinkedFile`, so neither packs nor grades what a link points to.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional

import nbformat

from ..grading.cells import MODEL_SUFFIXES, files_read_by_checks, model_file_names, norm
from ..course import released_notebook
from ..notebook_format import MD_ANSWER_PROMPT, SETUP_CALL, labkit_meta

__all__ = ["HandIn", "OpenTodo", "LinkedFile", "read_hand_in", "lab_name", "MODEL_SUFFIXES", "README_NAME"]

README_NAME = "READ_ME.txt"

_IMPORT = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_]\w*)", re.M)
_TODO = re.compile(r"raise NotImplementedError\((?P<hint>.*)\)\s*$")


class LinkedFile(ValueError):
    """A file of the hand-in is a symbolic link: packing or grading it would read whatever it points to."""

    def __init__(self, path: Path):
        self.path = path
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        super().__init__(
            f"{path} is a symbolic link (to {target}), not a file: labkit pack and labkit check take regular files "
            "only, so that a link cannot put another file into the hand-in. Replace the link with the file itself "
            f"(cp --remove-destination \"$(readlink -f '{path}')\" '{path}'), or remove it.")


class OpenTodo(NamedTuple):
    """A cell that still raises the release's NotImplementedError: its number (from 1), first line, hint."""

    cell: int
    first_line: str
    hint: str


@dataclass
class HandIn:
    notebook: Path
    nb: object                                   # the student's notebook (nbformat)
    name: str                                    # the assignment, e.g. 01_gan_1d
    release: object                              # the notebook the student started from
    graded_files: Dict[str, List[str]] = field(default_factory=dict)  # file -> check ids whose cells read it
    files: List[str] = field(default_factory=list)    # model files the notebook names, present next to it
    missing: List[str] = field(default_factory=list)  # graded files that are not next to it
    modules: List[str] = field(default_factory=list)  # the student's own .py modules the notebook imports
    todos: List[OpenTodo] = field(default_factory=list)
    unanswered: List[str] = field(default_factory=list)  # answer ids still at their prompt (or gone)
    untouched: bool = False                      # every cell as released
    executed: bool = False                       # the notebook was saved with outputs

    @property
    def folder(self) -> Path:
        return self.notebook.parent

    @property
    def payload(self) -> List[str]:
        """The files of the hand-in, next to the notebook: the notebook, its model files, its own modules."""
        return [self.notebook.name] + self.files + self.modules


def lab_name(nb, notebook: Path) -> str:
    """The assignment a notebook belongs to: the name in its ``labkit.setup("...")`` call, else its file name."""
    names = [m for c in nb.cells if c.cell_type == "code" for m in SETUP_CALL.findall(c.source)]
    return names[0] if names else notebook.stem


def _file_names(cells) -> List[str]:
    return list(dict.fromkeys(m for c in cells for m in model_file_names(c.source)))


def _todo_lines(release) -> Dict[str, str]:
    """Each released TODO's ``raise NotImplementedError(...)`` line (normalised) -> its hint."""
    lines = {}
    for cell in release.cells:
        for line in cell.source.splitlines() if cell.cell_type == "code" else []:
            match = _TODO.search(line.strip())
            if match:
                lines[line.strip()] = match.group("hint").strip("\"'")
    return lines


def _open_todos(nb, release) -> List[OpenTodo]:
    todo_lines = _todo_lines(release)
    found = []
    for number, cell in enumerate(nb.cells, 1):
        if cell.cell_type != "code":
            continue
        hints = [todo_lines[line.strip()] for line in cell.source.splitlines() if line.strip() in todo_lines]
        if hints:
            first = next((l.strip() for l in cell.source.splitlines() if l.strip()), "")
            found.append(OpenTodo(number, first[:80], hints[0]))
    return found


def _unanswered(nb, release) -> List[str]:
    prompts = {labkit_meta(c).get("answer"): norm(c.source) for c in release.cells}
    prompts.pop(None, None)
    answers = {labkit_meta(c).get("answer"): c.source for c in nb.cells}
    return [aid for aid, prompt in prompts.items()
            if aid not in answers or norm(answers[aid]) == prompt or MD_ANSWER_PROMPT in answers[aid]]


def _untouched(nb, release) -> bool:
    def sources(notebook):
        return [norm(c.source) for c in notebook.cells if "parameters" not in c.get("metadata", {}).get("tags", [])]

    return sources(nb) == sources(release)


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise LinkedFile(path)


def read_hand_in(notebook, source: Optional[Path] = None) -> HandIn:
    """Read a student's notebook and compare it with its release (from ``source``; see ``assignment_source``)."""
    notebook = Path(notebook)
    _refuse_link(notebook)
    if notebook.suffix != ".ipynb" or not notebook.is_file():
        raise FileNotFoundError(f"{notebook} is not a notebook file (.ipynb).")
    nb = nbformat.read(notebook, as_version=4)
    name = lab_name(nb, notebook)
    release = released_notebook(name, source)
    hand_in = HandIn(notebook=notebook, nb=nb, name=name, release=release, graded_files=files_read_by_checks(release))
    named = list(dict.fromkeys(list(hand_in.graded_files) + _file_names(nb.cells) + _file_names(release.cells)))
    imported = {m for c in nb.cells if c.cell_type == "code" for m in _IMPORT.findall(c.source)}
    for name in named + sorted(f"{m}.py" for m in imported) + [README_NAME]:
        _refuse_link(notebook.parent / name)
    hand_in.files = [f for f in named if (notebook.parent / f).is_file()]
    hand_in.missing = [f for f in hand_in.graded_files if not (notebook.parent / f).is_file()]
    hand_in.modules = sorted(f"{m}.py" for m in imported if (notebook.parent / f"{m}.py").is_file())
    hand_in.todos = _open_todos(nb, release)
    hand_in.unanswered = _unanswered(nb, release)
    hand_in.untouched = _untouched(nb, release)
    hand_in.executed = any(c.get("outputs") for c in nb.cells if c.cell_type == "code")
    return hand_in
