"""``lab list``, ``lab run NAME``, ``lab figures``: :mod:`lab.experiments` on the command line.

Results (sweeps and experiment records) go under ``--results`` (default ``results/``), figures
under ``--out``. A finished sweep or record there is reused, so rerunning ``lab figures`` after a
plotting change only redraws. Output directories are checked for writability before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from lab.errors import check_writable

FIGURES_DIR = "figures"
QUICK_FIGURES_DIR = os.path.join("results", "figures-quick")


def _out_dir(args) -> str:
    return args.out or (QUICK_FIGURES_DIR if args.quick else FIGURES_DIR)


def _print_table(title: str, summary: dict) -> None:
    columns, rows = summary["columns"], summary["rows"]
    widths = [max(len(str(c)), *(len(str(r[i])) for r in rows)) if rows else len(str(c))
              for i, c in enumerate(columns)]
    print(title)
    print("  ".join(str(c).ljust(w) for c, w in zip(columns, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)))


def _cmd_list(args: argparse.Namespace) -> int:
    from lab.experiments import registry

    del args
    experiments = registry()
    width = max(len(name) for name in experiments)
    for name, experiment in experiments.items():
        print(f"{name.ljust(width)}  {experiment.description}")
    return 0


def _run_one(name: str, config, args, out: str) -> tuple[list[str], object, float]:
    from lab.experiments import draw_experiment, run_experiment

    t0 = time.perf_counter()
    record = run_experiment(name, config, results_dir=args.results, force=getattr(args, "force", False),
                            quiet=args.quiet)
    paths = draw_experiment(name, record, out)
    return paths, record, time.perf_counter() - t0


def _cmd_run(args: argparse.Namespace) -> int:
    from lab.errors import LabError
    from lab.experiments import registry

    experiments = registry()
    if args.name not in experiments:
        raise LabError(f"unknown experiment {args.name!r}; valid: {', '.join(experiments)}")
    experiment = experiments[args.name]
    config = experiment.make_config(args.quick, seeds=args.seeds, steps=args.steps)
    if args.all_optimizers:
        if not hasattr(config, "optimizers"):
            raise LabError(f"experiment {args.name!r} has no --all-optimizers setting (it compares no "
                           "optimizers)")
        from lab.optim import catalogue

        config = dataclasses.replace(config, optimizers=catalogue.names())
    out = _out_dir(args)
    check_writable(out, "--out")
    check_writable(args.results, "--results")
    paths, record, seconds = _run_one(args.name, config, args, out)
    _print_table(f"{args.name}{' (quick)' if args.quick else ''}: {experiment.description}",
                 record.meta["summary"])
    print(f"figures ({seconds:.1f} s): {', '.join(paths)}")
    return 0


def _cmd_figures(args: argparse.Namespace) -> int:
    from lab.experiments import registry

    out = _out_dir(args)
    check_writable(out, "--out")
    check_writable(args.results, "--results")
    t_all = time.perf_counter()
    for name, experiment in registry().items():
        paths, _, seconds = _run_one(name, experiment.make_config(args.quick), args, out)
        print(f"{name:<15} {seconds:6.1f} s  {', '.join(os.path.basename(p) for p in paths)}", flush=True)
    print(f"all figures in {out}/ ({time.perf_counter() - t_all:.1f} s)")
    return 0


def add_parsers(subparsers, positive_int) -> None:
    """Add ``list``, ``run`` and ``figures`` to the ``lab`` command's subparsers."""
    lst = subparsers.add_parser("list", help="list the experiments, one line each",
                                description="List every experiment with a one-line description.")
    lst.set_defaults(handler=_cmd_list)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--quick", action="store_true",
                        help="the small configuration (seconds, not minutes; what CI runs)")
    common.add_argument("--out", metavar="DIR", default=None,
                        help=f"where figures go (default {FIGURES_DIR}/, or {QUICK_FIGURES_DIR}/ with "
                             "--quick, so a quick run never overwrites the gallery)")
    common.add_argument("--results", metavar="DIR", default="results",
                        help="where sweeps and experiment records are saved and reused (default results/)")
    common.add_argument("--quiet", action="store_true", help="no progress bars")

    run = subparsers.add_parser(
        "run", parents=[common],
        help="run one experiment, save its results, draw its figures, print a summary",
        description="Run one experiment (or reuse its saved results), draw its figures and print a summary "
                    "table. See 'lab list' for the names.")
    run.add_argument("name", metavar="NAME", help="the experiment (see 'lab list')")
    run.add_argument("--seeds", type=positive_int, default=None, help="override the number of seeds")
    run.add_argument("--steps", type=positive_int, default=None, help="override the number of steps")
    run.add_argument("--force", action="store_true", help="rerun even if saved results exist")
    run.add_argument("--all-optimizers", action="store_true",
                     help="every optimizer of the catalogue instead of the experiment's selection (an "
                          "optimizer a sweep cannot run is left out, with the reason in the summary)")
    run.set_defaults(handler=_cmd_run)

    figures = subparsers.add_parser(
        "figures", parents=[common], help="run (or reuse) every experiment and regenerate every figure",
        description="Run every experiment, reusing saved results, and regenerate every figure.")
    figures.set_defaults(handler=_cmd_figures)
