"""Experiment 1, optimizers: SGD, Momentum, RMSprop, Adam, AdamW, Adagrad on the digits MLP, each
tuned on the same learning-rate grid, best rerun over seeds; curves and steps-to-target.

Every optimizer on the digits MLP with the same tuning budget (experiments 1 and 2).

    python experiments/optimizers.py          # the full config: results in results/, figures in figures/
    python experiments/optimizers.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["optimizers"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "optimizers", *sys.argv[1:]]))
