"""Issue 23, item 6, labs 03 and 04: what quick mode changes is one ``lab.pick`` table right after the setup cell (no
``X if lab.quick else Y`` scattered over the cells), and the header says what ``QUICK = None``, ``True`` and ``False``
do. Labs 01 and 02 keep their own tests (lab 01's quick mode is GanConfig.quick; lab 02 has no such header)."""
from __future__ import annotations

from pathlib import Path

import nbformat

HEADER_CLAIMS = ("`QUICK = True` forces quick mode", "`QUICK = False` forces the full run", "LABKIT_QUICK",
                 "`None` then means a full run", "`SIZES`")


def require_one_quick_mode_table(solution: Path) -> None:
    """The solution notebook at ``solution`` reads quick mode's sizes from one table after its setup cell, uses it
    at least twice, and its header says what QUICK does."""
    cells = nbformat.read(solution, as_version=4).cells
    code = [c.source for c in cells if c.cell_type == "code"]
    assert not [source for source in code if "lab.quick" in source], "a code cell still reads lab.quick"
    tables = [i for i, c in enumerate(cells) if c.source.startswith("# What quick mode changes")
              and "SIZES = lab.pick(" in c.source]
    assert len(tables) == 1, f"{len(tables)} quick-mode tables (cells {tables})"
    assert "labkit-setup" in cells[tables[0] - 1].metadata.get("tags", []), "the table does not follow the setup cell"
    assert sum("SIZES[" in source for source in code) >= 2, "the cells do not read SIZES"
    header = cells[0].source
    for claim in HEADER_CLAIMS:
        assert claim in header, f"the header does not say {claim!r}"
