"""FlatAdam gives torch.optim.Adam's weights bit for bit, shares its state format and keeps its hooks."""
import copy

import pytest
import torch
from torch import nn

from labkit.models.mlp import MLPDiscriminator, MLPGenerator
from labkit.optim import FlatAdam


def _nets(seed=0):
    torch.manual_seed(seed)
    return MLPGenerator(8, (64, 32, 16), "leaky_relu", data_mean=1.0, data_std=2.0)


def _train(model, opt, steps, seed=1, scheduler=None, skip=None):
    """``steps`` updates on a fixed stream of losses; ``skip``: a parameter left without a gradient from step 3."""
    generator = torch.Generator().manual_seed(seed)
    for i in range(steps):
        opt.zero_grad()
        z = torch.randn(64, model.latent_dim, generator=generator)
        loss = (model(z) - 3.0).pow(2).mean()
        loss.backward()
        if skip is not None and i >= 3:
            skip.grad = None
        opt.step()
        if scheduler is not None:
            scheduler.step()
    return model


def _same(a: nn.Module, b: nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.mark.parametrize("betas, lr, schedule", [((0.9, 0.999), 1e-3, False), ((0.5, 0.999), 2e-3, True),
                                                 ((0.0, 0.9), 1e-2, False)])
def test_flat_adam_gives_adams_weights_bit_for_bit(betas, lr, schedule):
    a, b = _nets(), _nets()
    opt_a = torch.optim.Adam(a.parameters(), lr=lr, betas=betas)
    opt_b = FlatAdam(b.parameters(), lr=lr, betas=betas)
    sched = (lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=40)) if schedule else (lambda o: None)
    _train(a, opt_a, 40, scheduler=sched(opt_a))
    _train(b, opt_b, 40, scheduler=sched(opt_b))
    assert _same(a, b)
    assert not _same(a, _nets())  # the weights did move


def test_flat_adam_keeps_the_weights_and_makes_them_views_of_one_tensor():
    model, reference = _nets(), _nets()
    opt = FlatAdam(model.parameters(), lr=1e-3)
    assert _same(model, reference)
    storages = {p.untyped_storage().data_ptr() for p in model.parameters()}
    assert storages == {opt._weights.untyped_storage().data_ptr()}


def test_state_dicts_move_between_flat_adam_and_adam_without_changing_the_result():
    reference = _nets()
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3)
    _train(reference, opt_ref, 10)
    # Adam -> FlatAdam: continue from Adam's state
    flat_model = copy.deepcopy(reference)
    flat = FlatAdam(flat_model.parameters(), lr=1e-3)
    flat.load_state_dict(opt_ref.state_dict())
    # FlatAdam -> Adam: a second FlatAdam run saved after 10 steps, continued by Adam
    other = _nets()
    opt_other = FlatAdam(other.parameters(), lr=1e-3)
    _train(other, opt_other, 10)
    saved = opt_other.state_dict()
    steps = [entry["step"] for entry in saved["state"].values()]
    assert len({id(s) for s in steps}) == len(steps), "each parameter needs a step count of its own, as Adam's"
    plain = torch.optim.Adam(other.parameters(), lr=1e-3)
    plain.load_state_dict(saved)
    for model, opt in ((reference, opt_ref), (flat_model, flat), (other, plain)):
        _train(model, opt, 10, seed=2)
    assert _same(reference, flat_model) and _same(reference, other)


def test_a_parameter_without_gradient_is_left_alone_as_adam_does():
    a, b = _nets(), _nets()
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-3), FlatAdam(b.parameters(), lr=1e-3)
    _train(a, opt_a, 12, skip=a.net[0].bias)
    _train(b, opt_b, 12, skip=b.net[0].bias)
    assert _same(a, b)
    assert opt_b.state[b.net[0].bias]["step"].item() == 3 and opt_b.state[b.net[0].weight]["step"].item() == 12


def test_options_flat_adam_does_not_implement_are_adams_own():
    a, b = _nets(), _nets()
    opt_a = torch.optim.Adam(a.parameters(), lr=1e-3, weight_decay=0.1, amsgrad=True)
    opt_b = FlatAdam(b.parameters(), lr=1e-3, weight_decay=0.1, amsgrad=True)
    _train(a, opt_a, 8)
    _train(b, opt_b, 8)
    assert _same(a, b)


def test_weights_replaced_before_the_first_step_are_trained_where_they_are_now():
    a, b = _nets(), _nets()
    opt_a, opt_b = torch.optim.Adam(a.parameters(), lr=1e-3), FlatAdam(b.parameters(), lr=1e-3)
    for p in b.parameters():  # what model.to(other device) does to each parameter
        p.data = p.data.clone()
    _train(a, opt_a, 6)
    _train(b, opt_b, 6)
    assert _same(a, b)


def test_step_hooks_run_once_per_step():
    model = _nets()
    opt = FlatAdam(model.parameters(), lr=1e-3)
    torch.optim.Adam(MLPDiscriminator().parameters())  # a plain Adam puts torch's hook wrapper on Adam.step
    calls = []
    handles = [opt.register_step_pre_hook(lambda *_: calls.append("pre")),
               opt.register_step_post_hook(lambda *_: calls.append("post"))]
    _train(model, opt, 2)
    assert calls == ["pre", "post", "pre", "post"]
    for handle in handles:
        handle.remove()
    _train(model, opt, 1)
    assert len(calls) == 4


def test_zero_grad_clears_every_gradient_either_way():
    model = _nets()
    opt = FlatAdam(model.parameters(), lr=1e-3)
    model(torch.randn(4, 8)).sum().backward()
    opt.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    model(torch.randn(4, 8)).sum().backward()
    opt.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())


def test_under_the_profiler_steps_show_as_torch_names_them():
    model = _nets()
    opt = FlatAdam(model.parameters(), lr=1e-3)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        _train(model, opt, 2)
    names = {event.key for event in prof.key_averages()}
    assert "Optimizer.step#FlatAdam.step" in names and "Optimizer.zero_grad#FlatAdam.zero_grad" in names
