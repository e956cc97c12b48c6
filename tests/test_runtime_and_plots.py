import numpy as np
import pytest
import torch

import labkit
from labkit import runtime
from labkit.viz.animation import GifWriter
from labkit.viz.live import LiveView
from labkit.viz.plotting import image_grid, plot_1d, plot_losses, plot_moments


def test_seed_everything_makes_torch_and_numpy_repeat():
    runtime.seed_everything(5)
    a = (torch.rand(3), np.random.rand(3))
    runtime.seed_everything(5)
    b = (torch.rand(3), np.random.rand(3))
    torch.testing.assert_close(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert torch.backends.cudnn.benchmark is False
    with pytest.raises(TypeError):
        runtime.seed_everything("5")


def test_quick_mode_switch(monkeypatch):
    monkeypatch.setenv("LABKIT_QUICK", "0")
    assert runtime.quick_mode() is False
    assert runtime.quick_mode(True) is True and runtime.quick_mode() is True


def test_get_device_respects_override(monkeypatch):
    monkeypatch.setenv("LABKIT_DEVICE", "cpu")
    assert runtime.get_device().type == "cpu"
    monkeypatch.delenv("LABKIT_DEVICE")
    assert runtime.get_device().type in ("cpu", "cuda", "mps")


def test_setup_prints_and_returns_the_lab(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LABKIT_OUTPUT", str(tmp_path))
    lab = labkit.setup("01_gan_1d", seed=3, quick=True)
    assert lab.quick and lab.seed == 3 and lab.output == tmp_path / "01_gan_1d" and lab.output.is_dir()
    assert lab.pick(full=100, quick=2) == 2
    assert "quick mode ON" in capsys.readouterr().out


def test_plots_and_gif(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    gif = GifWriter(tmp_path / "t.gif", fps=5, hold_last=2)
    for shift in (0.0, 0.5, 1.0):
        gif.add(plot_1d(np.random.default_rng(0).normal(4 + shift, 0.5, 2000), "normal", title=str(shift)))
    path = gif.save()
    import imageio.v3 as iio

    frames = iio.imread(path, index=None)
    assert len(frames) == 3 and frames[0].shape == frames[-1].shape
    durations = [iio.immeta(path, index=i)["duration"] for i in range(3)]
    assert durations == [200, 200, 600]  # the last frame is held
    assert not np.array_equal(frames[0], frames[2])
    with pytest.raises(ValueError, match="same size"):
        gif.add(np.zeros((5, 5, 3), np.uint8))
    fig = plot_losses({"loss_d": [1, 2], "loss_g": [2, 1]})
    assert len(fig.axes[0].lines) == 2
    assert plot_moments([1, 2], [0.5, 0.6], "normal").axes
    grid = image_grid(np.random.rand(12, 28, 28), labels=np.arange(12) % 10, nrow=6, value_range=(0, 1))
    assert len(grid.axes[0].texts) == 12
    with pytest.raises(ValueError, match="N×28×28"):
        image_grid(np.zeros((2, 3)))


def test_empty_gif_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="No frames"):
        GifWriter(tmp_path / "x.gif").save()


def test_live_view_outside_jupyter_prints_lines(capsys):
    view = LiveView(total=4, desc="t", print_every=2)
    for i in range(4):
        view.update(loss=float(i))
    history = view.close()
    assert history["loss"] == [0.0, 1.0, 2.0, 3.0]
    assert capsys.readouterr().out.count("[t]") == 2
