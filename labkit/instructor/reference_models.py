"""Spot a handed-in model that is a shipped or reference checkpoint: the same weights, or the same outputs on fixed
noise (for the grader's flags: such a model earns no quality points).

    index = ReferenceIndex.build()                      # once per grading run: checkpoints/ and the solutions' models
    for match in index.find(submission_folder):         # every .pt file handed in
        flags.append(match.flag())                      # "gan1d_final.pt is the reference model ..."

Copying ``checkpoints/gan1d_laplace.pt`` to ``gan1d_final.pt`` is caught by its weights (whatever the file's
metadata says); a reference whose weights were nudged to change their hash by its outputs: the same noise
through both generators gives the same samples to within ``tolerance`` of their spread. Files are read as
data only (:func:`labkit.checkpoint.read_checkpoint`, :func:`labkit.checkpoint.load_data_only`): nothing a
submission holds is executed.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

__all__ = ["ReferenceMatch", "ReferenceIndex", "weights_digest", "output_signature", "reference_model_files"]

MODEL_SUFFIXES = (".pt", ".pth")
SIGNATURE_SAMPLES = 512
SIGNATURE_SEED = 20240917  # any fixed seed; not one a notebook would use for its own samples


@dataclass(frozen=True)
class ReferenceMatch:
    """A handed-in file that is a reference model, and how it was recognised."""

    file: str
    reference: str
    how: str  # "same weights" or "same outputs on fixed noise"

    def flag(self) -> str:
        return (f"{self.file} is the reference model {self.reference} ({self.how}): a shipped or reference "
                "checkpoint handed in as the group's own model earns no quality points")


def weights_digest(path) -> Optional[str]:
    """SHA-256 of a saved model's weights (names, shapes, values), blind to its metadata; None if not a labkit model."""
    import torch

    from ..checkpoint import CheckpointError, read_checkpoint

    try:
        state = read_checkpoint(path)["state_dict"]
    except (CheckpointError, KeyError, TypeError):
        return None
    digest = hashlib.sha256()
    for name in sorted(state):
        value = state[name]
        if isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous()
            digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
            digest.update((tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy().tobytes())
    return digest.hexdigest()


def output_signature(path, n: int = SIGNATURE_SAMPLES, seed: int = SIGNATURE_SEED) -> Optional[np.ndarray]:
    """A generator's samples on fixed noise, ``(n, d)``; None for a file that is not a generator labkit can rebuild."""
    import torch

    from ..checkpoint import load_data_only
    from ..sampling import generate

    try:
        with torch.no_grad():
            samples, _ = generate(load_data_only(path), n, seed=seed)
    except Exception:  # a discriminator, a classifier, a broken file: only its weights can match
        return None
    return np.asarray(samples, dtype=np.float64).reshape(n, -1)


def _same_outputs(a: np.ndarray, b: np.ndarray, tolerance: float) -> bool:
    if a.shape != b.shape or not np.isfinite(a).all():
        return False
    spread = float(b.std()) or 1.0
    return float(np.abs(a - b).mean()) / spread <= tolerance


def reference_model_files(repo: Optional[Path] = None) -> List[Path]:
    """The models a group must not hand in as its own: ``checkpoints/*.pt`` and ``notebooks/solutions/*.pt``."""
    from ..paths import repo_root

    repo = Path(repo or repo_root())
    return sorted(p for folder in (repo / "checkpoints", repo / "notebooks" / "solutions") if folder.is_dir()
                  for p in folder.iterdir() if p.suffix in MODEL_SUFFIXES and p.is_file())


@dataclass
class ReferenceIndex:
    """Weights digests and output signatures of the reference models, computed once per grading run."""

    digests: Dict[str, str] = field(default_factory=dict)             # weights digest -> reference name
    signatures: Dict[str, np.ndarray] = field(default_factory=dict)   # reference name -> output signature
    tolerance: float = 0.01

    @classmethod
    def build(cls, references=None, tolerance: float = 0.01) -> "ReferenceIndex":
        index = cls(tolerance=tolerance)
        for path in (reference_model_files() if references is None else [Path(p) for p in references]):
            label = f"{path.parent.name}/{path.name}"
            digest = weights_digest(path)
            if digest in index.digests:
                continue  # a copy (notebooks/solutions/x.pt of checkpoints/y.pt): already indexed under y
            if digest:
                index.digests[digest] = label
            signature = output_signature(path)
            if signature is not None:
                index.signatures[label] = signature
        return index

    def match(self, path) -> Optional[ReferenceMatch]:
        """How ``path`` is a reference model, or None."""
        path = Path(path)
        digest = weights_digest(path)
        if digest is None:
            return None
        if digest in self.digests:
            return ReferenceMatch(path.name, self.digests[digest], "same weights")
        signature = output_signature(path) if self.signatures else None
        for label, reference in self.signatures.items():
            if signature is not None and _same_outputs(signature, reference, self.tolerance):
                return ReferenceMatch(path.name, label, "same outputs on fixed noise")
        return None

    def find(self, folder, limit: Optional[int] = None) -> List[ReferenceMatch]:
        """Every model file in ``folder`` (and below, at most ``limit`` files) that is a reference model; each
        match names its file by its path relative to ``folder`` (``gan1d_final.pt``, ``models/g.pt``)."""
        folder = Path(folder)
        files = [p for p in sorted(folder.rglob("*"))
                 if p.suffix in MODEL_SUFFIXES and p.is_file() and not p.is_symlink()]
        found = []
        for path in files[:limit]:
            match = self.match(path)
            if match:
                found.append(ReferenceMatch(path.relative_to(folder).as_posix(), match.reference, match.how))
        return found
