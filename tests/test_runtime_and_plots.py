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


@pytest.fixture
def keep_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_setup_prints_and_returns_the_lab(tmp_path, monkeypatch, capsys, keep_threads):
    monkeypatch.setenv("LABKIT_OUTPUT", str(tmp_path))
    monkeypatch.delenv("LABKIT_THREADS", raising=False)
    lab = labkit.setup("01_gan_1d", seed=3, quick=True)
    assert lab.quick and lab.seed == 3 and lab.output == tmp_path / "01_gan_1d" and lab.output.is_dir()
    assert lab.pick(full=100, quick=2) == 2
    line = capsys.readouterr().out
    assert "quick mode ON" in line and "| 1 CPU thread (tiny networks" in line


def test_setup_chooses_threads_per_lab_env_or_argument(tmp_path, monkeypatch, capsys, keep_threads):
    monkeypatch.setenv("LABKIT_OUTPUT", str(tmp_path))
    monkeypatch.delenv("LABKIT_THREADS", raising=False)
    torch.set_num_threads(2)
    labkit.setup("01_gan_1d", quick=True)
    assert torch.get_num_threads() == 1                       # the 1D lab: one thread, on purpose
    torch.set_num_threads(2)
    labkit.setup("03_dcgan_mnist", quick=True)
    assert torch.get_num_threads() == 2 and "2 CPU threads (torch default)" in capsys.readouterr().out
    monkeypatch.setenv("LABKIT_THREADS", "2")
    labkit.setup("01_gan_1d", quick=True)
    assert torch.get_num_threads() == 2 and "($LABKIT_THREADS)" in capsys.readouterr().out
    labkit.setup("01_gan_1d", quick=True, threads=1)
    assert torch.get_num_threads() == 1 and "1 CPU thread (asked for)" in capsys.readouterr().out
    with pytest.raises(ValueError, match="at least 1"):
        runtime.choose_threads("01_gan_1d", 0)


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
    one_epoch = plot_losses({"loss_c": [-4.2], "loss_g": [3.1]}).axes[0]   # a quick run's log: visible points
    assert all(line.get_marker() == "o" and list(line.get_xdata()) == [1] for line in one_epoch.lines)
    assert one_epoch.get_xlabel() == "epoch" and list(one_epoch.get_xticks()) == [1]
    assert plot_moments([1, 2], [0.5, 0.6], "normal").axes
    grid = image_grid(np.random.rand(12, 28, 28), labels=np.arange(12) % 10, nrow=6, value_range=(0, 1))
    assert len(grid.axes[0].texts) == 12
    with pytest.raises(ValueError, match="N×H×W or N×1×H×W grey images"):
        image_grid(np.zeros((2, 3)))


def test_plot_1d_marks_off_axis_mass_instead_of_drawing_edge_spikes():
    """A generator whose mass lies beyond the x-range: no bars at the edges, the shares written at each edge, and
    the bars that are drawn keep the density of all samples (not renormalised to the shown part)."""
    import matplotlib

    matplotlib.use("Agg")
    rng = np.random.default_rng(0)
    samples = np.concatenate([rng.normal(4.0, 0.5, 6000), np.full(3000, 9.0), np.full(1000, -3.0)])
    fig = plot_1d(samples, "normal", bins=40)
    ax = fig.axes[0]
    heights = list(ax.labkit_1d["histogram"].get_data().values)        # the histogram's one step patch
    assert len(ax.patches) == 1 and len(heights) == 40 and max(heights[0], heights[-1]) < 0.05   # clipping put 30 % and 10 % there
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 2 and "10.0% of samples below" in texts[0] and "30.0% of samples above" in texts[1]
    width = (ax.get_xlim()[1] - ax.get_xlim()[0]) / 40
    assert sum(heights) * width == pytest.approx(0.6, abs=0.01)     # 60 % of the samples are on the axis
    inside = plot_1d(rng.normal(4.0, 0.5, 5000), "normal")
    assert not inside.axes[0].texts


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


def test_frames_1d_draws_what_a_full_redraw_draws():
    import matplotlib.pyplot as plt
    from labkit.viz.plotting import Frames1D, figure_to_array, plot_1d, update_1d

    rng = np.random.default_rng(0)
    fig = plot_1d(rng.normal(4.0, 0.5, 2000), "normal", title="first", xlim=(1.5, 6.5), ylim=(0, 1.2))
    fig.set_dpi(72)
    figure_to_array(fig)
    fig.set_layout_engine("none")
    frames = Frames1D(fig)
    for samples, title in [(rng.normal(3.0, 0.3, 2000), "narrow, left"), (rng.normal(6.0, 1.0, 2000), "wide, off axis")]:
        fast = frames.frame(samples, title)
        update_1d(fig, samples, title)
        full = figure_to_array(fig)
        assert fast.shape == full.shape and fast.dtype == np.uint8
        differs = np.abs(fast.astype(int) - full.astype(int)).max(axis=-1) > 24
        assert differs.mean() < 0.002, f"{differs.sum()} pixels differ from a full redraw"   # only antialiased edges
    assert not np.array_equal(frames.frame(rng.normal(3.0, 0.3, 2000), "a"), frames.frame(rng.normal(5.0, 0.3, 2000), "a"))
    plt.close(fig)


def test_save_figure_saves_draws_once_closes_and_shows_the_saved_file(tmp_path, monkeypatch, capsys, keep_threads):
    import matplotlib.pyplot as plt
    from PIL import Image

    from labkit.viz import plotting

    monkeypatch.setenv("LABKIT_OUTPUT", str(tmp_path))
    lab = runtime.setup("01_gan_1d", quick=True)
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [1, 0])
    draws = []
    fig.canvas.mpl_connect("draw_event", lambda event: draws.append(event))
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: object())           # as inside Jupyter
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert lab.save_figure("curve.png", fig) is None  # a cell ending with it shows no PosixPath(...) line
    path = tmp_path / "01_gan_1d" / "curve.png"
    assert Image.open(path).size == (4 * 80, 3 * 80)
    assert len(draws) == 1, "one drawing: the saved file is what is shown"
    assert not plt.fignum_exists(fig.number)
    assert len(shown) == 1 and shown[0].filename == str(path)
    monkeypatch.setattr("IPython.get_ipython", lambda: None)               # a script: saved, nothing shown
    plt.plot([1, 2])
    plotting.save_and_show(plt.gcf(), tmp_path / "current.png")
    assert (tmp_path / "current.png").stat().st_size > 0 and len(shown) == 1
    plt.close("all")


def test_plot_moments_numbers_snapshots_with_whole_ticks():
    import matplotlib.pyplot as plt

    fig = plot_moments([3.0, 3.5, 3.9], [1.0, 0.7, 0.5], "normal")
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1, 2, 3]
    assert list(ax.lines[0].get_xdata()) == [1, 2, 3]
    plt.close(fig)


# --------------------------------------------------------------------------- text beside the tiles, never on them


def _drawn(fig):
    import matplotlib

    matplotlib.use("Agg")
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _inside(inner, outer, slack=1.0) -> bool:
    return (inner.x0 >= outer.x0 - slack and inner.y0 >= outer.y0 - slack and inner.x1 <= outer.x1 + slack
            and inner.y1 <= outer.y1 + slack)


def _tile_boxes(ax, n, ncol, h=28, w=28, pitch_y=30, pitch_x=30):
    """The display boxes of the n tiles of an image_grid drawn with the given pitch."""
    from matplotlib.transforms import Bbox

    boxes = []
    for i in range(n):
        r, c = divmod(i, ncol)
        corners = ax.transData.transform([(c * pitch_x + 1, r * pitch_y + 1), (c * pitch_x + 1 + w, r * pitch_y + 1 + h)])
        boxes.append(Bbox.from_extents(corners[:, 0].min(), corners[:, 1].min(), corners[:, 0].max(),
                                       corners[:, 1].max()))
    return boxes


def test_image_grid_names_each_class_row_left_of_its_tiles_inside_the_figure():
    import matplotlib.pyplot as plt

    names = ["T-shirt/top", "Trouser", "Ankle boot"]
    fig = image_grid(np.random.rand(30, 28, 28), np.repeat(np.arange(3), 10), nrow=10, class_names=names,
                     value_range=(0, 1))
    renderer, ax = _drawn(fig), fig.axes[0]
    labels = [t for t in ax.get_yticklabels() if t.get_text()]
    assert [t.get_text() for t in labels] == names and not ax.texts          # row labels, no text on the tiles
    image = ax.images[0].get_window_extent(renderer)
    for label in labels:
        box = label.get_window_extent(renderer)
        assert box.x1 <= image.x0 + 1 and _inside(box, fig.bbox)             # left of the tiles, not clipped
        assert box.height >= 8                                               # readable: at least 10 pt at 80 dpi
    plt.close(fig)


def test_image_grid_captions_mixed_labels_under_their_tiles_not_on_them():
    import matplotlib.pyplot as plt

    from labkit.viz.plotting import CAPTION_BAND, GRID_GAP

    fig = image_grid(np.random.rand(12, 28, 28), labels=np.arange(12) % 10, nrow=6, value_range=(0, 1))
    renderer, ax = _drawn(fig), fig.axes[0]
    assert [t.get_text() for t in ax.texts] == [str(i % 10) for i in range(12)]
    tiles = _tile_boxes(ax, 12, 6, pitch_y=28 + GRID_GAP + CAPTION_BAND)
    for text in ax.texts:
        box = text.get_window_extent(renderer)
        assert not any(box.overlaps(tile) for tile in tiles) and _inside(box, fig.bbox)
    plt.close(fig)


def test_image_grid_row_labels_and_captions_together_and_their_counts_checked():
    import matplotlib.pyplot as plt

    fig = image_grid(np.random.rand(6, 28, 28), nrow=3, row_labels=["σ = 0.1", "σ = 2.0"],
                     captions=list("abcdef"), caption_colors=["tab:green"] * 6, value_range=(0, 1))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["σ = 0.1", "σ = 2.0"] and len(ax.texts) == 6
    plt.close(fig)
    with pytest.raises(ValueError, match="one per row"):
        image_grid(np.random.rand(6, 28, 28), nrow=3, row_labels=["only one"])
    with pytest.raises(ValueError, match="one caption per image"):
        image_grid(np.random.rand(6, 28, 28), nrow=3, captions=["a"])


def test_conditional_gif_frames_carry_their_class_labels(tmp_path):
    import imageio.v3 as iio

    from labkit.viz.animation import write_grid_gif

    frames = [(epoch, torch.rand(4, 1, 28, 28) * 2 - 1) for epoch in range(3)]
    plain = iio.imread(write_grid_gif(frames, tmp_path / "plain.gif", nrow=2), index=None)
    labelled = iio.imread(write_grid_gif(frames, tmp_path / "labelled.gif", nrow=2, labels=[0, 0, 1, 1],
                                         class_names=["Sneaker", "Bag"]), index=None)
    assert len(labelled) == 3
    assert labelled.shape[2] > plain.shape[2]              # the room the row labels take, left of the tiles
    margin = labelled[0][:, : labelled.shape[2] - plain.shape[2]]
    assert margin.min() < 100                              # dark pixels: text drawn there


def test_sigma_plot_keeps_its_labels_and_legend_inside_the_figure_and_off_the_lines():
    import matplotlib.pyplot as plt

    from labkit.labs.cgan_mnist import plot_sigma_effect

    r = {"sigma": np.array([0.1, 1.0, 2.0]), "kept": np.ones((3, 10)), "confidence": np.ones((3, 10)) * 0.9}
    ax = plot_sigma_effect({"noise on z": r, "noise on the embedding": r})
    fig = ax.figure
    renderer = _drawn(fig)
    for label in (ax.xaxis.label, ax.yaxis.label):
        assert label.get_text() and _inside(label.get_window_extent(renderer), fig.bbox)
    legend = ax.get_legend().get_window_extent(renderer)
    assert not legend.overlaps(ax.get_window_extent(renderer)) and _inside(legend, fig.bbox)
    plt.close(fig)


@pytest.mark.parametrize("quick", [False, True])
def test_save_model_writes_the_graded_file_only_in_a_full_run(tmp_path, monkeypatch, quick):
    """lab.save_model: a full run writes the file the quality checks grade beside the notebook, with a copy in the
    output folder; quick mode writes NAME_quick.pt in the output folder only, never the graded file."""
    from labkit.checkpoint import read_checkpoint
    from labkit.models.mlp import MLPGenerator

    notebook_dir, output = tmp_path / "notebook", tmp_path / "output"
    notebook_dir.mkdir()
    output.mkdir()
    monkeypatch.chdir(notebook_dir)
    lab = runtime.Lab(name="01_gan_1d", seed=0, device="cpu", quick=quick, output=output, checkpoints=tmp_path)
    path = lab.save_model("gan1d_final.pt", MLPGenerator(), target="laplace", seed=3)
    if quick:
        assert path == output / "gan1d_final_quick.pt" and not (notebook_dir / "gan1d_final.pt").exists()
    else:
        assert path.resolve() == (notebook_dir / "gan1d_final.pt").resolve()
        assert (output / "gan1d_final.pt").read_bytes() == path.read_bytes()
    assert read_checkpoint(path)["metadata"]["seed"] == 3
