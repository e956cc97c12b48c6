"""The students' distribution answers no TODO: the code that did is out of it (named below), and no public function
or class of its labkit, nor a shipped checkpoint, passes a TODO check of labs 02-04 (tests/instructor/student_shortcuts.py)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.instructor import release

REPO = Path(__file__).resolve().parents[2]

# What answered a TODO and where it went (issue 25): never importable from the students' labkit.
REMOVED = {
    "labkit.models.conv": ("DCGANGenerator", "DCGANDiscriminator"),        # lab 03's networks, lab 04's critic;
    # the step checks' tiny networks are labkit.checks.cases (fixed width 2 and noise size 8)
    "labkit.labs.cwgan_gp_fashion": ("bce_critic_step", "bce_generator_step"),  # -> labkit.reference.cwgan_bce_baseline
    "labkit.checks.cgan_mnist": ("_report",),                                # -> stored in data/references/cgan_mnist.npz
}
INSTRUCTOR_MODULES = ("labkit.reference", "labkit.reference.cwgan_bce_baseline")
# The test machine has the course repository installed in editable mode, whose import hook would find what the
# distribution lacks; a student has only the distribution. The probes drop that hook first.
ONLY_THE_DISTRIBUTION = "import sys; sys.meta_path[:] = [f for f in sys.meta_path if '__editable__' not in repr(f)]"


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist") / "student"
    return release.build_student_distribution(REPO, out)[0]


def _run_in(dist: Path, args, timeout: int):
    env = {k: v for k, v in os.environ.items() if k not in ("LABKIT_REPO", "LABKIT_CHECKPOINTS", "PYTHONPATH")}
    env.update(PYTHONPATH=str(dist), LABKIT_OFFLINE="1", LABKIT_HEADLESS="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], env=env, cwd=dist, capture_output=True, text=True, timeout=timeout)


def test_removed_names_are_not_importable_from_the_distribution(dist):
    code = (
        f"{ONLY_THE_DISTRIBUTION}\nimport importlib, json, labkit\n"
        f"removed, modules = {dict(REMOVED)!r}, {INSTRUCTOR_MODULES!r}\n"
        "found = [f'{m}.{n}' for m, names in removed.items() for n in names if hasattr(importlib.import_module(m), n)]\n"
        "for m in modules:\n"
        "    try:\n"
        "        importlib.import_module(m); found.append(m)\n"
        "    except ImportError:\n"
        "        pass\n"
        "print(json.dumps({'found': found, 'labkit': labkit.__file__}))\n")
    out = _run_in(dist, ["-c", code], timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["labkit"]).is_relative_to(dist)
    assert result["found"] == []
    # ...while the instructor's copy keeps what the benchmarks train with
    from labkit.reference.cwgan_bce_baseline import bce_critic_step, bce_generator_step  # noqa: F401


def test_shipped_checkpoints_still_sample_in_the_distribution(dist, tmp_path):
    """The CGAN reference students get loads and samples through its exported graph (no notebook class there)."""
    out = _run_in(dist, ["-m", "labkit", "sample", "checkpoints/cgan_mnist.pt", "--n", "20", "--out",
                         str(tmp_path / "x.npy")], timeout=300)
    assert out.returncode == 0, out.stderr
    import numpy as np

    x = np.load(tmp_path / "x.npy")
    assert x.shape == (20, 28, 28) and 0 <= x.min() and x.max() <= 1


def _shortcuts(dist: Path, scratch: Path) -> dict:
    script = Path(__file__).with_name("student_shortcuts.py")
    out = _run_in(dist, [str(script), str(dist), str(scratch)], timeout=1500)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["candidates"] > 100 and result["tries"] > 1000, result   # the probe saw the whole labkit
    return result


@pytest.mark.slow
def test_nothing_in_the_distribution_passes_a_todo_check(dist, tmp_path):
    assert _shortcuts(dist, tmp_path)["passed"] == []


PLANTED = '''"""Answers planted in a copy of the distribution: the probe must find them."""
import torch

__all__ = ["interpolate", "penalty"]


def interpolate(a, b, steps):
    t = torch.linspace(0, 1, steps, dtype=a.dtype)[:, None]
    return (1 - t) * a + t * b


def penalty(gradient, lambda_gp=10.0):
    return lambda_gp * ((gradient.flatten(1).norm(2, dim=1) - 1) ** 2).mean()
'''


@pytest.mark.slow
def test_the_probe_finds_an_answer_planted_in_labkit(tmp_path):
    planted = release.build_student_distribution(REPO, tmp_path / "student")[0]
    (planted / "labkit" / "planted.py").write_text(PLANTED)
    assert sorted(_shortcuts(planted, tmp_path)["passed"]) == [
        "02 interpolate <- labkit.planted.interpolate", "04 gradient penalty <- labkit.planted.penalty"]
