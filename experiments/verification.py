"""Experiment 11, verification: per-step relative error of each hand-written optimizer against
optax, with the dtype's tolerance.

Per-step relative error of every hand-written optimizer against its optax namesake.

    python experiments/verification.py          # the full config: results in results/, figures in figures/
    python experiments/verification.py --quick  # the quick variant (what CI runs)

Any option of ``lab run`` works here too (``--seeds N``, ``--steps N``, ``--out DIR``, ``--force``).
The configs: ``lab.experiments.EXPERIMENTS["verification"].config`` and ``.quick``.
"""

import sys

from lab.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", "verification", *sys.argv[1:]]))
