"""Experiment 4, regularization: none vs L1 vs L2 across strengths on an overfitting MLP (two
moons): losses, weight magnitudes, sparsity, decision boundaries.

None vs L1 vs L2 on an MLP that overfits two moons (few, noisy points; a wide network).

    python experiments/regularization.py          # the full config: results in results/, figures in figures/
    python experiments/regularization.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["regularization"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "regularization", *sys.argv[1:]]))
