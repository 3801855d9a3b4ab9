"""Experiment 9, momentum: a sweep of beta; heavy-ball vs its EMA form vs Nesterov.

Heavy-ball momentum over a sweep of beta, against its EMA form and Nesterov's.

    python experiments/momentum.py          # the full config: results in results/, figures in figures/
    python experiments/momentum.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["momentum"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "momentum", *sys.argv[1:]]))
