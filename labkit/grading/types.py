"""The values the grading stages pass each other: limits, kill reasons, reference policy and matches, check results
and the grade of one submission (one home for each, so that no stage imports another for its types)."""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Dict, List, NamedTuple, Optional

__all__ = ["Limits", "PlanKind", "Killed", "ReferencePolicy", "ReferenceMatch", "Status", "CheckState", "CheckResult", "CellError",
           "Grade", "grade_to_dict", "grade_from_dict"]


@dataclass
class Limits:
    cell_timeout: float = 600.0      # seconds per cell (nbval --nbval-cell-timeout)
    timeout: float = 1800.0          # seconds per notebook, from the moment its kernel is ready
    startup: float = 180.0           # seconds for pytest and the kernel to start
    memory_gb: float = 4.0           # per process (RLIMIT_DATA) and for the whole process tree (RSS)
    file_gb: float = 2.0             # largest file a submission may write
    output_wait: float = 60.0        # nbval's wait for a finished cell's output (its own default: 5 s)
    threads: Optional[int] = None    # OMP/MKL threads per kernel (default: CPUs / jobs)
    processes: int = 256             # processes of one run at once (a fork bomb is killed)


class PlanKind(str, Enum):
    """The cluster schedulers ``labkit grade --plan`` writes for."""

    SLURM = "slurm"
    KUBERNETES = "kubernetes"

    def __str__(self) -> str:
        return self.value


class Killed(str, Enum):
    """Why the grader killed a run."""

    STARTUP = "startup"   # the kernel did not start within Limits.startup
    TIMEOUT = "timeout"   # the notebook ran past Limits.timeout
    MEMORY = "memory"     # the process tree used more than Limits.memory_gb
    PROCESSES = "processes"   # the run had more than Limits.processes processes at once

    def __str__(self) -> str:
        return self.value


class ReferencePolicy(str, Enum):
    """What the grader does with a handed-in model that is a reference checkpoint."""

    REFUSE = "refuse"   # flag it; the checks that grade it get no points (students' hand-ins)
    ALLOW = "allow"     # note it and credit it: the course's own solution (--allow-reference-models)

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class ReferenceMatch:
    """A handed-in file that is a reference model, and how it was recognised."""

    file: str
    reference: str
    how: str            # one of HOWS
    distance: float = 0.0

    def describe(self) -> str:
        if self.how == "derived":
            return f"derived from it: weights {self.distance:.3f} apart, relative, after fine-tuning at most"
        return self.how

    def flag(self) -> str:
        return (f"{self.file} is the reference model {self.reference} ({self.describe()}): a shipped or reference "
                "checkpoint, or a fine-tune of one, handed in as the group's own model earns no quality points")


class Status(str, Enum):
    """A submission's status, as written in grades.csv."""

    OK = "ok"              # ran to the end
    ERROR = "error"        # a cell raised an error, the kernel died, or the run used too much memory
    TIMEOUT = "timeout"    # a cell or the notebook ran past its time limit
    INVALID = "invalid"    # not a gradable notebook of this assignment

    def __str__(self) -> str:
        return self.value


class CheckState(str, Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_RUN = "not run"

    def __str__(self) -> str:
        return self.value


@dataclass
class CheckResult:
    """The outcome of one check for one submission."""

    points: float
    max: float
    state: CheckState = CheckState.NOT_RUN
    message: str = "not run"


class CellError(NamedTuple):
    """A student or standard cell that failed: where, the error line, the end of its traceback."""

    where: str
    error: str
    traceback: str = ""


@dataclass
class Grade:
    submission: str
    source: str
    status: Status
    reason: str
    auto_points: float
    auto_max: float
    manual_max: float
    checks: Dict[str, CheckResult] = field(default_factory=dict)
    flags: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    errors: List[CellError] = field(default_factory=list)
    answers: Dict[str, Optional[str]] = field(default_factory=dict)
    seconds: float = 0.0
    references: List[ReferenceMatch] = field(default_factory=list)  # handed-in models refused as reference models


def grade_to_dict(grade: Grade) -> Dict:
    """A grade as plain JSON data (a cluster task's result, read back by :func:`grade_from_dict`)."""
    return {"submission": grade.submission, "source": grade.source, "status": grade.status.value,
            "reason": grade.reason, "auto_points": grade.auto_points, "auto_max": grade.auto_max,
            "manual_max": grade.manual_max, "seconds": grade.seconds, "flags": list(grade.flags),
            "notes": list(grade.notes), "answers": dict(grade.answers),
            "checks": {cid: {"points": c.points, "max": c.max, "state": c.state.value, "message": c.message}
                       for cid, c in grade.checks.items()},
            "errors": [list(e) for e in grade.errors],
            "references": [[m.file, m.reference, m.how, m.distance] for m in grade.references]}


def grade_from_dict(data: Dict) -> Grade:
    """The grade :func:`grade_to_dict` wrote (ValueError or KeyError when it is not one)."""
    return Grade(submission=str(data["submission"]), source=str(data["source"]), status=Status(data["status"]),
                 reason=str(data["reason"]), auto_points=float(data["auto_points"]), auto_max=float(data["auto_max"]),
                 manual_max=float(data["manual_max"]), seconds=float(data.get("seconds", 0.0)),
                 flags=[str(f) for f in data.get("flags", [])], notes=[str(n) for n in data.get("notes", [])],
                 answers={str(k): v for k, v in data.get("answers", {}).items()},
                 checks={cid: CheckResult(float(c["points"]), float(c["max"]), CheckState(c["state"]), str(c["message"]))
                         for cid, c in data["checks"].items()},
                 errors=[CellError(*map(str, e)) for e in data.get("errors", [])],
                 references=[ReferenceMatch(str(f), str(r), str(h), float(d)) for f, r, h, d in data.get("references", [])])
