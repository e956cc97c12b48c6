"""Run one prepared notebook with nbval in its own sandbox and process tree, under time and memory limits.

Each submission runs as its own ``python -m pytest --nbval-lax`` process (quick mode,
``LABKIT_GRADING=1``) inside a bubblewrap sandbox of its own (:mod:`~labkit.grading.sandbox`;
without one only under ``--unsafe-no-sandbox``), started through a tiny launcher that sets the
memory limit (``RLIMIT_DATA``: every process of the run inherits it) before it execs the sandbox.
The caller's thread watches it: kernel start-up limit, notebook time limit (counted from when
the kernel is ready), total memory and number of processes of the tree; on any of them it kills
the whole tree (:func:`kill_process_tree`). The pytest plugin (:mod:`labkit.grading.inside.plugin`)
streams per-cell results through a pipe only it holds, so what ran before a kill still counts.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import nbformat
from ..environment import (DATA, DEVICE, GRADING, GRADING_CWD, GRADING_OUTPUT_WAIT, GRADING_RESULTS_FD, GRADING_RUN,
                           INHERITED_BY_RUNS, OFFLINE, OUTPUT, QUICK)

from .cgroup import RunCgroup, memory_control
from .inside.wire import CellRecord, Event, decode
from .sandbox import python_executable, user_base
from .types import Killed, Limits

__all__ = ["KernelRun", "RunPaths", "HelperResult", "environment", "launch",
           "run_notebook", "run_helper", "seen_at", "HELPER_WRITABLE", "kill_process_tree", "run_marker_prefix", "PLUGIN_MODULE"]

GB = 2**30
PLUGIN_MODULE = f"{__package__}.inside.plugin"   # loaded by pytest with -p
MARKER_VARIABLE = GRADING_RUN.name
ENV_DROP = ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", OUTPUT.name, "JPY_PARENT_PID", "JPY_SESSION_NAME",
            "IPYTHONDIR", "PYTHONSTARTUP", "PYTHONINSPECT", "KERNEL_ID")
# What a sandboxed run inherits from the grader's environment (nothing else: no tokens, no keys).
ENV_KEEP = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", *(v.name for v in INHERITED_BY_RUNS),
            "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

# Started by the grader in place of the run: joins the run's memory cgroup (argv[4], "-" for none), sets the limits
# every process of the run inherits (data size, file size, CPU seconds; 0: none), then becomes the run.
LAUNCHER = (
    "import os, resource, sys\n"
    "data, fsize, cpu, group = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]\n"
    "if group != '-':\n"
    "    with open(group, 'w') as f:\n"
    "        f.write(str(os.getpid()))\n"
    "if data > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_DATA, (data, data))\n"
    "if fsize > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))\n"
    "if cpu > 0:\n"
    "    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "os.execv(sys.argv[5], sys.argv[5:])\n"
)


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
    raw: List[str] = field(default_factory=list)   # the plugin's JSON lines, for the log

    def has(self, event: Event) -> bool:
        return any(e.get("event") == Event(event).value for e in self.events)


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


def _tree_usage(root: int):
    """Resident memory (bytes) and number of processes of ``root`` and its descendants."""
    table = _proc_table()
    tree = [p for p in [root] + _descendants(root, table) if p in table]
    return sum(table[p][1] for p in tree), len(tree)


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
    """Reads the plugin's JSON lines from the results pipe into ``run`` as they come."""

    def __init__(self, fd: int, run: KernelRun):
        self.fd, self.partial = fd, b""
        self.run = run
        os.set_blocking(fd, False)

    def poll(self) -> None:
        chunks = []
        while True:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                break
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        if not chunks:
            return
        lines = (self.partial + b"".join(chunks)).split(b"\n")
        self.partial = lines.pop()
        for line in lines:
            record = decode(line)
            if record is None:
                continue
            if isinstance(record, CellRecord):
                self.run.records.setdefault(record.cell, record)
            else:
                self.run.events.append(record)
            self.run.raw.append(line.decode("utf-8", "replace"))


class RunPaths:
    """Where one run's files are, as the run sees them (inside the sandbox, or on the machine without one)."""

    def __init__(self, prepared, rundir: Path, sandbox):
        self.rundir = Path(rundir)
        self.notebook_dir = self.rundir / "notebook"    # graded.ipynb and pytest.ini (read-only in the sandbox)
        self.private = self.rundir / "private"          # the run's /tmp and /dev/shm
        self.notebook_dir.mkdir(parents=True, exist_ok=True)
        profile = self.private / "tmp" / "ipython" / "profile_default"
        profile.mkdir(parents=True, exist_ok=True)
        # The kernel starts without its working folder (the notebook's) on sys.path: a file beside the notebook
        # cannot replace a module imported before the guard's first cell (PYTHONSAFEPATH does the same for -m).
        (profile / "ipython_kernel_config.py").write_text("c.IPKernelApp.ignore_cwd = True\n", encoding="utf-8")
        root = Path(prepared.root or prepared.workdir)
        if sandbox is not None and sandbox.remaps_paths:
            from .sandbox import RUN_DIR, SUBMISSION_DIR

            self.run = Path(RUN_DIR)
            self.cwd = Path(SUBMISSION_DIR) / Path(prepared.workdir).relative_to(root)
            self.tmp = Path("/tmp")
        else:
            self.run, self.cwd, self.tmp = self.notebook_dir, Path(prepared.workdir), self.private / "tmp"


def environment(paths: RunPaths, fd: int, marker: str, limits: Limits, jobs: int, sandbox) -> Dict[str, str]:
    if sandbox is not None:  # only what the run needs: the grader's secrets stay outside
        env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
        env["PATH"] = os.pathsep.join([os.path.dirname(python_executable()), "/usr/local/bin", "/usr/bin", "/bin"])
        env["HOME"] = str(paths.tmp / "home")
        if sandbox.data:
            env[DATA.name] = sandbox.data
        extra_path = []
    else:
        env = {k: v for k, v in os.environ.items() if k not in ENV_DROP}
        extra_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    package_parent = str(Path(__file__).resolve().parents[2])   # the folder holding labkit/
    threads = limits.threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    env.update({
        QUICK.name: "1",
        GRADING.name: "1",
        GRADING_RESULTS_FD.name: str(fd),
        GRADING_CWD.name: str(paths.cwd),
        GRADING_OUTPUT_WAIT.name: str(limits.output_wait),
        MARKER_VARIABLE: marker,
        DEVICE.name: "cpu",
        "CUDA_VISIBLE_DEVICES": "",
        "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONSAFEPATH": "1",
        "PYTHONPATH": os.pathsep.join([package_parent] + extra_path),
        "IPYTHONDIR": str(paths.tmp / "ipython"),
        "JUPYTER_RUNTIME_DIR": str(paths.tmp / "runtime"),
        "MPLCONFIGDIR": str(paths.tmp / "matplotlib"),
        "XDG_CACHE_HOME": str(paths.tmp / "cache"),
    })
    env.setdefault(OFFLINE.name, "1")  # no downloads from a graded run: cached data or labkit's sample
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(threads) if limits.threads or name not in os.environ else os.environ[name]
    base = user_base()
    if base:  # packages installed with `pip install --user`: HOME moved, so say where they are (read-only inside)
        env["PYTHONUSERBASE"] = base
    else:
        env["PYTHONNOUSERSITE"] = "1"  # student code cannot plant modules in ~/.local for the next run
    return env


def _pytest_command(paths: RunPaths, limits: Limits) -> List[str]:
    (paths.notebook_dir / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    return [
        python_executable(), "-m", "pytest", "-p", PLUGIN_MODULE, "-p", "nbval.plugin", "--nbval-lax",
        "--nbval-current-env", "--nbval-cell-timeout", str(limits.cell_timeout), "--nbval-kernel-startup-timeout",
        str(limits.startup), "-p", "no:cacheprovider", "--noconftest", "-c", str(paths.run / "pytest.ini"),
        "--rootdir", str(paths.run), "-q", "--tb=line", "-W", "ignore", str(paths.run / "graded.ipynb"),
    ]


def launch(inner: List[str], limits: Limits, group: Optional[RunCgroup] = None, cpu_seconds: int = 0) -> List[str]:
    """``inner`` started through the launcher: in ``group`` (its memory cgroup), under the per-process limits that
    all of it inherits."""
    return [sys.executable, "-c", LAUNCHER, str(int(limits.memory_gb * GB)), str(int(limits.file_gb * GB)),
            str(int(cpu_seconds)), str(group.procs) if group is not None else "-"] + inner


def _time_limit_broken(limits: Limits, now: float, start: float, ready_at: Optional[float]) -> Optional[Killed]:
    """Which time limit the run has broken, if any: kernel start-up, or the notebook's time once it is ready."""
    if ready_at is None and now - start > limits.startup + 30:
        return Killed.STARTUP
    if ready_at is not None and now - ready_at > limits.timeout:
        return Killed.TIMEOUT
    return None


def _watch(proc: subprocess.Popen, reader: ResultsReader, limits: Limits, start: float,
           group: Optional[RunCgroup] = None) -> None:
    """Poll the run until it ends or breaks a limit; on a broken limit, set ``killed`` and return."""
    result = reader.run
    ready_at, last_usage_check = None, 0.0
    while proc.poll() is None:
        time.sleep(0.2)
        reader.poll()
        now = time.monotonic()
        if ready_at is None and result.has(Event.KERNEL_READY):
            ready_at = now
        killed = _time_limit_broken(limits, now, start, ready_at)
        if killed is None and now - last_usage_check >= 1.0:
            last_usage_check = now
            rss, count = _tree_usage(proc.pid)
            result.peak_rss = max(result.peak_rss, rss)
            if group is not None and group.oom_kills() > 0:   # the kernel killed a process of the run
                killed = Killed.MEMORY
            elif limits.memory_gb > 0 and rss > limits.memory_gb * GB:
                killed = Killed.MEMORY
            elif limits.processes > 0 and count > limits.processes + 2:   # + the launcher's bwrap and its init
                killed = Killed.PROCESSES
        if killed is not None:
            result.killed, result.killed_after = killed, now - (ready_at or start)
            return


HELPER_WRITABLE = "writable"


@dataclass
class _HelperFolders:
    """A helper run's folders, laid out as :class:`RunPaths` expects a prepared submission."""

    root: Path
    workdir: Path


@dataclass
class HelperResult:
    """What a helper run printed (bounded), its exit status, and the limit it broke, if any."""

    returncode: Optional[int]
    output: str
    killed: Optional[Killed] = None


def seen_at(sandbox, host: Path, inside: str) -> str:
    """Where a run sees the folder ``host`` that it gets read-only at ``inside``: there in a sandbox, else as is."""
    return inside if sandbox is not None and sandbox.remaps_paths else str(host)


def run_helper(argv: List[str], readonly: Sequence[Tuple[Path, str]], folder: Path, limits: Limits, sandbox=None,
               timeout: float = 120.0, cpu_seconds: int = 0, max_output: int = 1 << 20) -> HelperResult:
    """``python argv`` run as a graded run is (interpreter, environment, sandbox, memory cgroup and limits), with
    the ``readonly`` folders (host, inside; see :func:`seen_at`) and nothing else of the machine; stopped after
    ``timeout``. Its one writable folder is ``folder/HELPER_WRITABLE``, seen at ``SUBMISSION_DIR`` in a sandbox.

    For the grader's own short jobs on a submission's files (the model inspection) and the preflight's probe.
    Its output goes to a file under the file-size limit and is read back at most ``max_output`` bytes.
    """
    folders = _HelperFolders(root=Path(folder) / HELPER_WRITABLE, workdir=Path(folder) / HELPER_WRITABLE)
    folders.root.mkdir(parents=True, exist_ok=True)
    paths = RunPaths(folders, Path(folder) / "run", sandbox)
    env = environment(paths, fd=-1, marker=f"{run_marker_prefix()}{uuid.uuid4().hex}", limits=limits, jobs=1,
                      sandbox=sandbox)
    command = [python_executable(), *argv]
    if sandbox is not None:
        command = sandbox.command(command, folders.root, paths.notebook_dir, paths.private, cwd=str(paths.cwd),
                                  readonly=readonly)
    group = memory_control().create(int(limits.memory_gb * GB))
    out_path = paths.rundir / "helper.out"
    killed = None
    try:
        with open(out_path, "wb") as out:
            proc = subprocess.Popen(launch(command, limits, group, cpu_seconds), cwd=str(paths.notebook_dir), env=env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                killed = Killed.TIMEOUT
            finally:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except OSError:
                    pass
                proc.wait()
        if group is not None and group.oom_kills() > 0:
            killed = Killed.MEMORY
        with open(out_path, "rb") as out:
            text = out.read(max_output).decode("utf-8", "replace")
    finally:
        if group is not None:
            group.remove()
    return HelperResult(proc.returncode, text, killed)


def run_notebook(prepared, rundir: Path, limits: Limits, jobs: int = 1, on_start=None, sandbox=None,
                 readonly: Sequence[Tuple[Path, str]] = ()) -> KernelRun:
    """Run ``prepared.graded`` with nbval, in ``sandbox`` (a :class:`~.sandbox.Sandbox`; None: none), in a copy
    of the submission; kill it when it breaks a limit.

    ``on_start(proc, marker)`` is called once the process has started (to kill it from elsewhere).
    """
    paths = RunPaths(prepared, rundir, sandbox)
    nbformat.write(prepared.graded, str(paths.notebook_dir / "graded.ipynb"))
    log_path = paths.rundir / "pytest.log"
    marker = f"{run_marker_prefix()}{uuid.uuid4().hex}"
    read_fd, write_fd = os.pipe()
    env = environment(paths, write_fd, marker, limits, jobs, sandbox)
    command = _pytest_command(paths, limits)
    if sandbox is not None:
        command = sandbox.command(command, Path(prepared.root), paths.notebook_dir, paths.private, readonly=readonly)
    result = KernelRun()
    reader = ResultsReader(read_fd, result)
    group = memory_control().create(int(limits.memory_gb * GB))
    start = time.monotonic()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(launch(command, limits, group), cwd=str(paths.notebook_dir), env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True, pass_fds=(write_fd,))
            os.close(write_fd)
            write_fd = -1
            if on_start:
                on_start(proc, marker)
            try:
                _watch(proc, reader, limits, start, group)
            finally:
                kill_process_tree(proc, marker)  # what broke a limit, stray kernels, anything the notebook started
                proc.wait()
        reader.poll()
        if group is not None:
            if result.killed is None and group.oom_kills() > 0:
                result.killed, result.killed_after = Killed.MEMORY, time.monotonic() - start
            result.peak_rss = max(result.peak_rss, group.peak())
    finally:
        if group is not None:
            group.remove()
        for fd in (read_fd, write_fd):
            if fd >= 0:
                os.close(fd)
    result.returncode = proc.returncode
    result.seconds = time.monotonic() - start
    try:
        result.log = log_path.read_text(encoding="utf-8", errors="replace")[-20000:]
    except OSError:
        result.log = ""
    return result
