"""Building blocks of the training-step checks every lab shares: gradient traps, spies, result dicts, logs.

A step check runs the student's function once on a fixed case with tiny networks and compares
what it returns and what it did to the weights with the reference solution. These helpers set the
traps (stale gradients that only ``zero_grad()`` removes, optimiser spies that see which gradients
exist at ``step()`` time) and turn the student's return value into plain floats with clear errors.
"""
from __future__ import annotations

from enum import Enum
from typing import Dict, Mapping, Optional, Sequence

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from . import CheckFailed, close, require

__all__ = ["STALE_GRADIENT", "flat_params", "flat_grads", "stale_gradients", "result_dict", "require_only_trained",
           "OptimizerSpy", "require_history", "require_value", "call_student", "build_student_model", "require_loss_tensor",
           "DeviceSlip", "device_slip"]

STALE_GRADIENT = 0.05  # what stale_gradients leaves in every .grad


def flat_params(module) -> np.ndarray:
    """All parameters of ``module`` as one float64 vector (buffers such as batch-norm statistics left out)."""
    return torch.cat([p.detach().reshape(-1).cpu() for p in module.parameters()]).numpy().astype(np.float64)


def flat_grads(module) -> np.ndarray:
    """All gradients of ``module`` as one vector, zeros where a parameter has none."""
    return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).cpu()
                      for p in module.parameters()]).numpy().astype(np.float64)


def stale_gradients(module) -> None:
    """Leave non-zero gradients behind, as an earlier step would: a missing zero_grad() then shows."""
    for p in module.parameters():
        p.grad = torch.full_like(p, STALE_GRADIENT)


def call_student(fn, what: str, *args, hint: str = ""):
    """``fn(*args)``; a CheckFailed naming ``what`` (e.g. "interpolate(a, b, 7)") if it raises, ``hint`` appended
    to a RuntimeError's message (what usually causes it there)."""
    try:
        return fn(*args)
    except NotImplementedError:
        raise CheckFailed(f"{what} still raises NotImplementedError: write the TODO lines and run the cell.") from None
    except (RuntimeError, TypeError, IndexError) as exc:
        extra = f" {hint}" if hint and isinstance(exc, RuntimeError) else ""
        raise CheckFailed(f"{what} failed: {type(exc).__name__}: {str(exc).splitlines()[0]}{extra}") from None


def build_student_model(cls, what: str, **kwargs):
    """``cls(**kwargs)``, the student's network; a CheckFailed if its TODO still raises or it refuses the given
    constructor arguments."""
    try:
        return cls(**kwargs)
    except NotImplementedError:
        raise CheckFailed(f"{what} still raises NotImplementedError: write its layers in the TODO cell and run it.") from None
    except TypeError as exc:
        raise CheckFailed(f"{what}({', '.join(f'{k}={v}' for k, v in kwargs.items())}) failed: {exc}. Keep the "
                          "constructor's arguments as given.") from None


def require_loss_tensor(value, name: str) -> float:
    """``value`` must be a one-number tensor attached to the graph (a loss to call .backward() on); returns it as a
    float, or fails naming what is wrong: not a tensor, not reduced to one number, detached."""
    require(torch.is_tensor(value), f"{name} must return the loss as a tensor attached to the graph, got "
                                    f"{type(value).__name__}: no .item(), no tuple.")
    require(value.numel() == 1, f"{name} returns a tensor of shape {tuple(value.shape)}, one value per sample: reduce "
                                "it to one number with .mean() over the batch.")
    require(value.requires_grad, f"{name} returns a tensor detached from the graph: no .item(), no .detach(), no "
                                 "torch.no_grad(), so .backward() reaches the network.")
    return float(value.detach())


def result_dict(out, keys: Sequence[str], name: str) -> Dict[str, float]:
    """The student's returned dict as ``{key: float}``, or a CheckFailed naming what is wrong with it."""
    require(isinstance(out, Mapping), f"{name} must return a dict with keys {list(keys)}, got {type(out).__name__}.")
    missing = [k for k in keys if k not in out]
    require(not missing, f"{name}'s result is missing {missing}; return {{{', '.join(repr(k) + ': ...' for k in keys)}}}.")
    values = {}
    for k in keys:
        v = out[k]
        if torch.is_tensor(v):
            require(v.numel() == 1, f"{name}: {k!r} must be one number (use .mean().item()), got a tensor of shape "
                                    f"{tuple(v.shape)}.")
            require(not v.requires_grad, f"{name}: {k!r} is a tensor attached to the graph; log loss.item() (a float) "
                                         "so the history does not keep every graph in memory.")
            v = v.item()
        require(isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool),
                f"{name}: {k!r} must be a number, got {type(v).__name__}.")
        values[k] = float(v)
    return values


def require_only_trained(trained, trained_before: np.ndarray, trained_name: str, frozen, frozen_before: np.ndarray,
                         frozen_name: str, optimizer: str) -> None:
    """The step named after ``trained`` must change its weights and leave ``frozen``'s alone."""
    require(close(flat_params(frozen), frozen_before, 0),
            f"The {frozen_name}'s weights changed in the {trained_name} step: only {optimizer}.step() belongs here.")
    require(not close(flat_params(trained), trained_before, 0),
            f"The {trained_name}'s weights did not change: call loss.backward() and then {optimizer}.step().")


def _fresh(grads: np.ndarray) -> bool:
    """Whether ``grads`` hold gradients a backward pass wrote (neither zero nor the stale ones the check left)."""
    return not bool(np.all(np.isclose(grads, STALE_GRADIENT) | (grads == 0)))


class OptimizerSpy:
    """Wraps an optimiser's ``step`` to record, at each call, the gradients of ``watched`` modules.

    ``spy.calls`` is a list of ``{name: flat gradient vector}``, one per ``step()``. The step check
    uses it to see whether the generator received gradients during the discriminator's step
    (a fake batch that was not detached) without changing what the step computes. It also wraps
    ``zero_grad`` so that :attr:`erased_before_step` can tell a ``zero_grad()`` placed between
    ``backward()`` and ``step()`` from a missing one.
    """

    def __init__(self, optimizer, **watched):
        self.optimizer = optimizer
        self.watched = watched
        self.calls = []
        self.events = []  # ("zero_grad" | "step", whether the optimiser's own gradients were fresh then)
        original, original_zero = optimizer.step, optimizer.zero_grad

        def step(*args, **kwargs):
            self.calls.append({name: flat_grads(module) for name, module in watched.items()})
            self.events.append(("step", _fresh(self._own_grads())))
            return original(*args, **kwargs)

        def zero_grad(*args, **kwargs):
            self.events.append(("zero_grad", _fresh(self._own_grads())))
            return original_zero(*args, **kwargs)

        optimizer.step, optimizer.zero_grad = step, zero_grad

    def _own_grads(self) -> np.ndarray:
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        return torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).detach().reshape(-1).cpu()
                          for p in params]).numpy().astype(np.float64)

    @property
    def erased_before_step(self) -> bool:
        """Whether a ``zero_grad()`` erased fresh gradients and the following ``step()`` then had none to use:
        zero_grad called after backward() instead of before it."""
        last_zero_fresh = False
        for kind, fresh in self.events:
            if kind == "zero_grad":
                last_zero_fresh = fresh
            elif last_zero_fresh and not fresh:
                return True
        return False


def require_history(history, keys: Sequence[str], expected_length: int, probability_keys: Sequence[str] = ()) -> None:
    """A training log: a dict with one finite float per epoch for each key; ``probability_keys`` in [0, 1]."""
    require(isinstance(history, Mapping), f"history must be a dict of lists, got {type(history).__name__}.")
    for key in keys:
        require(key in history, f"history has no {key!r}: append its epoch mean at the end of every epoch.")
        try:
            values = np.asarray(history[key], dtype=np.float64)
        except RuntimeError:  # numpy refuses tensors that require grad
            raise CheckFailed(f"history[{key!r}] holds tensors attached to the graph: append loss.item() (a float), "
                              "so the log does not keep every graph in memory.") from None
        except (TypeError, ValueError):
            raise CheckFailed(f"history[{key!r}] must be a list of numbers (floats from .item()).") from None
        require(values.ndim == 1, f"history[{key!r}] holds a list per epoch: append one number per epoch, the mean "
                                  "of the epoch's batch values.")
        if values.size > expected_length + 1 and values.size % expected_length == 0:
            raise CheckFailed(f"history[{key!r}] has {values.size} values, {values.size // expected_length} per epoch: "
                              f"append once per epoch (the mean of the epoch's batch values), {expected_length} in all.")
        off_by_one = {expected_length + 1: " One too many: append at the end of each epoch only, not also before "
                                           "training.",
                      expected_length - 1: " One short: append after every epoch, the last one included."}
        require(values.shape == (expected_length,), f"history[{key!r}] has {values.size} values, expected "
                                                    f"{expected_length} (one per epoch).{off_by_one.get(values.size, '')}")
        require(np.all(np.isfinite(values)), f"history[{key!r}] holds NaN or inf: training diverged or a value is wrong.")
    for key in probability_keys:
        values = np.asarray(history[key], dtype=np.float64)
        if "acc" in key and values.min() > 1 and values.max() <= 100:
            raise CheckFailed(f"history[{key!r}] goes up to {values.max():.4g}: a percentage? Log the share in "
                              "[0, 1], without the factor 100.")
        require(np.all((values >= 0) & (values <= 1)), f"history[{key!r}] must hold probabilities in [0, 1] "
                                                       "(the mean discriminator output), not losses.")


def name_torch_error(exc: BaseException, messages: Mapping[str, str]) -> None:
    """Turn PyTorch's error into a check's message: CheckFailed with the message of the first phrase of ``messages``
    found in the error's text (``"inplace operation"``, ``"second time"``, ...); returns when none is."""
    text = str(exc)
    for phrase, message in messages.items():
        if phrase in text:
            raise CheckFailed(message.replace("{first_line}", text.splitlines()[0] if text else "")) from None


def require_value(value: float, expected: float, mistakes: Sequence, otherwise: str, tol: float = 1e-4) -> None:
    """Pass if ``value`` is ``expected``; else name the first mistake whose value it matches.

    mistakes: ``(value a typical mistake gives, message naming it)`` pairs, most specific first.
    otherwise: the message when the value matches no known mistake.
    """
    if close(value, expected, tol):
        return
    for wrong, message in mistakes:
        if close(value, wrong, tol):
            raise CheckFailed(message)
    raise CheckFailed(otherwise)


class DeviceSlip(Enum):
    """What a function does that works on the CPU but fails once its inputs are on an accelerator."""
    CPU_TENSOR = "made a tensor on the CPU and used it with tensors on the accelerator"
    NUMPY_ON_DEVICE = "called .numpy() on a tensor still on the accelerator"


_DEVICE_ERRORS = ("is not on the expected device", "Expected all tensors to be on the same device",
                  "found at least two devices")


class _MetaAsAccelerator(TorchFunctionMode):
    """Lets code run to its end on ``meta`` tensors (shapes without data), as it would on a GPU: ``.item()`` and
    ``float()`` give 0.5, and ``.cpu()`` / ``.to("cpu")`` give zeros of the right shape on the CPU."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        tensor = args[0] if args and torch.is_tensor(args[0]) else None
        if tensor is not None and tensor.device.type == "meta":
            if func in (torch.Tensor.item, torch.Tensor.__float__):
                return 0.5
            to_cpu = func is torch.Tensor.cpu or (
                func is torch.Tensor.to and torch._C._nn._parse_to(*args[1:], **kwargs)[0] == torch.device("cpu"))
            if to_cpu:
                return torch.zeros(tensor.shape, dtype=tensor.dtype)
        return func(*args, **kwargs)


def device_slip(fn, *args) -> Optional[DeviceSlip]:
    """Run ``fn(*args)``, whose tensors and modules the caller put on the ``meta`` device, as on an accelerator.

    A CPU-only machine never sees a tensor made without ``device=`` fail; on ``meta`` it fails as on a GPU. Returns
    what went wrong with devices, or None; every other error is ignored (some operations need data meta has not):
    this probe is about devices only, and the caller has checked the values on the CPU already.
    """
    try:
        with _MetaAsAccelerator():
            fn(*args)
    except (RuntimeError, TypeError) as exc:
        message = str(exc)
        if any(text in message for text in _DEVICE_ERRORS):
            return DeviceSlip.CPU_TENSOR
        if "meta device type tensor to numpy" in message:
            return DeviceSlip.NUMPY_ON_DEVICE
    except Exception:  # noqa: BLE001 -- see the docstring: only device errors count here
        pass
    return None
