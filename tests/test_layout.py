"""The package layout's rules: every module says what it is for, no private names cross modules, no two public
things share a name, and the old module names of moved modules still work for handed-out notebooks."""
import ast
import importlib
import re
import subprocess
import sys
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


# --------------------------------------------------------------------------- imports (issue 23)


def _imports_of(path: Path):
    """The labkit modules ``path`` imports anywhere (functions included), except under ``if TYPE_CHECKING:``."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for n in ast.walk(node)}
    known = {_module_name(p) for p in MODULES}
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                full = f"{target}.{alias.name}"
                found.add(full if full in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != module}


IMPORTS = {_module_name(p): _imports_of(p) for p in MODULES}


def test_no_import_circles_anywhere_in_labkit():
    circles, state = [], {}

    def visit(module, trail):
        state[module] = "open"
        for other in sorted(IMPORTS[module]):
            if state.get(other) == "open":
                circles.append(trail[trail.index(other):] + [other] if other in trail else [module, other])
            elif other not in state:
                visit(other, trail + [other])
        state[module] = "done"

    for module in sorted(IMPORTS):
        if module not in state:
            visit(module, [module])
    assert not circles, circles


def test_the_student_side_never_imports_the_instructor_side():
    crossing = {m: sorted(i for i in imports if i.startswith("labkit.instructor"))
                for m, imports in IMPORTS.items() if m.startswith(("labkit.student", "labkit.grading"))}
    assert not {m: i for m, i in crossing.items() if i}, crossing


def test_every_labkit_variable_in_the_code_is_declared_once():
    from labkit import environment

    declared = {v.name for v in environment.DECLARED}
    assert len(declared) == len(environment.DECLARED)
    repo = PACKAGE.parent
    files = MODULES + sorted((repo / "tests").rglob("*.py")) + sorted((repo / "scripts").glob("*.py")) + \
        sorted((repo / "benchmarks").glob("*.py")) + [repo / "conftest.py"]
    undeclared = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                undeclared.update(f"{path.relative_to(repo)}: {name}" for name in re.findall(r"LABKIT_[A-Z_]+", node.value)
                                  if name not in declared)
    assert not undeclared, sorted(undeclared)


def test_labkit_help_and_sample_import_no_grading_engine():
    program = ("import sys\nfrom labkit import cli\ncli.build_parser()\n"
               "light = {'labkit.grading', 'labkit.grading.options', 'labkit.grading.types'}\n"
               "print(sorted(m for m in sys.modules if (m.startswith('labkit.grading') and m not in light) "
               "or m.split('.')[0] in ('nbformat', 'pytest', 'nbval', 'nbclient')))")
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
