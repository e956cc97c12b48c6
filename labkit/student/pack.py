"""``labkit pack``: build the hand-in zip the grader takes: the notebook, its saved models, a filled-in READ_ME.txt.

    labkit pack notebooks/01_gan_1d.ipynb --member "Ada Lovelace, 123456" --out hand-in.zip

It refuses the notebook as released (nothing done yet), warns about graded model files that are
missing, questions not answered, TODOs still open and lines of READ_ME.txt still to fill in, and
says what went into the zip and its size. ``labkit grade`` takes the zip as it is.
"""
from __future__ import annotations

import datetime
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from ..paths import repo_root
from .handin import README_NAME, HandIn, read_hand_in

__all__ = ["PackError", "Packed", "fill_readme", "pack_submission"]

_PLACEHOLDER = re.compile(r"<[^<>\n]{2,}>")
_FILES_SECTION = re.compile(r"(Files in this folder\n-+\n)(?P<body>.*?)(?=\n\n|\Z)", re.S)
_MEMBERS = re.compile(r"^Members:[ \t]*<[^>\n]*>[ \t]*\n(?:[ \t]+<[^>\n]*>[ \t]*\n)*", re.M)


class PackError(ValueError):
    """The notebook cannot be handed in as it is (the untouched release, a folder that is not a notebook's)."""


@dataclass
class Packed:
    path: Path
    files: List[str]
    size: int
    warnings: List[str] = field(default_factory=list)

    def summary(self) -> str:
        return f"wrote {self.path} ({self.size / 1e6:.2f} MB): " + ", ".join(self.files)


def _file_rows(hand_in: HandIn) -> List[Tuple[str, str]]:
    rows = [(hand_in.notebook.name, "the lab notebook, run top to bottom, with our written answers")]
    for name in hand_in.files:
        checks = hand_in.graded_files.get(name)
        rows.append((name, "saved with labkit.saveModel" + (f"; graded by {', '.join(checks)}" if checks else "")))
    rows += [(name, "our own module, imported by the notebook") for name in hand_in.modules]
    rows.append((README_NAME, "this file"))
    return rows


def fill_readme(text: str, hand_in: HandIn, members: Sequence[str] = (), today: Optional[datetime.date] = None) -> str:
    """READ_ME.txt with the lab, the members, the date, the files and the model name filled in.

    Lines the student already filled in are kept; only placeholders are replaced.
    """
    today = today or datetime.date.today()
    text = re.sub(r"^Lab:([ \t]*)<[^>\n]*>", lambda m: f"Lab:{m.group(1)}{hand_in.name}", text, flags=re.M)
    text = re.sub(r"^Date:([ \t]*)<yyyy-mm-dd>", lambda m: f"Date:{m.group(1)}{today.isoformat()}", text, flags=re.M)
    if members:
        lines = [f"Members:    {members[0]}"] + [f"            {m}" for m in members[1:]]
        text = _MEMBERS.sub(lambda m: "\n".join(lines) + "\n", text, count=1)
    section = _FILES_SECTION.search(text)
    if section and "<notebook>" in section.group("body"):
        width = max(len(name) for name, _ in _file_rows(hand_in)) + 2
        body = "\n".join(f"{name:<{max(width, 24)}}{what}" for name, what in _file_rows(hand_in))
        text = text[:section.start("body")] + body + text[section.end("body"):]
    text = text.replace("<notebook>.ipynb", hand_in.notebook.name)
    graded = [f for f in hand_in.graded_files if f.endswith((".pt", ".pth"))]
    if graded:
        text = text.replace("<model>.pt", graded[0])
    return text


def _readme_base(hand_in: HandIn) -> Tuple[str, str]:
    """The student's READ_ME.txt next to the notebook, else the course's template; and where it came from."""
    for path in (hand_in.folder / README_NAME, repo_root() / README_NAME):
        if path.is_file():
            return path.read_text(encoding="utf-8"), str(path)
    raise FileNotFoundError(f"No {README_NAME} next to {hand_in.notebook.name} nor in {repo_root()} (the template).")


def _warnings(hand_in: HandIn, readme: str) -> List[str]:
    warnings = []
    for name in hand_in.missing:
        warnings.append(f"{name} is not next to the notebook: {', '.join(hand_in.graded_files[name])} will get no "
                        "points (a full run saves it; quick mode does not)")
    if hand_in.unanswered:
        warnings.append("questions not answered: " + ", ".join(hand_in.unanswered))
    for todo in hand_in.todos:
        warnings.append(f"cell {todo.cell} (`{todo.first_line}`) still raises NotImplementedError: {todo.hint}")
    if not hand_in.executed:
        warnings.append("the notebook has no outputs: run all cells and save it, so the report and your reader "
                        "see your results")
    open_lines = [line.strip() for line in readme.splitlines() if _PLACEHOLDER.search(line)]
    if open_lines:
        warnings.append(f"{README_NAME} still to fill in (edit the one next to the notebook): "
                        + " | ".join(line[:70] for line in open_lines))
    return warnings


def pack_submission(notebook, out=None, members: Sequence[str] = (), source: Optional[Path] = None) -> Packed:
    """Write the hand-in zip of ``notebook`` to ``out`` (default: ``<notebook name>.zip`` in this folder)."""
    hand_in = read_hand_in(notebook, source)
    if hand_in.untouched:
        raise PackError(f"{hand_in.notebook} is the notebook as released: nothing to hand in yet (fill in the TODOs, "
                        "answer the questions, run it and save it).")
    text, _ = _readme_base(hand_in)
    readme = fill_readme(text, hand_in, members)
    out = Path(out) if out else Path(f"{hand_in.notebook.stem}.zip")
    if out.suffix.lower() != ".zip":
        raise PackError(f"--out must name a .zip file, got {out}.")
    out.parent.mkdir(parents=True, exist_ok=True)
    top = out.stem
    files = hand_in.payload
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in files:
            archive.write(hand_in.folder / name, f"{top}/{name}")
        archive.writestr(f"{top}/{README_NAME}", readme)
    return Packed(out, files + [README_NAME], out.stat().st_size, _warnings(hand_in, readme))
