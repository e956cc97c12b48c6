"""labkit.train, the helpers every lab's training loop shares: EMA of weights, epoch means, snapshots, stopwatch."""
import pytest
import torch
from torch import nn

from labkit import train
from labkit.train import EpochLog, Snapshots, Stopwatch, WeightAverage, ema_decay


def _net(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))


def _set_weights(model, value):
    """Every parameter filled with ``value``; batch-norm statistics set from it too, so buffers change."""
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(value)
        model[1].running_mean.fill_(10 * value)
        model[1].num_batches_tracked.fill_(int(100 * value))


def test_weight_average_matches_a_hand_computation_including_buffers():
    model = _net()
    _set_weights(model, 1.0)
    ema = WeightAverage(model, decay=0.9)
    assert ema.model is not model and not ema.model.training
    assert all(not p.requires_grad for p in ema.model.parameters())
    _set_weights(model, 2.0)
    ema.update(model)
    _set_weights(model, 4.0)
    ema.update(model)
    expected = 0.9 * (0.9 * 1.0 + 0.1 * 2.0) + 0.1 * 4.0   # 1.39
    for p in ema.model.parameters():
        torch.testing.assert_close(p, torch.full_like(p, expected))
    # Floating-point buffers (batch-norm statistics) are averaged like the weights: 10 -> 20 -> 40.
    torch.testing.assert_close(ema.model[1].running_mean, torch.full((3,), 0.9 * (0.9 * 10 + 0.1 * 20) + 0.1 * 40))
    assert ema.model[1].num_batches_tracked.item() == 400      # integer counters are copied


def test_weight_average_keeps_its_own_copy_until_updated():
    model = _net()
    _set_weights(model, 1.0)
    ema = WeightAverage(model, decay=0.5)
    _set_weights(model, 3.0)
    assert all(torch.all(p == 1.0) for p in ema.model.parameters())
    ema.update(model)
    assert all(torch.all(p == 2.0) for p in ema.model.parameters())


def test_weight_average_with_decay_zero_is_the_latest_weights():
    model = _net()
    ema = WeightAverage(model, decay=0.0)
    _set_weights(model, 0.37)
    ema.update(model)
    for averaged, current in zip(ema.model.parameters(), model.parameters()):
        assert torch.equal(averaged, current)


@pytest.mark.parametrize("decay", [1.0, 1.5, -0.1])
def test_weight_average_refuses_a_decay_outside_0_1(decay):
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        WeightAverage(_net(), decay=decay)


def test_ema_decay_spans_a_tenth_of_the_run_within_its_bounds():
    assert ema_decay(150) == pytest.approx(1 - 1 / 15)          # quick run: averages over ~15 steps
    assert ema_decay(10_000) == pytest.approx(0.999)            # span 1,000 steps = the cap
    assert ema_decay(1_000_000) == 0.999                        # never above `longest`
    assert ema_decay(5) == 0.0                                  # a span under one step: the latest weights
    assert ema_decay(2000, horizon=0.5, longest=0.9999) == pytest.approx(1 - 1 / 1000)
    for steps in (1, 7, 150, 5000, 10**7):
        assert 0.0 <= ema_decay(steps) <= 0.999
        WeightAverage(_net(), ema_decay(steps))                 # always a valid decay


@pytest.mark.parametrize("steps", [0, -3])
def test_ema_decay_refuses_an_empty_run(steps):
    with pytest.raises(ValueError, match="total_steps must be positive"):
        ema_decay(steps)


def test_epoch_log_averages_each_key_over_its_own_count():
    log = EpochLog()
    for step in range(3):              # 2 D steps per G step: loss_d logged twice as often as loss_g
        log.add({"loss_d": 1.0 + step})
        log.add({"loss_d": 2.0 + step})
        log.add({"loss_g": torch.tensor(0.5 * step)})
    assert log.counts == {"loss_d": 6, "loss_g": 3}
    assert log.means() == pytest.approx({"loss_d": 15.0 / 6, "loss_g": 1.5 / 3})  # 1+2+2+3+3+4, 0+0.5+1
    assert isinstance(log.totals["loss_g"], float)
    history = log.end_epoch()
    assert set(history) == {"loss_d", "loss_g"}   # pytest 9 compares no nested containers with approx
    assert history["loss_d"] == pytest.approx([2.5]) and history["loss_g"] == pytest.approx([0.5])
    assert log.totals == {} and log.counts == {}
    log.add({"loss_d": 4.0, "loss_g": 1.0})
    same = log.end_epoch(history)
    assert same is history and history["loss_d"] == pytest.approx([2.5, 4.0])
    assert history["loss_g"] == pytest.approx([0.5, 1.0])


class _Shift(nn.Module):
    """Adds a learnable number to its input; counts calls and records whether it ran in eval mode."""

    def __init__(self):
        super().__init__()
        self.shift = nn.Parameter(torch.zeros(()))
        self.modes = []

    def forward(self, z):
        self.modes.append(self.training)
        return z + self.shift


def test_snapshots_every_n_epochs_and_the_last_one_on_the_same_noise():
    G = _Shift()
    snaps = Snapshots((torch.arange(4.0).reshape(4, 1),), every=3)
    taken = []
    for epoch in range(8):
        with torch.no_grad():
            G.shift.fill_(epoch)
        taken.append(snaps.take(epoch, G, last=epoch == 7))
    assert taken == [True, False, False, True, False, False, True, True]
    assert [epoch for epoch, _ in snaps.frames] == [0, 3, 6, 7]
    for epoch, frame in snaps.frames:
        assert frame.shape == (4, 1) and frame.dtype.name == "float32"
        assert frame[:, 0].tolist() == [epoch + i for i in range(4)]   # same noise, only the weights moved
    assert G.modes == [False] * 4 and G.training  # evaluated in eval mode, training mode restored


def test_stopwatch_leaves_paused_time_out(monkeypatch):
    clock = iter([100.0, 101.0, 104.0, 110.0])  # start, pause start, pause end, reading
    monkeypatch.setattr(train.time, "perf_counter", lambda: next(clock))
    watch = Stopwatch()
    with watch.pause():
        pass
    assert watch.seconds == pytest.approx(10.0 - 3.0)


def test_stopwatch_counts_a_pause_that_raises(monkeypatch):
    clock = iter([0.0, 1.0, 3.0, 5.0])
    monkeypatch.setattr(train.time, "perf_counter", lambda: next(clock))
    watch = Stopwatch()
    with pytest.raises(RuntimeError):
        with watch.pause():
            raise RuntimeError("plot failed")
    assert watch.seconds == pytest.approx(5.0 - 2.0)


def test_weight_average_update_is_a_lerp_of_each_tensor_bit_for_bit():
    """One call for all tensors, the same numbers as a lerp_ per tensor (what the shipped checkpoints used)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.Linear(7, 3))
    ema = WeightAverage(model, decay=0.97)
    by_hand = WeightAverage(model, decay=0.97).model
    for _ in range(25):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        model(torch.randn(16, 5))  # moves the batch-norm statistics and its counter
        ema.update(model)
        with torch.no_grad():
            for mine, theirs in zip(list(by_hand.parameters()) + list(by_hand.buffers()),
                                    list(model.parameters()) + list(model.buffers())):
                mine.lerp_(theirs, 0.03) if mine.is_floating_point() else mine.copy_(theirs)
    for key, value in by_hand.state_dict().items():
        assert torch.equal(ema.model.state_dict()[key], value), key
