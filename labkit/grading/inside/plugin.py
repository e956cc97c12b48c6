"""pytest plugin inside each graded run: streams per-cell results, lifts nbval's fixed limits, stops at a timeout.

``labkit grade`` loads it (``-p labkit.grading.inside.plugin``) into the pytest process
running one submission with nbval.

It does three things nbval does not:

* it streams one JSON line per executed cell (outcome, the status of the kernel's execute
  reply, error, printed text, whether the cell timed out or the kernel died) to the pipe whose
  file descriptor is ``$LABKIT_GRADING_RESULTS_FD``, flushed at once, so the grader keeps the
  results of the cells that ran even when it has to kill the run (notebook time limit,
  memory). The kernel cannot write there: the descriptor is not inherited, and this process
  makes itself non-dumpable, so ``/proc/<pid>/fd`` of it is closed to the kernel's user;
* it works around nbval's fixed limits: the 5-second wait for a cell's output after it
  finished (raised to ``$LABKIT_GRADING_OUTPUT_WAIT``), a dead kernel noticed only after the
  whole cell timeout (polled every half second instead), iopub messages left unread while a
  long cell runs (read as they come, so a chatty training loop cannot overflow the queue and
  lose the "idle" message), and the kernel's working folder (``$LABKIT_GRADING_CWD``: the
  copy of the submission, while the notebook being run lives elsewhere and is deleted once
  collected);
* it stops the session at the first timeout or dead kernel: the later cells could not count.

The variables are removed from the environment before the kernel starts.
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from queue import Empty
from typing import Optional

import pytest

from .wire import CellRecord, Event, encode
from ...environment import GRADING_CWD, GRADING_OUTPUT_WAIT, GRADING_RESULTS_FD

# The nbval releases whose internals the patches below were written for and tested with (RunningKernel's
# get_message and await_reply, IPyNbFile.setup, IPyNbCell.output_timeout, parent.timed_out). Keep in step
# with requirements.txt and pyproject.toml.
NBVAL_SUPPORTED = ((0, 10), (0, 12))   # lowest supported, first unsupported
NBVAL_RANGE = ">={}.{},<{}.{}".format(*NBVAL_SUPPORTED[0], *NBVAL_SUPPORTED[1])

_STATE = {"out": None, "cwd": None, "wait": 60.0, "dumpable": None, "t0": time.time()}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KEEP = 6000  # characters of printed output kept per cell (head and tail)


class KernelDied(RuntimeError):
    """The kernel process exited while a cell was running."""


class UnsupportedNbval(ValueError):
    """The installed nbval is not one the grader's patches were written for."""


def _release(version: str):
    return tuple(int(part) for part in re.findall(r"\d+", version)[:2])


def check_nbval_version(version: Optional[str] = None) -> str:
    """The installed nbval version; :class:`UnsupportedNbval` when it is outside :data:`NBVAL_RANGE`."""
    if version is None:
        import nbval

        version = str(getattr(nbval, "__version__", "unknown"))
    low, high = NBVAL_SUPPORTED
    if not low <= _release(version) < high:
        raise UnsupportedNbval(
            f"labkit grade patches nbval at run time and supports nbval{NBVAL_RANGE} only; nbval {version} is "
            f"installed. Install a supported one: python -m pip install 'nbval{NBVAL_RANGE}'")
    return version


def _emit(event: Event, record: Optional[CellRecord] = None, **extra) -> None:
    out = _STATE["out"]
    if out is None:
        return
    out.write(encode(event, time.time() - _STATE["t0"], record, **extra))
    out.flush()


def _clip(text: str, keep: int = KEEP) -> str:
    text = ANSI.sub("", text or "")
    if len(text) <= keep:
        return text
    half = keep // 2
    return text[:half] + f"\n[... {len(text) - keep} characters left out ...]\n" + text[-half:]


class _IopubBuffer:
    """iopub messages received while a cell runs, kept as raw frames and parsed only when nbval reads them.

    The kernel can publish thousands of outputs a second; zmq drops what is not read once its
    queues (about 1,000 messages on each side) are full, and the cell's "idle" message with them.
    Receiving frames costs microseconds a message, parsing them (signature, JSON, dates) a hundred:
    parsing while the cell runs made the reader slower than a chatty kernel on a busy machine.
    """

    def __init__(self, client):
        self.socket, self.session = client.iopub_channel.socket, client.iopub_channel.session
        self.frames: deque = deque()

    def receive(self) -> None:
        """Take every message waiting on the socket now, unparsed."""
        import zmq

        while True:
            try:
                self.frames.append(self.socket.recv_multipart(zmq.NOBLOCK, copy=False))
            except zmq.Again:
                return

    def pop(self) -> dict:
        _identities, frames = self.session.feed_identities(self.frames.popleft(), copy=False)
        return self.session.deserialize(frames, content=True, copy=False)


def _patch_nbval() -> None:
    import nbval.kernel as nbkernel
    import nbval.plugin as nbplugin
    import zmq

    original_get = nbkernel.RunningKernel.get_message
    original_execute = nbkernel.RunningKernel.execute_cell_input

    def execute_cell_input(self, cell_input, allow_stdin=None):
        msg_id = original_execute(self, cell_input, allow_stdin=allow_stdin)
        self._labkit_sent = msg_id
        return msg_id

    def dead_or_late(kernel, deadline) -> bool:
        """Raise KernelDied if the kernel is gone; else say whether the deadline has passed."""
        if not kernel.is_alive():
            raise KernelDied("The kernel died while this cell ran (the process exited: os._exit, a crash, "
                             "or it was killed for using too much memory).") from None
        return deadline is not None and time.monotonic() >= deadline

    def iopub_buffer(kernel) -> _IopubBuffer:
        if not hasattr(kernel, "_labkit_iopub"):
            kernel._labkit_iopub = _IopubBuffer(kernel.kc)
        return kernel._labkit_iopub

    def get_message(self, stream, timeout=None):
        buffered = getattr(self, "_labkit_iopub", None)
        if stream == "iopub" and buffered is not None and buffered.frames:
            return buffered.pop()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            try:
                return original_get(self, stream, timeout=step)
            except Empty:
                if dead_or_late(self, deadline):
                    raise

    def await_reply(self, msg_id, timeout=None):
        # Wait on the shell and the iopub sockets at once: iopub is emptied as soon as anything arrives.
        # The execute reply's status is kept: a cell whose reply says "error" failed, whatever it printed.
        if self._labkit_replies is None:
            self._labkit_replies = {}
        iopub, shell = iopub_buffer(self), self.kc.shell_channel
        poller = zmq.Poller()
        poller.register(iopub.socket, zmq.POLLIN)
        poller.register(shell.socket, zmq.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.5 if deadline is None else max(0.0, min(0.5, deadline - time.monotonic()))
            ready = dict(poller.poll(int(step * 1000)))
            iopub.receive()
            if shell.socket in ready:
                msg = shell.get_msg(timeout=0)
                if msg["parent_header"].get("msg_id") == msg_id:
                    content = msg.get("content") or {}
                    self._labkit_replies[msg_id] = {"status": content.get("status"), "ename": content.get("ename"),
                                                    "evalue": content.get("evalue")}
                    if content.get("status") == "aborted":
                        raise RuntimeError("Kernel aborted execution request")
                    return
            elif ready:  # output is flowing: the kernel lives (asking its manager costs more than a message)
                if deadline is not None and time.monotonic() >= deadline:
                    raise Empty
            elif dead_or_late(self, deadline):
                raise Empty

    nbkernel.RunningKernel.get_message = get_message
    nbkernel.RunningKernel.await_reply = await_reply
    nbkernel.RunningKernel.execute_cell_input = execute_cell_input
    nbkernel.RunningKernel._labkit_replies = None

    base = nbplugin.RunningKernel

    class GradingKernel(base):
        def __init__(self, kernel_name, cwd=None, startup_timeout=60):
            super().__init__(kernel_name, cwd=_STATE["cwd"] or cwd, startup_timeout=startup_timeout)

    nbplugin.RunningKernel = GradingKernel

    original_setup = nbplugin.IPyNbFile.setup

    def setup(self):
        _emit(Event.KERNEL_STARTING)
        original_setup(self)
        _emit(Event.KERNEL_READY)

    nbplugin.IPyNbFile.setup = setup


def _not_dumpable() -> bool:
    """Make this process non-dumpable (Linux): processes of the same user can no longer open its
    ``/proc/<pid>/fd`` or ptrace it, so the kernel cannot write into the results pipe."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0   # PR_SET_DUMPABLE, 0
    except (OSError, AttributeError):
        return False


def pytest_configure(config):
    fd = os.environ.pop(GRADING_RESULTS_FD.name, None)
    cwd = os.environ.pop(GRADING_CWD.name, None)
    wait = os.environ.pop(GRADING_OUTPUT_WAIT.name, None)
    if not fd:
        return
    try:
        nbval_version = check_nbval_version()
    except UnsupportedNbval as exc:
        raise pytest.UsageError(str(exc)) from None
    os.set_inheritable(int(fd), False)   # the kernel and anything else started from here do not get it
    _STATE["dumpable"] = not _not_dumpable()
    _STATE["out"] = os.fdopen(int(fd), "w", encoding="utf-8")
    _STATE["cwd"] = cwd
    _STATE["wait"] = float(wait or 60)
    _patch_nbval()
    _emit(Event.CONFIGURED, pid=os.getpid(), nbval=nbval_version, dumpable=_STATE["dumpable"])


def pytest_collection_modifyitems(session, config, items):
    if _STATE["out"] is None:
        return
    files = set()
    for item in items:
        if hasattr(item, "cell_num"):
            item.output_timeout = _STATE["wait"]
            files.add(str(item.parent.path))
    _emit(Event.COLLECTED, cells=sum(hasattr(i, "cell_num") for i in items))
    for path in files:  # the run keeps its copy in memory; student code cannot read it from disk
        try:
            os.unlink(path)
        except OSError:
            pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    item._labkit_timed_out_before = bool(getattr(item.parent, "timed_out", False))
    yield


def _outputs(item):
    outs = getattr(item, "test_outputs", None) or []
    stdout, stderr, errors = [], [], []
    for out in outs:
        kind = out.get("output_type")
        if kind == "stream":
            (stdout if out.get("name") == "stdout" else stderr).append(out.get("text", ""))
        elif kind == "error":
            errors.append(out)
    return "".join(stdout), "".join(stderr), errors


def _reply(kernel) -> dict:
    """The kernel's execute reply to the cell just run (empty when there was none: a timeout, a dead kernel)."""
    replies = getattr(kernel, "_labkit_replies", None) or {}
    return replies.pop(getattr(kernel, "_labkit_sent", None), None) or {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    if _STATE["out"] is None or not hasattr(item, "cell_num"):
        return
    report = outcome.get_result()
    if call.when == "setup":
        if report.failed:
            text = str(call.excinfo.value) if call.excinfo else "setup failed"
            _emit(Event.CELL, CellRecord(cell=item.cell_num, outcome="error",
                                         error=f"the kernel could not start: {_clip(text, 800)}", kernel_failed=True,
                                         kernel_dead=True, seconds=round(report.duration, 3)))
            item.session.shouldstop = "labkit: the kernel could not start"
        elif report.skipped:
            _emit(Event.CELL, CellRecord(cell=item.cell_num, outcome="skipped"))
        return
    if call.when != "call":
        return
    parent = item.parent
    timed_out = bool(getattr(parent, "timed_out", False)) and not getattr(item, "_labkit_timed_out_before", False)
    kernel = getattr(parent, "kernel", None)
    dead = kernel is None or not kernel.is_alive()
    stdout, stderr, errors = _outputs(item)
    error = traceback = None
    if report.failed or report.skipped:
        if errors:
            first = errors[0]
            error = _clip(f"{first.get('ename')}: {first.get('evalue')}", 2000)
            traceback = _clip("\n".join(first.get("traceback") or []), 4000)
        elif call.excinfo is not None:
            exc = call.excinfo.value
            error = _clip(f"{type(exc).__name__}: {exc}" if isinstance(exc, KernelDied) else str(exc), 2000)
    if isinstance(getattr(call.excinfo, "value", None), KernelDied):
        dead = True
    outcome_name = report.outcome
    if hasattr(report, "wasxfail"):
        outcome_name = "xfail"
    reply = _reply(kernel)
    if reply.get("status") == "error" and error is None:   # e.g. a UsageError: printed, but no error message
        error = _clip(f"{reply.get('ename')}: {reply.get('evalue')}", 2000)
    _emit(Event.CELL, CellRecord(cell=item.cell_num, outcome=outcome_name, reply=reply.get("status"), error=error,
                                 traceback=traceback, stdout=_clip(stdout), stderr=_clip(stderr, 2000),
                                 timed_out=timed_out, kernel_dead=dead and not timed_out,
                                 seconds=round(report.duration, 3)))
    if timed_out or dead:
        item.session.shouldstop = "labkit: " + ("a cell timed out" if timed_out else "the kernel died")


def pytest_sessionfinish(session, exitstatus):
    _emit(Event.FINISHED, exitstatus=int(exitstatus))
