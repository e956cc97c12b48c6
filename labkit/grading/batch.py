"""Grade a batch of submissions (``labkit grade``): the command's options, the pool of runs, and what it writes.

:func:`grade_submissions` prepares, runs and scores every submission (``--jobs`` at once), each in
its own sandbox and its own temporary folder (the only one its cleanup touches), kills every
process tree still running when it is interrupted, and writes grades.csv (one row per
submission given, whatever happens), one feedback page per submission and the logs. Handed-in models
that are reference checkpoints are compared once per run against one index and earn no quality points
unless the grader is told ``--allow-reference-models``. :func:`main` is the command behind ``labkit
grade``: it refuses to run without a working sandbox unless told ``--unsafe-no-sandbox``.
"""
from __future__ import annotations

import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from .assignment import Assignment
from .hostfs import remove_tree
from .intake import submission_names
from .prepare import Prepared, prepare
from .inspection import MODELS_DIR
from .references import ReferenceModels
from .report import summary, write_csv, write_feedback
from .report import inert_text
from .run import KernelRun, kill_process_tree, run_notebook
from .types import Limits
from .sandbox import Sandbox
from .score import new_grade, score
from .types import Grade, Status

__all__ = ["grade_submissions", "grade_prepared"]


def grade_prepared(assignment: Assignment, prepared: Prepared, rundir: Path, limits: Limits, jobs: int = 1,
                   on_start=None, sandbox: Optional[Sandbox] = None) -> Tuple[Grade, Optional[KernelRun]]:
    """Run and score one prepared submission (its check cells read the snapshot of its graded model files, mounted
    read-only); an invalid one gets its row without running."""
    if prepared.status is Status.INVALID:
        grade = new_grade(assignment, prepared.submission, str(prepared.source), Status.INVALID, prepared.reason,
                          message=f"not graded: {prepared.reason}", flags=list(prepared.flags),
                          notes=list(prepared.notes))
        return grade, None
    readonly = [(prepared.models, MODELS_DIR)] if prepared.models is not None else []
    run = run_notebook(prepared, rundir, limits, jobs=jobs, on_start=on_start, sandbox=sandbox, readonly=readonly)
    return score(assignment, prepared, run, limits), run


class _Running(NamedTuple):
    proc: object     # subprocess.Popen
    marker: str


class _Batch:
    """One ``labkit grade`` run: its folders, and the process trees running now (to kill them all on Ctrl-C)."""

    def __init__(self, assignment: Assignment, out: Path, limits: Limits, jobs: int, keep: bool,
                 sandbox: Optional[Sandbox], references: ReferenceModels):
        self.assignment, self.out, self.limits, self.jobs, self.keep = assignment, out, limits, jobs, keep
        self.sandbox, self.references = sandbox, references
        self.tmp = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
        self.running: Dict[int, _Running] = {}
        self.cleanup_problems: List[str] = []
        self.lock = threading.Lock()

    def on_start(self, proc, marker: str) -> None:
        with self.lock:
            self.running[proc.pid] = _Running(proc, marker)

    def kill_all(self) -> None:
        with self.lock:
            for proc, marker in self.running.values():
                kill_process_tree(proc, marker)

    def _write_logs(self, name: str, prepared: Prepared, run: Optional[KernelRun]) -> None:
        import nbformat

        if prepared.graded is not None:
            text = inert_text(nbformat.writes(prepared.graded))
            (self.out / "logs" / f"{name}.ipynb").write_text(text, encoding="utf-8")
        if run is not None:
            text = run.log + "\n--- per-cell results ---\n" + "\n".join(run.raw) + "\n"
            (self.out / "logs" / f"{name}.log").write_text(inert_text(text), encoding="utf-8")

    def grade_one(self, name: str, path: Path) -> Grade:
        """Prepare, run and score one submission; write its feedback. A grader bug gives an error row.

        Everything of this submission lives in a fresh folder of its own, the only one removed afterwards.
        """
        own = None
        try:
            own = Path(tempfile.mkdtemp(prefix=f"{name[:40]}-", dir=self.tmp))
            prepared = prepare(self.assignment, path, name, own / "work", references=self.references,
                               sandbox=self.sandbox, limits=self.limits)
            grade, run = grade_prepared(self.assignment, prepared, own / "run", self.limits, jobs=self.jobs,
                                        on_start=self.on_start, sandbox=self.sandbox)
            self._write_logs(name, prepared, run)
        except Exception as exc:  # a grader bug on one submission must not stop the others
            grade = _grader_failed(self.assignment, name, path, exc, self.out / "logs")
        finally:
            if own is not None and not self.keep:
                self._remove(own)
        try:
            write_feedback(self.out / "feedback", self.assignment, grade)
        except Exception as exc:  # the row still counts
            grade.notes.append(f"the feedback page could not be written ({type(exc).__name__}: {exc})")
        return grade

    def _remove(self, folder: Path) -> None:
        problem = remove_tree(folder)   # iterative and bounded: a run's 6,000-deep /tmp tree cannot raise here
        if problem:
            with self.lock:
                self.cleanup_problems.append(problem)

    def close(self, log) -> None:
        """Remove the batch's working folder (after the grades are written); never raises."""
        if self.keep:
            log(f"working copies kept in {self.tmp}")
        else:
            self._remove(self.tmp)
        for problem in self.cleanup_problems:
            log(inert_text(f"note: clean-up: {problem}"))


def _grader_failed(assignment: Assignment, name: str, path, exc: BaseException, logs: Optional[Path] = None) -> Grade:
    """The row of a submission the grader itself failed on; the traceback goes to ``logs/NAME.grader.log``."""
    log_name = f"{name}.grader.log"
    try:
        if logs is not None:
            text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
            (logs / log_name).write_text(inert_text(text), encoding="utf-8")
    except Exception:  # the row matters more than its log
        pass
    reason = (f"the grader itself failed on this submission ({type(exc).__name__}), so nothing was scored; this is "
              f"a bug of the grader, not the student's: grade it again, and report logs/{log_name}")
    return new_grade(assignment, name, str(path), Status.ERROR, reason, message=reason)


def _grade_all(batch: _Batch, names: List[str], paths: List[Path], progress: bool) -> List[Grade]:
    from tqdm import tqdm

    grades: List[Optional[Grade]] = [None] * len(paths)
    pool = ThreadPoolExecutor(max_workers=max(1, batch.jobs))
    bar = tqdm(total=len(paths), file=sys.stderr, disable=not progress, unit="submission", dynamic_ncols=True)
    try:
        futures = {pool.submit(batch.grade_one, names[i], paths[i]): i for i in range(len(paths))}
        for future in as_completed(futures):
            i = futures[future]
            try:
                grade = future.result()
            except Exception as exc:  # every submission gets its row
                grade = _grader_failed(batch.assignment, names[i], paths[i], exc, batch.out / "logs")
            grades[i] = grade
            bar.set_postfix_str(inert_text(f"{grade.submission}: {grade.status.value} "
                                          f"{grade.auto_points:g}/{grade.auto_max:g}"))
            bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        batch.kill_all()
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True)
    return grades


def grade_submissions(assignment: Assignment, paths, out: Path, limits: Limits, jobs: int = 1, progress: bool = True,
                      keep: bool = False, log=print, sandbox: Optional[Sandbox] = None,
                      references: Optional[ReferenceModels] = None,
                      names: Optional[List[str]] = None) -> List[Grade]:
    """Grade ``paths``; write grades.csv, feedback/ and logs/ under ``out``; return the grades.

    ``sandbox``: run each submission in it (:func:`~.sandbox.find_sandbox`); None runs them without one.
    ``references``: the reference models and what to do with a submission's copy of one (default: refuse
    credit for it, comparing against ``checkpoints/`` and ``notebooks/solutions/``).
    """
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    start = time.monotonic()
    batch = _Batch(assignment, out, limits, jobs, keep, sandbox, references or ReferenceModels())
    try:
        grades = _grade_all(batch, names or submission_names(paths), paths, progress)
        # The grades first, the clean-up after: nothing a run left behind can cost the batch its results.
        write_csv(out / "grades.csv", assignment, grades)
        log(inert_text(summary(assignment, grades, time.monotonic() - start, jobs)))
        log(inert_text(f"grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}/; logs: {out / 'logs'}/"))
    finally:
        batch.close(log)
    return grades
