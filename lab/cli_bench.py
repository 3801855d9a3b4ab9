"""``lab bench``: benchmark optimizers (and a candidate of your own) on the workloads under one protocol.

Everything is checked before anything runs (optimizers, candidate, search space, workloads, targets,
stored summaries); summaries go to ``--out`` (default ``results/bench``) and are reused, as are the
committed baselines; the figures, drawn from the summaries, go to ``--out``/figures. The protocol and
its output: ``docs/bench.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

from lab.errors import check_writable

RESULTS_DIR = os.path.join("results", "bench")
QUICK_BUDGET, QUICK_SEEDS = 3, 2  # --quick's defaults
DEFAULT_STEPS, DEFAULT_BATCH_SIZE = 400, 64  # a --workload's (lab.bench.user's; not imported here: slow)


def _names(text: str, flag: str) -> list[str]:
    from lab.errors import LabError

    names = [n.strip() for n in text.split(",")]
    if not all(names):
        raise LabError(f"{flag}: expected comma-separated names, got {text!r}")
    return list(dict.fromkeys(names))


def _inputs(args):
    """Everything the bench needs, checked: ``(cells, settings, plan, workloads, pending, own)``;
    ``pending``: the user's workloads whose target is still to compute (None; the cells leave them out
    until ``plan(workloads)`` plans them with their targets); ``own``: the names of the user's
    workloads; LabError on bad input."""
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
    if args.workloads:
        names = _names(args.workloads, "--workloads")
    else:  # every suite workload, or only the user's own
        names = [] if args.workload else list(WORKLOADS)
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
        own = _user_workloads(args)
        workloads += own

        def plan(workloads, recompute=args.recompute):
            return suite.plan(optimizers, workloads, settings, targets, out=args.out, spaces=spaces,
                              recompute=recompute, field="--optimizers")

        pending = [w for w in own if w.target is None]  # their targets are computed first
        cells = plan([w for w in workloads if w not in pending])
        # Checked now with a stand-in target (recompute: a stored summary of another target is no
        # reason to stop before the target is known).
        plan([dataclasses.replace(w, target=0.0) for w in pending], recompute=True)
    except (ValueError, TypeError) as err:
        raise LabError(str(err)) from None
    return cells, settings, plan, workloads, pending, [w.name for w in own]


def _user_workloads(args) -> list:
    """The ``--workload`` workloads, each with its target: ``--target``, the one stored under ``--out``
    or None (to compute)."""
    from lab.bench import user
    from lab.errors import LabError

    given = {"--steps": args.steps, "--batch-size": args.batch_size, "--metric": args.metric,
             "--target": args.target}
    if not args.workload:
        flag = next((f for f, v in given.items() if v is not None), None)
        if flag is not None:
            raise LabError(f"{flag}: applies to your own workload only (--workload npz:PATH or "
                           f"MODULE:FACTORY)")
        return []
    target = None  # --target's
    if args.target is not None:
        try:
            target = float(args.target)
        except ValueError:
            target = math.nan
        if not math.isfinite(target):
            raise LabError(f"--target: expected a finite number, got {args.target!r}")
        if len(args.workload) > 1:
            raise LabError(f"--target: one target for {len(args.workload)} workloads is ambiguous; give one "
                           f"--workload per command with --target, or none to compute each one's")
    out = []
    for spec in args.workload:
        w = user.workload(spec, steps=args.steps, batch_size=args.batch_size, metric=args.metric)
        w = w.quick() if args.quick else w
        if any(o.name == w.name for o in out):
            raise LabError(f"--workload: two workloads named {w.name!r} ({spec} and an earlier one)")
        own = target if target is not None else w.target
        if own is None:
            own = user.stored_target(args.out, w, args.recompute, quick=args.quick)
        out.append(dataclasses.replace(w, target=own))
    return out
def _cmd_bench(args: argparse.Namespace) -> int:
    from lab.bench import suite
    from lab.errors import LabError

    cells, settings, plan, workloads, pending, own = _inputs(args)
    check_writable(args.out, "--out")
    if pending:
        found = _compute_targets(pending, args)
        try:
            cells = plan([dataclasses.replace(w, target=found.get(w.name, w.target)) for w in workloads])
        except ValueError as err:
            raise LabError(str(err)) from None
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
        _print_table(result, len(cells) - sum(c.summary is None for c in cells), own)
    if not args.no_figures:
        _draw(cells, done, args.out)
    return 0


def _compute_targets(pending: list, args: argparse.Namespace) -> dict[str, float]:
    """The targets of the user's ``pending`` workloads by the reference procedure, each saved under
    ``--out`` when done and printed on stderr: name -> target."""
    import jax

    from lab.bench import user

    procedure = user.procedure(args.quick)
    runs = len(procedure["references"]) * (procedure["settings"].budget + procedure["settings"].seeds)
    bar = None
    if not args.quiet and not args.json:
        from tqdm.std import tqdm

        bar = tqdm(total=runs * sum(w.steps for w in pending), unit="step", desc="lab bench: targets",
                   file=sys.stderr)
    found = {}
    try:
        for w in pending:
            start = time.perf_counter()
            entry = user.compute_target(w, args.quick, store_dir=os.path.join(args.out, "sweeps"),
                                        progress=bar.update if bar else None)
            found[w.name] = entry["target"]
            if jax.process_index() != 0:  # in a multi-process job, one process writes and says so
                continue
            path = user.save_targets(args.out, {w.name: entry})
            line = (f"target of {w.name}: {entry['metric']} {entry['target']:g} (best of "
                    f"{', '.join(entry['optimizers'])} tuned with {entry['trials']} trials, median of "
                    f"{entry['seeds']} seeds within {entry['within_steps']} of {w.steps} steps, slack "
                    f"{entry['slack']:g}; {time.perf_counter() - start:.0f} s), saved in {path}")
            (bar.write if bar else print)(line, file=sys.stderr)
    finally:
        if bar is not None:
            bar.close()
    return found


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


def _print_table(result: dict, reused: int, own: list[str]) -> None:
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
    if own:
        print(f"your workloads ({', '.join(own)}) have no committed baselines: every optimizer runs on them, "
              f"its summaries saved under --out and reused")


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
    bench.add_argument("--workloads", metavar="NAMES", default=None,
                       help="comma-separated (default: all, or none with --workload)")
    bench.add_argument("--workload", metavar="npz:PATH|MODULE:FACTORY", action="append", default=None,
                       help="your own problem: an npz data set (the lab's MLP on it) or a factory returning "
                            "a Workload or a Problem; repeatable")
    bench.add_argument("--steps", type=int, default=None,
                       help=f"your workload's step budget (default {DEFAULT_STEPS}; --quick 8)")
    bench.add_argument("--batch-size", type=int, default=None,
                       help=f"your workload's batch size (default {DEFAULT_BATCH_SIZE})")
    bench.add_argument("--target", metavar="X", default=None,
                       help="your workload's validation target (default: computed from reference optimizers, "
                            "saved under --out and reused)")
    bench.add_argument("--metric", choices=("accuracy", "loss"), default=None,
                       help="your workload's metric (default: accuracy for class labels, else loss)")
    bench.add_argument("--budget", type=int, default=None,
                       help=f"tuning trials per optimizer and workload (default 16; --quick {QUICK_BUDGET})")
    bench.add_argument("--seeds", type=int, default=None,
                       help=f"seeds the chosen trial is rerun on (default 5; --quick {QUICK_SEEDS})")
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
