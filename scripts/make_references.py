"""Write the reference values the check cells compare against, from the solution notebooks' own code.

    python scripts/make_references.py

Each lab's checks module computes its values (``expected_values``) from the cells tagged ``export`` in its solution
notebook (``NOTEBOOK``), so the checks can never drift from the solution: change the solution, rerun this, commit the
.npz files in labkit/data/references/.
"""
from pathlib import Path

import numpy as np

from labkit.checks import REFERENCES, cgan_mnist, cwgan_gp_fashion, dcgan_mnist, gan1d
from labkit.instructor.notebook import load_exports

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
LABS = (gan1d, cgan_mnist, dcgan_mnist, cwgan_gp_fashion)   # each writes labkit/data/references/<module>.npz


def main():
    REFERENCES.mkdir(parents=True, exist_ok=True)
    for checks in LABS:
        name = checks.__name__.rsplit(".", 1)[-1]
        expected = checks.expected_values(load_exports(SOLUTIONS / f"{checks.NOTEBOOK}.ipynb"))
        values = {key: np.asarray(value, dtype=np.float64) for key, value in expected.items()}
        np.savez(REFERENCES / f"{name}.npz", **values)
        print(f"wrote {REFERENCES / name}.npz: " + ", ".join(f"{k}{list(v.shape) or ''}" for k, v in values.items()))


if __name__ == "__main__":
    main()
