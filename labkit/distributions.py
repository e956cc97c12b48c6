"""One-dimensional target distributions for the 1D-GAN lab.

Each target knows how to draw samples (reproducibly, from a seed) and its exact
density and CDF, so plots can show the true curve and metrics can compare a
generator against the distribution itself rather than against another sample.

    >>> from labkit import distributions
    >>> target = distributions.get("laplace")
    >>> x = target.sample(1000, seed=0)          # numpy array, shape (1000,)
    >>> mix = distributions.mixture({"laplace": 0.3, "halfnormal": 0.7})
"""
from __future__ import annotations

from typing import Dict, Iterable, Mapping, Sequence, Tuple, Union

import numpy as np
from scipy import stats

__all__ = ["Distribution", "Mixture", "get", "mixture", "names"]


class Distribution:
    """A named 1D distribution backed by a frozen ``scipy.stats`` object."""

    def __init__(self, name: str, label: str, frozen):
        self.name = name
        self.label = label
        self._frozen = frozen
        self._draw = _standard_draw(frozen)  # (draw, loc, scale), or None: scipy's rvs

    def sample(self, n: int, seed=None) -> np.ndarray:
        """Draw ``n`` samples as a float64 array of shape ``(n,)``; same seed, same samples."""
        n = _check_n(n)
        rng = np.random.default_rng(seed)
        if self._draw is not None:  # scipy's numbers without scipy's overhead (see _STANDARD_DRAWS)
            draw, loc, scale = self._draw
            return np.asarray(draw(rng, n) * scale + loc, dtype=np.float64)
        return np.asarray(self._frozen.rvs(size=n, random_state=rng), dtype=np.float64)

    def sample_tensor(self, n: int, seed=None, device=None):
        """Samples as a float32 torch tensor of shape ``(n, 1)``, ready for a discriminator."""
        import torch

        return torch.as_tensor(self.sample(n, seed), dtype=torch.float32, device=device).reshape(n, 1)

    def pdf(self, x) -> np.ndarray:
        return self._frozen.pdf(np.asarray(x, dtype=np.float64))

    def cdf(self, x) -> np.ndarray:
        return self._frozen.cdf(np.asarray(x, dtype=np.float64))

    @property
    def mean(self) -> float:
        return float(self._frozen.mean())

    @property
    def std(self) -> float:
        return float(self._frozen.std())

    @property
    def spec(self):
        """What ``get`` needs to rebuild this distribution (stored in saved models' metadata)."""
        return self.name

    def support(self, coverage: float = 0.999) -> Tuple[float, float]:
        """An interval holding ``coverage`` of the mass: the x-range to plot."""
        tail = (1.0 - coverage) / 2.0
        return float(self._frozen.ppf(tail)), float(self._frozen.ppf(1.0 - tail))

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}: {self.label}>"


class Mixture(Distribution):
    """A weighted mixture of other distributions (weights are normalised to sum to 1)."""

    def __init__(self, components: Sequence[Distribution], weights: Sequence[float], name: str = None, label: str = None):
        if len(components) == 0:
            raise ValueError("A mixture needs at least one component.")
        weights = np.asarray(weights, dtype=np.float64)
        if weights.shape != (len(components),):
            raise ValueError(f"Got {len(components)} components but {weights.size} weights; give one weight per component.")
        if np.any(weights < 0) or weights.sum() <= 0:
            raise ValueError(f"Mixture weights must be non-negative and not all zero, got {weights.tolist()}.")
        self.components = list(components)
        self.weights = weights / weights.sum()
        parts = [f"{w:.2g}·{c.name}" for c, w in zip(self.components, self.weights)]
        self.name = name or "mixture(" + ", ".join(parts) + ")"
        self.label = label or " + ".join(f"{w:.2g}·{c.label}" for c, w in zip(self.components, self.weights))

    @property
    def spec(self):
        if self.name in _BUILDERS:
            return self.name
        return {"mixture": [[c.spec, float(w)] for c, w in zip(self.components, self.weights)]}

    def sample(self, n: int, seed=None) -> np.ndarray:
        n = _check_n(n)
        rng = np.random.default_rng(seed)
        which = rng.choice(len(self.components), size=n, p=self.weights)
        out = np.empty(n, dtype=np.float64)
        for k, component in enumerate(self.components):
            idx = np.flatnonzero(which == k)
            if idx.size:
                # Each component draws from a child generator so results do not depend on draw order.
                out[idx] = component.sample(idx.size, seed=rng.integers(2**63))
        return out

    def pdf(self, x) -> np.ndarray:
        return sum(w * c.pdf(x) for c, w in zip(self.components, self.weights))

    def cdf(self, x) -> np.ndarray:
        return sum(w * c.cdf(x) for c, w in zip(self.components, self.weights))

    @property
    def mean(self) -> float:
        return float(sum(w * c.mean for c, w in zip(self.components, self.weights)))

    @property
    def std(self) -> float:
        second = sum(w * (c.std**2 + c.mean**2) for c, w in zip(self.components, self.weights))
        return float(np.sqrt(second - self.mean**2))

    def support(self, coverage: float = 0.999) -> Tuple[float, float]:
        lows, highs = zip(*(c.support(coverage) for c in self.components))
        return min(lows), max(highs)


# How scipy.stats' rvs draws these families with a numpy Generator: the standard form (loc 0, scale 1) from
# the same calls, then ``* scale + loc``. Drawing that way directly gives scipy's numbers bit for bit
# (tests/test_distributions.py compares them) and skips scipy's argument handling, 0.15 ms a call: the
# 1D lab draws a real batch at every training step, up to 30,000 times in a run.
_STANDARD_DRAWS = {
    "norm": lambda rng, n: rng.standard_normal(n),
    "laplace": lambda rng, n: rng.laplace(0, 1, size=n),
    "halfnorm": lambda rng, n: abs(rng.standard_normal(size=n)),
}


def _standard_draw(frozen):
    """``(draw, loc, scale)`` for a frozen scipy distribution of a family in ``_STANDARD_DRAWS``, else None."""
    draw = _STANDARD_DRAWS.get(getattr(getattr(frozen, "dist", None), "name", None))
    if draw is None:
        return None
    try:
        shapes, loc, scale = frozen.dist._parse_args(*frozen.args, **frozen.kwds)
    except Exception:  # noqa: BLE001 - a scipy without this helper: its own rvs
        return None
    if shapes or not np.isscalar(loc) or not np.isscalar(scale) or not scale > 0:
        return None
    return draw, loc, scale


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"The number of samples must be a non-negative integer, got {n!r}.")
    return int(n)


_BUILDERS = {
    "normal": lambda: Distribution("normal", "N(4.0, 0.5)", stats.norm(loc=4.0, scale=0.5)),
    "laplace": lambda: Distribution("laplace", "Laplace(3.0, 0.3)", stats.laplace(loc=3.0, scale=0.3)),
    "halfnormal": lambda: Distribution("halfnormal", "HalfNormal(scale 0.75)", stats.halfnorm(loc=0.0, scale=0.75)),
    "petitprince": lambda: Mixture(
        [Distribution("normal(4.0, 1.5)", "N(4.0, 1.5)", stats.norm(4.0, 1.5)),
         Distribution("normal(0.6, 1.35)", "N(0.6, 1.35)", stats.norm(0.6, 1.35))],
        [0.5, 0.5],
        name="petitprince",
        label="Petit Prince: ½·N(4.0, 1.5) + ½·N(0.6, 1.35)",
    ),
}


def names() -> Tuple[str, ...]:
    """The names ``get`` accepts."""
    return tuple(_BUILDERS)


def get(name) -> Distribution:
    """The target called ``name`` (one of ``names()``); a Distribution is returned as it is.

    Also accepts a mixture as ``{"laplace": 0.5, "halfnormal": 0.5}`` or as the ``.spec`` of a mixture.
    """
    if isinstance(name, Distribution):
        return name
    if isinstance(name, Mapping):
        return mixture(name["mixture"] if set(name) == {"mixture"} else name)
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    if key not in _BUILDERS:
        raise ValueError(
            f"Unknown distribution {name!r}. Valid names: {', '.join(names())}. "
            "For a mixture use distributions.mixture({'laplace': 0.5, 'halfnormal': 0.5})."
        )
    return _BUILDERS[key]()


def mixture(parts: Union[Mapping[str, float], Iterable[Tuple[Union[str, Distribution], float]]]) -> Mixture:
    """A mixture from ``{name: weight}`` or ``[(name_or_distribution, weight), ...]``."""
    items = list(parts.items()) if isinstance(parts, Mapping) else list(parts)
    if not items:
        raise ValueError("A mixture needs at least one (distribution, weight) pair.")
    return Mixture([get(n) for n, _ in items], [w for _, w in items])
