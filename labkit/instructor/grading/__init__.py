"""``labkit grade``: grade a folder of submissions with nbval, fairly and robustly.

::

    labkit grade --assignment 01_gan_1d --out grades/01 submissions/*

A submission is a notebook (``.ipynb``), or a folder or zip holding the notebook with its
saved models and READ_ME.txt. Each one runs in its own process, on a copy, in quick mode,
with the instructor's check cells put back, under time and memory limits; see
docs/grading.md for what is written and how grading works. The pieces:

* :mod:`labkit.instructor.grading.prepare`: copy, validate, restore check cells, scan for tampering;
* :mod:`labkit.instructor.grading.run`: run under limits, map nbval's per-cell results to points;
* :mod:`labkit.instructor.grading.plugin`: the pytest plugin inside each run (and nbval work-arounds);
* :mod:`labkit.instructor.grading.guard`: the guard cells inside each kernel;
* :mod:`labkit.instructor.grading.report`: grades.csv, feedback (.md and .html), summary.
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

from ...paths import repo_root

__all__ = ["add_arguments", "main", "grade_submissions"]


def add_arguments(parser) -> None:
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


def grade_submissions(assignment, paths, out: Path, limits, jobs: int = 1, progress: bool = True,
                      keep: bool = False, log=print):
    """Grade ``paths``; write grades.csv, feedback/ and logs/ under ``out``; return the grades."""
    from tqdm import tqdm

    from .prepare import prepare, submission_names
    from .report import summary, write_csv, write_feedback
    from .run import Grade, _kill_all, grade_prepared

    out = Path(out)
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    paths = [Path(p) for p in paths]
    names = submission_names(paths)
    tmp = Path(tempfile.mkdtemp(prefix="labkit-grade-"))
    running, lock = {}, threading.Lock()
    start = time.monotonic()

    def on_start(proc, marker):
        with lock:
            running[proc.pid] = (proc, marker)

    def work(index):
        name, path = names[index], paths[index]
        workroot, rundir = tmp / "work", tmp / "runs" / name
        try:
            prepared = prepare(assignment, path, name, workroot)
            grade, run = grade_prepared(assignment, prepared, rundir, limits, jobs=jobs, on_start=on_start)
            if prepared.graded is not None:
                import nbformat

                nbformat.write(prepared.graded, str(out / "logs" / f"{name}.ipynb"))
            if run is not None:
                text = run.log + "\n--- per-cell results ---\n"
                try:
                    text += (rundir / "results.jsonl").read_text(encoding="utf-8", errors="replace")
                except OSError:
                    pass
                (out / "logs" / f"{name}.log").write_text(text, encoding="utf-8")
        except Exception as exc:  # a grader bug on one submission must not stop the others
            grade = Grade(submission=name, source=str(path), status="error",
                          reason=f"the grader failed on this submission ({type(exc).__name__}: {exc})",
                          auto_points=0.0, auto_max=assignment.auto_max, manual_max=assignment.manual_max)
            for cid, info in assignment.checks.items():
                grade.checks[cid] = {"points": 0.0, "max": info["points"], "state": "not run", "message": grade.reason}
        finally:
            if not keep:
                shutil.rmtree(workroot / name, ignore_errors=True)
                shutil.rmtree(rundir, ignore_errors=True)
        write_feedback(out / "feedback", assignment, grade)
        return index, grade

    grades = [None] * len(paths)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    bar = tqdm(total=len(paths), file=sys.stderr, disable=not progress, unit="submission", dynamic_ncols=True)
    try:
        futures = [pool.submit(work, i) for i in range(len(paths))]
        for future in as_completed(futures):
            index, grade = future.result()
            grades[index] = grade
            bar.set_postfix_str(f"{grade.submission}: {grade.status} {grade.auto_points:g}/{grade.auto_max:g}")
            bar.update(1)
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        with lock:
            for proc, marker in running.values():
                _kill_all(proc, marker)
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True)
        if keep:
            log(f"working copies kept in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    write_csv(out / "grades.csv", assignment, grades)
    log(summary(assignment, grades, time.monotonic() - start, jobs))
    log(f"grades: {out / 'grades.csv'}; feedback: {out / 'feedback'}/; logs: {out / 'logs'}/")
    return grades


def main(args) -> int:
    from .prepare import load_assignment
    from .run import Limits

    if sys.platform == "win32":
        raise ValueError("labkit grade needs Linux or macOS (it uses POSIX process limits).")
    source = Path(args.source) if args.source else repo_root() / "notebooks" / "solutions"
    assignment = load_assignment(args.assignment, source)
    if args.jobs < 1:
        raise ValueError("--jobs must be at least 1.")
    limits = Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, startup=args.startup_timeout,
                    memory_gb=args.memory, threads=args.threads)
    grade_submissions(assignment, args.submissions, Path(args.out), limits, jobs=args.jobs,
                      progress=not args.no_progress, keep=args.keep)
    return 0
