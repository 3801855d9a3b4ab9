"""Plain SGD at one learning rate with stochastic (1), mini-batch and full-batch gradients.

    lab run batch_size [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = "full-batch vs stochastic vs mini-batch SGD, against steps and examples seen"
FIGURES = ("08_batch_size.png",)


@dataclass(frozen=True)
class Config:
    """Plain SGD at one learning rate with each batch size; ``0`` stands for the full batch."""

    batch_sizes: tuple[int, ...] = (1, 16, 128, 0)
    learning_rate: float = 0.05
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 25


def quick() -> Config:
    return Config(batch_sizes=(1, 0), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """Plain SGD at one learning rate with each batch size (0 = full batch)."""
    from lab.problems import load_data

    n = int(load_data(digits()).x_train.shape[0])
    record = Record(meta={"n_train": n, "batch_sizes": list(cfg.batch_sizes)})
    rows = []
    for bs in cfg.batch_sizes:
        result = record.sweeps[str(bs)] = sweep(
            ctx, digits(), "sgd", {"learning_rate": (cfg.learning_rate,)}, name=f"batch-{bs or 'full'}",
            seeds=cfg.seeds, steps=cfg.steps, batch_size=bs or None, eval_every=cfg.eval_every, log_every=10)
        rows.append([str(bs or f"full ({n})"), f"{cfg.steps * (bs or n):,}",
                     mean_std(final(result, "train_loss_eval"), ".4f"),
                     mean_std(final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["batch size", "examples seen", "final train loss",
                                          "final test acc"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    meta = record.meta
    n, sizes = meta["n_train"], meta["batch_sizes"]
    title = (f"Batch size: plain SGD at lr {meta['config']['learning_rate']:g} on the digits MLP with "
             f"stochastic, mini-batch and full-batch gradients; mean and min-max over "
             f"{record.sweeps[str(sizes[0])].config.seeds} seeds")
    fig, axes = plotting.figure(3, width=5.0, height=4.2, title=title)
    colors = plotting.ordered_colors(len(sizes))
    for i, bs in enumerate(sizes):
        result = record.sweeps[str(bs)]
        label = f"full batch ({n})" if bs == 0 else ("stochastic (1)" if bs == 1 else f"mini-batch {bs}")
        seen = np.maximum(result.eval_steps * (bs or n), 1)
        plotting.sweep_curve(axes[0, 0], result, "train_loss_eval", color=colors[i], label=label,
                             positive=True)
        plotting.sweep_curve(axes[0, 1], result, "train_loss_eval", x=seen, color=colors[i], label=label,
                             positive=True)
        plotting.sweep_curve(axes[0, 2], result, "test_accuracy", x=seen, color=colors[i], label=label)
    plotting.style(axes[0, 0], "Training loss against steps", "step (updates)",
                   "training loss (cross-entropy, nats)", logy=True)
    plotting.style(axes[0, 1], "Training loss against examples seen", "examples seen (gradient evaluations)",
                   "training loss (cross-entropy, nats)", logx=True, logy=True)
    plotting.style(axes[0, 2], "Test accuracy against examples seen", "examples seen (gradient evaluations)",
                   "accuracy (fraction correct)", logx=True, legend_loc="upper left")
    return {"08_batch_size.png": fig}
