"""labkit: the support package behind the GAN course notebooks.

The names students use are importable from here (``labkit.saveModel``,
``labkit.setup`` ...); heavier modules load on first use, so ``import labkit``
stays fast.
"""
__version__ = "0.1.0"

from . import distributions  # noqa: E402,F401  (numpy + scipy only)
from .runtime import get_device, quick_mode, seed_everything, setup  # noqa: E402,F401

_LAZY = {
    "saveModel": "checkpoint", "loadModel": "checkpoint", "save_model": "checkpoint", "load_model": "checkpoint",
    "Configurable": "checkpoint", "load": "datasets", "generate": "sampling",
}


def __getattr__(name):
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    try:
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError:
        raise AttributeError(f"module 'labkit' has no attribute {name!r}") from None
