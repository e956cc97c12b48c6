"""Test-wide settings: quick mode, offline data, outputs in a temporary folder, threads per parallel worker.

Set before any kernel starts, so notebooks executed by nbval inherit them. The tests run in parallel workers
(pytest-xdist, ``-n auto`` in pyproject.toml; ``-n 0`` runs them in one process).
"""
import os
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
