"""Intake of one submission: copy or unzip it safely, find and read its notebook, check it is this assignment's.

Nothing here touches what was handed in: a folder is copied without links or special files, a
zip is unpacked without absolute or ``..`` paths, both under size and file-count limits. Modules
that would replace installed ones (``labkit/``, ``numpy.py`` ...) are left out of the copy.
Whatever makes a submission impossible to grade raises :class:`Invalid` with the reason.
"""
from __future__ import annotations

import importlib.machinery
import json
import os
import re
import shutil
import stat
import sys
import zipfile
from pathlib import Path
from typing import List, Optional

import nbformat

from .assignment import Assignment
from ..notebook_format import SETUP_CALL, labkit_meta
from .cells import norm, safe_strings

__all__ = ["Invalid", "copy_submission", "find_notebook", "read_notebook", "check_same_assignment",
           "remove_shadowing", "submission_names", "GUARDED_MODULES"]

MAX_NOTEBOOK_BYTES = 200 * 2**20
MAX_SUBMISSION_BYTES = 2 * 2**30
MAX_FILES = 20000
MAX_DEPTH = 32   # folder levels of a submission kept (a notebook with its models needs two or three)
SKIP_PARTS = {"__MACOSX", ".ipynb_checkpoints", ".git"}

# Modules the checks and the grader's machinery rely on; a submission may not bring its own copy.
GUARDED_MODULES = set(getattr(sys, "stdlib_module_names", ())) | {
    "labkit", "numpy", "scipy", "torch", "torchvision", "matplotlib", "matplotlib_inline", "PIL", "imageio",
    "tqdm", "IPython", "ipykernel", "jupyter_client", "jupyter_core", "zmq", "traitlets", "tornado", "comm",
    "nbformat", "nbclient", "nbval", "pytest", "_pytest", "pluggy", "sitecustomize", "usercustomize",
}


class Invalid(Exception):
    """The submission cannot be graded (reason in the message)."""


# --------------------------------------------------------------------------- copying


def _too_large() -> Invalid:
    return Invalid(f"the submission is too large (over {MAX_SUBMISSION_BYTES >> 20} MB or {MAX_FILES} files)")


def safe_copytree(src: Path, dst: Path, notes: List[str]) -> None:
    """Copy the regular files of ``src`` to ``dst``: no links, no special files, within the limits, at most
    :data:`MAX_DEPTH` folders deep (the walk never goes deeper, so it stays bounded whatever the tree)."""
    total, count = 0, 0
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
        if len(rel.parts) >= MAX_DEPTH and dirs:
            notes.append(f"left out the folders in {rel}: deeper than {MAX_DEPTH} levels")
            dirs[:] = []
        dirs[:] = [d for d in dirs if d not in SKIP_PARTS and not (Path(root) / d).is_symlink()]
        (dst / rel).mkdir(parents=True, exist_ok=True)
        for name in files:
            path = Path(root) / name
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
                notes.append(f"left out {rel / name}: not a regular file")
                continue
            total += info.st_size
            count += 1
            if total > MAX_SUBMISSION_BYTES or count > MAX_FILES:
                raise _too_large()
            shutil.copyfile(path, dst / rel / name)


def _member_name(member: zipfile.ZipInfo) -> str:
    return member.filename.replace("\\", "/")


def _member_parts(member: zipfile.ZipInfo, notes: List[str]) -> Optional[List[str]]:
    """The path parts to unpack a zip member to, or None to leave it out (with a note when it is unsafe)."""
    name = _member_name(member)
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if member.is_dir() or not parts:
        return None
    if name.startswith("/") or ".." in parts or ":" in parts[0]:
        notes.append(f"left out {name}: unsafe path")
        return None
    if any(p in SKIP_PARTS for p in parts):
        return None
    if len(parts) > MAX_DEPTH or any(len(p.encode("utf-8", "surrogateescape")) > 255 for p in parts):
        notes.append(f"left out {name[:120]}...: deeper than {MAX_DEPTH} levels or a name too long")
        return None
    mode = (member.external_attr >> 16) & 0o170000
    if mode and mode != stat.S_IFREG:
        notes.append(f"left out {name}: not a regular file")
        return None
    return parts


def _check_zip_size(members: List[zipfile.ZipInfo]) -> None:
    if len(members) > MAX_FILES:
        raise Invalid(f"the zip holds {len(members)} files (at most {MAX_FILES})")
    if sum(m.file_size for m in members) > MAX_SUBMISSION_BYTES:
        raise Invalid(f"the zip unpacks to more than {MAX_SUBMISSION_BYTES >> 20} MB")


def safe_unzip(path: Path, dst: Path, notes: List[str]) -> None:
    """Unpack the zip at ``path`` into ``dst``, leaving out unsafe paths and special files."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise Invalid(f"not a readable zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        _check_zip_size(members)
        for member in members:
            parts = _member_parts(member, notes)
            if parts is None:
                continue
            target = dst.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 2**20)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                raise Invalid(f"could not unpack {_member_name(member)} from the zip ({exc})") from None


def copy_submission(path: Path, workdir: Path, notes: List[str]) -> None:
    """Put a copy of the submission (folder, zip or notebook) into the empty folder ``workdir``."""
    suffix = path.suffix.lower()
    if path.is_dir():
        safe_copytree(path, workdir, notes)
    elif not path.exists():
        raise Invalid("the file does not exist")
    elif suffix == ".zip" or (suffix != ".ipynb" and zipfile.is_zipfile(path)):
        safe_unzip(path, workdir, notes)
    elif suffix == ".ipynb":
        shutil.copyfile(path, workdir / path.name)
    else:
        raise Invalid(f"not a notebook: {path.name} is neither an .ipynb file, a folder nor a zip")


def _installed(module: str) -> bool:
    """Whether a top-level module of that name is installed (standard library, site-packages, built in)."""
    if module in sys.builtin_module_names:
        return True
    roots = [p for p in sys.path if p and os.path.isdir(p) and os.path.realpath(p) != os.path.realpath(os.getcwd())]
    try:
        return importlib.machinery.PathFinder.find_spec(module, roots) is not None
    except (ImportError, ValueError):
        return False


def remove_shadowing(folder: Path, flags: List[str], notes: Optional[List[str]] = None) -> None:
    """Delete modules in the kernel's folder that have the name of an installed one (``labkit/``, ``numpy.py``,
    ``ipykernel_launcher.py`` ...).

    The kernel starts without its working folder on ``sys.path`` and the guard puts it back last,
    so such a file could never be imported instead of the installed module; it is left out anyway
    (for Pythons before 3.11, which put the folder first). Modules the checks and the grader
    rely on (:data:`GUARDED_MODULES`) are flagged, others noted. A student's own helper module
    (``my_helpers.py``) stays.
    """
    for entry in list(folder.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            module = entry.name
        elif entry.is_file() and entry.suffix in (".py", ".pyc", ".so", ".pyd", ".pth"):
            module = entry.name.split(".")[0]
        else:
            continue
        guarded = module in GUARDED_MODULES or module.startswith(("ipykernel", "jupyter")) or entry.suffix == ".pth"
        if not (guarded or _installed(module)):
            continue
        shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        message = (f"the submission contains {entry.name}, which would replace the installed module {module!r}; "
                   "it was left out")
        if guarded:
            flags.append(message)
        elif notes is not None:
            notes.append(message)


# --------------------------------------------------------------------------- the notebook


def find_notebook(workdir: Path, assignment: str) -> Path:
    """The notebook to grade in the copy: the only one, else ``<assignment>.ipynb``, else the only one named like it."""
    found = sorted(p for p in workdir.rglob("*.ipynb")
                   if not any(part in SKIP_PARTS or part.startswith(".") for part in p.relative_to(workdir).parts))
    if not found:
        raise Invalid("no notebook (.ipynb) in the submission")
    if len(found) == 1:
        return found[0]
    for rule in (lambda p: p.stem == assignment, lambda p: assignment in p.stem):
        matches = [p for p in found if rule(p)]
        if len(matches) == 1:
            return matches[0]
    names = ", ".join(str(p.relative_to(workdir)) for p in found[:6])
    raise Invalid(f"several notebooks and none is clearly {assignment}.ipynb: {names}")


def _notebook_text(path: Path) -> str:
    size = path.stat().st_size
    if size == 0:
        raise Invalid("the notebook file is empty (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise Invalid(f"the notebook is too large ({size >> 20} MB)")
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("not a notebook: the file is not UTF-8 text") from None


def _check_notebook_json(text: str) -> None:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise Invalid("not a notebook: the JSON has no list of cells")


def read_notebook(path: Path):
    """The notebook at ``path``, or :class:`Invalid` saying why it is not one."""
    text = _notebook_text(path)
    _check_notebook_json(text)
    try:
        try:
            nb = nbformat.reads(text, as_version=4, capture_validation_error={})
        except TypeError:  # older nbformat: no capture_validation_error
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:  # whatever nbformat makes of a malformed file, the submission is invalid
        raise Invalid(f"not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    for cell in nb.cells:
        if not isinstance(cell.get("source", ""), str) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise Invalid("not a readable notebook: a cell has no valid type or source")
        cell.setdefault("metadata", nbformat.NotebookNode())
    return safe_strings(nb)   # lone surrogates ("\ud800" in the JSON) would fail every later write


def check_same_assignment(assignment: Assignment, nb) -> None:
    """Raise :class:`Invalid` when ``nb`` is empty or is the notebook of another assignment."""
    if not nb.cells or not any(c.source.strip() for c in nb.cells):
        raise Invalid("the notebook is empty (no cells with content)")
    names = {m for c in nb.cells if c.cell_type == "code" for m in SETUP_CALL.findall(c.source)}
    if names and assignment.name not in names:
        raise Invalid(f"this is the notebook of another assignment ({', '.join(sorted(names))}), "
                      f"not {assignment.name}")
    ids = {labkit_meta(c).get("check") for c in nb.cells} - {None}
    if ids & set(assignment.checks):
        return
    other = sorted({assignment.others[i] for i in ids if i in assignment.others})
    if other:
        raise Invalid(f"this is the notebook of another assignment ({', '.join(other)}), not {assignment.name}")
    release = {norm(c.source) for c in assignment.release.cells if len(norm(c.source)) > 20}
    share = len(release & {norm(c.source) for c in nb.cells}) / max(1, len(release))
    if share < 0.25:
        raise Invalid(f"this does not look like {assignment.name}: none of its check cells and only "
                      f"{share:.0%} of its cells are there")


# --------------------------------------------------------------------------- names


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "submission"
    return slug[:80]


def submission_names(paths) -> List[str]:
    """Short names for the submissions (feedback files, the CSV), unique whatever the inputs, even where file
    names ignore case: ``x/dup.ipynb``, ``y/dup/`` and ``z/dup-2.ipynb`` give ``dup``, ``dup-2`` and ``dup-2-2``."""
    names, taken = [], set()
    for path in paths:
        base = Path(path).name
        for suffix in (".ipynb", ".zip"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
        base = _slug(base)
        name, n = base, 1
        while name.lower() in taken:
            n += 1
            name = f"{base}-{n}"
        taken.add(name.lower())
        names.append(name)
    return names
