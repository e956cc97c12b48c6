"""``labkit grade``: grade here, write a cluster plan (``--plan``), run one of its tasks (``--task``) or merge its
results (``labkit grade collect DIR``); the options are in :mod:`.options`."""
from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

from ..paths import repo_root
from .assignment import load_assignment
from .batch import grade_submissions
from .cgroup import memory_control
from .cluster import collect, run_task, write_plan
from .options import limits_from, reference_policy
from .preflight import preflight
from .references import ReferenceModels
from .sandbox import find_sandbox, python_executable
from .types import ReferencePolicy

__all__ = ["main"]


def _write_plan(args, log) -> int:
    source = Path(args.source) if args.source else repo_root() / "notebooks" / "solutions"
    load_assignment(args.assignment, source)   # an unknown assignment fails here, not in 400 tasks
    limits = limits_from(args)
    cpus = limits.threads or 2
    minutes = int((limits.startup + limits.timeout + 300) / 60) + 1
    plan = write_plan(args.plan, Path(args.out), args.assignment, source, [Path(p) for p in args.submissions],
                      asdict(limits), allow_reference_models=args.allow_reference_models,
                      unsafe_no_sandbox=args.unsafe_no_sandbox, cpus=cpus, memory_gb=limits.memory_gb + 2,
                      minutes=minutes)
    first = "bash submit.sh" if args.plan == "slurm" else "kubectl apply -f job.yaml"
    log(f"plan for {len(plan.submissions)} submissions written to {args.out} ({args.plan}); start it with `{first}` "
        f"there, then `labkit grade collect {args.out}`")
    return 0


def _needs(args, *names) -> None:
    missing = [f"--{n}" for n in names if not getattr(args, n)]
    if missing or (not args.submissions):
        what = ", ".join(missing + ([] if args.submissions else ["the submissions"]))
        raise ValueError(f"labkit grade needs {what}: labkit grade --assignment NAME --out DIR -- SUBMISSION...")


def main(args, log=print) -> int:
    """``labkit grade``: load the assignment, grade the submissions, write the results (or, with ``--plan``, a
    cluster plan; with ``--task``, one entry of a plan; ``labkit grade collect DIR``, a plan's merged results)."""
    if sys.platform == "win32":
        raise ValueError("labkit grade needs Linux or macOS (it uses POSIX process limits).")
    if args.submissions[:1] == ["collect"] and len(args.submissions) == 2 and not args.assignment:
        collect(Path(args.submissions[1]), log=log)
        return 0
    if args.task is not None:
        if not args.out:
            raise ValueError("labkit grade --task INDEX needs --out DIR, the plan's folder")
        return run_task(Path(args.out), args.task, log=log)
    _needs(args, "assignment", "out")
    if args.plan:
        return _write_plan(args, log)
    sandbox = None
    if args.unsafe_no_sandbox:
        log("warning: --unsafe-no-sandbox: the notebooks run with your permissions, outside any sandbox; grade "
            "only notebooks you trust this way")
    else:
        sandbox = find_sandbox()  # SandboxUnavailable says how to install bubblewrap
    source = Path(args.source) if args.source else repo_root() / "notebooks" / "solutions"
    assignment = load_assignment(args.assignment, source)
    for skipped in assignment.skipped:
        log(f"note: {skipped.path} was not read for its check ids ({skipped.reason}); "
            "a submission of that assignment may not be recognised as one")
    limits = limits_from(args)
    preflight(limits, sandbox)  # PreflightFailed: what is missing in which interpreter; nothing is graded
    log(f"preflight: a one-cell notebook ran as submissions will ({python_executable()}, "
        f"{sandbox.describe() if sandbox else 'without a sandbox'})")
    if limits.memory_gb > 0:
        log(f"memory: at most {limits.memory_gb:g} GB per submission, enforced by {memory_control().describe()}")
    from .inside.plugin import check_nbval_version  # imports pytest: only once the preflight found it

    check_nbval_version()
    policy = reference_policy(args)
    if policy is ReferencePolicy.ALLOW:
        log("note: --allow-reference-models: handed-in models that are reference checkpoints are credited "
            "(for grading the course's own solution)")
    grade_submissions(assignment, args.submissions, Path(args.out), limits, jobs=args.jobs,
                      progress=not args.no_progress, keep=args.keep, log=log, sandbox=sandbox,
                      references=ReferenceModels(policy))
    return 0
