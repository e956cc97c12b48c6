"""The grading engine that ``labkit grade``, ``labkit check``, the notebooks' self-check cell, the Gradescope
autograder and cluster tasks all call: one submission in, one :class:`~labkit.grading.score.Grade` out.

::

    labkit grade --assignment 01_gan_1d --out grades/01 -- submissions/*

A submission is a notebook (``.ipynb``), or a folder or zip holding the notebook with its saved models and
READ_ME.txt. Each one runs in its own bubblewrap sandbox, on a private copy, in quick mode, with the
instructor's check cells put back, under time, memory and process limits (docs/grading.md). The stages, in
the order a submission passes them (docs/architecture.md draws them):

* :mod:`.assignment` (what the instructor's notebook says), :mod:`.intake` (copy or unzip safely, find the
  notebook), :mod:`.restore` (the instructor's cells back), :mod:`.scan` (tampering in student code);
* :mod:`.inspection` (the graded model files: a read-only snapshot, read by :mod:`.inside.inspector` in a
  sandbox) with :mod:`.fingerprints` and :mod:`.references` (reference models get no credit);
* :mod:`.build` and :mod:`.prepare` (the notebook that runs), :mod:`.preflight` (can a run start here at all);
* :mod:`.sandbox`, :mod:`.unprivileged`, :mod:`.cgroup`, :mod:`.run` (isolation, limits, the run itself);
* :mod:`.score` (points, status, reason), :mod:`.report` (grades.csv, feedback, summary), :mod:`.hostfs`
  (clean-up that cannot raise);
* the commands: :mod:`.batch` (``labkit grade``), :mod:`.cluster` (plans, tasks, collect), :mod:`.gradescope`
  (the autograder zip and its container run);
* :mod:`.inside`: what runs inside a graded run, not in the grader (pytest plugin, guard, model inspector).
"""
from __future__ import annotations

__all__ = ["add_arguments", "main"]


def __getattr__(name: str):
    # The command's entry points are imported on first use: the graded kernel imports ``.inside.guard`` and
    # pytest imports ``.inside.plugin`` from this package, and neither should pull in the whole grader.
    if name == "main":
        from .command import main

        return main
    if name == "add_arguments":
        from .options import add_arguments

        return add_arguments
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
