"""Save a model with everything needed to rebuild it, and load it back.

``saveModel(model, path, epoch=..., losses=..., seed=...)`` writes one file with

* the weights (``state_dict``);
* the class and the constructor arguments (recorded automatically for
  subclasses of :class:`Configurable`, or passed as ``init_args=``);
* training metadata (anything JSON-like you pass, plus the labkit version);
* for generators (modules with a ``latent_dim`` attribute), a standalone
  ``torch.export`` copy, so ``labkit sample`` and grading can run the model
  without the notebook that defined its class.

``loadModel(path)`` rebuilds the model; ``loadModel(path, model=instance)``
loads the weights into an instance you built yourself and says exactly which
layers do not match when the architecture differs.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import io
import os
import sys
import warnings
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from torch import nn

__all__ = [
    "Configurable", "saveModel", "loadModel", "save_model", "load_model", "read_checkpoint",
    "CheckpointError", "ArchitectureMismatchError", "generator_inputs",
]

FORMAT = "labkit.model"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or cannot be turned back into a model."""


class ArchitectureMismatchError(CheckpointError):
    """The saved weights do not fit the model they are being loaded into."""


class Configurable(nn.Module):
    """Base class that remembers its constructor arguments in ``self.init_args``.

    Subclass it instead of ``nn.Module`` and ``saveModel`` can rebuild your model
    from the file alone::

        class Generator(Configurable):
            def __init__(self, latent_dim=5, hidden=15): ...
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" not in cls.__dict__:
            return
        original = cls.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def recording_init(self, *args, **kw):
            original(self, *args, **kw)
            bound = signature.bind(self, *args, **kw)
            bound.apply_defaults()
            # The outermost constructor finishes last, so the concrete class's arguments win.
            object.__setattr__(self, "init_args", {"args": list(bound.args[1:]), "kwargs": dict(bound.kwargs)})

        cls.__init__ = recording_init


def _plain(value, where: str):
    """Convert metadata to types ``torch.load(weights_only=True)`` accepts; fail clearly otherwise."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v, where) for k, v in value.items()}
    if hasattr(value, "tolist"):  # numpy arrays and scalars, tensors
        return _plain(value.tolist(), where)
    raise TypeError(
        f"{where} holds a {type(value).__name__}, which cannot be stored. Use numbers, strings, "
        f"lists or dicts (for example pass activation='relu' rather than nn.ReLU)."
    )


def generator_inputs(model: nn.Module, batch: int = 2):
    """Example inputs for a generator: ``z`` of shape (batch, *latent_shape) and, if conditional, labels."""
    latent_shape = tuple(getattr(model, "latent_shape", None) or (model.latent_dim,))
    z = torch.randn(batch, *latent_shape)
    n_classes = getattr(model, "n_classes", None)
    if n_classes:
        return (z, torch.arange(batch) % int(n_classes))
    return (z,)


def _export_generator(model: nn.Module) -> Optional[bytes]:
    if not hasattr(model, "latent_dim"):
        return None
    was_training = model.training
    try:
        model = model.eval()
        example = tuple(t.to(next(model.parameters()).device) for t in generator_inputs(model, batch=4))
        batch = torch.export.Dim("batch", min=1)
        dynamic = tuple({0: batch} for _ in example)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = torch.export.export(model, example, dynamic_shapes=dynamic)
        buffer = io.BytesIO()
        torch.export.save(exported, buffer)
        return buffer.getvalue()
    except Exception as exc:  # export is a convenience: the weights are still saved
        warnings.warn(
            f"Could not store a standalone copy of {type(model).__name__} ({type(exc).__name__}: {exc}). "
            "The weights are saved; loading will need the class definition."
        )
        return None
    finally:
        model.train(was_training)


def saveModel(model: nn.Module, path, *, init_args: Optional[Dict[str, Any]] = None, **metadata) -> Path:
    """Save ``model`` to ``path`` with its constructor arguments and ``metadata`` (epoch, losses, seed, ...).

    Returns the path written. The file is written to a temporary name first, so an
    interrupted save never destroys an earlier good checkpoint.
    """
    from . import __version__

    if not isinstance(model, nn.Module):
        raise TypeError(f"saveModel expects a torch nn.Module, got {type(model).__name__}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recorded = init_args if init_args is not None else getattr(model, "init_args", None)
    if recorded is not None and not ("args" in recorded and "kwargs" in recorded and len(recorded) == 2):
        recorded = {"args": [], "kwargs": dict(recorded)}
    cls = type(model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "init_args": _plain(recorded, "The constructor arguments"),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": _plain({**metadata, "labkit_version": __version__}, "The metadata"),
        "generator": {
            "latent_shape": list(generator_inputs(model, 1)[0].shape[1:]),
            "n_classes": int(getattr(model, "n_classes", 0) or 0),
        } if hasattr(model, "latent_dim") else None,
        "exported": _export_generator(model),
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path) -> Dict[str, Any]:
    """The raw dictionary stored by ``saveModel`` (weights, class, arguments, metadata)."""
    path = Path(path)
    if not path.exists():
        hint = ""
        if path.parent.exists():
            found = sorted(p.name for p in path.parent.glob("*.pt"))[:10]
            hint = f" Files there: {', '.join(found) or 'none'}."
        raise CheckpointError(f"No checkpoint at {path}.{hint} Check the file name and folder, or train and save it with saveModel first.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__}: {exc}).") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by labkit.saveModel; load it with torch.load instead.")
    return payload


def _find_class(spec: str):
    module_name, _, qualname = spec.partition(":")
    try:
        obj = sys.modules["__main__"] if module_name == "__main__" else importlib.import_module(module_name)
        for part in qualname.split("."):
            obj = getattr(obj, part)
        return obj
    except (ImportError, AttributeError):
        return None


def _load_weights(model: nn.Module, state_dict, source) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    wrong = [f"{k}: saved {tuple(state_dict[k].shape)}, model {tuple(own[k].shape)}"
             for k in sorted(set(own) & set(state_dict)) if own[k].shape != state_dict[k].shape]
    if missing or unexpected or wrong:
        lines = [f"The weights in {source} do not fit this {type(model).__name__}."]
        if wrong:
            lines.append("Different shapes: " + "; ".join(wrong[:8]))
        if missing:
            lines.append("In the model but not in the file: " + ", ".join(missing[:8]))
        if unexpected:
            lines.append("In the file but not in the model: " + ", ".join(unexpected[:8]))
        lines.append("Build the model with the same constructor arguments as when it was saved.")
        raise ArchitectureMismatchError("\n".join(lines))
    model.load_state_dict(state_dict)


class ExportedGenerator(nn.Module):
    """A generator rebuilt from its standalone ``torch.export`` copy (no class definition needed)."""

    def __init__(self, program_bytes: bytes, latent_shape, n_classes: int):
        super().__init__()
        self._program = torch.export.load(io.BytesIO(program_bytes)).module()
        self.latent_shape = tuple(latent_shape)
        self.latent_dim = int(self.latent_shape[0])
        self.n_classes = n_classes or None

    def train(self, mode: bool = True):
        # An exported program is fixed in the mode it was exported in (eval); only record the flag.
        self.training = mode
        return self

    def forward(self, *inputs):
        return self._program(*inputs)


def loadModel(path, model: Optional[nn.Module] = None, map_location="cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` (or load its weights into ``model``).

    The returned module is in eval mode and has ``.checkpoint_metadata``.
    """
    payload = read_checkpoint(path)
    if model is None:
        cls = _find_class(payload["class"])
        init = payload.get("init_args")
        if cls is not None and init is not None:
            model = cls(*init["args"], **init["kwargs"])
        elif payload.get("exported"):
            gen = payload["generator"]
            model = ExportedGenerator(payload["exported"], gen["latent_shape"], gen["n_classes"])
            model.checkpoint_metadata = payload["metadata"]
            return model.to(map_location).eval()
        elif cls is None:
            raise CheckpointError(
                f"{path} holds a {payload['class']} whose class is not defined here. Run the cell that "
                f"defines it first, or pass an instance: loadModel(path, model=MyModel(...))."
            )
        else:
            raise CheckpointError(
                f"{path} does not record the constructor arguments of {payload['class']}. Pass an "
                f"instance: loadModel(path, model=MyModel(...)), or subclass labkit.Configurable."
            )
    _load_weights(model, payload["state_dict"], path)
    model.checkpoint_metadata = payload["metadata"]
    return model.to(map_location).eval()


save_model = saveModel
load_model = loadModel
