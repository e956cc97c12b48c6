"""A memory cgroup per graded run: a limit that counts everything the run holds, and its OOM kills reported.

``RLIMIT_DATA`` and the process tree's resident memory do not count shared memory: a notebook holding
3 × 1 GiB in memfds or SysV segments passed a 2 GB limit. A memory cgroup charges every page its processes
use, shared memory and memfds included, and the kernel's OOM killer acts inside it only. Which one is used:

* cgroup v2, where the memory controller is delegated to the grader's own cgroup (``memory.max``);
* cgroup v1, where a memory hierarchy is mounted and writable (``memory.limit_in_bytes``), as on machines
  that mount only v1 controllers;
* otherwise none: the grader falls back on ``RLIMIT_DATA`` per process and the tree's resident memory, and
  says so (:meth:`MemoryControl.describe`).

The launcher of a run writes its own pid to :attr:`RunCgroup.procs` before it execs the sandbox, so every
process of the run is in the group from its start.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

__all__ = ["CgroupVersion", "MemoryControl", "RunCgroup", "memory_control", "cpu_quota", "threads_for_quota"]


class CgroupVersion(str, Enum):
    V2 = "cgroup v2"
    V1 = "cgroup v1"

    def __str__(self) -> str:
        return self.value


def _mounts() -> Iterator[Tuple[str, str, List[str]]]:
    """(mount point, file system type, options) of each cgroup mount."""
    try:
        with open("/proc/mounts", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        parts = line.split()
        if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
            yield parts[1], parts[2], parts[3].split(",")


def _own_path(controller: str) -> str:
    """This process's cgroup path in the hierarchy of ``controller`` ("" for cgroup v2), from /proc/self/cgroup."""
    try:
        lines = Path("/proc/self/cgroup").read_text(encoding="utf-8").splitlines()
    except OSError:
        return "/"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if (controller == "" and controllers == "") or (controller and controller in controllers.split(",")):
            return path
    return "/"


def _write(path: Path, text: str) -> None:
    with open(path, "w", encoding="ascii") as f:
        f.write(text)


def _read_counter(path: Path, key: str) -> int:
    try:
        for line in path.read_text(encoding="ascii").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return 0


@dataclass
class RunCgroup:
    """The memory cgroup of one run."""

    path: Path
    version: CgroupVersion

    @property
    def procs(self) -> Path:
        """The file a process writes its pid to, to join the group (the launcher does, before it execs)."""
        return self.path / "cgroup.procs"

    def oom_kills(self) -> int:
        """How many processes the kernel killed in this group for want of memory."""
        name = "memory.events" if self.version is CgroupVersion.V2 else "memory.oom_control"
        return _read_counter(self.path / name, "oom_kill")

    def peak(self) -> int:
        """The group's peak memory in bytes (0 where the kernel does not say)."""
        return _read_int(self.path / ("memory.peak" if self.version is CgroupVersion.V2
                                      else "memory.max_usage_in_bytes"))

    def pids(self) -> List[int]:
        try:
            return [int(p) for p in self.procs.read_text(encoding="ascii").split()]
        except (OSError, ValueError):
            return []

    def kill_all(self) -> None:
        """SIGKILL every process still in the group (also those that left the run's process tree)."""
        if self.version is CgroupVersion.V2 and (self.path / "cgroup.kill").exists():
            try:
                _write(self.path / "cgroup.kill", "1")
            except OSError:
                pass
        for _ in range(50):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.05)

    def remove(self) -> None:
        """Kill what is left and remove the group (never raises)."""
        self.kill_all()
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)   # the last processes are still being reaped


@dataclass(frozen=True)
class MemoryControl:
    """How this machine enforces a run's memory limit: a cgroup parent folder, or None for the fallback."""

    parent: Optional[Path] = None
    version: Optional[CgroupVersion] = None

    def describe(self) -> str:
        if self.parent is None:
            return ("each process's data size (RLIMIT_DATA) and the resident memory of the run's processes; no "
                    "writable memory cgroup here, so shared memory and memfds are not counted")
        limit = "memory.max" if self.version is CgroupVersion.V2 else "memory.limit_in_bytes"
        return f"a memory cgroup per run ({self.version}, {limit} under {self.parent}), which counts shared memory"

    def create(self, limit_bytes: int) -> Optional[RunCgroup]:
        """A new group for one run with that limit (None where there is no cgroup, or creating it failed)."""
        if self.parent is None or limit_bytes <= 0:
            return None
        path = self.parent / f"labkit-grade-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        group = RunCgroup(path, self.version)
        try:
            path.mkdir()
            if self.version is CgroupVersion.V2:
                _write(path / "memory.max", str(limit_bytes))
                for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
                    if (path / name).exists():
                        _write(path / name, value)
            else:
                _write(path / "memory.limit_in_bytes", str(limit_bytes))
                if (path / "memory.memsw.limit_in_bytes").exists():   # swap may not bypass the limit
                    try:
                        _write(path / "memory.memsw.limit_in_bytes", str(limit_bytes))
                    except OSError:
                        pass
        except OSError:
            group.remove()
            return None
        return group


def _v2_parent() -> Optional[Path]:
    for mount, kind, _ in _mounts():
        if kind != "cgroup2":
            continue
        parent = Path(mount) / _own_path("").lstrip("/")
        try:
            if "memory" not in (Path(mount) / "cgroup.controllers").read_text().split():
                continue
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                _write(parent / "cgroup.subtree_control", "+memory")   # works where it is delegated to us
        except OSError:
            continue
        return parent
    return None


def _v1_parent() -> Optional[Path]:
    for mount, kind, options in _mounts():
        if kind == "cgroup" and "memory" in options:
            parent = Path(mount) / _own_path("memory").lstrip("/")
            return parent if parent.is_dir() else Path(mount)
    return None


@functools.lru_cache(maxsize=1)
def memory_control() -> MemoryControl:
    """The memory control this machine allows, found once: a trial group is made and removed."""
    for version, find in ((CgroupVersion.V2, _v2_parent), (CgroupVersion.V1, _v1_parent)):
        parent = find()
        if parent is None:
            continue
        control = MemoryControl(parent, version)
        trial = control.create(64 * 2**20)
        if trial is None:
            continue
        try:   # can a process of ours join it? (the launcher of each run does just this)
            joined = subprocess.run(["/bin/sh", "-c", f'echo $$ > "{trial.procs}"'], capture_output=True,
                                    timeout=30).returncode == 0
        except (OSError, subprocess.SubprocessError):
            joined = False
        trial.remove()
        if joined:
            return control
    return MemoryControl()


def cpu_quota() -> Optional[float]:
    """The CPUs this process may use by its cgroup's CPU quota (cgroup v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``),
    or None where there is no quota. A container given half a CPU still sees every core of its host."""
    candidates = []
    for mount, kind, options in _mounts():
        if kind == "cgroup2":
            candidates.append((Path(mount) / _own_path("").lstrip("/") / "cpu.max", None))
            candidates.append((Path(mount) / "cpu.max", None))
        elif "cpu" in options:
            own = Path(mount) / _own_path("cpu").lstrip("/")
            for folder in (own, Path(mount)):
                candidates.append((folder / "cpu.cfs_quota_us", folder / "cpu.cfs_period_us"))
    for quota_file, period_file in candidates:
        try:
            if period_file is None:
                quota, period = quota_file.read_text().split()[:2]
                if quota != "max":
                    return int(quota) / int(period)
            else:
                quota = int(quota_file.read_text())
                if quota > 0:
                    return quota / int(period_file.read_text())
        except (OSError, ValueError):
            continue
    return None


def threads_for_quota(default: int) -> int:
    """Threads a run should use here: the CPU quota rounded down (at least 1), else ``default``."""
    quota = cpu_quota()
    return max(1, int(quota)) if quota is not None else default
