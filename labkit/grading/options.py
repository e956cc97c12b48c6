"""The options of ``labkit grade`` and what they mean as values (limits, reference policy): light on purpose, so
that ``labkit --help`` and ``labkit sample`` build their parser without importing the grading engine."""
from __future__ import annotations

import os

from .types import Limits, PlanKind, ReferencePolicy

__all__ = ["add_arguments", "reference_policy", "limits_from", "DEFAULTS"]

DEFAULTS = Limits()   # the one home of the limits' defaults: the parser, the grader and `labkit check` read them


def add_arguments(parser) -> None:
    """The options of ``labkit grade`` (see docs/grading.md)."""
    parser.add_argument("submissions", nargs="*", metavar="SUBMISSION",
                        help="notebooks (.ipynb), folders or zips, after `--` when a name starts with '-': "
                             "labkit grade --assignment NAME --out DIR -- submissions/*. `labkit grade collect DIR` "
                             "merges a cluster plan's results")
    parser.add_argument("--assignment", metavar="NAME",
                        help="the assignment: 01_gan_1d, 02_cgan_mnist, 03_dcgan_mnist or 04_cwgan_gp_fashion "
                             "(any notebook name in --source)")
    parser.add_argument("--out", metavar="DIR", help="where grades.csv, feedback/ and logs/ go (with --plan or "
                                                       "--task: the plan's folder)")
    parser.add_argument("--plan", choices=[kind.value for kind in PlanKind], help="write a cluster plan (one task per submission: a Slurm "
                        "job array or a Kubernetes Indexed Job) to --out instead of grading here")
    parser.add_argument("--task", type=int, metavar="INDEX", help="grade entry INDEX of the plan in --out (what a "
                        "cluster task runs)")
    parser.add_argument("--source", metavar="DIR",
                        help="folder of the instructor's notebooks with solutions (default: notebooks/solutions)")
    parser.add_argument("--jobs", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="submissions graded at once (default: half the CPUs)")
    parser.add_argument("--cell-timeout", type=float, default=DEFAULTS.cell_timeout, metavar="S",
                        help=f"seconds per cell (default {DEFAULTS.cell_timeout:g})")
    parser.add_argument("--timeout", type=float, default=DEFAULTS.timeout, metavar="S",
                        help=f"seconds per notebook, counted once its kernel is ready (default {DEFAULTS.timeout:g})")
    parser.add_argument("--startup-timeout", type=float, default=DEFAULTS.startup, metavar="S",
                        help=f"seconds for a kernel to start (default {DEFAULTS.startup:g})")
    parser.add_argument("--memory", type=float, default=DEFAULTS.memory_gb, metavar="GB",
                        help="memory per submission, shared memory included where a memory cgroup is available "
                             f"(default {DEFAULTS.memory_gb:g}; 0: none)")
    parser.add_argument("--threads", type=int, metavar="N", help="CPU threads per kernel (default: CPUs / jobs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keep", action="store_true", help="keep the working copies (printed at the end)")
    parser.add_argument("--allow-reference-models", action="store_true",
                        help="credit handed-in models that are reference checkpoints (checkpoints/, the solutions' "
                             "models): only for grading the course's own solution; by default such a model is "
                             "flagged and the checks that grade it get no points")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="run the notebooks without the bubblewrap sandbox (only for notebooks you trust: "
                             "they can then read and change anything the grading user can)")


def reference_policy(args) -> ReferencePolicy:
    """The policy the ``--allow-reference-models`` option asks for (``labkit grade`` and ``labkit check``)."""
    return ReferencePolicy.ALLOW if getattr(args, "allow_reference_models", False) else ReferencePolicy.REFUSE




def limits_from(args) -> Limits:
    """The limits the options ask for (``--jobs`` checked here too)."""
    if args.jobs < 1:
        raise ValueError("--jobs must be at least 1.")
    return Limits(cell_timeout=args.cell_timeout, timeout=args.timeout, startup=args.startup_timeout,
                  memory_gb=args.memory, threads=args.threads)
