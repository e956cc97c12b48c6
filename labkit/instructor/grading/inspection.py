"""The handed-in models the checks grade: a read-only snapshot taken before the run, inspected in a sandbox.

Before a submission runs, the files its check cells grade (``gan1d_final.pt`` ...: the names in the
instructor's check cells, whatever their suffix) are copied out of the submission into a snapshot folder:
regular files only, bounded in size. Then

* the snapshot is inspected by :mod:`~labkit.instructor.grading.inspector`, started like a graded run (the
  same interpreter, sandbox, memory cgroup, and a CPU-time limit): nothing of a handed-in file is
  unpickled, imported or loaded by the grader itself; it reads back one bounded JSON line and believes
  only what :func:`parse_answer` validates;
* the graded run mounts the snapshot read-only (:data:`MODELS_DIR`) and the check cells read it there
  (:func:`snapshot_paths`): a notebook that copies a reference into place while it runs, or deletes its
  file after the checks, changes nothing that is graded.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from ..reference_models import HOWS, ReferenceMatch
from .inspector import ANSWER_PREFIX, MAX_FILE_BYTES
from .run import Killed, Limits, run_helper, seen_at

__all__ = ["ModelReport", "MODELS_DIR", "snapshot_models", "inspect_models", "parse_answer", "snapshot_paths",
           "INSPECTION_SECONDS"]

MODELS_DIR = "/grading/models"   # the snapshot, read-only, inside a graded run's sandbox
INSPECTION_SECONDS = 120         # wall-clock limit of one inspection (its CPU-time limit is the same)
MAX_PROBLEM = 300


@dataclass(frozen=True)
class ModelReport:
    """What the inspection found in one handed-in file the checks grade."""

    file: str
    saved_model: bool = False
    random_operators: Tuple[str, ...] = ()
    match: Optional[ReferenceMatch] = None
    problem: Optional[str] = None

    def flags(self) -> List[str]:
        found = []
        if self.random_operators:
            found.append(f"{self.file}: the exported generator draws random numbers of its own "
                         f"({', '.join(self.random_operators[:4])}); the quality checks refuse it")
        return found


def snapshot_models(workdir: Path, names: Sequence[str], dest: Path, notes: List[str]) -> List[str]:
    """Copy the graded files ``names`` found in ``workdir`` (regular files, no links) to ``dest``; the names copied."""
    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for name in names:
        source = Path(workdir) / name
        try:
            info = os.lstat(source)
        except OSError:
            continue  # not handed in: the check says it is missing
        if not stat.S_ISREG(info.st_mode):
            notes.append(f"{name} is not a regular file (a link or a folder): the checks do not read it")
            continue
        if info.st_size > MAX_FILE_BYTES:
            notes.append(f"{name} is larger than {MAX_FILE_BYTES >> 20} MB: the checks do not read it")
            continue
        shutil.copyfile(source, dest / name, follow_symlinks=False)
        os.chmod(dest / name, 0o444)
        copied.append(name)
    return copied


def snapshot_paths(source: str, names: Sequence[str], models_dir: str) -> str:
    """A check cell's source with each quoted graded file name pointing into the snapshot."""
    for name in names:
        for quote in ('"', "'"):
            source = source.replace(f"{quote}{name}{quote}", f"{quote}{models_dir}/{name}{quote}")
    return source


def _text(value, limit: int = MAX_PROBLEM) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("not text")
    return "".join(ch if ch.isprintable() else " " for ch in value)[:limit]


def parse_answer(output: str, names: Sequence[str], labels: Sequence[str]) -> Dict[str, ModelReport]:
    """The inspector's answer, validated: known files, known references, bounded texts (ValueError otherwise)."""
    lines = [line for line in output.splitlines() if line.startswith(ANSWER_PREFIX)]
    if len(lines) != 1:
        raise ValueError("no answer")
    items = json.loads(lines[0][len(ANSWER_PREFIX):])
    if not isinstance(items, list) or len(items) != len(names):
        raise ValueError("not one answer per file")
    reports = {}
    for name, item in zip(names, items):
        if not isinstance(item, dict) or item.get("file") != Path(name).name:
            raise ValueError("an answer for another file")
        operators = item.get("random_operators") or []
        if not isinstance(operators, list) or len(operators) > 8:
            raise ValueError("bad operators")
        match = None
        raw = item.get("match")
        if raw is not None:
            distance = float(raw.get("distance", 0.0))
            if raw.get("reference") not in labels or raw.get("how") not in HOWS or not math.isfinite(distance):
                raise ValueError("an unknown reference")
            match = ReferenceMatch(name, raw["reference"], raw["how"], distance)
        reports[name] = ModelReport(file=name, saved_model=bool(item.get("saved_model") is True),
                                    random_operators=tuple(_text(op, 80) for op in operators),
                                    match=match, problem=_text(item.get("problem")))
    return reports


REFERENCES_DIR = "/grading/references"   # the reference pack, read-only, inside an inspection's sandbox


def inspect_models(snapshot: Path, names: Sequence[str], index, references: Path, limits: Limits, sandbox,
                   folder: Path) -> Dict[str, ModelReport]:
    """Inspect the snapshot's files ``names`` in a sandboxed helper; file -> report.

    ``index``: the run's :class:`~labkit.instructor.reference_models.ReferenceIndex`, written to the folder
    ``references``. A helper that breaks a limit, or answers anything but the expected JSON, gives each file a
    report with that problem and no match.
    """
    if not names:
        return {}
    readonly = [(Path(snapshot), MODELS_DIR), (Path(references), REFERENCES_DIR)]
    argv = ["-m", "labkit.instructor.grading.inspector", seen_at(sandbox, Path(snapshot), MODELS_DIR),
            seen_at(sandbox, Path(references), REFERENCES_DIR), *names]
    done = run_helper(argv, readonly, Path(folder), limits, sandbox, timeout=INSPECTION_SECONDS,
                      cpu_seconds=INSPECTION_SECONDS)
    if done.killed is not None:
        why = ("it used more memory than the limit" if done.killed is Killed.MEMORY
               else f"it took longer than {INSPECTION_SECONDS} s")
        return {n: ModelReport(n, problem=f"reading this file was stopped: {why}") for n in names}
    try:
        return parse_answer(done.output, names, index.labels)
    except (ValueError, TypeError, AttributeError):
        return {n: ModelReport(n, problem="this file could not be inspected (the reader stopped without an answer)")
                for n in names}
