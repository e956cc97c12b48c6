"""Inside a sandbox: read handed-in model files as data and print what the grader needs, as one JSON line.

    python -m labkit.grading.inside.inspector MODELS OUT NAME [NAME ...]

Started by :mod:`~labkit.grading.inspection` in a bubblewrap sandbox of its own, under the run's
memory, CPU-time and file-size limits: ``MODELS`` is a read-only folder with the snapshot of the files the
checks grade, ``OUT`` its only writable folder. For each ``NAME`` it prints whether the file is a model
``saveModel`` wrote and the operators of its exported generator that draw random numbers, and writes the
model's features to ``OUT/features<i>.npz``: its canonical weights and its output signature, plain arrays.
It never sees the reference models: the grader compares the features with them. Whatever a file does to this
process stays in the sandbox; the grader believes only the small, validated answer
(:func:`~.inspection.parse_answer`) and arrays it reads without unpickling.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Dict, List

ANSWER_PREFIX = "LABKIT-INSPECTION "
MAX_FILE_BYTES = 512 * 2**20


def inspect_file(path: Path, features: Path) -> Dict:
    """What the grader needs to know of one model file (see :func:`~.inspection.parse_answer` for the fields);
    its features go to ``features`` (an ``.npz``) when it is a model ``saveModel`` wrote."""
    import numpy as np

    from ...checkpoint import CheckpointError, load_data_only, random_operators, read_checkpoint
    from ..fingerprints import canonical_weights, output_signature

    answer: Dict = {"file": path.name, "saved_model": False, "random_operators": [], "features": None,
                    "problem": None}
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            answer["problem"] = f"larger than {MAX_FILE_BYTES >> 20} MB"
            return answer
        payload = read_checkpoint(path)
        answer["saved_model"] = True
        if payload.get("exported"):
            answer["random_operators"] = random_operators(payload["exported"])[:8]
        try:
            signature = output_signature(load_data_only(path))
        except Exception:  # a discriminator of the student's own class: its weights can still match
            signature = None
        arrays = {f"w:{name}": values for name, values in canonical_weights(payload["state_dict"]).items()}
        if signature is not None:
            arrays["signature"] = signature
        np.savez(features, **arrays)
        answer["features"] = features.name
    except CheckpointError as exc:
        answer["problem"] = str(exc).replace(str(path), path.name)[:300]
    except Exception as exc:  # noqa: BLE001 - whatever the file does, the answer says so
        answer["problem"] = f"could not be read ({type(exc).__name__})"
    return answer


def main(argv: List[str]) -> int:
    models, out, names = Path(argv[0]), Path(argv[1]), argv[2:]
    answers = [inspect_file(models / name, out / f"features{i}.npz") for i, name in enumerate(names)]
    sys.stdout.write(ANSWER_PREFIX + json.dumps(answers) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
