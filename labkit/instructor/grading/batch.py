"""Grade a batch of submissions (``labkit grade``): the command's options, the pool of runs, and what it writes.

:func:`grade_submissions` prepares, runs and scores every submission (``--jobs`` at once), kills
every process tree still running when it is interrupted, and writes grades.csv, one feedback
page per submission and the logs. :func:`main` is the command behind ``labkit grade``.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from ...paths import repo_root
from .assignment import Assignment, load_assignment
from .intake import submission_names
from .plugin import check_nbval_version
from .prepare import Prepared, prepare
from .report import summary, write_csv, write_feedback
from .run import KernelRun, Limits, kill_process_tree, run_notebook
from .score import Grade, Status, new_grade, score

__all__ = ["add_arguments", "main", "grade_submissions", "grade_prepared"]


def add_arguments(parser) -> None:
    """The options of ``labkit grade`` (see docs/grading.md)."""
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help="notebooks (.ipynb), folders or zips; e.g. submissions/*")
    parser.add_argument("--assignment", required=True, metavar="NAME",
                        help="the assignment: 01_gan_1d, 02_cgan_mnist, 03_dcgan_mnist or 04_cwgan_gp_fashion "
                             "(any notebook name in --source)")
    parser.add_argument("--out", required=True, metavar="DIR", help="where grades.csv, feedback/ and logs/ go")
    parser.add_argument("--source", metavar="DIR",
                        help="folder of the instructor's notebooks with solutions (default: notebooks/solutions)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="submissions graded at once (default: half the CPUs)")
    parser.add_argument("--cell-timeout", type=float, default=600, metavar="S", help="seconds per cell (default 600)")
    parser.add_argument("--timeout", type=float, default=1800, metavar="S",
                        help="seconds per notebook, counted once its kernel is ready (default 1800)")
    parser.add_argument("--startup-timeout", type=float, default=180, metavar="S",
                        help="seconds for a kernel to start (default 180)")
    parser.add_argument("--memory", type=float, default=4, metavar="GB",
                        help="memory per submission: per process and for all its processes together (default 4; 0: none)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads per kernel (default: CPUs / jobs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep", action="store_true", help="keep the working copies (printed at the end)")


def grade_prepared(assignment: Assignment, prepared: Prepared, rundir: Path, limits: Limits, jobs: int = 1,
                   on_start=None) -> Tuple[Grade, Optional[KernelRun]]:
    """Run and score one prepared submission; an invalid one gets its row without running."""
    if prepared.status is Status.INVALID:
        grade = new_grade(assignment, prepared.submission, str(prepared.source), Status.INVALID, prepared.reason,
                          message=f"not graded: {prepared.reason}", flags=list(prepared.flags),
                          notes=list(prepared.notes))
        return grade, None
    run = run_notebook(prepared, rundir, limits, jobs=jobs, on_start=on_start)
    return score(assignment, prepared, run, limits), run


class _Running(NamedTuple):
    proc: object     # subprocess.Popen
    marker: str


class _Batch:
    """One ``labkit grade`` run: its folders, and the process trees running now (to kill them all on Ctrl-C)."""

    def __init__(self, assignment: Assignment, out: Path, limits: Limits, jobs: int, keep: bool):
        self.assignment, self.out, self.limits, self.jobs, self.keep = assignment, out, limits, jobs, keep
        self.tmp = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
        self.running: Dict[int, _Running] = {}
        self.lock = threading.Lock()

    def on_start(self, proc, marker: str) -> None:
        with self.lock:
            self.running[proc.pid] = _Running(proc, marker)

    def kill_all(self) -> None:
        with self.lock:
            for proc, marker in self.running.values():
                kill_process_tree(proc, marker)

    def _write_logs(self, name: str, prepared: Prepared, run: Optional[KernelRun], rundir: Path) -> None:
        import nbformat

        if prepared.graded is not None:
            nbformat.write(prepared.graded, str(self.out / "logs" / f"{name}.ipynb"))
        if run is not None:
            text = run.log + "\n--- per-cell results ---\n"
            try:
                text += (rundir / "results.jsonl").read_text(encoding="utf-8", errors="replace")
            except OSError:
                pass
            (self.out / "logs" / f"{name}.log").write_text(text, encoding="utf-8")

    def grade_one(self, name: str, path: Path) -> Grade:
        """Prepare, run and score one submission; write its feedback. A grader bug gives an error row."""
        workroot, rundir = self.tmp / "work", self.tmp / "runs" / name
        try:
            prepared = prepare(self.assignment, path, name, workroot)
            grade, run = grade_prepared(self.assignment, prepared, rundir, self.limits, jobs=self.jobs,
                                        on_start=self.on_start)
            self._write_logs(name, prepared, run, rundir)
        except Exception as exc:  # a grader bug on one submission must not stop the others
            reason = f"the grader failed on this submission ({type(exc).__name__}: {exc})"
            grade = new_grade(self.assignment, name, str(path), Status.ERROR, reason, message=reason)
        finally:
            if not self.keep:
                shutil.rmtree(workroot / name, ignore_errors=True)
                shutil.rmtree(rundir, ignore_errors=True)
        write_feedback(self.out / "feedback", self.assignment, grade)
        return grade

    def close(self, log) -> None:
        if self.keep:
            log(f"working copies kept in {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def _grade_all(batch: _Batch, names: List[str], paths: List[Path], progress: bool) -> List[Grade]:
    from tqdm import tqdm

    grades: List[Optional[Grade]] = [None] * len(paths)
    pool = ThreadPoolExecutor(max_workers=max(1, batch.jobs))
    bar = tqdm(total=len(paths), file=sys.stderr, disable=not progress, unit="submission", dynamic_ncols=True)
    try:
        futures = {pool.submit(batch.grade_one, names[i], paths[i]): i for i in range(len(paths))}
        for future in as_completed(futures):
            grade = grades[futures[future]] = future.result()
            bar.set_postfix_str(f"{grade.submission}: {grade.status.value} {grade.auto_points:g}/{grade.auto_max:g}")
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
                      keep: bool = False, log=print) -> List[Grade]:
    """Grade ``paths``; write grades.csv, feedback/ and logs/ under ``out``; return the grades."""
    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    start = time.monotonic()
    batch = _Batch(assignment, out, limits, jobs, keep)
    try:
        grades = _grade_all(batch, submission_names(paths), paths, progress)
    finally:
        batch.close(log)
    write_csv(out / "grades.csv", assignment, grades)
    log(summary(assignment, grades, time.monotonic() - start, jobs))
    log(f"grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}/; logs: {out / 'logs'}/")
    return grades


def _limits(args) -> Limits:
    if args.jobs < 1:
        raise ValueError("--jobs must be at least 1.")
    return Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, startup=args.startup_timeout,
                  memory_gb=args.memory, threads=args.threads)


def main(args, log=print) -> int:
    """``labkit grade``: load the assignment, grade the submissions, write the results."""
    if sys.platform == "win32":
        raise ValueError("labkit grade needs Linux or macOS (it uses POSIX process limits).")
    check_nbval_version()
    source = Path(args.source) if args.source else repo_root() / "notebooks" / "solutions"
    assignment = load_assignment(args.assignment, source)
    for skipped in assignment.skipped:
        log(f"note: {skipped.path} was not read for its check ids ({skipped.reason}); "
            "a submission of that assignment may not be recognised as one")
    limits = _limits(args)
    grade_submissions(assignment, args.submissions, Path(args.out), limits, jobs=args.jobs,
                      progress=not args.no_progress, keep=args.keep, log=log)
    return 0
