"""Experiment 2, lr_sensitivity: final training loss against learning rate for every optimizer, with
divergence marked (the tuning sweeps of 'optimizers').

Every optimizer on the digits MLP with the same tuning budget (experiments 1 and 2).

    python experiments/lr_sensitivity.py          # the full config: results in results/, figures in figures/
    python experiments/lr_sensitivity.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["lr_sensitivity"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "lr_sensitivity", *sys.argv[1:]]))
