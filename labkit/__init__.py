"""labkit: the support package behind the GAN course notebooks (student-facing names live here).

The names students use are importable from here (``labkit.saveModel``,
``labkit.setup`` ...); heavier modules load on first use, so ``import labkit``
stays fast. Modules that moved into subpackages keep their old names
(``labkit.mlp``, ``labkit.plotting`` ...) through :mod:`labkit.moved`, so notebooks
and checkpoints made before the move still work.
"""
from .version import __version__  # noqa: F401

# No eager ``from . import distributions``: scipy.stats costs 1.5 s, and the instructor's commands
# (``labkit run``, ``labkit grade``) need it only inside the kernels they start.
from . import moved  # noqa: E402,F401  (old module names of moved modules)
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
