"""Turn reference notebooks into student notebooks, and build the students' distribution.

The notebooks' format (solution markers, cell metadata, the student version of a notebook) is
:mod:`labkit.notebook_format`.

* The title cell (tag ``labkit-header``) gets the "Open in Colab" link and the setup
  cells (tags ``parameters`` and ``labkit-setup``) are written from one template, with the
  repository address taken from README.md, in solutions and releases alike.

:func:`build_student_distribution` then writes what students get (``dist/student/`` and a zip):
the student notebooks, labkit, the checkpoints later sections need, READ_ME.txt and a README for
students; never the solution notebooks nor a checkpoint that answers a graded check. That folder is
what the course repository named in README.md holds, and what the Colab setup cell installs.
"""
from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from pathlib import Path
from typing import Dict, List, Optional

import nbformat

from ..course import NOTEBOOKS, RELEASE_COPIES, STUDENT_CHECKPOINTS, assignment_source, released_notebook  # noqa: F401
from ..notebook_format import (ReleaseError, answers_in, checks_in, release_notebook, solution_lines,  # noqa: F401
                               strip_solutions)

__all__ = [
    "NOTEBOOKS", "ReleaseError", "strip_solutions", "release_notebook", "release_all", "stamp_standard_cells",
    "repository_url", "checks_in", "answers_in", "solution_lines", "STUDENT_CHECKPOINTS", "STUDENT_FILES",
    "student_readme", "build_student_distribution", "file_digest", "RELEASE_COPIES", "assignment_source", "INSTRUCTOR_ONLY",
    "released_notebook",
]

REPO_LINE = re.compile(r"Course repository:\**\s*<?(?P<url>https?://[^\s>)]+)")


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
# Parameters (tagged "parameters"; the grader puts this cell back as written here and sets LABKIT_QUICK=1).
QUICK = None       # None: quick mode if $LABKIT_QUICK is 1 (the grader; `labkit run` without --full), a full run if
                   # it is 0 or unset (Jupyter, Colab); True: quick mode (small data, few epochs); False: a full run
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

# Which reference checkpoints students get: labkit.course.STUDENT_CHECKPOINTS (an allow-list).
STUDENT_FILES = ("READ_ME.txt", "pyproject.toml", "requirements.txt")
# Never copied from labkit/: caches, notebooks, model files (the package ships none).
_PACKAGE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".ipynb_checkpoints", "*.ipynb",
                                         "*.pt", "*.pth")
# Parts of labkit/ that stay with the instructor (paths under labkit/): code that answers a lab's TODO, which the
# benchmarks and scripts import from the course repository (tests/instructor/test_student_distribution.py tries the rest).
INSTRUCTOR_ONLY = ("reference",)
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
    instructor_only = {(repo / "labkit" / part).resolve() for part in INSTRUCTOR_ONLY}

    def ignore(folder, names):
        return set(_PACKAGE_IGNORE(folder, names)) | {n for n in names if (Path(folder) / n).resolve() in instructor_only}

    shutil.copytree(repo / "labkit", out / "labkit", ignore=ignore)
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
