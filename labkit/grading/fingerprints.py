"""Spot a handed-in model that is, or comes from, a shipped or reference checkpoint (no quality points for it).

    index = ReferenceIndex.build()                        # the grader's own, trusted reference files
    index.match_features(name, weights, signature)        # the features a sandboxed inspector computed

Weights are compared in a canonical form: the first layer's input slices (the latent noise's columns of a
``Linear``, its channels of a ``ConvTranspose2d``) are each given one sign and then sorted, so a reference
whose latent inputs were permuted or negated (``G(-z)``, the same distribution) has the same fingerprint.
Three ways to match, in order:

* ``same weights``: the canonical weights are identical (a copy, a re-save, permuted or negated inputs);
* ``derived``: same layers and shapes, and the canonical weights lie within :data:`DERIVED_DISTANCE` of the
  reference's (relative L2 distance; a short fine-tune of a reference);
* ``same outputs on fixed noise``: a generator whose samples on the same noise are those of a reference.

A handed-in file is only ever read inside the grader's sandbox (:mod:`labkit.grading.inspection`).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Optional

import numpy as np
from .types import ReferenceMatch

__all__ = ["ReferenceIndex", "canonical_weights", "weights_digest", "relative_distance",
           "output_signature", "reference_model_files", "MODEL_SUFFIXES", "DERIVED_DISTANCE", "HOWS"]

MODEL_SUFFIXES = (".pt", ".pth")
SIGNATURE_SAMPLES = 512
SIGNATURE_SEED = 20240917  # any fixed seed; not one a notebook would use for its own samples
# Relative L2 distance of canonical weights under which a model counts as derived from a reference. Measured
# (docs/grading.md): lab 01's reference after 31 steps of fine-tuning moves about 0.01-0.05; two independent
# trainings from different seeds end 0.9-1.4 apart.
DERIVED_DISTANCE = 0.25
HOWS = ("same weights", "derived", "same outputs on fixed noise")


def _float_tensors(state_dict: Mapping) -> Dict[str, np.ndarray]:
    import torch

    out = {}
    for name in state_dict:
        value = state_dict[name]
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            out[name] = value.detach().to("cpu", torch.float64).contiguous().numpy()
    return out


def _canonical_slices(weight: np.ndarray, axis: int) -> np.ndarray:
    """``weight`` with its slices along ``axis`` each signed (largest entry positive) and sorted."""
    moved = np.moveaxis(weight, axis, 0).reshape(weight.shape[axis], -1)
    signs = np.sign(moved[np.arange(len(moved)), np.abs(moved).argmax(axis=1)])
    signs[signs == 0] = 1.0
    moved = moved * signs[:, None]
    order = np.lexsort(moved.T[::-1])   # by first entry, then second ...: a permutation-free order
    return moved[order]


def canonical_weights(state_dict: Mapping) -> Dict[str, np.ndarray]:
    """The floating-point tensors, flattened, with the first layer's input slices signed and sorted (that one as a
    ``(slices, rest)`` array).

    The first weight of two or more dimensions takes the latent input: a ``Linear`` weight ``(out, in)``
    along axis 1, a ``ConvTranspose2d`` weight ``(in, out, kh, kw)`` along axis 0.
    """
    tensors = _float_tensors(state_dict)
    first = next((name for name, t in tensors.items() if t.ndim >= 2), None)
    out = {}
    for name, tensor in tensors.items():
        if name == first:   # kept as (slices, rest): relative_distance aligns its slices
            axis = 1 if tensor.ndim == 2 else 0
            out[name] = _canonical_slices(tensor, axis)
        else:
            out[name] = tensor.ravel()
    return out


def weights_digest(canonical: Mapping[str, np.ndarray]) -> str:
    """SHA-256 of canonical weights (names, sizes, values as float32), blind to metadata and input order."""
    digest = hashlib.sha256()
    for name in sorted(canonical):
        values = np.asarray(canonical[name], dtype=np.float32)
        digest.update(f"{name}|{values.size}|".encode())
        digest.update(values.tobytes())
    return digest.hexdigest()


def _aligned_squared_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Sum of squared distances between the slices (rows) of ``a`` and ``b``, each row of ``a`` paired with one row of
    ``b`` and one sign, the pairing that minimises the sum.

    The canonical sort and sign are exact for a copy but not stable under small changes: two slices whose first
    entries are close swap places after a few steps of fine-tuning, and a slice whose two largest entries are close
    flips its sign; compared in sorted order, a short fine-tune of lab 04's generator looked as far from its
    reference as an independent model. Pairing the slices (an assignment problem, 110 × 110 at most here) measures
    the change itself.
    """
    from scipy.optimize import linear_sum_assignment

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    cost = (a ** 2).sum(axis=1)[:, None] + (b ** 2).sum(axis=1)[None, :] - 2 * np.abs(a @ b.T)
    rows, cols = linear_sum_assignment(cost)
    return float(max(0.0, cost[rows, cols].sum()))


def relative_distance(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray]) -> Optional[float]:
    """||a - b|| / ||b|| over all tensors, the first layer's slices paired as closely as they go (signs and order
    are the latent noise's, which carry no information); None when the two do not have the same names and shapes."""
    if set(a) != set(b) or any(np.shape(a[k]) != np.shape(b[k]) for k in a):
        return None
    diff = sum(_aligned_squared_distance(a[k], b[k]) if np.ndim(a[k]) == 2
               else float(np.sum((np.asarray(a[k]) - np.asarray(b[k])) ** 2)) for k in a)
    norm = sum(float(np.sum(np.asarray(b[k]) ** 2)) for k in b)
    return float(np.sqrt(diff / norm)) if norm > 0 else None


def output_signature(model, n: int = SIGNATURE_SAMPLES, seed: int = SIGNATURE_SEED) -> Optional[np.ndarray]:
    """A generator's samples on fixed noise, ``(n, d)``; None for a module that is not a generator."""
    import torch

    from ..sampling import generate

    try:
        with torch.no_grad():
            samples, _ = generate(model, n, seed=seed)
    except Exception:  # a discriminator, a classifier: only its weights can match
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
class _Reference:
    label: str
    digest: str
    weights: Dict[str, np.ndarray]
    signature: Optional[np.ndarray] = None


@dataclass
class ReferenceIndex:
    """The reference models' canonical weights and output signatures."""

    references: List[_Reference] = field(default_factory=list)
    tolerance: float = 0.01

    @classmethod
    def build(cls, references=None, tolerance: float = 0.01) -> "ReferenceIndex":
        """From the grader's own reference files (trusted: this loads them with labkit's loader)."""
        from ..checkpoint import CheckpointError, loadModel, read_checkpoint

        index, seen = cls(tolerance=tolerance), set()
        for path in (reference_model_files() if references is None else [Path(p) for p in references]):
            try:
                weights = canonical_weights(read_checkpoint(path)["state_dict"])
            except (CheckpointError, KeyError, TypeError):
                continue
            digest = weights_digest(weights)
            if digest in seen:
                continue  # a copy (notebooks/solutions/x.pt of checkpoints/y.pt): already indexed
            seen.add(digest)
            try:
                signature = output_signature(loadModel(path))
            except Exception:  # a discriminator or classifier without its class here: weights only
                signature = None
            index.references.append(_Reference(f"{path.parent.name}/{path.name}", digest, weights, signature))
        return index

    def write(self, folder) -> None:
        """Save the index (``index.json`` and one ``.npz`` per reference, no pickles): the autograder zip carries
        it in place of the reference models themselves."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        entries = []
        for i, ref in enumerate(self.references):
            arrays = {f"w:{name}": values for name, values in ref.weights.items()}
            if ref.signature is not None:
                arrays["signature"] = ref.signature
            np.savez(folder / f"ref{i}.npz", **arrays)
            entries.append({"label": ref.label, "digest": ref.digest, "file": f"ref{i}.npz"})
        (folder / "index.json").write_text(json.dumps({"tolerance": self.tolerance, "references": entries}),
                                           encoding="utf-8")

    @classmethod
    def read(cls, folder) -> "ReferenceIndex":
        folder = Path(folder)
        meta = json.loads((folder / "index.json").read_text(encoding="utf-8"))
        index = cls(tolerance=float(meta["tolerance"]))
        for entry in meta["references"]:
            with np.load(folder / entry["file"], allow_pickle=False) as arrays:
                weights = {k[2:]: arrays[k] for k in arrays.files if k.startswith("w:")}
                signature = arrays["signature"] if "signature" in arrays.files else None
            index.references.append(_Reference(entry["label"], entry["digest"], weights, signature))
        return index

    @property
    def labels(self) -> List[str]:
        return [ref.label for ref in self.references]

    def match(self, name: str, state_dict: Mapping, model=None) -> Optional[ReferenceMatch]:
        """How the model with these weights (and, if given, rebuilt as ``model``) is a reference, or None."""
        signature = output_signature(model) if model is not None else None
        return self.match_features(name, canonical_weights(state_dict), signature)

    def match_features(self, name: str, weights: Mapping[str, np.ndarray],
                       signature: Optional[np.ndarray]) -> Optional[ReferenceMatch]:
        """How a model with these canonical weights and output signature is a reference, or None (the grader's
        side of the sandboxed inspection: plain arrays in, nothing loaded)."""
        digest = weights_digest(weights)
        for ref in self.references:
            if digest == ref.digest:
                return ReferenceMatch(name, ref.label, "same weights")
        for ref in self.references:
            distance = relative_distance(weights, ref.weights)
            if distance is not None and distance <= DERIVED_DISTANCE:
                return ReferenceMatch(name, ref.label, "derived", round(distance, 4))
        for ref in self.references:
            if signature is not None and ref.signature is not None and _same_outputs(signature, ref.signature,
                                                                                     self.tolerance):
                return ReferenceMatch(name, ref.label, "same outputs on fixed noise")
        return None
