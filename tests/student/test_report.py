"""``labkit report``: one HTML page with the headings, the answers, every figure, table and GIF (as <img>), progress
bars in their final state, and no code; rendered headless when chromium is installed."""
from __future__ import annotations

import base64
import copy
import io
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from labkit import cli
from labkit.notebook_format import MD_ANSWER_PROMPT
from labkit.student.report import render_report, write_report

REPO = Path(__file__).resolve().parents[2]
WIDGET = "application/vnd.jupyter.widget-view+json"


def _png(color) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _gif() -> str:
    from PIL import Image

    frames = [Image.new("RGB", (40, 30), c) for c in ("red", "green", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return base64.b64encode(buffer.getvalue()).decode()


def _tqdm_state(model_id: str, value: float, total: float):
    """The widget state Jupyter saves for one tqdm bar (HBox: label, progress, counter)."""
    def model(name, **state):
        return {"model_name": name, "model_module": "@jupyter-widgets/controls", "state": state}

    return {
        model_id: model("HBoxModel", children=[f"IPY_MODEL_{model_id}a", f"IPY_MODEL_{model_id}b",
                                               f"IPY_MODEL_{model_id}c"]),
        f"{model_id}a": model("HTMLModel", value="training:\u2007100%"),
        f"{model_id}b": model("FloatProgressModel", value=value, max=total, min=0.0),
        f"{model_id}c": model("HTMLModel", value=f"\u2007{int(value)}/{int(total)} [00:03&lt;00:00]"),
    }


def _code(source, *outputs, **meta):
    cell = new_code_cell(source, metadata=meta)
    cell.outputs = list(outputs)
    return cell


def _display(**data):
    return new_output("display_data", data=data)


PNG_A, PNG_B, GIF = _png("orange"), _png("purple"), _gif()


def _notebooks():
    """(release, executed student notebook)."""
    header = new_markdown_cell("[![Open In Colab](https://colab.research.google.com/x.svg)](https://x)\n"
                               "# Lab 9 — Toy report\n\nLong handout introduction nobody reprints.",
                               metadata={"tags": ["labkit-header"]})
    handout = new_markdown_cell("## Train it\n\nThe handout explains the training at length.")
    question = new_markdown_cell("### Question 1\n\nWhy?")
    answer = new_markdown_cell(f"**Your answer:**\n\n{MD_ANSWER_PROMPT}", metadata={"labkit": {"answer": "why"}})
    answer2 = new_markdown_cell(f"**Your answer:**\n\n{MD_ANSWER_PROMPT}", metadata={"labkit": {"answer": "how"}})
    setup = _code("import labkit\nlab = labkit.setup('09_toy')",
                  new_output("stream", name="stdout", text="labkit 0.2 | 09_toy"), tags=["labkit-setup"])
    train = _code(
        "history = train_the_model_for_real(epochs=3)\nplot_the_losses(history)",
        new_output("stream", name="stderr", text="UserWarning: something noisy\n"),
        _display(**{WIDGET: {"model_id": "bar1", "version_major": 2, "version_minor": 0},
                    "text/plain": "training:   0%|          | 0/3 [00:00<?, ?it/s]"}),
        _display(**{WIDGET: {"model_id": "lost", "version_major": 2, "version_minor": 0},
                    "text/plain": "other:   0%|          | 0/9 [00:00<?, ?it/s]"}),
        new_output("stream", name="stdout", text="epoch 1:  0%\repoch 1: 50%\repoch 1: 100%\nfinal KS 0.0123\n"),
        _display(**{"image/png": PNG_A, "text/plain": "<Figure size 640x480 with 1 Axes>"}),
        new_output("stream", name="stdout", text="trial  KS\n-----  ------\ntuned  0.0123\n"))
    gif = _code("show_gif_of_the_training_run(lab.path('tuned.gif'))",
                _display(**{"image/gif": GIF, "text/plain": "<IPython.core.display.Image object>"}),
                _display(**{"text/plain": "<IPython.core.display.Image object>"}))
    table = _code("summary_dataframe_of_every_trial",
                  new_output("execute_result", data={"text/html": "<table><tr><td>tuned</td></tr></table>",
                                                     "image/png": PNG_B}, execution_count=3))
    check = _code("checks.check_the_training_history(history)",
                  new_output("stream", name="stdout", text="✔ history ok"), labkit={"check": "history", "points": 1})
    broken = _code("this_cell_failed_loudly()", new_output("error", ename="NameError", evalue="name 'x' is not defined",
                                                          traceback=["Traceback ..."]))
    release = new_notebook(cells=[header, setup, handout, train, gif, table, check, question, answer, answer2, broken])
    student = copy.deepcopy(release)
    student.cells[8] = new_markdown_cell("**Your answer:**\n\nBecause the *loss* is $\\log D(x)_i$ and x_1 * y_2.",
                                         metadata={"labkit": {"answer": "why"}})
    student.cells.insert(10, new_markdown_cell("My own remark on the **results**."))
    student.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
        "state": _tqdm_state("bar1", 3.0, 3.0), "version_major": 2, "version_minor": 0}}
    for cell in release.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    return release, student


def test_report_holds_headings_answers_every_figure_and_gif_and_no_code():
    release, student = _notebooks()
    report = render_report(student, "09_toy", release=release)
    page = report.html
    assert "<h1>Lab 9 — Toy report</h1>" in page and page.count("Lab 9 — Toy report") == 2  # <title> and <h1>
    assert "<h2>Train it</h2>" in page and "<h3>Question 1</h3>" in page
    assert "at length" not in page and "nobody reprints" not in page and "colab" not in page.lower()
    # no code: no line of any code cell, nor the check's or setup's output
    for cell in student.cells:
        if cell.cell_type == "code":
            assert not [line for line in cell.source.splitlines() if line.strip() and line in page], cell.source[:80]
    assert "✔ history ok" not in page and "labkit 0.2" not in page and "UserWarning" not in page
    # every figure and the GIF as an <img>, with its data; the GIF's last frame for print
    for data, mime in ((PNG_A, "image/png"), (GIF, "image/gif")):
        assert f'<img src="data:{mime};base64,{data}"' in page
    assert page.count("<img") == 3 and (report.figures, report.gifs) == (1, 1)  # the GIF twice: screen, print
    assert "IPython.core.display.Image" not in page and "Figure size" not in page
    # the HTML table rather than its PNG twin; the printed table too
    assert "<td>tuned</td>" in page and PNG_B not in page and report.tables == 2
    # progress: the final state from the saved widget state; a bar without saved state is left out
    assert '<progress value="3.0" max="3.0"></progress>' in page and "3/3" in page
    body = page.split("<body>", 1)[1]
    assert not re.search(r"(?<![\d.])0%", body) and "other:" not in body
    assert "epoch 1: 100%" in page and "final KS 0.0123" in page
    # answers, rendered, with TeX left for MathJax; the unanswered one said so; the student's own cell kept
    assert "<em>loss</em>" in page and "$\\log D(x)_i$" in page and "x_1 * y_2" in page
    assert report.answers == 1 and report.unanswered == ["how"] and "(not answered)" in page
    assert "My own remark on the <strong>results</strong>." in page
    assert "NameError: name &#x27;x&#x27; is not defined" in page
    assert "@media print" in page


def test_instructions_flag_keeps_the_handout_text():
    release, student = _notebooks()
    page = render_report(student, "09_toy", release=release, instructions=True).html
    assert "The handout explains the training at length." in page


def test_report_command_writes_next_to_the_notebook_and_names_members(tmp_path, capsys):
    _, student = _notebooks()
    nbformat.write(student, tmp_path / "lab.ipynb")
    members = "Members:    Ada Lovelace, 1\n            <name, student id>\n"
    (tmp_path / "READ_ME.txt").write_text(f"Lab: x\n{members}Date: x\n")
    assert cli.main(["report", str(tmp_path / "lab.ipynb")]) == 0
    out = capsys.readouterr().out
    assert "1 figures, 1 GIFs, 2 tables, 1 answers (1 not answered)" in out
    page = (tmp_path / "lab_report.html").read_text()
    assert "Ada Lovelace, 1" in page and "&lt;name" not in page
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), tmp_path / "empty.ipynb")
    assert "no outputs" in "\n".join(write_report(tmp_path / "empty.ipynb", out=tmp_path / "e.html").warnings)


@pytest.fixture(scope="module")
def executed_report(tmp_path_factory):
    """Lab 01's reference solution executed in quick mode, and its report: (folder, notebook, page)."""
    from labkit.instructor.notebook import execute

    tmp_path = tmp_path_factory.mktemp("executed")
    result = execute(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb", tmp_path / "01_gan_1d.ipynb",
                     output_dir=tmp_path / "output", workdir=tmp_path / "work")
    assert result.status == "ok", result.summary()
    report = write_report(tmp_path / "01_gan_1d.ipynb", out=tmp_path / "report.html")
    return tmp_path, nbformat.read(tmp_path / "01_gan_1d.ipynb", as_version=4), report.html


@pytest.mark.slow
def test_report_of_the_executed_reference_holds_every_figure_and_gif(executed_report):
    """The reference solution of lab 01, executed in quick mode: every image it shows is in the report, no code
    is."""
    _, nb, page = executed_report
    images = [(m, "".join(o.data[m].split())) for c in nb.cells if c.cell_type == "code"
              and not c.metadata.get("labkit", {}).get("check") for o in c.outputs
              for m in ("image/gif", "image/png") if m in o.get("data", {})]
    assert any(m == "image/gif" for m, _ in images) and any(m == "image/png" for m, _ in images)
    assert all(f"data:{m};base64,{d}" in page for m, d in images)
    assert "IPython.core.display.Image" not in page and not re.search(r"\b0%\|", page)
    code = {l.strip() for c in nb.cells if c.cell_type == "code" for l in c.source.splitlines() if len(l.strip()) > 25}
    assert not [line for line in code if line in page]


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium(executed_report):
    """The page of the test above, rendered by headless Chromium to a PNG that is not blank."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        pytest.skip("chromium is not installed (apt-get install chromium): the report was not rendered")
    tmp_path = executed_report[0]
    shot = tmp_path / "report.png"
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1200,3000", (tmp_path / "report.html").as_uri()],
                   capture_output=True, timeout=120, check=False)
    from PIL import Image

    pixels = Image.open(shot).convert("L")
    assert pixels.size == (1200, 3000) and pixels.getextrema()[0] < 100  # ink on the page, not a blank render
