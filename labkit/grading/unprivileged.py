"""Where bubblewrap cannot run (a Gradescope container): each run as an unprivileged user instead of in a sandbox.

A container per submission is itself the isolation from other submissions; what it lacks is a boundary
between the student's code and the grader's files in the same container. Here the run (pytest, the kernel,
the inspection helper) is started through ``setpriv`` as an ordinary user without capabilities: it can read
the Python installation, labkit and the metric classifiers, and write only its own folders, which are given
to that user; the instructor's files (the autograder's source folder, ``chmod 700`` by its ``setup.sh``) and
the results folder stay root's. Paths are not remapped: the run sees the folders where they are.
"""
from __future__ import annotations

import os
import pwd
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

__all__ = ["UnprivilegedUser", "find_unprivileged_user"]


def _traversable(folder: Path) -> None:
    """``folder``'s parents made traversable by others (execute only: nothing in them can be listed)."""
    parent = Path(folder).resolve().parent
    while parent != parent.parent:   # every ancestor: a traversable folder may sit in a closed one (mkdtemp: 700)
        mode = parent.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(parent, stat.S_IMODE(mode) | stat.S_IXOTH)
        parent = parent.parent


def _give(folder: Path, uid: int, gid: int) -> None:
    """``folder`` and everything in it to the user (links are not followed)."""
    for root, dirs, files in os.walk(folder):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, uid, gid)
    _traversable(folder)


def _readable(folder: Path) -> None:
    """``folder`` readable by everyone and writable by its owner only (root)."""
    for root, dirs, files in os.walk(folder):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o444)
    _traversable(folder)


@dataclass(frozen=True)
class UnprivilegedUser:
    """Runs a command as ``name`` (no capabilities, no supplementary groups); in place of a :class:`Sandbox`."""

    name: str
    uid: int
    gid: int
    setpriv: str
    remaps_paths = False     # the run sees its folders at their own paths
    data = None              # no data folder is mounted: labkit's own path is used

    def describe(self) -> str:
        return (f"as the unprivileged user {self.name} (uid {self.uid}), without a sandbox: bubblewrap cannot run "
                "here; the instructor's files are not readable by that user")

    def command(self, inner: Sequence[str], submission: Path, notebook_dir: Path, private: Path,
                cwd: Optional[str] = None, readonly: Sequence[Tuple[Path, str]] = ()) -> List[str]:
        for folder in (submission, notebook_dir, private):
            Path(folder).mkdir(parents=True, exist_ok=True)
            _give(Path(folder), self.uid, self.gid)
        for host, _inside in readonly:   # readable, not writable (the snapshot of the graded models)
            _readable(Path(host))
        return [self.setpriv, f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups",
                "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--", *inner]


def find_unprivileged_user(name: str = "student") -> Optional[UnprivilegedUser]:
    """The user ``name`` if this process is root, that user exists and ``setpriv`` is there; None otherwise."""
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or not setpriv:
        return None
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return UnprivilegedUser(name, entry.pw_uid, entry.pw_gid, setpriv)
