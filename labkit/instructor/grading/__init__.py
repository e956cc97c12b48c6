"""``labkit grade``: grade a folder of submissions with nbval, fairly and robustly.

::

    labkit grade --assignment 01_gan_1d --out grades/01 submissions/*

A submission is a notebook (``.ipynb``), or a folder or zip holding the notebook with its
saved models and READ_ME.txt. Each one runs in its own bubblewrap sandbox, on a private copy,
in quick mode, with the instructor's check cells put back, under time, memory and process
limits; see docs/grading.md for what is written, how grading works and what a submission can
and cannot do. One module per stage:

* :mod:`~labkit.instructor.grading.assignment`: what the instructor's notebook says (checks, points, protected cells);
* :mod:`~labkit.instructor.grading.intake`: copy or unzip a submission safely, find and validate its notebook;
* :mod:`~labkit.instructor.grading.restore`: put the instructor's check and standard cells back;
* :mod:`~labkit.instructor.grading.scan`: flag student code that tampers with the checks, and saved models
  that draw their own noise;
* :mod:`~labkit.instructor.grading.references`: handed-in models that are reference checkpoints (flagged, their
  checks get no points unless ``--allow-reference-models``);
* :mod:`~labkit.instructor.grading.build`: the notebook that runs (init, guard and check cells);
* :mod:`~labkit.instructor.grading.prepare`: the stages above on one submission;
* :mod:`~labkit.instructor.grading.sandbox`: the bwrap sandbox each run executes in;
* :mod:`~labkit.instructor.grading.run`: run it with nbval, in its sandbox, under time, memory and process limits;
* :mod:`~labkit.instructor.grading.score`: per-cell results to points, status and reason;
* :mod:`~labkit.instructor.grading.report`: grades.csv, feedback pages, summary;
* :mod:`~labkit.instructor.grading.batch`: the command: options, the pool of runs;
* :mod:`~labkit.instructor.grading.plugin`: the pytest plugin inside each run (nbval work-arounds);
* :mod:`~labkit.instructor.grading.guard`: the init and guard cells inside each kernel;
* :mod:`~labkit.instructor.grading.moduledata`: the data of labkit's modules, recorded and put back by the guard;
* :mod:`~labkit.instructor.grading.cells`: cell helpers the stages share.
"""
from __future__ import annotations

__all__ = ["add_arguments", "main"]


def __getattr__(name: str):
    # The command's entry points are imported on first use: the graded kernel imports ``.guard`` and
    # pytest imports ``.plugin`` from this package, and neither should pull in the whole grader.
    if name in __all__:
        from . import batch

        return getattr(batch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
