"""Heavy-ball momentum over a sweep of beta, against its EMA form and Nesterov's.

    lab run momentum [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = "a sweep of beta; heavy-ball vs its EMA form vs Nesterov"
FIGURES = ("09_momentum.png",)
FORMS = {"heavy_ball": {}, "ema": {"ema": True}, "nesterov": {"nesterov": True}}  # momentum()'s flags
FORM_LABELS = {"heavy_ball": "heavy-ball  v ← βv + g", "ema": "EMA  v ← βv + (1−β)g",
               "nesterov": "Nesterov (look-ahead)"}
FORM_STYLES = {"heavy_ball": "-", "ema": "-", "nesterov": "--"}
FORM_MARKERS = {"heavy_ball": "o", "ema": "s", "nesterov": "^"}


@dataclass(frozen=True)
class Config:
    """Heavy-ball momentum over a sweep of beta, against its EMA form and Nesterov's."""

    betas: tuple[float, ...] = (0.0, 0.5, 0.9, 0.95, 0.99)
    forms: tuple[str, ...] = ("heavy_ball", "ema", "nesterov")
    compare_beta: float = 0.9
    learning_rate: float = 0.01
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


def quick() -> Config:
    return Config(betas=(0.0, 0.9), forms=("heavy_ball",), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """Each momentum form over the beta grid, at one learning rate."""
    record = Record(meta={"compare_beta": cfg.compare_beta})
    rows = []
    for form in cfg.forms:
        fixed = {"learning_rate": cfg.learning_rate, **FORMS[form]}
        result = record.sweeps[form] = sweep(ctx, digits(), "momentum", {"beta": cfg.betas},
                                             name=f"momentum-{form}", fixed=fixed, seeds=cfg.seeds,
                                             steps=cfg.steps, eval_every=cfg.eval_every, log_every=10)
        for b in cfg.betas:
            m = result.select(beta=b)
            rows.append([form, f"{b:g}", mean_std(final(result, "train_loss_eval", m), ".4f"),
                         mean_std(final(result, "test_accuracy", m))])
    record.meta["summary"] = {"columns": ["form", "beta", "final train loss", "final test acc"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    meta = record.meta
    cfg = meta["config"]
    forms = cfg["forms"]
    colors = {"heavy_ball": plotting.optimizer_color("momentum"), "ema": "#0072B2", "nesterov": "#882255"}
    fig, axes = plotting.figure(
        3, width=5.0, height=4.2,
        title=f"Momentum on the digits MLP at lr {cfg['learning_rate']:g}: a sweep of β, and forms of it "
              f"compared; mean and min-max over {record.sweeps[forms[0]].config.seeds} seeds")
    heavy = record.sweeps["heavy_ball"]
    betas = dict(heavy.config.grid)["beta"]
    for b, color in zip(betas, plotting.ordered_colors(len(betas)), strict=True):
        plotting.sweep_curve(axes[0, 0], heavy, "train_loss_eval", runs=heavy.select(beta=b), color=color,
                             label=f"β = {b:g}" + (" (plain SGD)" if b == 0 else ""), positive=True)
    plotting.style(axes[0, 0], "Heavy-ball momentum, sweep of β", "step (updates)",
                   "training loss (cross-entropy, nats)", logy=True)
    beta = meta["compare_beta"]
    for f in forms:
        result = record.sweeps[f]
        plotting.sweep_curve(axes[0, 1], result, "train_loss_eval", runs=result.select(beta=beta),
                             color=colors[f], label=FORM_LABELS[f], linestyle=FORM_STYLES[f], positive=True)
    plotting.style(axes[0, 1], f"Forms of momentum at β = {beta:g} (EMA = heavy-ball, lr×(1−β))",
                   "step (updates)", "training loss (cross-entropy, nats)", logy=True)
    for f in forms:
        result = record.sweeps[f]
        plotting.grid_band(axes[0, 2], np.asarray(dict(result.config.grid)["beta"]),
                           plotting.final_values(result, "train_loss_eval"), color=colors[f],
                           label=FORM_LABELS[f], marker=FORM_MARKERS[f], markersize=6,
                           linestyle=FORM_STYLES[f], markerfacecolor="none")
    plotting.style(axes[0, 2], "Final training loss against β", "β (momentum coefficient)",
                   "final training loss (cross-entropy, nats)", logy=True)
    return {"09_momentum.png": fig}
