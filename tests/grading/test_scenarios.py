"""``labkit grade`` on a small fixture assignment (tests/fixtures/grading/).

One graded run of every submission (module-scoped, ``--jobs 2``) is shared by most tests;
each adversarial case is its own test on that run, asserting its status, points and flags.
The tampering cases start from wrong answers that raise no error, so without the grader's
defences they would get full marks (plain ``pytest --nbval-lax`` passes every one of their
cells). The cases of issue 12 (a spy, a contaminator, forged passes, tampered check state,
shadowing files, a generator that draws its own noise, text that cannot be encoded, names that
collide) run in the same run, in the bubblewrap sandbox; a second run checks that the
contaminating one changed nothing. The guard cases of issue 28 (numpy's functions replaced by callable
objects, partials and bound methods; a callable-object trace function that rewrites a check's locals) run
there too. Without a working ``bwrap`` the run uses
``--unsafe-no-sandbox`` and the cases that need the sandbox are skipped.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest

from labkit import cli
from labkit.grading.assignment import Alias, load_assignment
from labkit.grading.cells import CellKey
from labkit.grading.intake import submission_names
from labkit.grading.inside.plugin import NBVAL_RANGE, check_nbval_version
from labkit.grading.prepare import prepare
from labkit.grading.restore import restore_cells
from labkit.grading.cells import safe_text
from labkit.grading.run import MARKER_VARIABLE, kill_process_tree, run_marker_prefix
from labkit.grading.sandbox import find_sandbox, sandbox_works
from labkit.grading.scan import scan_code
from labkit.grading.types import Status
from tests.fixtures.grading import make_fixtures as fx
from labkit.notebook_format import release_notebook

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "grading"
SOURCE = FIXTURES / "solutions"


# slow: the module's `graded` fixture grades a dozen submissions (about two minutes on two cores).
pytestmark = [pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits"),
              pytest.mark.slow]

CHECKS = {"square": 2.0, "mean": 3.0, "saved_model": 5.0}
FULL = sum(CHECKS.values())




SANDBOX = sandbox_works()
needs_sandbox = pytest.mark.skipif(not SANDBOX, reason="bubblewrap (bwrap) is missing or cannot run here")
LABKIT_DIR = Path(cli.__file__).resolve().parent


def _hashes(root: Path):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _grade(paths, out: Path, *options):
    argv = ["grade", "--source", str(SOURCE), "--assignment", "toy", "--out", str(out), "--no-progress",
            *options, *([] if SANDBOX else ["--unsafe-no-sandbox"]), *[str(p) for p in paths]]
    stdout = io.StringIO()
    start = time.monotonic()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(argv)
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows = {row["submission"]: row for row in reader}
        header = reader.fieldnames
    return SimpleNamespace(code=code, rows=rows, header=header, out=out, stdout=stdout.getvalue(),
                           seconds=time.monotonic() - start)


@pytest.fixture(scope="module")
def assignment():
    return load_assignment("toy", SOURCE)


def _site_packages():
    import site

    return [Path(p) for p in site.getsitepackages()]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("submissions")
    paths = {**fx.make_submissions(root), **fx.make_adversarial_submissions(root, sandboxed=SANDBOX)}
    before = _hashes(root)
    os.environ[fx.SECRET_VARIABLE] = "the grader's own secret"
    try:
        run = _grade(paths.values(), tmp_path_factory.mktemp("grades"), "--jobs", "2", "--cell-timeout", "10")
    finally:
        del os.environ[fx.SECRET_VARIABLE]
    run.paths, run.root, run.before = paths, root, before
    run.names = dict(zip(paths, submission_names(paths.values())))
    return run


def _row(graded, name):
    row = graded.rows[name]
    row["points"] = {c: float(row[c]) for c in CHECKS}
    return row


def _check_results(graded, name):
    """check id -> "passed" / "failed" / "not run", from the feedback's table of checks."""
    feedback = (graded.out / "feedback" / f"{name}.md").read_text(encoding="utf-8")
    results = {}
    for line in feedback.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) >= 3 and cells[0] in CHECKS:
            results[cells[0]] = cells[2].split(" ", 1)[1]
    return results


ALL_FAILED = {c: "failed" for c in CHECKS}  # every check ran to a verdict: not skipped, not lost to a crash


# --------------------------------------------------------------------------- fast: no kernel


def test_fixture_notebooks_are_up_to_date():
    for name, nb in (("toy", fx.toy_solution()), ("other", fx.other_solution())):
        assert (SOURCE / f"{name}.ipynb").read_text(encoding="utf-8") == nbformat.writes(nb) + "\n", (
            f"run python tests/fixtures/grading/make_fixtures.py to rewrite {name}.ipynb")


def test_assignment_points(assignment):
    assert {c: i["points"] for c, i in assignment.checks.items()} == CHECKS
    assert assignment.auto_max == FULL and assignment.manual_max == 2
    assert Alias("checks", "labkit.checks", None) in assignment.aliases
    assert {"checks", "require", "passed"} <= set(assignment.helper_names)


@pytest.mark.parametrize("version, supported", [("0.10.0", True), ("0.11.0", True), ("0.9.6", False),
                                                ("0.12.0", False), ("1.0", False)])
def test_nbval_versions_the_plugin_supports(version, supported):
    if supported:
        assert check_nbval_version(version) == version
    else:
        with pytest.raises(ValueError, match=f"supports nbval{NBVAL_RANGE} only; nbval {version} is installed"):
            check_nbval_version(version)


def test_nbval_pin_is_the_plugins_range():
    repo = FIXTURES.parents[2]
    for name in ("requirements.txt", "pyproject.toml"):
        assert f"nbval{NBVAL_RANGE}" in (repo / name).read_text(encoding="utf-8"), name


def test_grade_refuses_an_unsupported_nbval(monkeypatch, tmp_path):
    import nbval

    monkeypatch.setattr(nbval, "__version__", "0.12.0")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["grade", "--source", str(SOURCE), "--assignment", "toy", "--out", str(tmp_path / "out"),
                         "--no-progress", str(SOURCE / "toy.ipynb")])
    assert code == 2 and f"nbval{NBVAL_RANGE}" in err.getvalue() and "nbval 0.12.0 is installed" in err.getvalue()
    assert not (tmp_path / "out").exists()


def test_load_assignment_says_which_notebooks_it_skipped(tmp_path):
    shutil.copy(SOURCE / "toy.ipynb", tmp_path / "toy.ipynb")
    shutil.copy(SOURCE / "other.ipynb", tmp_path / "other.ipynb")
    (tmp_path / "broken.ipynb").write_text("{ not json", encoding="utf-8")
    assignment = load_assignment("toy", tmp_path)
    assert [s.path.name for s in assignment.skipped] == ["broken.ipynb"]
    assert "JSON" in assignment.skipped[0].reason
    assert set(assignment.others.values()) == {"other"}  # the readable one still counts
    pdf = tmp_path / "not_a_notebook.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        code = cli.main(["grade", "--source", str(tmp_path), "--assignment", "toy", "--out", str(tmp_path / "out"),
                         "--no-progress", str(pdf)])
    assert code == 0 and "broken.ipynb was not read for its check ids" in stdout.getvalue()


def test_unknown_assignment_names_the_available_ones():
    with pytest.raises(FileNotFoundError, match="other, toy"):
        load_assignment("02_cgan_mnist", SOURCE)


def _check_positions(cells, protected):
    return {key.name: i for i, key in protected.items() if key.is_check}


def test_deleted_checks_go_back_after_the_code_they_test(assignment):
    nb = fx.toy_solution()
    nb.cells = [c for c in nb.cells if "check" not in c.metadata.get("labkit", {})]
    cells, protected, origins, notes = restore_cells(assignment, nb)
    where = _check_positions(cells, protected)
    source = [c.source for c in cells]
    assert where["square"] > next(i for i, s in enumerate(source) if s.startswith("def square"))
    assert where["mean"] > next(i for i, s in enumerate(source) if s.startswith("def mean"))
    assert where["mean"] < next(i for i, s in enumerate(source) if "TODO 3" in s)
    assert where["saved_model"] > next(i for i, s in enumerate(source) if "np.save" in s)
    assert all(origins[i] is None for i in where.values())
    assert sum("was missing" in n for n in notes) == 3


def test_edited_checks_are_replaced_and_stray_ids_ignored(assignment):
    nb = release_notebook(fx.toy_solution(), "toy")
    for cell in nb.cells:
        if cell.metadata.get("labkit", {}).get("check") == "mean":
            cell.source = "pass"
    nb.cells.insert(1, nbformat.v4.new_code_cell("print('mine')", metadata={"labkit": {"check": "square"}}))
    cells, protected, origins, notes = restore_cells(assignment, nb)
    instructor = {c: i["source"] for c, i in assignment.checks.items()}
    for position, key in protected.items():
        if key.is_check:
            assert cells[position].source == instructor[key.name]
    assert sum(1 for k in protected.values() if k == CellKey.check("square")) == 1
    assert any("duplicate" in n for n in notes) and any("`pass`" in n for n in notes)


def test_static_scan_flags_tampering_but_not_ordinary_code(assignment):
    assert scan_code(assignment, "def square(x):\n    return x * x\nresult = checks_done = 3") == []
    assert scan_code(assignment, fx.toy_solution().cells[2].source) == []  # the instructor's own setup cell
    flags = scan_code(assignment, "checks.require = print\ndef passed(what):\n    pass\nimport builtins\n"
                                  "builtins.AssertionError = Exception\nsetattr(labkit.checks, 'close', max)\n"
                                  "get_ipython().ast_transformers.append(None)\n%time x = 1")
    text = " | ".join(flags)
    for expected in ("assigns to checks.require", "defines its own 'passed'", "imports builtins",
                     "changes builtins.AssertionError", "calls setattr on labkit.checks", "AST transformers"):
        assert expected in text


def _prepare(assignment, path, tmp_path):
    return prepare(assignment, path, Path(path).stem, tmp_path / "work")


def test_zip_with_unsafe_paths_and_a_fake_labkit(assignment, tmp_path):
    zpath = tmp_path / "sneaky.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("me/toy.ipynb", nbformat.writes(fx.toy_solution()))
        z.writestr("me/labkit/__init__.py", "raise SystemExit('fake labkit')")
        z.writestr("me/numpy.py", "")
        z.writestr("../escape.txt", "x")
        z.writestr("me/line_model.npy", "x")
        z.writestr("me/helpers.py", "HELP = 1")  # a student's own module stays
    prepared = _prepare(assignment, zpath, tmp_path)
    assert prepared.status is None, prepared.reason
    assert prepared.workdir.name == "me" and (prepared.workdir / "line_model.npy").exists()
    assert not (prepared.workdir / "labkit").exists() and not (prepared.workdir / "numpy.py").exists()
    assert (prepared.workdir / "helpers.py").exists()
    assert not (tmp_path / "work" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    assert sum("would replace the installed module" in f for f in prepared.flags) == 2
    assert any("unsafe path" in n for n in prepared.notes)


def test_folder_with_several_notebooks_picks_the_assignment(assignment, tmp_path):
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / "scratch.ipynb").write_text(nbformat.writes(fx.other_solution()), encoding="utf-8")
    (folder / "toy.ipynb").write_text(nbformat.writes(fx.toy_solution()), encoding="utf-8")
    assert _prepare(assignment, folder, tmp_path).notebook_name == "toy.ipynb"
    (folder / "toy.ipynb").rename(folder / "mine.ipynb")
    prepared = prepare(assignment, folder, "student2", tmp_path / "work")
    assert prepared.status is Status.INVALID and "several notebooks" in prepared.reason


def test_a_zip_that_is_not_a_zip(assignment, tmp_path):
    path = tmp_path / "broken.zip"
    path.write_bytes(b"PK\x03\x04 not really")
    prepared = _prepare(assignment, path, tmp_path)
    assert prepared.status is Status.INVALID and "zip" in prepared.reason


# --------------------------------------------------------------------------- one graded run


def test_run_finishes_and_writes_everything(graded):
    assert graded.code == 0
    assert set(graded.rows) == set(submission_names(graded.paths.values())) and len(graded.rows) == len(graded.paths)
    assert {"solution", "solution_zip", "invalid_json", "not_a_notebook.pdf"} <= set(graded.rows)
    for name in graded.rows:
        assert (graded.out / "feedback" / f"{name}.md").stat().st_size > 200
        html = (graded.out / "feedback" / f"{name}.html").read_text(encoding="utf-8")
        assert html.startswith("<!DOCTYPE html>") and "</html>" in html


def test_csv_columns(graded):
    assert graded.header == ["submission", "status", "auto_points", "auto_max", "manual_max", "square", "mean",
                             "saved_model", "manual:why_outliers", "flags", "reason", "notes", "seconds", "source"]
    for row in graded.rows.values():
        assert float(row["auto_max"]) == FULL and float(row["manual_max"]) == 2
        assert row["status"] in ("ok", "error", "timeout", "invalid")
        assert float(row["auto_points"]) == sum(float(row[c]) for c in CHECKS)


def test_summary(graded):
    assert f"graded {len(graded.rows)} submissions of toy" in graded.stdout
    assert "status: ok " in graded.stdout and "mean " in graded.stdout and "distribution" in graded.stdout
    assert "90–100%" in graded.stdout


def test_submissions_are_never_modified(graded):
    assert _hashes(graded.root) == graded.before


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # a zombie is dead, only not reaped yet


def _carrying(needle: bytes):
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _alive(int(entry)):
            try:
                if needle in Path(f"/proc/{entry}/environ").read_bytes():
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_no_process_outlives_the_run(graded):
    # Only the runs this test process started: other gradings may be running on the machine meanwhile.
    assert _carrying(f"{MARKER_VARIABLE}={run_marker_prefix()}".encode()) == []


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_kill_process_tree_finds_a_process_that_left_the_tree():
    marker = run_marker_prefix() + "left-the-tree"
    code = ("import subprocess, sys\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)\n"
            "print(child.pid, flush=True)\n")  # and exit: the child is no longer a descendant of anything we know
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, MARKER_VARIABLE: marker},
                            stdout=subprocess.PIPE, text=True)
    orphan = int(proc.stdout.readline())
    proc.wait()
    proc.stdout.close()
    assert _alive(orphan) and _carrying(marker.encode()) == [orphan]
    kill_process_tree(proc, marker)
    deadline = time.monotonic() + 10
    while _alive(orphan) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(orphan)


@pytest.mark.parametrize("name", ["solution", "solution_zip"])
def test_reference_solution_gets_full_marks(graded, name):
    row = _row(graded, name)
    assert (row["status"], float(row["auto_points"]), row["points"], row["flags"]) == ("ok", FULL, CHECKS, "")


def test_untouched_release_gets_zero(graded):
    row = _row(graded, "release")
    assert float(row["auto_points"]) == 0 and row["status"] == "ok"
    assert _check_results(graded, "release") == ALL_FAILED and row["flags"] == ""
    feedback = (graded.out / "feedback" / "release.md").read_text(encoding="utf-8")
    assert "NotImplementedError: return x squared" in feedback and "(not answered)" in feedback


def test_feedback_of_the_solution(graded):
    feedback = (graded.out / "feedback" / "solution.md").read_text(encoding="utf-8")
    assert "**Automatic points: 10 / 10.**" in feedback
    assert "✔ saved model fits 3 x + 1" in feedback
    assert "One huge value moves the sum" in feedback  # the written answer, for hand-grading
    assert "LABKIT-CHECK" not in feedback


def test_quality_check_needs_the_saved_model(graded):
    row = _row(graded, "solution_without_model")
    assert row["status"] == "ok" and row["points"] == {**CHECKS, "saved_model": 0.0}
    assert "No saved model" in (graded.out / "feedback" / "solution_without_model.md").read_text(encoding="utf-8")


def test_check_cells_deleted(graded):
    row = _row(graded, "checks_deleted")  # TODO 2 left undone, every check cell deleted
    assert row["status"] == "ok" and row["points"] == {"square": 2.0, "mean": 0.0, "saved_model": 5.0}
    assert _check_results(graded, "checks_deleted") == {"square": "passed", "mean": "failed", "saved_model": "passed"}
    assert row["notes"].count("was missing") == 3


def test_check_cells_replaced_by_pass(graded):
    row = _row(graded, "checks_pass")
    assert (row["status"], float(row["auto_points"]), row["flags"]) == ("ok", 0, "")
    assert row["notes"].count("replaced by `pass`") == 3 and _check_results(graded, "checks_pass") == ALL_FAILED


def test_assertions_removed(graded):
    row = _row(graded, "asserts_removed")
    assert (row["status"], float(row["auto_points"]), row["flags"]) == ("ok", 0, "")
    assert row["notes"].count("edited") == 3 and _check_results(graded, "asserts_removed") == ALL_FAILED


def test_check_helpers_redefined(graded):
    row = _row(graded, "helpers_redefined")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "helpers_redefined") == ALL_FAILED
    for expected in ("defines its own 'require'", "assigns to checks.require", "assigns to labkit.checks.close",
                     "runtime: before check 'square': labkit.checks.require was replaced",
                     "the code of labkit.checks.passed was replaced"):
        assert expected in row["flags"]
    assert "Flagged for the instructor" in (graded.out / "feedback" / "helpers_redefined.md").read_text(encoding="utf-8")


def test_errors_swallowed_by_a_custom_exception_handler(graded):
    row = _row(graded, "errors_swallowed")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "errors_swallowed") == ALL_FAILED
    assert "custom exception handler" in row["flags"] and "sys.stdout was replaced" in row["flags"]


def test_infinite_loop(graded):
    row = _row(graded, "infinite_loop")  # after TODO 1's check
    assert row["status"] == "timeout" and "10 s limit per cell" in row["reason"]
    assert row["points"] == {"square": 2.0, "mean": 0.0, "saved_model": 0.0}
    assert "not graded" in (graded.out / "feedback" / "infinite_loop.md").read_text(encoding="utf-8")
    assert _check_results(graded, "infinite_loop") == {"square": "passed", "mean": "not run", "saved_model": "not run"}


def test_os_exit_half_way(graded):
    row = _row(graded, "os_exit")
    assert row["status"] == "error" and "kernel died" in row["reason"]
    assert row["points"] == {"square": 2.0, "mean": 0.0, "saved_model": 0.0}
    assert _check_results(graded, "os_exit") == {"square": "passed", "mean": "not run", "saved_model": "not run"}


def test_sys_exit_half_way(graded):
    row = _row(graded, "sys_exit")  # IPython turns SystemExit into an error; the kernel lives on
    assert row["status"] == "error" and "SystemExit" in row["reason"]
    assert float(row["auto_points"]) == FULL


def test_50_gb_allocation(graded):
    row = _row(graded, "alloc_50gb")
    assert row["status"] == "error" and "MemoryError" in row["reason"]
    assert float(row["auto_points"]) == FULL


def test_chatty_cell_beats_nbval_fixed_output_wait(graded):
    row = _row(graded, "chatty_output")
    assert (row["status"], float(row["auto_points"])) == ("ok", FULL), row["reason"]


@pytest.mark.parametrize("name, reason", [
    ("invalid_json", "invalid JSON"),
    ("empty", "empty"),
    ("other_assignment", "another assignment (other)"),
    ("not_a_notebook.pdf", "not a notebook"),
])
def test_invalid_submissions(graded, name, reason):
    row = _row(graded, name)
    assert row["status"] == "invalid" and reason in row["reason"] and float(row["auto_points"]) == 0
    assert reason in (graded.out / "feedback" / f"{name}.md").read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the other limits


def test_notebook_time_limit_and_memory_and_processes_of_all_processes(tmp_path):
    paths = fx.make_limit_submissions(tmp_path / "submissions")
    run = _grade(paths.values(), tmp_path / "grades", "--jobs", "2", "--timeout", "15", "--memory", "1")
    slow, hog, many = _row(run, "slow"), _row(run, "memory_hog"), _row(run, "many_processes")
    assert slow["status"] == "timeout" and "time limit (15 s)" in slow["reason"]
    assert hog["status"] == "error" and "more than 1 GB of memory" in hog["reason"]
    # A fork bomb is stopped by whichever limit it reaches first: the process count (the watchdog polls it once a
    # second) or, where there is a memory cgroup, the memory its processes hold together (the kernel, at once).
    assert many["status"] == "error" and ("more than 256 processes" in many["reason"]
                                          or "more than 1 GB of memory" in many["reason"]), many["reason"]
    for row in (slow, hog, many):  # what passed before the kill still counts
        assert row["points"] == {"square": 2.0, "mean": 0.0, "saved_model": 0.0} and row["flags"] == ""


# --------------------------------------------------------------------------- issue 12: sandbox and integrity


def _case(graded, case):
    """The row of a case of the fixtures, by the name the grader gave it."""
    return _row(graded, graded.names[case])


def _log(graded, case):
    return (graded.out / "logs" / f"{graded.names[case]}.log").read_text(encoding="utf-8")


def test_the_sandbox_works_where_it_is_required():
    if os.environ.get("LABKIT_TEST_REQUIRE_SANDBOX") != "1":   # set by .ci/run: there skipping the sandbox is no pass
        pytest.skip("LABKIT_TEST_REQUIRE_SANDBOX is not set: the sandbox is required only where .ci/run says so")
    find_sandbox()   # SandboxUnavailable says why


@needs_sandbox
def test_a_spy_finds_nothing_of_the_machine_or_the_others(graded):
    row = _case(graded, "spy")   # a correct solution that looks around: it keeps its points, the probe is flagged
    assert (row["status"], row["points"]) == ("ok", CHECKS), row["reason"]
    assert row["flags"] == ("cell 4 (`# Probe the sandbox: every attempt below must fail or find nothing.`): "
                            "reads process internals (/proc)")
    assert 'SPY-REPORT []' in _log(graded, "spy").replace('\\"', '"')


@needs_sandbox
def test_a_process_left_behind_dies_with_its_run(graded):
    left = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and fx.ESCAPE_SLEEP.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                left.append(int(entry))
        except OSError:
            pass
    assert [pid for pid in left if _alive(pid)] == []


@needs_sandbox
def test_the_spys_victim_is_unaffected(graded):
    row = _case(graded, "victim")
    assert (row["status"], row["points"], row["flags"]) == ("ok", CHECKS, "")


@needs_sandbox
def test_a_contaminating_submission_changes_nothing(graded):
    row = _case(graded, "contaminator")   # a blank release that tries to change labkit, site-packages, other runs
    assert (row["status"], float(row["auto_points"]), row["flags"]) == ("ok", 0, "")
    assert _check_results(graded, "contaminator") == ALL_FAILED
    # (other files of labkit may change meanwhile: the tree is shared with other work; this one is what it appends to)
    assert "def require(condition, message):\n    pass" not in (LABKIT_DIR / "checks" / "__init__.py").read_text()
    assert not any((folder / fx.CONTAMINATION_PTH).exists() for folder in _site_packages())


@needs_sandbox
def test_a_second_run_after_a_contaminating_one_is_unaffected(graded, tmp_path):
    paths = {"release": graded.paths["release"], "solution": graded.paths["solution"]}
    run = _grade(paths.values(), tmp_path / "grades", "--jobs", "2", "--cell-timeout", "10")
    release, solution = _row(run, "release"), _row(run, "solution")
    assert (release["status"], float(release["auto_points"]), release["flags"]) == ("ok", 0, "")
    assert (solution["status"], solution["points"], solution["flags"]) == ("ok", CHECKS, "")


def test_errors_printed_without_an_error_message_fail(graded):
    # square() prints every cached cell source (the old check token was there) and raises UsageError, which
    # IPython prints without an error message; mean() raises an exception group. Both checks fail.
    row = _case(graded, "forged_pass")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "forged_pass") == ALL_FAILED
    flags = row["flags"].split(" | ")
    assert flags[:2] == [
        "cell 5 (`import linecache`): reads cached cell sources (linecache)",
        "check 'square' failed without an error message (its error was hidden or printed some other way)"]
    # Whether IPython sends an error message for an exception group depends on its version: recent ones do not,
    # and the grader then flags mean's check the same way (its execute reply still says error, so it fails).
    assert flags[2:] in ([], ["check 'mean' failed without an error message (its error was hidden or printed some "
                              "other way)"]), flags
    feedback = (graded.out / "feedback" / "forged_pass.md").read_text(encoding="utf-8")
    assert "UsageError: nothing to see here" in feedback


def test_a_patched_importlib_does_not_reach_the_guard(graded):
    row = _case(graded, "importlib_patch")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "importlib_patch") == ALL_FAILED
    assert row["flags"].split(" | ") == [
        "cell 4 (`# Make the grader's guard rebind the checks to a module that passes everything.`): "
        "calls setattr on importlib",
        "runtime: before check 'square': importlib.import_module was replaced by <lambda> (defined in notebook "
        "code); restored"]


def test_changed_check_data_is_restored(graded):
    row = _case(graded, "state_tamper")   # mean() hard-coded; "laplace" swapped for a point mass at 0
    assert (row["status"], row["points"]) == ("ok", {**CHECKS, "mean": 0.0})
    assert row["flags"] == ("runtime: before check 'square': labkit.distributions._BUILDERS was changed "
                            "(keys laplace); restored")


def test_files_beside_the_notebook_shadow_nothing(graded):
    row = _case(graded, "shadow")   # ipykernel_launcher.py and pygments.py that exit; its own my_helper.py
    assert (row["status"], row["points"]) == ("ok", CHECKS), row["reason"]
    assert row["flags"] == ("the submission contains ipykernel_launcher.py, which would replace the installed "
                            "module 'ipykernel_launcher'; it was left out")
    assert "pygments.py, which would replace the installed module 'pygments'" in row["notes"]


def test_a_model_file_no_check_grades_is_never_read(graded):
    """gen.pt draws its own noise, but no check grades it: the grader reads only the files the checks grade, in a
    sandbox (issue 28), so it stays unread and unflagged. As the graded file it is refused: test_grading_gan1d."""
    row = _case(graded, "fake_generator")
    assert (row["status"], row["points"]) == ("ok", CHECKS)
    assert "gen.pt" not in row["flags"]


def test_text_that_cannot_be_encoded_and_colliding_names(graded):
    names = graded.names
    assert (names["latin1_name"], names["dup_x"], names["dup_y"], names["dup_z"]) == ("caf", "dup", "dup-2", "dup-2-2")
    row = _case(graded, "surrogate")
    assert (row["status"], row["points"], row["flags"]) == ("ok", CHECKS, "")
    assert "A lone surrogate: \\ud800" in (graded.out / "feedback" / "surrogate.md").read_text(encoding="utf-8")
    for case in ("latin1_name", "dup_x", "dup_y", "dup_z"):
        row = _case(graded, case)
        assert (row["status"], float(row["auto_points"]), row["flags"]) == ("ok", 0, ""), case
    assert "\\udce9" in _case(graded, "latin1_name")["source"]


def test_names_are_unique_whatever_the_inputs():
    assert submission_names(["x/dup.ipynb", "y/dup", "z/dup-2.ipynb", "w/DUP.zip", "v/dup-2"]) == [
        "dup", "dup-2", "dup-2-2", "DUP-3", "dup-2-3"]
    assert safe_text("a\ud800b\x00") == "a\\ud800b\\x00"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="bubblewrap is Linux only")
def test_grade_refuses_to_run_without_bwrap(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))   # no bwrap on PATH
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["grade", "--source", str(SOURCE), "--assignment", "toy", "--out", str(tmp_path / "out"),
                         "--no-progress", str(SOURCE / "toy.ipynb")])
    assert code == 2 and "bwrap was not found" in err.getvalue()
    assert "apt-get install bubblewrap" in err.getvalue() and "--unsafe-no-sandbox" in err.getvalue()
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- issue 28: the guard


def test_numpy_replaced_by_objects_without_code_is_undone(graded):
    # np.all a callable object, np.abs a functools.partial of numpy, np.allclose a bound method: checks.close
    # said yes to the wrong saved model. Before issue 28 only the bound method was flagged, and the case got 5.
    row = _case(graded, "callable_numpy")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "callable_numpy") == ALL_FAILED
    assert row["flags"].split(" | ") == [
        "runtime: before check 'square': numpy.abs was replaced by functools.partial(multiply) (defined in another "
        "library); restored",
        "runtime: before check 'square': numpy.all was replaced by an object of class AlwaysTrue (defined in "
        "notebook code); restored",
        "runtime: before check 'square': numpy.allclose was replaced by AlwaysTrue.__call__ (defined in notebook "
        "code); restored"]


def test_a_trace_function_set_after_the_first_cell_is_removed(graded):
    # A callable-object trace function, set as getattr(sys, "set" + "trace"), rewrote checks.close's arguments
    # while the model check ran. Before issue 28: 5 points (the saved-model check), no flag.
    row = _case(graded, "trace_rewrite")
    assert (row["status"], float(row["auto_points"])) == ("ok", 0)
    assert _check_results(graded, "trace_rewrite") == ALL_FAILED
    assert row["flags"] == ("runtime: before check 'square': a trace function (an object of class Rewriter (defined "
                            "in notebook code)) was set after the first cell (sys.settrace); removed")


GUARD_SCRIPT = r'''
import functools, gc, operator, signal, sys, threading
from labkit.grading.inside import guard


class Monitoring:   # sys.monitoring's calls (Python 3.12+), recorded
    class events:
        NO_EVENTS, PY_START, LINE = 0, 1, 32

    def __init__(self):
        self.tools, self.callbacks, self.events_on = {}, {}, {}

    def get_tool(self, tool):
        return self.tools.get(tool)

    def use_tool_id(self, tool, name):
        self.tools[tool] = name

    def set_events(self, tool, events):
        self.events_on[tool] = events

    def register_callback(self, tool, event, function):
        self.callbacks[(tool, event)] = function

    def free_tool_id(self, tool):
        self.tools.pop(tool)


guard._MONITORING = monitoring = Monitoring()
guard.init(imports=("labkit.checks", "torch"))
import numpy as np
import torch
import torch._dynamo   # rewraps torch.manual_seed: the library's own change, not a finding
import labkit.checks as checks


class Sneaky:
    def __call__(self, *args, **kwargs):
        return None


class Truthy(dict):
    pass


np.isclose = operator.is_not                      # a C function of another library
np.array_equal = Truthy().__contains__           # a C method bound to an object of a notebook class
checks.close = functools.partial(max, True)       # labkit's own: every callable is watched
threading.settrace(Sneaky())
sys.setprofile(functools.partial(Sneaky(), "x"))
gc.callbacks.append(Sneaky())
signal.signal(signal.SIGALRM, Sneaky())
signal.setitimer(signal.ITIMER_REAL, 100)
monitoring.use_tool_id(3, "sneaky")
monitoring.set_events(3, monitoring.events.LINE)
monitoring.register_callback(3, monitoring.events.LINE, Sneaky())
guard.before_check("one")
assert checks.close([0, 0], [3, 1]) is False and np.isclose(1, 1) and sys.getprofile() is None
assert threading.gettrace() is None and signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)
assert not [cb for cb in gc.callbacks if isinstance(cb, Sneaky)] and signal.getsignal(signal.SIGALRM) == signal.SIG_DFL
assert monitoring.tools == {} and monitoring.callbacks[(3, 32)] is None and monitoring.events_on[3] == 0
guard.before_check("two")   # nothing left to find
'''


def test_the_guard_puts_back_objects_without_code_and_removes_every_hook(tmp_path):
    """In a fresh interpreter (no kernel): what issue 28 added to the guard, and what it must leave alone."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, "-c", GUARD_SCRIPT], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = [l.split(": ", 1)[1] for l in result.stdout.splitlines() if l.startswith("LABKIT-GUARD before check 'one'")]
    assert sorted(lines) == sorted([
        "a profile function (functools.partial(an object of class Sneaky) (defined in notebook code)) was set after "
        "the first cell (sys.setprofile); removed",
        "a trace function (an object of class Sneaky (defined in notebook code)) was set after the first cell "
        "(threading.settrace); removed",
        "a sys.monitoring tool ('sneaky', id 3) was registered after the first cell; its events and callbacks were "
        "removed",
        "a garbage collector callback (an object of class Sneaky (defined in notebook code)) was added; removed",
        "a handler for SIGALRM (an object of class Sneaky (defined in notebook code)) was installed; restored",
        "labkit.checks.close was replaced by functools.partial(max) (defined in another library); restored",
        "numpy.isclose was replaced by is_not (defined in another library); restored",
        "numpy.array_equal was replaced by Truthy.__contains__ (defined in notebook code); restored"])
    assert "before check 'two'" not in result.stdout and "manual_seed" not in result.stdout


# --------------------------------------------------------------------------- issue 28: reports are inert

ESC_ERASE = "\x1b[2K\x1b[1A\r"   # erase the line, go up one, back to its start: hides the line before it
HOSTILE_HTML = "<script>alert(1)</script><img src=x onerror=alert(2)>"


def _hostile_grade(assignment):
    from labkit.grading.score import new_grade
    from labkit.grading.types import CellError

    grade = new_grade(assignment, "=1+1 x", "-2+3", Status.ERROR, reason=f"{ESC_ERASE}all good {HOSTILE_HTML}",
                      message=f"\x9b2K{HOSTILE_HTML} | pipe")
    grade.flags = ['=1+1 x.pt is the reference model', '@SUM(A1)', f"runtime: {ESC_ERASE}hidden \u202eevil"]
    grade.notes = ["+cmd|' /C calc'!A0", "\tTAB", "\rCR", " =1+2"]
    grade.errors = [CellError(f"cell 3 {HOSTILE_HTML}", f"Err ``x` {HOSTILE_HTML}",
                              f"Traceback\n```\n</pre>{HOSTILE_HTML}\n\x1b[31mred")]
    grade.answers = {"why_outliers": f"{HOSTILE_HTML}\n\x1b]0;new title\x07 plain"}
    return grade


def _active(text: str):
    """The characters of ``text`` a terminal or viewer would act on (newline and tab are not)."""
    return [c for c in text if (ord(c) < 32 and c not in "\n\t") or 0x7f <= ord(c) <= 0x9f or c in "\u202e\u2028"]


def test_grades_csv_cells_are_never_formulas_nor_control_characters(assignment, tmp_path):
    from labkit.grading.report import write_csv

    write_csv(tmp_path / "grades.csv", assignment, [_hostile_grade(assignment)])
    with open(tmp_path / "grades.csv", newline="", encoding="utf-8") as f:
        row = next(csv.DictReader(f))
    assert (row["submission"], row["source"]) == ("'=1+1 x", "'-2+3")
    assert row["flags"].startswith("'=1+1 x.pt is the reference model | @SUM(A1) | runtime: \\u001b[2K")
    assert row["notes"] == "'+cmd|' /C calc'!A0 | \tTAB | \\u000dCR |  =1+2"   # one cell: only its start counts
    for name, cell in row.items():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
        assert _active(cell) == [], (name, cell)
    assert "\\u202eevil" in row["flags"] and "\\u009b2K" not in row["reason"]


def test_the_summary_and_the_feedback_show_control_characters_as_escapes(assignment):
    from labkit.grading.report import feedback_html, feedback_markdown, inert_text, summary

    grade = _hostile_grade(assignment)
    text = summary(assignment, [grade], 1.0, 1)
    assert _active(text) == [] and "error: =1+1 x: \\u001b[2K\\u001b[1A\\u000dall good" in text
    for page in (feedback_markdown(assignment, grade), feedback_html(assignment, grade)):
        written = inert_text(page)   # what write_feedback writes
        assert _active(written) == [] and "\\u001b]0;new title\\u0007" in written and "\\u009b2K" in written
    assert inert_text("a\tb\nc\x00\ud800") == "a\tb\nc\\x00\\ud800"   # still encodable, as safe_text


@pytest.mark.parametrize("extensions", [[], ["tables", "fenced_code"]])
def test_markdown_feedback_escapes_html_in_any_renderer(assignment, extensions):
    import markdown

    from labkit.grading.report import feedback_markdown

    page = feedback_markdown(assignment, _hostile_grade(assignment))
    rendered = markdown.markdown(page, extensions=extensions)
    assert "<script" not in rendered and "<img" not in rendered, rendered
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered   # shown, not run
    assert "**cell 3 &lt;script&gt;" in page
    assert ": ``` Err ``x` <script>alert(1)</script><img src=x onerror=alert(2)> ```\n" in page   # a code span
    assert "    </pre><script>" in page   # the traceback: an indented code block no line can end
