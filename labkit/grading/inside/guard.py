"""Guard cells inside a graded kernel: record the genuine check helpers, put back what notebook code replaced.

Runs inside the kernel of a notebook that ``labkit grade`` is grading.

The grader adds two kinds of cells to the student's notebook:

* one *init* cell at the very top, before any student code: :func:`init` imports the modules
  the instructor's check cells use and records the genuine objects (labkit's check helpers,
  builtins, numpy/torch functions, IPython's and ipykernel's execution machinery);
* one *guard* cell right before every check cell: :func:`before_check` compares the kernel
  with that record, puts back whatever student code replaced (functions, classes' methods,
  the data of labkit's modules: dicts, tiers, arrays, paths, see :mod:`.moduledata`; the import
  system; labkit's environment variables), removes every trace or profile function and
  ``sys.monitoring`` tool set since the first cell, and notebook code left to run during a check
  (gc callbacks, signal handlers and their timers), rebinds the names the check cells rely on
  (``checks``, ``require``, ``np`` ...) and prints one ``LABKIT-GUARD`` line per finding. The
  grader turns these lines into flags in grades.csv and in the feedback.

A replacement need not have code of its own: a callable object, a ``functools.partial`` or a bound
method in the place of ``np.all`` is put back like a function (only a library's own rewrap of its
function, such as torch's of ``torch.manual_seed``, is accepted).

The init cell imports with the notebook's folder off ``sys.path`` (the kernel starts without it),
and puts it back at the *end* afterwards: a file beside the notebook can neither replace a module
imported before the guard nor an installed one. The guard keeps its own references to
``importlib``'s functions, taken before any student code ran.

This is a deterrent, not a sandbox (the sandbox is :mod:`.sandbox`): code running in the same
process can always defeat in-process checks (see docs/grading.md). It never raises, so a guard
cell cannot fail.
"""
from __future__ import annotations

import ast
import functools
import gc
import importlib
import importlib.util
import os
import signal
import site
import sys
import sysconfig
import threading
import types
from typing import Callable, NamedTuple

from . import moduledata
from ...environment import RESTORED_BY_GUARD

__all__ = ["init", "before_check", "library_roots", "PREFIX"]

PREFIX = "LABKIT-GUARD"

# Modules whose callables check cells use directly or indirectly (labkit.* is added at run time).
WATCHED = ("builtins", "math", "numpy", "numpy.linalg", "torch", "torch.nn.functional", "scipy.stats", "importlib",
           "importlib.util", "os", "os.path")
# Environment variables labkit reads to find its files or to know it is graded: put back before each check.
ENVIRONMENT = tuple(v.name for v in RESTORED_BY_GUARD) + ("CUDA_VISIBLE_DEVICES",)
# The genuine import machinery, taken when the init cell imports this module (before any notebook code).
_IMPORT_MODULE, _RELOAD, _FIND_SPEC = importlib.import_module, importlib.reload, importlib.util.find_spec


class TraceHook(NamedTuple):
    """A hook that runs code on calls or lines of every frame of a thread: how notebook code sets it, and the
    genuine getter and setter (taken before any notebook code: a notebook may replace ``sys.settrace``)."""

    label: str                 # e.g. "sys.settrace"
    kind: str                  # "trace" or "profile"
    get: Callable[[], object]
    set: Callable[[object], None]


def _threading_hook(name: str) -> Callable[[], object]:
    """``threading.gettrace``/``getprofile`` (Python 3.10+), or the attribute they read on older versions."""
    getter = getattr(threading, f"get{name}", None)
    return getter if getter is not None else (lambda: getattr(threading, f"_{name}_hook", None))


TRACE_HOOKS = (TraceHook("sys.settrace", "trace", sys.gettrace, sys.settrace),
               TraceHook("sys.setprofile", "profile", sys.getprofile, sys.setprofile),
               TraceHook("threading.settrace", "trace", _threading_hook("trace"), threading.settrace),
               TraceHook("threading.setprofile", "profile", _threading_hook("profile"), threading.setprofile))
_MONITORING = getattr(sys, "monitoring", None)   # PEP 669 tools (Python 3.12+), the genuine namespace
MONITORING_TOOL_IDS = range(6)
# Signals whose handler a timer raises: a notebook's handler would run in the middle of a check.
TIMER_SIGNALS = {name: which for name, which in (("SIGALRM", "ITIMER_REAL"), ("SIGVTALRM", "ITIMER_VIRTUAL"),
                                                  ("SIGPROF", "ITIMER_PROF")) if hasattr(signal, which)}
# Classes whose methods are worth watching when their module is loaded.
WATCHED_CLASSES = (("torch", "Tensor"), ("torch.nn", "Module"))
# Builtins that IPython itself swaps in and out around each cell (ipykernel binds input to each request).
VOLATILE_BUILTINS = {"exit", "quit", "get_ipython", "display", "_", "__", "___", "__IPYTHON__", "__builtins__",
                     "input"}
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


LABKIT_DIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))  # labkit/grading/inside/../..


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


def _code_from_notebook(code) -> bool:
    """Whether a code object was compiled from a notebook cell or a file outside the installed libraries."""
    filename = code.co_filename
    if filename.startswith("<frozen"):
        return False
    if filename.startswith("<"):
        return True
    real = os.path.realpath(filename)
    return not any(real == root or real.startswith(root.rstrip(os.sep) + os.sep) for root in _STATE["roots"])


# What dataclasses and namedtuples compile from strings for a class; any other such function is notebook code.
GENERATED_METHODS = frozenset({"__init__", "__repr__", "__eq__", "__hash__", "__setattr__", "__delattr__", "__lt__",
                               "__le__", "__gt__", "__ge__", "__new__", "_make", "_replace", "_asdict",
                               "__getnewargs__", "__getstate__", "__setstate__", "__post_init__"})


def _function_from_notebook(func) -> bool:
    """Whether a Python function is notebook code. A function compiled from a string (``<string>``) is judged by
    the module it was made for: dataclasses and namedtuples make ``__init__``, ``__repr__`` ... that way for the
    libraries' classes too."""
    code = func.__code__
    if code.co_filename.startswith("<") and not code.co_filename.startswith("<frozen"):
        if func.__name__ not in GENERATED_METHODS:
            return True
        name = (getattr(func, "__globals__", None) or {}).get("__name__")
        module = sys.modules.get(name) if isinstance(name, str) and name != "__main__" else None
        filename = getattr(module, "__file__", None)
        if isinstance(filename, str) and filename.endswith(".py"):
            real = os.path.realpath(filename)
            return not any(real.startswith(root.rstrip(os.sep) + os.sep) for root in _STATE["roots"])
        return True
    return _code_from_notebook(code)


def _class_from_notebook(cls) -> bool:
    """Whether a class was defined by notebook code: in a cell (``__main__``), in a module outside the
    libraries, or with a method of notebook code anywhere in its MRO (remembered during one guard cell)."""
    verdicts = _STATE.setdefault("class_verdicts", {})
    if id(cls) not in verdicts:
        verdicts[id(cls)] = (cls, _defined_by_notebook(cls))   # the class is kept so that its id stays its own
    return verdicts[id(cls)][1]


def _defined_by_notebook(cls) -> bool:
    if getattr(cls, "__module__", None) == "__main__":
        return True
    module = sys.modules.get(getattr(cls, "__module__", None) or "")
    filename = getattr(module, "__file__", None)
    if isinstance(filename, str) and filename.endswith(".py"):
        real = os.path.realpath(filename)
        if not any(real.startswith(root.rstrip(os.sep) + os.sep) for root in _STATE["roots"]):
            return True
    for klass in getattr(cls, "__mro__", ()):
        if klass is object:
            continue
        for value in list(vars(klass).values()):
            value = getattr(value, "__func__", value)            # staticmethod, classmethod
            if isinstance(value, types.FunctionType) and isinstance(value.__code__, types.CodeType) and \
                    _function_from_notebook(value):
                return True
    return False


def _foreign(obj, depth: int = 0) -> bool:
    """Whether calling ``obj`` runs code defined outside the installed libraries (notebook code).

    That is a function or method of notebook code, and also what has no ``__code__`` of its own: a
    ``functools.partial`` over notebook code or with notebook objects among its arguments, a method
    bound to an object of a notebook class, an instance of such a class (a callable object) or the
    class itself.
    """
    if depth > 4:
        return False
    try:
        if isinstance(obj, functools.partial):
            parts = (obj.func, *obj.args, *obj.keywords.values())
            return _class_from_notebook(type(obj)) or any(_foreign(p, depth + 1) for p in parts)
        if isinstance(obj, types.MethodType):
            return _foreign(obj.__func__, depth + 1) or _foreign(obj.__self__, depth + 1)
        if isinstance(obj, (types.BuiltinFunctionType, types.MethodWrapperType)):  # C code, maybe bound to an object
            owner = obj.__self__
            return owner is not None and not isinstance(owner, types.ModuleType) and _foreign(owner, depth + 1)
        code = getattr(obj, "__code__", None) if isinstance(obj, types.FunctionType) else None
        if isinstance(code, types.CodeType):
            return _function_from_notebook(obj)
        if isinstance(obj, type):
            return _class_from_notebook(obj)
        return _class_from_notebook(type(obj))
    except Exception:  # an object that lies about its attributes is not the libraries' own
        return True


def _library_rewrap(current, original) -> bool:
    """Whether ``current``, found where ``original`` was recorded, is the library's own new version of it.

    torch wraps ``torch.manual_seed`` once ``torch._dynamo`` loads: a plain function of library code
    that wraps the original (``__wrapped__``) or bears its name. Anything else in its place is a
    replacement, whatever it wraps: a callable object, a ``functools.partial``, a bound method, a C
    function from elsewhere (``operator.is_not`` as ``np.allclose`` answers True).
    """
    if not isinstance(current, types.FunctionType) or _foreign(current):
        return False
    wrapped = current
    for _ in range(8):
        wrapped = getattr(wrapped, "__wrapped__", None)
        if wrapped is None:
            break
        if wrapped is original:
            return True
    return current.__name__ == getattr(original, "__name__", None)


def _interesting(value) -> bool:
    return isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type, types.ModuleType)) or (
        callable(value) and type(value).__name__ in ("ufunc", "_ArrayFunctionDispatcher", "builtin_function_or_method"))


def _snapshot_namespace(namespace, every_callable: bool = False) -> dict:
    """The callables of a namespace worth watching (``every_callable``: callable objects and partials too)."""
    record = {}
    for key, value in list(namespace.items()):
        if _interesting(value) or (every_callable and callable(value) and not key.startswith("__")):
            code = value.__code__ if isinstance(value, types.FunctionType) else None
            defaults = (value.__defaults__, value.__kwdefaults__) if code is not None else None
            record[key] = (value, code, defaults)
    return record


def _strict(module_name: str) -> bool:
    """Modules whose every callable must stay as recorded: builtins and labkit's own (no library rewraps them)."""
    return module_name in ("builtins", "labkit") or module_name.startswith("labkit.")


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
    mod = _IMPORT_MODULE(module)
    if attr is None:
        return mod
    if hasattr(mod, attr):
        return getattr(mod, attr)
    return _IMPORT_MODULE(f"{module}.{attr}")


def _labkit_imports(name: str):
    """The labkit modules that module ``name``'s source imports, anywhere in it (functions too)."""
    try:
        spec = _FIND_SPEC(name)
    except (ImportError, ValueError):
        return []
    origin = getattr(spec, "origin", None) if spec is not None else None
    if not origin or not origin.endswith(".py"):
        return []
    try:
        with open(origin, encoding="utf-8") as f:
            tree = ast.parse(f.read())
    except (OSError, SyntaxError, ValueError):
        return []
    package = name if origin.endswith("__init__.py") else name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{a.name}" for a in node.names]
    return [m for m in found if m == "labkit" or m.startswith("labkit.")]


def _with_labkit_dependencies(imports):
    """``imports`` and every labkit module they import, even lazily (so the guard records them all now)."""
    ordered, seen, todo = [], set(), list(imports)
    while todo:
        name = todo.pop(0)
        if name in seen or name.startswith(("labkit.instructor", "labkit.grading")):
            continue
        seen.add(name)
        ordered.append(name)
        if name == "labkit" or name.startswith("labkit."):
            todo += [m for m in _labkit_imports(name) if m not in seen]
    return ordered


def _import_all(imports, problems) -> None:
    """Import ``imports`` (and labkit's dependencies) with the notebook's folder off ``sys.path``, then put it last."""
    here = os.path.realpath(os.getcwd())
    sys.path[:] = [p for p in sys.path if p not in ("", ".") and os.path.realpath(p) != here]
    requested = set(imports)
    for name in _with_labkit_dependencies(imports):
        try:
            spec = _FIND_SPEC(name) if name not in requested else True
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            continue  # ``from labkit.x import name`` where name is not a module
        try:
            _IMPORT_MODULE(name)
        except Exception as exc:  # the check cell will report it; the guard keeps going
            if name in requested:
                problems.append(f"could not import {name} ({type(exc).__name__}: {exc})")
    sys.path.append(here)   # the student's own modules beside the notebook, after every installed one


def _labkit_classes(module_names):
    """Classes defined in labkit's modules (their methods are watched like torch.Tensor's)."""
    classes = {}
    for name in module_names:
        if not (name == "labkit" or name.startswith("labkit.")):
            continue
        for value in list(vars(sys.modules[name]).values()):
            if isinstance(value, type) and (value.__module__ or "").startswith("labkit"):
                classes.setdefault(f"{value.__module__}.{value.__qualname__}", value)
    return classes


def init(imports=(), aliases=()) -> None:
    """Import what the check cells use and record the genuine state of the kernel (first cell)."""
    global _STATE
    problems = []
    _import_all(imports, problems)
    _STATE = {"stdout": sys.stdout, "stderr": sys.stderr, "roots": (), "aliases": [tuple(a) for a in aliases]}
    _STATE["roots"] = library_roots()
    watched = _watched_modules()
    _STATE["modules"] = {name: (sys.modules[name], _snapshot_namespace(vars(sys.modules[name]), _strict(name)))
                         for name in watched}
    _STATE["data"] = {name: (sys.modules[name], moduledata.record_module(sys.modules[name]))
                      for name in watched if name == "labkit" or name.startswith("labkit.")}
    classes = {}
    for module_name, class_name in WATCHED_CLASSES:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None) if module is not None else None
        if isinstance(cls, type):
            classes[f"{module_name}.{class_name}"] = (cls, _snapshot_namespace(dict(vars(cls))))
    for label, cls in _labkit_classes(watched).items():
        classes.setdefault(label, (cls, _snapshot_namespace(dict(vars(cls)))))
    _STATE["classes"] = classes
    _STATE["environ"] = {name: os.environ.get(name) for name in ENVIRONMENT}
    _STATE["meta_path"], _STATE["path_hooks"] = list(sys.meta_path), list(sys.path_hooks)
    _STATE["threads"] = {t.ident for t in threading.enumerate()}
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
    _STATE["tracers"] = {hook.label: hook.get() for hook in TRACE_HOOKS}
    _STATE["monitoring"] = {tool: _MONITORING.get_tool(tool) for tool in MONITORING_TOOL_IDS} if _MONITORING else {}
    _STATE["gc_callbacks"] = list(gc.callbacks)
    _STATE["signals"] = _signal_handlers()
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


def _name(value) -> str:
    """A callable's name for a finding: ``f``, ``functools.partial(f)``, ``an object of class Fake``."""
    try:
        if isinstance(value, functools.partial):
            return f"functools.partial({_name(value.func)})"
        name = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if isinstance(name, str):
            return name
    except Exception:  # an object that lies about its attributes: name it by its class
        pass
    return f"an object of class {type(value).__qualname__}"


def _describe(value) -> str:
    return f"{_name(value)} (defined in {'notebook code' if _foreign(value) else 'another library'})"


def _repair_modules(findings) -> None:
    for name, (module, record) in _STATE["modules"].items():
        if sys.modules.get(name) is not module:
            findings.append(f"sys.modules[{name!r}] was replaced; restored")
            sys.modules[name] = module
        namespace = vars(module)
        # labkit's own modules and builtins must not change at all; numpy, torch ... rewrap some of
        # their functions themselves (torch.manual_seed once torch._dynamo loads), so there only
        # such rewraps are accepted.
        strict = _strict(name)
        for key, (value, code, defaults) in list(record.items()):
            current = namespace.get(key, None)
            if current is not value:
                if name == "builtins" and key in VOLATILE_BUILTINS:
                    continue
                if key in namespace and not strict and _library_rewrap(current, value):
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
                _RELOAD(module)
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
                if current is not None and _library_rewrap(current, value):  # the library's own change
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


def _repair_data(findings) -> None:
    """Put back the data of labkit's modules (dicts, tiers, arrays, paths) recorded by the init cell."""
    for name, (module, record) in _STATE["data"].items():
        findings += moduledata.restore(module, record)


def _repair_environment(findings) -> None:
    for name, value in _STATE["environ"].items():
        if os.environ.get(name) != value:
            findings.append(f"the environment variable {name} was changed; restored")
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _repair_import_system(findings) -> None:
    """Import finders and path hooks added by notebook code are removed; labkit modules not from labkit dropped."""
    for label, current, original in (("sys.meta_path", sys.meta_path, _STATE["meta_path"]),
                                     ("sys.path_hooks", sys.path_hooks, _STATE["path_hooks"])):
        extra = [f for f in current if not any(f is o for o in original) and _foreign(f)]
        if extra:
            findings.append(f"an import hook was added to {label} by notebook code; removed")
            current[:] = [f for f in current if not any(f is e for e in extra)]
    labkit_dir = LABKIT_DIR.rstrip(os.sep) + os.sep
    for name, module in list(sys.modules.items()):
        if not (name == "labkit" or name.startswith("labkit.")) or module is None:
            continue
        origin = getattr(module, "__file__", None)
        if origin and not os.path.realpath(origin).startswith(labkit_dir):
            findings.append(f"sys.modules[{name!r}] was a module from {origin}, not labkit's; removed")
            del sys.modules[name]


def _flag_threads(findings) -> None:
    """Threads started by notebook code run during the check: reported (they cannot be stopped safely)."""
    for thread in threading.enumerate():
        if thread.ident in _STATE["threads"] or not thread.is_alive():
            continue
        target = getattr(thread, "_target", None)
        if _foreign(target) or _foreign(getattr(type(thread), "run", None)):
            findings.append(f"a thread started by notebook code ({thread.name}) is still running during the check")


def _remove_tracers(findings) -> None:
    """Any trace or profile function set after the first cell is removed, whoever wrote it: it could rewrite
    a check's local variables (its KS statistic) while the check runs."""
    for hook in TRACE_HOOKS:
        current, recorded = hook.get(), _STATE["tracers"][hook.label]
        if current is recorded:
            continue
        what = f"a {hook.kind} function ({_describe(current)})" if current is not None else \
            f"the {hook.kind} function present at the first cell"
        findings.append(f"{what} was set after the first cell ({hook.label}); "
                        + ("removed" if recorded is None else "the first cell's put back"))
        hook.set(recorded)
    _remove_monitoring_tools(findings)


def _monitoring_events() -> list:
    events = _MONITORING.events
    values = (getattr(events, name) for name in dir(events) if name.isupper())
    return [v for v in values if isinstance(v, int) and v > 0 and v & (v - 1) == 0]


def _remove_monitoring_tools(findings) -> None:
    """sys.monitoring tools (Python 3.12+) registered after the first cell lose their events and callbacks."""
    if _MONITORING is None:
        return
    for tool, recorded in _STATE["monitoring"].items():
        name = _MONITORING.get_tool(tool)
        if name is None or name == recorded:
            continue
        findings.append(f"a sys.monitoring tool ({name!r}, id {tool}) was registered after the first cell; "
                        "its events and callbacks were removed")
        for undo in [lambda: _MONITORING.set_events(tool, 0)] + [
                (lambda e=event: _MONITORING.register_callback(tool, e, None)) for event in _monitoring_events()] + [
                lambda: _MONITORING.free_tool_id(tool)]:
            try:
                undo()
            except Exception:  # an event this Python cannot set or clear on its own
                pass


def _signal_handlers() -> dict:
    handlers = {}
    for signum in signal.valid_signals():
        try:
            handler = signal.getsignal(signum)
        except (ValueError, OSError):
            continue
        if handler is not None:
            handlers[signum] = handler
    return handlers


def _remove_deferred_code(findings) -> None:
    """Code that notebook code leaves to run in the middle of a check, where it could set a trace function
    after this guard: gc callbacks, and signal handlers (with the timer that raises their signal)."""
    added = [cb for cb in gc.callbacks if not any(cb is o for o in _STATE["gc_callbacks"]) and _foreign(cb)]
    if added:
        findings.append(f"a garbage collector callback ({_describe(added[0])}) was added; removed")
        gc.callbacks[:] = [cb for cb in gc.callbacks if not any(cb is a for a in added)]
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can be set from the main thread only
    for signum, recorded in _STATE["signals"].items():
        current = signal.getsignal(signum)
        if current is recorded or current == recorded or not _foreign(current):
            continue
        name = signal.Signals(signum).name
        findings.append(f"a handler for {name} ({_describe(current)}) was installed; restored")
        signal.signal(signum, recorded)
        if name in TIMER_SIGNALS:
            signal.setitimer(getattr(signal, TIMER_SIGNALS[name]), 0)


def before_check(check_id=None) -> None:
    """Put back what notebook code replaced and report it (the cell right before each check)."""
    if _STATE is None:
        _say(f"guard state lost: {__name__} was removed from sys.modules or reloaded")
        return
    findings = []
    _STATE["class_verdicts"] = {}
    # Tracers first: until they are gone they run on every line of this guard too.
    for step in (_remove_tracers, _remove_deferred_code, _repair_streams, _repair_shell, _repair_environment,
                 _repair_import_system, _repair_modules, _repair_data, _repair_classes, _flag_threads,
                 _rebind_aliases):
        try:
            step(findings)
        except Exception as exc:  # keep going: a failing repair must not block the check
            findings.append(f"guard step {step.__name__} failed ({type(exc).__name__}: {exc})")
    where = f"before check {check_id!r}" if check_id else "at the end"
    for finding in dict.fromkeys(findings):
        _say(f"{where}: {finding}")
