"""Issue 25, item 2: hints teach without handing over the line.

A TODO's text says what to compute (shapes, the idea), its first hint the approach; the code itself appears at most in
a *last* hint, ``<details><summary>Last hint...</summary> ... </details>``, which a student opens on purpose. A check's
message names the mistake and the rule it breaks, not the corrected expression. These helpers find the answer's
lines in a solution notebook and what a student reads without opening a last hint, for the labs' tests.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterable, List

import nbformat

from labkit.notebook_format import BEGIN, END

LAST_HINT = re.compile(r"<details><summary>Last hint[^<]*</summary>.*?</details>", re.S)
# One call without arguments (opt_d.zero_grad(), loss_d.backward(), opt_g.step()): a message that names the call a
# step forgot names the mistake; it is not the answer to the TODO.
RITUAL = re.compile(r"^[\w.]+\(\)$")


def _code(line: str) -> str:
    """A line without its trailing comment (the solutions comment their lines; the comment is not the answer)."""
    return re.sub(r"\s+#.*$", "", line.strip()) if not line.strip().startswith("#") else ""


def answer_lines(solution: Path) -> List[str]:
    """The code lines inside the solution blocks of ``solution`` (comments and one-call rituals left out)."""
    nb = nbformat.read(solution, as_version=4)
    lines = []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        inside = False
        for line in cell.source.splitlines():
            if BEGIN.match(line):
                inside = True
            elif END.match(line):
                inside = False
            elif inside:
                code = _code(line)
                if len(code) >= 12 and not RITUAL.match(code):
                    lines.append(code)
    return lines


def text_before_the_last_hints(solution: Path) -> str:
    """What a student reads of ``solution``'s release without opening a last hint: the markdown without the last
    hints, the TODO prompts (the text after ``### BEGIN SOLUTION:``) and the code outside the solution blocks."""
    nb = nbformat.read(solution, as_version=4)
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            parts.append(LAST_HINT.sub("", cell.source))
            continue
        inside = False
        for line in cell.source.splitlines():
            start = BEGIN.match(line)
            if start:
                inside = True
                parts.append(start.group("hint") or "")
            elif END.match(line):
                inside = False
            elif not inside:
                parts.append(line)
    return "\n".join(parts)


def message_strings(module_path: Path) -> List[str]:
    """Every string literal of a checks module that is not a docstring (the messages a student can see), f-strings
    with ``{}`` where their values go."""
    tree = ast.parse(Path(module_path).read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    strings = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            strings.append("".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            strings.append(node.value)
    return strings


def leaks(texts: Iterable[str], answers: Iterable[str]) -> List[str]:
    """The answers (lines or expressions) that appear in any of ``texts``, whitespace-insensitively."""
    squeeze = lambda s: re.sub(r"\s+", "", s)
    joined = [squeeze(t) for t in texts]
    return sorted({a for a in answers if any(squeeze(a) in t for t in joined)})
