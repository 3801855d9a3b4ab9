"""Optimizers on the digits MLP, each tuned on the same learning-rate grid, the best rerun over seeds.

    lab run optimizers [--quick]

Each optimizer is tuned over the same log grid of learning rates with ``tune_seeds`` seeds, trained
on 80% of the training set; the learning rate with the lowest final loss on the other 20% (the
validation split) is rerun with ``seeds`` seeds on the whole training set, and the test set is
looked at only then. Steps to target: the first evaluated step at which test accuracy reaches
``target``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import plotting
from lab.analysis import steps_to_target
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record
from lab.optim import catalogue
from lab.sweep import SweepResult

DESCRIPTION = (f"{', '.join(map(catalogue.label, catalogue.featured()))} on the digits MLP, each tuned on "
               "the same learning-rate grid, best rerun over seeds; curves and steps-to-target")
FIGURES = ("01_optimizers.png",)


@dataclass(frozen=True)
class Config:
    """Every featured optimizer on the digits MLP with the same tuning budget."""

    optimizers: tuple[str, ...] = field(default_factory=catalogue.featured)
    # Half decades from 1e-4 to 10: wide enough that every optimizer's best lies inside the grid.
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
    tune_seeds: int = 3
    seeds: int = 10
    steps: int = 1000
    batch_size: int = 64
    eval_every: int = 50
    target: float = 0.95


def quick() -> Config:
    return Config(optimizers=("sgd", "adam"), learning_rates=(1e-3, 1e-2, 1e-1), tune_seeds=2, seeds=2,
                  steps=200)


def tune(cfg: Config, ctx: Context, optimizer: str) -> SweepResult:
    """The learning-rate sweep on the validation problem: its ``test_*`` metrics are validation ones."""
    return sweep(ctx, digits(validation=True), optimizer, {"learning_rate": cfg.learning_rates},
                 name=f"tune-{optimizer}", seeds=cfg.tune_seeds, steps=cfg.steps, batch_size=cfg.batch_size,
                 eval_every=cfg.eval_every, log_every=10)


def run(cfg: Config, ctx: Context) -> Record:
    """Tune each optimizer on one shared learning-rate grid, rerun its best over ``seeds`` seeds."""
    record = Record(meta={"target": cfg.target, "best_learning_rate": {}})
    rows = []
    for opt in cfg.optimizers:
        tuning = tune(cfg, ctx, opt)
        best = tuning.best("test_loss")["learning_rate"]  # the validation loss (see tune)
        result = sweep(ctx, digits(), opt, {"learning_rate": (best,)}, name=f"best-{opt}", seeds=cfg.seeds,
                       steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every, log_every=10)
        record.sweeps[f"{opt}.tune"], record.sweeps[f"{opt}.final"] = tuning, result
        record.meta["best_learning_rate"][opt] = best
        hits = steps_to_target(result.eval_steps, result.test_accuracy, cfg.target)
        reached = hits[np.isfinite(hits)]
        rows.append([opt, f"{best:.0e}", mean_std(final(result, "train_loss_eval"), ".4f"),
                     mean_std(final(result, "test_accuracy")),
                     f"{np.median(reached):.0f} ({reached.size}/{hits.size})" if reached.size else "missed"])
    record.meta["summary"] = {"columns": ["optimizer", "best lr", "final train loss", "final test acc",
                                          f"steps to {cfg.target:.0%} (median, hits)"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    meta = record.meta
    opts = meta["config"]["optimizers"]
    finals = {o: record.sweeps[f"{o}.final"] for o in opts}
    target = meta["target"]
    title = (f"Optimizers on the digits MLP (64-128-10 ReLU, batch 64), each at the learning rate that won "
             f"the same grid on a validation split; mean and min-max over {finals[opts[0]].config.seeds} "
             "seeds")
    fig, axes = plotting.figure(3, width=5.2, height=4.4, title=title)
    ax_loss, ax_acc, ax_tab = axes[0]
    for o in opts:
        color = plotting.optimizer_color(o)
        label = f"{plotting.optimizer_label(o)} (lr {meta['best_learning_rate'][o]:.0e})"
        plotting.sweep_curve(ax_loss, finals[o], "train_loss_eval", color=color, label=label, positive=True)
        plotting.sweep_curve(ax_acc, finals[o], "test_accuracy", color=color, label=label)
    plotting.style(ax_loss, "Training loss (whole training set)", "step (updates)", "cross-entropy (nats)",
                   logy=True)
    ax_acc.axhline(target, color="0.4", linestyle=":", linewidth=1.2, label=f"target {target:.0%}")
    last = np.concatenate([final(finals[o], "test_accuracy") for o in opts])
    lo = float(np.min(last[np.isfinite(last)], initial=1.0))
    ax_acc.set_ylim(max(0.0, min(target, lo) - 0.04), 1.0)
    plotting.style(ax_acc, "Test accuracy", "step (updates)", "accuracy (fraction correct)",
                   legend_loc="lower right")
    rows = []
    for o in opts:
        hits = steps_to_target(finals[o].eval_steps, finals[o].test_accuracy, target)
        reached = hits[np.isfinite(hits)]
        if reached.size:
            text = f"{np.median(reached):.0f}"
            if reached.size < hits.size:
                text += f" ({hits.size - reached.size}/{hits.size} missed)"
        else:
            text = "missed"
        acc = final(finals[o], "test_accuracy")
        acc = acc[np.isfinite(acc)]
        rows.append([plotting.optimizer_label(o), f"{meta['best_learning_rate'][o]:.0e}", text,
                     f"{acc.mean():.3f} ± {acc.std():.3f}" if acc.size else "diverged"])
    ax_tab.axis("off")
    table = ax_tab.table(cellText=rows, colLabels=["optimizer", "best lr", f"steps to {target:.0%}\n(median)",
                                                    "final test acc\n(mean ± std)"],
                         loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1.0, 1.9)
    for i, o in enumerate(opts, start=1):
        table[i, 0].get_text().set_color(plotting.optimizer_color(o))
        table[i, 0].get_text().set_fontweight("bold")
    ax_tab.set_title(f"Steps to {target:.0%} test accuracy (first evaluation at or above it)", fontsize=10)
    return {"01_optimizers.png": fig}
