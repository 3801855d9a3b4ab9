"""Experiment 8, batch_size: full-batch vs stochastic vs mini-batch SGD, against steps and examples
seen.

Plain SGD at one learning rate with stochastic (1), mini-batch and full-batch gradients.

    python experiments/batch_size.py          # the full config: results in results/, figures in figures/
    python experiments/batch_size.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["batch_size"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "batch_size", *sys.argv[1:]]))
