"""L1 against L2 regularization on a small network that overfits: sparsity and test loss by strength.

    python experiments/l1_vs_l2.py            # 5 strengths x 3 seeds x 4000 steps
    python experiments/l1_vs_l2.py --quick    # 4 strengths x 2 seeds x 1000 steps

A 2-64-64-2 ReLU network on 60 noisy two-moons points, trained by full-batch gradient descent with an
L1 penalty (l1 * sum |w|) or an L2 penalty (l2 / 2 * sum w^2) of each strength (0 = none). Prints the
final test loss and the fraction of weights below 1e-3 per penalty and strength, and writes
results/l1_vs_l2.png. Finished sweeps are saved under results/sweeps/ and reused.
"""

import argparse

import numpy as np

from lab import plotting
from lab.sweep import Problem, SweepConfig, run_sweep

STRENGTHS = (0.0, 1e-5, 1e-4, 1e-3, 1e-2)


def main():
    parser = argparse.ArgumentParser(description="L1 against L2 regularization on two moons.")
    parser.add_argument("--quick", action="store_true", help="4 strengths, 2 seeds, 1000 steps")
    args = parser.parse_args()
    strengths, seeds, steps = ((0.0, 1e-4, 1e-3, 1e-2), 2, 1000) if args.quick else (STRENGTHS, 3, 4000)

    problem = Problem("moons", hidden=(64, 64), activation="relu", init="he_normal", n_train=60, noise=0.3)
    fig, axes = plotting.figure(2, title=f"L1 vs L2 on an overfitting MLP ({seeds} seeds, {steps} steps)")
    for penalty, color in (("l1", plotting.series_color(0)), ("l2", plotting.series_color(1))):
        # The penalty's strength is swept like any hyperparameter; the learning rate is held fixed.
        config = SweepConfig.make(problem, "sgd", {penalty: strengths}, {"learning_rate": 0.1}, seeds=seeds,
                                  steps=steps, batch_size=None, eval_every=100)
        result = run_sweep(config, store_dir="results/sweeps", quiet=True)
        for strength in strengths:
            runs = result.select(**{penalty: strength})  # this strength's runs, one per seed
            print(f"{penalty} = {strength:<7g} final test loss {result.test_loss[runs, -1].mean():.3f}, "
                  f"weights below 1e-3: {result.near_zero_fraction[runs].mean():.0%}")
        x = np.asarray(strengths[1:])  # strength 0 has no place on a log axis: drawn as a line
        for ax, metric in ((axes[0, 0], "near_zero_fraction"), (axes[0, 1], "test_loss")):
            values = plotting.final_values(result, metric)  # (strengths, seeds)
            plotting.grid_band(ax, x, values[1:], color=color, label=penalty.upper())
            ax.axhline(np.nanmean(values[0]), color="0.4", linestyle=":", linewidth=1)
    plotting.style(axes[0, 0], "Fraction of weights below 1e-3 (dotted: no penalty)", "strength",
                   "fraction of weights", logx=True)
    plotting.style(axes[0, 1], "Final test loss (dotted: no penalty)", "strength", "cross-entropy (nats)",
                   logx=True)
    print("figure:", *plotting.save({"l1_vs_l2.png": fig}, "results"))


if __name__ == "__main__":
    main()
