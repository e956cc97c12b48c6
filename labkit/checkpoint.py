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

The checks read a handed-in model with :func:`load_data_only`, wherever they run (Jupyter or the
grader): the model is rebuilt from labkit's own classes or from the exported copy of a generator,
never by importing code named in the file; an exported graph that draws random numbers of its own,
or pickles anything but tensors, is refused.
"""
from __future__ import annotations

import functools
import importlib
import inspect
import io
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch
from torch import nn

from .checkpoint_format import FORMAT, FORMAT_VERSION, CheckpointError  # torch-free parts, for the CLI

__all__ = [
    "Configurable", "saveModel", "loadModel", "save_model", "load_model", "read_checkpoint",
    "CheckpointError", "ArchitectureMismatchError", "generator_inputs", "load_data_only", "exported_operators",
    "random_operators",
]


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
    from .version import __version__

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
    _check_tensors(payload.get("state_dict"), path)
    return payload


def _check_tensors(state_dict, path) -> None:
    """Refuse weights that view more elements than they store (a few KB posing as GBs once copied)."""
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{path} has no weights (state_dict) that labkit can read.")
    for name, tensor in state_dict.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        stored = tensor.untyped_storage().nbytes()
        if tensor.numel() and (tensor.numel() * tensor.element_size() > stored or
                               any(st == 0 and sz > 1 for st, sz in zip(tensor.stride(), tensor.shape))):
            raise CheckpointError(f"{path}: the weight {str(name)[:80]} views more elements than the file stores "
                                  "(a tensor saveModel never writes); the file is refused.")


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


MAX_EXPORT_MEMBERS = 4096
MAX_EXPORT_BYTES = 1 << 30      # uncompressed, all members together
MAX_GRAPH_JSON_BYTES = 64 << 20  # one graph's JSON: a generator's is tens of KB


def check_export_archive(program: bytes) -> None:
    """Refuse an exported program that ``torch.export.load`` could not read without unpickling arbitrary objects.

    ``torch.export.load`` falls back on ``torch.load(weights_only=False)`` for sample inputs and pickled weights,
    and on ``pickle.loads`` for opaque constants: a crafted file runs code there. A program ``saveModel`` wrote
    has none of them: its weights and constants are raw tensors and its sample inputs load with
    ``weights_only=True``. Sizes are bounded before anything is read.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(program)) as archive:
            members = archive.infolist()
            if len(members) > MAX_EXPORT_MEMBERS or sum(m.file_size for m in members) > MAX_EXPORT_BYTES:
                raise CheckpointError("the file's exported generator is too large to be one saveModel wrote")
            for member in members:
                name = member.filename
                if "/custom_obj" in name or "/opaque_obj" in name or name.endswith(("/data/constants/model.pt",)):
                    raise CheckpointError(f"the file's exported generator holds pickled objects ({name})")
                if name.endswith("_config.json"):
                    if member.file_size > MAX_GRAPH_JSON_BYTES:
                        raise CheckpointError(f"the file's exported generator's {name} is too large")
                    config = json.loads(archive.read(member))
                    entries = config.get("config", {}) if isinstance(config, dict) else {}
                    if any(isinstance(e, dict) and e.get("use_pickle") for e in entries.values()):
                        raise CheckpointError(f"the file's exported generator stores pickled tensors ({name})")
                elif "/sample_inputs/" in name:
                    torch.load(io.BytesIO(archive.read(member)), map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except Exception as exc:  # not a zip, a sample input that is not plain tensors, bad JSON
        raise CheckpointError(f"the file's exported generator is not one saveModel wrote ({type(exc).__name__})") from None


class ExportedGenerator(nn.Module):
    """A generator rebuilt from its standalone ``torch.export`` copy (no class definition needed).

    The archive is checked first (:func:`check_export_archive`): nothing in it is unpickled beyond plain tensors.
    """

    def __init__(self, program_bytes: bytes, latent_shape, n_classes: int):
        super().__init__()
        check_export_archive(program_bytes)
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


# --------------------------------------------------------------------------- loading as data (grading)

# Operators of an exported graph that draw random numbers (aten names, without the overload).
RANDOM_OPERATORS = frozenset({
    "rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "random", "random_",
    "normal", "normal_", "normal_functional", "bernoulli", "bernoulli_", "multinomial", "poisson", "binomial",
    "exponential", "exponential_", "cauchy", "cauchy_", "geometric", "geometric_", "log_normal", "log_normal_",
    "uniform", "uniform_", "_standard_gamma", "_sample_dirichlet", "rrelu", "rrelu_", "rrelu_with_noise",
    "rrelu_with_noise_", "dropout", "dropout_", "native_dropout", "feature_dropout", "feature_dropout_",
    "alpha_dropout", "alpha_dropout_", "feature_alpha_dropout", "feature_alpha_dropout_", "_fused_dropout",
    "seed", "manual_seed",
})
# Random only when their ``train``/``training`` argument is true (exported in eval mode it is false).
TRAINING_ONLY = frozenset({"dropout", "dropout_", "native_dropout", "feature_dropout", "feature_dropout_",
                           "alpha_dropout", "alpha_dropout_", "feature_alpha_dropout", "feature_alpha_dropout_",
                           "rrelu", "rrelu_", "rrelu_with_noise", "rrelu_with_noise_"})
STANDARD_NAMESPACES = ("torch.ops.aten.", "torch.ops.prims.", "torch.ops.higher_order.", "_operator.", "operator.")


def exported_operators(program: bytes) -> List[Dict[str, Any]]:
    """Every operator call of an exported program, nested graphs included, read from its JSON: nothing is loaded.

    Each item is ``{"target": "torch.ops.aten.linear.default", "inputs": [...]}``.
    """
    try:
        with zipfile.ZipFile(io.BytesIO(program)) as archive:
            infos = [i for i in archive.infolist() if i.filename.endswith(".json") and "/models/" in i.filename]
            if len(infos) > 64 or any(i.file_size > MAX_GRAPH_JSON_BYTES for i in infos):
                raise CheckpointError("the exported graph is too large to be a generator's")
            graphs = [json.loads(archive.read(i)) for i in infos]
    except (zipfile.BadZipFile, ValueError, KeyError, OSError) as exc:
        raise CheckpointError(f"the exported copy of the generator is not readable ({type(exc).__name__})") from None
    if not graphs:
        raise CheckpointError("the exported copy of the generator holds no graph")
    found, todo = [], list(graphs)
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if isinstance(item.get("target"), str) and isinstance(item.get("inputs"), list):
                found.append(item)
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
    return found


def _operator_name(target: str) -> str:
    parts = target.split(".")
    return parts[3] if target.startswith("torch.ops.") and len(parts) > 3 else parts[-1]


def _training_flag(node) -> bool:
    """Whether a dropout-like call's ``train``/``training`` argument may be true."""
    for arg in node["inputs"]:
        if isinstance(arg, dict) and arg.get("name") in ("train", "training"):
            value = arg.get("arg") or {}
            return not (isinstance(value, dict) and value.get("as_bool") is False)
    return True


def random_operators(program: bytes) -> List[str]:
    """The operators of an exported generator that draw random numbers or are not standard (empty: none)."""
    bad = []
    for node in exported_operators(program):
        target = node["target"]
        name = _operator_name(target)
        if not target.startswith(STANDARD_NAMESPACES):
            bad.append(f"{target} (not a standard operator)")
        elif name in RANDOM_OPERATORS and (name not in TRAINING_ONLY or _training_flag(node)):
            bad.append(target)
    return list(dict.fromkeys(bad))


def _labkit_class(spec: str):
    """The class named ``module:qualname`` if it is one of labkit's own model classes (else None); imports labkit only."""
    module_name, _, qualname = str(spec).partition(":")
    if not (module_name == "labkit" or module_name.startswith("labkit.")) or module_name.startswith(
            ("labkit.instructor", "labkit.student", "labkit.grading")) or not qualname:
        return None
    try:
        obj = importlib.import_module(module_name)
    except ImportError:
        return None
    package = os.path.dirname(os.path.realpath(__file__)) + os.sep
    if not os.path.realpath(getattr(obj, "__file__", "") or "").startswith(package):
        return None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module) and (obj.__module__ or "").startswith("labkit.")):
        return None
    return obj


def _check_shapes(model: nn.Module, state_dict, path) -> None:
    """The model's tensors are exactly the file's (names and shapes), or ArchitectureMismatchError."""
    own = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    saved = {k: tuple(v.shape) for k, v in state_dict.items() if isinstance(v, torch.Tensor)}
    if own != saved:
        raise ArchitectureMismatchError(f"{path}: its constructor arguments do not build the network its weights "
                                        "belong to; the file is refused.")


def load_data_only(path, map_location="cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` for grading, treating the file as data.

    The model is rebuilt from labkit's own class named in the file, or else from the exported copy
    of a generator; no other code is imported. An exported graph that draws random numbers of its
    own (anything but the input noise) is refused. The same in Jupyter and under the grader: the checks call it
    for every handed-in model.
    """
    payload = read_checkpoint(path)
    cls = _labkit_class(payload.get("class", ""))
    init = payload.get("init_args")
    if cls is not None and init is not None:
        with torch.device("meta"):   # shapes first, allocating nothing: init_args may ask for a huge network
            _check_shapes(cls(*init["args"], **init["kwargs"]), payload["state_dict"], path)
        model = cls(*init["args"], **init["kwargs"])
        _load_weights(model, payload["state_dict"], path)
    elif payload.get("exported") and payload.get("generator"):
        bad = random_operators(payload["exported"])
        if bad:
            raise CheckpointError(
                f"{path} holds a generator whose exported graph draws random numbers of its own ({', '.join(bad[:4])}). "
                "A generator may only transform the noise it is given, so this model is refused for grading.")
        gen = payload["generator"]
        model = ExportedGenerator(payload["exported"], gen["latent_shape"], gen["n_classes"])
    else:
        raise CheckpointError(
            f"{path} holds a {payload.get('class')}: for grading, a model is rebuilt only from labkit's own classes or "
            "from the exported copy of a generator, and this file has neither.")
    model.checkpoint_metadata = dict(payload.get("metadata") or {})
    return model.to(map_location).eval()


def loadModel(path, model: Optional[nn.Module] = None, map_location="cpu") -> nn.Module:
    """Rebuild the model saved at ``path`` (or load its weights into ``model``).

    The returned module is in eval mode and has ``.checkpoint_metadata``. It may import the module that defined
    the model's class: for a file someone else made, use :func:`load_data_only`.
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
