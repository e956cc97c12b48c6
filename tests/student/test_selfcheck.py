"""The notebooks' last cell (``self_check``): one line and nothing else when headless (grader, ``labkit run``,
pytest), and otherwise it finds the notebook's saved file and prints what ``labkit check`` prints."""
from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest

from labkit.student import check as check_module
from labkit.student.selfcheck import Headless, find_own_notebook, headless, self_check

REPO = Path(__file__).resolve().parents[2]
HEADLESS_VARIABLES = ("LABKIT_GRADING", "LABKIT_HEADLESS", "PYTEST_CURRENT_TEST", "JPY_SESSION_NAME")


def _as_in_jupyter(monkeypatch):
    """None of the headless markers, as in a notebook someone is looking at (called in the test's body: pytest
    sets PYTEST_CURRENT_TEST again before it)."""
    for name in HEADLESS_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def no_grading(monkeypatch):
    """Fail the test if the self-check starts the grader."""
    def refuse(*args, **kwargs):
        raise AssertionError("the self-check ran the grader")

    monkeypatch.setattr(check_module, "check_notebook", refuse)


@pytest.mark.parametrize("variable, value, why", [
    ("LABKIT_GRADING", "1", Headless.GRADER),
    ("LABKIT_HEADLESS", "labkit run", Headless.LABKIT_RUN),
    ("LABKIT_HEADLESS", "pytest", Headless.PYTEST),
    ("PYTEST_CURRENT_TEST", "tests/x.ipynb::Cell 3 (call)", Headless.PYTEST),
])
def test_headless_prints_one_line_and_does_not_grade(monkeypatch, no_grading, capsys, variable, value, why):
    _as_in_jupyter(monkeypatch)
    monkeypatch.setenv(variable, value)
    assert headless() is why
    assert self_check("01_gan_1d") is None
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("Self-check skipped: this notebook runs " + why.value)


def test_the_solutions_run_it_skipped_under_pytest():
    """conftest.py marks the test run, so nbval's kernels (and those of `labkit run`) skip the last cell."""
    assert headless() is Headless.PYTEST


def _notebook(path: Path, lab: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f'import labkit\nlab = labkit.setup("{lab}", seed=SEED, quick=QUICK)')]
    nbformat.write(nb, path)
    return path


def test_finds_the_notebook_by_name_then_by_its_setup_call(monkeypatch, tmp_path):
    _as_in_jupyter(monkeypatch)
    renamed = _notebook(tmp_path / "01_gan_1d (copy).ipynb", "01_gan_1d")
    _notebook(tmp_path / "03_dcgan_mnist.ipynb", "03_dcgan_mnist")
    assert find_own_notebook("01_gan_1d", tmp_path) == renamed
    exact = _notebook(tmp_path / "01_gan_1d.ipynb", "01_gan_1d")
    assert find_own_notebook("01_gan_1d", tmp_path) == exact
    monkeypatch.chdir(tmp_path)
    assert find_own_notebook("03_dcgan_mnist") == tmp_path / "03_dcgan_mnist.ipynb"


def test_the_front_end_path_comes_first(monkeypatch, tmp_path):
    _as_in_jupyter(monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    mine = _notebook(elsewhere / "lab one.ipynb", "01_gan_1d")
    _notebook(tmp_path / "01_gan_1d.ipynb", "01_gan_1d")
    monkeypatch.setenv("JPY_SESSION_NAME", str(mine))
    assert find_own_notebook("01_gan_1d", tmp_path) == mine


def test_several_copies_or_none_say_what_to_do(monkeypatch, tmp_path):
    _as_in_jupyter(monkeypatch)
    _notebook(tmp_path / "a.ipynb", "01_gan_1d")
    _notebook(tmp_path / "b.ipynb", "01_gan_1d")
    with pytest.raises(FileNotFoundError, match=r"several notebooks of 01_gan_1d .*a\.ipynb, b\.ipynb"):
        find_own_notebook("01_gan_1d", tmp_path)
    with pytest.raises(FileNotFoundError, match="no notebook of 03_dcgan_mnist in .*labkit check"):
        find_own_notebook("03_dcgan_mnist", tmp_path)
    monkeypatch.setitem(sys.modules, "google.colab", object())
    with pytest.raises(FileNotFoundError, match="In Colab the notebook is not a file beside the kernel"):
        find_own_notebook("03_dcgan_mnist", tmp_path)


def test_not_found_is_a_message_not_a_traceback(monkeypatch, no_grading, tmp_path, capsys):
    _as_in_jupyter(monkeypatch)
    monkeypatch.chdir(tmp_path)
    assert self_check("01_gan_1d") is None
    assert capsys.readouterr().out.startswith("Self-check: no notebook of 01_gan_1d in ")


def test_watched_it_prints_the_table_of_labkit_check(monkeypatch, tmp_path, capsys):
    _as_in_jupyter(monkeypatch)
    notebook = _notebook(tmp_path / "01_gan_1d.ipynb", "01_gan_1d")
    seen = []

    class Result:
        def text(self):
            return "01_gan_1d: 0.2 / 0.2 automatic points (status ok: ran to the end)"

    monkeypatch.setattr(check_module, "check_notebook", lambda path: seen.append(path) or Result())
    monkeypatch.chdir(tmp_path)
    assert isinstance(self_check("01_gan_1d"), Result) and seen == [notebook]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"Checking {notebook} as last saved (") and "save the notebook first" in out[0]
    assert out[-1] == "01_gan_1d: 0.2 / 0.2 automatic points (status ok: ran to the end)"


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "notebooks" / "solutions").glob("*.ipynb")))
def test_every_graded_notebook_ends_with_the_self_check(name):
    for path in (REPO / "notebooks" / "solutions" / f"{name}.ipynb", REPO / "notebooks" / f"{name}.ipynb"):
        last = nbformat.read(path, as_version=4).cells[-1]
        assert last.cell_type == "code" and f'self_check("{name}")' in last.source, path
        assert not any(t.startswith("nbval-") for t in last.metadata.get("tags", []))   # no-op under --nbval-lax
