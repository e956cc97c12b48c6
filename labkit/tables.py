"""Plain-text tables for notebooks, benchmarks and the command line (no pandas needed)."""
from __future__ import annotations

from typing import Dict, Iterable, Sequence

__all__ = ["format_table"]


def _cell(value, digits: int) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}f}" if abs(value) < 1e5 else f"{value:.3g}"
    return str(value)


def format_table(rows: Iterable[Dict], columns: Sequence[str] = None, digits: int = 4) -> str:
    """Rows (dicts) as an aligned text table; ``columns`` picks and orders the keys (default: all, first seen)."""
    rows = list(rows)
    if not rows:
        return "(no rows)"
    if columns is None:
        columns = []
        for row in rows:
            columns += [k for k in row if k not in columns]
    cells = [[_cell(row.get(c, ""), digits) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(row.get(c), (int, float)) for row in rows) for c in columns]

    def line(values):
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    return "\n".join([line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells])
