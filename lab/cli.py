"""The ``lab`` command line: a thin dispatcher over the library.

Each group of subcommands lives in its own module (:mod:`lab.cli_verify`,
:mod:`lab.cli_experiments`, :mod:`lab.cli_sweep`, :mod:`lab.cli_bench`) with
``add_parsers(subparsers, positive_int)``, which sets each parser's handler; a handler returns the
exit status. Bad input raises :class:`lab.errors.LabError` (or ``ValueError``/``TypeError`` from a
validating constructor); the dispatcher prints it as one line on stderr and exits with status 2.
Set ``LAB_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import argparse
import os
import sys

from lab import __version__, cli_bench, cli_experiments, cli_sweep, cli_verify
from lab.errors import LabError

__all__ = ["LabError", "build_parser", "main"]


DESCRIPTION = """\
optimizer-lab: see, measure and trust how neural-network training depends on the optimizer.

Typical use:
  lab demo                      train a small MLP on the 8x8 digits with Adam (about 20 s)
  lab verify                    check every hand-written optimizer against optax
  lab list                      list the experiments
  lab run NAME [--quick]        run one experiment, save its results and draw its figures
  lab figures [--quick]         run (or reuse) every experiment and regenerate figures/
  lab sweep FILE.toml           run a sweep described in a TOML file (docs/sweep_files.md)
  lab export DIR --csv          write a saved sweep's results as CSV, one row per run and evaluation
  lab bench [--candidate M:F]   benchmark optimizers on the workloads: steps to a validation target
"""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``lab run: error: ...``), not usage plus error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _cmd_demo(args: argparse.Namespace) -> int:
    from lab.demo import run_demo

    run_demo(steps=args.steps, learning_rate=args.learning_rate, seed=args.seed)
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="lab", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"optimizer-lab {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    demo = sub.add_parser(
        "demo",
        help="train the digits MLP (64-128-10, ReLU) with Adam and print loss and accuracy",
        description="Train the 64-128-10 ReLU MLP on scikit-learn's 8x8 digits with the lab's Adam, "
        "mini-batches of 64, and print training loss and test accuracy as it goes.",
    )
    demo.add_argument("--steps", type=_positive_int, default=1000, help="training steps (default 1000)")
    demo.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate (default 1e-3)")
    demo.add_argument("--seed", type=int, default=0, help="PRNG seed for init and batches (default 0)")
    demo.set_defaults(handler=_cmd_demo)

    for module in (cli_verify, cli_experiments, cli_sweep, cli_bench):
        module.add_parsers(sub, positive_int=_positive_int)
    for name in LONG_RUNNING:
        _add_job_options(sub.choices[name])
    return parser


LONG_RUNNING = ("run", "figures", "sweep", "bench")  # the commands that train, and so may span processes


def _add_job_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--distributed", action="store_true",
                        help="first join the other processes of a multi-process job "
                        "(jax.distributed.initialize: under Slurm, Open MPI or Kubernetes it finds its "
                        "peers; see docs/sweeps.md, 'Several processes')")
    parser.add_argument("--compile-cache", metavar="DIR|off", default=None,
                        help="where compiled programs are kept for later runs (default "
                        "$LAB_COMPILE_CACHE, else ~/.cache/lab/jax); 'off' for none")


def _prepare(args: argparse.Namespace) -> None:
    """The persistent compile cache for every command, and the processes of a distributed job."""
    from lab import compile_cache, distributed

    compile_cache.configure(getattr(args, "compile_cache", None))
    if getattr(args, "distributed", False):
        distributed.initialize()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 0
    try:
        _prepare(args)
        return int(args.handler(args) or 0)
    except (LabError, ValueError, TypeError) as err:
        if os.environ.get("LAB_DEBUG"):
            raise
        print(f"lab: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        # A sweep stopped by Ctrl-C says where it saved and how to resume; a bare Ctrl-C says nothing.
        print(f"lab: {err or 'interrupted'}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
