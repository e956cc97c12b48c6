"""Grading on a cluster: a plan of one task per hand-in for Slurm job arrays or Kubernetes Indexed Jobs, the task
itself, and the collecting step that merges the tasks' results into the same files a local run writes.

    labkit grade --plan slurm --assignment 01_gan_1d --out plan/ submissions/*   # manifest.json and the scripts
    sbatch plan/grade.sbatch                                                      # one task per hand-in, then collect
    labkit grade --task 7 --out plan/                                            # what task 7 runs
    labkit grade collect plan/                                                   # grades.csv, feedback/, logs/

Each task grades manifest entry ``$SLURM_ARRAY_TASK_ID`` / ``$JOB_COMPLETION_INDEX`` with the grading engine
(:func:`~.batch.grade_submissions`, the same preflight, sandbox, limits and scoring) into ``tasks/<index>/``;
``collect`` reads ``tasks/*/grade.json`` and writes ``grades.csv``, the feedback and the summary as ``labkit
grade`` would. An index without a result is a row with status ``error`` that says which task to run again; a
re-run of only the missing indices completes the plan.
"""
from __future__ import annotations

import json
import shlex
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List

from .batch import grade_submissions
from .types import PlanKind

__all__ = ["Plan", "write_plan", "run_task", "collect"]

MANIFEST = "manifest.json"
TASK_RESULT = "grade.json"


@dataclass
class Plan:
    """What every task of a cluster plan shares (``manifest.json``)."""

    assignment: str
    source: str
    kind: str
    submissions: List[str]
    names: List[str]
    limits: Dict = field(default_factory=dict)
    allow_reference_models: bool = False
    unsafe_no_sandbox: bool = False
    cpus: int = 2
    memory_gb: float = 6.0
    minutes: int = 40
    concurrency: int = 50

    @classmethod
    def read(cls, folder: Path) -> "Plan":
        path = Path(folder) / MANIFEST
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist: make the plan first with `labkit grade --plan slurm "
                                    "--assignment NAME --out DIR SUBMISSIONS...`")
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


def _task_command(folder: Path, index_variable: str) -> str:
    return (f"{shlex.quote(sys.executable)} -m labkit grade --task \"${{{index_variable}}}\" "
            f"--out {shlex.quote(str(folder))}")


def _sbatch(plan: Plan, folder: Path) -> str:
    last = len(plan.submissions) - 1
    return f"""#!/usr/bin/env bash
# One Slurm array task per hand-in; then collect.sbatch merges the results (submitted by the last lines).
#SBATCH --job-name=labkit-grade-{plan.assignment}
#SBATCH --array=0-{last}%{plan.concurrency}
#SBATCH --cpus-per-task={plan.cpus}
#SBATCH --mem={int(plan.memory_gb * 1024)}M
#SBATCH --time={plan.minutes}
#SBATCH --output={folder}/tasks/slurm-%a.out
export OMP_NUM_THREADS={plan.cpus}
{_task_command(folder, "SLURM_ARRAY_TASK_ID")}
"""


def _collect_sbatch(plan: Plan, folder: Path) -> str:
    return f"""#!/usr/bin/env bash
# Merges the tasks' results once the array has ended, whatever each task's outcome (afterany).
#SBATCH --job-name=labkit-collect-{plan.assignment}
#SBATCH --cpus-per-task=1
#SBATCH --mem=1024M
#SBATCH --time=10
#SBATCH --output={folder}/collect.out
{shlex.quote(sys.executable)} -m labkit grade collect {shlex.quote(str(folder))}
"""


def _submit_sh(folder: Path) -> str:
    return f"""#!/usr/bin/env bash
# Submit the array, then the collecting job that waits for it.
set -euo pipefail
array=$(sbatch --parsable {shlex.quote(str(folder / "grade.sbatch"))})
sbatch --dependency=afterany:${{array%%;*}} {shlex.quote(str(folder / "collect.sbatch"))}
"""


def _job_yaml(plan: Plan, folder: Path) -> str:
    count = len(plan.submissions)
    args = json.dumps(["python", "-m", "labkit", "grade", "--task", "$(JOB_COMPLETION_INDEX)", "--out", str(folder)])
    return f"""# A Kubernetes Indexed Job: one pod per hand-in, its index in JOB_COMPLETION_INDEX. The image is the
# Dockerfile beside this file; {folder} must be the same shared volume in every pod (a ReadWriteMany claim).
apiVersion: batch/v1
kind: Job
metadata:
  name: labkit-grade-{plan.assignment.replace("_", "-")}
spec:
  completionMode: Indexed
  completions: {count}
  parallelism: {min(plan.concurrency, count)}
  backoffLimitPerIndex: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: grade
        image: labkit-grader:latest
        command: {args}
        env:
        - name: OMP_NUM_THREADS
          value: "{plan.cpus}"
        resources:
          requests:
            cpu: "{plan.cpus}"
            memory: "{int(plan.memory_gb * 1024)}Mi"
          limits:
            cpu: "{plan.cpus}"
            memory: "{int(plan.memory_gb * 1024)}Mi"
        securityContext:
          seccompProfile:
            type: Unconfined
          appArmorProfile:
            type: Unconfined
        volumeMounts:
        - name: grading
          mountPath: {folder}
      volumes:
      - name: grading
        persistentVolumeClaim:
          claimName: labkit-grading
"""


DOCKERFILE = """# The image of the Indexed Job's pods: the course kit with bubblewrap (each hand-in still runs in its sandbox).
FROM python:3.11-slim
RUN apt-get update && apt-get install -y --no-install-recommends bubblewrap && rm -rf /var/lib/apt/lists/*
COPY . /course
WORKDIR /course
RUN python -m pip install --no-cache-dir -r requirements.txt
"""


def write_plan(kind: str, folder: Path, assignment: str, source: Path, submissions: List[Path], limits: Dict,
               allow_reference_models: bool = False, unsafe_no_sandbox: bool = False, cpus: int = 2,
               memory_gb: float = 6.0, minutes: int = 40, concurrency: int = 50) -> Plan:
    """Write the plan's manifest and the scripts of ``kind`` (``slurm`` or ``kubernetes``) to ``folder``."""
    from .intake import submission_names

    kind = PlanKind(kind).value   # ValueError for another scheduler
    folder = Path(folder).resolve()
    (folder / "tasks").mkdir(parents=True, exist_ok=True)
    paths = [Path(p).resolve() for p in submissions]
    plan = Plan(assignment=assignment, source=str(Path(source).resolve()), kind=kind,
                submissions=[str(p) for p in paths], names=submission_names(paths), limits=limits,
                allow_reference_models=allow_reference_models, unsafe_no_sandbox=unsafe_no_sandbox, cpus=cpus,
                memory_gb=memory_gb, minutes=minutes, concurrency=concurrency)
    (folder / MANIFEST).write_text(json.dumps(asdict(plan), indent=1), encoding="utf-8")
    if kind == PlanKind.SLURM.value:
        (folder / "grade.sbatch").write_text(_sbatch(plan, folder), encoding="utf-8")
        (folder / "collect.sbatch").write_text(_collect_sbatch(plan, folder), encoding="utf-8")
        (folder / "submit.sh").write_text(_submit_sh(folder), encoding="utf-8")
        (folder / "submit.sh").chmod(0o755)
    else:
        (folder / "job.yaml").write_text(_job_yaml(plan, folder), encoding="utf-8")
        (folder / "Dockerfile").write_text(DOCKERFILE, encoding="utf-8")
    return plan


def run_task(folder: Path, index: int, log=print) -> int:
    """Grade manifest entry ``index`` into ``tasks/<index>/`` (grade.json, feedback, logs); 0 when it wrote one."""
    from .assignment import load_assignment
    from .preflight import preflight
    from .references import ReferenceModels
    from .types import ReferencePolicy
    from .types import Limits
    from .sandbox import find_sandbox
    from .types import grade_to_dict

    folder = Path(folder)
    plan = Plan.read(folder)
    if not 0 <= index < len(plan.submissions):
        raise ValueError(f"task index {index} is outside the plan (0 to {len(plan.submissions) - 1})")
    sandbox = None if plan.unsafe_no_sandbox else find_sandbox()
    limits = Limits(**plan.limits)
    preflight(limits, sandbox)
    assignment = load_assignment(plan.assignment, Path(plan.source))
    out = folder / "tasks" / str(index)
    if out.exists():
        shutil.rmtree(out)
    policy = ReferencePolicy.ALLOW if plan.allow_reference_models else ReferencePolicy.REFUSE
    grades = grade_submissions(assignment, [Path(plan.submissions[index])], out, limits, jobs=1, progress=False,
                               log=log, sandbox=sandbox, references=ReferenceModels(policy),
                               names=[plan.names[index]])
    partial = out / (TASK_RESULT + ".partial")
    partial.write_text(json.dumps(grade_to_dict(grades[0])), encoding="utf-8")
    partial.replace(out / TASK_RESULT)
    return 0


def collect(folder: Path, log=print) -> List:
    """Merge ``tasks/*/grade.json`` into grades.csv, feedback/ and logs/ in ``folder``; the grades, in plan order.

    A task that failed or never ran gives a row with status ``error`` saying which index to run again.
    """
    from .assignment import load_assignment
    from .report import inert_text, summary, write_csv, write_feedback
    from .score import new_grade
    from .types import Status, grade_from_dict

    folder = Path(folder)
    plan = Plan.read(folder)
    assignment = load_assignment(plan.assignment, Path(plan.source))
    (folder / "feedback").mkdir(exist_ok=True)
    (folder / "logs").mkdir(exist_ok=True)
    grades, missing = [], []
    for index, (name, source) in enumerate(zip(plan.names, plan.submissions)):
        task = folder / "tasks" / str(index)
        try:
            grade = grade_from_dict(json.loads((task / TASK_RESULT).read_text(encoding="utf-8")))
            for log_file in sorted((task / "logs").glob("*")) if (task / "logs").is_dir() else []:
                shutil.copyfile(log_file, folder / "logs" / log_file.name)
        except (OSError, ValueError, KeyError, TypeError):
            missing.append(index)
            reason = (f"cluster task {index} left no result (it failed, was stopped or never ran); run it again: "
                      f"labkit grade --task {index} --out {folder}, then labkit grade collect {folder}")
            grade = new_grade(assignment, name, source, Status.ERROR, reason, message=f"not graded: {reason}")
        write_feedback(folder / "feedback", assignment, grade)
        grades.append(grade)
    write_csv(folder / "grades.csv", assignment, grades)
    seconds = sum(g.seconds for g in grades)
    log(inert_text(summary(assignment, grades, seconds, len(grades))))
    if missing:
        log(f"missing results for task{'s' if len(missing) > 1 else ''} {', '.join(map(str, missing))}: run "
            f"only those again (labkit grade --task N --out {folder}), then collect again")
    log(f"grades: {folder / 'grades.csv'}; feedback: {folder / 'feedback'}/; logs: {folder / 'logs'}/")
    return grades
