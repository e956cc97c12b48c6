"""What the course ships and where its notebooks are: the labs, the checkpoints students get, the release copies
inside labkit, and the notebook a student started from (shared by the grader, the student's commands and the
release)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import nbformat

from .notebook_format import release_notebook

__all__ = ["NOTEBOOKS", "STUDENT_CHECKPOINTS", "RELEASE_COPIES", "assignment_source", "released_notebook"]

NOTEBOOKS = ("01_gan_1d", "02_cgan_mnist", "03_dcgan_mnist", "04_cwgan_gp_fashion")
# Reference checkpoints students get: the metric classifiers, and the CGAN that lab 02's Section 2 falls back on
# (the grader flags a handed-in copy of it: labkit/grading/references.py).
STUDENT_CHECKPOINTS = ("classifier_mnist.pt", "classifier_fashion_mnist.pt", "cgan_mnist.pt", "cgan_mnist_D.pt")
# Files of the repository root that ship as they are (pip install -e needs pyproject.toml).

# In the students' distribution, labkit carries an untouched copy of every release here: students edit
# notebooks/NN.ipynb in place, and `labkit pack` / `labkit check` need the release they started from.
RELEASE_COPIES = Path(__file__).resolve().parent / "data" / "releases"


def assignment_source(repo: Optional[Path] = None) -> Path:
    """The folder of the instructor's notebooks for the grader: ``notebooks/solutions`` in the course's own
    repository, else the release copies the students' distribution ships (:data:`RELEASE_COPIES`)."""
    from .paths import repo_root

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
