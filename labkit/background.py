"""Work that runs in a second process while the notebook goes on: a long training overlapping the next cells.

A 2-core machine (Colab's free tier, the course's CI) runs a one-thread training of tiny networks on one core
and leaves the other idle. ``Background(fn, *args)`` forks the kernel and calls ``fn(*args)`` in the child,
with one torch thread, while the notebook's next cells use the other core; ``.result()`` waits for it and
returns what ``fn`` returned (pickled back through a pipe), or raises what it raised, with the child's
traceback attached. A fork copies everything the notebook defined, so ``fn`` may be a function written in the
notebook (a ``spawn`` start could not import it)::

    longer = Background(run_trials, train_gan, {"baseline x10": config}, out_dir)   # returns at once
    ...                                                                            # other cells run
    runs, rows = longer.result()                                                   # waits, then the results

The child dies with the notebook's process (Linux's parent-death signal): a kernel that is killed, crashes or is
restarted leaves no training behind that holds a core.

Where a fork is not safe or not worth it (not Linux, a single CPU, or ``in_background=False``) the call runs
at once in the notebook's own process: ``result()`` then only hands the result over, and the notebook reads
the same either way (the work is seeded inside ``fn``, not by the process that runs it). The same happens, with
a note saying why, where PyTorch would refuse to train in the fork (:func:`forked_autograd_works`).
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional

__all__ = ["Background", "can_fork", "forked_autograd_works"]

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
PROBE_SECONDS = 10.0   # a throwaway child that has not answered by then counts as "cannot"


def can_fork() -> bool:
    """Whether work can go to a forked process here: Linux (macOS and Windows fork badly or not at all with
    torch and a notebook's state) and at least two CPUs (on one, a second process only slows the first)."""
    return sys.platform.startswith("linux") and (os.cpu_count() or 1) >= 2


def forked_autograd_works() -> bool:
    """Whether a process forked from this one can run a backward pass now, asked of a throwaway child.

    PyTorch refuses autograd in a forked child ("Unable to handle autograd's threading in combination with
    fork-based multiprocessing") once the parent has started autograd's device threads: on a machine with a GPU
    after its first backward pass, and on any machine after a backward pass that followed ``torch.export``,
    ``torch.compile`` or fake tensors (``saveModel`` exports a generator; a quality check loads the export). It
    says so only when the child first calls ``backward``, minutes into the work, so ask first.
    """
    if "torch" not in sys.modules:  # nothing in this process has touched autograd yet
        return True
    pid = os.fork()
    if pid == 0:  # the child: one tiny backward pass, then leave without any clean-up (as _run_in_child does)
        code = 1
        try:
            import torch

            torch.zeros(1, requires_grad=True).sum().backward()
            code = 0
        finally:
            os._exit(code)
    deadline = time.monotonic() + PROBE_SECONDS
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return False


def _die_with_parent(parent_pid: int) -> None:
    """Ask Linux to kill this process when the thread that forked it ends (the kernel's main thread: the kernel).

    Without it, a kernel killed at once (``labkit run`` ends its kernels that way; an out-of-memory kill; a
    crash) would leave the child training on, an orphan holding a core until its run ends.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not glibc/musl Linux: the child may outlive a killed kernel
        return
    if os.getppid() != parent_pid:  # the parent died between the fork and the prctl
        os._exit(1)


def _run_in_child(connection, fn: Callable, args: tuple, kwargs: dict, parent_pid: Optional[int]) -> None:
    """The forked process: one torch thread, call ``fn``, send back ("ok", result) or ("error", exception, text)."""
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(1)  # the other core belongs to the notebook
    # Plain pickle, by value: multiprocessing's own pickler would send tensors as shared-memory handles,
    # which die with this process.
    try:
        connection.send_bytes(pickle.dumps(("ok", fn(*args, **kwargs))))
    except BaseException as error:  # noqa: BLE001 - everything goes back to the notebook, which raises it
        text = traceback.format_exc()
        try:
            connection.send_bytes(pickle.dumps(("error", error, text)))
        except Exception:  # the exception itself does not pickle: send its text only
            connection.send_bytes(pickle.dumps(("error", None, text)))
    finally:
        connection.close()
        # Leave at once, without the clean-up a normal exit runs: the output streams and exit handlers are
        # the forked kernel's (a Jupyter kernel's streams talk to threads this process does not have).
        os._exit(0)


class Background:
    """``fn(*args, **kwargs)`` in a forked process (see the module's docstring); ``result()`` waits for it."""

    def __init__(self, fn: Callable, *args, in_background: Optional[bool] = None, **kwargs):
        self.name = getattr(fn, "__name__", "work")
        self.started = time.perf_counter()
        self._outcome = None
        self._process = None
        if in_background is None:
            in_background = can_fork()
        if in_background and not forked_autograd_works():
            print(f"Note: {self.name} runs here, in this process, not beside the next cells: PyTorch cannot train "
                  f"in a copy of this process made after it used a GPU or exported a model (saveModel does). "
                  f"The results are the same; only the wait is longer. To run it beside the next cells again, "
                  f"restart the kernel and run the notebook from the top.")
            in_background = False
        if not in_background:  # run it now, here; result() hands it over
            try:
                self._outcome = ("ok", fn(*args, **kwargs))
            except BaseException as error:  # noqa: BLE001 - raised by result(), where the notebook asks for it
                self._outcome = ("error", error, traceback.format_exc())
            return
        context = multiprocessing.get_context("fork")
        self._receiver, sender = context.Pipe(duplex=False)
        # The death signal follows the forking *thread*: ask for it only where that thread lives as long as the
        # process (the main thread; a kernel runs cells there). From another thread the child is a plain daemon.
        parent_pid = os.getpid() if threading.current_thread() is threading.main_thread() else None
        self._process = context.Process(target=_run_in_child, args=(sender, fn, args, kwargs, parent_pid),
                                        daemon=True)
        self._process.start()
        sender.close()  # only the child writes: the parent then sees EOF if the child dies without a word

    @property
    def in_background(self) -> bool:
        """Whether the work runs (or ran) in a second process."""
        return self._process is not None

    def done(self) -> bool:
        """Whether ``result()`` would return without waiting."""
        return self._outcome is not None or not self._process.is_alive() or self._receiver.poll()

    def result(self) -> Any:
        """Wait for the work and return what ``fn`` returned; raise what it raised (its traceback in a note).

        Interrupting the wait (the notebook's stop button) leaves the work running: ask again later.
        """
        if self._outcome is None:
            try:
                self._outcome = pickle.loads(self._receiver.recv_bytes())
            except EOFError:
                self._process.join()
                self._outcome = ("error", RuntimeError(
                    f"The background run of {self.name} stopped without a result (exit code "
                    f"{self._process.exitcode}; out of memory, or the process was stopped). Run the cell again; "
                    f"if it stops again, run the same work in the notebook's own process (Background(..., "
                    f"in_background=False), or run_trials instead of start_trials)."), "")
            self._receiver.close()
            self._process.join()
        if self._outcome[0] == "ok":
            return self._outcome[1]
        _, error, text = self._outcome
        if error is None:
            raise RuntimeError(f"The background run of {self.name} failed:\n{text}")
        if self.in_background and text and text not in getattr(error, "__notes__", []):
            error.add_note(text)  # where in the background process it was raised
        raise error

    def cancel(self) -> None:
        """Stop the background process (nothing happens where the work already ran)."""
        if self._process is not None and self._process.is_alive():
            self._process.terminate()
            self._process.join()

    def __repr__(self) -> str:
        where = "in a background process" if self.in_background else "in this process"
        state = "done" if self.done() else f"running for {time.perf_counter() - self.started:.0f} s"
        return f"<Background {self.name} {where}: {state}>"
