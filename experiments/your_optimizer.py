"""Your own optimizer in a sweep: Lion, written below in a dozen lines, against Adam and SGD on the
MNIST-1D CNN (signals of length 40, 10 classes; convolutions, global pooling and a dense head).

    python experiments/your_optimizer.py            # 3000 steps, 3 seeds (a few minutes on a laptop)
    python experiments/your_optimizer.py --quick    # 100 steps, 1 seed

Prints each optimizer's final test accuracy and writes results/your_optimizer.png. Nothing is
registered: the sweep takes the function itself, and its source is part of the results' identity, so
editing `lion` below recomputes its runs while the others are reused from results/sweeps/.
"""

import argparse

import jax
import jax.numpy as jnp
import optax

from lab import plotting
from lab.sweep import Problem, SweepConfig, run_sweep


def lion(learning_rate, b1=0.9, b2=0.99):
    """Lion (Chen et al., 2023): u = sign(b1 m + (1 - b1) g); m <- b2 m + (1 - b2) g; step -lr u."""
    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, m, params=None):
        step = jax.tree.map(lambda m, g: -learning_rate * jnp.sign(b1 * m + (1 - b1) * g), m, grads)
        return step, jax.tree.map(lambda m, g: b2 * m + (1 - b2) * g, m, grads)

    return optax.GradientTransformation(init, update)


# Each optimizer at a learning rate that suits it: Lion's sign update needs a smaller one than Adam's.
OPTIMIZERS = {"Lion (this script)": (lion, 3e-4), "Adam": ("adam", 3e-3), "SGD": ("sgd", 0.1)}


def main():
    parser = argparse.ArgumentParser(description="A Lion written here against Adam and SGD on MNIST-1D.")
    parser.add_argument("--quick", action="store_true", help="100 steps and 1 seed instead of 3000 and 3")
    args = parser.parse_args()
    steps, seeds = (100, 1) if args.quick else (3000, 3)
    problem = Problem("mnist1d", model="cnn1d")  # the published data set: 4000 train / 1000 test signals
    fig, axes = plotting.figure(2, title=f"Your optimizer on the MNIST-1D CNN ({seeds} seeds, batch 128)")
    for i, (label, (optimizer, lr)) in enumerate(OPTIMIZERS.items()):
        config = SweepConfig.make(problem, optimizer, {"learning_rate": lr}, seeds=seeds, steps=steps,
                                  batch_size=128, eval_every=max(steps // 30, 1), log_every=10)
        result = run_sweep(config, store_dir="results/sweeps", quiet=True)
        accuracy = result.grid_view("test_accuracy")[..., -1].ravel()
        print(f"{label:>20} lr={lr:g}: final test accuracy {accuracy.mean():.3f} "
              f"(seeds from {accuracy.min():.3f} to {accuracy.max():.3f})")
        style = dict(color=plotting.series_color(i), label=label)
        plotting.sweep_curve(axes[0, 0], result, "train_loss_eval", positive=True, **style)
        plotting.sweep_curve(axes[0, 1], result, "test_accuracy", **style)
    plotting.style(axes[0, 0], "Training loss", "step (updates)", "cross-entropy (nats)", logy=True)
    plotting.style(axes[0, 1], "Test accuracy", "step (updates)", "accuracy (fraction correct)",
                   legend_loc="lower right")
    print("figure:", *plotting.save({"your_optimizer.png": fig}, "results"))


if __name__ == "__main__":
    main()
