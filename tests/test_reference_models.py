"""A handed-in model that is a reference checkpoint is recognised by its weights (whatever the file's metadata) or by
its outputs on fixed noise (weights nudged to change their hash); a model trained by the group is not. In the
grader, the model the checks grade is always compared, and only the checks that name it lose their points."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
import torch

from labkit.checkpoint import loadModel, read_checkpoint, saveModel
from labkit.instructor.grading.references import MAX_MODELS, ReferenceModels, checks_reading, refuse_reference_models
from labkit.instructor.grading.score import CheckResult, CheckState, Grade, Status
from labkit.instructor.reference_models import ReferenceIndex, ReferenceMatch, reference_model_files, weights_digest
from labkit.models.mlp import MLPGenerator

REPO = Path(__file__).resolve().parent.parent
LAPLACE = REPO / "checkpoints" / "gan1d_laplace.pt"
SOLUTION_D = REPO / "notebooks" / "solutions" / "gan1d_final_D.pt"


@pytest.fixture(scope="module")
def index():
    torch.set_num_threads(1)
    return ReferenceIndex.build([LAPLACE, REPO / "checkpoints" / "gan1d_normal.pt", SOLUTION_D])


def test_the_references_are_the_checkpoints_and_the_solutions_models():
    names = {f"{p.parent.name}/{p.name}" for p in reference_model_files(REPO)}
    assert {"checkpoints/gan1d_laplace.pt", "solutions/gan1d_final.pt", "solutions/gan1d_final_D.pt"} <= names


def test_a_copied_reference_is_caught_by_its_weights(index, tmp_path):
    shutil.copy(LAPLACE, tmp_path / "gan1d_final.pt")
    shutil.copy(SOLUTION_D, tmp_path / "gan1d_final_D.pt")  # a discriminator: no outputs to compare, weights still
    found = {m.file: m for m in index.find(tmp_path)}
    assert found["gan1d_final.pt"].reference == "checkpoints/gan1d_laplace.pt"
    assert found["gan1d_final.pt"].how == "same weights" and found["gan1d_final_D.pt"].how == "same weights"
    assert "earns no quality points" in found["gan1d_final.pt"].flag()


def test_resaved_with_new_metadata_is_still_the_same_weights(index, tmp_path):
    model = loadModel(LAPLACE)
    saveModel(model, tmp_path / "mine.pt", target="laplace", note="trained by us, honestly")
    assert read_checkpoint(tmp_path / "mine.pt")["metadata"] != read_checkpoint(LAPLACE)["metadata"]
    assert weights_digest(tmp_path / "mine.pt") == weights_digest(LAPLACE)
    assert index.match(tmp_path / "mine.pt").how == "same weights"


def test_nudged_weights_are_caught_by_their_outputs(index, tmp_path):
    model = loadModel(LAPLACE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-6 * torch.randn_like(p))
    saveModel(model, tmp_path / "nudged.pt", target="laplace")
    assert weights_digest(tmp_path / "nudged.pt") != weights_digest(LAPLACE)
    match = index.match(tmp_path / "nudged.pt")
    assert match.how == "same outputs on fixed noise" and match.reference == "checkpoints/gan1d_laplace.pt"


def test_an_own_model_and_other_files_are_not_flagged(index, tmp_path):
    torch.manual_seed(1)
    ref = read_checkpoint(LAPLACE)["init_args"]
    saveModel(MLPGenerator(*ref["args"], **ref["kwargs"]), tmp_path / "ours.pt", target="laplace")
    (tmp_path / "notes.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "README.txt").write_text("hello")
    assert index.find(tmp_path) == []


# --------------------------------------------------------------------------- in the grader (issue 14)


def _check_cell(cid, source):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["labkit"] = {"check": cid, "points": 1}
    return cell


def _assignment():
    nb = nbformat.v4.new_notebook()
    nb.cells = [_check_cell("steps", "checks.check_steps(step)"),
                _check_cell("quality", 'checks.check_final_model("gan1d_final.pt", tier="good")')]
    return SimpleNamespace(solution=nb)


def test_the_grader_knows_which_checks_grade_which_model_file():
    assert checks_reading(_assignment()) == {"gan1d_final.pt": ["quality"]}


def test_the_graded_model_is_compared_first_whatever_else_is_handed_in(tmp_path):
    references = ReferenceModels(references=[LAPLACE])
    notebook_dir = tmp_path / "sub"
    notebook_dir.mkdir()
    for i in range(MAX_MODELS + 5):  # decoys sorted before it, more than the grader looks at
        (tmp_path / f"a{i:02d}.pt").write_bytes(b"decoy")
    shutil.copy(LAPLACE, notebook_dir / "gan1d_final.pt")
    found = references.find(tmp_path, notebook_dir, graded=["gan1d_final.pt"])
    assert [(m.file, m.reference, m.how) for m in found] == [
        ("gan1d_final.pt", "checkpoints/gan1d_laplace.pt", "same weights")]


def test_a_submission_without_models_does_not_build_the_index(tmp_path):
    references = ReferenceModels(references=[LAPLACE])
    (tmp_path / "notes.txt").write_text("no models")
    assert references.find(tmp_path) == [] and references._index is None


def test_refused_model_takes_the_points_of_the_checks_that_grade_it():
    assignment = _assignment()
    grade = Grade("group", "group.zip", Status.OK, "", 2.0, 2.0, 0.0,
                  checks={"steps": CheckResult(1, 1, CheckState.PASSED, "✔ steps"),
                          "quality": CheckResult(1, 1, CheckState.PASSED, "✔ good tier")})
    match = ReferenceMatch("gan1d_final.pt", "checkpoints/gan1d_laplace.pt", "same weights")
    refuse_reference_models(grade, [match], assignment)
    assert grade.checks["steps"].points == 1 and grade.checks["quality"].points == 0
    assert grade.checks["quality"].state is CheckState.FAILED
    assert grade.checks["quality"].message.startswith("no points: gan1d_final.pt, the model this check grades, is "
                                                      "the reference model checkpoints/gan1d_laplace.pt")
    assert grade.flags == [match.flag() + " (checks quality: 0 points)"] and grade.references == [match]
