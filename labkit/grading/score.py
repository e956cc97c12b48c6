"""Score one run: points per check, a status and a one-sentence reason, from the per-cell results (score → Grade).

A check gets its points if its cell ran, the kernel's execute reply to it said "ok", it printed
no error, and no earlier cell timed out or killed the kernel. The first timeout, dead kernel or kill by the grader stops the
scoring: checks after it are "not graded". A check that grades a handed-in reference model gets no points
(:mod:`~labkit.grading.references`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, List, NamedTuple, Optional

from .build import CellRole, Role
from .inside.guard import PREFIX as GUARD_PREFIX
from .references import refuse_reference_models
from .inside.wire import CellRecord, Event
from .run import KernelRun
from .types import CellError, CheckResult, CheckState, Grade, Killed, Limits, Status

if TYPE_CHECKING:
    from .assignment import Assignment
    from .prepare import Prepared

__all__ = ["score", "new_grade"]


def new_grade(assignment: "Assignment", submission: str, source: str, status: Status, reason: str = "",
              message: str = "not run", **extra) -> Grade:
    """A grade with 0 points and every check not run (``message`` says why)."""
    grade = Grade(submission=submission, source=source, status=status, reason=reason, auto_points=0.0,
                  auto_max=assignment.auto_max, manual_max=assignment.manual_max, **extra)
    grade.checks = {cid: CheckResult(points=0.0, max=info["points"], message=message)
                    for cid, info in assignment.checks.items()}
    return grade


class Stop(NamedTuple):
    """Why scoring stopped at a cell: the later cells did not run (or do not count)."""

    reason: str
    status: Status


def _missing_record_stop(run: KernelRun, role: CellRole, limits: Limits) -> Stop:
    """Why a cell has no result: the grader killed the run, it could not start, or it ended early."""
    if run.killed is Killed.TIMEOUT:
        return Stop(f"the notebook ran past its time limit ({limits.timeout:.0f} s) in {role.where()}", Status.TIMEOUT)
    if run.killed is Killed.MEMORY:
        return Stop(f"the run used more than {limits.memory_gb:g} GB of memory in {role.where()} and was stopped",
                    Status.ERROR)
    if run.killed is Killed.PROCESSES:
        return Stop(f"the run started more than {limits.processes} processes at once in {role.where()} and was "
                    "stopped", Status.ERROR)
    if run.killed is Killed.STARTUP:
        return Stop("the kernel did not start in time", Status.ERROR)
    if not run.has(Event.CONFIGURED):  # pytest or nbval failed before the first cell: the log has the traceback
        return Stop("the grader could not start this notebook's run (pytest or its kernel stopped before the first "
                    "cell); this is a problem of the grading set-up, not of the submission: the instructor can see "
                    "why in the run's log file and grade it again", Status.ERROR)
    return Stop(f"the run ended before {role.where()}", Status.ERROR)


def _stop_after(record: CellRecord, role: CellRole, limits: Limits) -> Optional[Stop]:
    """The stop a cell causes: it timed out or the kernel died in it."""
    if record.timed_out:
        return Stop(f"{role.where()} ran past the {limits.cell_timeout:.0f} s limit per cell", Status.TIMEOUT)
    if record.kernel_dead:
        return Stop(f"the kernel died in {role.where()}", Status.ERROR)
    return None


def _cell_error(record: CellRecord, limits: Limits) -> Optional[str]:
    if record.timed_out:
        return f"timed out: the cell ran past the {limits.cell_timeout:.0f} s limit per cell"
    if record.kernel_dead:
        detail = f": {record.error}" if record.error and "KernelDied" not in record.error else ""
        return "the kernel died in this cell (os._exit, a crash, or the memory limit)" + detail
    return record.error


def _passed_lines(stdout: str) -> str:
    lines = [line.strip() for line in (stdout or "").splitlines() if line.strip().startswith("✔")]
    return "; ".join(lines)[:500]


def _failed_silently(record: CellRecord) -> bool:
    """The kernel says the cell failed, but nbval saw no error: its error was printed some other way or hidden."""
    return record.outcome == "passed" and record.reply != "ok"


def _score_check(grade: Grade, cid: str, record: CellRecord, error: Optional[str]) -> None:
    check = grade.checks[cid]
    if record.outcome == "passed" and record.reply == "ok":
        check.points, check.state = check.max, CheckState.PASSED
        check.message = _passed_lines(record.stdout) or "passed"
    elif _failed_silently(record):
        check.state = CheckState.FAILED
        check.message = (f"the check failed ({error})" if error and record.reply == "error" else
                         "the check did not run to its end (the kernel did not report it as successful)")
        grade.flags.append(f"check {cid!r} failed without an error message (its error was hidden or printed "
                           "some other way)")
    else:
        check.state, check.message = CheckState.FAILED, error or f"the check cell {record.outcome}"


def _guard_flags(record: CellRecord) -> List[str]:
    """The guard cell's repairs, as ``runtime:`` flags."""
    return ["runtime: " + line[len(GUARD_PREFIX):].strip()
            for line in record.stdout.splitlines() if line.startswith(GUARD_PREFIX)]


def _score_cell(grade: Grade, role: CellRole, record: CellRecord, limits: Limits) -> None:
    error = _cell_error(record, limits)
    if role.role is Role.GUARD:
        grade.flags += _guard_flags(record)
    elif role.role is Role.CHECK:
        _score_check(grade, role.check, record, error)
    elif record.outcome == "failed" or _failed_silently(record):
        grade.errors.append(CellError(role.where(), error or "failed (the kernel reported an error)",
                                      record.traceback or ""))


def _not_graded(grade: Grade, role: CellRole, stop: Stop) -> None:
    if role.role is Role.CHECK:
        check = grade.checks[role.check]
        check.state, check.message = CheckState.NOT_RUN, f"not graded: {stop.reason}"


def _conclude(grade: Grade, stop: Optional[Stop]) -> None:
    """Total points, status and reason once every cell has been scored."""
    grade.auto_points = round(sum(c.points for c in grade.checks.values()), 6)
    grade.flags = list(dict.fromkeys(grade.flags))
    if stop:
        grade.status = stop.status
        grade.reason = stop.reason + "; later cells did not run and their checks got no points"
    elif grade.errors:
        grade.status = Status.ERROR
        first, n = grade.errors[0], len(grade.errors)
        grade.reason = (f"{n} cell{'s' if n > 1 else ''} raised an error; first: "
                        f"{first.where}: {first.error.splitlines()[0][:200]}")
    else:
        grade.status, grade.reason = Status.OK, "ran to the end"


def score(assignment: "Assignment", prepared: "Prepared", run: KernelRun, limits: Limits) -> Grade:
    """Points per check, status and reason from the per-cell results of one run."""
    grade = new_grade(assignment, prepared.submission, str(prepared.source), Status.OK,
                      flags=list(prepared.flags), notes=list(prepared.notes), answers=dict(prepared.answers),
                      seconds=round(run.seconds, 1))
    stop: Optional[Stop] = None
    for number, role in enumerate(prepared.roles):
        record = run.records.get(number)
        if stop is None and record is None:
            stop = _missing_record_stop(run, role, limits)
        elif stop is None and record.kernel_failed:
            stop = Stop(record.error or "the kernel could not start", Status.ERROR)
        if stop is not None:
            _not_graded(grade, role, stop)
            continue
        _score_cell(grade, role, record, limits)
        stop = _stop_after(record, role, limits)
        if stop is not None and record.kernel_dead and run.killed is Killed.MEMORY:
            stop = _missing_record_stop(run, role, limits)   # the kernel died because the memory limit killed it
    refuse_reference_models(grade, prepared.references, assignment)
    _conclude(grade, stop)
    return grade
