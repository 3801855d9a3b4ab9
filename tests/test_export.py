"""``lab.export`` and ``lab export RESULT_DIR --csv``: the CSV, read back with the csv module, holds
exactly the saved arrays (read straight from ``results.npz``), row by row, including the NaN rows of a
diverged run; a directory without complete results is one line and nothing is written.

One tiny sweep compiles (SGD on moons, a 3-unit MLP, 12 steps; one learning rate diverges).
"""

from __future__ import annotations

import csv
import io
import itertools
import os
import shutil

import numpy as np
import pytest

from lab import export
from lab.cli import main
from lab.sweep import Problem, SweepConfig, run_sweep, store

LEARNING_RATES = (0.1, 1e3)  # the second diverges: SGD on a squared error with a huge step


def _lab(argv: list[str]) -> int:
    """The ``lab`` command itself."""
    return main(argv)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> str:
    """A saved sweep: 2 learning rates x 2 L2 strengths x 2 seeds, one learning rate diverging."""
    problem = Problem(dataset="moons", hidden=(3,), n_train=40, loss="mse_classification")
    config = SweepConfig.make(problem, "sgd", {"learning_rate": LEARNING_RATES, "l2": [0.0, 1e-3]},
                              seeds=2, steps=12, batch_size=8, eval_every=5, log_every=3, name="export")
    store_dir = str(tmp_path_factory.mktemp("export") / "results")
    run_sweep(config, store_dir=store_dir, quiet=True)
    return store.result_dir(config, store_dir)


def _arrays(directory: str) -> dict[str, np.ndarray]:
    """The saved arrays, read with numpy alone (not through the store)."""
    with np.load(os.path.join(directory, "results.npz")) as z:
        return {k: z[k] for k in z.files}


def _read(text: str) -> tuple[list[str], list[list[str]]]:
    table = list(csv.reader(io.StringIO(text)))
    return table[0], table[1:]


def _same(cell: str, value) -> bool:
    """A CSV cell holds ``value`` exactly at its own precision (empty for NaN)."""
    if np.isnan(value):
        return cell == ""
    return value.dtype.type(float(cell)) == value


def test_one_row_per_run_and_evaluation_holds_the_saved_arrays(saved):
    a = _arrays(saved)
    assert a["diverged"].any() and not a["diverged"].all()  # both kinds of run are in the file
    assert np.isnan(a["test_loss"]).any()
    stream = io.StringIO()
    export.write_csv(export.load(saved), stream)
    header, rows = _read(stream.getvalue())
    assert header == ["run", "learning_rate", "l2", "seed", "step", "train_loss_eval", "test_loss",
                      "test_accuracy", "diverged", "diverged_step"]
    runs, steps = a["seed"].size, a["eval_steps"]
    assert runs == 8 and len(rows) == runs * steps.size
    # Grid-major, seed-minor: the runs are the product of the grid's values, each with seeds 0 and 1.
    points = list(itertools.product(LEARNING_RATES, [0.0, 1e-3], [0, 1]))
    empty = 0
    for (run, i), row in zip(itertools.product(range(runs), range(steps.size)), rows, strict=True):
        cell = dict(zip(header, row, strict=True))
        lr, l2, seed = points[run]
        assert int(cell["run"]) == run and int(cell["seed"]) == seed == a["seed"][run]
        assert np.float32(cell["learning_rate"]) == np.float32(lr) == a["hparam.learning_rate"][run]
        assert np.float32(cell["l2"]) == np.float32(l2) == a["hparam.l2"][run]
        assert int(cell["step"]) == steps[i]
        for metric in ("train_loss_eval", "test_loss", "test_accuracy"):
            assert _same(cell[metric], a[metric][run, i]), (run, i, metric, cell[metric])
        empty += cell["test_loss"] == ""
        assert cell["diverged"] == ("true" if a["diverged"][run] else "false")
        d = a["diverged_step"][run]
        assert cell["diverged_step"] == (str(d) if d >= 0 else "")
    assert empty == np.isnan(a["test_loss"]).sum() > 0


def test_losses_are_one_row_per_run_and_logged_step(saved):
    a = _arrays(saved)
    stream = io.StringIO()
    export.write_csv(export.load(saved), stream, losses=True)
    header, rows = _read(stream.getvalue())
    assert header == ["run", "learning_rate", "l2", "seed", "step", "train_loss"]
    steps = a["logged_steps"]
    np.testing.assert_array_equal(steps, [0, 3, 6, 9])
    assert len(rows) == a["seed"].size * steps.size
    for (run, i), row in zip(itertools.product(range(a["seed"].size), range(steps.size)), rows, strict=True):
        assert [int(row[0]), int(row[3]), int(row[4])] == [run, a["seed"][run], steps[i]]
        assert _same(row[5], a["train_loss"][run, i])
    assert any(row[5] == "" for row in rows)


def test_lab_export_writes_the_same_csv_to_a_file_or_to_stdout(saved, tmp_path, capsys):
    out = tmp_path / "sub" / "runs.csv"
    assert _lab(["export", saved, "--csv", "--out", str(out)]) == 0
    assert capsys.readouterr().out == f"{out}: 32 rows (8 runs x 4 evaluations)\n"
    assert _lab(["export", saved, "--csv"]) == 0
    assert capsys.readouterr().out == out.read_text()
    stream = io.StringIO()
    export.write_csv(export.load(saved), stream)
    assert out.read_text() == stream.getvalue()
    assert _lab(["export", os.path.join(saved, "results.json"), "--csv", "--losses"]) == 0
    assert capsys.readouterr().out.startswith("run,learning_rate,l2,seed,step,train_loss\n")


def test_a_failed_write_leaves_the_old_file(saved, tmp_path, monkeypatch):
    out = tmp_path / "runs.csv"
    out.write_text("old\n")

    def broken(result, losses=False):
        yield ["0"] * len(export.columns(result, losses))
        raise OSError("disk full")

    monkeypatch.setattr(export, "rows", broken)
    with pytest.raises(OSError, match="disk full"):
        export.write_csv(export.load(saved), str(out))
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["runs.csv"]


@pytest.mark.parametrize("case", ["missing", "empty", "npz only", "store root", "a file"])
def test_lab_export_without_complete_results_is_one_line_and_writes_nothing(saved, tmp_path, capsys, case):
    target = tmp_path / "target"
    if case == "empty":
        target.mkdir()
    elif case == "npz only":
        target.mkdir()
        shutil.copy(os.path.join(saved, "results.npz"), target)
    elif case == "store root":
        target = os.path.dirname(saved)
    elif case == "a file":
        target.write_text("x")
    out = tmp_path / "out.csv"
    assert _lab(["export", str(target), "--csv", "--out", str(out)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured.err
    expected = {"missing": "no such directory", "empty": "no complete results in",
                "npz only": "missing results.npz or results.json", "a file": "not a results directory",
                "store root": f"it holds complete sweeps in: {os.path.basename(saved)}"}[case]
    assert expected in captured.err
    assert not out.exists()


def test_lab_export_needs_a_format_and_a_file_for_out(saved, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _lab(["export", saved])
    assert info.value.code == 2 and "--csv" in capsys.readouterr().err
    assert _lab(["export", saved, "--csv", "--out", str(tmp_path)]) == 2
    assert "is a directory; give a file name" in capsys.readouterr().err
