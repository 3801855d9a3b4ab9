"""Experiment 5, weight_decay: Adam with an L2 penalty vs AdamW's decoupled weight decay at matched
coefficients.

Adam with an L2 term in the loss against AdamW's decoupled decay, at matched coefficients.

    python experiments/weight_decay.py          # the full config: results in results/, figures in figures/
    python experiments/weight_decay.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["weight_decay"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "weight_decay", *sys.argv[1:]]))
