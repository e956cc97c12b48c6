"""Issue 25, item 2: hints teach without handing over the line.

A TODO's text says what to compute (shapes, the idea), its first hint the approach; the code itself appears at most in
a *last* hint, ``<details><summary>Last hint...</summary> ... </details>``, which a student opens on purpose. A check's
message names the mistake and the rule it breaks, not the corrected expression. These helpers find the answer's
lines in a solution notebook and what a student reads without opening a last hint, for the labs' tests; labs 03 and 04
call :func:`require_the_todos_code_only_in_their_last_hints` and :func:`require_no_message_dictates_an_answer` (the
answer expressions of :mod:`tests.checks.answers`), labs 01 and 02 hold the same texts to their answer lines and
expressions listed by hand.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Iterable, List

import nbformat

from labkit.notebook_format import BEGIN, END, solution_lines
from tests.checks import answers as answer_finder

LAST_HINT = re.compile(r"<details><summary>Last hint[^<]*</summary>.*?</details>", re.S)
# One call without arguments (opt_d.zero_grad(), loss_d.backward(), opt_g.step()): a message that names the call a
# step forgot names the mistake; it is not the answer to the TODO.
RITUAL = re.compile(r"^[\w.]+\(\)$")


def _code(line: str) -> str:
    """A line without its trailing comment (the solutions comment their lines; the comment is not the answer)."""
    return re.sub(r"\s+#.*$", "", line.strip()) if not line.strip().startswith("#") else ""


def answer_lines(solution: Path) -> List[str]:
    """The code lines inside the solution blocks of ``solution`` (comments and one-call rituals left out): labkit's
    :func:`~labkit.notebook_format.solution_lines` of the code cells (the markdown model answers are prose, not a
    TODO's code), without their trailing comments."""
    nb = nbformat.read(solution, as_version=4)
    code_cells = SimpleNamespace(cells=[c for c in nb.cells if c.cell_type == "code"])
    return [code for code in map(_code, solution_lines(code_cells)) if len(code) >= 12 and not RITUAL.match(code)]


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


def require_a_hint_before_the_last(texts: Iterable[str], last: str = "<summary>Last hint: the code") -> None:
    """Each of ``texts`` (a TODO's markdown) gives a first hint with the approach before its last hint with the code."""
    for text in texts:
        assert "<summary>Hint</summary>" in text and last in text, f"a TODO without its two hints: {text[:60]!r}"
        assert text.index("<summary>Hint</summary>") < text.index(last), f"the last hint comes first: {text[:60]!r}"


# Labs 03 and 04 hold their TODO texts and check messages to the answer expressions tests/checks/answers.py derives
# from the solution (labs 01 and 02 to their answer lines and a list written by hand, in their own tests).


def require_the_todos_code_only_in_their_last_hints(solution: Path, min_expressions: int = 40,
                                                    min_last_hints: int = 6) -> None:
    """No answer expression of ``solution`` in what a student reads before opening a last hint, and every cell with a
    last hint gives a first hint before it."""
    assert len(answer_finder.answer_expressions(solution)) >= min_expressions, "too few answer expressions found"
    leaked = answer_finder.leaked([text_before_the_last_hints(solution)], solution)
    assert leaked == [], f"the TODO texts spell answers outside the last hints: {leaked}"
    cells = [c.source for c in nbformat.read(solution, as_version=4).cells if "<summary>Last hint" in c.source]
    assert len(cells) >= min_last_hints, f"only {len(cells)} cells with a last hint"
    require_a_hint_before_the_last(cells, "<summary>Last hint: the code</summary>")


def require_no_message_dictates_an_answer(checks_module: Path, solution: Path, min_messages: int = 100) -> None:
    """No message string of the checks module at ``checks_module`` contains an answer expression of ``solution``."""
    messages = message_strings(checks_module)
    assert len(messages) > min_messages, f"only {len(messages)} message strings in {checks_module}"
    leaked = answer_finder.leaked(messages, solution)
    assert leaked == [], f"check messages dictate answers: {leaked}"


def require_no_answer_before_the_last_hints(solution: Path, checks_module: Path) -> None:
    """Both rules for labs 03 and 04: the TODOs' code only in their last hints, and no check message dictating it."""
    require_the_todos_code_only_in_their_last_hints(solution)
    require_no_message_dictates_an_answer(checks_module, solution)
