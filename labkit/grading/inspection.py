"""The handed-in models the checks grade: a read-only snapshot taken before the run, inspected in a sandbox.

Before a submission runs, the files its check cells grade (``gan1d_final.pt`` ...: the names in the
instructor's check cells, whatever their suffix) are copied out of the submission into a snapshot folder:
regular files only, bounded in size. Then

* the snapshot is inspected by :mod:`~labkit.grading.inside.inspector`, started like a graded run (the
  same interpreter, sandbox, memory cgroup, and a CPU-time limit): nothing of a handed-in file is
  unpickled, imported or loaded by the grader itself; it reads back one bounded JSON line, which it
  believes only as far as :func:`parse_answer` validates it, and the features of each model as plain arrays
  (``numpy.load(allow_pickle=False)``), which it compares with the reference models itself;
* the graded run mounts the snapshot read-only (:data:`MODELS_DIR`) and the check cells read it there
  (:func:`snapshot_paths`): a notebook that copies a reference into place while it runs, or deletes its
  file after the checks, changes nothing that is graded.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .types import ReferenceMatch
from .inside.inspector import ANSWER_PREFIX, MAX_FILE_BYTES
from .run import HELPER_WRITABLE, run_helper, seen_at
from .types import Killed, Limits
from .sandbox import SUBMISSION_DIR

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


MAX_FEATURE_BYTES = 2 * MAX_FILE_BYTES   # canonical weights are float64: twice a float32 file


def parse_answer(output: str, names: Sequence[str]) -> List[Dict]:
    """The inspector's answer, validated: one item per file, in order, with bounded texts (ValueError otherwise).

    Each item: ``file``, ``saved_model`` (bool), ``random_operators`` (texts), ``features`` (the file name of its
    features in the inspector's folder, or None), ``problem`` (text or None).
    """
    lines = [line for line in output.splitlines() if line.startswith(ANSWER_PREFIX)]
    if len(lines) != 1:
        raise ValueError("no answer")
    items = json.loads(lines[0][len(ANSWER_PREFIX):])
    if not isinstance(items, list) or len(items) != len(names):
        raise ValueError("not one answer per file")
    parsed = []
    for i, (name, item) in enumerate(zip(names, items)):
        if not isinstance(item, dict) or item.get("file") != Path(name).name:
            raise ValueError("an answer for another file")
        operators = item.get("random_operators") or []
        if not isinstance(operators, list) or len(operators) > 8:
            raise ValueError("bad operators")
        features = item.get("features")
        if features not in (None, f"features{i}.npz"):
            raise ValueError("features under another name")
        parsed.append({"file": name, "saved_model": item.get("saved_model") is True,
                       "random_operators": tuple(_text(op, 80) for op in operators), "features": features,
                       "problem": _text(item.get("problem"))})
    return parsed


def read_features(path: Path):
    """(canonical weights, output signature) from an inspector's ``.npz``: plain float arrays, nothing unpickled."""
    import numpy as np

    if path.stat().st_size > MAX_FEATURE_BYTES:
        raise ValueError("features too large")
    weights, signature = {}, None
    with np.load(path, allow_pickle=False) as arrays:
        for key in arrays.files:
            values = arrays[key]
            if values.dtype.kind != "f":
                raise ValueError("features that are not numbers")
            if key == "signature":
                signature = values
            elif key.startswith("w:"):
                weights[key[2:]] = values if values.ndim <= 2 else values.ravel()   # the first layer: (slices, rest)
    return weights, signature


def inspect_models(snapshot: Path, names: Sequence[str], index, limits: Limits, sandbox,
                   folder: Path) -> Dict[str, ModelReport]:
    """Inspect the snapshot's files ``names`` in a sandboxed helper and compare their features with ``index``
    (the run's :class:`~labkit.grading.fingerprints.ReferenceIndex`); file -> report.

    A helper that breaks a limit, or answers anything but the expected JSON, gives each file a report with
    that problem and no match.
    """
    if not names:
        return {}
    out = Path(folder) / HELPER_WRITABLE   # the helper's only writable folder
    argv = ["-m", "labkit.grading.inside.inspector", seen_at(sandbox, Path(snapshot), MODELS_DIR),
            seen_at(sandbox, out, SUBMISSION_DIR), *names]
    done = run_helper(argv, [(Path(snapshot), MODELS_DIR)], Path(folder), limits, sandbox,
                      timeout=INSPECTION_SECONDS, cpu_seconds=INSPECTION_SECONDS)
    if done.killed is not None:
        why = ("it used more memory than the limit" if done.killed is Killed.MEMORY
               else f"it took longer than {INSPECTION_SECONDS} s")
        return {n: ModelReport(n, problem=f"reading this file was stopped: {why}") for n in names}
    try:
        items = parse_answer(done.output, names)
    except (ValueError, TypeError, AttributeError):
        return {n: ModelReport(n, problem="this file could not be inspected (the reader stopped without an answer)")
                for n in names}
    reports = {}
    for item in items:
        match, problem = None, item["problem"]
        if item["features"] is not None:
            try:
                weights, signature = read_features(out / item["features"])
                match = index.match_features(item["file"], weights, signature)
            except (OSError, ValueError):
                problem = "its features could not be read back"
        reports[item["file"]] = ModelReport(item["file"], item["saved_model"], item["random_operators"], match,
                                            problem)
    return reports
