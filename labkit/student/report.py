"""``labkit report``: the written report of an executed notebook as one HTML page: headings, answers, figures,
tables and GIFs, no code.

    labkit report notebooks/01_gan_1d.ipynb --out report.html

What goes in: every heading; the answer cells (``metadata.labkit.answer``) and any markdown cell the
student added, in full; the handout's other text only with ``--instructions``; from code cells, their
outputs: figures (PNG, JPEG, SVG), GIFs (animated on screen; the printed page shows the last frame),
HTML and text tables, printed text, progress bars in their final state (from the saved widget state,
never the "0%" placeholder), errors in one line. Never code, never the check and setup cells' output,
never placeholders such as ``<IPython.core.display.Image object>``. The page needs no server or
package to open; printed from a browser it gives the PDF.
"""
from __future__ import annotations

import base64
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import nbformat

from ..course import released_notebook
from ..notebook_format import MD_ANSWER_PROMPT, labkit_meta
from .handin import lab_name

__all__ = ["Report", "render_report", "write_report"]

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_OBJECT_REPR = re.compile(r"^<[\w.]+(?: object at 0x[0-9a-f]+| object|[^<>]*\bsize \d+x\d+[^<>]*)>$", re.S)
_MATH = re.compile(r"\$\$.+?\$\$|\$[^$\n]+?\$", re.S)
_HEADING = re.compile(r"^#{1,6}\s+\S.*$", re.M)
_TEXT_TABLE = re.compile(r"^-{3,}(?: +-{3,})+ *$", re.M)  # the rule under a printed labkit.tables header
_WIDGET = "application/vnd.jupyter.widget-view+json"
_WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
_SKIP_TAGS = {"parameters", "labkit-setup"}

_CSS = """
body { font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: #222;
       max-width: 60rem; margin: 2rem auto; padding: 0 1.5rem; }
h1 { font-size: 1.7rem; border-bottom: 2px solid #333; padding-bottom: .2rem; }
h2 { font-size: 1.35rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
h3 { font-size: 1.1rem; }
.meta { color: #555; margin-bottom: 1.5rem; }
.answer { border-left: 4px solid #2a7ab0; background: #f4f8fb; padding: .3rem 1rem; margin: 1rem 0; }
.answer .label { font-weight: 600; color: #2a7ab0; font-size: .85rem; text-transform: uppercase; }
.unanswered { color: #a33; font-style: italic; }
figure { margin: 1rem 0; text-align: center; break-inside: avoid; page-break-inside: avoid; }
figure img, figure svg { max-width: 100%; height: auto; }
figcaption { color: #666; font-size: .8rem; }
pre { background: #f7f7f7; padding: .5rem .7rem; font-size: .8rem; line-height: 1.3; overflow-x: auto;
      white-space: pre-wrap; break-inside: avoid; }
table { border-collapse: collapse; margin: .8rem auto; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .2rem .5rem; }
th { background: #eee; }
.progress { font: .8rem monospace; color: #555; margin: .2rem 0; }
.progress progress { width: 12rem; vertical-align: middle; }
.error { color: #a33; font: .85rem monospace; }
.print-only { display: none; }
@media print {
  body { margin: 0; max-width: none; font-size: 11pt; }
  .screen-only { display: none; }
  .print-only { display: inline; }
  h1, h2, h3 { break-after: avoid; page-break-after: avoid; }
  pre { font-size: 7pt; overflow: visible; overflow-wrap: anywhere; }
  figure img { max-height: 9cm; width: auto; }
  .answer { break-inside: avoid; page-break-inside: avoid; }
}
@page { size: A4; margin: 1.6cm 1.4cm; }
"""
_MATHJAX = ('<script>window.MathJax = {tex: {inlineMath: [["$", "$"]]}};</script>\n'
            '<script async src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-svg.js"></script>')


@dataclass
class Report:
    """What went into the report: its HTML and counts (for the command's summary and the tests)."""

    html: str
    title: str
    figures: int = 0
    gifs: int = 0
    tables: int = 0
    answers: int = 0
    unanswered: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    path: Optional[Path] = None

    def summary(self) -> str:
        where = f"wrote {self.path}" if self.path else "report"
        return (f"{where}: {self.figures} figures, {self.gifs} GIFs, {self.tables} tables, {self.answers} answers"
                + (f" ({len(self.unanswered)} not answered)" if self.unanswered else "")
                + "; open it in a browser, print to PDF from there")


# --------------------------------------------------------------------------- markdown


def _markdown(text: str) -> str:
    """Markdown to HTML, leaving TeX math for MathJax (Markdown would read its ``_`` and ``*`` as emphasis)."""
    import markdown

    maths: List[str] = []

    def keep(match):
        maths.append(match.group(0))
        return f"\x00MATH{len(maths) - 1}\x00"

    body = markdown.markdown(_MATH.sub(keep, text), extensions=["tables", "fenced_code", "sane_lists"])
    return re.sub(r"\x00MATH(\d+)\x00", lambda m: html.escape(maths[int(m.group(1))]), body)


def _headings(text: str, title: str) -> str:
    return "\n\n".join(h for h in _HEADING.findall(text) if h.lstrip("#").strip() != title)


# --------------------------------------------------------------------------- outputs


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value or "")


def _final_text(text: str) -> str:
    """Printed text as it ended up on screen: ANSI colours dropped, each ``\\r`` overwrite resolved."""
    lines = []
    for line in _ANSI.sub("", text).split("\n"):
        lines.append(line.rstrip("\r").split("\r")[-1])
    return "\n".join(lines)


def _img(mime: str, data: str, alt: str) -> str:
    return f'<img src="data:{mime};base64,{"".join(data.split())}" alt="{alt}">'


def _last_frame_png(gif_b64: str) -> Optional[str]:
    """The GIF's last frame as base64 PNG (what the printed page shows), or None if it cannot be read."""
    try:
        from PIL import Image, ImageSequence

        frames = list(ImageSequence.Iterator(Image.open(io.BytesIO(base64.b64decode(gif_b64)))))
        buffer = io.BytesIO()
        frames[-1].convert("RGB").save(buffer, format="PNG")
        return base64.b64encode(buffer.getvalue()).decode("ascii")
    except Exception:  # a GIF Pillow cannot read still plays on screen
        return None


def _gif(data: str) -> str:
    last = _last_frame_png(data)
    screen = _img("image/gif", data, "animated GIF")
    if last is None:
        return f'<figure class="gif">{screen}<figcaption>animated GIF</figcaption></figure>'
    return (f'<figure class="gif"><span class="screen-only">{screen}</span>'
            f'<span class="print-only">{_img("image/png", last, "last frame of the GIF")}</span>'
            '<figcaption><span class="screen-only">animated GIF</span>'
            '<span class="print-only">last frame of an animated GIF</span></figcaption></figure>')


def _widget_children(state: Dict, model_id: str) -> List[Dict]:
    model = state.get(model_id, {}).get("state", {})
    return [state.get(c.replace("IPY_MODEL_", ""), {}) for c in model.get("children", [])]


def _progress(state: Dict, model_id: str) -> Optional[str]:
    """A tqdm bar (HBox of label, progress, counter) in its saved final state; None when the state was not saved."""
    children = _widget_children(state, model_id)
    bars = [c["state"] for c in children if c.get("model_name") in ("FloatProgressModel", "IntProgressModel")]
    if not bars:
        return None
    texts = [html.unescape(str(c["state"].get("value", ""))) for c in children if c.get("model_name") == "HTMLModel"]
    bar = bars[0]
    left, right = (texts + ["", ""])[:2]
    return (f'<div class="progress">{html.escape(left)} <progress value="{bar.get("value", 0)}" '
            f'max="{bar.get("max", 1)}"></progress> {html.escape(right)}</div>')


class _Outputs:
    """Renders one notebook's outputs, counting what it renders."""

    def __init__(self, nb, report: Report):
        self.report = report
        self.widgets = (nb.metadata.get("widgets", {}).get(_WIDGET_STATE, {}) or {}).get("state", {})

    def render(self, output) -> str:
        kind = output.get("output_type")
        if kind == "stream":
            text = _final_text(_text(output.get("text"))).strip("\n")
            return f"<pre>{html.escape(text)}</pre>" if output.get("name") == "stdout" and text.strip() else ""
        if kind == "error":
            error = f'{output.get("ename", "")}: {output.get("evalue", "")}'
            return f'<p class="error">{html.escape(error)}</p>'
        if kind in ("display_data", "execute_result"):
            return self._rich(output.get("data", {}))
        return ""

    def _rich(self, data: Dict) -> str:
        """The richest form, in Jupyter's order of preference (a GIF first: Jupyter's HTML export skips it)."""
        if "image/gif" in data:
            self.report.gifs += 1
            return _gif(_text(data["image/gif"]))
        if _WIDGET in data:
            return _progress(self.widgets, data[_WIDGET].get("model_id", "")) or ""
        if "text/html" in data:
            return f'<div class="html-output">{_text(data["text/html"])}</div>'
        if "text/markdown" in data:
            return _markdown(_text(data["text/markdown"]))
        if "image/svg+xml" in data:
            self.report.figures += 1
            return f"<figure>{_text(data['image/svg+xml'])}</figure>"
        if "text/latex" in data:
            return f"<p>{html.escape(_text(data['text/latex']))}</p>"
        for mime in ("image/png", "image/jpeg"):
            if mime in data:
                self.report.figures += 1
                return f'<figure>{_img(mime, _text(data[mime]), "figure")}</figure>'
        plain = _text(data.get("text/plain")).strip()
        if not plain or _OBJECT_REPR.match(plain):
            return ""  # <IPython.core.display.Image object>, <Figure size ...>: a placeholder, not a result
        return f"<pre>{html.escape(_final_text(plain))}</pre>"


# --------------------------------------------------------------------------- the page


def _answer(cell, report: Report) -> str:
    aid = labkit_meta(cell)["answer"]
    text = cell.source.replace("**Your answer:**", "").strip()
    if not text or MD_ANSWER_PROMPT in text:
        report.unanswered.append(aid)
        body = '<p class="unanswered">(not answered)</p>'
    else:
        report.answers += 1
        body = _markdown(text)
    return f'<section class="answer"><div class="label">Answer: {html.escape(aid)}</div>{body}</section>'


def _title(nb, name: str) -> str:
    for cell in nb.cells:
        match = re.search(r"^#\s+(.+)$", cell.source, re.M) if cell.cell_type == "markdown" else None
        if match:
            return match.group(1).strip()
    return name


def render_report(nb, name: str, release=None, instructions: bool = False, members: str = "") -> Report:
    """The report of ``nb`` (an executed notebook) as one HTML page.

    release: the notebook as handed out; its markdown cells are the handout, shown by their headings only
    (all of it with ``instructions=True``). Without it every markdown cell is shown.
    """
    title = _title(nb, name)
    report = Report(html="", title=title)
    handout = {c.source.strip() for c in release.cells if c.cell_type == "markdown"} if release is not None else set()
    outputs = _Outputs(nb, report)
    parts = []
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            if labkit_meta(cell).get("answer"):
                parts.append(_answer(cell, report))
            elif cell.source.strip() in handout and not instructions:
                parts.append(_markdown(_headings(cell.source, title)))
            else:
                parts.append(_markdown(re.sub(r"^\[!\[Open In Colab\].*$", "", cell.source, flags=re.M)))
        elif cell.cell_type == "code" and not labkit_meta(cell).get("check") \
                and not _SKIP_TAGS & set(cell.get("metadata", {}).get("tags", [])):
            parts += [rendered for o in cell.get("outputs", []) if (rendered := outputs.render(o))]
    report.tables = sum(p.count("<table") + len(_TEXT_TABLE.findall(p)) for p in parts)
    if not any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
        report.warnings.append("the notebook has no outputs: run all cells and save it, then make the report")
    meta = html.escape(name) + (f" &middot; {html.escape(members)}" if members else "")
    report.html = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
                   f"<title>{html.escape(title)}</title>\n"
                   f"<style>{_CSS}</style>\n{_MATHJAX}\n</head><body>\n<h1>{_markdown(title)[3:-4]}</h1>\n"
                   f'<p class="meta">{meta}</p>\n' + "\n".join(p for p in parts if p.strip()) + "\n</body></html>\n")
    return report


def _members(folder: Path) -> str:
    """The group from READ_ME.txt next to the notebook, once filled in."""
    readme = folder / "READ_ME.txt"
    if not readme.is_file():
        return ""
    match = re.search(r"^Members:(.*(?:\n[ \t]+\S.*)*)", readme.read_text(encoding="utf-8", errors="replace"), re.M)
    names = [line.strip() for line in (match.group(1).splitlines() if match else []) if line.strip()]
    return "; ".join(n for n in names if "<" not in n)


def write_report(notebook, out=None, instructions: bool = False, source: Optional[Path] = None) -> Report:
    """Write the report of ``notebook`` to ``out`` (default: ``<notebook name>_report.html`` next to it)."""
    notebook = Path(notebook)
    nb = nbformat.read(notebook, as_version=4)
    name = lab_name(nb, notebook)
    try:
        release = released_notebook(name, source)
    except FileNotFoundError:
        release = None  # not a course notebook: show all of its text
    report = render_report(nb, name, release=release, instructions=instructions, members=_members(notebook.parent))
    report.path = Path(out) if out else notebook.with_name(f"{notebook.stem}_report.html")
    report.path.parent.mkdir(parents=True, exist_ok=True)
    report.path.write_text(report.html, encoding="utf-8")
    return report
