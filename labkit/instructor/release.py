"""Turn reference notebooks into student notebooks.

Authoring conventions (in ``notebooks/solutions/*.ipynb``):

* Code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` is the answer to a
  TODO. Text after ``### BEGIN SOLUTION:`` becomes the student's hint. The
  release replaces the block by ``# TODO: <hint>`` and ``raise NotImplementedError``
  at the same indentation.
* In markdown, ``<!-- BEGIN SOLUTION -->`` ... ``<!-- END SOLUTION -->`` is a model
  answer; students get an empty answer prompt.
* Check cells (immediate feedback) carry ``metadata.labkit = {"check": "<id>", "points": p}``;
  hand-graded answer cells carry ``{"answer": "<id>", "points": p}``. Ids are stable:
  the grader restores check cells by id.
* The title cell (tag ``labkit-header``) gets the "Open in Colab" link and the setup
  cells (tags ``parameters`` and ``labkit-setup``) are written from one template, with the
  repository address taken from README.md, in solutions and releases alike.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import nbformat

__all__ = [
    "NOTEBOOKS", "ReleaseError", "strip_solutions", "release_notebook", "release_all", "stamp_standard_cells",
    "repository_url", "checks_in", "answers_in", "solution_lines",
]

NOTEBOOKS = ("01_gan_1d", "02_cgan_mnist", "03_dcgan_mnist", "04_cwgan_gp_fashion")

BEGIN = re.compile(r"^(?P<indent>[ \t]*)### BEGIN SOLUTION(?::\s*(?P<hint>.*))?\s*$")
END = re.compile(r"^[ \t]*### END SOLUTION\s*$")
MD_BLOCK = re.compile(r"<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->", re.S)
MD_ANSWER_PROMPT = "*Your answer here (replace this line).*"
REPO_LINE = re.compile(r"Course repository:\**\s*<?(?P<url>https?://[^\s>)]+)")


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


def _meta(cell) -> Dict:
    return cell.get("metadata", {}).get("labkit", {}) or {}


def checks_in(nb) -> Dict[str, Dict]:
    """``{check_id: {"points": p, "index": cell_index, "source": ...}}`` for the notebook's check cells."""
    found = {}
    for index, cell in enumerate(nb.cells):
        cid = _meta(cell).get("check")
        if cid:
            if cid in found:
                raise ReleaseError(f"Check id {cid!r} is used by two cells; ids must be unique.")
            found[cid] = {"points": float(_meta(cell).get("points", 0)), "index": index, "source": cell.source}
    return found


def answers_in(nb) -> Dict[str, Dict]:
    """``{answer_id: {"points": p, "index": i, "source": ...}}`` for the hand-graded answer cells."""
    return {
        _meta(cell)["answer"]: {"points": float(_meta(cell).get("points", 0)), "index": i, "source": cell.source}
        for i, cell in enumerate(nb.cells) if _meta(cell).get("answer")
    }


def repository_url(readme: Path) -> str:
    """The course repository address, written once in README.md as ``Course repository: <url>``."""
    match = REPO_LINE.search(Path(readme).read_text(encoding="utf-8"))
    if not match:
        raise ReleaseError(f"{readme} has no line 'Course repository: https://...'; add it (it is set in one place).")
    return match.group("url").rstrip("/.")


def _colab_link(url: str, name: str) -> str:
    path = re.sub(r"^https?://github\.com/", "", url).removesuffix(".git")
    return (f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{path}/blob/main/notebooks/{name}.ipynb)")


PARAMETERS_SOURCE = """\
# Parameters (tagged "parameters"): the grader and `labkit run` may override them.
QUICK = None       # None: follow $LABKIT_QUICK; True: small data and few epochs (a quick test run)
SEED = 0           # every random choice in this notebook follows from it
USE_DRIVE = False  # in Colab, True keeps your outputs and saved models in Google Drive"""

SETUP_TEMPLATE = """\
# Standard setup, written by `labkit release` (do not edit). In Colab it installs the course kit
# from the course repository; on your own machine it only sets paths, seed and device.
import sys
if "google.colab" in sys.modules:
    import subprocess
    subprocess.run("git clone -q --depth 1 {url} /content/gan-course "
                   "|| git -C /content/gan-course pull -q", shell=True, check=False)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "/content/gan-course"], check=True)
    sys.path.insert(0, "/content/gan-course")

import labkit
lab = labkit.setup("{name}", seed=SEED, quick=QUICK, use_drive=USE_DRIVE)"""


def _tagged(nb, tag: str):
    return [c for c in nb.cells if tag in c.get("metadata", {}).get("tags", [])]


def stamp_standard_cells(nb, name: str, url: str) -> None:
    """Write the Colab link, the parameters cell and the setup cell from the templates (in place)."""
    for tag in ("labkit-header", "parameters", "labkit-setup"):
        if len(_tagged(nb, tag)) != 1:
            raise ReleaseError(f"{name}: needs exactly one cell tagged {tag!r}, found {len(_tagged(nb, tag))}.")
    header = _tagged(nb, "labkit-header")[0]
    link = _colab_link(url, name)
    lines = [l for l in header.source.splitlines() if "colab-badge.svg" not in l]
    header.source = "\n".join([link] + lines)
    _tagged(nb, "parameters")[0].source = PARAMETERS_SOURCE
    _tagged(nb, "labkit-setup")[0].source = SETUP_TEMPLATE.format(url=url, name=name)


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


def release_all(repo: Path, check: bool = False) -> List[str]:
    """Stamp every solution notebook and write its release to ``notebooks/``.

    With ``check=True`` nothing is written; returns the files that are out of date.
    """
    repo = Path(repo)
    url = repository_url(repo / "README.md")
    stale = []
    solutions = sorted((repo / "notebooks" / "solutions").glob("*.ipynb"))
    if not solutions:
        raise ReleaseError(f"No solution notebooks in {repo / 'notebooks' / 'solutions'}.")
    for path in solutions:
        name = path.stem
        solution = nbformat.read(path, as_version=4)
        for cell in solution.cells:
            cell.pop("id", None)  # ids churn on every save; the labkit metadata is what identifies checks
        solution.nbformat, solution.nbformat_minor = 4, 4
        stamp_standard_cells(solution, name, url)
        student = release_notebook(solution, name)
        for nb, target in ((solution, path), (student, repo / "notebooks" / f"{name}.ipynb")):
            text = nbformat.writes(nb) + "\n"
            current = target.read_text(encoding="utf-8") if target.exists() else None
            if current != text:
                stale.append(str(target.relative_to(repo)))
                if not check:
                    target.write_text(text, encoding="utf-8")
    return stale
