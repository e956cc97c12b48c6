"""Notebook-cell helpers that every grading stage shares: normalised source, labkit metadata, tags, cell keys.

A *protected* cell is one the grader puts back from the instructor's notebook: a check cell
(``metadata.labkit.check``) or a standard cell (tagged ``parameters`` or ``labkit-setup``). A
:class:`CellKey` names one.
"""
from __future__ import annotations

import re
from typing import Dict, List, Literal, NamedTuple

from ..notebook_format import labkit_meta

__all__ = ["PROTECTED_TAGS", "CellKey", "norm", "first_line", "python_source", "safe_text",
           "safe_strings", "MODEL_SUFFIXES", "model_file_names", "files_read_by_checks"]

PROTECTED_TAGS = ("parameters", "labkit-setup")  # standard cells: restored like check cells
MODEL_SUFFIXES = (".pt", ".pth", ".ckpt", ".npy", ".npz")
# A file name in quotes or backticks, in code or markdown: "gan1d_final.pt", `dcgan_final_D.pt`.
_FILE_NAME = re.compile(r"""["'`]([\w.-]+(?:""" + "|".join(re.escape(s) for s in MODEL_SUFFIXES) + r"""))["'`]""")


class CellKey(NamedTuple):
    """A protected cell: a check cell by its id, or a standard cell by its tag."""

    kind: Literal["check", "tag"]
    name: str

    @classmethod
    def check(cls, check_id: str) -> "CellKey":
        return cls("check", check_id)

    @classmethod
    def tag(cls, tag: str) -> "CellKey":
        return cls("tag", tag)

    @property
    def is_check(self) -> bool:
        return self.kind == "check"

    @property
    def label(self) -> str:
        """How notes name the cell: ``check 'mean'`` or ``standard cell 'parameters'``."""
        return f"check {self.name!r}" if self.is_check else f"standard cell {self.name!r}"


def model_file_names(source: str) -> List[str]:
    """The model files a cell names in quotes or backticks (``checks.check_quality("dcgan_final.pt")``), in order."""
    return list(dict.fromkeys(_FILE_NAME.findall(source or "")))


def files_read_by_checks(nb) -> Dict[str, List[str]]:
    """file -> the ids of the check cells that name it: the checks that grade that saved model.

    ``labkit check`` lists a missing file with the checks that read it; ``labkit grade`` gives those checks no
    points when the file is a reference model.
    """
    graded: Dict[str, List[str]] = {}
    for cell in nb.cells:
        cid = labkit_meta(cell).get("check")
        for name in model_file_names(cell.get("source", "")) if cid else []:
            graded.setdefault(name, []).append(cid)
    return graded


def norm(source: str) -> str:
    """The source without trailing spaces and surrounding blank lines (to compare cells)."""
    return "\n".join(line.rstrip() for line in (source or "").strip().splitlines())


def first_line(source: str) -> str:
    """The first non-blank line (at most 80 characters), to name a cell in a message."""
    for line in (source or "").splitlines():
        if line.strip():
            return line.strip()[:80]
    return "(empty cell)"


def python_source(source: str) -> str:
    """IPython syntax (magics, shell escapes) turned into plain Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source or "")
    except Exception:  # IPython missing or a cell it cannot transform: scan the text as it is
        return source or ""


def safe_text(text) -> str:
    """``text`` as a string that UTF-8 can always encode: lone surrogates (from a notebook's JSON, or bytes of a
    file name that are not UTF-8) become ``\\udcxx`` escapes, NUL characters ``\\x00``."""
    text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def safe_strings(value):
    """``value`` (JSON-like: dicts, lists, strings) with every string passed through :func:`safe_text`, in place."""
    if isinstance(value, dict):
        for key in list(value):
            item = value[key]
            value[key] = safe_text(item) if isinstance(item, str) else safe_strings(item)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            value[i] = safe_text(item) if isinstance(item, str) else safe_strings(item)
    return value
