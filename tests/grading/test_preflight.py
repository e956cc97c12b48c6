"""``labkit grade`` and ``labkit check`` in the Python layouts instructors and students use, and the preflight.

Each layout is built here, offline, around this test run's own packages (torch, nbval, labkit), which it
reaches through a ``.pth`` file in the layout's own site-packages, as a package installed there would be:

* a virtual environment made with ``python -m venv`` (symlinks, the default) and with ``--copies``;
* a ``pip install --user`` install (``PYTHONUSERBASE``) used by the base interpreter;
* a prefix-style environment like conda's: the interpreter binary and its standard library copied into a
  folder under /tmp with its own site-packages (conda itself cannot be installed offline here, so its layout
  is simulated).

The same small submission (the fixture assignment's solution) is graded in each, from a folder that is not
the repository. The preflight's three failure cases (no nbval, no torch, no bwrap) stop before any row is
written.
"""
import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from labkit.grading.sandbox import sandbox_works
from tests.fixtures.grading import make_fixtures

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SOURCE = REPO / "tests" / "fixtures" / "grading" / "solutions"
BASE_PYTHON = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
VERSION = f"python{sys.version_info.major}.{sys.version_info.minor}"

needs_sandbox = pytest.mark.skipif(not sandbox_works(), reason="bubblewrap (bwrap) is missing or cannot run here")


def _packages_line(hide=()) -> str:
    """A .pth line that adds this run's site-packages as a site folder (their own .pth files, the editable labkit,
    included) and hides the modules ``hide`` as if they were not installed."""
    folders = [p for p in site.getsitepackages() if os.path.isdir(p)]
    line = "import site; " + "; ".join(f"site.addsitedir({p!r})" for p in folders)
    if hide:
        line += "; import sys; sys.modules.update({})".format(", ".join(f"{name}=None" for name in hide))
    return line + "\n"


def _venv(folder: Path, *options, hide=()) -> Path:
    subprocess.run([BASE_PYTHON, "-m", "venv", "--without-pip", *options, str(folder)], check=True)
    packages = folder / "lib" / VERSION / "site-packages"
    (packages / "course-kit.pth").write_text(_packages_line(hide), encoding="utf-8")
    return folder / "bin" / "python"


def _user_install(folder: Path):
    packages = folder / "lib" / VERSION / "site-packages"
    packages.mkdir(parents=True)
    (packages / "course-kit.pth").write_text(_packages_line(), encoding="utf-8")
    return Path(BASE_PYTHON), {"PYTHONUSERBASE": str(folder)}


def _prefix_install(folder: Path) -> Path:
    """A conda-like prefix: bin/pythonX.Y and lib/pythonX.Y (the standard library) copied, its own site-packages."""
    stdlib = Path(sysconfig.get_paths(vars={"base": sys.base_prefix, "installed_base": sys.base_prefix})["stdlib"])
    (folder / "bin").mkdir(parents=True)
    shutil.copy2(BASE_PYTHON, folder / "bin" / VERSION)
    shutil.copytree(stdlib, folder / "lib" / VERSION, symlinks=True,
                    ignore=shutil.ignore_patterns("site-packages", "test", "__pycache__", "idlelib", "tkinter"))
    packages = folder / "lib" / VERSION / "site-packages"
    packages.mkdir()
    (packages / "course-kit.pth").write_text(_packages_line(), encoding="utf-8")
    return folder / "bin" / VERSION


def _run(python: Path, args, cwd: Path, extra_env=None, path=None):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONUSERBASE")}
    env.update(extra_env or {})
    if path is not None:
        env["PATH"] = path
    return subprocess.run([str(python), "-m", "labkit", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=900)


def _grade(python, tmp_path, submission, extra_env=None, path=None):
    out = tmp_path / "grades"
    done = _run(python, ["grade", "--source", str(SOURCE), "--assignment", "toy", "--out", str(out), "--no-progress",
                         "--", str(submission)], cwd=tmp_path, extra_env=extra_env, path=path)
    return done, out


@pytest.fixture(scope="module")
def solution(tmp_path_factory):
    folder = tmp_path_factory.mktemp("subs")
    return make_fixtures._folder(folder, "solution", make_fixtures.toy_solution())


@needs_sandbox
@pytest.mark.parametrize("layout", ["venv", "venv-copies", "user-install", "conda-like-prefix"])
def test_each_python_layout_grades_the_solution_with_full_marks(layout, tmp_path, solution):
    env_folder = tmp_path / "env"
    extra = None
    if layout == "venv":
        python = _venv(env_folder)
        assert python.is_symlink()   # the default layout whose real path is the base interpreter
    elif layout == "venv-copies":
        python = _venv(env_folder, "--copies")
    elif layout == "user-install":
        python, extra = _user_install(env_folder)
    else:
        python = _prefix_install(env_folder)
    work = tmp_path / "elsewhere"
    work.mkdir()
    done, out = _grade(python, work, solution, extra_env=extra)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "preflight: a one-cell notebook ran" in done.stdout
    rows = (out / "grades.csv").read_text(encoding="utf-8").splitlines()
    header, row = rows[0].split(","), rows[1].split(",")
    values = dict(zip(header, row))
    assert values["status"] == "ok", rows
    assert float(values["auto_points"]) == float(values["auto_max"]), rows


@pytest.mark.parametrize("hidden, said", [("nbval", "cannot import nbval"), ("torch", "cannot import torch")])
def test_preflight_stops_before_any_row_when_a_package_is_missing(hidden, said, tmp_path, solution):
    python = _venv(tmp_path / "env", hide=(hidden,))
    done, out = _grade(python, tmp_path, solution)
    assert done.returncode == 2, done.stdout + done.stderr
    message = done.stderr
    assert said in message and str(python) in message and "pip install" in message, message
    assert "Traceback" not in message
    assert not (out / "grades.csv").exists()


def test_preflight_stops_labkit_check_too(tmp_path, solution):
    python = _venv(tmp_path / "env", hide=("nbval",))
    notebook = next(Path(solution).glob("*.ipynb"))
    done = _run(python, ["check", "--source", str(SOURCE), str(notebook)], cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot import nbval" in done.stderr and "Traceback" not in done.stderr


def test_grade_without_bwrap_says_how_to_install_it(tmp_path, solution):
    python = _venv(tmp_path / "env")
    done, out = _grade(python, tmp_path, solution, path=str(python.parent))   # PATH without /usr/bin: no bwrap
    assert done.returncode == 2, done.stdout + done.stderr
    assert "bwrap was not found" in done.stderr and "apt-get install bubblewrap" in done.stderr
    assert not (out / "grades.csv").exists()
