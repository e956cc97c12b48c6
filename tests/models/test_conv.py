"""The image labs' shared parts: DCGAN blocks, the checks' tiny networks, training-state resume, EMA standing statistics,
data as tensors, class-share metrics, grid GIFs, and the optional 64×64 folder recipe."""
import numpy as np
import pytest
import torch
from torch import nn

from labkit import datasets
from labkit.checkpoint import loadModel, saveModel
from labkit.checks import cases
from labkit.models import conv
from labkit.train import EpochLog, WeightAverage, resume_training, save_training_state


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.mark.parametrize("size, kernel, stride, padding, expected", [(1, 7, 1, 0, 7), (7, 4, 2, 1, 14), (14, 4, 2, 1, 28)])
def test_transposed_output_size_matches_pytorch(size, kernel, stride, padding, expected):
    assert conv.transposed_output_size(size, kernel, stride, padding) == expected
    layer = nn.ConvTranspose2d(1, 1, kernel, stride, padding)
    assert layer(torch.zeros(1, 1, size, size)).shape[-1] == expected


def test_conv_output_size_matches_pytorch():
    for size, kernel, stride, padding in ((28, 4, 2, 1), (14, 4, 2, 1), (7, 3, 2, 1)):
        out = nn.Conv2d(1, 1, kernel, stride, padding)(torch.zeros(1, 1, size, size)).shape[-1]
        assert conv.conv_output_size(size, kernel, stride, padding) == out


def test_case_networks_shapes_ranges_and_init():
    """The step checks' tiny networks (labkit.checks.cases): DCGAN blocks, N(0, 0.02) init, fixed width and noise."""
    torch.manual_seed(0)
    G, D = cases.dcgan_case_networks()
    x = G(torch.randn(3, cases.CASE_LATENT))
    assert x.shape == (3, 1, 28, 28) and x.abs().max() <= 1
    p = D(x)
    assert p.shape == (3, 1) and ((p > 0) & (p < 1)).all()
    weights = torch.cat([m.weight.flatten() for m in G.modules() if isinstance(m, nn.ConvTranspose2d)])
    assert abs(weights.std().item() - 0.02) < 0.005  # N(0, 0.02) initialisation
    _, logits = cases.dcgan_case_networks(probability=False)
    assert (logits(x) < 0).any()                       # no sigmoid: raw scores


def test_conditional_case_networks_use_the_label():
    torch.manual_seed(0)
    labels = torch.tensor([0, 3, 9])
    for G, critic in (cases.cgan_case_networks(embed_dim=5), cases.cwgan_case_networks()):
        z = torch.randn(3, cases.CASE_LATENT)
        x = G(z, labels)
        assert x.shape == (3, 1, 28, 28) and not torch.allclose(x, G(z, (labels + 1) % 10))
        assert critic(x, labels).shape == (3, 1) and not torch.allclose(critic(x, labels), critic(x, (labels + 1) % 10))
        with pytest.raises(ValueError, match="conditional"):
            G(z)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in critic.modules())  # the WGAN-GP critic: per-sample penalty


def test_case_generator_saves_and_loads_by_class(tmp_path):
    G, _ = cases.dcgan_case_networks()
    path = saveModel(G, tmp_path / "g.pt")
    again = loadModel(path)
    z = torch.randn(2, cases.CASE_LATENT)
    assert type(again) is type(G) and torch.allclose(again(z), G.eval()(z))


def test_training_state_resumes_where_it_stopped(tmp_path):
    torch.manual_seed(0)
    net = nn.Linear(3, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    ema = WeightAverage(net, 0.5)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    ema.update(net)
    path = save_training_state(tmp_path / "state.pt", 4, {"loss": [1.0, 0.5]}, extra={"frames": [1]}, net=net, opt=opt,
                               ema=ema)
    fresh, fresh_opt = nn.Linear(3, 1), None
    fresh_opt = torch.optim.Adam(fresh.parameters(), lr=0.1)
    fresh_ema = WeightAverage(fresh, 0.5)
    state = resume_training(path, net=fresh, opt=fresh_opt, ema=fresh_ema)
    assert state.next_epoch == 5 and state.history == {"loss": [1.0, 0.5]} and state.extra == {"frames": [1]}
    assert torch.equal(fresh.weight, net.weight) and torch.equal(fresh_ema.model.weight, ema.model.weight)
    assert fresh_opt.state_dict()["state"][0]["step"] == 1
    assert resume_training(tmp_path / "none.pt", net=fresh).next_epoch == 0
    with pytest.raises(ValueError, match="does not fit net.*Delete"):
        resume_training(path, net=nn.Linear(4, 1))
    with pytest.raises(ValueError, match="no saved state for other"):
        resume_training(path, other=nn.Linear(3, 1))


def test_standing_statistics_describe_the_averaged_weights():
    torch.manual_seed(0)
    G, _ = cases.dcgan_case_networks()
    ema = WeightAverage(G, 0.9)
    with torch.no_grad():
        for p in G.parameters():
            p.mul_(3.0)  # the current generator's statistics no longer fit the averaged weights
        G.train()
        for _ in range(5):
            G(torch.randn(64, cases.CASE_LATENT))
    ema.update(G)
    model = ema.averaged(batches=4, batch_size=128)
    assert not model.training
    first_bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        pre = model.net[0][0](torch.randn(512, cases.CASE_LATENT)[:, :, None, None])  # what the first batch norm normalises
    assert torch.allclose(first_bn.running_mean, pre.mean(dim=(0, 2, 3)), atol=0.05 * pre.std().item())
    assert torch.allclose(first_bn.running_var.sqrt(), pre.std(dim=(0, 2, 3)), rtol=0.15)


def test_epoch_log_and_tensors_of_the_shipped_sample():
    log = EpochLog()
    log.add({"a": 1.0})
    log.add({"a": 3.0, "b": 2.0})
    assert log.end_epoch() == {"a": [2.0], "b": [2.0]}
    images, labels = datasets.tensors("mnist", train=False, limit=50)
    assert images.shape == (50, 1, 28, 28) and images.dtype == torch.float32 and labels.shape == (50,)
    assert images.min() >= -1 and images.max() <= 1 and images.min() < -0.99
    loaded = datasets.load("mnist", train=False, limit=50)
    assert torch.allclose(images[7], loaded[7][0], atol=1e-6) and int(labels[7]) == int(loaded[7][1])


def test_class_shares_in_image_metrics():
    from labkit.metrics.images import _class_scores

    probabilities = np.eye(10)[[0] * 30 + [1] * 10 + list(range(2, 10)) * 10]
    scores = _class_scores(probabilities, coverage_threshold=0.1)
    assert scores["max_class_share"] == pytest.approx(30 / 120)
    assert scores["min_class_share"] == pytest.approx(10 / 120)
    assert scores["class_share_ratio"] == pytest.approx(1 / 3)


def test_grid_gif_and_class_histograms(tmp_path):
    import imageio.v3 as iio

    from labkit.viz.animation import write_grid_gif
    from labkit.viz.plotting import image_grid, plot_class_histograms

    frames = [(epoch, np.random.default_rng(epoch).uniform(-1, 1, (8, 1, 28, 28))) for epoch in range(3)]
    path = write_grid_gif(frames, tmp_path / "t.gif", nrow=4, title="test")
    assert iio.imread(path, index=None).shape[0] == 3
    assert write_grid_gif(frames[:1], tmp_path / "one.gif").exists()  # a one-epoch run still gets its GIF
    with pytest.raises(ValueError, match="No snapshots"):
        write_grid_gif([], tmp_path / "none.gif")
    fig = plot_class_histograms({"a": [1] * 10, "b": [2, 0, 0, 0, 0, 0, 0, 0, 0, 0]})
    heights = sorted(round(p.get_height(), 3) for p in fig.axes[0].patches)
    assert heights[-1] == 1.0 and heights.count(0.1) == 10
    colour = image_grid(np.random.default_rng(0).uniform(0, 1, (4, 16, 16, 3)), nrow=2, value_range=(0, 1))
    assert colour.axes[0].images[0].get_array().shape == (36, 36, 3)


def test_train_on_a_tiny_image_folder(tmp_path):
    from PIL import Image

    from labkit.labs.dcgan_mnist import train_on_folder

    rng = np.random.default_rng(0)
    for i in range(8):
        (tmp_path / "photos" / "cars").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)).save(tmp_path / "photos" / "cars" / f"{i}.png")
    run = train_on_folder(tmp_path / "photos", epochs=1, batch_size=4, channels=4, out_dir=tmp_path)
    assert run.samples.shape == (16, 64, 64, 3) and run.samples.dtype == np.float32
    assert 0 <= run.samples.min() and run.samples.max() <= 1
    assert len(run.history["loss_d"]) == 1 and run.path.exists()
    with pytest.raises(FileNotFoundError, match="No folder"):
        train_on_folder(tmp_path / "missing")
