"""Old module names of modules that moved into subpackages, so notebooks and checkpoints made before still work.

Notebooks already handed out import ``labkit.mlp``, ``labkit.plotting``, ``labkit.animation`` and
``labkit.live``; saved checkpoints record their class as ``labkit.mlp:MLPGenerator`` or
``labkit.classifiers:ImageClassifier``. An import of an old name returns the module at its new
place (the very same module object, so classes compare equal); nothing is copied.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__all__ = ["MOVED_MODULES"]

MOVED_MODULES = {
    "labkit.mlp": "labkit.models.mlp",
    "labkit.classifiers": "labkit.models.classifier",
    "labkit.plotting": "labkit.viz.plotting",
    "labkit.animation": "labkit.viz.animation",
    "labkit.live": "labkit.viz.live",
}


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, new_name: str):
        self.new_name = new_name

    def create_module(self, spec):
        return importlib.import_module(self.new_name)

    def exec_module(self, module):
        pass  # already executed under its new name


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        new_name = MOVED_MODULES.get(fullname)
        if new_name is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new_name))


if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
