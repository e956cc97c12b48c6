"""Lab 03: the shipped checkpoint meets the lab's quality tiers through `labkit sample`; the header's times come from
the benchmarks (its grading end to end: tests/grading/test_labs_end_to_end.py)."""
import sys

import numpy as np
import pytest

from tests.grading.lab_grading import REPO

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="labkit grade needs POSIX process limits")


@pytest.mark.slow
def test_shipped_checkpoint_meets_the_good_tier_through_labkit_sample(tmp_path):
    from labkit import cli
    from labkit.checks import dcgan_mnist as checks
    from labkit.metrics import evaluate_images, shipped_reference_images

    out = tmp_path / "digits.npy"
    assert cli.main(["sample", str(REPO / "checkpoints" / "dcgan_mnist.pt"), "--n", "5000", "--out", str(out)]) == 0
    images = np.load(out)
    assert images.shape == (5000, 28, 28) and images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    real, _, _ = shipped_reference_images("mnist")
    scores = evaluate_images(images, "mnist", reference=real)
    good = checks.QUALITY_TIERS["good"]
    assert scores["class_share_ratio"] >= good["share_ratio"], scores
    assert scores["mean_confidence"] >= good["confidence"], scores
    assert scores["fcd"] / scores["fcd_real_floor"] <= good["fcd_over_floor"], scores


def test_header_times_come_from_the_benchmarks():
    """The notebook's header quotes the real run's times per data set from docs/benchmarks.md, online and offline."""
    import json

    cells = json.loads((REPO / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb").read_text())["cells"]
    header = "".join(cells[0]["source"])
    docs = (REPO / "docs" / "benchmarks.md").read_text()
    section = docs[docs.index("## DCGAN on MNIST (lab 03)"):]
    section = section[:section.index("\n## ", 1)]
    for claim in ("11,000", "60,000", "937", "3.5 min", "12 epochs", "14,000", "43 min", "3,000"):
        assert claim in header and claim in section, claim
    for old in ("80 minutes", "about 95 s", "14 minutes"):   # the previous recipe's times (its D was 16 wide)
        assert old not in header, old


# Issue 25, item 2: a TODO's text says what to compute, its first hint the approach, and its code appears at most in a
# last hint that a student opens on purpose; a check's message names the mistake and the rule, not the corrected line.


def test_the_todos_code_is_only_in_their_last_hints():
    import nbformat

    from tests.checks import answers
    from tests.labs import hint_rules

    notebook = REPO / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb"
    assert len(answers.answer_expressions(notebook)) >= 40
    assert answers.leaked([hint_rules.text_before_the_last_hints(notebook)], notebook) == []
    cells = [c.source for c in nbformat.read(notebook, as_version=4).cells if "<summary>Last hint" in c.source]
    assert len(cells) >= 6
    for text in cells:   # a first hint with the approach, then the last one with the code
        assert text.index("<summary>Hint</summary>") < text.index("<summary>Last hint: the code</summary>"), text[:60]


def test_check_messages_name_the_mistake_not_the_answer():
    from tests.checks import answers
    from tests.labs import hint_rules

    messages = hint_rules.message_strings(REPO / "labkit" / "checks" / "dcgan_mnist.py")
    assert len(messages) > 100
    assert answers.leaked(messages, REPO / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb") == []


def test_quick_mode_changes_one_table():
    """Issue 23, item 6: what quick mode changes is one lab.pick table after the setup (no `X if lab.quick else Y`
    scattered over the cells), and the header says what QUICK = None, True and False do."""
    import nbformat

    cells = nbformat.read(REPO / "notebooks" / "solutions" / "03_dcgan_mnist.ipynb", as_version=4).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    assert not any("lab.quick" in source for source in code)
    tables = [i for i, c in enumerate(cells) if c.source.startswith("# What quick mode changes")
              and "SIZES = lab.pick(" in c.source]
    assert len(tables) == 1 and "labkit-setup" in cells[tables[0] - 1].metadata.get("tags", [])
    assert sum("SIZES[" in source for source in code) >= 2
    header = cells[0].source
    for claim in ("`QUICK = True` forces quick mode", "`QUICK = False` forces the full run", "LABKIT_QUICK",
                  "`None` then means a full run", "`SIZES`"):
        assert claim in header, claim
