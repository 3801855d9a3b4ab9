"""Experiment 3, trajectories: paths of each optimizer on Rosenbrock, an ill-conditioned quadratic,
a saddle and Beale, each at its tuned learning rate.

Each optimizer's path on each 2D surface, at the learning rate tuned for that surface.

    python experiments/trajectories.py          # the full config: results in results/, figures in figures/
    python experiments/trajectories.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["trajectories"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "trajectories", *sys.argv[1:]]))
