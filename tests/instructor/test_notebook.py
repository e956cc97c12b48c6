"""`labkit run`'s notebook runner, `load_exports`, path helpers and text tables."""
from pathlib import Path

import nbformat
import pytest

from labkit import paths
from labkit.instructor.notebook import execute, load_exports
from labkit.tables import format_table

REPO = Path(__file__).resolve().parents[2]


def _notebook(tmp_path):
    cells = [
        nbformat.v4.new_code_cell("import os\nQUICK = os.environ['LABKIT_QUICK']", metadata={"tags": ["export"]}),
        nbformat.v4.new_code_cell("def double(x):\n    return 2 * x", metadata={"tags": ["export"]}),
        nbformat.v4.new_code_cell("assert double(2) == 4", metadata={"labkit": {"check": "good", "points": 1}}),
        nbformat.v4.new_code_cell("assert double(2) == 5, 'double is wrong'", metadata={"labkit": {"check": "bad", "points": 1}}),
        nbformat.v4.new_code_cell("import os\nopen(os.path.join(os.environ['LABKIT_OUTPUT'], 'f.png'), 'w').write('x')"),
    ]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


def test_execute_reports_checks_outputs_and_writes_the_executed_copy(tmp_path):
    path = _notebook(tmp_path)
    result = execute(path, tmp_path / "out" / "nb.ipynb", quick=True, output_dir=tmp_path / "figs")
    assert result.passed == ["good"]
    assert "double is wrong" in result.failed["bad"]
    assert result.status == "error"
    assert [p.split("/")[-1] for p in result.outputs] == ["f.png"]
    summary = result.summary()
    assert "checks 1/2 passed" in summary and "1 figures" in summary and "failed: bad" in summary
    executed = nbformat.read(tmp_path / "out" / "nb.ipynb", as_version=4)
    assert executed.cells[2].execution_count is not None


def test_a_second_run_into_the_same_folder_counts_the_files_it_rewrote(tmp_path):
    """Re-running `labkit run --out build` rewrites the same names: they are this run's outputs, not "0 figures"."""
    path = _notebook(tmp_path)
    (tmp_path / "figs").mkdir()
    (tmp_path / "figs" / "old.png").write_text("from an earlier run, not rewritten")
    for _ in range(2):
        result = execute(path, None, quick=True, output_dir=tmp_path / "figs")
        assert [p.split("/")[-1] for p in result.outputs] == ["f.png"]
        assert "1 figures" in result.summary()


def test_load_exports_runs_only_tagged_cells(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_QUICK", "1")
    module = load_exports(_notebook(tmp_path))
    assert module.double(3) == 6 and module.QUICK == "1"
    empty = tmp_path / "empty.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")]), empty)
    with pytest.raises(ValueError, match="no code cells tagged 'export'"):
        load_exports(empty)


def test_solution_01_exports_what_scripts_and_benchmarks_use():
    """scripts/make_references.py, scripts/train_gan1d_checkpoints.py and benchmarks/benchmark.py take the
    students' functions and the training loop from the solution's export cells, the rest from labkit.labs.gan1d."""
    from labkit.labs.gan1d import GanConfig

    solution = load_exports(REPO / "notebooks" / "solutions" / "01_gan_1d.ipynb")
    for name in ("d_step", "g_step", "epoch_means", "train_gan", "tuned_config"):
        assert callable(getattr(solution, name)), name
    assert solution.GanConfig is GanConfig  # imported from the kit, not a copy in the notebook
    assert isinstance(solution.tuned_config("laplace"), GanConfig)


def test_missing_reference_checkpoint_names_the_available_ones(monkeypatch, tmp_path):
    (tmp_path / "gan1d_normal.pt").write_bytes(b"")
    monkeypatch.setenv("LABKIT_CHECKPOINTS", str(tmp_path))
    assert paths.checkpoint("gan1d_normal.pt") == tmp_path / "gan1d_normal.pt"
    with pytest.raises(FileNotFoundError, match="Available: gan1d_normal.pt"):
        paths.checkpoint("dcgan.pt")


def test_format_table_aligns_numbers_and_text():
    text = format_table([{"trial": "a", "KS": 0.12345}, {"trial": "long name", "KS": 1.5, "extra": "x"}])
    lines = text.splitlines()
    assert lines[0].split() == ["trial", "KS", "extra"]
    assert "0.1235" in lines[2] and "1.5000" in lines[3]
    assert len({len(l) for l in lines[:2]}) == 1
    assert format_table([]) == "(no rows)"


@pytest.mark.slow
def test_main_job_from_the_root_writes_under_a_relative_out_and_nothing_in_notebooks(tmp_path, monkeypatch, capsys):
    """`labkit run --out build` as the README says: the outputs land in ./build, counted truthfully."""
    from labkit import cli

    notebooks = REPO / "notebooks"
    before = {p: p.stat().st_mtime_ns for p in notebooks.rglob("*") if p.is_file()}
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--only", "01", "--out", "build"])
    summary = capsys.readouterr().out
    assert code == 0, summary
    line = next(l for l in summary.splitlines() if l.startswith("01_gan_1d:"))
    counts = dict(reversed(part.split(" ", 1)) for part in line.split(", ")[2:5])
    assert int(counts["figures"]) >= 2 and int(counts["GIFs"]) >= 3 and int(counts["saved models"]) >= 1, line
    assert list((tmp_path / "build" / "01_gan_1d").glob("*.gif")), "the GIFs must be under ./build"
    after = {p: p.stat().st_mtime_ns for p in notebooks.rglob("*") if p.is_file()}
    assert after == before, "labkit run wrote inside notebooks/"


def test_summary_counts_saved_models_not_training_states(tmp_path):
    import torch

    from labkit import saveModel
    from labkit.instructor.notebook import RunResult
    from labkit.train import save_training_state

    model = torch.nn.Linear(2, 1)
    saveModel(model, tmp_path / "final.pt")
    save_training_state(tmp_path / "training.pt", 0, {"loss": [1.0]}, model=model)
    (tmp_path / "curve.png").write_bytes(b"png")
    result = RunResult("lab", "ok", 1.0, outputs=[str(p) for p in sorted(tmp_path.iterdir())])
    assert result.summary().endswith("1 figures, 0 GIFs, 1 saved models")


def test_the_kernel_ends_with_the_run(tmp_path):
    """execute() kills its kernel at once (a graceful shutdown spent 2.5 s finalising torch after notebook 01): no
    kernel is left behind when the run is over."""
    from tests.processes import ended_within

    pid_file = tmp_path / "kernel.pid"
    cells = [nbformat.v4.new_code_cell(f"import os\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))")]
    path = tmp_path / "kernel.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    result = execute(path, None, quick=True)
    assert result.status == "ok", result.errors
    assert ended_within(int(pid_file.read_text()), 10), "the notebook's kernel outlived the run"


def test_a_file_the_torch_free_reader_cannot_follow_is_asked_of_torch(tmp_path, monkeypatch):
    import torch

    from labkit import checkpoint_format
    from labkit.checkpoint import saveModel
    from labkit.instructor.notebook import _is_saved_model
    from labkit.models.mlp import MLPDiscriminator

    saveModel(MLPDiscriminator(hidden=(4,)), tmp_path / "d.pt")
    torch.save({"epoch": 1}, tmp_path / "state.pt")
    monkeypatch.setattr(checkpoint_format, "is_saved_model", lambda path: None)
    assert _is_saved_model(tmp_path / "d.pt") and not _is_saved_model(tmp_path / "state.pt")
