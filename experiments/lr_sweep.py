"""A learning-rate sweep: one optimizer over a log grid of learning rates, tuned on a validation split.

    python experiments/lr_sweep.py            # 7 learning rates x 3 seeds x 1000 steps
    python experiments/lr_sweep.py --quick    # 3 learning rates x 2 seeds x 200 steps

The sweep trains on 80% of the digits training set and evaluates on the other 20% (a validation
split), so the learning rate is chosen without looking at the test set. Prints the final validation
loss per learning rate and the best one, and writes results/lr_sweep.png: final validation loss
against learning rate (mean and min-max over seeds), and the best learning rate's training curve.
Finished sweeps are saved under results/sweeps/ and reused. Change OPTIMIZER to sweep another one.
"""

import argparse

import numpy as np

from lab import plotting
from lab.sweep import Problem, SweepConfig, run_sweep

OPTIMIZER = "adam"
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def main():
    parser = argparse.ArgumentParser(description=f"A learning-rate sweep of {OPTIMIZER} on the digits MLP.")
    parser.add_argument("--quick", action="store_true", help="3 learning rates, 2 seeds, 200 steps")
    args = parser.parse_args()
    rates, seeds, steps = ((1e-3, 1e-2, 1e-1), 2, 200) if args.quick else (LEARNING_RATES, 3, 1000)

    # validation=True: the sweep's "test" metrics are measured on the held-out validation split.
    problem = Problem("digits", hidden=(128,), activation="relu", validation=True)
    config = SweepConfig.make(problem, OPTIMIZER, {"learning_rate": rates}, seeds=seeds, steps=steps,
                              eval_every=50, log_every=10)
    result = run_sweep(config, store_dir="results/sweeps", quiet=True)

    final = result.grid_view("test_loss")[..., -1]  # (learning rates, seeds), NaN where a run diverged
    for lr, losses in zip(rates, final, strict=True):
        print(f"lr {lr:7.0e}: final validation loss {np.mean(losses):.4f} (seeds: "
              f"{', '.join(f'{v:.4f}' for v in losses)})")
    best = result.best("test_loss")["learning_rate"]  # lowest seed-mean; a diverged run counts as worst
    print(f"best learning rate for {OPTIMIZER}: {best:g}")

    color = plotting.optimizer_color(OPTIMIZER)
    fig, axes = plotting.figure(2, title=f"{plotting.optimizer_label(OPTIMIZER)}: a learning-rate sweep "
                                         f"on the digits MLP ({seeds} seeds)")
    plotting.grid_band(axes[0, 0], np.asarray(rates), final, color=color, label="final validation loss")
    plotting.style(axes[0, 0], "Final validation loss", "learning rate", "cross-entropy (nats)",
                   logx=True, logy=True)
    plotting.sweep_curve(axes[0, 1], result, "train_loss_eval", runs=result.select(learning_rate=best),
                         color=color, label=f"lr {best:g}", positive=True)
    plotting.style(axes[0, 1], "Training loss at the best learning rate", "step (updates)",
                   "cross-entropy (nats)", logy=True)
    print("figure:", *plotting.save({"lr_sweep.png": fig}, "results"))


if __name__ == "__main__":
    main()
