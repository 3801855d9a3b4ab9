"""``lab sweep FILE.toml`` and ``lab export RESULT_DIR --csv``: sweeps without writing Python, and their
results for pandas, R or a spreadsheet.

A sweep file (:mod:`lab.sweep_file`, ``docs/sweep_files.md``) is checked whole before anything runs;
its results go to ``<--out>/<name>-<hash>/`` (default ``results/``) and are reused when run again.
``lab export`` writes CSV (:mod:`lab.export`) to stdout or, atomically, to ``--out FILE``.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from lab.errors import check_writable

RESULTS_DIR = "results"


def _cmd_sweep(args: argparse.Namespace) -> int:
    from lab import sweep_file
    from lab.errors import LabError
    from lab.sweep import run_sweep, store

    if os.getcwd() not in sys.path:  # like `python -m`: modules in the current directory import
        sys.path.insert(0, os.getcwd())
    try:
        config = sweep_file.read(args.file)
    except ValueError as err:
        raise LabError(str(err)) from None
    check_writable(args.out, "--out")
    directory = store.result_dir(config, args.out)
    reused = not args.force and store.is_complete(directory)
    result = run_sweep(config, store_dir=args.out, force=args.force, quiet=args.quiet)
    _print_summary(result, reused)
    print(f"saved in {directory}; as CSV: lab export {directory} --csv --out {config.name}.csv")
    return 0


def _print_summary(result, reused: bool) -> None:
    """One line about the sweep, then one row per grid point (or listed point): seed means of the
    final evaluation."""
    config = result.config
    how = ("saved results reused" if reused else
           f"{result.wall_seconds:.1f} s, compile {result.compile_seconds:.1f} s")
    points, seeds = config.grid_size, config.seeds
    kind = "point" if config.points else "grid point"
    print(f"{config.name}: {config.optimizer} on {config.problem.dataset}, {points} {kind}"
          f"{'s' * (points != 1)} x {seeds} seed{'s' * (seeds != 1)}, {config.steps} steps ({how})")
    metrics = ["train_loss_eval", "test_loss"]
    if config.problem.is_classification:
        metrics.append("test_accuracy")
    finals = {m: result.grid_view(m)[..., -1].reshape(points, seeds) for m in metrics}
    diverged = result.grid_view("diverged").reshape(points, seeds)
    header = [name for name, _ in config.swept] + ["final " + m.replace("_eval", "") for m in metrics]
    header.append("diverged")
    table = []
    for i, point in enumerate(config.grid_points()):
        row = [f"{v:g}" for v in point.values()]
        for m in metrics:
            kept = finals[m][i][~diverged[i]]
            row.append(f"{float(np.mean(kept)):.4g}" if kept.size else "-")
        row.append(f"{int(diverged[i].sum())}/{config.seeds}")
        table.append(row)
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *table]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not diverged.all():
        best = ", ".join(f"{k}={v:g}" for k, v in result.best("train_loss_eval").items())
        print(f"best (lowest final train loss, seed mean; diverged runs count as worst): {best}")


def _cmd_export(args: argparse.Namespace) -> int:
    from lab import export
    from lab.errors import LabError

    try:
        result = export.load(args.result_dir)
        export.columns(result)  # a swept name that clashes with a column: before anything is written
    except ValueError as err:
        raise LabError(str(err)) from None
    if args.out is None:
        try:
            export.write_csv(result, sys.stdout, losses=args.losses)
            sys.stdout.flush()
        except BrokenPipeError:  # `lab export ... | head`: the reader left; say nothing more
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    if os.path.isdir(args.out):
        raise LabError(f"--out {args.out!r} is a directory; give a file name (e.g. {result.config.name}.csv)")
    check_writable(os.path.dirname(args.out) or ".", "--out's directory")
    export.write_csv(result, args.out, losses=args.losses)
    steps = result.logged_steps if args.losses else result.eval_steps
    what = "logged steps" if args.losses else "evaluations"
    print(f"{args.out}: {result.runs * steps.size} rows ({result.runs} runs x {steps.size} {what})")
    return 0


def add_parsers(subparsers, positive_int) -> None:
    """Add ``sweep`` and ``export`` to the ``lab`` command's subparsers."""
    del positive_int  # (no integer options here)
    sweep = subparsers.add_parser(
        "sweep", help="run a sweep described in a TOML file, save its results and print a summary",
        description="Run the sweep a TOML file describes (problem, optimizer, grid, fixed values, seeds, "
                    "steps; see docs/sweep_files.md), or reuse its saved results, and print the seed mean "
                    "of the final metrics per grid point. The whole file is checked before anything runs. "
                    "An optimizer or model given as 'module:factory' is imported as by 'python -m', "
                    "so modules in the current directory work.")
    sweep.add_argument("file", metavar="FILE.toml", help="the sweep file")
    sweep.add_argument("--out", metavar="DIR", default=RESULTS_DIR,
                       help=f"where results are saved and reused, in DIR/<name>-<hash>/ "
                            f"(default {RESULTS_DIR}/)")
    sweep.add_argument("--force", action="store_true", help="rerun even if saved results exist")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar")
    sweep.set_defaults(handler=_cmd_sweep)

    export = subparsers.add_parser(
        "export", help="write a saved sweep's results as CSV, one row per run and evaluation step",
        description="Write the results saved in RESULT_DIR (a sweep's directory, as 'lab sweep' "
                    "prints it) as CSV: one row per run and evaluation step with the run's swept "
                    "hyperparameters, seed, step, train_loss_eval, test_loss, test_accuracy, diverged and "
                    "diverged_step; an empty cell is a missing value (a step a diverged run did not reach). "
                    "The optimizer's code is not needed. Columns: docs/sweep_files.md.")
    export.add_argument("result_dir", metavar="RESULT_DIR", help="a sweep's results directory")
    fmt = export.add_mutually_exclusive_group(required=True)
    fmt.add_argument("--csv", action="store_true", help="write comma-separated values")
    export.add_argument("--out", metavar="FILE", default=None,
                        help="write to FILE (whole or not at all) instead of stdout")
    export.add_argument("--losses", action="store_true",
                        help="instead, one row per run and logged step: the mini-batch loss (train_loss)")
    export.set_defaults(handler=_cmd_export)
