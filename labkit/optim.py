"""Adam for tiny networks: the same updates as ``torch.optim.Adam``, bit for bit, in one pass over all weights.

Lab 01's networks have 4 to 8 weight tensors of a few dozen to a few thousand numbers. For them an Adam step
costs what torch spends per tensor (about 8 small operations each, 5 to 10 µs apiece on a course laptop's
CPU), not arithmetic: half a millisecond a step, a fifth of a baseline's training time. ``FlatAdam`` keeps
every weight of the network in one flat tensor (each parameter is a view into it) and the two moment
estimates likewise, so one step is 8 operations whatever the number of tensors::

    opt_g = FlatAdam(G.parameters(), lr=1e-4, betas=(0.9, 0.999))   # used like torch.optim.Adam
    opt_g.zero_grad(); loss.backward(); opt_g.step()

The operations and their order are ``torch.optim.Adam``'s (its single-tensor path), applied to the
concatenation, and every one of them works element by element: the weights after any number of steps are
identical to Adam's (``tests/test_optim.py`` trains both and compares every bit). It is an ``Adam`` (the
same ``state_dict``, learning-rate schedulers work on it); whenever the one-pass update would not be
Adam's (a parameter without a gradient, weights moved to another device, options such as ``weight_decay``
or ``amsgrad``), it hands the step to ``torch.optim.Adam`` itself, which works on the same state.
"""
from __future__ import annotations

from typing import Iterable, List

import torch

__all__ = ["FlatAdam"]


class FlatAdam(torch.optim.Adam):
    """``torch.optim.Adam(params, lr, betas, eps)`` with all weights and moments in flat tensors (module docstring)."""

    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, **options):
        params = list(params)
        super().__init__(params, lr=lr, betas=betas, eps=eps, **options)
        self._params: List[torch.nn.Parameter] = params
        self._one_pass = self._can_flatten(params) and self._plain(self.defaults)
        if self._one_pass:
            self._flatten(params)

    @staticmethod
    def _can_flatten(params) -> bool:
        if not params or any(not isinstance(p, torch.Tensor) for p in params):
            return False  # parameter groups given as dicts: torch's own step
        first = params[0]
        return all(p.device == first.device and p.dtype == first.dtype and p.is_floating_point()
                   and not p.is_complex() and p.layout == torch.strided for p in params)

    @staticmethod
    def _plain(options: dict) -> bool:
        """Whether the options are those of the one-pass update: no weight decay, AMSGrad or the like."""
        return not (options["weight_decay"] or options["amsgrad"] or options["maximize"] or options["capturable"]
                    or options["differentiable"] or options["fused"] or options.get("decoupled_weight_decay"))

    @torch.no_grad()
    def _flatten(self, params) -> None:
        """Move the weights into one flat tensor (values unchanged) and give each parameter its moments as views."""
        self._weights = torch.cat([p.detach().reshape(-1) for p in params])
        self._exp_avg = torch.zeros_like(self._weights)
        self._exp_avg_sq = torch.zeros_like(self._weights)
        # One step count, the same tensor in every parameter's state: one increment a step (state_dict() hands
        # out a copy per parameter, and Adam's own step gets its own copies: it increments each one).
        self._step_count = torch.tensor(0.0, dtype=torch.float32)
        for p, (weights, exp_avg, exp_avg_sq) in zip(params, self._views(self._weights, self._exp_avg,
                                                                           self._exp_avg_sq)):
            p.data = weights
            # Adam's own state layout, so state_dict(), load_state_dict() and Adam's step see the same numbers.
            self.state[p] = {"step": self._step_count, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
        self._pointers = [p.data_ptr() for p in params]
        self._group_params = self.param_groups[0]["params"]

    def _views(self, *flats: torch.Tensor):
        """For each parameter in order, its part of each flat tensor, shaped like it."""
        offset = 0
        for p in self._params:
            size = p.numel()
            yield tuple(flat[offset:offset + size].view_as(p) for flat in flats)
            offset += size

    def _one_pass_applies(self) -> bool:
        """Whether this step can be the one-pass update: otherwise Adam's own step gives the same result."""
        if not self._one_pass or len(self.param_groups) != 1:
            return False
        group = self.param_groups[0]
        if group["params"] is not self._group_params or not self._plain(group):
            return False
        return all(p.grad is not None and not p.grad.is_sparse and p.data_ptr() == pointer
                   for p, pointer in zip(self._params, self._pointers))

    def _leave_one_pass(self) -> None:
        """Hand the state over to Adam's own step, for good: a step count per parameter; and, if no step was
        taken yet and the weights left the flat tensor (``model.to("cuda")`` after the optimiser was made),
        no state at all, so Adam makes its own where the weights are now."""
        if not self._one_pass:
            return
        self._one_pass = False
        moved = any(p.data_ptr() != pointer for p, pointer in zip(self._params, self._pointers))
        if moved and self._step_count.item() == 0:
            self.state.clear()
            return
        for p in self._params:
            self.state[p]["step"] = self.state[p]["step"].clone()

    def step(self, closure=None):
        """One Adam step for every parameter (in one pass when that is Adam's update: see the module docstring)."""
        if _step_hooks(self) or torch.autograd._profiler_enabled():  # as torch.optim runs it: hooks, region
            return torch.optim.Optimizer.profile_hook_step(FlatAdam._step)(self, closure)
        return self._step(closure)

    # torch.optim.Optimizer wraps every subclass's step in a profiler region that runs the step hooks: 120 µs a
    # call here, about what the whole update costs. This step runs that wrapper only when there are hooks or
    # a profiler is on.
    step.hooked = True

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Optimizer's ``zero_grad``; without its profiler region when no profiler is on (100 µs a call here)."""
        if not set_to_none or not self._one_pass or torch.autograd._profiler_enabled():
            return super().zero_grad(set_to_none)
        for p in self._params:
            p.grad = None

    def _step(self, closure=None):
        if not self._one_pass_applies():
            # From here on Adam's own step: it may update some parameters and not others (no gradient), and
            # the one-pass update needs one step count for all.
            self._leave_one_pass()
            return _unhooked(torch.optim.Adam.step)(self, closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            self._update()
        return loss

    def _update(self) -> None:
        # torch.optim.adam._single_tensor_adam, the non-capturable branch, on the concatenated tensors.
        group = self.param_groups[0]
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        grad = torch.cat([p.grad.reshape(-1) for p in self._params])
        self._step_count += 1
        self._exp_avg.lerp_(grad, 1 - beta1)
        self._exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = self._step_count.item()
        bias_correction1 = 1 - beta1 ** step
        bias_correction2 = 1 - beta2 ** step
        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2 ** 0.5
        denom = (self._exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
        self._weights.addcdiv_(self._exp_avg, denom, value=-step_size)

    def state_dict(self) -> dict:
        """Adam's ``state_dict``, with a step count of its own per parameter (as Adam's), not the shared one."""
        saved = super().state_dict()
        saved["state"] = {key: {**entry, "step": entry["step"].clone()} for key, entry in saved["state"].items()}
        return saved

    def load_state_dict(self, state_dict) -> None:
        """Adam's ``load_state_dict``; the loaded moments are copied into the flat tensors (views stay views)."""
        super().load_state_dict(state_dict)
        if not self._one_pass:
            return
        steps = {float(self.state[p]["step"]) for p in self._params if "step" in self.state[p]}
        if len(steps) != 1 or any(set(self.state[p]) != {"step", "exp_avg", "exp_avg_sq"} for p in self._params):
            # Several step counts (saved by Adam after a step where some parameter had no gradient), or not
            # an Adam state: Adam's own step from here on, on the state as loaded.
            self._one_pass = False
            return
        with torch.no_grad():
            self._step_count.fill_(steps.pop())
            for p, (exp_avg, exp_avg_sq) in zip(self._params, self._views(self._exp_avg, self._exp_avg_sq)):
                exp_avg.copy_(self.state[p]["exp_avg"])
                exp_avg_sq.copy_(self.state[p]["exp_avg_sq"])
                self.state[p] = {"step": self._step_count, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _step_hooks(optimizer) -> bool:
    """Whether any optimiser step hook is registered, for this optimiser or for all."""
    from torch.optim import optimizer as module

    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or getattr(module, "_global_optimizer_pre_hooks", None)
                or getattr(module, "_global_optimizer_post_hooks", None))


def _unhooked(step):
    """``Adam.step`` without torch's hook wrapper (which the first plain Adam puts on it): hooks run once."""
    return step.__wrapped__ if getattr(step, "hooked", False) and hasattr(step, "__wrapped__") else step
