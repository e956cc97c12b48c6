"""Each of the four labs end to end through `labkit grade`: the reference solution with its saved models (graded
with --allow-reference-models: they are the reference checkpoints) gets every automatic point and no flag, and the
untouched release gets zero and is told where it stopped. One test per lab, one `labkit grade` per lab."""
import sys

import pytest

from tests.grading.lab_grading import assert_release_gets_zero, assert_reference_gets_every_point, grade_reference_and_release

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits")]

LABS = {   # assignment -> the model files its solution hands in
    "01_gan_1d": ["gan1d_final.pt", "gan1d_final_D.pt"],
    "02_cgan_mnist": ["cgan_final.pt", "cgan_final_D.pt"],
    "03_dcgan_mnist": ["dcgan_final.pt"],
    "04_cwgan_gp_fashion": ["cwgan_final.pt"],
}


@pytest.mark.parametrize("assignment", sorted(LABS))
def test_the_solution_gets_every_point_and_the_release_none(assignment, tmp_path):
    code, rows, out = grade_reference_and_release(assignment, LABS[assignment], tmp_path)
    assert code == 0
    assert_reference_gets_every_point(rows, assignment)
    assert_release_gets_zero(rows, out)
