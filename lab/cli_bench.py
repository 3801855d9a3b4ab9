"""``lab bench``: benchmark optimizers (and a candidate of your own) on the workloads under one protocol.

Everything is checked before anything runs (optimizers, candidate, search space, workloads, targets,
stored summaries); summaries go to ``--out`` (default ``results/bench``) and are reused, as are the
committed baselines; the figures, drawn from the summaries, go to ``--out``/figures. The protocol and
its output: ``docs/bench.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

from lab.errors import check_writable

RESULTS_DIR = os.path.join("results", "bench")
QUICK_BUDGET, QUICK_SEEDS = 3, 2  # --quick's defaults


def _names(text: str, flag: str) -> list[str]:
    from lab.errors import LabError

    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise LabError(f"{flag}: expected comma-separated names, got {text!r}")
    return list(dict.fromkeys(names))


def _inputs(args):
    """Everything the bench needs, checked: ``(cells, settings)``; LabError on bad input."""
    from lab.bench import baselines, search, suite
    from lab.bench.protocol import Settings
    from lab.bench.workloads import WORKLOADS
    from lab.errors import LabError

    if os.getcwd() not in sys.path:  # like `python -m`: a candidate in the current directory imports
        sys.path.insert(0, os.getcwd())
    for flag, value in (("--budget", args.budget), ("--seeds", args.seeds)):
        if value is not None and value < 1:
            raise LabError(f"{flag}: expected a positive integer, got {value}")
    settings = Settings(budget=args.budget or (QUICK_BUDGET if args.quick else Settings.budget),
                        seeds=args.seeds or (QUICK_SEEDS if args.quick else Settings.seeds))
    names = _names(args.workloads, "--workloads") if args.workloads else list(WORKLOADS)
    unknown = [n for n in names if n not in WORKLOADS]
    if unknown:
        raise LabError(f"--workloads: unknown workload {unknown[0]!r}; valid: {', '.join(WORKLOADS)}")
    workloads = [WORKLOADS[n].quick() if args.quick else WORKLOADS[n] for n in names]
    optimizers = _names(args.optimizers, "--optimizers") if args.optimizers else list(baselines.BASELINES)
    try:
        space = None
        if args.search_space is not None:
            text = args.search_space.strip()
            space = search.parse(text, "--search-space") if text.startswith("{") else search.load(text)
        spaces = {}
        if args.candidate is not None:
            from lab.bench import protocol

            optimizers = [args.candidate] + [o for o in optimizers if o != args.candidate]
            spec = protocol.resolve(args.candidate, "--candidate")
            if space is not None:
                spaces[str(spec)] = space
        elif space is not None:
            spaces = dict.fromkeys(optimizers, space)
        targets = baselines.load_targets(workloads)
        cells = suite.plan(optimizers, workloads, settings, targets, out=args.out, spaces=spaces,
                           recompute=args.recompute, field="--optimizers")
    except (ValueError, TypeError) as err:
        raise LabError(str(err)) from None
    return cells, settings


def _cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench import suite

    cells, settings = _inputs(args)
    check_writable(args.out, "--out")
    total = suite.run_steps(cells, settings)
    bar = None
    if total and not args.quiet and not args.json:
        from tqdm.std import tqdm

        bar = tqdm(total=total, unit="step", desc="lab bench", file=sys.stderr)
    try:
        done = suite.run(cells, settings, out=args.out, progress=bar.update if bar else None)
    finally:
        if bar is not None:
            bar.close()
    result = suite.scores(cells, done)
    if args.json:
        print(json.dumps({"settings": {"budget": settings.budget, "seeds": settings.seeds,
                                       "quick": args.quick}, "optimizers": result}))
    else:
        _print_table(result, len(cells) - sum(c.summary is None for c in cells))
    if not args.no_figures:
        _draw(cells, done, args.out)
    return 0


def _draw(cells, done: list[dict], out: str) -> None:
    """Draw the bench's figures from its summaries into ``out/figures``; their paths on stderr (stdout
    holds the table or the JSON)."""
    import jax

    from lab.bench import figures

    if jax.process_index() != 0:  # in a multi-process job, one process draws
        return
    start = time.perf_counter()
    named = [{**s, "optimizer": str(c.optimizer), "workload": c.workload.name}  # as the table names them
             for c, s in zip(cells, done, strict=True)]
    paths = figures.save(figures.draw(named, steps={c.workload.name: c.workload.steps for c in cells}), out)
    print(f"figures ({time.perf_counter() - start:.1f} s): {', '.join(paths)}", file=sys.stderr)


def _steps(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:g}"


def _print_table(result: dict, reused: int) -> None:
    workloads = list(next(iter(result.values()))["workloads"])
    header = ["optimizer", "score", "rank (95% CI)", *workloads]
    rows = []
    for name, r in sorted(result.items(), key=lambda kv: kv[1]["rank"]):
        low, high = r["rank_interval"]
        rows.append([name, f"{r['score']:.3f}", f"{r['rank']:g} ({low:g}-{high:g})",
                     *(_steps(r["workloads"][w]["steps_to_target"]) for w in workloads)])
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    for row in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"steps to target: median over seeds ('-': never reached); score: area under the performance "
          f"profile (1 = fastest everywhere); {reused} stored summaries reused")


def add_parsers(subparsers, positive_int) -> None:
    """Add ``bench`` to the ``lab`` command's subparsers."""
    del positive_int  # budget and seeds are checked here, with the flag named
    bench = subparsers.add_parser(
        "bench", help="benchmark optimizers (and your own) on the workloads: steps to a validation target",
        description="Tune each optimizer on each workload by the same quasi-random search (--budget "
                    "trials, trained without the validation split, chosen on it), rerun the chosen trial "
                    "on --seeds seeds and score the steps to each workload's validation target by "
                    "AlgoPerf's performance profiles. Stored and committed summaries are reused. "
                    "See docs/bench.md.")
    bench.add_argument("--candidate", metavar="MODULE:FACTORY", default=None,
                       help="your optimizer ('my_pkg.opt:my_adam', 'optax:adam'), benchmarked beside "
                            "--optimizers")
    bench.add_argument("--search-space", metavar="FILE|JSON", default=None,
                       help="the candidate's search space (JSON text or a file; default: learning_rate "
                            "log-uniform, or the catalogue entry's); without --candidate, every optimizer's")
    bench.add_argument("--optimizers", metavar="NAMES", default=None,
                       help="comma-separated catalogue names (default: the committed baselines)")
    bench.add_argument("--workloads", metavar="NAMES", default=None, help="comma-separated (default: all)")
    bench.add_argument("--budget", type=int, default=None,
                       help=f"tuning trials per optimizer and workload (default 20; --quick {QUICK_BUDGET})")
    bench.add_argument("--seeds", type=int, default=None,
                       help=f"seeds the chosen trial is rerun on (default 3; --quick {QUICK_SEEDS})")
    bench.add_argument("--quick", action="store_true", help="the workloads' quick variants (8 steps)")
    bench.add_argument("--out", metavar="DIR", default=RESULTS_DIR,
                       help=f"where summaries and sweeps are saved and reused (default {RESULTS_DIR}/)")
    bench.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    bench.add_argument("--recompute", action="store_true",
                       help="recompute summaries whose optimizer or workload changed since (else refused)")
    bench.add_argument("--quiet", action="store_true", help="no progress bar")
    bench.add_argument("--no-figures", action="store_true",
                       help="skip the figures (else drawn into OUT/figures: performance profiles, steps to "
                            "target over seeds, expected best result of k trials)")
    bench.set_defaults(handler=_cmd_bench)
