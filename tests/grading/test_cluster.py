"""Cluster grading (issue 29): the plan's per-task command run for every index with ``xargs -P 2``, then ``labkit
grade collect``, gives the same grades.csv as ``labkit grade`` on the same folder; a task that never ran is an error
row until it is run again; the sbatch scripts and the Kubernetes Indexed Job are parsed and their fields checked."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labkit.grading.sandbox import sandbox_works
from tests.fixtures.grading import make_fixtures

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "grading"
CASES = ("solution", "release", "sys_exit", "os_exit", "solution_zip")


def _fixtures():
    return make_fixtures


def _labkit(*args, cwd=None):
    done = subprocess.run([sys.executable, "-m", "labkit", *args], capture_output=True, text=True, timeout=1200,
                          cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def _plan(folder: Path, kind: str, submissions):
    return _labkit("grade", "--plan", kind, "--assignment", "toy", "--source", str(FIXTURES / "solutions"),
                   "--out", str(folder), "--", *map(str, submissions))


def _rows(csv_path: Path):
    with open(csv_path, newline="", encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def submissions(tmp_path_factory):
    paths = _fixtures().make_submissions(tmp_path_factory.mktemp("subs"))
    return [Path(paths[case]) for case in CASES]


def test_the_slurm_scripts_and_the_indexed_job(tmp_path, submissions):
    import yaml

    _plan(tmp_path / "slurm", "slurm", submissions)
    manifest = json.loads((tmp_path / "slurm" / "manifest.json").read_text())
    assert manifest["assignment"] == "toy" and len(manifest["submissions"]) == len(CASES)
    assert manifest["names"] == ["solution", "release", "sys_exit", "os_exit", "solution_zip"]
    sbatch = (tmp_path / "slurm" / "grade.sbatch").read_text()
    options = dict(line[len("#SBATCH "):].split("=", 1) for line in sbatch.splitlines() if line.startswith("#SBATCH"))
    assert options["--array"] == f"0-{len(CASES) - 1}%50"
    assert options["--cpus-per-task"] == "2" and options["--mem"].endswith("M") and int(options["--time"]) >= 30
    assert "--task \"${SLURM_ARRAY_TASK_ID}\"" in sbatch
    submit = (tmp_path / "slurm" / "submit.sh").read_text()
    assert "--dependency=afterany:" in submit and "collect.sbatch" in submit
    assert "labkit grade collect" in (tmp_path / "slurm" / "collect.sbatch").read_text()

    _plan(tmp_path / "k8s", "kubernetes", submissions)
    job = yaml.safe_load((tmp_path / "k8s" / "job.yaml").read_text())
    spec = job["spec"]
    assert job["kind"] == "Job" and spec["completionMode"] == "Indexed" and spec["completions"] == len(CASES)
    assert spec["backoffLimitPerIndex"] == 1 and spec["template"]["spec"]["restartPolicy"] == "Never"
    container = spec["template"]["spec"]["containers"][0]
    assert "$(JOB_COMPLETION_INDEX)" in container["command"]
    assert container["resources"]["limits"]["memory"].endswith("Mi")
    assert "bubblewrap" in (tmp_path / "k8s" / "Dockerfile").read_text()


@pytest.mark.slow
@pytest.mark.skipif(not sandbox_works(), reason="bubblewrap (bwrap) is missing or cannot run here")
def test_collect_gives_the_same_csv_as_a_local_run(tmp_path, submissions):
    plan = tmp_path / "plan"
    _plan(plan, "slurm", submissions)
    shutil.rmtree(plan / "tasks")
    (plan / "tasks").mkdir()
    # Every index but the last, two at a time, as the array would; then collect: the last is a missing row.
    indices = "\n".join(str(i) for i in range(len(CASES) - 1)) + "\n"
    subprocess.run(f"xargs -P 2 -I{{}} {sys.executable} -m labkit grade --task {{}} --out {plan}", shell=True,
                   input=indices, text=True, check=True, capture_output=True, timeout=1200,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    done = _labkit("grade", "collect", str(plan))
    assert "missing results for task 4" in done.stdout
    rows = _rows(plan / "grades.csv")
    assert rows[-1]["status"] == "error" and "labkit grade --task 4" in rows[-1]["reason"]
    _labkit("grade", "--task", str(len(CASES) - 1), "--out", str(plan))   # only the missing index again
    _labkit("grade", "collect", str(plan))

    local = tmp_path / "local"
    _labkit("grade", "--assignment", "toy", "--source", str(FIXTURES / "solutions"), "--out", str(local),
            "--jobs", "2", "--no-progress", "--", *map(str, submissions))
    assert _rows(plan / "grades.csv") == _rows(local / "grades.csv")
    assert sorted(p.name for p in (plan / "feedback").iterdir()) == sorted(p.name for p in (local / "feedback").iterdir())
    for page in (local / "feedback").iterdir():
        assert (plan / "feedback" / page.name).read_text() == page.read_text()
