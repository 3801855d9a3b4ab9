"""A first comparison: SGD against Adam on the digits MLP, each at its own learning rate, over seeds.

    python experiments/first_comparison.py            # 1000 steps, 5 seeds (a minute or two on a laptop)
    python experiments/first_comparison.py --quick    # 200 steps, 2 seeds

Prints each optimizer's final test accuracy and writes the figure results/first_comparison.png
(training loss and test accuracy against steps; a line is the mean over seeds, the band spans the
lowest to the highest seed). Finished sweeps are saved under results/sweeps/ and reused, so a second
run only redraws. To compare something else, copy this file and change OPTIMIZERS or the Problem.
"""

import argparse

from lab import plotting
from lab.sweep import Problem, SweepConfig, run_sweep

# Each optimizer with its hyperparameters, at a learning rate that suits it (experiments/lr_sweep.py
# finds one). Any optimizer that `lab verify` lists works, e.g.
# "momentum": {"learning_rate": 0.1, "beta": 0.9}.
OPTIMIZERS = {"sgd": {"learning_rate": 0.1}, "adam": {"learning_rate": 1e-3}}


def main():
    parser = argparse.ArgumentParser(description="SGD against Adam on the digits MLP.")
    parser.add_argument("--quick", action="store_true", help="200 steps and 2 seeds instead of 1000 and 5")
    args = parser.parse_args()
    steps, seeds = (200, 2) if args.quick else (1000, 5)

    problem = Problem("digits", hidden=(128,), activation="relu")  # 8x8 digit images, a 64-128-10 MLP
    fig, axes = plotting.figure(2, title=f"Optimizers on the digits MLP ({seeds} seeds)")
    for name, hyperparameters in OPTIMIZERS.items():
        config = SweepConfig.make(problem, name, hyperparameters, seeds=seeds, steps=steps, eval_every=50,
                                  log_every=10)
        result = run_sweep(config, store_dir="results/sweeps", quiet=True)
        accuracy = result.grid_view("test_accuracy")[..., -1].ravel()  # the last evaluation, one per seed
        print(f"{name:>10} {hyperparameters}: final test accuracy {accuracy.mean():.3f} "
              f"(seeds from {accuracy.min():.3f} to {accuracy.max():.3f})")
        style = dict(color=plotting.optimizer_color(name), label=plotting.optimizer_label(name))
        plotting.sweep_curve(axes[0, 0], result, "train_loss_eval", positive=True, **style)
        plotting.sweep_curve(axes[0, 1], result, "test_accuracy", **style)
    plotting.style(axes[0, 0], "Training loss", "step (updates)", "cross-entropy (nats)", logy=True)
    plotting.style(axes[0, 1], "Test accuracy", "step (updates)", "accuracy (fraction correct)",
                   legend_loc="lower right")
    print("figure:", *plotting.save({"first_comparison.png": fig}, "results"))


if __name__ == "__main__":
    main()
