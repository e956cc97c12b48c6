"""Every ``LABKIT_*`` environment variable, declared once: its name, who sets it and who reads it.

Code reads and sets them through these declarations (``QUICK.get()``, ``{GRADING.name: "1"}``), never by a
name written out elsewhere: ``tests/test_layout.py`` fails on a ``LABKIT_*`` string that is not declared here.
The grader's lists (what a sandboxed run inherits, what the guard puts back before each check) are made from
these declarations too, so they cannot drift apart.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Tuple

__all__ = ["EnvVar", "DECLARED", "QUICK", "OUTPUT", "OFFLINE", "DATA", "REPO", "CHECKPOINTS", "DEVICE", "THREADS",
           "HEADLESS", "GRADING", "GRADING_RESULTS_FD", "GRADING_CWD", "GRADING_OUTPUT_WAIT", "GRADING_RUN",
           "INHERITED_BY_RUNS", "RESTORED_BY_GUARD"]


@dataclass(frozen=True)
class EnvVar:
    """One environment variable labkit reads."""

    name: str
    set_by: str
    read_by: str

    def get(self, default: Optional[str] = None) -> Optional[str]:
        return os.environ.get(self.name, default)

    def is_on(self) -> bool:
        """Whether it is set to a true value (1, true, yes)."""
        return (os.environ.get(self.name) or "").strip().lower() in ("1", "true", "yes")


QUICK = EnvVar("LABKIT_QUICK", "the user (0 or 1), labkit run, the grader and the tests (1)",
               "runtime.quick_mode: small data and few steps")
OUTPUT = EnvVar("LABKIT_OUTPUT", "labkit run, the tests", "paths.output_dir, runtime.setup: where figures go")
OFFLINE = EnvVar("LABKIT_OFFLINE", "the user, the grader and the tests (1)",
                 "datasets: no download; cached data or the shipped sample")
DATA = EnvVar("LABKIT_DATA", "the user, the grader (the folder it mounts)", "datasets, grading.sandbox: data folder")
REPO = EnvVar("LABKIT_REPO", "the user (a moved course repository)", "paths.repo_root")
CHECKPOINTS = EnvVar("LABKIT_CHECKPOINTS", "the user, the Gradescope container", "paths.checkpoints_dir")
DEVICE = EnvVar("LABKIT_DEVICE", "the user, the grader (cpu)", "runtime.get_device")
THREADS = EnvVar("LABKIT_THREADS", "the user", "runtime.setup: CPU threads of torch")
HEADLESS = EnvVar("LABKIT_HEADLESS", "labkit run, the tests", "student.selfcheck, labs.cgan_mnist: no widgets")
GRADING = EnvVar("LABKIT_GRADING", "the grader (1) in a graded run", "student.selfcheck: the self-check skips itself")
GRADING_RESULTS_FD = EnvVar("LABKIT_GRADING_RESULTS_FD", "grading.run", "grading.inside.plugin: the results pipe")
GRADING_CWD = EnvVar("LABKIT_GRADING_CWD", "grading.run", "grading.inside.plugin: the kernel's working folder")
GRADING_OUTPUT_WAIT = EnvVar("LABKIT_GRADING_OUTPUT_WAIT", "grading.run",
                             "grading.inside.plugin: nbval's wait for a cell's output")
GRADING_RUN = EnvVar("LABKIT_GRADING_RUN", "grading.run: a marker unique to one run",
                     "grading.run.kill_process_tree: finds the run's processes")
# Set and read by the tests only (conftest.py, tests/): declared so that the layout test knows them.
TEST_REQUIRE_SANDBOX = EnvVar("LABKIT_TEST_REQUIRE_SANDBOX", ".ci/run", "tests: a grading test fails, not skips")
TEST_FRESH_PROCESS = EnvVar("LABKIT_TEST_FRESH_PROCESS", "conftest.py", "conftest.py: the new interpreter")
TEST_GRADER_SECRET = EnvVar("LABKIT_TEST_GRADER_SECRET", "tests/grading/test_scenarios.py", "no graded run may see it")
TEST_CONTAMINATED = EnvVar("LABKIT_CONTAMINATED", "a hostile test submission", "tests: it must reach no other run")

DECLARED: Tuple[EnvVar, ...] = tuple(v for v in globals().values() if isinstance(v, EnvVar))
# What a sandboxed run inherits from the grader's environment (no other LABKIT_* variable, no token, no key).
INHERITED_BY_RUNS: Tuple[EnvVar, ...] = (REPO, CHECKPOINTS, OFFLINE)
# What the guard puts back before each check, should notebook code change it.
RESTORED_BY_GUARD: Tuple[EnvVar, ...] = (GRADING, QUICK, OFFLINE, DEVICE, DATA, REPO, CHECKPOINTS)
