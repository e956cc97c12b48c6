"""Run one prepared submission with nbval, under limits, and turn what happened into a grade.

Each submission runs as its own ``python -m pytest --nbval-lax`` process (quick mode,
``LABKIT_GRADING=1``), started through a tiny launcher that sets the memory limit
(``RLIMIT_DATA``: the kernel, a child, inherits it) before it execs pytest. The caller's
thread watches it: kernel start-up limit, notebook time limit (counted from when the kernel
is ready), total memory of the process tree; on any of them it kills the whole tree. The
pytest plugin (:mod:`labkit.instructor.grading.plugin`) streams per-cell results to a file, so what ran
before a kill still counts.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import nbformat

from .guard import PREFIX as GUARD_PREFIX
from .prepare import CHECK_MARK, Assignment, Prepared

__all__ = ["Limits", "RunResult", "Grade", "run_notebook", "score", "grade_prepared"]

GB = 2**30
ENV_DROP = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "LABKIT_OUTPUT", "JPY_PARENT_PID", "JPY_SESSION_NAME",
            "IPYTHONDIR", "PYTHONSTARTUP", "PYTHONINSPECT", "KERNEL_ID")

LAUNCHER = (
    "import os, resource, sys\n"
    "data, fsize = int(sys.argv[1]), int(sys.argv[2])\n"
    "if data > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_DATA, (data, data))\n"
    "if fsize > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.executable, [sys.executable] + sys.argv[3:])\n"
)


@dataclass
class Limits:
    cell_timeout: float = 600.0      # seconds per cell (nbval --nbval-cell-timeout)
    timeout: float = 1800.0          # seconds per notebook, from the moment its kernel is ready
    startup: float = 180.0           # seconds for pytest and the kernel to start
    memory_gb: float = 4.0           # per process (RLIMIT_DATA) and for the whole process tree (RSS)
    file_gb: float = 2.0             # largest file a submission may write
    output_wait: float = 60.0        # nbval's wait for a finished cell's output (its own default: 5 s)
    threads: Optional[int] = None    # OMP/MKL threads per kernel (default: CPUs / jobs)


@dataclass
class RunResult:
    records: Dict[int, Dict] = field(default_factory=dict)   # nbval cell number -> record
    events: List[Dict] = field(default_factory=list)
    killed: Optional[str] = None     # "startup" | "timeout" | "memory"
    killed_after: float = 0.0
    returncode: Optional[int] = None
    seconds: float = 0.0
    log: str = ""
    peak_rss: int = 0


@dataclass
class Grade:
    submission: str
    source: str
    status: str
    reason: str
    auto_points: float
    auto_max: float
    manual_max: float
    checks: Dict[str, Dict] = field(default_factory=dict)
    flags: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    errors: List[Dict] = field(default_factory=list)
    answers: Dict[str, Optional[str]] = field(default_factory=dict)
    seconds: float = 0.0


# --------------------------------------------------------------------------- processes


def _proc_table():
    """``{pid: (ppid, rss_bytes)}`` from /proc (empty where there is no /proc)."""
    table = {}
    page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
            rest = data[data.rindex(")") + 2:].split()
            table[int(entry)] = (int(rest[1]), int(rest[21]) * page)
        except (OSError, ValueError, IndexError):
            continue
    return table


def _descendants(root: int, table) -> List[int]:
    children = {}
    for pid, (ppid, _rss) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        for child in children.get(pid, []):
            if child not in found:
                found.append(child)
                todo.append(child)
    return found


def _marked(marker: str) -> List[int]:
    """Processes whose environment carries this run's marker (they may have left the tree)."""
    pids, needle = [], marker.encode()
    try:
        entries = os.listdir("/proc")
    except OSError:
        return pids
    for entry in entries:
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    if needle in f.read():
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


def _kill_all(proc: subprocess.Popen, marker: str) -> None:
    table = _proc_table()
    victims = set(_descendants(proc.pid, table)) | set(_marked(marker))
    if proc.poll() is None:
        victims.add(proc.pid)
    for pid in victims:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except (OSError, PermissionError):
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


class _Results:
    """Reads the plugin's JSON lines as they are written."""

    def __init__(self, path: Path):
        self.path, self.offset, self.partial = path, 0, b""
        self.records: Dict[int, Dict] = {}
        self.events: List[Dict] = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except FileNotFoundError:
            return
        self.offset += len(chunk)
        lines = (self.partial + chunk).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == "cell":
                self.records.setdefault(int(record["cell"]), record)
            else:
                self.events.append(record)

    def has(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events)


def _environment(rundir: Path, workdir: Path, results: Path, marker: str, limits: Limits, jobs: int) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    package_parent = str(Path(__file__).resolve().parent.parent)
    threads = limits.threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    env.update({
        "LABKIT_QUICK": "1",
        "LABKIT_GRADING": "1",
        "LABKIT_GRADING_RESULTS": str(results),
        "LABKIT_GRADING_CWD": str(workdir),
        "LABKIT_GRADING_OUTPUT_WAIT": str(limits.output_wait),
        "LABKIT_GRADING_RUN": marker,
        "LABKIT_DEVICE": "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join([package_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]),
        "IPYTHONDIR": str(rundir / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(rundir / "runtime"),
        "MPLCONFIGDIR": str(rundir.parent / "matplotlib"),
    })
    env.setdefault("LABKIT_OFFLINE", "1")  # no downloads from a graded run: cached data or labkit's sample
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads) if limits.threads or name not in os.environ else os.environ[name]
    import site

    try:
        user_site = site.getusersitepackages()
    except Exception:
        user_site = None
    if not (user_site and package_parent.startswith(user_site)):
        env["PYTHONNOUSERSITE"] = "1"  # student code cannot plant modules in ~/.local for the next run
    return env


def run_notebook(prepared: Prepared, rundir: Path, limits: Limits, jobs: int = 1, on_start=None) -> RunResult:
    """Run ``prepared.graded`` with nbval in ``prepared.workdir``; kill it when it breaks a limit."""
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    notebook = rundir / "graded.ipynb"
    nbformat.write(prepared.graded, str(notebook))
    ini = rundir / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    results_path = rundir / "results.jsonl"
    marker = f"labkit-grade-{uuid.uuid4().hex}"
    env = _environment(rundir, prepared.workdir, results_path, marker, limits, jobs)
    pytest_args = [
        "-m", "pytest", "-p", "labkit.instructor.grading.plugin", "-p", "nbval.plugin", "--nbval-lax", "--nbval-current-env",
        "--nbval-cell-timeout", str(limits.cell_timeout), "--nbval-kernel-startup-timeout", str(limits.startup),
        "-p", "no:cacheprovider", "--noconftest", "-c", str(ini), "--rootdir", str(rundir), "-q", "--tb=line",
        "-W", "ignore", str(notebook),
    ]
    command = [sys.executable, "-c", LAUNCHER, str(int(limits.memory_gb * GB)), str(int(limits.file_gb * GB))] + pytest_args
    log_path = rundir / "pytest.log"
    result = RunResult()
    reader = _Results(results_path)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=str(rundir), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if on_start:
            on_start(proc, marker)
        ready_at, last_memory_check = None, 0.0
        try:
            while proc.poll() is None:
                time.sleep(0.2)
                reader.poll()
                now = time.monotonic()
                if ready_at is None and reader.has("kernel_ready"):
                    ready_at = now
                if ready_at is None and now - start > limits.startup + 30:
                    result.killed = "startup"
                elif ready_at is not None and now - ready_at > limits.timeout:
                    result.killed = "timeout"
                elif now - last_memory_check >= 1.0:
                    last_memory_check = now
                    table = _proc_table()
                    rss = sum(table[p][1] for p in [proc.pid] + _descendants(proc.pid, table) if p in table)
                    result.peak_rss = max(result.peak_rss, rss)
                    if limits.memory_gb > 0 and rss > limits.memory_gb * GB:
                        result.killed = "memory"
                if result.killed:
                    result.killed_after = now - (ready_at or start)
                    _kill_all(proc, marker)
                    break
        finally:
            _kill_all(proc, marker)  # stray kernels and anything the notebook started
            proc.wait()
    result.returncode = proc.returncode
    result.seconds = time.monotonic() - start
    reader.poll()
    result.records, result.events = reader.records, reader.events
    try:
        result.log = log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
    except OSError:
        result.log = ""
    return result


# --------------------------------------------------------------------------- scoring


def _where(role: Dict) -> str:
    if role.get("role") == "check":
        return f"check {role['check']!r}"
    if role.get("role") == "standard":
        return f"the standard cell {role.get('tag')!r}"
    if role.get("role") == "init":
        return "the grader's first cell"
    if role.get("role") == "guard":
        return "a grader cell"
    number = role.get("cell")
    return f"cell {number} (`{role.get('line', '')}`)" if number else f"a cell (`{role.get('line', '')}`)"


def _passed_lines(stdout: str) -> str:
    lines = [l.strip() for l in (stdout or "").splitlines() if l.strip().startswith("✔")]
    return "; ".join(lines)[:500]


def score(assignment: Assignment, prepared: Prepared, run: RunResult, limits: Limits) -> Grade:
    """Points per check, status and reason from the per-cell results of one run."""
    grade = Grade(submission=prepared.submission, source=str(prepared.source), status="ok", reason="",
                  auto_points=0.0, auto_max=assignment.auto_max, manual_max=assignment.manual_max,
                  flags=list(prepared.flags), notes=list(prepared.notes), answers=dict(prepared.answers),
                  seconds=round(run.seconds, 1))
    for cid, info in assignment.checks.items():
        grade.checks[cid] = {"points": 0.0, "max": info["points"], "state": "not run", "message": "not run"}
    stopped, stop_status = None, None
    for number, role in enumerate(prepared.roles):
        record = run.records.get(number)
        cid = role.get("check") if role["role"] == "check" else None
        if stopped is None and record is None:
            if run.killed == "timeout":
                stopped, stop_status = (f"the notebook ran past its time limit ({limits.timeout:.0f} s) in "
                                        f"{_where(role)}"), "timeout"
            elif run.killed == "memory":
                stopped, stop_status = (f"the run used more than {limits.memory_gb:g} GB of memory in {_where(role)} "
                                        "and was stopped"), "error"
            elif run.killed == "startup":
                stopped, stop_status = "the kernel did not start in time", "error"
            elif not any(e.get("event") == "configured" for e in run.events):
                tail = " ".join(run.log.strip().splitlines()[-3:])[:300]
                stopped, stop_status = f"the grader could not run the notebook ({tail or 'no output'})", "error"
            else:
                stopped, stop_status = f"the run ended before {_where(role)}", "error"
        if stopped is not None:
            if cid:
                grade.checks[cid].update(state="not run", message=f"not graded: {stopped}")
            continue
        if record.get("kernel_failed"):
            stopped, stop_status = record.get("error") or "the kernel could not start", "error"
            if cid:
                grade.checks[cid].update(state="not run", message=f"not graded: {stopped}")
            continue
        error = record.get("error")
        if record.get("timed_out"):
            error = f"timed out: the cell ran past the {limits.cell_timeout:.0f} s limit per cell"
        elif record.get("kernel_dead"):
            error = ("the kernel died in this cell (os._exit, a crash, or the memory limit)"
                     + (f": {error}" if error and "KernelDied" not in error else ""))
        if role["role"] == "guard":
            for line in (record.get("stdout") or "").splitlines():
                if line.startswith(GUARD_PREFIX):
                    grade.flags.append("runtime: " + line[len(GUARD_PREFIX):].strip())
        elif cid:
            check = grade.checks[cid]
            confirmed = f"{CHECK_MARK} {cid} {prepared.token}" in (record.get("stdout") or "")
            if record.get("outcome") == "passed" and confirmed:
                check.update(points=check["max"], state="passed", message=_passed_lines(record.get("stdout")) or "passed")
            elif record.get("outcome") == "passed":
                check.update(state="failed", message="the check did not run to its end (its confirmation line is "
                                                     "missing: the cell was skipped or its output suppressed)")
                grade.flags.append(f"check {cid!r} reported success without completing")
            else:
                check.update(state="failed", message=error or f"the check cell {record.get('outcome')}")
        elif record.get("outcome") == "failed" and role["role"] != "guard":
            grade.errors.append({"where": _where(role), "error": error or "failed",
                                 "traceback": record.get("traceback") or ""})
        if record.get("timed_out"):
            stopped, stop_status = f"{_where(role)} ran past the {limits.cell_timeout:.0f} s limit per cell", "timeout"
        elif record.get("kernel_dead"):
            stopped, stop_status = f"the kernel died in {_where(role)}", "error"
    grade.auto_points = round(sum(c["points"] for c in grade.checks.values()), 6)
    grade.flags = list(dict.fromkeys(grade.flags))
    if stopped:
        grade.status = stop_status or "error"
        grade.reason = stopped + "; later cells did not run and their checks got no points"
    elif grade.errors:
        grade.status = "error"
        first = grade.errors[0]
        grade.reason = (f"{len(grade.errors)} cell{'s' if len(grade.errors) > 1 else ''} raised an error; first: "
                        f"{first['where']}: {first['error'].splitlines()[0][:200]}")
    else:
        grade.reason = "ran to the end"
    return grade


def grade_prepared(assignment: Assignment, prepared: Prepared, rundir: Path, limits: Limits, jobs: int = 1,
                   on_start=None):
    """Run and score one prepared submission; invalid ones get their row without running."""
    if prepared.status == "invalid":
        grade = Grade(submission=prepared.submission, source=str(prepared.source), status="invalid",
                      reason=prepared.reason, auto_points=0.0, auto_max=assignment.auto_max,
                      manual_max=assignment.manual_max, flags=list(prepared.flags), notes=list(prepared.notes))
        for cid, info in assignment.checks.items():
            grade.checks[cid] = {"points": 0.0, "max": info["points"], "state": "not run",
                                 "message": f"not graded: {prepared.reason}"}
        return grade, None
    run = run_notebook(prepared, rundir, limits, jobs=jobs, on_start=on_start)
    return score(assignment, prepared, run, limits), run
