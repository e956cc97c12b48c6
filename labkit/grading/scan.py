"""Static scan of a student's code cell for tampering with the check machinery (scan_code).

Handed-in model files are not read here: the sandboxed inspection does that (:mod:`.inspection`).

Only lines that are not in the instructor's notebook are looked at. Findings (assigning to
labkit's helpers, rebinding a name the check cells use, replacing ``__code__``, changing
builtins or ``sys.modules``, ``setattr`` on labkit, ``mock.patch``, IPython's exception and input
hooks, mentions of the grader's guard ...) become flags for the instructor; nothing is blocked.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Iterator, List, Optional, Set

from .assignment import Assignment
from ..environment import GRADING
from .cells import python_source

__all__ = ["scan_code", "dotted", "TAMPER_WORDS", "EXCEPTION_NAMES"]

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
    GRADING.name: f"checks whether it is being graded ({GRADING.name})",
    "/proc/": "reads process internals (/proc)",
    "addaudithook": "installs an audit hook (sys.addaudithook), which cannot be removed",
    "meta_path": "changes the import system (sys.meta_path)",
    "path_hooks": "changes the import system (sys.path_hooks)",
    "settrace": "installs a trace function",
    "setprofile": "installs a profile function",
    "linecache": "reads cached cell sources (linecache)",
}
EXCEPTION_NAMES = {"AssertionError", "Exception", "BaseException", "CheckFailed"}
CODE_ATTRIBUTES = ("__code__", "__defaults__", "__kwdefaults__", "__globals__")


def dotted(node) -> str:
    """``a.b.c`` for an attribute chain (``f()`` and ``x[]`` for calls and subscripts, ``?`` otherwise)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    elif isinstance(node, ast.Call):
        parts.append(dotted(node.func) + "()")
    elif isinstance(node, ast.Subscript):
        parts.append(dotted(node.value) + "[]")
    else:
        parts.append("?")
    return ".".join(reversed(parts))


@dataclass(frozen=True)
class _Names:
    """What the scan compares against: labkit's aliases and the names the check cells rely on."""

    labkit: Set[str]
    helpers: Set[str]


def _assigned(node) -> List[ast.AST]:
    """The simple targets a statement binds or deletes (tuples unpacked)."""
    if isinstance(node, (ast.Assign, ast.Delete)):
        targets = node.targets
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)):
        targets = [node.target]
    elif isinstance(node, ast.With):
        targets = [i.optional_vars for i in node.items if i.optional_vars]
    else:
        return []
    return [t for target in targets for t in (target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target])]


def _target_finding(t, names: _Names) -> Optional[str]:
    name = dotted(t)
    root = name.split(".")[0].split("[")[0]
    if isinstance(t, ast.Attribute) and root in names.labkit:
        return f"assigns to {name}"
    if isinstance(t, ast.Attribute) and t.attr in CODE_ATTRIBUTES:
        return f"replaces a function's {t.attr} ({name})"
    if root in ("builtins", "__builtins__") or name.startswith("sys.modules"):
        return f"changes {name}"
    if isinstance(t, ast.Name) and t.id in names.helpers:
        return f"rebinds {t.id!r}, which the check cells use"
    if isinstance(t, ast.Name) and t.id in EXCEPTION_NAMES:
        return f"rebinds the exception class {t.id}"
    return None


def _definition_finding(node, names: _Names) -> Optional[str]:
    if node.name in names.helpers:
        return f"defines its own {node.name!r}, which the check cells use"
    if node.name in EXCEPTION_NAMES:
        return f"defines its own {node.name}"
    return None


def _import_findings(node, names: _Names) -> Iterator[str]:
    module = getattr(node, "module", None) or ""
    for a in node.names:
        bound = a.asname or a.name.split(".")[0]
        from_labkit = (module + "." + a.name).startswith("labkit") or a.name.startswith("labkit")
        if bound in names.helpers and not from_labkit:
            yield f"imports something else as {bound!r}, which the check cells use"
        if a.name == "builtins":
            yield "imports builtins"


def _call_findings(node: ast.Call, names: _Names) -> Iterator[str]:
    func = dotted(node.func)
    last = func.split(".")[-1]
    if last in ("setattr", "delattr") and node.args:
        target = dotted(node.args[0]).split(".")[0]
        if target in names.labkit or target in ("builtins", "__builtins__", "sys", "importlib"):
            yield f"calls {last} on {dotted(node.args[0])}"
    if any(part in ("patch", "monkeypatch") for part in func.split(".")) and ("mock" in func or "patch" in func):
        yield f"patches objects with {func}"
    if func.endswith("events.register"):
        yield "registers an IPython event callback"


def _node_findings(node, names: _Names) -> Iterator[str]:
    for target in _assigned(node):
        finding = _target_finding(target, names)
        if finding:
            yield finding
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        finding = _definition_finding(node, names)
        if finding:
            yield finding
    elif isinstance(node, (ast.Import, ast.ImportFrom)):
        yield from _import_findings(node, names)
    elif isinstance(node, ast.Call):
        yield from _call_findings(node, names)


def _syntax_findings(python: str, new_lines: Set[int], names: _Names) -> List[str]:
    try:
        tree = ast.parse(python)
    except SyntaxError:
        return []
    return [finding for node in ast.walk(tree) if getattr(node, "lineno", None) in new_lines
            for finding in _node_findings(node, names)]


def _word_findings(python: str, new_lines: Set[int]) -> List[str]:
    return [text for number, line in enumerate(python.splitlines(), 1) if number in new_lines
            for word, text in TAMPER_WORDS.items() if word in line]


def scan_code(assignment: Assignment, source: str) -> List[str]:
    """Ways in which ``source`` (one student cell) tampers with the check machinery."""
    names = _Names(labkit={a.alias for a in assignment.aliases if a.module.startswith("labkit")} | {"labkit"},
                   helpers=set(assignment.helper_names))
    python = python_source(source)
    new_lines = {i + 1 for i, line in enumerate(python.splitlines())
                 if line.strip() and line.strip() not in assignment.instructor_lines}
    found = _syntax_findings(python, new_lines, names) + _word_findings(python, new_lines)
    return list(dict.fromkeys(found))
