import json
import re
from pathlib import Path

import nbformat
import pytest

from labkit.instructor import release

REPO = Path(__file__).resolve().parent.parent


def test_committed_student_notebooks_are_a_fresh_release():
    assert release.release_all(REPO, check=True) == [], "run `labkit release` and commit the result"


@pytest.mark.parametrize("solution", sorted((REPO / "notebooks" / "solutions").glob("*.ipynb")), ids=lambda p: p.stem)
def test_student_notebook_contains_no_solution_text(solution):
    student_path = REPO / "notebooks" / solution.name
    student_text = student_path.read_text()
    sol = nbformat.read(solution, as_version=4)
    secret = release.solution_lines(sol)
    assert secret, "a solution notebook with no solution blocks?"
    # Lines the instructions themselves show (e.g. `opt_d.step()` in a hint) are not secrets.
    public = "\n".join(re.sub(r"### BEGIN SOLUTION([^\n]*)\n.*?### END SOLUTION|<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->",
                              r"\1", c.source, flags=re.S) for c in sol.cells)
    leaked = [line for line in secret if line in student_text and line not in public]
    assert not leaked
    assert "BEGIN SOLUTION" not in student_text and "END SOLUTION" not in student_text
    student = nbformat.read(student_path, as_version=4)
    assert all(not c.get("outputs") for c in student.cells if c.cell_type == "code")


@pytest.mark.parametrize("solution", sorted((REPO / "notebooks" / "solutions").glob("*.ipynb")), ids=lambda p: p.stem)
def test_check_cells_keep_their_ids_and_points_in_the_release(solution):
    sol = nbformat.read(solution, as_version=4)
    stu = nbformat.read(REPO / "notebooks" / solution.name, as_version=4)
    sol_checks, stu_checks = release.checks_in(sol), release.checks_in(stu)
    assert sol_checks and sol_checks.keys() == stu_checks.keys()
    for cid in sol_checks:
        assert sol_checks[cid]["source"] == stu_checks[cid]["source"]
        assert sol_checks[cid]["points"] == stu_checks[cid]["points"] > 0
    assert release.answers_in(sol).keys() == release.answers_in(stu).keys()


def test_strip_solutions_keeps_indentation_and_hint():
    source = "def f(x):\n    ### BEGIN SOLUTION: square x\n    return x * x\n    ### END SOLUTION\n"
    out = release.strip_solutions(source)
    assert out == 'def f(x):\n    # TODO: square x\n    raise NotImplementedError("square x")'
    compile(out, "f", "exec")


def test_hint_with_quotes_stays_valid_python():
    out = release.strip_solutions('### BEGIN SOLUTION: return {"a": 1} and a \\ backslash\nx = 1\n### END SOLUTION')
    namespace = {}
    with pytest.raises(NotImplementedError, match='return {"a": 1}'):
        exec(out, namespace)


@pytest.mark.parametrize("source, message", [
    ("### BEGIN SOLUTION\nx = 1\n", "without END"),
    ("x = 1\n### END SOLUTION\n", "without BEGIN"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION\n", "inside another"),
])
def test_unbalanced_markers_are_reported(source, message):
    with pytest.raises(release.ReleaseError, match=message):
        release.strip_solutions(source, where="nb cell 3")


def test_markdown_model_answers_are_replaced():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(
        "Answer:\n<!-- BEGIN SOLUTION -->\nThe secret model answer.\n<!-- END SOLUTION -->")])
    out = release.release_notebook(nb, "x")
    assert "secret" not in out.cells[0].source and release.MD_ANSWER_PROMPT in out.cells[0].source


def test_duplicate_check_ids_are_refused():
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["labkit"] = {"check": "a", "points": 1}
    nb = nbformat.v4.new_notebook(cells=[cell, nbformat.v4.new_code_cell("pass", metadata={"labkit": {"check": "a"}})])
    with pytest.raises(release.ReleaseError, match="used by two cells"):
        release.release_notebook(nb, "x")


def test_standard_cells_come_from_the_template_with_the_readme_address():
    url = release.repository_url(REPO / "README.md")
    assert url.startswith("https://")
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        setup = [c for c in nb.cells if "labkit-setup" in c.metadata.get("tags", [])]
        assert len(setup) == 1 and setup[0].source == release.SETUP_TEMPLATE.format(url=url, name=path.stem)
        header = [c for c in nb.cells if "labkit-header" in c.metadata.get("tags", [])][0]
        assert f"colab.research.google.com/github/{url.split('github.com/')[1]}/blob/main/notebooks/{path.name}" in header.source


def test_release_round_trip_on_a_copy(tmp_path):
    """Release into a scratch repo: an edited solution makes the release stale, `release` fixes it."""
    (tmp_path / "notebooks" / "solutions").mkdir(parents=True)
    (tmp_path / "README.md").write_text("Course repository: https://github.com/someone/course\n")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title", metadata={"tags": ["labkit-header"]}),
        nbformat.v4.new_code_cell("", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("", metadata={"tags": ["labkit-setup"]}),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    return 42\n    ### END SOLUTION"),
        nbformat.v4.new_code_cell("assert f() == 42", metadata={"labkit": {"check": "f", "points": 1}}),
    ])
    nbformat.write(nb, tmp_path / "notebooks" / "solutions" / "00_toy.ipynb")
    written = release.release_all(tmp_path)
    assert "notebooks/00_toy.ipynb" in written
    assert release.release_all(tmp_path, check=True) == []
    student = json.loads((tmp_path / "notebooks" / "00_toy.ipynb").read_text())
    assert "return 42" not in json.dumps(student)
    assert "someone/course/blob/main/notebooks/00_toy.ipynb" in "".join(student["cells"][0]["source"])
