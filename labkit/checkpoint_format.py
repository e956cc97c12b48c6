"""The parts of the ``saveModel`` file format that need no torch: its mark, its error, and a test for the mark.

The ``labkit`` command catches :class:`CheckpointError` around every subcommand; importing it from here keeps
torch (3 s) out of commands that never load a model.

``labkit run`` counts the saved models among a notebook's outputs; a training state for resuming is a ``.pt``
file too but not a saved model. Reading each with ``torch.load`` would import torch (3 s) in a process that
otherwise never needs it. A ``torch.save`` file is a zip whose ``data.pkl`` holds the pickled object, with
the tensors stored beside it: :func:`is_saved_model` unpickles that object with every class replaced by an
inert stand-in and no tensor data, and looks for the mark. Nothing named in the file is imported or run.
"""
from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Optional

__all__ = ["FORMAT", "FORMAT_VERSION", "CheckpointError", "is_saved_model"]

FORMAT = "labkit.model"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, or cannot be turned back into a model."""


_MAX_PICKLE_BYTES = 64 * 1024 * 1024  # the object's pickle only; tensors are separate members of the zip


class _Inert:
    """Stands for any class or function a pickle names (tensors, dtypes, torch's rebuild functions)."""

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        pass

    def __setitem__(self, key, value):
        pass


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):  # a state_dict: harmless, and keeps nesting readable
            return OrderedDict
        return _Inert

    def persistent_load(self, pid):  # a tensor's storage, kept outside the pickle: not needed here
        return None


def is_saved_model(path) -> Optional[bool]:
    """True for a file written by ``saveModel``, False for any other file; None where this cannot tell
    (a pickle it cannot follow): then ask :func:`labkit.checkpoint.read_checkpoint`."""
    try:
        with zipfile.ZipFile(Path(path)) as archive:
            pickles = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")]
            if len(pickles) != 1 or pickles[0].file_size > _MAX_PICKLE_BYTES:
                return False
            payload = _InertUnpickler(archive.open(pickles[0])).load()
    except (OSError, zipfile.BadZipFile):
        return False  # not a zip: saveModel always writes torch's zip format
    except Exception:  # noqa: BLE001 - an opcode or structure this reader does not follow
        return None
    return isinstance(payload, dict) and payload.get("format") == FORMAT
