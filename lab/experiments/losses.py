"""Cross-entropy against mean squared error on one-hot targets, same network and optimizer.

    lab run losses [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass

from lab import plotting
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = "cross-entropy vs mean squared error for classification"
FIGURES = ("10_losses.png",)
NAMES = {"cross_entropy": "cross-entropy", "mse_classification": "MSE to one-hot"}
COLORS = {"cross_entropy": "#332288", "mse_classification": "#CC6677"}


@dataclass(frozen=True)
class Config:
    """Cross-entropy against mean squared error on one-hot targets, same network and optimizer."""

    losses: tuple[str, ...] = ("cross_entropy", "mse_classification")
    optimizer: str = "adam"
    learning_rates: tuple[float, ...] = (1e-3, 1e-2)
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


def quick() -> Config:
    return Config(learning_rates=(1e-3,), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """The same network and optimizer trained on cross-entropy and on MSE to one-hot targets."""
    record = Record(meta={"optimizer": cfg.optimizer})
    rows = []
    for loss in cfg.losses:
        result = record.sweeps[loss] = sweep(ctx, digits(loss=loss), cfg.optimizer,
                                             {"learning_rate": cfg.learning_rates}, name=f"loss-{loss}",
                                             seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every,
                                             log_every=10)
        for lr in cfg.learning_rates:
            m = result.select(learning_rate=lr)
            rows.append([loss, f"{lr:g}", mean_std(final(result, "train_loss_eval", m), ".4f"),
                         mean_std(final(result, "test_accuracy", m))])
    record.meta["summary"] = {"columns": ["loss", "lr", "final train loss (its own)", "final test acc"],
                              "rows": rows}
    return record


def draw(record: Record) -> dict:
    losses = record.meta["config"]["losses"]
    title = (f"Loss for classification: cross-entropy vs mean squared error\n(digits MLP, "
             f"{plotting.optimizer_label(record.meta['optimizer'])}; mean and min-max over "
             f"{record.sweeps[losses[0]].config.seeds} seeds)")
    fig, axes = plotting.figure(2, width=5.6, height=4.2, title=title)
    styles = ("-", "--", ":", "-.")
    for loss in losses:
        result = record.sweeps[loss]
        for j, lr in enumerate(sorted(dict(result.config.grid)["learning_rate"])):
            kw = dict(runs=result.select(learning_rate=lr), color=COLORS[loss],
                      label=f"{NAMES[loss]}, lr {lr:.0e}", linestyle=styles[j % 4], positive=True)
            plotting.sweep_curve(axes[0, 0], result, "test_error", **kw)
            plotting.sweep_curve(axes[0, 1], result, "train_loss_eval", **kw)
    plotting.style(axes[0, 0], "Test error", "step (updates)", "test error (1 − accuracy, log scale)",
                   logy=True)
    plotting.style(axes[0, 1],
                   "Each loss on the training set\n(different units: compare shapes, not heights)",
                   "step (updates)", "training loss (nats for CE, squared units for MSE)", logy=True)
    return {"10_losses.png": fig}
