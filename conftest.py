"""Test-wide settings: quick mode, offline data, outputs in a temporary folder, threads per parallel worker.

Set before any kernel starts, so notebooks executed by nbval inherit them. The tests run in parallel workers
(pytest-xdist, ``-n auto`` in pyproject.toml; ``-n 0`` runs them in one process).
"""
import os
import subprocess
import sys
import tempfile

import pytest

os.environ.setdefault("LABKIT_QUICK", "1")
os.environ.setdefault("LABKIT_OFFLINE", "1")
os.environ.setdefault("LABKIT_OUTPUT", tempfile.mkdtemp(prefix="labkit-test-output-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LABKIT_HEADLESS", "pytest")  # the notebooks' self-check cell skips itself under nbval

# Student notebooks (notebooks/*.ipynb) stop at their TODOs by design: only the solutions are tests.
collect_ignore_glob = ["tests/fixtures/*", "scratch/*", "build/*"]

# Most of the suite's time is kernels and graded runs that train small models. Two workers on two cores with
# torch's default of one thread per core would each run two threads on a shared core, which is several times
# slower than one thread each (docs/benchmarks.md); so each worker, and every kernel and process it starts,
# gets its share of the cores. Set before torch is imported anywhere in the worker.
MAX_WORKERS = 4   # the longest module (test_grading_gan1d, 4 minutes) is a fifth of the serial time: more would idle


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    return max(1, min(MAX_WORKERS, _cores()))


_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
if _workers:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, _cores() // _workers)))


def pytest_itemcollected(item):
    """Every notebook cell is ``slow`` (before ``-m`` selects: ``-m "not slow"`` leaves the notebooks out)."""
    if item.path.suffix == ".ipynb":
        item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Put the modules and notebooks that hold slow tests first.

    With ``--dist loadscope --no-loadscope-reorder`` the workers take whole modules in this order: the
    minutes-long ones (grading, whole notebooks) start at once and the many quick modules fill the gaps at the
    end, instead of one grading module starting last on its own. The sort is stable, so the order within a
    module (a notebook's cells) is kept.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


FRESH_PROCESS_ENV = "LABKIT_TEST_FRESH_PROCESS"   # set in the new interpreter, which then runs the tests itself
_fresh_outcomes = {}   # node id -> (outcome, text) of the tests already run in a new interpreter


def _run_fresh(items) -> None:
    """Run ``items`` (one module's ``fresh_process`` tests) in one new interpreter; note each one's outcome."""
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory() as folder:
        report = os.path.join(folder, "report.xml")
        run = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "-q", "-p", "no:cacheprovider",
                              f"--junitxml={report}", *[item.nodeid for item in items]],
                             cwd=items[0].config.rootpath, capture_output=True, text=True,
                             env={**os.environ, FRESH_PROCESS_ENV: "1"})
        cases = ET.parse(report).getroot().iter("testcase") if os.path.exists(report) else []
        outcomes = {}
        for case in cases:   # a testcase holds a <failure>, <error> or <skipped> child, or none for a pass
            verdicts = [(child.tag, child.text or child.get("message", "")) for child in case
                        if child.tag in ("failure", "error", "skipped")]
            outcomes[case.get("name")] = verdicts[0] if verdicts else ("passed", "")
    for item in items:
        _fresh_outcomes[item.nodeid] = outcomes.get(item.name, (
            "error", f"did not run (exit code {run.returncode}):\n{run.stdout[-4000:]}\n{run.stderr[-2000:]}"))


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """A test marked ``fresh_process`` runs in a new interpreter, and passes or fails with it.

    A worker runs many modules in one process, and some leave torch changed for good: after ``torch.export``
    (``saveModel``) and a backward pass, a forked child may not train (``labkit.background``), so work that
    must train in a second process would run in place instead. The test then sees the process a student's kernel
    is at the start of a lab. A module's marked tests share one interpreter (its start costs seconds).
    """
    if pyfuncitem.get_closest_marker("fresh_process") is None or os.environ.get(FRESH_PROCESS_ENV):
        return None
    if pyfuncitem.nodeid not in _fresh_outcomes:
        _run_fresh([item for item in pyfuncitem.session.items if item.path == pyfuncitem.path
                    and item.get_closest_marker("fresh_process") is not None
                    and item.nodeid not in _fresh_outcomes])
    outcome, text = _fresh_outcomes.pop(pyfuncitem.nodeid)
    if outcome == "skipped":
        pytest.skip(f"in a fresh interpreter: {text}")
    if outcome != "passed":
        pytest.fail(f"{outcome} in a fresh interpreter:\n{text}", pytrace=False)
    return True
