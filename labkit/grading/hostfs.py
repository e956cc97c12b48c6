"""Removing what a graded run left on the host: iterative, bounded, and never raising.

A graded notebook can leave anything in its copy and its private ``/tmp``: a folder tree 6,000 levels deep
(deeper than Python's recursion limit and than ``PATH_MAX``), millions of files, links to anywhere.
:func:`remove_tree` removes such a tree with one open folder at a time, by names relative to that folder
(``dir_fd``), never following a link, and reports instead of raising, so a clean-up can never cost a batch
its grades.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import List, Optional

__all__ = ["remove_tree"]

_OPEN_DIR = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


def _entries(fd: int) -> List[os.DirEntry]:
    with os.scandir(fd) as it:
        return list(it)


def _remove_contents(top_fd: int, max_entries: int) -> int:
    """Empty the folder open as ``top_fd`` (which stays open); the number of entries removed.

    Walks down by opening one child folder relative to the current one and back up with ``..``: one folder
    open at a time, whatever the depth, and no path longer than one name.
    """
    removed, names = 0, []           # names: the folders walked into, below top_fd
    fd = os.dup(top_fd)
    try:
        while True:
            child = None
            for entry in _entries(fd):
                if entry.is_dir(follow_symlinks=False):
                    child = entry.name
                    break
                os.unlink(entry.name, dir_fd=fd)
                removed += 1
                if removed > max_entries:
                    raise OSError(f"more than {max_entries} entries")
            if child is not None:       # go down into the first folder left
                try:
                    os.chmod(child, stat.S_IRWXU, dir_fd=fd)  # a run may have closed it; the grader owns it
                except OSError:
                    pass
                down = os.open(child, _OPEN_DIR, dir_fd=fd)
                os.close(fd)
                fd = down
                names.append(child)
                continue
            if not names:               # top_fd itself is empty
                return removed
            up = os.open("..", _OPEN_DIR, dir_fd=fd)
            os.close(fd)
            fd = up
            os.rmdir(names.pop(), dir_fd=fd)
            removed += 1
    finally:
        os.close(fd)


def remove_tree(path, max_entries: int = 10_000_000) -> Optional[str]:
    """Remove ``path`` (a folder or a file) and everything below it; None when done, else what went wrong.

    Never raises: the caller logs the message (a clean-up must not lose a batch's grades).
    """
    path = Path(path)
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{path}: {exc}"
    try:
        if not stat.S_ISDIR(info.st_mode):
            os.unlink(path)
            return None
        fd = os.open(path, _OPEN_DIR)
        try:
            _make_writable(fd)
            _remove_contents(fd, max_entries)
        finally:
            os.close(fd)
        os.rmdir(path)
        return None
    except Exception as exc:  # noqa: BLE001 - reported, never raised
        return f"{path} could not be removed entirely ({type(exc).__name__}: {exc})"


def _make_writable(fd: int) -> None:
    """A run may leave folders without write permission; the grader owns them, so it may give it back."""
    try:
        os.fchmod(fd, stat.S_IRWXU)
    except OSError:
        pass
