"""One bubblewrap sandbox per graded submission: what the run sees, and the ``bwrap`` command that builds it.

Each submission's whole run (pytest, nbval, the kernel and every process they start) executes
under ``bwrap`` (package ``bubblewrap``), in new user, PID, network, IPC, UTS and cgroup namespaces:

* the system (``/usr``, ``/etc`` without the files only their owner may read), the Python
  installation, labkit's own package and the reference checkpoints students also get (the metric
  classifiers) are mounted read-only, at the paths they have outside, so imports work unchanged;
  nothing else of the machine is there (no home folders, no course repository, no reference model
  of a lab, no other submission, no instructor's notebook);
* ``/grading/submission`` is a private, writable *copy* of this submission only (the kernel's
  working folder), ``/grading/run`` holds the notebook being run (read-only), and ``/tmp`` and
  ``/dev/shm`` are private folders of this run on disk;
* the run's processes see only each other (``/proc`` of the new PID namespace; pytest is its
  process 1) and all die with it; there is no network but the sandbox's own loopback; the user inside (uid 1000) has no
  capabilities and cannot create further namespaces.

:func:`find_sandbox` locates ``bwrap`` and checks that it works here once per grading run
(:class:`SandboxUnavailable` says how to install it otherwise); :meth:`Sandbox.command` wraps
one run's command line.
"""
from __future__ import annotations

import os
import shutil
import site
import stat
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple
from ..environment import DATA

__all__ = ["Sandbox", "SandboxUnavailable", "find_sandbox", "sandbox_works", "python_executable", "user_base",
           "SUBMISSION_DIR", "RUN_DIR", "INSTALL_HINT"]

SUBMISSION_DIR = "/grading/submission"   # the copy of the submission, inside the sandbox (writable)
RUN_DIR = "/grading/run"                 # the notebook being run and pytest.ini (read-only)
UID = 1000                               # the unprivileged user inside
SYSTEM_DIRS = ("usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc")
NAMESPACES = ("--unshare-user", "--uid", str(UID), "--gid", str(UID), "--disable-userns", "--unshare-pid",
              "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try", "--hostname", "grading",
              "--die-with-parent", "--new-session")

INSTALL_HINT = (
    "labkit grade runs every submission in a bubblewrap sandbox, and {why}. Install it: "
    "`sudo apt-get install bubblewrap` (Debian, Ubuntu), `sudo dnf install bubblewrap` (Fedora), "
    "`sudo pacman -S bubblewrap` (Arch); in a Docker container, run the container with `--security-opt "
    "seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined` so that bwrap "
    "may create its namespaces and its own /proc. Only for notebooks you trust: --unsafe-no-sandbox grades without one (see docs/grading.md).")


class SandboxUnavailable(ValueError):
    """bwrap is missing or cannot create its namespaces on this machine (the message says how to fix it)."""


def _covered(path: str, roots: Sequence[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def _top_level(roots: List[str]) -> List[str]:
    """The folders of ``roots`` that are not inside another one of them (sorted, no duplicates)."""
    kept: List[str] = []
    for root in sorted(set(roots), key=len):
        if not _covered(root, kept):
            kept.append(root)
    return sorted(kept)


def python_executable() -> str:
    """The interpreter every run starts: the one the grader runs in, *as invoked*, not its real path.

    In a virtual environment ``bin/python`` is usually a symlink to the base interpreter; started through
    its real path, Python would not find the environment's ``pyvenv.cfg`` and would import the base
    interpreter's packages instead of the environment's (issue 22).
    """
    return os.path.abspath(sys.executable)


def user_base() -> Optional[str]:
    """The ``pip install --user`` folder this interpreter imports from, if it does (None otherwise)."""
    if not getattr(site, "ENABLE_USER_SITE", False):
        return None
    try:
        base, packages = site.getuserbase(), site.getusersitepackages()
    except Exception:  # some embedded or frozen Pythons have no user site at all
        return None
    used = any(os.path.realpath(p) == os.path.realpath(packages) for p in sys.path if p)
    return base if used and os.path.isdir(packages) else None


def python_roots() -> List[str]:
    """The folders of the Python installation the runs import from (prefixes, site-packages, the user base),
    wherever they live: a virtual environment, its base interpreter, a conda-style prefix, ``~/.local``."""
    executable = python_executable()
    roots = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(executable),
                                            os.path.dirname(os.path.realpath(executable)))}
    try:
        roots.update(os.path.realpath(p) for p in site.getsitepackages())
    except AttributeError:  # some virtualenvs have no getsitepackages
        pass
    libdir = sysconfig.get_config_var("LIBDIR")  # libpython, where the binary's run path names it (prefix builds)
    if libdir and os.path.isfile(os.path.join(libdir, str(sysconfig.get_config_var("LDLIBRARY")))):
        roots.add(os.path.realpath(libdir))
    candidates = [p for p in sys.path if p and ("site-packages" in p or "dist-packages" in p)]
    if user_base():
        candidates.append(site.getusersitepackages())
    roots.update(os.path.realpath(p) for p in candidates)
    return [r for r in _top_level([r for r in roots if os.path.isdir(r)]) if r != "/"]


def labkit_roots() -> List[str]:
    """labkit's package folder and the reference checkpoints students get too (the metric classifiers): not the
    rest of the course repository, and not the reference models of the labs (a run could hand one in as its own)."""
    from ..paths import checkpoints_dir
    from ..course import STUDENT_CHECKPOINTS

    package = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))   # labkit/
    roots = [package]
    checkpoints = os.path.realpath(checkpoints_dir())
    roots += [os.path.join(checkpoints, name) for name in STUDENT_CHECKPOINTS
              if os.path.isfile(os.path.join(checkpoints, name))]
    return roots


def mounted_data_folder() -> Optional[str]:
    """labkit's data folder (datasets downloaded before grading), if there is one: mounted read-only."""
    path = DATA.get() or os.path.join(os.path.expanduser("~"), ".cache", "labkit", "data")
    path = os.path.realpath(path)
    return path if os.path.isdir(path) else None


def _private_entries(root: str) -> Tuple[List[str], List[str]]:
    """Folders and files under ``root`` that others may not read: hidden inside the sandbox.

    The user inside maps to the grader's own user outside, so without this it could read
    whatever the grader owns there (``/etc/shadow`` when grading as root).
    """
    dirs, files = [], []
    for current, subdirs, names in os.walk(root, followlinks=False):
        closed = {n for n in subdirs if _mode(os.path.join(current, n), stat.S_ISDIR, 0o005) is False}
        dirs += [os.path.join(current, n) for n in sorted(closed)]
        subdirs[:] = [n for n in subdirs if n not in closed]
        files += [os.path.join(current, n) for n in names if _mode(os.path.join(current, n), stat.S_ISREG, 0o004) is False]
    return dirs, files


def _mode(path: str, kind, others: int) -> Optional[bool]:
    """Whether others have the permission bits ``others`` on ``path`` (None: not of that kind, or gone)."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    if not kind(info.st_mode):
        return None
    return info.st_mode & others == others


def _system_mounts() -> List[str]:
    args: List[str] = []
    for name in SYSTEM_DIRS:
        path = "/" + name
        if os.path.islink(path):
            args += ["--symlink", os.readlink(path), path]
        elif os.path.isdir(path):
            args += ["--ro-bind", path, path]
    if os.path.isdir("/etc"):
        dirs, files = _private_entries("/etc")
        for path in dirs:
            args += ["--tmpfs", path]
        for path in files:
            args += ["--ro-bind", "/dev/null", path]
    return args


@dataclass(frozen=True)
class Sandbox:
    """How to wrap one run in bwrap: the binary and the read-only mounts every run shares."""

    bwrap: str
    mounts: Tuple[str, ...]       # system, Python, labkit, data: read-only
    data: Optional[str] = None    # labkit's data folder, if mounted
    remaps_paths = True           # the run sees its folders at /grading/... (see UnprivilegedUser for the other way)

    def describe(self) -> str:
        return "in a bubblewrap sandbox (its own user, process, network and mount namespaces)"

    def command(self, inner: Sequence[str], submission: Path, notebook_dir: Path, private: Path,
                cwd: str = RUN_DIR, readonly: Sequence[Tuple[Path, str]] = ()) -> List[str]:
        """``inner`` wrapped in a fresh sandbox with ``submission`` (writable) and ``notebook_dir`` (read-only).

        ``private`` holds this run's ``tmp`` and ``shm`` folders (created here); ``readonly``: more folders, each
        mounted read-only at its path inside (``/grading/models``: the snapshot of the graded model files).
        """
        extra = [arg for host, inside in readonly for arg in ("--ro-bind", str(host), inside)]
        for name in ("tmp", "shm"):
            (Path(private) / name).mkdir(parents=True, exist_ok=True)
        # --as-pid-1: pytest itself is process 1 of the run (no bwrap helper whose command line names the folders
        # outside); when it ends, the kernel sees every other process of the namespace die with it.
        # The private /tmp comes first: a Python or a labkit that lives under /tmp (a clone in /tmp, as CI makes)
        # is then mounted on top of it instead of being hidden by it.
        return [self.bwrap, *NAMESPACES, "--as-pid-1", "--bind", str(Path(private) / "tmp"), "/tmp", *self.mounts,
                "--proc", "/proc", "--dev", "/dev",
                "--bind", str(Path(private) / "shm"), "/dev/shm",
                "--ro-bind", str(notebook_dir), RUN_DIR,
                "--bind", str(submission), SUBMISSION_DIR, *extra,
                "--chdir", cwd, "--", *inner]


def _mounts() -> Tuple[Tuple[str, ...], Optional[str]]:
    args = _system_mounts()
    covered = ["/usr"]
    for root in python_roots() + labkit_roots():
        if not _covered(root, covered):
            args += ["--ro-bind", root, root]
            covered.append(root)
    data = mounted_data_folder()
    if data and not _covered(data, covered):
        args += ["--ro-bind", data, data]
    return tuple(args), data


def sandbox_works() -> bool:
    """Whether :func:`find_sandbox` finds a working sandbox on this machine."""
    try:
        find_sandbox()
        return True
    except SandboxUnavailable:
        return False


def find_sandbox(bwrap: Optional[str] = None) -> Sandbox:
    """The sandbox of this machine; :class:`SandboxUnavailable` when bwrap is missing or does not work here."""
    if not sys.platform.startswith("linux"):
        raise SandboxUnavailable(INSTALL_HINT.format(why=f"bubblewrap needs Linux (this is {sys.platform})"))
    path = bwrap or shutil.which("bwrap")
    if not path:
        raise SandboxUnavailable(INSTALL_HINT.format(why="bwrap was not found on PATH"))
    mounts, data = _mounts()
    sandbox = Sandbox(bwrap=path, mounts=mounts, data=data)
    # Only whether bwrap can build the sandbox and start this interpreter in it: whether the interpreter has
    # what a graded run imports is the preflight's question (preflight.py), with its own message.
    probe = [path, *NAMESPACES, "--tmpfs", "/tmp", *mounts, "--proc", "/proc", "--dev", "/dev", "--",
             python_executable(), "-I", "-S", "-c", "import os; assert os.getuid() == %d" % UID]
    try:
        done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SandboxUnavailable(INSTALL_HINT.format(why=f"{path} could not be run ({exc})")) from None
    if done.returncode != 0:
        detail = " ".join((done.stderr or done.stdout).split())[:300] or f"exit status {done.returncode}"
        raise SandboxUnavailable(INSTALL_HINT.format(why=f"{path} does not work here ({detail})"))
    return sandbox
