"""Experiment 10, losses: cross-entropy vs mean squared error for classification.

Cross-entropy against mean squared error on one-hot targets, same network and optimizer.

    python experiments/losses.py          # the full config: results in results/, figures in figures/
    python experiments/losses.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["losses"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "losses", *sys.argv[1:]]))
