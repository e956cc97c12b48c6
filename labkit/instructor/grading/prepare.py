"""Turn one submission into the notebook ``labkit grade`` runs.

* :func:`load_assignment` reads the instructor's notebook (``<source>/<name>.ipynb``): its
  check cells and points, its hand-graded answer cells, its standard cells, and the
  release the students started from.
* :func:`prepare` copies a submission (``.ipynb``, folder or zip) to a private working
  folder, finds and validates its notebook, restores the instructor's check cells by id,
  scans the student's code for tampering with the check helpers, and builds the notebook
  to run: an init cell first, a guard cell before every check cell, and a confirmation
  line at the end of every check cell (see :mod:`labkit.instructor.grading.guard`).

Nothing here touches the submission itself: everything happens on copies.
"""
from __future__ import annotations

import ast
import copy
import difflib
import importlib.util
import json
import os
import re
import secrets
import shutil
import stat
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import nbformat

from ..release import MD_ANSWER_PROMPT, ReleaseError, answers_in, checks_in, release_notebook

__all__ = ["Assignment", "Prepared", "load_assignment", "prepare", "restore_cells", "scan_code",
           "PROTECTED_TAGS", "CHECK_MARK"]

PROTECTED_TAGS = ("parameters", "labkit-setup")  # standard cells: restored like check cells
CHECK_MARK = "LABKIT-CHECK"
MAX_NOTEBOOK_BYTES = 200 * 2**20
MAX_SUBMISSION_BYTES = 2 * 2**30
MAX_FILES = 20000
SETUP_CALL = re.compile(r"labkit\.setup\(\s*[\"']([\w.-]+)[\"']")
SKIP_PARTS = {"__MACOSX", ".ipynb_checkpoints", ".git"}
TAMPER_WORDS = {
    "set_custom_exc": "installs a custom exception handler",
    "showtraceback": "touches IPython's error reporting (showtraceback)",
    "_showtraceback": "touches IPython's error reporting (_showtraceback)",
    "input_transformers_cleanup": "changes IPython's input transformers",
    "input_transformers_post": "changes IPython's input transformers",
    "input_transformer_manager": "changes IPython's input transformers",
    "ast_transformers": "changes IPython's AST transformers",
    "shell_handlers": "changes the kernel's message handlers",
    "do_execute": "touches the kernel's execute method",
    "run_cell": "touches IPython's run_cell",
    "grading.guard": "refers to the grader's guard",
    "__labkit_guard__": "refers to the grader's guard",
    "LABKIT_GRADING": "checks whether it is being graded (LABKIT_GRADING)",
    "LABKIT-CHECK": "prints the grader's confirmation marker",
    "/proc/": "reads process internals (/proc)",
}
EXCEPTION_NAMES = {"AssertionError", "Exception", "BaseException", "CheckFailed"}


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in (source or "").strip().splitlines())


def _meta(cell) -> dict:
    value = cell.get("metadata", {}).get("labkit")
    return value if isinstance(value, dict) else {}


def _tags(cell) -> List[str]:
    tags = cell.get("metadata", {}).get("tags", [])
    return [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []


def _first_line(source: str) -> str:
    for line in (source or "").splitlines():
        if line.strip():
            return line.strip()[:80]
    return "(empty cell)"


# --------------------------------------------------------------------------- the assignment


@dataclass
class Assignment:
    name: str
    path: Path
    solution: object
    release: object
    checks: Dict[str, Dict]              # id -> {"points", "index", "source"} (index in the solution)
    answers: Dict[str, Dict]
    protected: List[Tuple[int, Tuple[str, str]]]   # (release index, ("check", id) | ("tag", tag))
    aliases: List[Tuple[str, str, Optional[str]]]  # names the check cells rely on: (alias, module, attribute)
    imports: List[str]                   # modules the check and standard cells import
    helper_names: List[str]              # labkit names the check cells use (redefining them is flagged)
    instructor_lines: set
    others: Dict[str, str] = field(default_factory=dict)  # check id -> other assignment's name

    @property
    def auto_max(self) -> float:
        return sum(c["points"] for c in self.checks.values())

    @property
    def manual_max(self) -> float:
        return sum(a["points"] for a in self.answers.values())


def _imports(source: str):
    """``(alias, module, attribute)`` for each import statement of a cell."""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.asname:
                    found.append((a.asname, a.name, None))
                else:
                    found.append((a.name.split(".")[0], a.name.split(".")[0], None))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                if a.name != "*":
                    found.append((a.asname or a.name, node.module, a.name))
    return found


def _loaded_names(source: str) -> set:
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _python(source: str) -> str:
    """IPython syntax (magics, shell escapes) turned into plain Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source or "")
    except Exception:
        return source or ""


def load_assignment(name: str, source: Path) -> Assignment:
    """Read ``<source>/<name>.ipynb`` (the instructor's notebook with solutions)."""
    source = Path(source)
    path = source / f"{name}.ipynb"
    if not path.exists():
        available = sorted(p.stem for p in source.glob("*.ipynb"))
        raise FileNotFoundError(f"No instructor notebook {path}. Available in {source}: {', '.join(available) or 'none'}.")
    solution = nbformat.read(path, as_version=4)
    checks = checks_in(solution)
    if not checks:
        raise ReleaseError(f"{path} has no check cells (metadata labkit.check); nothing to grade automatically.")
    release = release_notebook(solution, name)
    protected = []
    for index, cell in enumerate(release.cells):
        cid = _meta(cell).get("check")
        if cid:
            protected.append((index, ("check", cid)))
        for tag in _tags(cell):
            if tag in PROTECTED_TAGS:
                protected.append((index, ("tag", tag)))
    imports, aliases, seen = [], [], set()
    used = set()
    for index, key in protected:
        cell = release.cells[index]
        if key[0] == "check":
            used |= _loaded_names(cell.source)
        for alias, module, attr in _imports(cell.source):
            if alias not in seen:
                seen.add(alias)
                aliases.append((alias, module, attr))
            if module not in imports:
                imports.append(module)
            if attr and module.startswith("labkit"):
                full = f"{module}.{attr}"
                if importlib.util.find_spec(module) is not None:
                    try:
                        if importlib.util.find_spec(full) is not None and full not in imports:
                            imports.append(full)
                    except (ImportError, ValueError):
                        pass
    helper_names = sorted(a for a, m, _ in aliases if m.startswith("labkit") and a in used)
    instructor_lines = {line.strip() for cell in solution.cells for line in cell.source.splitlines() if line.strip()}
    others = {}
    for other in sorted(source.glob("*.ipynb")):
        if other.stem == name:
            continue
        try:
            for cid in checks_in(nbformat.read(other, as_version=4)):
                if cid not in checks:
                    others[cid] = other.stem
        except Exception:
            continue
    return Assignment(name=name, path=path, solution=solution, release=release, checks=checks,
                      answers=answers_in(solution), protected=protected, aliases=aliases, imports=imports,
                      helper_names=helper_names, instructor_lines=instructor_lines, others=others)


# --------------------------------------------------------------------------- the submission


@dataclass
class Prepared:
    submission: str                      # short name, unique in the run
    source: Path                         # what was handed in
    status: Optional[str] = None         # "invalid" when it cannot be run
    reason: str = ""
    workdir: Optional[Path] = None       # the kernel's working folder (copy of the submission)
    notebook_name: str = ""
    graded: object = None                # the notebook to run
    roles: List[Dict] = field(default_factory=list)   # one per code cell of ``graded``
    token: str = ""
    flags: List[str] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)    # check cells restored, files left out...
    answers: Dict[str, Optional[str]] = field(default_factory=dict)


class Invalid(Exception):
    """The submission cannot be graded (reason in the message)."""


def _safe_copytree(src: Path, dst: Path, notes: List[str]) -> None:
    total, count = 0, 0
    for root, dirs, files in os.walk(src, followlinks=False):
        rel = Path(root).relative_to(src)
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
                raise Invalid(f"the submission is too large (over {MAX_SUBMISSION_BYTES >> 20} MB or {MAX_FILES} files)")
            shutil.copyfile(path, dst / rel / name)


def _safe_unzip(path: Path, dst: Path, notes: List[str]) -> None:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise Invalid(f"not a readable zip file ({exc})") from None
    with archive:
        members = archive.infolist()
        if len(members) > MAX_FILES:
            raise Invalid(f"the zip holds {len(members)} files (at most {MAX_FILES})")
        if sum(m.file_size for m in members) > MAX_SUBMISSION_BYTES:
            raise Invalid(f"the zip unpacks to more than {MAX_SUBMISSION_BYTES >> 20} MB")
        for member in members:
            name = member.filename.replace("\\", "/")
            parts = [p for p in name.split("/") if p not in ("", ".")]
            if member.is_dir() or not parts:
                continue
            if name.startswith("/") or ".." in parts or ":" in parts[0]:
                notes.append(f"left out {name}: unsafe path")
                continue
            if any(p in SKIP_PARTS for p in parts):
                continue
            mode = (member.external_attr >> 16) & 0o170000
            if mode and mode != stat.S_IFREG:
                notes.append(f"left out {name}: not a regular file")
                continue
            target = dst.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, 2**20)
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
                raise Invalid(f"could not unpack {name} from the zip ({exc})") from None


def _find_notebook(workdir: Path, assignment: str) -> Path:
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


# Modules the checks and the grader's machinery rely on; a submission may not bring its own copy.
GUARDED_MODULES = set(getattr(sys, "stdlib_module_names", ())) | {
    "labkit", "numpy", "scipy", "torch", "torchvision", "matplotlib", "matplotlib_inline", "PIL", "imageio",
    "tqdm", "IPython", "ipykernel", "jupyter_client", "jupyter_core", "zmq", "traitlets", "tornado", "comm",
    "nbformat", "nbclient", "nbval", "pytest", "_pytest", "pluggy", "sitecustomize", "usercustomize",
}


def _remove_shadowing(folder: Path, notes: List[str], flags: List[str]) -> None:
    """Delete modules in the kernel's folder that would replace ones the checks use (``labkit/``, ``numpy.py`` ...).

    The kernel's working folder comes first on ``sys.path``. A student's own helper module
    (``utils.py``) stays, unless its name is one of :data:`GUARDED_MODULES`.
    """
    for entry in list(folder.iterdir()):
        if entry.is_dir() and (entry / "__init__.py").exists():
            module = entry.name
        elif entry.is_file() and entry.suffix in (".py", ".pyc", ".so", ".pyd", ".pth"):
            module = entry.name.split(".")[0]
        else:
            continue
        if module in GUARDED_MODULES or entry.suffix == ".pth":
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
            flags.append(f"the submission contains {entry.name}, which would replace the installed module "
                         f"{module!r}; it was left out")


def read_notebook(path: Path):
    """The notebook at ``path``, or :class:`Invalid` saying why it is not one."""
    size = path.stat().st_size
    if size == 0:
        raise Invalid("the notebook file is empty (0 bytes)")
    if size > MAX_NOTEBOOK_BYTES:
        raise Invalid(f"the notebook is too large ({size >> 20} MB)")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("not a notebook: the file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise Invalid(f"not a notebook: invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells", data.get("worksheets")), list):
        raise Invalid("not a notebook: the JSON has no list of cells")
    try:
        try:
            nb = nbformat.reads(text, as_version=4, capture_validation_error={})
        except TypeError:  # older nbformat
            nb = nbformat.reads(text, as_version=4)
    except Exception as exc:
        raise Invalid(f"not a readable notebook ({type(exc).__name__}: {str(exc)[:200]})") from None
    for cell in nb.cells:
        if not isinstance(cell.get("source", ""), str) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            raise Invalid("not a readable notebook: a cell has no valid type or source")
        cell.setdefault("metadata", nbformat.NotebookNode())
    return nb


def _same_assignment(assignment: Assignment, nb) -> None:
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    if not nb.cells or not any(c.source.strip() for c in nb.cells):
        raise Invalid("the notebook is empty (no cells with content)")
    names = {m for c in code for m in SETUP_CALL.findall(c.source)}
    if names and assignment.name not in names:
        raise Invalid(f"this is the notebook of another assignment ({', '.join(sorted(names))}), "
                      f"not {assignment.name}")
    ids = {_meta(c).get("check") for c in nb.cells} - {None}
    if ids & set(assignment.checks):
        return
    other = sorted({assignment.others[i] for i in ids if i in assignment.others})
    if other:
        raise Invalid(f"this is the notebook of another assignment ({', '.join(other)}), not {assignment.name}")
    release = {_norm(c.source) for c in assignment.release.cells if len(_norm(c.source)) > 20}
    mine = {_norm(c.source) for c in nb.cells}
    share = len(release & mine) / max(1, len(release))
    if share < 0.25:
        raise Invalid(f"this does not look like {assignment.name}: none of its check cells and only "
                      f"{share:.0%} of its cells are there")


# --------------------------------------------------------------------------- restoring check cells


def _align(release_cells, student_cells) -> Dict[int, int]:
    """Release index -> student index for cells that match exactly, or pair up in an edited stretch."""
    a = [(c.cell_type, _norm(c.source)) for c in release_cells]
    b = [(c.cell_type, _norm(c.source)) for c in student_cells]
    mapping = {}
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                mapping[i1 + k] = j1 + k
        elif tag == "replace" and i2 - i1 == j2 - j1:
            for k in range(i2 - i1):
                if a[i1 + k][0] == b[j1 + k][0]:
                    mapping[i1 + k] = j1 + k
    return mapping


def restore_cells(assignment: Assignment, nb):
    """The student's cells with every protected cell replaced by (or re-inserted from) the instructor's.

    Returns ``(cells, protected, origins, notes)``: ``protected`` maps positions in ``cells`` to
    their key (``("check", id)`` or ``("tag", tag)``); ``origins`` gives, for each cell, its index
    in the student's notebook (``None`` for a re-inserted one); the other cells are the
    student's (labkit metadata cleaned).
    """
    release = assignment.release.cells
    student = [copy.deepcopy(c) for c in nb.cells]
    keys = {key: index for index, key in assignment.protected}
    notes = []
    found: Dict[Tuple[str, str], int] = {}
    for i, cell in enumerate(student):
        meta = _meta(cell)
        cid = meta.get("check")
        if cid is not None:
            key = ("check", str(cid))
            if key in keys and key not in found:
                found[key] = i
            else:
                notes.append(f"a cell claimed check id {cid!r} ({'a duplicate' if key in keys else 'unknown'}); "
                             "it ran as ordinary code")
        if "labkit" in cell.get("metadata", {}):
            answer = meta.get("answer")
            cell.metadata["labkit"] = {"answer": answer} if answer else {}
            if not cell.metadata["labkit"]:
                del cell.metadata["labkit"]
        for tag in _tags(cell):
            key = ("tag", tag)
            if key in keys and key not in found and i not in found.values():
                found[key] = i
    for key, r in keys.items():  # metadata lost but the cell itself is intact
        if key not in found:
            want = (release[r].cell_type, _norm(release[r].source))
            for i, cell in enumerate(student):
                if i not in found.values() and (cell.cell_type, _norm(cell.source)) == want:
                    found[key] = i
                    break
    mapping = _align(release, student)
    for key, s in found.items():
        mapping[keys[key]] = s
    replaced: Dict[int, Tuple[str, str]] = {}
    inserts: Dict[int, List[Tuple[str, str]]] = {}
    for r, key in assignment.protected:
        label = f"check {key[1]!r}" if key[0] == "check" else f"standard cell {key[1]!r}"
        if key in found:
            s = found[key]
            if s in replaced:
                continue
            replaced[s] = key
            if _norm(student[s].source) != _norm(release[r].source):
                what = "replaced by `pass`" if _norm(student[s].source) in ("pass", "") else "edited"
                notes.append(f"{label} was {what} in the submission; the original was used")
            continue
        later = sorted((rr, s) for rr, s in mapping.items() if rr > r)
        position = later[0][1] if later else len(student)
        inserts.setdefault(position, []).append(key)
        notes.append(f"{label} was missing from the submission; the original was put back")
    cells, protected, origins = [], {}, []
    instructor = {key: release[r] for r, key in assignment.protected}
    for s in range(len(student) + 1):
        for key in inserts.get(s, []):
            protected[len(cells)] = key
            cells.append(copy.deepcopy(instructor[key]))
            origins.append(None)
        if s < len(student):
            if s in replaced:
                protected[len(cells)] = replaced[s]
                cells.append(copy.deepcopy(instructor[replaced[s]]))
            else:
                cells.append(student[s])
            origins.append(s)
    return cells, protected, origins, notes


# --------------------------------------------------------------------------- static tamper scan


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(_dotted(node.func) + "()")
    elif isinstance(node, ast.Subscript):
        parts.append(_dotted(node.value) + "[]")
    else:
        parts.append("?")
    return ".".join(reversed(parts))


def scan_code(assignment: Assignment, source: str) -> List[str]:
    """Ways in which ``source`` (one student cell) tampers with the check machinery."""
    labkit_names = {a for a, m, _ in assignment.aliases if m.startswith("labkit")} | {"labkit"}
    helpers = set(assignment.helper_names)
    python = _python(source)
    new_lines = {i + 1 for i, line in enumerate(python.splitlines())
                 if line.strip() and line.strip() not in assignment.instructor_lines}
    found = []

    def add(node, text):
        if getattr(node, "lineno", None) in new_lines:
            found.append(text)

    try:
        tree = ast.parse(python)
    except SyntaxError:
        tree = None
    if tree is not None:
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, (ast.Assign, ast.Delete)):
                targets = node.targets
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
                targets = [node.target]
            elif isinstance(node, (ast.For, ast.With)):
                targets = [node.target] if isinstance(node, ast.For) else [i.optional_vars for i in node.items if i.optional_vars]
            for target in targets:
                for t in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]):
                    name = _dotted(t)
                    root = name.split(".")[0].split("[")[0]
                    if isinstance(t, ast.Attribute) and root in labkit_names:
                        add(node, f"assigns to {name}")
                    elif isinstance(t, ast.Attribute) and t.attr in ("__code__", "__defaults__", "__kwdefaults__", "__globals__"):
                        add(node, f"replaces a function's {t.attr} ({name})")
                    elif root in ("builtins", "__builtins__") or name.startswith("sys.modules"):
                        add(node, f"changes {name}")
                    elif isinstance(t, ast.Name) and t.id in helpers:
                        add(node, f"rebinds {t.id!r}, which the check cells use")
                    elif isinstance(t, ast.Name) and t.id in EXCEPTION_NAMES:
                        add(node, f"rebinds the exception class {t.id}")
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                if node.name in helpers:
                    add(node, f"defines its own {node.name!r}, which the check cells use")
                elif node.name in EXCEPTION_NAMES:
                    add(node, f"defines its own {node.name}")
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                for a in node.names:
                    bound = a.asname or a.name.split(".")[0]
                    module = getattr(node, "module", None) or ""
                    if bound in helpers and not (module + "." + a.name).startswith("labkit") and not a.name.startswith("labkit"):
                        add(node, f"imports something else as {bound!r}, which the check cells use")
                    if a.name == "builtins":
                        add(node, "imports builtins")
            elif isinstance(node, ast.Call):
                func = _dotted(node.func)
                if func.split(".")[-1] in ("setattr", "delattr") and node.args:
                    target = _dotted(node.args[0]).split(".")[0]
                    if target in labkit_names or target in ("builtins", "__builtins__", "sys"):
                        add(node, f"calls {func.split('.')[-1]} on {_dotted(node.args[0])}")
                if any(part in ("patch", "monkeypatch") for part in func.split(".")) and ("mock" in func or "patch" in func):
                    add(node, f"patches objects with {func}")
                if func.endswith("events.register"):
                    add(node, "registers an IPython event callback")
    for line_no, line in enumerate(python.splitlines(), 1):
        if line_no not in new_lines:
            continue
        for word, text in TAMPER_WORDS.items():
            if word in line:
                found.append(text)
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- the notebook to run


def _answers(assignment: Assignment, nb) -> Dict[str, Optional[str]]:
    release = assignment.release.cells
    mapping = _align(release, nb.cells)
    result = {}
    for aid, info in assignment.answers.items():
        cell = next((c for c in nb.cells if _meta(c).get("answer") == aid), None)
        if cell is None and info["index"] in mapping:
            candidate = nb.cells[mapping[info["index"]]]
            cell = candidate if candidate.cell_type == "markdown" else None
        if cell is None:
            result[aid] = None
        elif _norm(cell.source) == _norm(release[info["index"]].source) or MD_ANSWER_PROMPT in cell.source:
            result[aid] = ""
        else:
            result[aid] = cell.source.strip()
    return result


def _code_cell(source: str, role: str, **meta):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["labkit_grading"] = {"role": role, **meta}
    cell.pop("id", None)
    return cell


def build_notebook(assignment: Assignment, cells, protected, origins, token: str):
    """The notebook to run and the role of each of its code cells (nbval numbers code cells only)."""
    graded = nbformat.v4.new_notebook()
    graded.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    roles = []

    def add(cell, role):
        graded.cells.append(cell)
        roles.append(role)

    init = ("# Added by labkit grade: records the genuine check helpers before any notebook code runs.\n"
            "import labkit.instructor.grading.guard as __labkit_guard__\n"
            f"__labkit_guard__.init(imports={assignment.imports!r}, aliases={[list(a) for a in assignment.aliases]!r})\n"
            "del __labkit_guard__")
    add(_code_cell(init, "init"), {"role": "init"})
    for position, cell in enumerate(cells):
        key = protected.get(position)
        number = None if origins[position] is None else origins[position] + 1
        if cell.cell_type != "code":
            continue
        if key and key[0] == "check":
            cid = key[1]
            guard = ("import labkit.instructor.grading.guard as __labkit_guard__\n"
                     f"__labkit_guard__.before_check({cid!r})\n"
                     "del __labkit_guard__")
            add(_code_cell(guard, "guard", check=cid), {"role": "guard", "check": cid})
            source = cell.source.rstrip() + f"\nprint({CHECK_MARK!r}, {cid!r}, {token!r})"
            run = _code_cell(source, "check", check=cid)
            run.metadata["labkit"] = dict(_meta(cell))
            add(run, {"role": "check", "check": cid, "cell": number, "line": _first_line(cell.source)})
        else:
            run = copy.deepcopy(cell)
            run.outputs = []
            run.execution_count = None
            run.pop("id", None)
            role = "standard" if key else "student"
            run.metadata = {"tags": [t for t in _tags(cell) if not t.startswith(("nbval", "raises-exception"))],
                            "labkit_grading": {"role": role}}
            add(run, {"role": role, "cell": number, "tag": key[1] if key else None, "line": _first_line(cell.source)})
    final = ("import labkit.instructor.grading.guard as __labkit_guard__\n"
             "__labkit_guard__.before_check(None)\n"
             "del __labkit_guard__")
    add(_code_cell(final, "guard"), {"role": "guard", "check": None})
    graded.nbformat, graded.nbformat_minor = 4, 4
    return graded, roles


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "submission"
    return slug[:80]


def submission_names(paths) -> List[str]:
    """Short unique names for the submissions (used for feedback files and the CSV)."""
    names, seen = [], {}
    for path in paths:
        path = Path(path)
        base = path.name
        for suffix in (".ipynb", ".zip"):
            if base.lower().endswith(suffix):
                base = base[: -len(suffix)]
        base = _slug(base)
        seen[base] = seen.get(base, 0) + 1
        names.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return names


def prepare(assignment: Assignment, path, name: str, workroot: Path) -> Prepared:
    """Copy, validate and restore one submission; ``status`` is ``"invalid"`` when it cannot run."""
    path = Path(path)
    prepared = Prepared(submission=name, source=path)
    workdir = Path(workroot) / name
    try:
        workdir.mkdir(parents=True)
        if path.is_dir():
            _safe_copytree(path, workdir, prepared.notes)
        elif not path.exists():
            raise Invalid("the file does not exist")
        elif path.suffix.lower() == ".zip" or (path.suffix.lower() != ".ipynb" and zipfile.is_zipfile(path)):
            _safe_unzip(path, workdir, prepared.notes)
        elif path.suffix.lower() == ".ipynb":
            shutil.copyfile(path, workdir / path.name)
        else:
            raise Invalid(f"not a notebook: {path.name} is neither an .ipynb file, a folder nor a zip")
        notebook = _find_notebook(workdir, assignment.name)
        nb = read_notebook(notebook)
        _same_assignment(assignment, nb)
    except Invalid as exc:
        prepared.status, prepared.reason = "invalid", str(exc)
        return prepared
    prepared.workdir = notebook.parent
    prepared.notebook_name = str(notebook.relative_to(workdir))
    _remove_shadowing(notebook.parent, prepared.notes, prepared.flags)
    cells, protected, origins, notes = restore_cells(assignment, nb)
    prepared.notes += notes
    for position, cell in enumerate(cells):
        if position not in protected and cell.cell_type == "code":
            for finding in scan_code(assignment, cell.source):
                prepared.flags.append(f"cell {origins[position] + 1} (`{_first_line(cell.source)}`): {finding}")
    prepared.answers = _answers(assignment, nb)
    prepared.token = secrets.token_hex(12)
    prepared.graded, prepared.roles = build_notebook(assignment, cells, protected, origins, prepared.token)
    return prepared
