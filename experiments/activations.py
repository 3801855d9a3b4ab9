"""Experiment 6, activations: activation functions and derivatives, per-layer gradient norms at init
in a 10-layer MLP, training curves.

Activations, their derivatives, gradient norms at init in a deep MLP, and training curves.

    python experiments/activations.py          # the full config: results in results/, figures in figures/
    python experiments/activations.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["activations"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "activations", *sys.argv[1:]]))
