"""Test helper: wait for a process to end (a zombie counts as ended: only its reaping is left)."""
import os
import signal
import time
from pathlib import Path


def ended_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` ends within ``seconds``; if not, it is killed so no test leaves it running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/status").read_text()
        except (ProcessLookupError, FileNotFoundError):
            return True
        if "zombie" in state.lower():   # an orphan is reaped by its new parent whenever that one gets to it
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False
