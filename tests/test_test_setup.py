"""The test suite's own set-up (conftest.py): threads per parallel worker, and slow modules scheduled first."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_every_test_process_runs_quick_offline_and_writes_outside_the_repository():
    """What conftest.py sets for the tests and every kernel they start (once lost in an edit: the notebooks then
    ran in full mode, for hours)."""
    assert os.environ.get("LABKIT_QUICK") == "1" and os.environ.get("LABKIT_OFFLINE") == "1"
    output = Path(os.environ["LABKIT_OUTPUT"])
    assert output.is_dir() and REPO not in output.parents


def test_a_parallel_worker_and_its_kernels_get_their_share_of_the_cores():
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "0") or 0)
    if not workers:
        pytest.skip("runs in one process (-n 0): torch keeps its default threads")
    import torch

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    share = max(1, cores // workers)
    assert os.environ["OMP_NUM_THREADS"] == str(share), "kernels and subprocesses inherit the worker's share"
    assert torch.get_num_threads() == share


def test_modules_with_slow_tests_and_notebooks_are_collected_first_and_cells_keep_their_order():
    files = ["tests/test_layout.py", "notebooks/solutions/01_gan_1d.ipynb", "tests/grading/test_scenarios.py",
             "tests/test_train.py"]
    listed = subprocess.run([sys.executable, "-m", "pytest", "-n", "0", "--collect-only", "-q", *files],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0, listed.stdout[-2000:] + listed.stderr[-2000:]
    ids = [line for line in listed.stdout.splitlines() if "::" in line]
    order = list(dict.fromkeys(i.split("::")[0] for i in ids))
    # grading/test_scenarios.py is marked slow and every notebook cell is slow: both come first, in their collection order.
    assert order == ["notebooks/solutions/01_gan_1d.ipynb", "tests/grading/test_scenarios.py", "tests/test_layout.py",
                     "tests/test_train.py"], order
    cells = [int(i.rsplit("Cell ", 1)[1]) for i in ids if i.endswith(tuple("0123456789")) and ".ipynb::" in i]
    assert cells == sorted(cells) and len(cells) > 10, cells
