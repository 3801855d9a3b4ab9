"""The notebooks of ``notebooks/``: each runs without error in quick mode, and each committed .ipynb is
the executed form of its .py (``python scripts/notebooks.py`` rebuilds them).

The notebooks run in their own kernel process (this interpreter, ``LAB_NOTEBOOK_QUICK=1``), so the
suite's strict promotion and warnings-as-errors apply to the executor here, not to the notebooks.
"""

import importlib.util
import os
import pathlib
import sys

import jupytext
import nbformat
import pytest
from nbclient.exceptions import CellExecutionError

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebooks_script", ROOT / "scripts" / "notebooks.py")
notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(notebooks)

SOURCES = notebooks.sources()
CELL_TIMEOUT = 600  # seconds: only a guard against a hung cell; quick cells take a few seconds


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_runs_in_quick_mode(source):
    nb = notebooks.execute(jupytext.read(source), quick=True, cwd=source.parent, timeout=CELL_TIMEOUT)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code)
    assert not [out for cell in code for out in cell.outputs if out.output_type == "error"]


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_committed_notebook_is_current(source):
    assert notebooks.stale(source) is None, "run python scripts/notebooks.py " + source.stem[:2]


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_conventions(source):
    """A notebook opens with prose and the QUICK switch, has prose before every code cell and ends with
    exercises whose solutions are hidden."""
    cells = jupytext.read(source).cells
    assert cells[0].cell_type == "markdown"
    first_code = next(cell.source for cell in cells if cell.cell_type == "code")
    assert 'QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"' in first_code
    for before, cell in zip(cells, cells[1:], strict=False):
        assert not (cell.cell_type == "code" and before.cell_type == "code"), \
            f"code cell without prose before it: {cell.source[:60]!r}"
    solutions = [cell for cell in cells if "<details><summary>Solution</summary>" in cell.source]
    assert len(solutions) >= 2
    assert all(cell.cell_type == "markdown" for cell in cells[cells.index(solutions[0]):])


def _write(path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    jupytext.write(nb, path, fmt="py:percent")


def test_kernel_is_this_python_in_quick_mode_and_errors_fail(tmp_path):
    """The kernel runs this interpreter with LAB_NOTEBOOK_QUICK=1 (and quick compilation) in the
    notebook's folder, and a cell that raises makes the run fail."""
    source = tmp_path / "01_probe.py"
    _write(source, [
        nbformat.v4.new_markdown_cell("A probe."),
        nbformat.v4.new_code_cell("import os, sys\n"
                                  'print(sys.executable, os.getcwd(), os.environ.get("LAB_NOTEBOOK_QUICK"))\n'
                                  'print(os.environ.get("XLA_FLAGS"))'),
        nbformat.v4.new_code_cell('raise ValueError("planted failure")'),
    ])
    nb = jupytext.read(source)
    with pytest.raises(CellExecutionError, match="planted failure"):
        notebooks.execute(nb, quick=True, cwd=tmp_path, timeout=CELL_TIMEOUT)
    first, flags = nb.cells[1].outputs[0].text.splitlines()
    executable, cwd, quick = first.split()
    assert os.path.samefile(executable, sys.executable)
    assert os.path.samefile(cwd, tmp_path)
    assert quick == "1"
    assert notebooks.QUICK_XLA_FLAG in flags.split()


def test_stale_names_each_problem(tmp_path):
    source = tmp_path / "01_probe.py"
    _write(source, [nbformat.v4.new_markdown_cell("Prose."), nbformat.v4.new_code_cell("x = 1")])
    assert "missing" in notebooks.stale(source)
    built = jupytext.read(source)
    nbformat.write(built, source.with_suffix(".ipynb"))
    assert "unexecuted" in notebooks.stale(source)
    built.cells[1].execution_count = 1
    nbformat.write(built, source.with_suffix(".ipynb"))
    assert notebooks.stale(source) is None
    source.write_text(source.read_text().replace("x = 1", "x = 2"))
    assert "does not hold the cells" in notebooks.stale(source)


def test_select_by_number_or_name(tmp_path, capsys):
    for name in ("01_first", "02_second"):
        _write(tmp_path / f"{name}.py", [nbformat.v4.new_code_cell("pass")])
    assert [p.stem for p in notebooks.select([], tmp_path)] == ["01_first", "02_second"]
    assert [p.stem for p in notebooks.select(["02", "01_first.py"], tmp_path)] == ["02_second", "01_first"]
    with pytest.raises(ValueError, match=r"no notebook '03'; valid: 01_first, 02_second"):
        notebooks.select(["03"], tmp_path)
    assert notebooks.main(["99_nothing"]) == 2
    assert notebooks.main(["--bogus"]) == 2
    assert capsys.readouterr().err.count("\n") == 2
