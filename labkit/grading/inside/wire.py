"""The results pipe between a graded run's pytest plugin and the grader, defined once: one JSON line per record,
an event name in each, and a cell's record with its fields (the plugin writes them, the grader reads them)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Dict, Literal, Optional, Union

__all__ = ["Event", "CellRecord", "encode", "decode", "Outcome"]

Outcome = Literal["passed", "failed", "skipped", "error", "xfail"]   # pytest's outcome of a cell


class Event(str, Enum):
    """What one line of the pipe reports."""

    CONFIGURED = "configured"            # pytest and nbval are set up (missing: the run never started)
    COLLECTED = "collected"              # the notebook's cells were collected
    KERNEL_STARTING = "kernel_starting"
    KERNEL_READY = "kernel_ready"        # the notebook's time limit counts from here
    CELL = "cell"                        # one cell ran: a CellRecord
    FINISHED = "finished"                # pytest ended (with its exit status)

    def __str__(self) -> str:
        return self.value


@dataclass
class CellRecord:
    """What the plugin reported for one executed cell."""

    cell: int
    outcome: Outcome
    reply: Optional[str] = None     # the status of the kernel's execute reply: "ok", "error" (None: no reply)
    error: Optional[str] = None
    traceback: Optional[str] = None
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    kernel_dead: bool = False
    kernel_failed: bool = False     # the kernel could not start (setup of the first cell failed)
    seconds: float = 0.0

    @classmethod
    def from_json(cls, record: Dict) -> "CellRecord":
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known and v is not None}
        return cls(**{**values, "cell": int(record["cell"])})


def encode(event: Event, t: float, record: Optional[CellRecord] = None, **extra) -> str:
    """One line of the pipe (with its newline): the event, the seconds since the run started, its fields."""
    body = {"event": Event(event).value, "t": round(t, 3), **(asdict(record) if record is not None else {}), **extra}
    return json.dumps(body) + "\n"


def decode(line: bytes) -> Optional[Union[CellRecord, Dict]]:
    """A line read back: a :class:`CellRecord`, another event's dict, or None for a line that is neither."""
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("event") not in {e.value for e in Event}:
        return None
    if body["event"] == Event.CELL.value:
        try:
            return CellRecord.from_json(body)
        except (KeyError, TypeError, ValueError):
            return None
    return body
