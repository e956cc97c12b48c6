"""labkit.sweep: short runs per candidate from the same start and batches, the table, the curves."""
import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from labkit.sweep import Nets, plot_sweep, smooth, sweep, sweep_table

matplotlib.use("Agg")


def _loader(n=40, batch=8, seed=0):
    data = torch.utils.data.TensorDataset(torch.randn(n, 3, generator=torch.Generator().manual_seed(1)), torch.zeros(n))
    return torch.utils.data.DataLoader(data, batch_size=batch, shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(seed))


def _build(settings):
    G, D = nn.Linear(2, 3), nn.Linear(3, 1)
    return Nets(G, D, torch.optim.SGD(G.parameters(), lr=settings["lr"]),
                torch.optim.SGD(D.parameters(), lr=settings["lr"]), settings)


def _step(nets, batch, index):
    real = batch[0]
    nets.opt_d.zero_grad()
    loss_d = (nets.D(real) - 1).pow(2).mean() + nets.D(nets.G(torch.randn(len(real), 2)).detach()).pow(2).mean()
    loss_d.backward()
    nets.opt_d.step()
    nets.opt_g.zero_grad()
    loss_g = (nets.D(nets.G(torch.randn(len(real), 2))) - 1).pow(2).mean()
    loss_g.backward()
    nets.opt_g.step()
    return {"loss_d": loss_d, "loss_g": loss_g.item(), "first_real": real[0, 0]}


def test_each_candidate_starts_from_the_same_weights_and_batches():
    firsts = {}

    def build(settings):
        nets = _build(settings)
        firsts[settings["lr"]] = nets.G.weight.detach().clone()
        return nets

    runs = sweep({"small": dict(lr=0.0), "large": dict(lr=0.1)}, build, _step, _loader(), steps=7, progress=False)
    assert [run.name for run in runs] == ["small", "large"]
    assert torch.equal(firsts[0.0], firsts[0.1])
    assert runs[0].log["first_real"] == runs[1].log["first_real"]         # the same batches, in the same order
    assert runs[0].steps == runs[1].steps == 7 and len(runs[0].log["loss_d"]) == 7   # 7 steps: round the loader once
    assert runs[0].log["loss_d"][0] == pytest.approx(runs[1].log["loss_d"][0])       # same start
    assert runs[0].log["loss_g"][-1] != pytest.approx(runs[1].log["loss_g"][-1])     # lr 0 never moves, 0.1 does


def test_the_loader_order_after_a_sweep_is_the_one_before_it():
    loader = _loader()
    untouched = [batch[0] for batch in _loader()]
    sweep({"a": dict(lr=0.01)}, _build, _step, loader, steps=3, progress=False)
    after = [batch[0] for batch in loader]
    assert all(torch.equal(a, b) for a, b in zip(after, untouched))


def test_table_has_a_row_per_candidate_with_end_means_and_scores():
    runs = sweep({"a": dict(lr=0.01), "b": dict(lr=0.05)}, _build, _step, _loader(), steps=10, progress=False,
                 score=lambda G: {"weight_norm": float(G.weight.norm())})
    rows = sweep_table(runs, keys=["loss_d"])
    assert [row["candidate"] for row in rows] == ["a", "b"]
    assert rows[0]["loss_d (end)"] == pytest.approx(runs[0].log["loss_d"][-1])  # the last tenth of 10 steps: one
    assert set(rows[0]) == {"candidate", "loss_d (end)", "seconds", "weight_norm"}
    assert rows[0]["weight_norm"] != rows[1]["weight_norm"]


def test_score_runs_in_eval_mode_without_gradients_and_leaves_training_mode():
    seen = {}

    def score(G):
        seen["training"], seen["grad"] = G.training, torch.is_grad_enabled()
        return {}

    runs = sweep({"a": dict(lr=0.01)}, _build, _step, _loader(), steps=2, progress=False, score=score)
    assert seen == {"training": False, "grad": False}
    assert runs[0].generator.training


def test_bad_sweeps_say_what_to_do():
    with pytest.raises(ValueError, match="at least one candidate"):
        sweep({}, _build, _step, _loader(), steps=3)
    with pytest.raises(ValueError, match="at least one step"):
        sweep({"a": dict(lr=0.1)}, _build, _step, _loader(), steps=0)


def test_smooth_is_a_running_mean_with_one_value_per_step():
    assert smooth([1, 2, 3, 4], 2).tolist() == [1.0, 1.5, 2.5, 3.5]
    assert smooth([5.0], 10).tolist() == [5.0]
    values = np.random.default_rng(0).normal(size=200)
    assert smooth(values, 20).std() < values.std() / 2
    assert smooth(values, 1).tolist() == values.tolist()


def test_plot_has_a_panel_per_key_and_a_curve_per_candidate():
    runs = sweep({"a": dict(lr=0.01), "b": dict(lr=0.05)}, _build, _step, _loader(), steps=5, progress=False)
    fig = plot_sweep(runs, ["loss_d", "loss_g"])
    axes = fig.axes
    assert [ax.get_title() for ax in axes] == ["loss_d", "loss_g"]
    assert all(len(ax.get_lines()) == 2 for ax in axes)
    assert [t.get_text() for t in axes[0].get_legend().get_texts()] == ["a", "b"]
    assert not any(math.isnan(y) for line in axes[0].get_lines() for y in line.get_ydata())


def test_plot_puts_two_panels_a_row():
    runs = sweep({"a": dict(lr=0.01)}, _build, _step, _loader(), steps=5, progress=False)
    fig = plot_sweep(runs, ["loss_d", "loss_g", "first_real"])
    assert [ax.get_title() for ax in fig.axes] == ["loss_d", "loss_g", "first_real"]   # the fourth slot removed
    rows = sorted({round(ax.get_position().y0, 3) for ax in fig.axes})
    assert len(rows) == 2


def test_a_short_sweep_has_whole_step_ticks():
    runs = sweep({"a": dict(lr=0.01)}, _build, _step, _loader(), steps=3, progress=False)
    fig = plot_sweep(runs, ["loss_d"])
    assert [float(x) for x in fig.axes[0].get_xticks()] == [1.0, 2.0, 3.0]


def test_a_key_no_run_logged_says_so_instead_of_an_empty_panel():
    runs = sweep({"a": dict(lr=0.01)}, _build, _step, _loader(), steps=2, progress=False)
    fig = plot_sweep(runs, ["loss_d", "loss_x"])
    assert [t.get_text() for t in fig.axes[1].texts] == ["no loss_x logged in these steps"]
    assert not fig.axes[0].texts
