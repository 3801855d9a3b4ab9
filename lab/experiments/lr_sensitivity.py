"""Final training loss against learning rate for every optimizer, with divergence marked.

    lab run lr_sensitivity [--quick] [--all-optimizers]

It draws the tuning sweeps of :mod:`lab.experiments.optimizers` (same config; they are reused from
the sweep store when that experiment ran first), so ``--seeds`` sets the tuning seeds.
"""

from __future__ import annotations

import numpy as np
from matplotlib.transforms import blended_transform_factory

from lab import plotting
from lab.experiments.common import Context
from lab.experiments.optimizers import Config, quick, rate_name, sweepable, tune
from lab.experiments.record import Record

DESCRIPTION = ("final training loss against learning rate for every optimizer, with divergence marked "
               "(the tuning sweeps of 'optimizers')")
FIGURES = ("02_lr_sensitivity.png",)
SEEDS_FIELD = "tune_seeds"
__all__ = ["Config", "quick", "run", "draw"]


def run(cfg: Config, ctx: Context) -> Record:
    """The tuning sweeps of the optimizers experiment (reused from the store when it ran first)."""
    opts, excluded = sweepable(cfg)
    record = Record(meta={"optimizers": opts, "excluded": excluded})
    rows = []
    for opt in opts:
        tuning = record.sweeps[opt] = tune(cfg, ctx, opt)
        loss = tuning.grid_view("train_loss_eval")[..., -1]  # (lrs, seeds)
        ok = ~tuning.grid_view("diverged")
        stable = [lr for lr, good in zip(cfg.learning_rates, ok.all(axis=1), strict=True) if good]
        best = tuning.best("test_loss")[rate_name(opt)]  # chosen on validation loss, as in 'optimizers'
        best_loss = np.where(np.isfinite(loss).all(axis=1), loss.mean(axis=1), np.inf).min()
        rows.append([opt, f"{best:.0e}", f"{best_loss:.4f}",
                     f"{min(stable):.0e} .. {max(stable):.0e}" if stable else "none"])
    rows += [[opt, "excluded", why, ""] for opt, why in excluded.items()]
    record.meta["summary"] = {"columns": ["optimizer", "best lr", "best final train loss",
                                          "lrs without divergence"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    opts = record.meta.get("optimizers", record.meta["config"]["optimizers"])
    excluded = record.meta.get("excluded", {})
    first = record.sweeps[opts[0]].config
    title = (f"Learning-rate sensitivity on the digits MLP\nfinal training loss after {first.steps} steps, "
             f"mean and min-max over {first.seeds} seeds")
    many = len(opts) > 10
    fig, axes = plotting.figure(1, width=11.0 if many else 7.5, height=7.0 if many else 5.0, title=title)
    ax = axes[0, 0]
    top = blended_transform_factory(ax.transData, ax.transAxes)
    any_div = False
    for o in opts:
        result = record.sweeps[o]
        rate = result.config.grid[0][0]
        lrs = np.asarray(dict(result.config.grid)[rate])
        color = plotting.optimizer_color(o)
        label = plotting.optimizer_label(o) + ("" if rate == "learning_rate" else f" ({rate})")
        plotting.grid_band(ax, lrs, plotting.final_values(result, "train_loss_eval"), color=color,
                           label=label)
        for lr, d in zip(lrs, result.grid_view("diverged"), strict=True):
            if d.any():
                any_div = True
                ax.plot(lr, 0.97, marker="x", color=color, markersize=9, mew=2, transform=top, clip_on=False)
                if not d.all():
                    ax.text(lr, 0.93, f"{int(d.sum())}/{d.size}", transform=top, color=color, fontsize=6.5,
                            ha="center")
    plotting.style(ax, "", "learning rate", "final training loss (cross-entropy, nats)", logx=True, logy=True)
    if many:  # beside the axes, in two columns
        ax.legend(fontsize=6.5, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1.0), framealpha=0.85)
    if excluded:
        lines = [f"left out: {plotting.optimizer_label(o)}: {why}" for o, why in excluded.items()]
        ax.text(0.0, -0.1, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=6.5, color="0.3")
    if any_div:
        ax.text(0.01, 0.99, "x at the top: runs diverged at that learning rate (k/n: k of n seeds)",
                transform=ax.transAxes, va="top", fontsize=7.5, color="0.3")
    return {"02_lr_sensitivity.png": fig}
