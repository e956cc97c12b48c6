"""The last cell of every lab notebook: ``labkit check`` on the notebook's own saved file, from inside the notebook
(self_check); skipped in one line when the notebook runs headless (the grader, ``labkit run``, pytest/nbval).

    from labkit.student.selfcheck import self_check
    self_check("01_gan_1d")

It finds the saved notebook (Jupyter's ``JPY_SESSION_NAME``, VS Code's ``__vsc_ipynb_file__``, else the kernel's
working folder, which is the notebook's), reminds the student to save first, and prints the table ``labkit check``
prints. Headless it does nothing else: the grader runs every notebook to the end, and a self-check there would
grade the notebook again inside its own grading (and ``labkit run`` and the tests would do the same).
"""
from __future__ import annotations

import os
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

from ..environment import GRADING, HEADLESS

__all__ = ["Headless", "headless", "find_own_notebook", "self_check", "COLAB_HELP"]

COLAB_HELP = ("In Colab the notebook is not a file beside the kernel. Either save it to Google Drive (File → Save a "
              "copy in Drive), mount Drive and pass its path, e.g. self_check(\"{name}\", notebook=\"/content/drive/"
              "MyDrive/Colab Notebooks/{name}.ipynb\") with your saved models in the same folder; or download it "
              "(File → Download → .ipynb) next to your saved models on your own machine and run `labkit check "
              "{name}.ipynb` there.")


class Headless(str, Enum):
    """Why a notebook runs with nobody watching (the self-check is then skipped)."""

    GRADER = "inside the grader (labkit grade or labkit check)"
    LABKIT_RUN = "under labkit run"
    PYTEST = "under pytest (nbval)"
    OTHER = "headless"

    def __str__(self) -> str:
        return self.value


def headless() -> Optional[Headless]:
    """Why this process runs a notebook headless, or None in a notebook someone is looking at."""
    if GRADING.get() == "1":
        return Headless.GRADER
    marker = HEADLESS.get("").strip()
    if marker == "labkit run":
        return Headless.LABKIT_RUN
    if marker == "pytest" or os.environ.get("PYTEST_CURRENT_TEST"):
        return Headless.PYTEST
    return Headless.OTHER if marker else None


def _frontend_path() -> Optional[Path]:
    """The notebook's path as the front end tells the kernel: Jupyter Server 2 (``JPY_SESSION_NAME``), VS Code."""
    candidates = [os.environ.get("JPY_SESSION_NAME")]
    try:
        from IPython import get_ipython

        shell = get_ipython()
        candidates.append(shell.user_ns.get("__vsc_ipynb_file__") if shell is not None else None)
    except ImportError:
        pass
    for candidate in candidates:
        if candidate and str(candidate).endswith(".ipynb") and Path(candidate).is_file():
            return Path(candidate)
    return None


def _named_lab(path: Path) -> Optional[str]:
    from ..notebook_format import SETUP_CALL

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    found = SETUP_CALL.search(text.replace('\\"', '"'))
    return found.group(1) if found else None


def find_own_notebook(name: str, folder: Optional[Path] = None) -> Path:
    """The saved file of lab ``name``'s notebook: what the front end says, else ``<name>.ipynb`` in ``folder`` (the
    working folder), else the one notebook there whose setup cell is ``labkit.setup("<name>", ...)``."""
    found = _frontend_path()
    if found is not None:
        return found
    folder = Path(folder) if folder is not None else Path.cwd()
    if (folder / f"{name}.ipynb").is_file():
        return folder / f"{name}.ipynb"
    same_lab = sorted(p for p in folder.glob("*.ipynb") if _named_lab(p) == name)
    if len(same_lab) == 1:
        return same_lab[0]
    if same_lab:
        listed = ", ".join(p.name for p in same_lab)
        raise FileNotFoundError(f"several notebooks of {name} in {folder} ({listed}): pass the one to check, e.g. "
                                f"self_check({name!r}, notebook={same_lab[0].name!r}).")
    from ..runtime import in_colab

    if in_colab():
        raise FileNotFoundError(COLAB_HELP.format(name=name))
    raise FileNotFoundError(f"no notebook of {name} in {folder}, the kernel's working folder: pass its path, e.g. "
                            f"self_check({name!r}, notebook=\"path/to/{name}.ipynb\"), or run `labkit check "
                            "path/to/your_notebook.ipynb` in a terminal.")


def _saved_line(path: Path) -> str:
    minutes = (time.time() - path.stat().st_mtime) / 60
    when = time.strftime("%H:%M", time.localtime(path.stat().st_mtime))
    age = "just now" if minutes < 1 else f"{minutes:.0f} min ago"
    return (f"Checking {path} as last saved ({when}, {age}): save the notebook first (Ctrl+S / File → Save) so the "
            "check sees your latest cells and answers.")


def self_check(name: str, notebook=None) -> Optional[object]:
    """Print what the grader will give this notebook (as ``labkit check``); one line and None when headless.

    Returns the :class:`~labkit.student.check.NotebookCheck`, or None when skipped or the notebook was not found
    (the message says where to look).
    """
    why = headless()
    if why is not None:
        print(f"Self-check skipped: this notebook runs {why}. In Jupyter it runs `labkit check` on this notebook.")
        return None
    try:
        path = Path(notebook) if notebook is not None else find_own_notebook(name)
        if not path.is_file():
            raise FileNotFoundError(f"{path} is not a file: pass the path of your saved notebook.")
    except FileNotFoundError as exc:
        print(f"Self-check: {exc}")
        return None
    from .check import check_notebook

    print(_saved_line(path))
    print("Running it as the grader does (quick mode, the course's check cells, the models saved next to it); "
          "this takes about as long as a quick run ...", flush=True)
    result = check_notebook(path)
    print(result.text())
    sys.stdout.flush()
    return result
