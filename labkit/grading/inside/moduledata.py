"""The data of labkit's modules (dicts, tiers, reference arrays, paths): recorded by the guard, put back before checks.

Runs inside a graded kernel. The guard's first cell records, for every module-level value of
labkit's modules that is not code, either a deep copy (plain data: numbers, strings, paths,
tuples, lists, dicts, sets, numpy arrays, tensors, and these nested) or, for a container of
other objects (a cache of models), which objects it held. Before each check :func:`restore`
puts every binding back to the recorded object and that object's content back to the record,
in place (so other modules that imported the same dict see it too), and reports what had
changed: ``QUALITY_TIERS.update(...)`` by notebook code is undone. Keys added to a dict since
(a cache filled by labkit itself, or planted by notebook code) are removed without a report: the
next check recomputes them.
"""
from __future__ import annotations

import enum
import types
from pathlib import PurePath
from typing import Dict, List, Tuple

__all__ = ["record_module", "restore"]

IMMUTABLE = (type(None), bool, int, float, complex, str, bytes, PurePath, range, enum.Enum, type(Ellipsis))
MAX_DEPTH = 8
MAX_ARRAY_BYTES = 64 * 2**20   # larger arrays are recorded by identity only


class NotData(Exception):
    """The value is not plain data (or too deep or too large to copy)."""


def _is_array(value) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def _is_tensor(value) -> bool:
    module = type(value).__module__ or ""
    return (module.startswith("torch") and hasattr(value, "detach") and hasattr(value, "clone")
            and type(value).__name__ in ("Tensor", "Parameter"))


def _is_numpy_scalar(value) -> bool:
    return type(value).__module__ == "numpy" and not _is_array(value) and hasattr(value, "dtype") and \
        hasattr(value, "item")


def copy_data(value, depth: int = 0):
    """A deep copy of plain data; :class:`NotData` for anything else."""
    if depth > MAX_DEPTH:
        raise NotData
    if isinstance(value, IMMUTABLE) or _is_numpy_scalar(value):
        return value
    if _is_array(value):
        if value.dtype == object or value.nbytes > MAX_ARRAY_BYTES:
            raise NotData
        return value.copy()
    if _is_tensor(value):
        if value.element_size() * value.nelement() > MAX_ARRAY_BYTES:
            raise NotData
        return value.detach().clone()
    if type(value) in (list, tuple, set, frozenset):
        return type(value)(copy_data(v, depth + 1) for v in value)
    if type(value) is dict:
        return {copy_data(k, depth + 1): copy_data(v, depth + 1) for k, v in value.items()}
    if type(value) is types.MappingProxyType:
        return types.MappingProxyType(copy_data(dict(value), depth + 1))
    raise NotData


def same(a, b, depth: int = 0) -> bool:
    """Whether two plain-data values are equal (arrays and tensors by shape, dtype and content)."""
    if type(a) is not type(b) or depth > MAX_DEPTH:
        return False
    if _is_array(a):
        return a.shape == b.shape and a.dtype == b.dtype and bool((a == b).all() if a.size else True) or (
            a.shape == b.shape and a.dtype == b.dtype and a.dtype.kind == "f" and
            bool(((a == b) | ((a != a) & (b != b))).all()))
    if _is_tensor(a):
        import torch

        return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a.detach(), b.detach()))
    if type(a) in (list, tuple):
        return len(a) == len(b) and all(same(x, y, depth + 1) for x, y in zip(a, b))
    if type(a) in (dict, types.MappingProxyType):
        return a.keys() == b.keys() and all(same(a[k], b[k], depth + 1) for k in a)
    try:
        return bool(a == b)
    except Exception:
        return False


Record = Dict[str, Tuple[object, str, object]]   # name -> (the object, "data" | "items" | "bound", its record)


def _record_value(value) -> Tuple[str, object]:
    try:
        return "data", copy_data(value)
    except NotData:
        pass
    if type(value) is dict:
        return "items", dict(value)
    if type(value) is list:
        return "items", list(value)
    return "bound", None


def record_module(module, skip=()) -> Record:
    """What to put back in ``module``: its values that are not code, functions, classes or modules."""
    record: Record = {}
    for key, value in list(vars(module).items()):
        if key in skip or (key.startswith("__") and key not in ("__path__", "__all__")):
            continue
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type,
                              types.ModuleType)) or callable(value):
            continue
        kind, saved = _record_value(value)
        if kind != "bound":
            record[key] = (value, kind, saved)
    return record


def _put_back_in_place(value, kind: str, saved) -> bool:
    """Put ``saved`` back into the object ``value``, in place; False when it cannot be done."""
    fresh = copy_data(saved) if kind == "data" else saved
    if type(value) is dict:
        value.clear()
        value.update(fresh)
    elif type(value) is list:
        value[:] = fresh
    elif type(value) is set:
        value.clear()
        value.update(saved)
    elif _is_array(value) and value.shape == saved.shape and value.dtype == saved.dtype:
        try:
            value.setflags(write=True)
            value[...] = saved
        except ValueError:
            return False
    elif _is_tensor(value) and value.shape == saved.shape and value.dtype == saved.dtype:
        import torch

        with torch.no_grad():
            value.copy_(saved)
    else:
        return False
    return True


def _changed_keys(value, saved) -> List[str]:
    """For a dict: the recorded keys whose value changed or went missing (new keys are not listed)."""
    if type(value) is not dict or type(saved) is not dict:
        return []
    return [str(k) for k in saved if k not in value or not (value[k] is saved[k] or same(value[k], saved[k]))]


def _restore_one(namespace, key, value, kind, saved) -> List[str]:
    where = namespace.get("__name__", "?") + "." + key
    findings = []
    if namespace.get(key, _MISSING) is not value:
        findings.append(f"{where} was {'deleted' if key not in namespace else 'rebound'}; restored")
        namespace[key] = value
    if kind == "data" and same(value, saved):
        return findings
    if kind == "items" and _same_items(value, saved):
        return findings
    changed = _changed_keys(value, saved) if type(value) is dict else ["*"]
    if not _put_back_in_place(value, kind, saved):
        namespace[key] = copy_data(saved) if kind == "data" else saved
    if changed:
        detail = f" (keys {', '.join(changed[:5])})" if changed != ["*"] else ""
        findings.append(f"{where} was changed{detail}; restored")
    return findings


_MISSING = object()


def _same_items(value, saved) -> bool:
    """A container of objects holds the very same objects as recorded."""
    if type(value) is dict:
        return value.keys() == saved.keys() and all(value[k] is saved[k] for k in saved)
    return len(value) == len(saved) and all(a is b for a, b in zip(value, saved))


def restore(module, record: Record) -> List[str]:
    """Put ``module``'s recorded data back; one finding per value that had been changed."""
    namespace = vars(module)
    findings: List[str] = []
    for key, (value, kind, saved) in record.items():
        try:
            findings += _restore_one(namespace, key, value, kind, saved)
        except Exception as exc:  # keep going: one odd value must not stop the rest
            findings.append(f"could not restore {namespace.get('__name__', '?')}.{key} ({type(exc).__name__}: {exc})")
    return findings
