"""Gradescope: the autograder zip ``labkit autograder`` builds, and what its ``run_autograder`` does per submission.

Gradescope builds an image once per upload (``setup.sh``, as root, with network), then grades each submission
in a fresh container: the zip's files in ``/autograder/source``, the hand-in in ``/autograder/submission``;
``run_autograder`` must write ``/autograder/results/results.json``. The zip holds

* ``setup.sh``: Python's venv, CPU PyTorch and the kit with pip (no conda), ``bubblewrap``, the unprivileged
  user ``student``, and ``chmod 700`` on the source folder;
* ``run_autograder``: :func:`main` on the root folder, and a last resort that writes a valid file even when
  Python cannot start;
* ``kit/`` (labkit, installed by ``setup.sh``), ``assignment/NAME.ipynb`` (the *release* of the lab: its check
  cells and points, no solution), ``references/`` (the reference models' fingerprints, not the models),
  ``checkpoints/`` (the metric classifiers students get too) and ``settings.json``.

:func:`grade_in_container` grades the hand-in with the same engine as ``labkit grade`` (preflight, snapshot and
sandboxed inspection of the models, the restored check cells, scoring) and :func:`results_json` turns the grade
into Gradescope's format: one test per check, the written answers listed as graded by hand, the flags in a
hidden test. Whatever happens, a valid results.json is written.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import traceback
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional
from ..environment import CHECKPOINTS as CHECKPOINTS_VARIABLE, OFFLINE

__all__ = ["AutograderSettings", "build_autograder", "find_hand_in", "grade_in_container", "results_json",
           "failure_results", "write_results", "main", "MEASURED", "HandInProblem"]

RESULTS = Path("results") / "results.json"
UNPRIVILEGED_USER = "student"
VENV = "/opt/labkit-venv"
CHECKPOINTS = "/opt/labkit-checkpoints"
# One graded run of each lab's solution with its models (quick mode, one thread, `labkit grade --jobs 1
# --threads 1`, preflight included), measured on the 2-core development machine on 2026-12-07 while other work
# kept its load at 4.2-5.0: the peak of the run's memory cgroup (what a container's limit counts, page cache
# included) and the command's wall time. Gradescope's containers get one CPU to themselves, so they take less.
MEASURED = {
    "01_gan_1d": {"peak_gb": 1.34, "seconds": 65},
    "02_cgan_mnist": {"peak_gb": 1.62, "seconds": 103},
    "03_dcgan_mnist": {"peak_gb": 1.65, "seconds": 107},
    "04_cwgan_gp_fashion": {"peak_gb": 1.59, "seconds": 102},
}

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root and with network, when it builds the autograder's image.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-venv python3-pip bubblewrap util-linux >/dev/null
python3 -m venv {venv}
{venv}/bin/python -m pip install -q --upgrade pip
# CPU PyTorch: the default wheels bring gigabytes of CUDA libraries that a grading container never uses.
{venv}/bin/python -m pip install -q torch torchvision --index-url "${{TORCH_INDEX:-https://download.pytorch.org/whl/cpu}}"
{venv}/bin/python -m pip install -q /autograder/source/kit nbval'>=0.10,<0.12' 'pytest>=7' 'ipykernel>=6' 'nbclient>=0.7'
mkdir -p {checkpoints} && cp /autograder/source/checkpoints/* {checkpoints}/ && chmod -R a+rX {checkpoints}
id {user} >/dev/null 2>&1 || useradd --create-home --shell /usr/sbin/nologin {user}
chmod -R go-rwx /autograder/source     # the submission's code runs as {user}: it cannot read this folder
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this in a fresh container per submission. It always leaves a valid results.json.
mkdir -p /autograder/results && chmod 700 /autograder/results
export {checkpoints_variable}={checkpoints} {offline_variable}=1
{venv}/bin/python -m labkit.grading.gradescope /autograder || true
if [ ! -s /autograder/results/results.json ]; then
  printf '%s' '{{"score": 0, "output": "The autograder could not start Python; nothing was graded. Please tell your instructor.", "output_format": "text", "tests": []}}' > /autograder/results/results.json
fi
"""


class HandInProblem(ValueError):
    """The hand-in is not one notebook (with its models): the message tells the student what to upload."""


@dataclass(frozen=True)
class AutograderSettings:
    """What ``run_autograder`` needs besides the hand-in (``settings.json`` in the zip)."""

    assignment: str
    timeout: float = 900.0        # seconds for the notebook, once its kernel is ready
    cell_timeout: float = 600.0
    startup: float = 180.0
    memory_gb: float = 3.0        # per run; the container's own limit must be higher (see build_autograder)

    @classmethod
    def read(cls, path: Path) -> "AutograderSettings":
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# --------------------------------------------------------------------------- building the zip (instructor)


def _kit_files(repo: Path) -> Dict[str, Path]:
    """zip name -> file: labkit's package (no caches) and what `pip install` needs to install it."""
    files = {f"kit/{name}": repo / name for name in ("pyproject.toml", "README.md") if (repo / name).is_file()}
    for path in sorted((repo / "labkit").rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            files[f"kit/{path.relative_to(repo).as_posix()}"] = path
    return files


def gradescope_settings_text(name: str, settings: AutograderSettings) -> str:
    """The settings a course enters on Gradescope for this lab, from :data:`MEASURED`."""
    measured = MEASURED.get(name, {"peak_gb": 2.0, "seconds": 120})
    memory = max(measured["peak_gb"] * 1.5, settings.memory_gb + 0.5)
    limit_minutes = int((settings.startup + settings.timeout + 240) / 60) + 1
    return (f"Gradescope settings for {name}: memory at least {memory:.1f} GB (a graded run peaked at "
            f"{measured['peak_gb']:.1f} GB; Gradescope's default 768 MB is too little), 1 CPU is enough (about "
            f"{measured['seconds']} s per hand-in with one CPU), and a time limit of {limit_minutes} minutes "
            f"(the notebook's own limit is {settings.timeout:.0f} s, plus the kernel's start, the model inspection "
            "and a margin). The grader follows the container's CPU quota for its threads.")


def build_autograder(name: str, out: Path, source: Optional[Path] = None, settings: Optional[AutograderSettings] = None,
                     repo: Optional[Path] = None) -> str:
    """Write the autograder zip for assignment ``name`` to ``out``; return the Gradescope settings to use."""
    from ..paths import checkpoints_dir, repo_root
    from .fingerprints import ReferenceIndex
    from ..course import STUDENT_CHECKPOINTS
    from ..notebook_format import release_notebook
    from .assignment import load_assignment

    import nbformat

    repo = Path(repo or repo_root())
    source = Path(source) if source else repo / "notebooks" / "solutions"
    settings = settings or AutograderSettings(assignment=name)
    assignment = load_assignment(name, source)   # fails clearly for an unknown name
    release = release_notebook(assignment.solution, name)
    with tempfile.TemporaryDirectory(prefix="labkit-autograder-") as tmp:
        references = Path(tmp) / "references"
        ReferenceIndex.build().write(references)
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            def add_text(arcname: str, text: str, executable: bool = False) -> None:
                info = zipfile.ZipInfo(arcname, date_time=(2026, 1, 1, 0, 0, 0))
                info.external_attr = (0o755 if executable else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, text)

            add_text("setup.sh", SETUP_SH.format(venv=VENV, checkpoints=CHECKPOINTS, user=UNPRIVILEGED_USER), True)
            add_text("run_autograder", RUN_AUTOGRADER.format(venv=VENV, checkpoints=CHECKPOINTS, checkpoints_variable=CHECKPOINTS_VARIABLE.name,
                                                     offline_variable=OFFLINE.name), True)
            add_text("settings.json", json.dumps(asdict(settings), indent=1))
            add_text(f"assignment/{name}.ipynb", nbformat.writes(release))
            for arcname, path in _kit_files(repo).items():
                archive.write(path, arcname)
            for path in sorted(references.iterdir()):
                archive.write(path, f"references/{path.name}")
            for checkpoint in STUDENT_CHECKPOINTS:
                if (checkpoints_dir() / checkpoint).is_file():
                    archive.write(checkpoints_dir() / checkpoint, f"checkpoints/{checkpoint}")
    return gradescope_settings_text(name, settings)


# --------------------------------------------------------------------------- grading one hand-in (container)


def find_hand_in(folder: Path) -> Path:
    """What to grade in Gradescope's submission folder: the folder itself (one notebook and its files) or the one
    zip it holds (from ``labkit pack``). :class:`HandInProblem` for zero or several notebooks."""
    skip = {"__MACOSX", ".ipynb_checkpoints"}
    notebooks, zips, seen = [], [], 0
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d not in skip and not d.startswith(".")] if \
            len(Path(root).relative_to(folder).parts) < 4 else []
        for name in files:
            seen += 1
            if seen > 5000:
                raise HandInProblem("the hand-in holds more than 5,000 files; upload the notebook and its models")
            path = Path(root) / name
            if name.endswith(".ipynb"):
                notebooks.append(path)
            elif name.endswith(".zip"):
                zips.append(path)
    if not notebooks and len(zips) == 1:
        try:
            with zipfile.ZipFile(zips[0]) as archive:
                inside = [n for n in archive.namelist() if n.endswith(".ipynb") and "__MACOSX" not in n
                          and ".ipynb_checkpoints" not in n]
        except (zipfile.BadZipFile, OSError):
            raise HandInProblem(f"{zips[0].name} is not a readable zip file; upload the zip `labkit pack` made, "
                                "or the notebook and its models") from None
        notebooks = [zips[0] / n for n in inside]
        if len(notebooks) == 1:
            return zips[0]
    if not notebooks:
        raise HandInProblem("no notebook (.ipynb) was handed in; upload your lab's notebook with the models it saved "
                            "(or the zip `labkit pack` made)")
    if len(notebooks) > 1:
        names = ", ".join(sorted(p.name for p in notebooks)[:6])
        raise HandInProblem(f"{len(notebooks)} notebooks were handed in ({names}); upload exactly one, your lab's, "
                            "with the models it saved")
    return folder


def _test(name: str, score: float, max_score: float, output: str, status: Optional[str] = None,
          visibility: str = "visible") -> Dict:
    from .report import inert_text

    test = {"name": inert_text(name), "score": round(float(score), 6), "max_score": round(float(max_score), 6),
            "output": inert_text(output), "visibility": visibility}
    if status:
        test["status"] = status
    return test


def results_json(grade, assignment, how: str, seconds: float) -> Dict:
    """Gradescope's results for one grade: a test per check, the written answers as graded by hand, the flags."""
    from .report import inert_text
    from .types import CheckState

    tests: List[Dict] = []
    for cid, info in assignment.checks.items():
        check = grade.checks[cid]
        status = "passed" if check.state is CheckState.PASSED else "failed"
        tests.append(_test(f"Check {cid}", check.points, info["points"], check.message, status))
    for aid, info in assignment.answers.items():
        written = bool((grade.answers.get(aid) or "").strip())
        tests.append(_test(f"Written answer {aid} ({info['points']:g} points, graded by hand)", 0, 0,
                           "written; your instructor grades it" if written else "no answer was found in the notebook"))
    if grade.flags:
        tests.append(_test("Flags for the instructor", 0, 0, "\n".join(grade.flags), visibility="hidden"))
    lines = [f"Automatic points: {grade.auto_points:g} of {grade.auto_max:g} "
             f"(plus up to {grade.manual_max:g} for the written answers, graded by hand).",
             f"Status: {grade.status.value}: {grade.reason}.", f"The notebook ran {how}."]
    lines += [f"Note: {note}" for note in grade.notes]
    return {"score": round(grade.auto_points, 6), "execution_time": int(round(seconds)),
            "output": inert_text("\n".join(lines)), "output_format": "text", "visibility": "visible",
            "stdout_visibility": "hidden", "tests": tests}


def failure_results(message: str, seconds: float) -> Dict:
    """A valid results.json for a hand-in that could not be graded, with the reason in words."""
    from .report import inert_text

    return {"score": 0, "execution_time": int(round(seconds)), "output": inert_text(message), "output_format": "text",
            "visibility": "visible", "stdout_visibility": "hidden", "tests": []}


def write_results(root: Path, results: Dict) -> Path:
    """Write results.json atomically (a half-written file reads as 'the autograder failed')."""
    path = Path(root) / RESULTS
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(results, ensure_ascii=True), encoding="utf-8")
    os.replace(partial, path)
    return path


def _isolation():
    """The bubblewrap sandbox where the container allows it, else the unprivileged user, else None."""
    from .sandbox import SandboxUnavailable, find_sandbox
    from .unprivileged import find_unprivileged_user

    try:
        return find_sandbox()
    except SandboxUnavailable:
        return find_unprivileged_user(UNPRIVILEGED_USER)


def grade_in_container(root: Path, log=lambda *_: None) -> Dict:
    """Grade ``root/submission`` with ``root/source``'s assignment and settings; Gradescope's results."""
    from .assignment import load_assignment
    from .batch import grade_submissions
    from .cgroup import threads_for_quota
    from .preflight import PreflightFailed, preflight
    from .references import ReferenceModels
    from .types import ReferencePolicy
    from .types import Limits

    start = time.monotonic()
    root = Path(root)
    settings = AutograderSettings.read(root / "source" / "settings.json")
    try:
        hand_in = find_hand_in(root / "submission")
    except HandInProblem as exc:
        return failure_results(f"Not graded: {exc}.", time.monotonic() - start)
    isolation = _isolation()
    how = isolation.describe() if isolation is not None else "without a sandbox or a separate user (not root here)"
    limits = Limits(cell_timeout=settings.cell_timeout, timeout=settings.timeout, startup=settings.startup,
                    memory_gb=settings.memory_gb, threads=threads_for_quota(os.cpu_count() or 1))
    try:
        preflight(limits, isolation)
    except PreflightFailed as exc:
        return failure_results(f"The autograder is not set up correctly, so your hand-in was not graded. Please "
                               f"tell your instructor: {exc}", time.monotonic() - start)
    assignment = load_assignment(settings.assignment, root / "source" / "assignment")
    with tempfile.TemporaryDirectory(prefix="labkit-gradescope-") as tmp:
        grades = grade_submissions(assignment, [hand_in], Path(tmp) / "out", limits, jobs=1, progress=False, log=log,
                                   sandbox=isolation, references=ReferenceModels(
                                       ReferencePolicy.REFUSE, index_folder=root / "source" / "references"))
    return results_json(grades[0], assignment, how, time.monotonic() - start)


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m labkit.grading.gradescope ROOT``: grade and always write ROOT/results/results.json."""
    argv = sys.argv[1:] if argv is None else argv
    root = Path(argv[0] if argv else "/autograder")
    start = time.monotonic()
    try:
        results = grade_in_container(root, log=print)
    except Exception as exc:  # noqa: BLE001 - the student gets a valid file whatever went wrong
        traceback.print_exc()
        results = failure_results(f"The autograder failed on this hand-in ({type(exc).__name__}); nothing was "
                                  "graded. Please tell your instructor.", time.monotonic() - start)
    write_results(root, results)
    print(json.dumps({"score": results["score"], "tests": len(results["tests"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
