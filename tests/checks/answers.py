"""Check messages name the mistake and the rule it breaks, never the line that fixes it (issue 25, item 2): the answer
expressions of a solution notebook, found without a list written by hand.

:func:`answer_expressions` lists the expressions of a solution notebook's answer lines (the code between its
``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers, an assignment's right-hand side, a ``return``'s value and every
call with arguments inside them, with and without its keyword arguments, included); :func:`require_no_answer` fails
when a check's message contains one. A call without arguments (``opt_d.zero_grad()``, ``nn.Flatten()``) is the name
of an operation, a call with a function's own parameters (``get_interpolates(real, fake)``) names that function, and
names alone (``opt_g, opt_d``) or an opening line (``self.net = nn.Sequential(``) are no answer: a message may use
them. With :mod:`tests.labs.hint_rules` (what a student reads before a last hint, a checks module's message strings)
the labs' tests also hold the TODO texts and every message string to the same list.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Tuple

import nbformat

from labkit.notebook_format import solution_lines

MIN_LENGTH = 12
# the name of an operation (a call without arguments, or a block of one) or names alone: no answer in themselves
_NAMED_OPERATION = re.compile(r"^(with )?[\w.]+\(\):?$|^[\w\s,.=]+$")
_ASSIGNMENT = re.compile(r"^[\w\s,.\[\]]+?(?<![=!<>])=(?!=)\s*(?P<value>.+)$")
_CALL = re.compile(r"(?<![\w.])[A-Za-z_][\w.]*\(")


def _top_level_split(arguments: str):
    """``arguments`` split at the commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(arguments):
        depth += (char in "([{") - (char in ")]}")
        if char == "," and depth == 0:
            parts.append(arguments[start:i].strip())
            start = i + 1
    return parts + [arguments[start:].strip()]


def _calls(code: str):
    """Every call in ``code`` with its arguments, ``F.one_hot(labels, N_CLASSES)`` in ``torch.cat([z, ...], 1)``, and
    each also without its keyword arguments (``torch.rand(len(real), 1, 1, 1)`` for the same with ``device=``)."""
    for match in _CALL.finditer(code):
        depth = 0
        for end in range(match.end() - 1, len(code)):
            depth += {"(": 1, ")": -1}.get(code[end], 0)
            if depth == 0:
                yield code[match.start():end + 1]
                arguments = _top_level_split(code[match.end():end])
                positional = [a for a in arguments if not re.match(r"^\w+=(?!=)", a)]
                if positional and len(positional) < len(arguments):
                    yield f"{code[match.start():match.end()]}{', '.join(positional)})"
                break


@lru_cache(maxsize=None)
def answer_expressions(solution: Path) -> Tuple[str, ...]:
    """The expressions a check message must not dictate, from the solution notebook at ``solution``."""
    nb = nbformat.read(solution, as_version=4)
    found = set()
    for line in solution_lines(SimpleNamespace(cells=[c for c in nb.cells if c.cell_type == "code"])):
        code = line.split("  #")[0].split(" # ")[0].strip().rstrip(",").strip()
        forms = {code, code.removeprefix("return ").strip()}
        match = _ASSIGNMENT.match(code)
        if match:
            forms.add(match.group("value").strip())
        forms |= set(_calls(code))
        found |= {f for f in forms if len(f) >= MIN_LENGTH and not _NAMED_OPERATION.match(f)
                  and f.count("(") == f.count(")")}
    return tuple(sorted(found - _signatures(nb)))


def _signatures(nb) -> set:
    """``f(a, b)`` for every ``def f(a, b=...)`` of the notebook: a message names a function by its signature."""
    calls = set()
    for cell in nb.cells:
        if cell.cell_type == "code":
            for name, params in re.findall(r"^\s*def (\w+)\((.*?)\)", cell.source, re.M):
                names = [p.split("=")[0].strip() for p in params.split(",") if p.strip()]
                calls.add(f"{name}({', '.join(names)})")
    return calls


def _squeeze(text: str) -> str:
    return re.sub(r"\s+", "", text)


def require_no_answer(message: str, solution: Path) -> None:
    """Fail when ``message`` (a CheckFailed's text) contains an answer expression of ``solution``."""
    found = leaked([message], solution)
    assert not found, f"the message dictates the answer {found}: {message}"


def leaked(texts, solution: Path):
    """The answer expressions of ``solution`` found in any of ``texts`` (whitespace aside)."""
    squeezed = [_squeeze(text) for text in texts]
    return sorted({e for e in answer_expressions(solution) if any(_squeeze(e) in text for text in squeezed)})

