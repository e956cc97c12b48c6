"""Guard cells inside a graded kernel: record the genuine check helpers, put back what notebook code replaced.

Runs inside the kernel of a notebook that ``labkit grade`` is grading.

The grader adds two kinds of cells to the student's notebook:

* one *init* cell at the very top, before any student code: :func:`init` imports the modules
  the instructor's check cells use and records the genuine objects (labkit's check helpers,
  builtins, numpy/torch functions, IPython's and ipykernel's execution machinery);
* one *guard* cell right before every check cell: :func:`before_check` compares the kernel
  with that record, puts back whatever student code replaced, rebinds the names the check
  cells rely on (``checks``, ``require``, ``np`` ...) and prints one ``LABKIT-GUARD`` line per
  finding. The grader turns these lines into flags in grades.csv and in the feedback.

This is a deterrent, not a sandbox: code running in the same process can always defeat
in-process checks (see docs/grading.md). It never raises, so a guard cell cannot fail.
"""
from __future__ import annotations

import builtins
import importlib
import os
import site
import sys
import sysconfig
import types

__all__ = ["init", "before_check", "library_roots", "PREFIX"]

PREFIX = "LABKIT-GUARD"

# Modules whose callables check cells use directly or indirectly (labkit.* is added at run time).
WATCHED = ("builtins", "math", "numpy", "numpy.linalg", "torch", "torch.nn.functional", "scipy.stats")
# Classes whose methods are worth watching when their module is loaded.
WATCHED_CLASSES = (("torch", "Tensor"), ("torch.nn", "Module"))
# Builtins that IPython itself swaps in and out around each cell.
VOLATILE_BUILTINS = {"exit", "quit", "get_ipython", "display", "_", "__", "___", "__IPYTHON__", "__builtins__"}
# Attributes of the IPython shell that decide how a cell runs and how its errors are reported.
SHELL_ATTRIBUTES = ("compile", "input_transformer_manager", "InteractiveTB", "SyntaxTB", "displayhook",
                    "display_pub", "display_trap", "events", "kernel", "prefilter_manager", "builtin_trap")

_STATE = None


def _say(message: str) -> None:
    stream = _STATE["stdout"] if _STATE else sys.stdout
    try:
        stream.write(f"{PREFIX} {message}\n")
        stream.flush()
    except Exception:  # pragma: no cover - nothing sensible left to do
        pass


LABKIT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # labkit/instructor/grading/..


def library_roots():
    """Folders whose code counts as installed libraries (labkit included), not notebook code."""
    roots = set()
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            roots.add(os.path.realpath(paths[key]))
    try:
        roots.update(os.path.realpath(p) for p in site.getsitepackages())
    except Exception:  # virtualenvs without getsitepackages
        pass
    roots.add(LABKIT_DIR)
    for name in ("numpy", "torch", "IPython", "ipykernel", "traitlets", "scipy"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            roots.add(os.path.realpath(os.path.dirname(os.path.dirname(module.__file__))))
    return tuple(sorted(roots))


def _foreign(obj) -> bool:
    """Whether ``obj`` is a Python function (or method) defined outside the installed libraries."""
    func = getattr(obj, "__func__", obj)
    code = getattr(func, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    filename = code.co_filename
    if filename.startswith("<frozen"):
        return False
    if filename.startswith("<"):
        return True
    real = os.path.realpath(filename)
    return not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in _STATE["roots"])


def _interesting(value) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)) or (
        callable(value) and type(value).__name__ in ("ufunc", "_ArrayFunctionDispatcher", "builtin_function_or_method"))


def _snapshot_namespace(namespace) -> dict:
    record = {}
    for key, value in list(namespace.items()):
        if _interesting(value):
            code = value.__code__ if isinstance(value, types.FunctionType) else None
            defaults = (value.__defaults__, value.__kwdefaults__) if code is not None else None
            record[key] = (value, code, defaults)
    return record


def _watched_modules():
    names = set(WATCHED)
    names.update(n for n in list(sys.modules) if n == "labkit" or n.startswith("labkit."))
    names.discard(__name__)
    return sorted(n for n in names if sys.modules.get(n) is not None)


def _shell():
    try:
        from IPython import get_ipython

        return get_ipython()
    except Exception:
        return None


def _class_record(cls) -> dict:
    return {c: {k: v for k, v in vars(c).items() if isinstance(v, types.FunctionType)}
            for c in cls.__mro__ if c is not object}


def _import_target(module: str, attr):
    mod = importlib.import_module(module)
    if attr is None:
        return mod
    if hasattr(mod, attr):
        return getattr(mod, attr)
    return importlib.import_module(f"{module}.{attr}")


def init(imports=(), aliases=()) -> None:
    """Import what the check cells use and record the genuine state of the kernel (first cell)."""
    global _STATE
    problems = []
    for name in imports:
        try:
            importlib.import_module(name)
        except Exception as exc:  # the check cell will report it; the guard keeps going
            problems.append(f"could not import {name} ({type(exc).__name__}: {exc})")
    _STATE = {"stdout": sys.stdout, "stderr": sys.stderr, "roots": (), "aliases": [tuple(a) for a in aliases]}
    _STATE["roots"] = library_roots()
    _STATE["modules"] = {name: (sys.modules[name], _snapshot_namespace(vars(sys.modules[name])))
                         for name in _watched_modules()}
    classes = {}
    for module_name, class_name in WATCHED_CLASSES:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            classes[f"{module_name}.{class_name}"] = (cls, _snapshot_namespace(dict(vars(cls))))
    _STATE["classes"] = classes
    shell = _shell()
    _STATE["shell"] = shell
    if shell is not None:
        _STATE["shell_attrs"] = {a: getattr(shell, a, None) for a in SHELL_ATTRIBUTES}
        _STATE["shell_dict"] = set(vars(shell))
        _STATE["shell_classes"] = _class_record(type(shell))
        kernel = getattr(shell, "kernel", None)
        _STATE["kernel_classes"] = _class_record(type(kernel)) if kernel is not None else {}
        _STATE["kernel_dict"] = set(vars(kernel)) if kernel is not None else set()
        _STATE["handlers"] = dict(getattr(kernel, "shell_handlers", {}) or {})
        manager = shell.input_transformer_manager
        _STATE["transformers"] = {
            "cleanup": list(manager.cleanup_transforms), "line": list(manager.line_transforms),
            "tokens": list(getattr(manager, "token_transformers", [])),
            "post": list(shell.input_transformers_post), "ast": list(shell.ast_transformers),
        }
        _STATE["custom_exceptions"] = shell.custom_exceptions
        _STATE["events"] = {k: list(v) for k, v in shell.events.callbacks.items()}
    _STATE["hooks"] = {"displayhook": sys.displayhook, "excepthook": sys.excepthook}
    _skip_idle_flushes()
    for problem in problems:
        _say(f"init: {problem}")


def _skip_idle_flushes() -> None:
    """Make ipykernel's ``flush()`` return at once when nothing was written since the last one.

    IPython's ``display()`` flushes stdout and stderr before every output, and each flush waits
    for two round trips to ipykernel's IOPub thread even when there is nothing to send: about
    0.5 ms per ``display()`` on a busy 2-core machine, so a cell with 12,000 outputs spent most
    of its time limit waiting. Text that is pending is still flushed, in order.
    """
    try:
        from ipykernel.iostream import OutStream
    except ImportError:
        return
    streams = (sys.stdout, sys.stderr)
    if not all(isinstance(s, OutStream) and hasattr(s, "_flush_pending") and hasattr(s, "_subprocess_flush_pending")
               for s in streams):
        return  # another ipykernel: leave its streams alone
    flush = OutStream.flush

    def flush_when_pending(self):
        if getattr(self, "_flush_pending", True) or getattr(self, "_subprocess_flush_pending", True):
            flush(self)

    OutStream.flush = flush_when_pending


def _describe(value) -> str:
    name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None) or type(value).__name__
    return f"{name} (defined in {'notebook code' if _foreign(value) else 'another library'})"


def _repair_modules(findings) -> None:
    for name, (module, record) in _STATE["modules"].items():
        if sys.modules.get(name) is not module:
            findings.append(f"sys.modules[{name!r}] was replaced; restored")
            sys.modules[name] = module
        namespace = vars(module)
        # labkit's own modules and builtins must not change at all; numpy, torch ... rewrap some of
        # their functions themselves (torch.manual_seed once torch._dynamo loads), so there only
        # replacements by notebook code count.
        strict = name == "builtins" or name == "labkit" or name.startswith("labkit.")
        for key, (value, code, defaults) in list(record.items()):
            current = namespace.get(key, None)
            if current is not value:
                if name == "builtins" and key in VOLATILE_BUILTINS:
                    continue
                if key in namespace and not strict and not _foreign(current):
                    record[key] = (current, current.__code__ if isinstance(current, types.FunctionType) else None,
                                   (current.__defaults__, current.__kwdefaults__)
                                   if isinstance(current, types.FunctionType) else None)
                    continue
                what = "deleted" if key not in namespace else f"replaced by {_describe(current)}"
                findings.append(f"{name}.{key} was {what}; restored")
                setattr(module, key, value)
            if code is not None and value.__code__ is not code:
                findings.append(f"the code of {name}.{key} was replaced; restored")
                value.__code__ = code
            if defaults is not None and (value.__defaults__, value.__kwdefaults__) != defaults:
                findings.append(f"the default arguments of {name}.{key} were changed; restored")
                value.__defaults__, value.__kwdefaults__ = defaults
    labkit = sys.modules.get("labkit")
    for name in list(sys.modules):
        if not name.startswith("labkit.") or name == __name__ or name in _STATE["modules"]:
            continue
        module = sys.modules[name]
        if module is None:
            continue
        bad = [k for k, v in list(vars(module).items()) if _foreign(v)]
        if bad:
            findings.append(f"{name}.{', '.join(sorted(bad)[:5])} replaced by notebook code; module reloaded")
            try:
                importlib.reload(module)
            except Exception as exc:
                findings.append(f"could not reload {name} ({type(exc).__name__}: {exc})")
    if labkit is not None:
        for name, (module, _record) in _STATE["modules"].items():
            if name.startswith("labkit.") and name.count(".") == 1:
                attr = name.split(".", 1)[1]
                if attr in vars(labkit) and vars(labkit)[attr] is not module:
                    findings.append(f"labkit.{attr} was replaced; restored")
                    setattr(labkit, attr, module)


def _repair_classes(findings) -> None:
    for label, (cls, record) in _STATE["classes"].items():
        for key, (value, code, _defaults) in list(record.items()):
            current = vars(cls).get(key)
            if current is not value:
                if current is not None and not _foreign(current):  # the library's own change
                    record[key] = (current, current.__code__ if isinstance(current, types.FunctionType) else None, None)
                    continue
                findings.append(f"{label}.{key} was replaced; restored")
                try:
                    setattr(cls, key, value)
                except (TypeError, AttributeError):
                    pass
            elif code is not None and value.__code__ is not code:
                findings.append(f"the code of {label}.{key} was replaced; restored")
                value.__code__ = code
        for key, value in list(vars(cls).items()):
            if key not in record and _foreign(value):
                findings.append(f"{label}.{key} was added by notebook code; removed")
                try:
                    delattr(cls, key)
                except (TypeError, AttributeError):
                    pass


def _repair_class_record(record, label, findings) -> None:
    for cls, namespace in record.items():
        for key, value in namespace.items():
            current = vars(cls).get(key)
            if current is not value:
                findings.append(f"{label} method {cls.__name__}.{key} was replaced; restored")
                setattr(cls, key, value)
        for key, value in list(vars(cls).items()):
            if key not in namespace and _foreign(value):
                findings.append(f"{label} method {cls.__name__}.{key} was added by notebook code; removed")
                delattr(cls, key)


def _repair_instance(obj, known, label, findings) -> None:
    for key, value in list(vars(obj).items()):
        if _foreign(value) or (key not in known and callable(value) and hasattr(type(obj), key)):
            findings.append(f"{label}.{key} was overridden by notebook code; removed")
            try:
                delattr(obj, key)
            except AttributeError:
                pass


def _repair_shell(findings) -> None:
    shell = _STATE.get("shell")
    if shell is None:
        return
    if _shell() is not shell:
        findings.append("get_ipython() was replaced")
    for attr, value in _STATE["shell_attrs"].items():
        if getattr(shell, attr, None) is not value:
            findings.append(f"the IPython shell's {attr} was replaced; restored")
            try:
                setattr(shell, attr, value)
            except Exception:
                pass
    _repair_class_record(_STATE["shell_classes"], "IPython", findings)
    _repair_instance(shell, _STATE["shell_dict"], "the IPython shell", findings)
    kernel = getattr(shell, "kernel", None)
    if kernel is not None:
        _repair_class_record(_STATE["kernel_classes"], "kernel", findings)
        _repair_instance(kernel, _STATE["kernel_dict"], "the kernel", findings)
        handlers = getattr(kernel, "shell_handlers", None)
        if isinstance(handlers, dict):
            for key, value in _STATE["handlers"].items():
                if handlers.get(key) != value:
                    findings.append(f"the kernel's {key} handler was replaced; restored")
                    handlers[key] = value
    manager = shell.input_transformer_manager
    saved = _STATE["transformers"]
    for label, current, original in (
        ("input transformers", manager.cleanup_transforms, saved["cleanup"]),
        ("line transformers", manager.line_transforms, saved["line"]),
        ("token transformers", getattr(manager, "token_transformers", []), saved["tokens"]),
        ("post input transformers", shell.input_transformers_post, saved["post"]),
        ("AST transformers", shell.ast_transformers, saved["ast"]),
    ):
        if list(current) != original:
            findings.append(f"IPython {label} were changed; restored")
            current[:] = original
    if shell.custom_exceptions != _STATE["custom_exceptions"]:
        findings.append("a custom exception handler (set_custom_exc) was installed; removed")
        shell.set_custom_exc((), None)
        shell.custom_exceptions = _STATE["custom_exceptions"]
    for event, callbacks in shell.events.callbacks.items():
        original = _STATE["events"].get(event, [])
        extra = [cb for cb in callbacks if cb not in original and _foreign(cb)]
        if extra:
            findings.append(f"a {event!r} event callback was registered; removed")
            callbacks[:] = [cb for cb in callbacks if cb not in extra]


def _repair_streams(findings) -> None:
    shell = _STATE.get("shell")
    kernel = getattr(shell, "kernel", None)
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is not _STATE[name]:
            findings.append(f"sys.{name} was replaced; restored")
            setattr(sys, name, _STATE[name])
            # ipykernel tells the stream which cell it writes for when the cell starts; it told the
            # replacement, so tell the genuine stream now or its output would go to an earlier cell.
            try:
                _STATE[name].set_parent(kernel.get_parent("shell"))
            except Exception:
                pass
    for name, value in _STATE["hooks"].items():
        if getattr(sys, name) != value:  # ipykernel installs a fresh bound method per cell: compare by equality
            findings.append(f"sys.{name} was replaced; restored")
            setattr(sys, name, value)


def _rebind_aliases(findings) -> None:
    shell = _STATE.get("shell")
    namespace = shell.user_ns if shell is not None else sys.modules["__main__"].__dict__
    for alias, module, attr in _STATE["aliases"]:
        try:
            genuine = _import_target(module, attr)
        except Exception:
            continue
        if alias in namespace and namespace[alias] is not genuine:
            origin = f"{module}.{attr}" if attr else module
            findings.append(f"the name {alias!r} (meant to be {origin}) was rebound to {_describe(namespace[alias])}; "
                            "restored for the check")
        namespace[alias] = genuine


def before_check(check_id=None) -> None:
    """Put back what notebook code replaced and report it (the cell right before each check)."""
    if _STATE is None:
        _say(f"guard state lost: {__name__} was removed from sys.modules or reloaded")
        return
    findings = []
    for step in (_repair_streams, _repair_shell, _repair_modules, _repair_classes, _rebind_aliases):
        try:
            step(findings)
        except Exception as exc:  # keep going: a failing repair must not block the check
            findings.append(f"guard step {step.__name__} failed ({type(exc).__name__}: {exc})")
    where = f"before check {check_id!r}" if check_id else "at the end"
    for finding in dict.fromkeys(findings):
        _say(f"{where}: {finding}")
