"""Guard cells inside a graded kernel: record the genuine check helpers, put back what notebook code replaced.

Runs inside the kernel of a notebook that ``labkit grade`` is grading.

The grader adds two kinds of cells to the student's notebook:

* one *init* cell at the very top, before any student code: :func:`init` imports the modules
  the instructor's check cells use and records the genuine objects (labkit's check helpers,
  builtins, numpy/torch functions, IPython's and ipykernel's execution machinery);
* one *guard* cell right before every check cell: :func:`before_check` compares the kernel
  with that record, puts back whatever student code replaced (functions, classes' methods,
  the data of labkit's modules: dicts, tiers, arrays, paths, see :mod:`.moduledata`; the import
  system; labkit's environment variables), rebinds the names the check cells rely on
  (``checks``, ``require``, ``np`` ...) and prints one ``LABKIT-GUARD`` line per finding. The
  grader turns these lines into flags in grades.csv and in the feedback.

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
import builtins
import importlib
import importlib.util
import os
import site
import sys
import sysconfig
import threading
import types

from . import moduledata

__all__ = ["init", "before_check", "library_roots", "PREFIX"]

PREFIX = "LABKIT-GUARD"

# Modules whose callables check cells use directly or indirectly (labkit.* is added at run time).
WATCHED = ("builtins", "math", "numpy", "numpy.linalg", "torch", "torch.nn.functional", "scipy.stats", "importlib",
           "importlib.util", "os", "os.path")
# Environment variables labkit reads to find its files or to know it is graded: put back before each check.
ENVIRONMENT = ("LABKIT_GRADING", "LABKIT_QUICK", "LABKIT_OFFLINE", "LABKIT_DEVICE", "LABKIT_DATA", "LABKIT_REPO",
               "LABKIT_CHECKPOINTS", "CUDA_VISIBLE_DEVICES")
# The genuine import machinery, taken when the init cell imports this module (before any notebook code).
_IMPORT_MODULE, _RELOAD, _FIND_SPEC = importlib.import_module, importlib.reload, importlib.util.find_spec
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
        if name in seen or name.startswith("labkit.instructor"):
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
    _STATE["modules"] = {name: (sys.modules[name], _snapshot_namespace(vars(sys.modules[name])))
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


def _foreign_object(obj) -> bool:
    """An object (a finder, a hook) whose class or callables come from notebook code."""
    if _foreign(obj):
        return True
    cls = obj if isinstance(obj, type) else type(obj)
    return any(_foreign(v) for c in cls.__mro__ if c is not object for v in vars(c).values())


def _repair_import_system(findings) -> None:
    """Import finders and path hooks added by notebook code are removed; labkit modules not from labkit dropped."""
    for label, current, original in (("sys.meta_path", sys.meta_path, _STATE["meta_path"]),
                                     ("sys.path_hooks", sys.path_hooks, _STATE["path_hooks"])):
        extra = [f for f in current if not any(f is o for o in original) and _foreign_object(f)]
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


def _flag_threads_and_tracers(findings) -> None:
    """Threads started by notebook code run during the check: reported (they cannot be stopped safely)."""
    for thread in threading.enumerate():
        if thread.ident in _STATE["threads"] or not thread.is_alive():
            continue
        target = getattr(thread, "_target", None)
        if _foreign(target) or _foreign(getattr(type(thread), "run", None)):
            findings.append(f"a thread started by notebook code ({thread.name}) is still running during the check")
    for getter, setter, label in ((sys.gettrace, sys.settrace, "trace"), (sys.getprofile, sys.setprofile, "profile")):
        hook = getter()
        if hook is not None and _foreign(hook):
            findings.append(f"a {label} function set by notebook code (sys.set{label}) was removed")
            setter(None)


def before_check(check_id=None) -> None:
    """Put back what notebook code replaced and report it (the cell right before each check)."""
    if _STATE is None:
        _say(f"guard state lost: {__name__} was removed from sys.modules or reloaded")
        return
    findings = []
    for step in (_repair_streams, _repair_shell, _repair_environment, _repair_import_system, _repair_modules,
                 _repair_data, _repair_classes, _flag_threads_and_tracers, _rebind_aliases):
        try:
            step(findings)
        except Exception as exc:  # keep going: a failing repair must not block the check
            findings.append(f"guard step {step.__name__} failed ({type(exc).__name__}: {exc})")
    where = f"before check {check_id!r}" if check_id else "at the end"
    for finding in dict.fromkeys(findings):
        _say(f"{where}: {finding}")
