"""labkit.background: work in a forked process gives what the same call gives here, and its errors come back;
where PyTorch would refuse autograd in a fork, the work runs in place and says why."""
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from labkit import background
from labkit.background import Background

forks = pytest.mark.skipif(not background.can_fork(), reason="needs Linux and two CPUs")


@pytest.fixture(autouse=True)
def fork_allows_autograd(monkeypatch):
    """The process mechanics below need no autograd in the child: do not let this worker's history (a test that
    exported a model, which makes a fork refuse autograd) send them in place. The probe's own tests run in
    subprocesses, which this does not reach."""
    monkeypatch.setattr(background, "forked_autograd_works", lambda: True)


def seeded_draw(seed, n):
    """Seeded inside the call, as the trials are: the process that runs it does not matter."""
    torch.manual_seed(seed)
    return torch.randn(n), os.getpid(), torch.get_num_threads()


def fails(message):
    raise ValueError(message)


@forks
def test_background_returns_what_the_call_returns_from_another_process():
    work = Background(seeded_draw, 3, n=5)
    assert work.in_background
    values, pid, threads = work.result()
    assert pid != os.getpid() and threads == 1          # a second process, one torch thread
    assert torch.equal(values, seeded_draw(3, 5)[0])    # the same numbers as here
    assert work.done() and work.result()[1] == pid      # asking twice hands over the same result


def test_in_background_false_runs_at_once_in_this_process():
    work = Background(seeded_draw, 3, n=5, in_background=False)
    assert not work.in_background and work.done()
    values, pid, _ = work.result()
    assert pid == os.getpid() and torch.equal(values, seeded_draw(3, 5)[0])


@pytest.mark.parametrize("in_background", [pytest.param(True, marks=forks), False])
def test_an_error_is_raised_by_result_with_its_type_and_message(in_background):
    work = Background(fails, "wrong shape", in_background=in_background)
    with pytest.raises(ValueError, match="wrong shape") as caught:
        work.result()
    if in_background:   # the child's traceback rides along, naming the failing function
        assert any("in fails" in note for note in caught.value.__notes__)
    with pytest.raises(ValueError, match="wrong shape"):   # asked again: the same error, not a closed pipe
        work.result()


@forks
def test_a_child_that_dies_gives_a_clear_error_not_a_hang():
    work = Background(os._exit, 3)          # ends the process without sending anything
    for _ in range(2):                      # and the same error when asked again
        with pytest.raises(RuntimeError, match=r"stopped without a result.*exit code 3.*in_background=False\), or run_trials instead of start_trials"):
            work.result()


@forks
def test_cancel_stops_a_running_child():
    import time

    work = Background(time.sleep, 60)
    assert not work.done() and "running" in repr(work)
    work.cancel()
    assert work.done()
    with pytest.raises(RuntimeError, match="stopped without a result"):
        work.result()


@forks
def test_the_child_dies_with_a_killed_parent():
    """`labkit run` kills its kernels at once and a kernel can be killed (out of memory): no orphan training on."""
    import signal
    import subprocess
    import sys

    from tests.processes import ended_within

    parent = subprocess.Popen([sys.executable, "-c", (
        "import time\n"
        "from labkit.background import Background\n"
        "work = Background(time.sleep, 60)\n"
        "print(work._process.pid, flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    os.kill(child, 0)                       # the child runs
    parent.send_signal(signal.SIGKILL)      # no exit handlers run: only the death signal can end the child
    parent.wait()
    assert ended_within(child, 10), "the background child outlived its killed parent"


# A process that exported a model and then ran a backward pass, as a kernel does after saveModel and more training.
AFTER_EXPORT = textwrap.dedent("""
    import torch
    from labkit import background
    from labkit.background import Background

    def train():                      # a backward pass in whichever process runs it
        x = torch.ones(2, requires_grad=True)
        (3 * x).sum().backward()
        return x.grad.tolist(), background.os.getpid()

    fresh = background.forked_autograd_works()
    class Twice(torch.nn.Module):
        def forward(self, z):
            return 2 * z
    if EXPORT:
        torch.export.export(Twice(), (torch.randn(2),))
    train()
    work = Background(train)
    grads, pid = work.result()
    print(fresh, background.forked_autograd_works(), work.in_background, grads, pid == background.os.getpid())
""")


def _after_export(export: bool) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", f"EXPORT = {export}\n" + AFTER_EXPORT], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})


@forks
def test_after_an_export_the_work_runs_in_place_says_why_and_gives_the_same_result():
    run = _after_export(True)
    assert run.returncode == 0, run.stderr[-3000:]
    note, summary = run.stdout.strip().splitlines()
    # True: a fresh process could fork autograd; False: after export + backward it cannot, so in place, same grads
    assert summary == "True False False [3.0, 3.0] True", summary
    assert note.startswith("Note: train runs here, in this process") and "restart the kernel" in note


@forks
def test_without_an_export_the_work_still_goes_to_a_second_process():
    run = _after_export(False)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip() == "True True True [3.0, 3.0] False", run.stdout
