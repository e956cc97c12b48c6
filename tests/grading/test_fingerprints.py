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
from labkit.grading.references import checks_reading, refuse_reference_models
from labkit.grading.types import CheckResult, CheckState, Grade, Status
from labkit.grading.fingerprints import ReferenceIndex, canonical_weights, reference_model_files, weights_digest
from labkit.grading.types import ReferenceMatch
from labkit.models.mlp import MLPGenerator

REPO = Path(__file__).resolve().parents[2]
LAPLACE = REPO / "checkpoints" / "gan1d_laplace.pt"
SOLUTION_D = REPO / "notebooks" / "solutions" / "gan1d_final_D.pt"


@pytest.fixture(scope="module")
def index():
    torch.set_num_threads(1)
    return ReferenceIndex.build([LAPLACE, REPO / "checkpoints" / "gan1d_normal.pt", SOLUTION_D])


def test_the_references_are_the_checkpoints_and_the_solutions_models():
    names = {f"{p.parent.name}/{p.name}" for p in reference_model_files(REPO)}
    assert {"checkpoints/gan1d_laplace.pt", "solutions/gan1d_final.pt", "solutions/gan1d_final_D.pt"} <= names


def _match(index, path, with_model=True):
    payload = read_checkpoint(path)
    model = loadModel(path) if with_model else None
    return index.match(Path(path).name, payload["state_dict"], model)


def test_a_copied_reference_is_caught_by_its_weights(index, tmp_path):
    shutil.copy(LAPLACE, tmp_path / "gan1d_final.pt")
    shutil.copy(SOLUTION_D, tmp_path / "gan1d_final_D.pt")  # a discriminator: no outputs to compare, weights still
    generator = _match(index, tmp_path / "gan1d_final.pt")
    assert generator.reference == "checkpoints/gan1d_laplace.pt" and generator.how == "same weights"
    assert _match(index, tmp_path / "gan1d_final_D.pt", with_model=False).how == "same weights"
    assert "earns no quality points" in generator.flag()


def test_resaved_with_new_metadata_is_still_the_same_weights(index, tmp_path):
    model = loadModel(LAPLACE)
    saveModel(model, tmp_path / "mine.pt", target="laplace", note="trained by us, honestly")
    assert read_checkpoint(tmp_path / "mine.pt")["metadata"] != read_checkpoint(LAPLACE)["metadata"]
    digest = lambda p: weights_digest(canonical_weights(read_checkpoint(p)["state_dict"]))  # noqa: E731
    assert digest(tmp_path / "mine.pt") == digest(LAPLACE)
    assert _match(index, tmp_path / "mine.pt").how == "same weights"


def test_nudged_weights_are_caught_as_derived(index, tmp_path):
    model = loadModel(LAPLACE)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-6 * torch.randn_like(p))
    saveModel(model, tmp_path / "nudged.pt", target="laplace")
    match = _match(index, tmp_path / "nudged.pt")
    assert match.how == "derived" and match.reference == "checkpoints/gan1d_laplace.pt" and match.distance < 1e-3


def test_the_same_outputs_are_caught_when_the_weights_differ_in_layout(index, tmp_path):
    """A reference rewrapped (other layer names): no weights to compare, its outputs on fixed noise match."""
    reference = loadModel(LAPLACE)
    wrapped = torch.nn.Sequential(reference)
    wrapped.latent_dim = reference.latent_dim
    state = {f"renamed.{k}": v for k, v in reference.state_dict().items()}
    match = index.match("wrapped.pt", state, reference)
    assert match is not None and match.how == "same outputs on fixed noise"


def test_an_own_model_and_other_files_are_not_flagged(index, tmp_path):
    torch.manual_seed(1)
    ref = read_checkpoint(LAPLACE)["init_args"]
    saveModel(MLPGenerator(*ref["args"], **ref["kwargs"]), tmp_path / "ours.pt", target="laplace")
    assert _match(index, tmp_path / "ours.pt") is None


def test_the_pack_the_inspector_reads_gives_the_same_matches(index, tmp_path):
    index.write(tmp_path / "pack")
    again = ReferenceIndex.read(tmp_path / "pack")
    assert again.labels == index.labels
    assert _match(again, LAPLACE).how == "same weights"


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


# --------------------------------------------------------------------------- the image labs' references (issue 25)


@pytest.mark.parametrize("lab", ["cgan_mnist", "dcgan_mnist", "cwgan_gp_fashion"])
def test_a_short_fine_tune_of_an_image_reference_is_derived_and_a_fresh_model_is_not(lab, tmp_path, monkeypatch):
    """31 steps of the lab's own recipe from the shipped generator and its discriminator (as a group would start
    from them) stay within DERIVED_DISTANCE; the lab's networks trained from their own initialisation do not."""
    from labkit.reference import training

    monkeypatch.setenv("LABKIT_OFFLINE", "1")
    monkeypatch.setattr(training, "SCRATCH", tmp_path)
    recipe = training.RECIPES[lab]
    solution = recipe.solution()
    from_reference = training.reference_networks(recipe, solution)

    steps = training.Options(epochs=1, limit=31 * getattr(solution, "BATCH_SIZE", 64), seed=7)
    index = ReferenceIndex.build([recipe.checkpoint])
    tuned = training.train_reference(recipe, steps, networks=from_reference, solution=solution)
    match = index.match("ours.pt", tuned.G_ema.state_dict(), tuned.G_ema)
    assert match is not None and match.how == "derived" and match.reference == f"checkpoints/{recipe.checkpoint.name}"
    fresh = training.train_reference(recipe, steps, solution=solution)
    assert index.match("ours.pt", fresh.G_ema.state_dict(), fresh.G_ema) is None
