"""How fast ``labkit grade`` is: N copies of one assignment's solution, compared with one plain run.

    python benchmarks/grading_throughput.py                          # the toy fixture assignment
    python benchmarks/grading_throughput.py --assignment 01_gan_1d   # a course notebook

1. Runs the solution notebook with plain nbval (``pytest --nbval-lax``, quick mode) in a scratch
   folder and times it, twice: with as many CPU threads as each graded kernel gets (CPUs / jobs),
   then with the default (all CPUs); the files the runs write (saved models, figures) stay there.
2. Makes N copies of that folder (notebook + files) as submissions and grades them with
   ``labkit grade --jobs J`` in a fresh process, timed from start to finish: each copy in its own
   bubblewrap sandbox, as graded for real (``--unsafe-no-sandbox`` times it without one).
3. Prints the times, the time per copy and the ratios (time per copy / one plain run); the
   target (issues 5 and 12) is a ratio of at most 3 (the exit status is 1 when it is missed).
4. Projects, from the measured cost per copy, the wall time of a course's hand-ins (``--hand-ins``,
   400 by default) on this one machine and on P parallel cluster tasks (``--tasks``): a task grades one
   hand-in at a time with this machine's CPUs / jobs, so one hand-in there takes about time per copy ×
   jobs (conservative: the J runs here also shared memory bandwidth and caches).
"""
from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURE_SOURCE = REPO / "tests" / "fixtures" / "grading" / "solutions"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--assignment", default="toy", help="notebook name (default: the toy fixture)")
    parser.add_argument("--source", help="folder of solution notebooks (default: the fixture for toy, "
                                         "notebooks/solutions otherwise)")
    parser.add_argument("--copies", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the scratch folder")
    parser.add_argument("--unsafe-no-sandbox", action="store_true", help="grade without the bubblewrap sandbox")
    parser.add_argument("--hand-ins", type=int, default=400, help="hand-ins to project the time for (default 400)")
    parser.add_argument("--tasks", type=int, nargs="*", default=[10, 50, 100],
                        help="parallel cluster tasks to project for (default 10 50 100)")
    args = parser.parse_args(argv)
    source = Path(args.source) if args.source else (
        FIXTURE_SOURCE if args.assignment == "toy" else REPO / "notebooks" / "solutions")
    notebook = source / f"{args.assignment}.ipynb"
    if not notebook.exists():
        parser.error(f"no {notebook}")

    scratch = Path(tempfile.mkdtemp(prefix="labkit-grade-bench-"))
    try:
        single = scratch / "single"
        single.mkdir()
        shutil.copy(notebook, single / notebook.name)
        (single / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        env = {**os.environ, "LABKIT_QUICK": "1"}
        env.pop("LABKIT_OUTPUT", None)
        threads = str(max(1, (os.cpu_count() or 1) // args.jobs))

        def plain_run(extra_env):
            start = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p",
                                   "no:cacheprovider", "-q", "-c", "pytest.ini", notebook.name],
                                  cwd=single, env={**env, **extra_env}, capture_output=True, text=True)
            return time.monotonic() - start, (done.stdout.strip().splitlines() or ["(no output)"])[-1]

        # The same thread count as each graded kernel gets (CPUs / jobs), then the default (all CPUs).
        once_threads, last_threads = plain_run({"OMP_NUM_THREADS": threads})
        once, last = plain_run({})
        (single / "pytest.ini").unlink()

        copies = scratch / "submissions"
        copies.mkdir()
        for i in range(args.copies):
            shutil.copytree(single, copies / f"student{i:02d}", ignore=shutil.ignore_patterns(".pytest_cache"))
        out = scratch / "grades"
        start = time.monotonic()
        graded = subprocess.run([sys.executable, "-m", "labkit", "grade", "--assignment", args.assignment,
                                 "--source", str(source), "--out", str(out), "--jobs", str(args.jobs),
                                 "--no-progress", *(["--unsafe-no-sandbox"] if args.unsafe_no_sandbox else []),
                                 *sorted(str(p) for p in copies.iterdir())],
                                capture_output=True, text=True)
        total = time.monotonic() - start
        if graded.returncode != 0:
            print(graded.stdout + graded.stderr)
            return 1
        with open(out / "grades.csv", newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        statuses = Counter(r["status"] for r in rows)
        points = Counter(f"{float(r['auto_points']):g}/{float(r['auto_max']):g}" for r in rows)
        per_copy = total / args.copies
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"assignment {args.assignment}: {os.cpu_count()} CPUs, load average {load:.1f} at the end")
        print(f"one plain nbval run (quick mode):   {once:7.1f} s   ({last})")
        print(f"  the same, OMP_NUM_THREADS={threads}:       {once_threads:7.1f} s   ({last_threads})")
        sandbox = "without a sandbox" if args.unsafe_no_sandbox else "each in its bwrap sandbox"
        print(f"grading {args.copies} copies, --jobs {args.jobs}:   {total:7.1f} s   "
              f"({sandbox}, {threads} thread(s) per kernel; status {dict(statuses)}, points {dict(points)})")
        print(f"per copy:                           {per_copy:7.1f} s")
        print(f"ratio per copy / plain run:         {per_copy / once:7.2f}   (target: at most 3)")
        print(f"  against the {threads}-thread plain run:    {per_copy / once_threads:7.2f}")
        for line in projection(args.hand_ins, per_copy, args.jobs, args.tasks):
            print(line)
        return 0 if per_copy <= 3 * min(once, once_threads) else 1
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def projection(hand_ins: int, per_copy: float, jobs: int, tasks) -> list:
    """Lines projecting the wall time of ``hand_ins`` from the measured seconds per copy."""
    one_run = per_copy * jobs   # one hand-in's wall time with CPUs / jobs to itself
    lines = [f"projected for {hand_ins} hand-ins: one machine like this one, --jobs {jobs}: "
             f"{_duration(hand_ins * per_copy)}"]
    for p in tasks:
        waves = -(-hand_ins // p)
        lines.append(f"  {p} cluster tasks at a time ({max(1, (os.cpu_count() or 1) // max(1, jobs))} CPU(s) each): "
                     f"{_duration(waves * one_run)} ({waves} waves of one hand-in per task, about {one_run:.0f} s "
                     "each)")
    return lines


if __name__ == "__main__":
    sys.exit(main())
