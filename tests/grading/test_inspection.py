"""Nothing a hand-in contains runs or grows on the grading host (issue 28): each attack kept as a scenario.

* a model file whose exported generator pickles a command (sample inputs run ``os.system``) is never loaded
  by the grader's own process: the inspection runs sandboxed, and labkit's loader refuses such an archive
  anyway; a marker file proves that nothing ran;
* weights that view 1 GiB through a few KB, and constructor arguments that ask for a huge network, are
  refused before anything is allocated;
* a reference with its latent inputs negated or permuted, and a short fine-tune of one, are recognised;
* memfd and SysV shared memory count against the memory limit (a cgroup per run) and the run is reported
  as killed for memory;
* a 6,000-deep folder tree left in a run's /tmp cannot stop the batch: both rows are written;
* the graded model is read from a snapshot taken before the run: a reference copied into place by a cell
  during the run earns nothing.
"""
from __future__ import annotations

import csv
import io
import os
import pickle
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

from labkit import saveModel
from labkit.checkpoint import CheckpointError, load_data_only, loadModel, read_checkpoint
from labkit.grading.cgroup import memory_control
from labkit.grading.hostfs import remove_tree
from labkit.grading.inspection import parse_answer, read_features, snapshot_models
from labkit.grading.inside.inspector import ANSWER_PREFIX
from labkit.grading.run import run_helper
from labkit.grading.types import Killed, Limits
from labkit.grading.sandbox import sandbox_works
from labkit.grading.fingerprints import DERIVED_DISTANCE, ReferenceIndex
from labkit.models.mlp import MLPGenerator

REPO = Path(__file__).resolve().parents[2]
SOLUTIONS = REPO / "notebooks" / "solutions"
REFERENCE = REPO / "checkpoints" / "gan1d_laplace.pt"
needs_sandbox = pytest.mark.skipif(not sandbox_works(), reason="bubblewrap (bwrap) is missing or cannot run here")
needs_cgroup = pytest.mark.skipif(memory_control().parent is None,
                                  reason="no writable memory cgroup (v1 or delegated v2) on this machine")


class _Command:
    """Unpickling this runs a shell command: the payload of a malicious model file."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def malicious_model(source: Path, target: Path, marker: Path) -> Path:
    """``source``'s saved model with its exported generator's sample inputs replaced by a pickled command."""
    payload = torch.load(source, weights_only=True)
    old = zipfile.ZipFile(io.BytesIO(payload["exported"]))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as new:
        for info in old.infolist():
            data = old.read(info.filename)
            if info.filename.endswith("sample_inputs/model.pt"):
                data = pickle.dumps(_Command(f"touch {marker}"))
            new.writestr(info, data)
    payload["exported"] = out.getvalue()
    payload["class"] = "student_code:Generator"   # not labkit's: the exported copy is what would be loaded
    torch.save(payload, target)
    return target


# --------------------------------------------------------------------------- the loader itself


def test_a_pickled_command_in_an_exported_generator_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "ran"
    evil = malicious_model(REFERENCE, tmp_path / "evil.pt", marker)
    for load in (load_data_only, loadModel):
        with pytest.raises(CheckpointError, match="exported generator"):
            load(evil)
    assert not marker.exists()


def test_weights_that_view_more_than_they_store_are_refused(tmp_path):
    payload = torch.load(REFERENCE, weights_only=True)
    name = next(iter(payload["state_dict"]))
    payload["state_dict"][name] = torch.zeros(1).expand(2**28)   # 4 bytes stored, 1 GiB viewed
    torch.save(payload, tmp_path / "view.pt")
    with pytest.raises(CheckpointError, match="views more elements"):
        read_checkpoint(tmp_path / "view.pt")


def test_constructor_arguments_for_a_huge_network_are_refused_before_allocating(tmp_path):
    saveModel(MLPGenerator(latent_dim=5, hidden=[15]), tmp_path / "g.pt")
    payload = torch.load(tmp_path / "g.pt", weights_only=True)
    payload["init_args"] = {"args": [], "kwargs": {"latent_dim": 5, "hidden": [16384, 16384]}}
    torch.save(payload, tmp_path / "huge.pt")
    with pytest.raises(CheckpointError, match="do not build the network"):
        load_data_only(tmp_path / "huge.pt")


# --------------------------------------------------------------------------- recognising references


@pytest.fixture(scope="module")
def index():
    return ReferenceIndex.build([REFERENCE])


def _variant(tmp_path, change) -> Path:
    model = loadModel(REFERENCE)
    with torch.no_grad():
        change(model)
    path = tmp_path / "variant.pt"
    saveModel(model, path, target="laplace")
    return path


def _first_linear(model):
    return next(m for m in model.modules() if isinstance(m, torch.nn.Linear))


@pytest.mark.parametrize("change", [
    lambda m: _first_linear(m).weight.neg_(),                                   # G(-z): the same distribution
    lambda m: _first_linear(m).weight.copy_(_first_linear(m).weight[:, torch.randperm(
        _first_linear(m).weight.shape[1], generator=torch.Generator().manual_seed(1))]),  # permuted latent inputs
], ids=["negated", "permuted"])
def test_a_reference_with_its_latent_inputs_negated_or_permuted_has_the_same_weights(index, tmp_path, change):
    path = _variant(tmp_path, change)
    match = index.match(path.name, read_checkpoint(path)["state_dict"])
    assert match is not None and match.how == "same weights"


def test_a_short_fine_tune_of_a_reference_is_derived_and_an_own_model_is_not(index, tmp_path):
    def nudge(model):
        generator = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.02 * p.abs().mean() * torch.randn(p.shape, generator=generator))
    path = _variant(tmp_path, nudge)
    match = index.match(path.name, read_checkpoint(path)["state_dict"])
    assert match is not None and match.how == "derived" and 0 < match.distance <= DERIVED_DISTANCE
    torch.manual_seed(123)
    own = loadModel(REFERENCE)
    for m in own.modules():
        if isinstance(m, torch.nn.Linear):
            m.reset_parameters()
    saveModel(own, tmp_path / "own.pt", target="laplace")
    assert index.match("own.pt", read_checkpoint(tmp_path / "own.pt")["state_dict"]) is None


def test_the_inspectors_answer_is_validated():
    good = ANSWER_PREFIX + '[{"file": "g.pt", "saved_model": true, "random_operators": ["randn"], ' \
        '"features": "features0.npz", "problem": "a\\u001b[2Jb"}]'
    item = parse_answer(good, ["g.pt"])[0]
    assert item["features"] == "features0.npz" and item["random_operators"] == ("randn",)
    assert "\x1b" not in item["problem"]
    for bad in (good.replace("features0", "../../etc/passwd"), "no answer", good.replace('"g.pt"', '"h.pt"'),
                ANSWER_PREFIX + "[]", good + "\n" + good):
        with pytest.raises((ValueError, TypeError)):
            parse_answer(bad, ["g.pt"])


def test_features_are_read_back_as_numbers_only(tmp_path):
    np.savez(tmp_path / "ok.npz", **{"w:layer": np.ones(3), "signature": np.zeros((2, 1))})
    weights, signature = read_features(tmp_path / "ok.npz")
    assert list(weights) == ["layer"] and signature.shape == (2, 1)
    np.savez(tmp_path / "objects.npz", **{"w:layer": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(ValueError):
        read_features(tmp_path / "objects.npz")


def test_the_snapshot_takes_regular_files_only(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "a.pt").write_bytes(b"x")
    (tmp_path / "work" / "b.pt").symlink_to("/etc/passwd")
    notes = []
    copied = snapshot_models(tmp_path / "work", ["a.pt", "b.pt", "c.pt"], tmp_path / "snap", notes)
    assert copied == ["a.pt"] and not (tmp_path / "snap" / "b.pt").exists()
    assert any("b.pt is not a regular file" in n for n in notes)


# --------------------------------------------------------------------------- limits and clean-up


MEMFD = ("import os, mmap\nfds = []\nfor i in range(3):\n    fd = os.memfd_create('x')\n    os.ftruncate(fd, 200 << 20)\n"
         "    m = mmap.mmap(fd, 200 << 20)\n    m.write(b'1' * (200 << 20))\n    fds.append((fd, m))\nprint('survived')\n")
SYSV = ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.shmat.restype = ctypes.c_void_p\n"
        "for i in range(3):\n    sid = libc.shmget(0, 200 << 20, 0o1600)\n    addr = libc.shmat(sid, None, 0)\n"
        "    ctypes.memset(addr, 1, 200 << 20)\nprint('survived')\n")


@needs_cgroup
@pytest.mark.parametrize("program", [MEMFD, SYSV], ids=["memfd", "sysv-shm"])
def test_shared_memory_counts_against_the_memory_limit(program, tmp_path):
    done = run_helper(["-c", program], (), tmp_path, Limits(memory_gb=0.4), sandbox=None, timeout=120)
    assert done.killed is Killed.MEMORY and "survived" not in done.output, done.output


def test_a_6000_deep_tree_is_removed_without_recursion_and_links_are_not_followed(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    top = tmp_path / "deep"
    top.mkdir()
    fd = os.open(top, os.O_RDONLY)
    for _ in range(6000):
        os.mkdir("d", dir_fd=fd)
        child = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = child
    os.symlink(str(outside), "link", dir_fd=fd)
    os.close(fd)
    assert remove_tree(top) is None
    assert not top.exists() and outside.read_text() == "keep"


def test_remove_tree_reports_instead_of_raising(tmp_path, monkeypatch):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("1")
    monkeypatch.setattr(os, "unlink", lambda *a, **k: (_ for _ in ()).throw(PermissionError("no")))
    problem = remove_tree(tmp_path / "x")
    assert problem and "could not be removed" in problem


# --------------------------------------------------------------------------- whole batches (lab 01)


def _lab01(folder: Path, extra_cells=(), model: Path = None) -> Path:
    folder.mkdir(parents=True)
    nb = nbformat.read(SOLUTIONS / "01_gan_1d.ipynb", as_version=4)
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and "labkit.setup" in c.source)
    for offset, source in enumerate(extra_cells):
        nb.cells.insert(setup + 1 + offset, nbformat.v4.new_code_cell(source))
    nbformat.write(nb, str(folder / "01_gan_1d.ipynb"))
    if model is not None:
        shutil.copyfile(model, folder / "gan1d_final.pt")
    return folder


def _rows(out: Path):
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


@needs_sandbox
@pytest.mark.slow
def test_hostile_hand_ins_cannot_reach_the_host_and_every_row_is_written(tmp_path):
    subs, marker = tmp_path / "subs", tmp_path / "marker-on-the-host"
    own = tmp_path / "own.pt"
    saveModel(MLPGenerator(latent_dim=5, hidden=[15]), own, target="laplace")
    evil = malicious_model(REFERENCE, tmp_path / "evil.pt", marker)
    negated = _variant(tmp_path, lambda m: _first_linear(m).weight.neg_())
    shutil.copyfile(REFERENCE, tmp_path / "ref.bin")
    cases = {
        "evil_model": _lab01(subs / "evil_model", model=evil),
        "negated_reference": _lab01(subs / "negated_reference", model=negated),
        # a reference handed in under another name and copied into place while the notebook runs
        "copied_at_run_time": _lab01(subs / "copied_at_run_time",
                                     ["import shutil\nshutil.copyfile('ref.bin', 'gan1d_final.pt')"]),
        "deep_tmp_tree": _lab01(subs / "deep_tmp_tree", [
            "import os\nfd = os.open('/tmp', os.O_RDONLY)\nfor _ in range(6000):\n"
            "    os.mkdir('d', dir_fd=fd)\n    n = os.open('d', os.O_RDONLY, dir_fd=fd)\n    os.close(fd)\n    fd = n"],
            model=own),
    }
    shutil.copyfile(tmp_path / "ref.bin", cases["copied_at_run_time"] / "ref.bin")
    out = tmp_path / "grades"
    done = subprocess.run([sys.executable, "-m", "labkit", "grade", "--assignment", "01_gan_1d", "--out", str(out),
                           "--jobs", "2", "--no-progress", "--", *map(str, cases.values())],
                          capture_output=True, text=True, timeout=1500, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    rows = _rows(out)
    assert set(rows) == set(cases), rows.keys()
    assert not marker.exists()
    assert "could not be read" in (rows["evil_model"]["notes"] + rows["evil_model"]["flags"]) or \
        rows["evil_model"]["ex2_quality_fair"] in ("0", "0.0")
    assert "same weights" in rows["negated_reference"]["flags"]
    assert float(rows["copied_at_run_time"]["ex2_quality_fair"]) == 0.0
    assert float(rows["copied_at_run_time"]["ex2_quality_good"]) == 0.0
    assert rows["deep_tmp_tree"]["status"] in ("ok", "error")
    assert "memory cgroup" in done.stdout or memory_control().parent is None
