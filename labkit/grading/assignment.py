"""The assignment being graded, read from the instructor's notebook: checks, points, protected cells (load_assignment).

:func:`load_assignment` reads ``<source>/<name>.ipynb`` (the notebook with solutions) and gives
its check cells and points, its hand-graded answer cells, the cells the grader restores, what
the check cells import, the release the students started from, and the check ids of the other
notebooks in ``<source>`` (to recognise a submission of another assignment). Other notebooks it
cannot read are listed in :attr:`Assignment.skipped` with the reason.
"""
from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Set, Tuple

import nbformat

from ..notebook_format import ReleaseError, answers_in, cell_tags, checks_in, labkit_meta, release_notebook
from .cells import PROTECTED_TAGS, CellKey, python_source

__all__ = ["Assignment", "Alias", "ProtectedCell", "SkippedNotebook", "load_assignment"]


class ProtectedCell(NamedTuple):
    """A cell of the release that the grader puts back: its index in the release, and which one it is."""

    index: int
    key: CellKey


class Alias(NamedTuple):
    """A name an import statement of a check or standard cell binds: ``import labkit.checks as checks``."""

    alias: str
    module: str
    attribute: Optional[str]  # ``from module import attribute``; None for ``import module``


@dataclass(frozen=True)
class SkippedNotebook:
    """A notebook in the source folder that could not be read for its check ids."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass
class Assignment:
    name: str
    path: Path
    solution: object
    release: object
    checks: Dict[str, Dict]              # id -> {"points", "index", "source"} (index in the solution)
    answers: Dict[str, Dict]
    protected: List[ProtectedCell]       # cells of the release the grader restores
    aliases: List[Alias]                 # names the check and standard cells bind by importing
    imports: List[str]                   # modules the check and standard cells import
    helper_names: List[str]              # labkit names the check cells use (redefining them is flagged)
    instructor_lines: Set[str]
    others: Dict[str, str] = field(default_factory=dict)  # check id -> other assignment's name
    skipped: List[SkippedNotebook] = field(default_factory=list)  # other notebooks that could not be read

    @property
    def auto_max(self) -> float:
        return sum(c["points"] for c in self.checks.values())

    @property
    def manual_max(self) -> float:
        return sum(a["points"] for a in self.answers.values())


# --------------------------------------------------------------------------- what the protected cells use


def _cell_imports(source: str) -> List[Alias]:
    """One :class:`Alias` per name an import statement of the cell binds."""
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                top = a.name.split(".")[0]
                found.append(Alias(a.asname, a.name, None) if a.asname else Alias(top, top, None))
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [Alias(a.asname or a.name, node.module, a.name) for a in node.names if a.name != "*"]
    return found


def _loaded_names(source: str) -> Set[str]:
    try:
        tree = ast.parse(python_source(source))
    except SyntaxError:
        return set()
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _labkit_submodule(module: str, attribute: Optional[str]) -> Optional[str]:
    """``labkit.x.y`` when ``from labkit.x import y`` imports a submodule (the guard imports it first)."""
    if not attribute or not module.startswith("labkit") or importlib.util.find_spec(module) is None:
        return None
    full = f"{module}.{attribute}"
    try:
        return full if importlib.util.find_spec(full) is not None else None
    except (ImportError, ValueError):
        return None


def _imported_modules(found: List[Alias]) -> List[str]:
    modules: List[str] = []
    for alias in found:
        for module in (alias.module, _labkit_submodule(alias.module, alias.attribute)):
            if module and module not in modules:
                modules.append(module)
    return modules


def _first_binding(found: List[Alias]) -> List[Alias]:
    aliases, seen = [], set()
    for alias in found:
        if alias.alias not in seen:
            seen.add(alias.alias)
            aliases.append(alias)
    return aliases


def _protected_cells(release) -> List[ProtectedCell]:
    protected = []
    for index, cell in enumerate(release.cells):
        cid = labkit_meta(cell).get("check")
        if cid:
            protected.append(ProtectedCell(index, CellKey.check(cid)))
        protected += [ProtectedCell(index, CellKey.tag(tag)) for tag in cell_tags(cell) if tag in PROTECTED_TAGS]
    return protected


# --------------------------------------------------------------------------- the other assignments


def _other_check_ids(source: Path, name: str, checks) -> Tuple[Dict[str, str], List[SkippedNotebook]]:
    """Check ids of the other notebooks in ``source`` (id -> notebook name), and the notebooks not read."""
    others, skipped = {}, []
    for other in sorted(source.glob("*.ipynb")):
        if other.stem == name:
            continue
        try:
            ids = checks_in(nbformat.read(other, as_version=4))
        except Exception as exc:  # a broken unrelated notebook must not stop grading this one: say so and go on
            skipped.append(SkippedNotebook(other, f"{type(exc).__name__}: {str(exc)[:200]}"))
            continue
        others.update({cid: other.stem for cid in ids if cid not in checks})
    return others, skipped


def _instructor_notebook(name: str, source: Path) -> Path:
    path = source / f"{name}.ipynb"
    if not path.exists():
        available = sorted(p.stem for p in source.glob("*.ipynb"))
        raise FileNotFoundError(f"No instructor notebook {path}. Available in {source}: {', '.join(available) or 'none'}.")
    return path


def load_assignment(name: str, source: Path) -> Assignment:
    """Read ``<source>/<name>.ipynb`` (the instructor's notebook with solutions)."""
    source = Path(source)
    path = _instructor_notebook(name, source)
    solution = nbformat.read(path, as_version=4)
    checks = checks_in(solution)
    if not checks:
        raise ReleaseError(f"{path} has no check cells (metadata labkit.check); nothing to grade automatically.")
    release = release_notebook(solution, name)
    protected = _protected_cells(release)
    found = [alias for p in protected for alias in _cell_imports(release.cells[p.index].source)]
    aliases = _first_binding(found)
    used = {n for p in protected if p.key.is_check for n in _loaded_names(release.cells[p.index].source)}
    others, skipped = _other_check_ids(source, name, checks)
    return Assignment(
        name=name, path=path, solution=solution, release=release, checks=checks, answers=answers_in(solution),
        protected=protected, aliases=aliases, imports=_imported_modules(found),
        helper_names=sorted(a.alias for a in aliases if a.module.startswith("labkit") and a.alias in used),
        instructor_lines={line.strip() for cell in solution.cells for line in cell.source.splitlines() if line.strip()},
        others=others, skipped=skipped)
