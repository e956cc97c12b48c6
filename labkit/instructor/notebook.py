"""Run notebooks headless, and reuse a notebook's code from scripts.

* :func:`execute` runs a notebook with nbclient and reports which check cells passed.
* :func:`load_exports` imports the cells tagged ``export`` of a notebook as a module,
  so benchmarks and reference scripts use the solution's own code instead of a copy.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Sequence, Tuple

import nbformat

from ..environment import HEADLESS, OUTPUT, QUICK

__all__ = ["load_exports", "execute", "RunResult", "current_interpreter_kernel"]


def load_exports(path, tags: Sequence[str] = ("export",), name: Optional[str] = None) -> types.ModuleType:
    """Execute the cells of ``path`` tagged with any of ``tags`` in a fresh module, in order, and return it.

    The reference recipes also take the cells tagged ``choices`` (a solution's learning rates and the like): in a
    student release those cells are TODOs that raise, so the default leaves them out."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    module = types.ModuleType(name or "labkit_exports_" + path.stem.replace("-", "_"))
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look classes up there
    tags = (tags,) if isinstance(tags, str) else tuple(tags)
    cells = [c for c in nb.cells if c.cell_type == "code" and set(tags) & set(c.get("metadata", {}).get("tags", []))]
    if not cells:
        raise ValueError(f"{path} has no code cells tagged {' or '.join(map(repr, tags))}.")
    for index, cell in enumerate(cells):
        code = compile(cell.source, f"{path.name}[export {index}]", "exec")
        exec(code, module.__dict__)
    return module


NotebookStatus = Literal["ok", "error", "timeout"]


def _is_saved_model(path) -> bool:
    """Whether ``path`` was written by saveModel (a training checkpoint for resuming is not a saved model)."""
    from ..checkpoint_format import is_saved_model

    verdict = is_saved_model(path)  # no torch import in this process, which otherwise never needs it
    if verdict is not None:
        return verdict
    from ..checkpoint import CheckpointError, read_checkpoint

    try:
        read_checkpoint(path)
    except CheckpointError:
        return False
    return True


@dataclass
class RunResult:
    notebook: str
    status: NotebookStatus
    seconds: float
    passed: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)   # check id -> error message
    errors: List[str] = field(default_factory=list)        # errors outside check cells
    outputs: List[str] = field(default_factory=list)       # files written to the output folder

    def summary(self) -> str:
        total = len(self.passed) + len(self.failed)
        figures = sum(1 for f in self.outputs if f.endswith((".png", ".svg", ".pdf")))
        gifs = sum(1 for f in self.outputs if f.endswith(".gif"))
        models = sum(1 for f in self.outputs if f.endswith(".pt") and _is_saved_model(f))  # not training states
        text = (f"{self.notebook}: {self.status} in {self.seconds:.0f} s, checks {len(self.passed)}/{total} passed, "
                f"{figures} figures, {gifs} GIFs, {models} saved models")
        if self.failed:
            text += " | failed: " + ", ".join(self.failed)
        if self.errors:
            text += " | first error: " + self.errors[0].splitlines()[-1][:160]
        return text


def _file_stamps(folder: Path) -> Dict[Path, Tuple[int, int]]:
    """Every file under ``folder`` with its (modification time in ns, size)."""
    stamps = {}
    for path in folder.rglob("*"):
        if path.is_file():
            stat = path.stat()
            stamps[path] = (stat.st_mtime_ns, stat.st_size)
    return stamps


def _error_text(outputs) -> Optional[str]:
    for out in outputs:
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return None


def current_interpreter_kernel(folder: Path) -> str:
    """Write a kernel spec that runs this very interpreter into ``folder``/kernels and return its name.

    A kernel started by the name ``python3`` is whatever interpreter Jupyter finds first, often another
    environment's (where labkit or torchinfo is missing). ``JUPYTER_PATH`` must include ``folder``.
    """
    import json

    name = "labkit-current-python"
    spec = Path(folder) / "kernels" / name
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(json.dumps({
        # The kernel talks to this process only, over loopback: ipykernel 7's warning about TCP without encryption
        # said so to every user of `labkit run` four times; its own errors still show.
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}", "--IPKernelApp.log_level=ERROR"],
        "display_name": f"Python ({sys.executable})", "language": "python",
    }))
    return name


def _workdir_copy(path: Path, workdir: Path) -> Path:
    """Copy the notebook and the saved models beside it into ``workdir``, where it then runs.

    The notebook finds its files (``dcgan_final.pt`` ...) as in its own folder, and whatever it saves lands
    in the work folder: a run never overwrites the reference solution's models in notebooks/solutions/.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    for item in path.parent.iterdir():
        if item.is_file() and (item == path or item.suffix == ".pt"):
            shutil.copy2(item, workdir / item.name)
    return workdir / path.name


def execute(path, out_path=None, quick: bool = True, output_dir=None, cell_timeout: int = 600,
            kernel: Optional[str] = None, workdir=None) -> RunResult:
    """Run a notebook top to bottom (errors do not stop it) and write the executed copy to ``out_path``.

    kernel: a kernel name; by default a kernel on the interpreter running this function.
    workdir: run a copy of the notebook (with the .pt files beside it) in this folder instead of in place.
    """
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    name = path.stem
    nb = nbformat.read(path, as_version=4)
    if workdir is not None:
        path = _workdir_copy(path, Path(workdir))
    env_backup = {k: os.environ.get(k) for k in (QUICK.name, OUTPUT.name, "MPLBACKEND", "JUPYTER_PATH",
                                                 HEADLESS.name)}
    os.environ[QUICK.name] = "1" if quick else "0"
    os.environ[HEADLESS.name] = "labkit run"  # the notebook's self-check cell says it is skipped
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    spec_root = Path(tempfile.mkdtemp(prefix="labkit-kernel-"))
    if kernel is None:
        kernel = current_interpreter_kernel(spec_root)
        os.environ["JUPYTER_PATH"] = os.pathsep.join(p for p in (str(spec_root), env_backup["JUPYTER_PATH"]) if p)
    if output_dir is not None:
        output_dir = Path(output_dir).resolve()  # the kernel's working folder is the notebook's, not ours
        output_dir.mkdir(parents=True, exist_ok=True)
        os.environ[OUTPUT.name] = str(output_dir)
    # Files and their modification times before the run: a second run into the same folder rewrites the same
    # names, and those count as written by this run too.
    before = _file_stamps(output_dir) if output_dir else {}
    status: NotebookStatus = "ok"
    start = time.perf_counter()
    try:
        # "immediate": every output has arrived when the last cell replies, and a graceful shutdown then spent
        # 2.5 s finalising torch and matplotlib (notebook 01).
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name=kernel, allow_errors=True,
                                shutdown_kernel="immediate", resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    except CellTimeoutError:
        status = "timeout"
    except DeadKernelError:
        status = "error"
    finally:
        for key, value in env_backup.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(spec_root, ignore_errors=True)
    seconds = time.perf_counter() - start
    result = RunResult(notebook=name, status=status, seconds=seconds)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        check = cell.get("metadata", {}).get("labkit", {}).get("check")
        error = _error_text(cell.get("outputs", []))
        if check:
            executed = cell.get("execution_count") is not None
            if error or not executed:
                result.failed[check] = error or "not executed"
            else:
                result.passed.append(check)
        elif error:
            result.errors.append(error)
    if result.status == "ok" and (result.failed or result.errors):
        result.status = "error"
    if out_path is not None:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(out_path))
    if output_dir:
        result.outputs = sorted(str(path) for path, stamp in _file_stamps(output_dir).items()
                                if before.get(path) != stamp)
    return result
