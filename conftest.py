"""Test-wide settings: quick mode, offline data, outputs in a temporary folder.

Set before any kernel starts, so notebooks executed by nbval inherit them.
"""
import os
import tempfile

os.environ.setdefault("LABKIT_QUICK", "1")
os.environ.setdefault("LABKIT_OFFLINE", "1")
os.environ.setdefault("LABKIT_OUTPUT", tempfile.mkdtemp(prefix="labkit-test-output-"))
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("LABKIT_HEADLESS", "pytest")  # the notebooks' self-check cell skips itself under nbval

# Student notebooks (notebooks/*.ipynb) stop at their TODOs by design: only the solutions are tests.
collect_ignore_glob = ["tests/fixtures/*", "scratch/*", "build/*"]
