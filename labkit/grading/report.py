"""What ``labkit grade`` writes: grades.csv, one feedback page per submission (.md and .html), the summary.

Whatever a submission holds ends up in these files (its name, its answers, its output), so every
text is made inert first (:func:`inert_text`): it can always be encoded, and a terminal, a spreadsheet
or a browser shows it rather than acting on it. Control characters (ESC sequences that erase lines,
carriage returns that overwrite them, bidirectional overrides) become ``\\u001b``-style escapes, a
grades.csv cell that would start a formula (``=``, ``+``, ``-``, ``@``, tab, carriage return) gets a
leading apostrophe, and the Markdown feedback escapes HTML (the HTML page escapes everything).
"""
from __future__ import annotations

import csv
import html
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import List

from .assignment import Assignment
from .cells import safe_text
from .types import CheckState, Grade, Status

__all__ = ["csv_columns", "write_csv", "feedback_markdown", "feedback_html", "write_feedback", "summary", "safe_text",
           "inert_text", "csv_cell"]

MARKS = {CheckState.PASSED: "✔ passed", CheckState.FAILED: "✘ failed", CheckState.NOT_RUN: "– not run"}


# What a terminal, an editor or a spreadsheet acts on instead of showing: C0 controls but newline and tab, DEL,
# C1 controls (U+009B is a one-character "ESC ["), line separators and the bidirectional overrides that reorder a line.
_ACTIVE_CHARACTERS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
# A spreadsheet cell starting with one of these is read as a formula (or, tab and CR, moves to one).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert_text(text) -> str:
    """``text`` as :func:`safe_text` makes it, with every character a terminal or viewer would act on written as
    a ``\\uXXXX`` escape (ESC becomes ``\\u001b``); newlines and tabs are kept. Valid inside JSON strings too."""
    return _ACTIVE_CHARACTERS.sub(lambda m: f"\\u{ord(m.group()):04x}", safe_text(text))


def csv_cell(value) -> str:
    """A grades.csv cell that a spreadsheet shows as text: inert, with a leading apostrophe where it would
    start a formula (``=1+1 x.pt``, a folder named ``-2+3``), also after leading blanks."""
    text = str(value)
    cell = inert_text(text)
    return "'" + cell if text.lstrip(" ").startswith(FORMULA_STARTS) else cell


def _num(value: float) -> str:
    return f"{value:.6g}"


def csv_columns(assignment: Assignment) -> List[str]:
    return (["submission", "status", "auto_points", "auto_max", "manual_max"] + list(assignment.checks)
            + [f"manual:{aid}" for aid in assignment.answers] + ["flags", "reason", "notes", "seconds", "source"])


def write_csv(path: Path, assignment: Assignment, grades: List[Grade]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([csv_cell(c) for c in csv_columns(assignment)])
        for g in grades:
            row = ([g.submission, g.status.value, _num(g.auto_points), _num(g.auto_max), _num(g.manual_max)]
                   + [_num(g.checks[c].points) if c in g.checks else "0" for c in assignment.checks]
                   + ["" for _ in assignment.answers]
                   + [" | ".join(g.flags), g.reason, " | ".join(g.notes), f"{g.seconds:.1f}", g.source])
            writer.writerow([csv_cell(value) for value in row])


# --------------------------------------------------------------------------- feedback


def _sections(assignment: Assignment, g: Grade):
    """The feedback as data: (title, kind, content) triples shared by the .md and .html writers."""
    head = f"Automatic points: {_num(g.auto_points)} / {_num(g.auto_max)}. Status: {g.status.value}: {g.reason}."
    if g.manual_max:
        head += f" Your written answers (up to {_num(g.manual_max)} points) are graded by hand."
    sections = [("", "text", head)]
    rows = []
    for cid, check in g.checks.items():
        rows.append((cid, f"{_num(check.points)} / {_num(check.max)}", MARKS[check.state], check.message))
    sections.append(("Checks", "table", rows))
    refused = [f for f in g.flags if any(f.startswith(m.flag()) for m in g.references)]
    if refused:
        sections.append(("Models that are reference checkpoints", "flags", [
            "These model files are checkpoints the course ships or its reference solution's models, not models "
            "your group trained: the checks that grade them got no points. The instructor will look at it:"]
            + refused))
    tampering = [f for f in g.flags if f not in refused]
    if tampering:
        sections.append(("Flagged for the instructor", "flags", [
            "Your code changes how the checks work (the check cells were run with the course's own helpers "
            "anyway, so this gained nothing). The instructor will look at it:"] + tampering))
    if g.errors:
        sections.append(("Errors while running your notebook", "errors", g.errors))
    if assignment.answers:
        answers = []
        for aid, info in assignment.answers.items():
            text = g.answers.get(aid)
            if text is None:
                text = "(no answer cell found in the submission)" if g.status is not Status.INVALID else "(not read)"
            elif text == "":
                text = "(not answered)"
            answers.append((f"{aid} ({_num(info['points'])} points, graded by hand)", text))
        sections.append(("Your written answers", "answers", answers))
    if g.notes:
        sections.append(("Notes", "list", g.notes))
    sections.append(("How this was graded", "text",
                     "Your notebook ran from top to bottom in quick mode, in a copy of your submission, with time "
                     "and memory limits. The check cells are the course's own: edited or deleted check cells were "
                     "put back before the run. Quality checks use the model files you handed in (saveModel); a model "
                     "file that is a checkpoint the course ships or a reference model earns no points. "
                     "A check counts only if it ran and passed with every cell before it run."))
    return sections


def _md(text) -> str:
    """Text for Markdown: HTML escaped (a renderer would otherwise pass ``<script>`` or ``<img onerror>`` through)."""
    return html.escape(str(text), quote=False)


def _md_escape_cell(text: str) -> str:
    return _md(" ".join(str(text).split())).replace("|", "\\|")


def _longest_backtick_run(text: str) -> int:
    return max((len(run) for run in re.findall("`+", text)), default=0)


def _md_code(text: str) -> str:
    """``text`` as an inline code span that no backtick in it can close (code spans show HTML as it is)."""
    fence = "`" * (_longest_backtick_run(text) + 1)
    return f"{fence} {text} {fence}"


def _md_code_block(lines: List[str]) -> List[str]:
    """An indented code block, after a blank line: every Markdown reads it so, and no line in it can end it
    (a fence could be closed by a line of backticks, and renderers disagree on fences inside lists)."""
    return ["", *["    " + line for line in lines], ""]


def feedback_markdown(assignment: Assignment, g: Grade) -> str:
    out = [f"# Feedback: {_md(assignment.name)} — {_md(g.submission)}", ""]
    for title, kind, content in _sections(assignment, g):
        if title:
            out += [f"## {_md(title)}", ""]
        if kind == "text":
            out += [f"**{_md(content.split('. ', 1)[0])}.** {_md(content.split('. ', 1)[1])}" if not title
                    else _md(content), ""]
        elif kind == "table":
            out += ["| check | points | result | message |", "|---|---|---|---|"]
            out += [f"| {_md_escape_cell(a)} | {b} | {c} | {_md_escape_cell(d)} |" for a, b, c, d in content] + [""]
        elif kind in ("list", "flags"):
            intro, items = (content[0], content[1:]) if kind == "flags" else (None, content)
            if intro:
                out += [_md(intro), ""]
            out += [f"- {_md(item)}" for item in items] + [""]
        elif kind == "errors":
            for e in content:
                out += [f"**{_md(e.where)}**: {_md_code(' '.join(str(e.error).split())[:300])}", ""]
                if e.traceback:
                    out += _md_code_block(e.traceback.strip().splitlines()[-12:])
        elif kind == "answers":
            for label, text in content:
                out += [f"### {_md(label)}", ""] + ["> " + _md(line) for line in text.splitlines()] + [""]
    return "\n".join(out).rstrip() + "\n"


CSS = ("body{font-family:system-ui,sans-serif;max-width:60em;margin:2em auto;padding:0 1em;line-height:1.45}"
       "table{border-collapse:collapse;width:100%}td,th{border:1px solid #ccc;padding:.3em .5em;text-align:left;"
       "vertical-align:top}.passed{color:#176f2c}.failed{color:#b00020}.notrun{color:#777}"
       "blockquote{border-left:4px solid #ccc;margin:0;padding:.2em 1em;white-space:pre-wrap}"
       "pre{background:#f5f5f5;padding:.5em;overflow-x:auto}")


def feedback_html(assignment: Assignment, g: Grade) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'>",
           f"<title>Feedback: {e(assignment.name)} — {e(g.submission)}</title><style>{CSS}</style></head><body>",
           f"<h1>Feedback: {e(assignment.name)} — {e(g.submission)}</h1>"]
    for title, kind, content in _sections(assignment, g):
        if title:
            out.append(f"<h2>{e(title)}</h2>")
        if kind == "text":
            out.append(f"<p>{e(content)}</p>")
        elif kind == "table":
            out.append("<table><tr><th>check</th><th>points</th><th>result</th><th>message</th></tr>")
            for a, b, c, d in content:
                css = "passed" if c.startswith("✔") else "failed" if c.startswith("✘") else "notrun"
                out.append(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td class='{css}'>{e(c)}</td><td>{e(d)}</td></tr>")
            out.append("</table>")
        elif kind in ("list", "flags"):
            intro, items = (content[0], content[1:]) if kind == "flags" else (None, content)
            if intro:
                out.append(f"<p>{e(intro)}</p>")
            out.append("<ul>" + "".join(f"<li>{e(i)}</li>" for i in items) + "</ul>")
        elif kind == "errors":
            out.append("<ul>")
            for err in content:
                tb = err.traceback.strip()
                tb_html = f"<pre>{e(chr(10).join(tb.splitlines()[-12:]))}</pre>" if tb else ""
                out.append(f"<li><b>{e(err.where)}</b>: <code>{e(err.error[:300])}</code>{tb_html}</li>")
            out.append("</ul>")
        elif kind == "answers":
            for label, text in content:
                out.append(f"<h3>{e(label)}</h3><blockquote>{e(text)}</blockquote>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_feedback(folder: Path, assignment: Assignment, g: Grade) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{g.submission}.md").write_text(inert_text(feedback_markdown(assignment, g)), encoding="utf-8")
    (folder / f"{g.submission}.html").write_text(inert_text(feedback_html(assignment, g)), encoding="utf-8")


# --------------------------------------------------------------------------- summary


def summary(assignment: Assignment, grades: List[Grade], seconds: float, jobs: int) -> str:
    """The lines ``labkit grade`` prints at the end, inert (a submission's name or reason cannot drive the terminal)."""
    n = len(grades)
    lines = [f"graded {n} submission{'s' if n != 1 else ''} of {assignment.name} in {seconds:.1f} s "
             f"(--jobs {jobs}, {seconds / max(n, 1):.1f} s per submission)"]
    counts = Counter(g.status for g in grades)
    lines.append("status: " + ", ".join(f"{s.value} {counts[s]}" for s in Status))
    points = [g.auto_points for g in grades]
    if points:
        lines.append(f"automatic points (of {_num(assignment.auto_max)}): mean {statistics.mean(points):.3g}, "
                     f"median {statistics.median(points):.3g}, min {_num(min(points))}, max {_num(max(points))}"
                     + (f", manual points to add: up to {_num(assignment.manual_max)} each" if assignment.manual_max else ""))
        top = assignment.auto_max or 1.0
        bins = Counter(min(9, int(10 * p / top)) if top else 0 for p in points)
        width = max(bins.values())
        lines.append("distribution (share of the automatic points):")
        for b in range(10):
            low, high = b * 10, (b + 1) * 10
            label = f"{low:3d}–{high:<3d}%" if b < 9 else " 90–100%"
            bar = "#" * round(30 * bins[b] / width) if bins[b] else ""
            lines.append(f"  {label} | {bar} {bins[b] if bins[b] else ''}".rstrip())
    for g in grades:
        if g.flags:
            lines.append(f"flagged: {g.submission}: {g.flags[0]}" + (f" (+{len(g.flags) - 1} more)" if len(g.flags) > 1 else ""))
    for g in grades:
        if g.status is not Status.OK:
            lines.append(f"{g.status.value}: {g.submission}: {g.reason}")
    return inert_text("\n".join(lines))
