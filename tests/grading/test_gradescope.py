"""The Gradescope autograder (issue 29): the zip ``labkit autograder`` builds, unpacked into a folder laid out like
``/autograder``, graded for the solution (full points), the release (zero), an infinite loop (the time limit), a
crash (a dead kernel), and hand-ins of two and of zero notebooks; every results.json is validated against a JSON
Schema written from Gradescope's specification (kept here)."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import jsonschema
import pytest

from labkit.grading.cgroup import cpu_quota, threads_for_quota
from labkit.grading.gradescope import HandInProblem, find_hand_in
from labkit.grading.sandbox import sandbox_works
from tests.fixtures.grading import make_fixtures

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "grading"

# Gradescope's results.json, from its autograder specification: top-level score (optional when tests carry
# scores), execution_time, output, output_format, visibility, stdout_visibility, tests[] with name, score,
# max_score, status, output and visibility.
VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
RESULTS_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "test_output_format": FORMAT,
        "test_name_format": FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "properties": {
                "score": {"type": "number"}, "max_score": {"type": "number"},
                "status": {"enum": ["passed", "failed"]}, "name": {"type": "string"},
                "name_format": FORMAT, "number": {"type": "string"}, "output": {"type": "string"},
                "output_format": FORMAT, "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": VISIBILITY, "extra_data": {"type": "object"},
            },
            "additionalProperties": False,
        }},
        "leaderboard": {"type": "array"},
    },
    "required": ["output"],
    "anyOf": [{"required": ["score"]}, {"required": ["tests"]}],
    "additionalProperties": False,
}


def _fixtures():
    return make_fixtures


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("autograder")
    out = folder / "autograder.zip"
    done = subprocess.run([sys.executable, "-m", "labkit", "autograder", "--assignment", "toy", "--source",
                           str(FIXTURES / "solutions"), "--out", str(out), "--timeout", "25"],
                          capture_output=True, text=True, timeout=600, cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done.stdout


def test_the_zip_has_gradescopes_layout_and_no_solution(autograder):
    out, printed = autograder
    with zipfile.ZipFile(out) as archive:
        names = set(archive.namelist())
        modes = {i.filename: i.external_attr >> 16 for i in archive.infolist()}
        notebook = archive.read("assignment/toy.ipynb").decode()
        setup = archive.read("setup.sh").decode()
    assert {"setup.sh", "run_autograder", "settings.json", "assignment/toy.ipynb", "references/index.json",
            "kit/pyproject.toml", "kit/labkit/__init__.py"} <= names
    assert modes["setup.sh"] & stat.S_IXUSR and modes["run_autograder"] & stat.S_IXUSR
    assert "BEGIN SOLUTION" not in notebook and "return x * x" not in notebook   # the release, not the solution
    assert not any(n.startswith("notebooks/") or n.endswith(("gan1d_final.pt", "dcgan_mnist.pt")) for n in names)
    assert "conda" not in setup and "pip install" in setup and "useradd" in setup and "chmod -R go-rwx" in setup
    assert "memory at least" in printed and "768 MB" in printed


def _root(tmp_path, autograder_zip) -> Path:
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()
    with zipfile.ZipFile(autograder_zip) as archive:
        archive.extractall(root / "source")
    return root


def _run(root: Path) -> dict:
    env = {**os.environ, "LABKIT_CHECKPOINTS": str(root / "source" / "checkpoints"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "labkit.grading.gradescope", str(root)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, RESULTS_SCHEMA)
    return results


def _hand_in(root: Path, folder: Path) -> None:
    for item in folder.iterdir():
        if item.is_file():
            shutil.copyfile(item, root / "submission" / item.name)


@pytest.mark.slow
@pytest.mark.skipif(not sandbox_works(), reason="bubblewrap (bwrap) is missing or cannot run here")
def test_each_hand_in_gets_a_valid_results_json(tmp_path, autograder):
    fixtures = _fixtures()
    subs = tmp_path / "subs"
    paths = fixtures.make_submissions(subs)
    cases = {}
    for case in ("solution", "release", "infinite_loop", "os_exit"):
        root = _root(tmp_path / case, autograder[0])
        _hand_in(root, Path(paths[case]))
        cases[case] = _run(root)
    solution = cases["solution"]
    assert solution["score"] == 10 and all(t["status"] == "passed" for t in solution["tests"] if "status" in t)
    assert any("graded by hand" in t["name"] for t in solution["tests"])
    assert "bubblewrap sandbox" in solution["output"]
    assert cases["release"]["score"] == 0
    assert "time limit" in cases["infinite_loop"]["output"] and cases["infinite_loop"]["score"] == 2
    assert "kernel died" in cases["os_exit"]["output"]

    two = _root(tmp_path / "two", autograder[0])
    _hand_in(two, Path(paths["solution"]))
    shutil.copyfile(two / "submission" / "toy.ipynb", two / "submission" / "copy.ipynb")
    assert "2 notebooks were handed in" in _run(two)["output"]
    none = _root(tmp_path / "none", autograder[0])
    (none / "submission" / "notes.txt").write_text("forgot the notebook")
    results = _run(none)
    assert results["score"] == 0 and "no notebook" in results["output"]


def test_a_broken_set_up_still_writes_a_valid_file(tmp_path):
    root = tmp_path / "autograder"
    (root / "source").mkdir(parents=True)
    (root / "submission").mkdir()   # no settings.json: the autograder itself is broken
    done = subprocess.run([sys.executable, "-m", "labkit.grading.gradescope", str(root)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    jsonschema.validate(results, RESULTS_SCHEMA)
    assert results["score"] == 0 and "tell your instructor" in results["output"]


def test_find_hand_in_takes_one_notebook_or_one_packed_zip(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "lab.ipynb").write_text("{}")
    assert find_hand_in(tmp_path / "a") == tmp_path / "a"
    (tmp_path / "b").mkdir()
    with zipfile.ZipFile(tmp_path / "b" / "hand-in.zip", "w") as archive:
        archive.writestr("lab/lab.ipynb", "{}")
        archive.writestr("__MACOSX/lab/._lab.ipynb", "x")
    assert find_hand_in(tmp_path / "b") == tmp_path / "b" / "hand-in.zip"
    (tmp_path / "c").mkdir()
    with pytest.raises(HandInProblem, match="no notebook"):
        find_hand_in(tmp_path / "c")


def test_threads_follow_the_cpu_quota(monkeypatch):
    from labkit.grading import cgroup

    monkeypatch.setattr(cgroup, "cpu_quota", lambda: 0.5)
    assert threads_for_quota(16) == 1
    monkeypatch.setattr(cgroup, "cpu_quota", lambda: 3.0)
    assert threads_for_quota(16) == 3
    monkeypatch.setattr(cgroup, "cpu_quota", lambda: None)
    assert threads_for_quota(16) == 16
    assert cpu_quota() is None or cpu_quota() > 0
