"""Before the first submission: one run with the graded runs' own command, so a broken set-up stops the batch.

A grading machine whose interpreter lacks nbval, torch or labkit, or whose sandbox cannot start
that interpreter, would give every submission of a class an ``error`` row. :func:`preflight` finds
that first, with two runs built exactly as a graded run is (interpreter, environment, sandbox,
limits), started from an empty folder outside the course repository:

1. an import probe: each module a graded run needs, imported by that interpreter, so the message can
   name what is missing and in which interpreter;
2. a one-cell notebook run by :func:`~.run.run_notebook` (pytest, the nbval plugin, labkit's
   plugin, a kernel that imports labkit and torch).

On failure it raises :class:`PreflightFailed`, whose message says what failed and how to fix it;
``labkit grade`` and ``labkit check`` then grade nothing.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional

import nbformat

from .run import run_helper, run_notebook
from .types import Limits
from .sandbox import Sandbox, python_executable

__all__ = ["PreflightFailed", "preflight", "REQUIRED_MODULES"]

# What a graded run imports: pytest and its plugins in the runner, the kernel, and what the check cells use.
REQUIRED_MODULES = ("pytest", "nbval", "ipykernel", "nbformat", "nbclient", "numpy", "torch", "labkit")
PROBE = (
    "import importlib, json\n"
    "missing = {}\n"
    "for name in %r:\n"
    "    try:\n"
    "        importlib.import_module(name)\n"
    "    except BaseException as exc:\n"
    "        missing[name] = type(exc).__name__ + ': ' + str(exc)[:200]\n"
    "print('LABKIT-PREFLIGHT ' + json.dumps(missing))\n"
) % (REQUIRED_MODULES,)
TOKEN = "labkit-preflight-ok"
CELL = f"import labkit, torch\nprint({TOKEN!r}, torch.ones(2).sum().item())"


class PreflightFailed(ValueError):
    """The grading set-up cannot run a notebook; the message says what is missing and how to fix it."""


@dataclass
class _Probe:
    """The one-cell notebook, laid out as :func:`run_notebook` expects a prepared submission."""

    graded: object
    root: Path
    workdir: Path


def _fix(missing: Dict[str, str], python: str) -> str:
    names = ", ".join(sorted(missing))
    if "labkit" in missing:
        how = (f"install the course kit into that environment: from the course repository, `{python} -m pip install "
               "-r requirements.txt`")
    else:
        packages = " ".join(sorted(missing))
        how = (f"install them into that environment: `{python} -m pip install {packages}` (or, from the course "
               "repository, `python -m pip install -r requirements.txt` with that environment active)")
    details = "; ".join(f"{name}: {error}" for name, error in sorted(missing.items()))
    return (f"the grading interpreter {python} cannot import {names} ({details}); {how}. Nothing was graded.")


def _imports(folder: Path, limits: Limits, sandbox: Optional[Sandbox]) -> Dict[str, str]:
    """module -> error for each required module the run's interpreter cannot import (empty: all import)."""
    done = run_helper(["-c", PROBE], (), folder / "imports", limits, sandbox, timeout=limits.startup)
    if done.killed is not None:
        raise PreflightFailed(f"the grading interpreter {python_executable()} did not import "
                              f"{', '.join(REQUIRED_MODULES)} ({done.killed}); is the machine overloaded, or the "
                              "memory limit (--memory) too low? Nothing was graded.")
    for line in done.output.splitlines():
        if line.startswith("LABKIT-PREFLIGHT "):
            return json.loads(line[len("LABKIT-PREFLIGHT "):])
    detail = " ".join(done.output.split())[-300:] or f"exit status {done.returncode}"
    raise PreflightFailed(f"the grading interpreter {python_executable()} could not be started for a graded run "
                          f"({detail}). Nothing was graded.")


def _one_cell(folder: Path, limits: Limits, sandbox: Optional[Sandbox]) -> None:
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell(CELL)]
    prepared = _Probe(graded=notebook, root=folder / "cell", workdir=folder / "cell")
    prepared.root.mkdir(parents=True, exist_ok=True)
    run = run_notebook(prepared, folder / "cell-run", limits, jobs=1, sandbox=sandbox)
    if any(r.outcome == "passed" and TOKEN in r.stdout for r in run.records.values()):
        return
    record = next(iter(run.records.values()), None)
    if run.killed is not None:
        what = f"it was stopped ({run.killed}) after {run.killed_after:.0f} s"
    elif record is not None:
        what = f"its cell failed: {(record.error or record.outcome).splitlines()[0][:300]}"
    else:
        lines = [line for line in run.log.strip().splitlines() if line.strip()]
        what = "pytest or its kernel stopped before the cell ran: " + (" ".join(lines[-2:])[-300:] or "no output")
    raise PreflightFailed(f"a one-cell notebook could not be run the way submissions are graded ({what}). Check that "
                          f"`{python_executable()} -m pytest --version` works and that nbval and ipykernel are "
                          "installed in that environment. Nothing was graded.")


def preflight(limits: Limits, sandbox: Optional[Sandbox]) -> None:
    """Raise :class:`PreflightFailed` unless a graded run can start here (takes a kernel start, a few seconds)."""
    with tempfile.TemporaryDirectory(prefix="labkit-preflight-") as tmp:
        folder = Path(tmp)
        missing = _imports(folder, limits, sandbox)
        if missing:
            raise PreflightFailed(_fix(missing, python_executable()))
        _one_cell(folder, limits, sandbox)
