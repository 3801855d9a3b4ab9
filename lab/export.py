"""Export a saved sweep as CSV, for pandas, R or a spreadsheet (``lab export RESULT_DIR --csv``).

One row per run and evaluation step (:func:`write_csv`), or with ``losses=True`` one row per run
and logged step of the mini-batch loss. The columns: ``docs/sweep_files.md``, "Exporting results".
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import IO

import numpy as np

from lab.sweep import store
from lab.sweep.store import SweepResult

__all__ = ["EVAL_METRICS", "columns", "load", "rows", "write_csv"]

EVAL_METRICS = ("train_loss_eval", "test_loss", "test_accuracy")  # (runs, evaluations) each


def load(path: str | os.PathLike) -> SweepResult:
    """The sweep saved in the directory ``path``; ``ValueError`` (one line) if it holds no complete
    results. Nothing is imported: the optimizer and model of the sweep need not be importable."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such directory")
    if not os.path.isdir(path):
        if os.path.basename(path) not in (store.RESULTS_NPZ, store.RESULTS_JSON):
            raise ValueError(f"{path}: not a results directory (a sweep's directory holds "
                             f"{store.RESULTS_NPZ} and {store.RESULTS_JSON})")
        path = os.path.dirname(path) or "."
    try:
        return store.load(path)
    except store.IncompleteResultsError as err:
        inside = sorted(d for d in os.listdir(path) if store.is_complete(os.path.join(path, d)))
        hint = f"; it holds complete sweeps in: {', '.join(inside)}" if inside else ""
        raise ValueError(f"{err}{hint}") from None
    except (ValueError, KeyError) as err:  # a sidecar this lab cannot read (another version's)
        raise ValueError(f"{path}: the saved results cannot be read: {err}") from None


def columns(result: SweepResult, losses: bool = False) -> list[str]:
    """The CSV header: ``run``, the swept hyperparameters, ``seed``, ``step``, then the metrics
    (:data:`EVAL_METRICS`, ``diverged``, ``diverged_step``), or ``train_loss`` with ``losses=True``."""
    fixed = ["run", "seed", "step", *EVAL_METRICS, "diverged", "diverged_step", "train_loss"]
    clash = [name for name in result.hparams if name in fixed]
    if clash:
        raise ValueError(f"export: swept hyperparameter {clash[0]!r} has the name of a column; "
                         f"columns: {', '.join(fixed)}")
    metrics = ["train_loss"] if losses else [*EVAL_METRICS, "diverged", "diverged_step"]
    return ["run", *result.hparams, "seed", "step", *metrics]


def rows(result: SweepResult, losses: bool = False) -> Iterator[list[str]]:
    """The CSV rows as strings, run by run and step by step (the order of :func:`columns`).

    Numbers are written in the shortest form that reads back to the same float32 (or float64)
    value; a missing value (NaN: a step a diverged run did not reach, accuracy of a regression) is
    an empty cell; ``diverged`` is ``true``/``false``; ``diverged_step`` is empty if it did not.
    """
    names = list(result.hparams)
    steps = result.logged_steps if losses else result.eval_steps
    for run in range(result.runs):
        prefix = [str(run), *(_number(result.hparams[k][run]) for k in names), str(int(result.seed[run]))]
        if losses:
            for i, step in enumerate(steps):
                yield [*prefix, str(int(step)), _number(result.train_loss[run, i])]
            continue
        d_step = int(result.diverged_step[run])
        per_run = ["true" if result.diverged[run] else "false", str(d_step) if d_step >= 0 else ""]
        for i, step in enumerate(steps):
            yield [*prefix, str(int(step)), *(_number(getattr(result, m)[run, i]) for m in EVAL_METRICS),
                   *per_run]


def write_csv(result: SweepResult, out: str | os.PathLike | IO[str], losses: bool = False) -> None:
    """Write ``result`` as CSV to a text stream, or atomically to the file ``out`` (a complete file
    or none: an error leaves no partial file)."""
    header = columns(result, losses)
    if not isinstance(out, str | os.PathLike):
        _write(out, header, rows(result, losses))
        return

    def write(binary: IO[bytes]) -> None:
        text = io.TextIOWrapper(binary, encoding="utf-8", newline="")
        _write(text, header, rows(result, losses))
        text.flush()
        text.detach()

    store.atomic_write(os.fspath(out), write)


def _write(stream: IO[str], header: list[str], body: Iterator[list[str]]) -> None:
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(body)


def _number(value) -> str:
    """The shortest text that reads back to ``value`` at its own precision; ``""`` for NaN."""
    value = np.asarray(value)[()]
    if np.isnan(value):
        return ""
    return str(value)  # numpy's shortest round-trip repr: "0.001", "1e-08", "inf"
