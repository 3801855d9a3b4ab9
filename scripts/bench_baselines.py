"""Compute the benchmark's validation targets and its committed baselines (docs/bench.md).

    python scripts/bench_baselines.py --targets          # targets of every workload (large budget)
    python scripts/bench_baselines.py                    # baselines: lab.bench.baselines.BASELINES
    python scripts/bench_baselines.py --quick --targets  # the quick variants (minutes; for tests)

Targets go to lab/bench/targets.json (the quick variants': lab/bench/baselines/targets_quick.json),
summaries to lab/bench/baselines/<workload>/. Every finished sweep and summary is saved as it is done,
so a stopped run resumes where it stopped (sweeps under --work, default results/bench-baselines).
Prints the total time at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lab.bench import baselines, suite, targets  # noqa: E402
from lab.bench.protocol import Settings  # noqa: E402
from lab.bench.workloads import WORKLOADS  # noqa: E402


def _committed() -> dict:
    """The entries of the committed targets file, as they are."""
    if not os.path.isfile(targets.TARGETS_JSON):
        return {}
    with open(targets.TARGETS_JSON, encoding="utf-8") as f:
        return json.load(f)["targets"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", action="store_true", help="compute the targets (else the baselines)")
    parser.add_argument("--quick", action="store_true", help="the workloads' quick variants, small budgets")
    parser.add_argument("--optimizers", default=",".join(baselines.BASELINES), help="comma-separated")
    parser.add_argument("--workloads", default=",".join(WORKLOADS), help="comma-separated")
    parser.add_argument("--references", default=None, help="the targets' reference optimizers "
                        "(default momentum,adam,nadam,lion; --quick momentum,adam)")
    parser.add_argument("--budget", type=int, default=None, help="trials (default 16; --quick 3)")
    parser.add_argument("--seeds", type=int, default=None, help="seeds (default 5; --quick 2)")
    parser.add_argument("--recompute", action="store_true",
                        help="recompute stale summaries (with --targets: set every target again)")
    parser.add_argument("--work", default=os.path.join("results", "bench-baselines"),
                        help="where sweeps and summaries in progress are kept")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    workloads = [WORKLOADS[n].quick() if args.quick else WORKLOADS[n] for n in args.workloads.split(",")]
    if args.targets:
        how = baselines.procedure(args.quick)
        if args.references:
            how["references"] = tuple(args.references.split(","))
        for workload in workloads:  # one at a time: each is saved when done
            try:
                have = baselines.load_targets([workload])
            except ValueError as err:  # set for an earlier version of the workload: set it again
                print(f"{workload.name}: {err}", flush=True)
                have = {}
            if workload.name in have and not args.recompute:
                print(f"{workload.name}: target {have[workload.name]:g} (stored)", flush=True)
                continue
            found = baselines.compute_targets([workload], **how, store_dir=os.path.join(args.work, "sweeps"))
            if args.quick:
                baselines.save_quick_targets(found)
            else:
                targets.save_targets(dict(_committed()) | found)
            print(f"{workload.name}: target {found[workload.name]['target']:g} "
                  f"({time.perf_counter() - start:.0f} s so far)", flush=True)
    else:
        settings = Settings(budget=args.budget or (3 if args.quick else Settings.budget),
                            seeds=args.seeds or (2 if args.quick else Settings.seeds))
        cells = suite.plan(args.optimizers.split(","), workloads, settings, baselines.load_targets(workloads),
                           out=args.work, recompute=args.recompute)
        for cell in cells:
            if cell.summary is not None:
                continue
            suite.run([cell], settings, out=args.work)
            rel = os.path.relpath(cell.path, os.path.join(args.work, "summaries"))
            os.makedirs(os.path.dirname(os.path.join(baselines.BASELINES_DIR, rel)), exist_ok=True)
            shutil.copyfile(cell.path, os.path.join(baselines.BASELINES_DIR, rel))
            print(f"{cell.optimizer} on {cell.workload.name}: done "
                  f"({time.perf_counter() - start:.0f} s so far)", flush=True)
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
