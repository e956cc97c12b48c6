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

:func:`build_student_distribution` then writes what students get (``dist/student/`` and a zip):
the student notebooks, labkit, the checkpoints later sections need, READ_ME.txt and a README for
students; never the solution notebooks nor a checkpoint that answers a graded check. That folder is
what the course repository named in README.md holds, and what the Colab setup cell installs.
"""
from __future__ import annotations

import copy
import hashlib
import re
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import nbformat

__all__ = [
    "NOTEBOOKS", "ReleaseError", "strip_solutions", "release_notebook", "release_all", "stamp_standard_cells",
    "repository_url", "checks_in", "answers_in", "solution_lines", "STUDENT_CHECKPOINTS", "STUDENT_FILES",
    "student_readme", "build_student_distribution", "file_digest", "RELEASE_COPIES", "assignment_source",
    "released_notebook",
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


# --------------------------------------------------------------------------- the students' distribution

# Reference checkpoints students get: only what later sections need to run (the metric classifiers behind
# the image scores). An allow-list, so a new reference model (e.g. checkpoints/gan1d_*.pt, which would pass
# a graded quality check if handed in as the student's own) stays with the instructor unless listed here.
# The metric classifiers, and the CGAN reference lab 02's Section 2 falls back to when a student's training failed
# (the grader flags a handed-in copy of it: labkit/grading/references.py).
STUDENT_CHECKPOINTS = ("classifier_mnist.pt", "classifier_fashion_mnist.pt", "cgan_mnist.pt", "cgan_mnist_D.pt")
# Files of the repository root that ship as they are (pip install -e needs pyproject.toml).
STUDENT_FILES = ("READ_ME.txt", "pyproject.toml", "requirements.txt")
# Never copied from labkit/: caches, notebooks, model files (the package ships none).
_PACKAGE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints", "*.ipynb",
                                         "*.pt", "*.pth")
_DIST_MARKER = ".labkit-student-distribution"
_STUDENT_GITIGNORE = "__pycache__/\n*.egg-info/\n.ipynb_checkpoints/\noutput/\n*.zip\n"
_FOR_STUDENTS = re.compile(r"^## For students[^\n]*\n(?P<body>.*?)(?=^## |\Z)", re.S | re.M)
_ZIP_TIME = (2024, 1, 1, 0, 0, 0)  # fixed, so the same release gives the same zip


def file_digest(path: Path) -> str:
    """SHA-256 of a file (to prove an answer checkpoint is not shipped under another name)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def student_readme(readme_text: str, url: str) -> str:
    """The students' README: the "For students" section of the course README, with the repository address."""
    match = _FOR_STUDENTS.search(readme_text)
    if not match:
        raise ReleaseError("README.md has no '## For students' section; the students' README is made from it.")
    body = match.group("body").strip().replace("<course repository>", url)
    return (f"# GAN course: the labs\n\nCourse repository: {url}\n\n"
            "Four Jupyter labs on generative adversarial networks and `labkit`, the package behind them. "
            "This folder is the students' copy of the course kit: the lab notebooks (`notebooks/`), `labkit`, "
            "the small data samples it falls back on offline, the metric classifiers (`checkpoints/`) and the "
            f"`READ_ME.txt` template to hand in.\n\n{body}\n")


# In the students' distribution, labkit carries an untouched copy of every release here: students edit
# notebooks/NN.ipynb in place, and `labkit pack` / `labkit check` need the release they started from.
RELEASE_COPIES = Path(__file__).resolve().parent.parent / "data" / "releases"


def assignment_source(repo: Optional[Path] = None) -> Path:
    """The folder of the instructor's notebooks for the grader: ``notebooks/solutions`` in the course's own
    repository, else the release copies the students' distribution ships (:data:`RELEASE_COPIES`)."""
    from ..paths import repo_root

    solutions = Path(repo or repo_root()) / "notebooks" / "solutions"
    return solutions if any(solutions.glob("*.ipynb")) else RELEASE_COPIES


def released_notebook(name: str, source: Optional[Path] = None) -> nbformat.NotebookNode:
    """The notebook students got for assignment ``name``: the release of ``<source>/<name>.ipynb``."""
    source = Path(source) if source else assignment_source()
    path = source / f"{name}.ipynb"
    if not path.exists():
        known = sorted(p.stem for p in source.glob("*.ipynb"))
        raise FileNotFoundError(f"No notebook {name!r} in {source} (known: {', '.join(known) or 'none'}).")
    return release_notebook(nbformat.read(path, as_version=4), name)


def _forbidden_digests(repo: Path) -> Dict[str, str]:
    """digest -> name of every model file that must not reach students (reference and solution models)."""
    # A solution model identical to a checkpoint students get on purpose (lab 02's CGAN) is no secret: the
    # grader flags it when it is handed in.
    shipped = {file_digest(repo / "checkpoints" / name) for name in STUDENT_CHECKPOINTS
               if (repo / "checkpoints" / name).exists()}
    found = {}
    for folder in (repo / "checkpoints", repo / "notebooks" / "solutions"):
        for path in sorted(folder.glob("*.pt")) if folder.exists() else []:
            if file_digest(path) not in shipped:
                found[file_digest(path)] = str(path.relative_to(repo))
    return found


def _write_student_tree(repo: Path, out: Path, url: str) -> None:
    (out / "notebooks").mkdir(parents=True)
    for solution in sorted((repo / "notebooks" / "solutions").glob("*.ipynb")):
        shutil.copyfile(repo / "notebooks" / solution.name, out / "notebooks" / solution.name)
    shutil.copytree(repo / "labkit", out / "labkit", ignore=_PACKAGE_IGNORE)
    copies = out / "labkit" / RELEASE_COPIES.relative_to(RELEASE_COPIES.parent.parent)
    copies.mkdir(parents=True, exist_ok=True)
    for notebook in sorted((out / "notebooks").glob("*.ipynb")):
        shutil.copyfile(notebook, copies / notebook.name)
    (out / "checkpoints").mkdir()
    for name in STUDENT_CHECKPOINTS:
        shutil.copyfile(repo / "checkpoints" / name, out / "checkpoints" / name)
    for name in STUDENT_FILES:
        shutil.copyfile(repo / name, out / name)
    (out / "README.md").write_text(student_readme((repo / "README.md").read_text(encoding="utf-8"), url),
                                   encoding="utf-8")
    (out / ".gitignore").write_text(_STUDENT_GITIGNORE, encoding="utf-8")


def _refuse_answers(repo: Path, out: Path) -> None:
    """Raise if a solution notebook or a model that answers a graded check ended up in ``out``."""
    forbidden = _forbidden_digests(repo)
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        if path.suffix in (".pt", ".pth") and file_digest(path) in forbidden:
            raise ReleaseError(f"{path.relative_to(out)} is {forbidden[file_digest(path)]}, which answers a graded "
                               "check; it must not reach students.")
        if path.suffix == ".ipynb" and "BEGIN SOLUTION" in path.read_text(encoding="utf-8"):
            raise ReleaseError(f"{path.relative_to(out)} holds solution blocks.")


def _zip_tree(folder: Path, target: Path, top: str) -> None:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != _DIST_MARKER):
            info = zipfile.ZipInfo(f"{top}/{path.relative_to(folder).as_posix()}", date_time=_ZIP_TIME)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            archive.writestr(info, path.read_bytes())


def build_student_distribution(repo: Path, out: Path, zip_path: Optional[Path] = None) -> List[Path]:
    """Write the students' copy of the course kit to ``out`` (replaced) and, if asked, a zip of it.

    Refuses when the student notebooks are not a fresh release of the solutions (run :func:`release_all`
    first), and checks the result: no solution blocks, no model file identical to a reference or solution
    model other than :data:`STUDENT_CHECKPOINTS`. Returns the files written, ``out`` first.
    """
    repo, out = Path(repo), Path(out)
    stale = release_all(repo, check=True)
    if stale:
        raise ReleaseError("the student notebooks are out of date (" + ", ".join(stale) + "); run `labkit release`.")
    if out.exists():
        if not (out / _DIST_MARKER).exists():
            raise ReleaseError(f"{out} exists and is not a students' distribution written by labkit; "
                               "choose another folder or remove it.")
        shutil.rmtree(out)
    url = repository_url(repo / "README.md")
    _write_student_tree(repo, out, url)
    (out / _DIST_MARKER).write_text("written by `labkit release`; replaced on every release\n", encoding="utf-8")
    _refuse_answers(repo, out)
    written = [out]
    if zip_path is not None:
        zip_path = Path(zip_path)
        zip_path.parent.mkdir(parents=True, exist_ok=True)
        _zip_tree(out, zip_path, top=re.sub(r"\.git$", "", url.rstrip("/").rsplit("/", 1)[-1]) or "course")
        written.append(zip_path)
    return written
