"""``labkit pack``: the hand-in zip holds the notebook, the models it saves and a filled-in READ_ME.txt; it refuses
the untouched release, warns about what is missing, and ``labkit grade`` gives the zip the folder's points."""
from __future__ import annotations

import contextlib
import csv
import datetime
import io
import shutil
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from labkit import cli
from labkit.notebook_format import release_notebook
from labkit.student.handin import read_hand_in
from labkit.student.pack import PackError, fill_readme, pack_submission
from tests.fixtures.grading import make_fixtures as fx

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "grading"


def _zip_names(path: Path):
    with zipfile.ZipFile(path) as z:
        return sorted(n.split("/", 1)[1] for n in z.namelist())


def _zip_text(path: Path, name: str) -> str:
    with zipfile.ZipFile(path) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("/" + name))).decode("utf-8")


def test_lab_01_reference_packs_its_notebook_models_and_a_filled_readme(tmp_path):
    folder = tmp_path / "work"
    folder.mkdir()
    for name in ("01_gan_1d.ipynb", "gan1d_final.pt", "gan1d_final_D.pt"):
        shutil.copy(REPO / "notebooks" / "solutions" / name, folder / name)
    (folder / "unrelated.pt").write_bytes(b"not named by the notebook")
    packed = pack_submission(folder / "01_gan_1d.ipynb", out=tmp_path / "hand-in.zip",
                             members=["Ada Lovelace, 123", "Alan Turing, 456"])
    assert _zip_names(packed.path) == ["01_gan_1d.ipynb", "READ_ME.txt", "gan1d_final.pt", "gan1d_final_D.pt"]
    readme = _zip_text(packed.path, "READ_ME.txt")
    assert "Lab:        01_gan_1d" in readme
    assert "Members:    Ada Lovelace, 123\n            Alan Turing, 456\n" in readme
    assert f"Date:       {datetime.date.today().isoformat()}" in readme
    assert "gan1d_final.pt          saved with labkit.saveModel; graded by ex2_quality_fair, ex2_quality_good" in readme
    assert "labkit evaluate gan1d_final.pt" in readme and "<notebook>" not in readme and "<model>" not in readme
    assert packed.size == packed.path.stat().st_size > 0
    assert not [w for w in packed.warnings if "not next to the notebook" in w or "NotImplementedError" in w]
    # what is left for the students to write is named
    assert any("READ_ME.txt still to fill in" in w and "Training time" in w for w in packed.warnings)


def test_the_untouched_release_is_refused(tmp_path):
    shutil.copy(REPO / "notebooks" / "01_gan_1d.ipynb", tmp_path / "01_gan_1d.ipynb")
    with pytest.raises(PackError, match="as released"):
        pack_submission(tmp_path / "01_gan_1d.ipynb", out=tmp_path / "x.zip")
    assert not (tmp_path / "x.zip").exists()
    # QUICK = True in the parameters cell is still the untouched release
    nb = nbformat.read(tmp_path / "01_gan_1d.ipynb", as_version=4)
    next(c for c in nb.cells if "parameters" in c.metadata.get("tags", [])).source = "QUICK = True\nSEED = 0"
    nbformat.write(nb, tmp_path / "01_gan_1d.ipynb")
    with pytest.raises(PackError):
        pack_submission(tmp_path / "01_gan_1d.ipynb", out=tmp_path / "x.zip")


def test_missing_model_open_todo_and_empty_answer_are_warned_about(tmp_path):
    nb = fx._partial()  # TODO 2 as released, the rest solved
    answer = next(c for c in nb.cells if c.metadata.get("labkit", {}).get("answer"))
    answer.source = release_notebook(fx.toy_solution(), "toy").cells[nb.cells.index(answer)].source
    nbformat.write(nb, tmp_path / "toy.ipynb")
    packed = pack_submission(tmp_path / "toy.ipynb", out=tmp_path / "toy.zip", source=FIXTURES / "solutions")
    text = "\n".join(packed.warnings)
    assert "line_model.npy is not next to the notebook: saved_model will get no points" in text
    assert "questions not answered: why_outliers" in text
    assert "still raises NotImplementedError: the average of xs" in text
    assert "no outputs" in text
    assert "Members" in text  # no --member and READ_ME.txt not filled in


def test_readme_next_to_the_notebook_is_kept(tmp_path):
    nb = fx.toy_solution()
    nbformat.write(nb, tmp_path / "toy.ipynb")
    mine = (REPO / "READ_ME.txt").read_text().replace("<minutes> on <CPU / GPU model>", "12 minutes on a laptop")
    hand_in = read_hand_in(tmp_path / "toy.ipynb", source=FIXTURES / "solutions")
    filled = fill_readme(mine, hand_in, today=datetime.date(2025, 3, 1))
    assert "12 minutes on a laptop" in filled and "Date:       2025-03-01" in filled
    assert "<name, student id>" in filled  # no members given: the placeholder stays, and pack warns


def test_pack_command_prints_size_and_warnings(tmp_path, capsys):
    folder = fx._folder(tmp_path, "sub", fx.toy_solution())
    assert cli.main(["pack", str(folder / "toy.ipynb"), "--out", str(tmp_path / "toy.zip"), "--source",
                     str(FIXTURES / "solutions"), "--member", "Ada, 1"]) == 0
    out = capsys.readouterr().out
    assert f"wrote {tmp_path / 'toy.zip'} (" in out and " MB): toy.ipynb, line_model.npy, READ_ME.txt" in out
    assert cli.main(["pack", str(REPO / "notebooks" / "01_gan_1d.ipynb"), "--out", str(tmp_path / "r.zip")]) == 2
    assert "as released" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="symbolic links need privileges on Windows")
@pytest.mark.parametrize("linked", ["line_model.npy", "READ_ME.txt", "toy.ipynb"])
def test_pack_refuses_a_symbolic_link_and_says_why(tmp_path, capsys, linked):
    """Issue 28: gan1d_final.pt -> /etc/shadow was packed with the secret's content; now nothing is written."""
    secret = tmp_path / "shadow"
    secret.write_text("root:$6$secret-hash:19000:0:99999:7:::\n", encoding="utf-8")
    folder = fx._folder(tmp_path, "sub", fx.toy_solution())
    if linked == "toy.ipynb":   # the notebook itself is a link to the real one elsewhere
        (folder / linked).rename(tmp_path / "real.ipynb")
        secret = tmp_path / "real.ipynb"
    else:
        (folder / linked).unlink()
    (folder / linked).symlink_to(secret)
    out = tmp_path / "toy.zip"
    assert cli.main(["pack", str(folder / "toy.ipynb"), "--out", str(out), "--source", str(FIXTURES / "solutions")]) == 2
    err = capsys.readouterr().err
    assert f"labkit pack: error: {folder / linked} is a symbolic link (to {secret}), not a file" in err
    assert "Replace the link with the file itself" in err and not out.exists()


@pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits")
@pytest.mark.slow
def test_grade_gives_the_zip_the_points_of_the_folder(tmp_path):
    folder = fx._folder(tmp_path, "folder", fx._partial())  # 7 of 10 points: TODO 2 not done
    packed = pack_submission(folder / "toy.ipynb", out=tmp_path / "zipped.zip", source=FIXTURES / "solutions",
                             members=["Ada, 1"])
    out = tmp_path / "grades"
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["grade", "--source", str(FIXTURES / "solutions"), "--assignment", "toy", "--out", str(out),
                         "--no-progress", "--jobs", "2", "--cell-timeout", "60", str(folder), str(packed.path)]) == 0
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert float(rows["zipped"]["auto_points"]) == float(rows["folder"]["auto_points"]) == 7
    for column in ("status", "square", "mean", "saved_model", "flags"):
        assert rows["zipped"][column] == rows["folder"][column], column
