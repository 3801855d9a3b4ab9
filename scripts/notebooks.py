"""Build the lab's notebooks: each ``notebooks/NN_topic.py`` (the source, in jupytext's percent format)
becomes ``notebooks/NN_topic.ipynb``, executed, with its outputs and figures.

    python scripts/notebooks.py              # sync and execute every notebook (full size), write the .ipynb
    python scripts/notebooks.py 03 05        # only these notebooks (by number, or by name: 03_initialization)
    python scripts/notebooks.py --quick 03   # execute with small configurations (LAB_NOTEBOOK_QUICK=1),
                                             # write nothing: a fast check that a notebook runs
    python scripts/notebooks.py --check      # exit 1 if an .ipynb is missing, unexecuted or not its .py

Each notebook runs in a fresh ``python3`` kernel of this Python (``sys.executable``, whatever kernels
are installed elsewhere), with ``notebooks/`` as its working directory. The .ipynb is written only
when every cell ran without error. The test suite (``tests/test_notebooks.py``) runs every notebook
in quick mode and checks that the committed .ipynb files are current.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time

# jupyter_core warns until its paths move to platformdirs; opt in now (only kernel specs are looked
# up, and this script registers its own).
os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")

import jupytext  # noqa: E402
import nbformat  # noqa: E402
from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import AsyncKernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError, CellTimeoutError  # noqa: E402

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[1] / "notebooks"
QUICK_VARIABLE = "LAB_NOTEBOOK_QUICK"
QUICK_XLA_FLAG = "--xla_backend_optimization_level=0"


def sources(directory: pathlib.Path = NOTEBOOKS) -> list[pathlib.Path]:
    """Every notebook source ``NN_topic.py`` in ``directory``, in order."""
    return sorted(p for p in directory.glob("[0-9][0-9]_*.py"))


def select(names: list[str], directory: pathlib.Path = NOTEBOOKS) -> list[pathlib.Path]:
    """The sources named by ``names`` (``"03"``, ``"03_initialization"`` or its file name); all if empty.

    Raises:
        ValueError: for a name that matches no notebook, listing the valid ones.
    """
    available = sources(directory)
    if not names:
        return available
    chosen = []
    for name in names:
        stem = pathlib.Path(name).name.removesuffix(".py").removesuffix(".ipynb")
        match = [p for p in available if p.stem == stem or p.stem.split("_", 1)[0] == stem]
        if len(match) != 1:
            valid = ", ".join(p.stem for p in available) or "none"
            raise ValueError(f"no notebook {name!r}; valid: {valid} (or their numbers)")
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


def kernel_manager() -> AsyncKernelManager:
    """A manager for a ``python3`` kernel run by this very interpreter.

    With no kernel directories to search, jupyter_client falls back to ipykernel's own spec, whose
    command is ``sys.executable -m ipykernel_launcher``: the notebooks run in this environment even
    where another ``python3`` kernel is registered, and nothing needs ``ipykernel install``.
    """
    specs = KernelSpecManager(kernel_dirs=[], ensure_native_kernel=True)
    return AsyncKernelManager(kernel_name="python3", kernel_spec_manager=specs, transport_encryption="auto")


def execute(nb: nbformat.NotebookNode, *, quick: bool, cwd: pathlib.Path = NOTEBOOKS,
            timeout: int = 600) -> nbformat.NotebookNode:
    """Run every cell of ``nb`` in place in a fresh kernel; ``quick`` sets ``LAB_NOTEBOOK_QUICK=1``.

    A quick run also turns XLA's CPU backend optimizations off (``XLA_FLAGS``): its small
    configurations spend most of their time compiling, and this cuts a notebook's time by a
    quarter to a half. The full run, whose outputs are committed, compiles as usual.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell raised (the message shows the traceback).
        nbclient.exceptions.CellTimeoutError: a cell ran longer than ``timeout`` seconds.
    """
    env = dict(os.environ)
    env.pop(QUICK_VARIABLE, None)
    if quick:
        env[QUICK_VARIABLE] = "1"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {QUICK_XLA_FLAG}".strip()
    client = NotebookClient(nb, km=kernel_manager(), timeout=timeout, kernel_name="python3",
                            record_timing=False)
    # The client shuts down a kernel it did not create only when told to (cleanup_kc).
    client.execute(env=env, cwd=str(cwd), cleanup_kc=True)
    return nb


def cells(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """Each cell's type and source: what must agree between a .py and its .ipynb."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def stale(source: pathlib.Path) -> str | None:
    """Why ``source``'s .ipynb is not current (missing, not executed, other cells), or None if it is."""
    built = source.with_suffix(".ipynb")
    if not built.exists():
        return f"{built.name} is missing"
    nb = nbformat.read(built, as_version=4)
    if cells(nb) != cells(jupytext.read(source)):
        return f"{built.name} does not hold the cells of {source.name}"
    unrun = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.execution_count is None]
    if unrun:
        return f"{built.name} has unexecuted code cells (cell {unrun[0]} first)"
    return None


def build(source: pathlib.Path, *, quick: bool) -> float:
    """Execute ``source``; unless ``quick``, write its .ipynb. Returns the seconds it took."""
    start = time.perf_counter()
    nb = execute(jupytext.read(source), quick=quick, cwd=source.parent)
    if not quick:
        nbformat.write(nb, source.with_suffix(".ipynb"))
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    flags = {a for a in argv if a.startswith("-")}
    unknown = flags - {"--check", "--quick", "-h", "--help"}
    if flags & {"-h", "--help"}:
        print(__doc__.strip())
        return 0
    if unknown:
        print(f"error: unknown option {sorted(unknown)[0]!r}; valid: --check, --quick", file=sys.stderr)
        return 2
    try:
        chosen = select([a for a in argv if not a.startswith("-")])
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not chosen:
        print(f"error: no notebooks (NN_topic.py) in {NOTEBOOKS}", file=sys.stderr)
        return 2
    if "--check" in flags:
        problems = [reason for reason in map(stale, chosen) if reason]
        for reason in problems:
            print(f"{reason}: run python scripts/notebooks.py", file=sys.stderr)
        return 1 if problems else 0
    quick = "--quick" in flags
    status = 0
    for source in chosen:
        try:
            seconds = build(source, quick=quick)
        except (CellExecutionError, CellTimeoutError) as err:
            print(f"{source.name}: failed, nothing written\n{err}", file=sys.stderr)
            status = 1
            continue
        written = "" if quick else f" -> {source.with_suffix('.ipynb').name}"
        print(f"{source.name}: {'quick' if quick else 'full'} run {seconds:.1f} s{written}", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
