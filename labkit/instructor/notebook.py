"""Run notebooks headless, and reuse a notebook's code from scripts.

* :func:`execute` runs a notebook with nbclient and reports which check cells passed.
* :func:`load_exports` imports the cells tagged ``export`` of a notebook as a module,
  so benchmarks and reference scripts use the solution's own code instead of a copy.
"""
from __future__ import annotations

import os
import sys
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import nbformat

__all__ = ["load_exports", "execute", "RunResult"]


def load_exports(path, tag: str = "export", name: Optional[str] = None) -> types.ModuleType:
    """Execute the cells of ``path`` tagged ``tag`` in a fresh module and return it."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    module = types.ModuleType(name or "labkit_exports_" + path.stem.replace("-", "_"))
    module.__file__ = str(path)
    sys.modules[module.__name__] = module  # dataclasses and pickling look classes up there
    cells = [c for c in nb.cells if c.cell_type == "code" and tag in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise ValueError(f"{path} has no code cells tagged {tag!r}.")
    for index, cell in enumerate(cells):
        code = compile(cell.source, f"{path.name}[export {index}]", "exec")
        exec(code, module.__dict__)
    return module


@dataclass
class RunResult:
    notebook: str
    status: str                      # ok | error | timeout
    seconds: float
    passed: List[str] = field(default_factory=list)
    failed: Dict[str, str] = field(default_factory=dict)   # check id -> error message
    errors: List[str] = field(default_factory=list)        # errors outside check cells
    outputs: List[str] = field(default_factory=list)       # files written to the output folder

    def summary(self) -> str:
        total = len(self.passed) + len(self.failed)
        figures = sum(1 for f in self.outputs if f.endswith((".png", ".svg", ".pdf")))
        gifs = sum(1 for f in self.outputs if f.endswith(".gif"))
        models = sum(1 for f in self.outputs if f.endswith(".pt"))
        text = (f"{self.notebook}: {self.status} in {self.seconds:.0f} s, checks {len(self.passed)}/{total} passed, "
                f"{figures} figures, {gifs} GIFs, {models} saved models")
        if self.failed:
            text += " | failed: " + ", ".join(self.failed)
        if self.errors:
            text += " | first error: " + self.errors[0].splitlines()[-1][:160]
        return text


def _error_text(outputs) -> Optional[str]:
    for out in outputs:
        if out.get("output_type") == "error":
            return f"{out.get('ename')}: {out.get('evalue')}"
    return None


def execute(path, out_path=None, quick: bool = True, output_dir=None, cell_timeout: int = 600,
            kernel: str = "python3") -> RunResult:
    """Run a notebook top to bottom (errors do not stop it) and write the executed copy to ``out_path``."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    env_backup = {k: os.environ.get(k) for k in ("LABKIT_QUICK", "LABKIT_OUTPUT", "MPLBACKEND")}
    os.environ["LABKIT_QUICK"] = "1" if quick else "0"
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    if output_dir is not None:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        os.environ["LABKIT_OUTPUT"] = str(output_dir)
    before = set(Path(output_dir).rglob("*")) if output_dir else set()
    status = "ok"
    start = time.perf_counter()
    try:
        client = NotebookClient(nb, timeout=cell_timeout, kernel_name=kernel, allow_errors=True,
                                resources={"metadata": {"path": str(path.parent)}})
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
    seconds = time.perf_counter() - start
    result = RunResult(notebook=path.stem, status=status, seconds=seconds)
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
        result.outputs = sorted(str(p) for p in set(Path(output_dir).rglob("*")) - before if p.is_file())
    return result
