"""Inside a sandbox: read handed-in model files as data and print what the grader needs, as one JSON line.

    python -m labkit.instructor.grading.inspector MODELS REFERENCES NAME [NAME ...]

Started by :mod:`~labkit.instructor.grading.inspection` in a bubblewrap sandbox of its own, under the run's
memory, CPU-time and file-size limits: ``MODELS`` is a read-only folder with the snapshot of the files the
checks grade, ``REFERENCES`` the reference pack (:meth:`ReferenceIndex.write`). For each ``NAME`` it prints
whether the file is a model ``saveModel`` wrote, the operators of its exported generator that draw random
numbers, and whether it is a reference model. Whatever a file does to this process stays in the sandbox; the
grader believes only the small, validated answer (:func:`~.inspection.parse_answer`).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

ANSWER_PREFIX = "LABKIT-INSPECTION "
MAX_FILE_BYTES = 512 * 2**20


def inspect_file(path: Path, index) -> Dict:
    """What the grader needs to know of one model file (see :func:`~.inspection.parse_answer` for the fields)."""
    from ...checkpoint import CheckpointError, load_data_only, random_operators, read_checkpoint

    answer: Dict = {"file": path.name, "saved_model": False, "random_operators": [], "match": None, "problem": None}
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            answer["problem"] = f"larger than {MAX_FILE_BYTES >> 20} MB"
            return answer
        payload = read_checkpoint(path)
        answer["saved_model"] = True
        if payload.get("exported"):
            answer["random_operators"] = random_operators(payload["exported"])[:8]
        try:
            model = load_data_only(path)
        except Exception:  # a discriminator of the student's own class: its weights can still match
            model = None
        match = index.match(path.name, payload["state_dict"], model)
        if match is not None:
            answer["match"] = {"reference": match.reference, "how": match.how, "distance": match.distance}
    except CheckpointError as exc:
        answer["problem"] = str(exc).replace(str(path), path.name)[:300]
    except Exception as exc:  # noqa: BLE001 - whatever the file does, the answer says so
        answer["problem"] = f"could not be read ({type(exc).__name__})"
    return answer


def main(argv: List[str]) -> int:
    from ..reference_models import ReferenceIndex

    models, references, names = Path(argv[0]), Path(argv[1]), argv[2:]
    index = ReferenceIndex.read(references)
    answers = [inspect_file(models / name, index) for name in names]
    sys.stdout.write(ANSWER_PREFIX + json.dumps(answers) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
