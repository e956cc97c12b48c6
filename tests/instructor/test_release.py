import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from labkit.instructor import release
from labkit.notebook_format import MD_ANSWER_PROMPT

REPO = Path(__file__).resolve().parents[2]

# a solution block without its answer: the hint, which the student sees
PUBLIC = re.compile(r"### BEGIN SOLUTION([^\n]*)\n.*?### END SOLUTION|<!-- BEGIN SOLUTION -->.*?<!-- END SOLUTION -->",
                    re.S)


def _secret_lines(solution):
    """Solution lines of a solution notebook that its own instructions do not show (e.g. `opt_d.step()` in a hint)."""
    sol = nbformat.read(solution, as_version=4)
    public = "\n".join(PUBLIC.sub(r"\1", c.source) for c in sol.cells)
    return [line for line in release.solution_lines(sol) if line not in public]


def test_committed_student_notebooks_are_a_fresh_release():
    assert release.release_all(REPO, check=True) == [], "run `labkit release` and commit the result"


@pytest.mark.parametrize("solution", sorted((REPO / "notebooks" / "solutions").glob("*.ipynb")), ids=lambda p: p.stem)
def test_student_notebook_contains_no_solution_text(solution):
    student_path = REPO / "notebooks" / solution.name
    student_text = student_path.read_text()
    assert release.solution_lines(nbformat.read(solution, as_version=4)), "a solution notebook with no solution blocks?"
    leaked = [line for line in _secret_lines(solution) if line in student_text]
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
    assert "secret" not in out.cells[0].source and MD_ANSWER_PROMPT in out.cells[0].source


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


# --------------------------------------------------------------------------- the students' distribution


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "student"
    folder, archive = release.build_student_distribution(REPO, out, zip_path=out.with_suffix(".zip"))
    return folder, archive


def test_distribution_holds_what_students_need(dist):
    folder, archive = dist
    for solution in sorted((REPO / "notebooks" / "solutions").glob("*.ipynb")):
        assert (folder / "notebooks" / solution.name).read_bytes() == (REPO / "notebooks" / solution.name).read_bytes()
    for name in release.STUDENT_CHECKPOINTS + release.STUDENT_FILES:
        assert (folder / ("checkpoints" if name.endswith(".pt") else "") / name).is_file(), name
    instructor_only = [REPO / "labkit" / part for part in release.INSTRUCTOR_ONLY]
    for path in (REPO / "labkit").rglob("*.py"):
        if "__pycache__" not in path.parts and not any(path.is_relative_to(part) for part in instructor_only):
            assert (folder / path.relative_to(REPO)).read_bytes() == path.read_bytes()
    for part in release.INSTRUCTOR_ONLY:                      # code that answers a TODO stays with the instructor
        assert (REPO / "labkit" / part).exists() and not (folder / "labkit" / part).exists(), part
    for data in ("data/references/gan1d.npz", "data/samples/mnist/train-images-idx3-ubyte.gz"):
        assert (folder / "labkit" / data).is_file(), data
    # untouched copies of the releases, for `labkit pack` and `labkit check` (students edit notebooks/ in place)
    for notebook in (folder / "notebooks").glob("*.ipynb"):
        copies = folder / "labkit" / release.RELEASE_COPIES.relative_to(release.RELEASE_COPIES.parent.parent)
        assert (copies / notebook.name).read_bytes() == notebook.read_bytes()
    url = release.repository_url(REPO / "README.md")
    readme = (folder / "README.md").read_text()
    assert f"git clone {url} " in readme and "labkit pack" in readme and "## For students" not in readme
    # what the Colab link and setup cell expect at that address: notebooks/NAME.ipynb and an installable package
    assert (folder / "pyproject.toml").is_file() and (folder / "labkit" / "__init__.py").is_file()
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    shipped = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    top = names[0].split("/")[0]
    assert sorted(n.split("/", 1)[1] for n in names) == [n for n in shipped if not n.startswith(".labkit-")]
    assert all(n.startswith(top + "/") for n in names)


def test_distribution_finds_its_own_checkpoints(dist):
    """labkit imported from the distribution looks for checkpoints in it (what `pip install -e` gives in Colab)."""
    folder, _ = dist
    env = {k: v for k, v in os.environ.items() if k not in ("LABKIT_REPO", "LABKIT_CHECKPOINTS")}
    env["PYTHONPATH"] = str(folder)
    code = "import labkit.paths as p; print(p.checkpoint('classifier_mnist.pt'))"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=folder, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()) == folder / "checkpoints" / "classifier_mnist.pt"


def test_distribution_leaks_no_solution_and_no_answer_checkpoint(dist):
    folder, archive = dist
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert not (folder / "notebooks" / "solutions").exists()
    assert all("solutions" not in p.relative_to(folder).parts for p in files)
    # No solution text, in any text file. labkit's own code may share generic lines with a solution
    # (`opt_g.step()`): students always had the library, so lines it holds are not secrets.
    library = "\n".join(p.read_text() for p in (REPO / "labkit").rglob("*.py"))
    secrets = {line for s in (REPO / "notebooks" / "solutions").glob("*.ipynb") for line in _secret_lines(s)}
    secrets = {line for line in secrets if line not in library}
    assert secrets
    for path in files:
        if path.suffix in (".py", ".ipynb", ".md", ".txt", ".toml", ".json", ".cfg", ""):
            text = path.read_text(encoding="utf-8")
            assert not [line for line in secrets if line in text], path
            assert "<!-- BEGIN SOLUTION -->" not in text or path.name in ("release.py", "notebook_format.py")
    # No model that answers a graded check, under any name: compared by content with every reference
    # checkpoint and solution model that is not on the students' list.
    given = {release.file_digest(REPO / "checkpoints" / name) for name in release.STUDENT_CHECKPOINTS}
    answers = {release.file_digest(p): p.name for folder_ in (REPO / "checkpoints", REPO / "notebooks" / "solutions")
               for p in folder_.glob("*.pt") if release.file_digest(p) not in given}
    assert any(name.startswith("gan1d_") for name in answers.values())
    shipped = {release.file_digest(p): p for p in files}
    assert not set(shipped) & set(answers), [str(shipped[d]) for d in set(shipped) & set(answers)]
    assert sorted(p.name for p in files if p.suffix in (".pt", ".pth")) == sorted(release.STUDENT_CHECKPOINTS)
    with zipfile.ZipFile(archive) as z:
        assert not [n for n in z.namelist() if "solutions/" in n or n.endswith((".pt", ".pth"))
                    and n.rsplit("/", 1)[-1] not in release.STUDENT_CHECKPOINTS]
        assert not {hashlib.sha256(z.read(n)).hexdigest() for n in z.namelist()} & set(answers)


def test_distribution_refuses_an_answer_checkpoint_and_a_foreign_folder(tmp_path, monkeypatch):
    out = tmp_path / "student"
    real_write = release._write_student_tree

    def leaky(repo, target, url):  # a future change that copies a reference model under another name
        real_write(repo, target, url)
        shutil.copyfile(REPO / "checkpoints" / "gan1d_laplace.pt", target / "notebooks" / "gan1d_final.pt")

    monkeypatch.setattr(release, "_write_student_tree", leaky)
    with pytest.raises(release.ReleaseError, match="gan1d_laplace.pt"):
        release.build_student_distribution(REPO, out)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("not to be deleted")
    with pytest.raises(release.ReleaseError, match="not a students' distribution"):
        release.build_student_distribution(REPO, tmp_path / "mine")
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_release_command_builds_the_distribution_and_check_does_not(tmp_path, capsys, monkeypatch):
    from labkit import cli

    repo = tmp_path / "repo"  # a copy: the command writes the student notebooks too
    for name in ("labkit", "notebooks", "checkpoints"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("README.md",) + release.STUDENT_FILES:
        shutil.copyfile(REPO / name, repo / name)
    monkeypatch.setenv("LABKIT_REPO", str(repo))
    assert cli.main(["release", "--check", "--dist", str(tmp_path / "d")]) == 0
    assert not (tmp_path / "d").exists()
    assert cli.main(["release", "--dist", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "notebooks").is_dir() and (tmp_path / "d.zip").is_file()
    assert "students' distribution" in capsys.readouterr().out
