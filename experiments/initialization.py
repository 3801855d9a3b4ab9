"""Experiment 7, initialization: per-layer activation std at init for small/large normal, Xavier and
He with tanh and ReLU; training curves.

Per-layer activation std at init for four initializers with tanh and ReLU; training curves.

    python experiments/initialization.py          # the full config: results in results/, figures in figures/
    python experiments/initialization.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["initialization"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "initialization", *sys.argv[1:]]))
