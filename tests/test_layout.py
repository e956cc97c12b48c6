"""The package layout's rules: every module says what it is for, no private names cross modules, no two public
things share a name, and the old module names of moved modules still work for handed-out notebooks."""
import ast
import importlib
from collections import defaultdict
from pathlib import Path

import pytest

import labkit
from labkit.moved import MOVED_MODULES

PACKAGE = Path(labkit.__file__).resolve().parent
MODULES = sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_every_module_starts_with_a_docstring_saying_what_it_is_for(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    if path.name == "__main__.py":
        return
    docstring = ast.get_docstring(tree)
    assert docstring and len(docstring.splitlines()[0].split()) >= 4, f"{path} needs a one-line purpose"
    assert path.read_text(encoding="utf-8").startswith('"""'), f"{path}: the docstring must be the first line"


def test_no_private_names_are_imported_across_modules():
    offenders = []
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("labkit")):
                offenders += [f"{path.relative_to(PACKAGE)}: {alias.name}" for alias in node.names
                              if alias.name.startswith("_") and not alias.name.startswith("__")]
    assert not offenders, offenders


def test_no_two_public_classes_or_functions_share_a_name():
    where = defaultdict(list)
    for path in MODULES:
        if path.name == "moved.py":
            continue
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)) and not node.name.startswith("_"):
                where[node.name].append(_module_name(path))
    # Names that every module of a kind has on purpose, always called module-qualified: a CLI's main,
    # datasets.names() / distributions.names(), and the per-lab check modules' common interface
    # (checks.check_history in each notebook).
    allowed = {"main", "add_arguments", "names"}

    def per_lab_checks(mods):
        return all(m.startswith("labkit.checks.") and m != "labkit.checks.steps" for m in mods)

    twins = {name: mods for name, mods in where.items()
             if len(mods) > 1 and name not in allowed and not per_lab_checks(mods)}
    assert not twins, twins


@pytest.mark.parametrize("old, new", sorted(MOVED_MODULES.items()))
def test_old_module_names_are_the_moved_modules(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_checkpoints_saved_before_the_move_still_load(tmp_path):
    import torch

    from labkit import loadModel, saveModel
    from labkit.checkpoint import read_checkpoint
    from labkit.models.mlp import MLPGenerator

    path = saveModel(MLPGenerator(latent_dim=3), tmp_path / "old.pt")
    payload = read_checkpoint(path)
    payload["class"] = "labkit.mlp:MLPGenerator"  # what checkpoints saved before the layout record
    torch.save(payload, path)
    assert type(loadModel(path)) is MLPGenerator
