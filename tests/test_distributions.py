import numpy as np
import pytest
from scipy import stats
from scipy.integrate import trapezoid

from labkit import distributions

EXPECTED = {  # name -> (scipy reference CDF, mean, std)
    "normal": (stats.norm(4.0, 0.5).cdf, 4.0, 0.5),
    "laplace": (stats.laplace(3.0, 0.3).cdf, 3.0, 0.3 * np.sqrt(2)),
    "halfnormal": (stats.halfnorm(scale=0.75).cdf, 0.75 * np.sqrt(2 / np.pi), 0.75 * np.sqrt(1 - 2 / np.pi)),
    "petitprince": (lambda x: 0.5 * stats.norm(4.0, 1.5).cdf(x) + 0.5 * stats.norm(0.6, 1.35).cdf(x), 2.3,
                    np.sqrt(0.5 * (1.5**2 + 4.0**2) + 0.5 * (1.35**2 + 0.6**2) - 2.3**2)),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_samples_follow_the_stated_parameters(name):
    cdf, mean, std = EXPECTED[name]
    samples = distributions.get(name).sample(200_000, seed=0)
    assert samples.shape == (200_000,)
    assert stats.kstest(samples, cdf).statistic < 0.006


@pytest.mark.parametrize("name", list(EXPECTED))
def test_pdf_cdf_and_moments_match_scipy(name):
    cdf, mean, std = EXPECTED[name]
    d = distributions.get(name)
    x = np.linspace(-3, 9, 101)
    np.testing.assert_allclose(d.cdf(x), cdf(x), atol=1e-12)
    grid = np.linspace(-15, 20, 200_001)
    assert trapezoid(d.pdf(grid), grid) == pytest.approx(1.0, abs=1e-4)  # the half-normal jumps at 0
    assert d.mean == pytest.approx(mean, rel=1e-9)
    assert d.std == pytest.approx(std, rel=1e-9)


def test_same_seed_same_samples_and_different_seeds_differ():
    d = distributions.get("petitprince")
    np.testing.assert_array_equal(d.sample(1000, seed=3), d.sample(1000, seed=3))
    assert not np.array_equal(d.sample(1000, seed=3), d.sample(1000, seed=4))


def test_sample_tensor_shape():
    t = distributions.get("normal").sample_tensor(7, seed=0)
    assert tuple(t.shape) == (7, 1) and str(t.dtype) == "torch.float32"


def test_names_are_forgiving_and_unknown_names_list_the_valid_ones():
    assert distributions.get("Half-Normal").name == "halfnormal"
    with pytest.raises(ValueError, match="normal, laplace, halfnormal, petitprince"):
        distributions.get("gaussian")


def test_mixture_of_named_distributions():
    mix = distributions.mixture({"laplace": 1, "halfnormal": 3})
    np.testing.assert_allclose(mix.weights, [0.25, 0.75])
    x = np.linspace(-1, 5, 7)
    expected = 0.25 * stats.laplace(3.0, 0.3).cdf(x) + 0.75 * stats.halfnorm(scale=0.75).cdf(x)
    np.testing.assert_allclose(mix.cdf(x), expected)
    samples = mix.sample(100_000, seed=1)
    assert stats.kstest(samples, mix.cdf).statistic < 0.01
    assert distributions.get(mix.spec).name == mix.name  # a spec rebuilds it (saved-model metadata)


@pytest.mark.parametrize("bad", [{"laplace": -1}, {}, {"laplace": 0}])
def test_bad_mixtures_are_refused(bad):
    with pytest.raises(ValueError):
        distributions.mixture(bad)


@pytest.mark.parametrize("n", [-1, 2.5, "10", True])
def test_bad_sample_sizes_are_refused(n):
    with pytest.raises(ValueError, match="non-negative integer"):
        distributions.get("normal").sample(n)


@pytest.mark.parametrize("name", distributions.names())
@pytest.mark.parametrize("n", [0, 1, 7, 512, 10_000])
def test_samples_are_scipys_own_draws_bit_for_bit(name, n):
    """The direct draws (no scipy call per batch) give exactly the numbers scipy's rvs gives from the same seed."""
    target = distributions.get(name)
    parts = getattr(target, "components", [target])
    assert all(part._draw is not None for part in parts), "every named target has a direct draw"
    for seed in range(3):
        direct = target.sample(n, seed=seed)
        drawn = [part._draw for part in parts]
        try:
            for part in parts:
                part._draw = None  # scipy's rvs
            by_scipy = target.sample(n, seed=seed)
        finally:
            for part, draw in zip(parts, drawn):
                part._draw = draw
        assert direct.dtype == by_scipy.dtype == np.float64 and direct.shape == by_scipy.shape == (n,)
        assert np.array_equal(direct, by_scipy)


def test_a_family_without_a_direct_draw_uses_scipy():
    target = distributions.Distribution("gamma", "Gamma(2)", stats.gamma(2.0, loc=1.0))
    assert target._draw is None
    assert np.array_equal(target.sample(100, seed=3), stats.gamma(2.0, loc=1.0).rvs(size=100, random_state=np.random.default_rng(3)))
