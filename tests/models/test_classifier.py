"""The shipped metric classifiers load, are small, and classify real held-out images well."""
import pytest
import torch

from labkit import datasets
from labkit.models import classifier as classifiers
from labkit.models.classifier import ImageClassifier, classifier_path, load_classifier

MIN_ACCURACY = {"mnist": 0.97, "fashion_mnist": 0.88}


def heldout_images(name):
    """Real test images as served offline (maybe labkit's shipped sample); for full MNIST only the held-out half."""
    data = datasets.load(name, train=False, download=False)
    x = (data.data.float() / 127.5 - 1.0).unsqueeze(1)
    y = torch.as_tensor(data.targets)
    if name == "mnist" and len(x) == 10_000:
        x, y = x[5000:], y[5000:]  # images 0..4999 trained the classifier
    return x, y


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_checkpoint_is_small_and_loads_cached(name):
    assert classifier_path(name).stat().st_size < 2_000_000
    model = load_classifier(name)
    assert isinstance(model, ImageClassifier) and not model.training
    assert load_classifier(name.replace("_", "-")) is model
    assert model.checkpoint_metadata["heldout_accuracy"] >= MIN_ACCURACY[name]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_accuracy_on_real_heldout_images(name):
    model = load_classifier(name)
    x, y = heldout_images(name)
    x, y = x[:2000], y[:2000]  # keeps the test fast; the offline sample has 1,000
    with torch.no_grad():
        logits = model(x)
        features = model.features(x)
    assert logits.shape == (len(x), 10)
    assert features.shape == (len(x), model.feature_dim) and 64 <= model.feature_dim <= 128
    accuracy = (logits.argmax(1) == y).float().mean().item()
    assert accuracy > MIN_ACCURACY[name], f"{name}: {accuracy:.4f}"


def test_bad_input_shape_says_what_to_do():
    model = load_classifier("mnist")
    with pytest.raises(ValueError, match="unsqueeze\\(1\\)"):
        model(torch.zeros(4, 28, 28))
    with pytest.raises(ValueError, match="view\\(-1, 1, 28, 28\\)"):
        model(torch.zeros(4, 784))
    with pytest.raises(ValueError, match="N×1×28×28, got 4×3×32×32"):
        model.features(torch.zeros(4, 3, 32, 32))
    with pytest.raises(TypeError, match="float"):
        model(torch.zeros(4, 1, 28, 28, dtype=torch.uint8))


def test_unknown_dataset_and_missing_checkpoint(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="mnist, fashion_mnist"):
        load_classifier("cifar10")
    monkeypatch.setenv("LABKIT_CHECKPOINTS", str(tmp_path))
    monkeypatch.setattr(classifiers, "_cache", {})
    with pytest.raises(FileNotFoundError, match="train_classifiers.py"):
        load_classifier("mnist")


def test_gradients_reach_the_input():
    model = load_classifier("mnist")
    x = torch.zeros(2, 1, 28, 28, requires_grad=True)
    model(x).logsumexp(1).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert not any(p.requires_grad for p in model.parameters())
