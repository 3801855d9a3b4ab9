"""Optimizers on the digits MLP, each tuned on the same learning-rate grid, the best rerun over seeds.

    lab run optimizers [--quick] [--all-optimizers]

Each optimizer is tuned over the same log grid of learning rates with ``tune_seeds`` seeds, trained
on 80% of the training set; the learning rate with the lowest final loss on the other 20% (the
validation split) is rerun with ``seeds`` seeds on the whole training set, and the test set is
looked at only then. Steps to target: the first evaluated step at which test accuracy reaches
``target``. The default selection is the catalogue's featured optimizers and a few of the zoo
(:data:`ZOO`); ``--all-optimizers`` runs every optimizer of the catalogue. Each is tuned over its
learning-rate argument (Polyak SGD's ``max_learning_rate``); an optimizer that a sweep cannot run is
left out with the reason in the summary and the figure.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lab import plotting
from lab.analysis import steps_to_target
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record
from lab.optim import catalogue
from lab.sweep import SweepConfig, SweepResult, run_sweep

ZOO = ("nadam", "lion", "adafactor")  # beside the featured six in the default selection


def selection() -> tuple[str, ...]:
    """The comparisons' default optimizers: the catalogue's featured ones, then :data:`ZOO`."""
    return tuple(dict.fromkeys(catalogue.featured() + tuple(n for n in ZOO if n in catalogue.names())))


DESCRIPTION = (f"{', '.join(map(catalogue.label, selection()))} (or every optimizer: --all-optimizers) on "
               "the digits MLP, each tuned on the same learning-rate grid, best rerun over seeds")
FIGURES = ("01_optimizers.png",)


@dataclass(frozen=True)
class Config:
    """The selected optimizers on the digits MLP with the same tuning budget."""

    optimizers: tuple[str, ...] = field(default_factory=selection)
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


def rate_name(optimizer: str) -> str:
    """The argument the learning-rate grid sets: ``learning_rate``, else the search space's first
    dimension named like one (Polyak SGD's ``max_learning_rate``); ``""`` if it has none."""
    names = [h.name for h in catalogue.get(optimizer).search_space]
    if "learning_rate" in names:
        return "learning_rate"
    return next((n for n in names if "learning_rate" in n), "")


def tuning_config(cfg: Config, optimizer: str) -> SweepConfig:
    """The learning-rate sweep on the validation problem.

    Raises:
        ValueError: where a sweep cannot run the optimizer (the message says why).
    """
    rate = rate_name(optimizer)
    if not rate:
        raise ValueError(f"{optimizer} has no learning-rate argument in its search space")
    return SweepConfig.make(digits(validation=True), optimizer, {rate: cfg.learning_rates}, {},
                            name=f"tune-{optimizer}", seeds=cfg.tune_seeds, steps=cfg.steps,
                            batch_size=cfg.batch_size, eval_every=cfg.eval_every, log_every=10)


def tune(cfg: Config, ctx: Context, optimizer: str) -> SweepResult:
    """The learning-rate sweep on the validation problem: its ``test_*`` metrics are validation ones."""
    return run_sweep(tuning_config(cfg, optimizer), store_dir=ctx.store_dir, force=ctx.force, quiet=ctx.quiet)


def sweepable(cfg: Config) -> tuple[list[str], dict[str, str]]:
    """``cfg.optimizers`` split into those a sweep runs and the others, each with the reason."""
    ok, excluded = [], {}
    for opt in cfg.optimizers:
        try:
            tuning_config(cfg, opt)
        except ValueError as err:
            excluded[opt] = str(err).splitlines()[0]
        else:
            ok.append(opt)
    return ok, excluded


def run(cfg: Config, ctx: Context) -> Record:
    """Tune each optimizer on one shared learning-rate grid, rerun its best over ``seeds`` seeds."""
    opts, excluded = sweepable(cfg)
    record = Record(meta={"target": cfg.target, "best_learning_rate": {}, "optimizers": opts,
                          "excluded": excluded})
    rows = []
    for opt in opts:
        tuning = tune(cfg, ctx, opt)
        best = tuning.best("test_loss")[rate_name(opt)]  # the validation loss (see tune)
        result = sweep(ctx, digits(), opt, {rate_name(opt): (best,)}, name=f"best-{opt}", seeds=cfg.seeds,
                       steps=cfg.steps, batch_size=cfg.batch_size, eval_every=cfg.eval_every, log_every=10)
        record.sweeps[f"{opt}.tune"], record.sweeps[f"{opt}.final"] = tuning, result
        record.meta["best_learning_rate"][opt] = best
        hits = steps_to_target(result.eval_steps, result.test_accuracy, cfg.target)
        reached = hits[np.isfinite(hits)]
        rows.append([opt, f"{best:.0e}", mean_std(final(result, "train_loss_eval"), ".4f"),
                     mean_std(final(result, "test_accuracy")),
                     f"{np.median(reached):.0f} ({reached.size}/{hits.size})" if reached.size else "missed"])
    rows += [[opt, "excluded", why, "", ""] for opt, why in excluded.items()]
    record.meta["summary"] = {"columns": ["optimizer", "best lr", "final train loss", "final test acc",
                                          f"steps to {cfg.target:.0%} (median, hits)"], "rows": rows}
    return record


def _rate_label(optimizer: str) -> str:
    """How a figure names the tuned rate: ``lr``, or ``max lr`` (Polyak SGD)."""
    rate = rate_name(optimizer) if optimizer in catalogue.names() else "learning_rate"
    return "lr" if rate in ("", "learning_rate") else rate.replace("learning_rate", "lr").replace("_", " ")


def draw(record: Record) -> dict:
    meta = record.meta
    opts = meta.get("optimizers", meta["config"]["optimizers"])
    excluded = meta.get("excluded", {})
    many = len(opts) > 10  # smaller type and two legend columns, so that ~35 optimizers stay readable
    finals = {o: record.sweeps[f"{o}.final"] for o in opts}
    target = meta["target"]
    title = (f"Optimizers on the digits MLP (64-128-10 ReLU, batch 64), each at the learning rate that won "
             f"the same grid on a validation split; mean and min-max over {finals[opts[0]].config.seeds} "
             "seeds")
    fig, axes = plotting.figure(3, width=5.2, height=max(4.4, 0.26 * len(opts) + 1.5), title=title)
    ax_loss, ax_acc, ax_tab = axes[0]
    for o in opts:
        color = plotting.optimizer_color(o)
        label = f"{plotting.optimizer_label(o)} ({_rate_label(o)} {meta['best_learning_rate'][o]:.0e})"
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
    if many:
        for ax in (ax_loss, ax_acc):
            ax.legend(fontsize=6, ncol=2, loc="upper right" if ax is ax_loss else "lower right",
                      framealpha=0.85)
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
    table.set_fontsize(7 if many else 8.5)
    table.scale(1.0, 1.25 if many else 1.9)
    for i, o in enumerate(opts, start=1):
        table[i, 0].get_text().set_color(plotting.optimizer_color(o))
        table[i, 0].get_text().set_fontweight("bold")
    ax_tab.set_title(f"Steps to {target:.0%} test accuracy (first evaluation at or above it)", fontsize=10)
    if excluded:
        ax_tab.text(0.0, 0.0, "\n".join(f"left out: {plotting.optimizer_label(o)}: {why}"
                                         for o, why in excluded.items()),
                    transform=ax_tab.transAxes, fontsize=6.5, color="0.3", va="top", wrap=True)
    return {"01_optimizers.png": fig}
