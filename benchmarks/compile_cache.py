"""How much does the persistent compile cache save? The same lab command, twice, in fresh processes.

Runs ``lab figures --quick`` (or ``--command``) in a new Python process with an empty compile cache
and an empty results directory, then again in another new process with another empty results
directory (so both train every sweep) and the cache the first one filled. Reports each run's wall
time and CPU time (user + system, of the process and its children), the speed-up and the size of
the cache. Figures go to temporary directories; nothing outside them is written.

    python benchmarks/compile_cache.py                                   # lab figures --quick
    python benchmarks/compile_cache.py --json --out benchmarks/results/compile_cache_cpu.json
    python benchmarks/compile_cache.py --command "run momentum --quick"  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time

# The command line's own entry point, with the cache turned on first (as `lab --compile-cache DIR`
# does): the directory comes from LAB_COMPILE_CACHE.
LAUNCH = ("import sys; from lab import compile_cache; compile_cache.configure(); "
          "from lab.cli import main; sys.exit(main(sys.argv[1:]))")


def run_once(command: list[str], cache: str, results: str, out: str) -> dict:
    """One fresh process running ``lab COMMAND --results RESULTS --out OUT --quiet``."""
    env = {**os.environ, "LAB_COMPILE_CACHE": cache}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", LAUNCH, *command, "--results", results, "--out", out,
                            "--quiet"], env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if child.returncode != 0:
        sys.exit(f"compile_cache.py: 'lab {' '.join(command)}' failed ({child.returncode}):\n{child.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2)}


def cache_size(directory: str) -> tuple[int, int]:
    """(entries, bytes) of a compile cache directory."""
    entries = [e for e in os.scandir(directory) if e.name.endswith("-cache")]
    return len(entries), sum(e.stat().st_size for e in entries)


def ratio(a: float, b: float) -> float | None:
    """``a / b`` to 2 decimals, None where ``b`` is 0 (a time below the resolution)."""
    return round(a / b, 2) if b else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--command", default="figures --quick",
                        help="the lab command (default 'figures --quick')")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", help="also save the JSON object to this file")
    args = parser.parse_args(argv)
    command = shlex.split(args.command)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print

    with tempfile.TemporaryDirectory() as tmp:
        cache = os.path.join(tmp, "cache")
        runs = []
        for label in ("first (empty cache)", "second (cache filled by the first)"):
            results, out = (tempfile.mkdtemp(dir=tmp, prefix=p) for p in ("results-", "figures-"))
            runs.append(run_once(command, cache, results, out))
            log(f"lab {args.command}, {label}: {runs[-1]['seconds']:.1f} s wall, "
                f"{runs[-1]['cpu_seconds']:.1f} s CPU")
        entries, size = cache_size(cache)

    import jax

    first, second = runs
    report = {
        "command": f"lab {args.command}",
        "first_seconds": first["seconds"],
        "second_seconds": second["seconds"],
        "first_cpu_seconds": first["cpu_seconds"],
        "second_cpu_seconds": second["cpu_seconds"],
        "speedup": ratio(first["seconds"], second["seconds"]),
        "cpu_speedup": ratio(first["cpu_seconds"], second["cpu_seconds"]),
        "cache_entries": entries,
        "cache_megabytes": round(size / 2**20, 1),
        "device": f"{jax.devices()[0].platform} ({os.cpu_count()} cores, {platform.machine()})",
        "versions": {"jax": jax.__version__, "python": platform.python_version()},
        "benchmark": "python benchmarks/compile_cache.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "notes": "each run a new process with its own empty results directory, so both train every sweep; "
                 "the second finds the programs the first compiled in the persistent compile cache",
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.json:
        print(json.dumps(report))
        return 0
    cpu = f"CPU {first['cpu_seconds']:.1f} s -> {second['cpu_seconds']:.1f} s"
    print(f"\nlab {args.command}: {first['seconds']:.1f} s, then {second['seconds']:.1f} s with the compile "
          f"cache ({report['speedup'] or float('nan'):.1f}x; {cpu}); cache: {entries} programs, "
          f"{report['cache_megabytes']} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
