"""Each checks module computes its own expected values from its solution notebook, and the stored .npz holds them."""
from pathlib import Path

import numpy as np
import pytest

from labkit.checks import cgan_mnist, cwgan_gp_fashion, dcgan_mnist, gan1d, reference
from labkit.instructor.notebook import load_exports

SOLUTIONS = Path(__file__).resolve().parents[2] / "notebooks" / "solutions"


@pytest.mark.parametrize("checks", [gan1d, cgan_mnist, dcgan_mnist, cwgan_gp_fashion], ids=lambda m: m.__name__)
def test_stored_reference_values_are_what_the_solution_computes(checks):
    """scripts/make_references.py writes exactly these: a solution changed without rerunning it fails here."""
    computed = checks.expected_values(load_exports(SOLUTIONS / f"{checks.NOTEBOOK}.ipynb"))
    stored = reference(checks.__name__.rsplit(".", 1)[-1])
    assert sorted(computed) == sorted(stored)
    for key, value in computed.items():
        # a few float32 ulps: the stored values were written on another CPU's kernels
        np.testing.assert_allclose(np.asarray(value, dtype=np.float64), stored[key], rtol=0, atol=1e-5, err_msg=key)
