"""Run one prepared notebook with nbval in its own process tree, under time and memory limits (run_notebook).

Each submission runs as its own ``python -m pytest --nbval-lax`` process (quick mode,
``LABKIT_GRADING=1``), started through a tiny launcher that sets the memory limit
(``RLIMIT_DATA``: the kernel, a child, inherits it) before it execs pytest. The caller's
thread watches it: kernel start-up limit, notebook time limit (counted from when the kernel
is ready), total memory of the process tree; on any of them it kills the whole tree
(:func:`kill_process_tree`). The pytest plugin (:mod:`labkit.instructor.grading.plugin`)
streams per-cell results to a file, so what ran before a kill still counts.
"""
from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Dict, List, Literal, Optional

import nbformat

__all__ = ["Limits", "Killed", "CellRecord", "KernelRun", "run_notebook", "kill_process_tree", "run_marker_prefix",
           "PLUGIN_MODULE"]

GB = 2**30
PLUGIN_MODULE = f"{__package__}.plugin"   # loaded by pytest with -p
MARKER_VARIABLE = "LABKIT_GRADING_RUN"
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


class Killed(str, Enum):
    """Why the grader killed a run."""

    STARTUP = "startup"   # the kernel did not start within Limits.startup
    TIMEOUT = "timeout"   # the notebook ran past Limits.timeout
    MEMORY = "memory"     # the process tree used more than Limits.memory_gb

    def __str__(self) -> str:
        return self.value


Outcome = Literal["passed", "failed", "skipped", "error", "xfail"]   # pytest's outcome of a cell


@dataclass
class CellRecord:
    """What the plugin reported for one executed cell (one JSON line of results.jsonl)."""

    cell: int
    outcome: Outcome
    error: Optional[str] = None
    traceback: Optional[str] = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    kernel_dead: bool = False
    kernel_failed: bool = False     # the kernel could not start (setup of the first cell failed)
    seconds: float = 0.0

    @classmethod
    def from_json(cls, record: Dict) -> "CellRecord":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known and v is not None}
        return cls(**{**values, "cell": int(record["cell"])})


@dataclass
class KernelRun:
    """What happened when one notebook ran: the per-cell records, the plugin's events, why it was killed."""

    records: Dict[int, CellRecord] = field(default_factory=dict)   # nbval cell number -> record
    events: List[Dict] = field(default_factory=list)
    killed: Optional[Killed] = None
    killed_after: float = 0.0
    returncode: Optional[int] = None
    seconds: float = 0.0
    log: str = ""
    peak_rss: int = 0

    def has(self, event: str) -> bool:
        return any(e.get("event") == event for e in self.events)


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


def _tree_rss(root: int) -> int:
    table = _proc_table()
    return sum(table[p][1] for p in [root] + _descendants(root, table) if p in table)


def run_marker_prefix(pid: Optional[int] = None) -> str:
    """The start of the marker of every run this grader process (``pid``) starts: unique to it on the machine."""
    return f"labkit-grade-{os.getpid() if pid is None else pid}-"


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


def kill_process_tree(proc: subprocess.Popen, marker: str) -> None:
    """SIGKILL ``proc``, its descendants, and every process carrying ``marker`` in its environment."""
    victims = set(_descendants(proc.pid, _proc_table())) | set(_marked(marker))
    if proc.poll() is None:
        victims.add(proc.pid)
    for pid in victims:
        for kill in (lambda: os.killpg(pid, signal.SIGKILL), lambda: os.kill(pid, signal.SIGKILL)):
            try:
                kill()
            except OSError:
                pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


# --------------------------------------------------------------------------- the run


class ResultsReader:
    """Reads the plugin's JSON lines into ``run`` as they are written."""

    def __init__(self, path: Path, run: KernelRun):
        self.path, self.offset, self.partial = path, 0, b""
        self.run = run

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
                self.run.records.setdefault(int(record["cell"]), CellRecord.from_json(record))
            else:
                self.run.events.append(record)


def _user_site() -> Optional[str]:
    try:
        return site.getusersitepackages()
    except Exception:  # some embedded or frozen Pythons have no user site at all
        return None


def _environment(rundir: Path, workdir: Path, results: Path, marker: str, limits: Limits, jobs: int) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
    package_parent = str(Path(__file__).resolve().parents[3])
    threads = limits.threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    env.update({
        "LABKIT_QUICK": "1",
        "LABKIT_GRADING": "1",
        "LABKIT_GRADING_RESULTS": str(results),
        "LABKIT_GRADING_CWD": str(workdir),
        "LABKIT_GRADING_OUTPUT_WAIT": str(limits.output_wait),
        MARKER_VARIABLE: marker,
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
    user_site = _user_site()
    if not (user_site and package_parent.startswith(user_site)):
        env["PYTHONNOUSERSITE"] = "1"  # student code cannot plant modules in ~/.local for the next run
    return env


def _pytest_command(notebook: Path, rundir: Path, limits: Limits) -> List[str]:
    ini = rundir / "pytest.ini"
    ini.write_text("[pytest]\n", encoding="utf-8")
    pytest_args = [
        "-m", "pytest", "-p", PLUGIN_MODULE, "-p", "nbval.plugin", "--nbval-lax", "--nbval-current-env",
        "--nbval-cell-timeout", str(limits.cell_timeout), "--nbval-kernel-startup-timeout", str(limits.startup),
        "-p", "no:cacheprovider", "--noconftest", "-c", str(ini), "--rootdir", str(rundir), "-q", "--tb=line",
        "-W", "ignore", str(notebook),
    ]
    return [sys.executable, "-c", LAUNCHER, str(int(limits.memory_gb * GB)), str(int(limits.file_gb * GB))] + pytest_args


def _time_limit_broken(limits: Limits, now: float, start: float, ready_at: Optional[float]) -> Optional[Killed]:
    """Which time limit the run has broken, if any: kernel start-up, or the notebook's time once it is ready."""
    if ready_at is None and now - start > limits.startup + 30:
        return Killed.STARTUP
    if ready_at is not None and now - ready_at > limits.timeout:
        return Killed.TIMEOUT
    return None


def _watch(proc: subprocess.Popen, reader: ResultsReader, limits: Limits, start: float) -> None:
    """Poll the run until it ends or breaks a limit; on a broken limit, set ``killed`` and return."""
    result = reader.run
    ready_at, last_memory_check = None, 0.0
    while proc.poll() is None:
        time.sleep(0.2)
        reader.poll()
        now = time.monotonic()
        if ready_at is None and result.has("kernel_ready"):
            ready_at = now
        killed = _time_limit_broken(limits, now, start, ready_at)
        if killed is None and now - last_memory_check >= 1.0:
            last_memory_check = now
            rss = _tree_rss(proc.pid)
            result.peak_rss = max(result.peak_rss, rss)
            if limits.memory_gb > 0 and rss > limits.memory_gb * GB:
                killed = Killed.MEMORY
        if killed is not None:
            result.killed, result.killed_after = killed, now - (ready_at or start)
            return


def run_notebook(prepared, rundir: Path, limits: Limits, jobs: int = 1, on_start=None) -> KernelRun:
    """Run ``prepared.graded`` with nbval in ``prepared.workdir``; kill it when it breaks a limit.

    ``on_start(proc, marker)`` is called once the process has started (to kill it from elsewhere).
    """
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    notebook = rundir / "graded.ipynb"
    nbformat.write(prepared.graded, str(notebook))
    results_path, log_path = rundir / "results.jsonl", rundir / "pytest.log"
    marker = f"{run_marker_prefix()}{uuid.uuid4().hex}"
    env = _environment(rundir, prepared.workdir, results_path, marker, limits, jobs)
    command = _pytest_command(notebook, rundir, limits)
    result = KernelRun()
    reader = ResultsReader(results_path, result)
    start = time.monotonic()
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(command, cwd=str(rundir), env=env, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        if on_start:
            on_start(proc, marker)
        try:
            _watch(proc, reader, limits, start)
        finally:
            kill_process_tree(proc, marker)  # what broke a limit, stray kernels, anything the notebook started
            proc.wait()
    result.returncode = proc.returncode
    result.seconds = time.monotonic() - start
    reader.poll()
    try:
        result.log = log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
    except OSError:
        result.log = ""
    return result
