"""Experiment 12, speed: the sweep engine's time against the number of runs, beside the baselines of
benchmarks/sweep.py (read from its JSON, never rerun here).

The sweep engine's time against the number of runs, from ``benchmarks/sweep.py``'s JSON.

    python experiments/speed.py          # the full config: results in results/, figures in figures/
    python experiments/speed.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["speed"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "speed", *sys.argv[1:]]))
