"""Adam with an L2 term in the loss against AdamW's decoupled weight decay, at matched coefficients.

    lab run weight_decay [--quick]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, digits, final, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = "Adam with an L2 penalty vs AdamW's decoupled weight decay at matched coefficients"
FIGURES = ("05_weight_decay.png",)


@dataclass(frozen=True)
class Config:
    """Adam with an L2 term in the loss against AdamW's decoupled decay, at matched coefficients."""

    strengths: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    learning_rate: float = 1e-3
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


def quick() -> Config:
    return Config(strengths=(1e-3, 1e-1), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """Adam + L2 penalty vs AdamW at the same coefficients (0 included once, as plain Adam)."""
    record = Record()
    fixed = {"learning_rate": cfg.learning_rate}
    kw = dict(seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every, log_every=10)
    adam = record.sweeps["adam_l2"] = sweep(ctx, digits(), "adam", {"l2": (0.0, *cfg.strengths)},
                                            name="wd-adam-l2", fixed=fixed, **kw)
    adamw = record.sweeps["adamw"] = sweep(ctx, digits(), "adamw", {"weight_decay": cfg.strengths},
                                           name="wd-adamw", fixed=fixed, **kw)
    rows = []
    for s in cfg.strengths:
        a, w = adam.select(l2=s), adamw.select(weight_decay=s)
        rows.append([f"{s:g}", mean_std(final(adam, "test_accuracy", a)),
                     mean_std(final(adamw, "test_accuracy", w)), mean_std(adam.weight_norm[a], ".1f"),
                     mean_std(adamw.weight_norm[w], ".1f")])
    record.meta["summary"] = {"columns": ["coefficient", "Adam+L2 test acc", "AdamW test acc",
                                          "Adam+L2 |w|", "AdamW |w|"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    adamw = record.sweeps["adamw"].config
    fig, axes = plotting.figure(
        3, width=5.0, height=4.2,
        title=f"Adam with an L2 penalty in the loss vs AdamW's decoupled weight decay (digits MLP, lr fixed, "
              f"{adamw.steps} steps); mean and min-max over {adamw.seeds} seeds")
    series = (("adam_l2", "l2", "Adam + L2 penalty (λ/2 Σw² in the loss)", plotting.optimizer_color("adam")),
              ("adamw", "weight_decay", "AdamW (weight_decay = λ)", plotting.optimizer_color("adamw")))
    panels = (("test_accuracy", "Final test accuracy", "accuracy (fraction correct)", False),
              ("train_loss_eval", "Final training loss", "cross-entropy (nats)", True),
              ("weight_norm", "Final weight norm", "‖w‖₂ over all weights", True))
    for ax, (metric, title, ylabel, logy) in zip(axes[0], panels, strict=True):
        for key, hp, label, color in series:
            result = record.sweeps[key]
            lam = np.asarray(dict(result.config.grid)[hp])
            values = plotting.final_values(result, metric)  # (coefficients, seeds), diverged runs NaN
            pos = lam > 0
            plotting.grid_band(ax, lam[pos], values[pos], color=color, label=label)
            if (~pos).any():
                ax.axhline(plotting.seed_band(values[~pos].T)[0][0], color="0.4", linestyle=":", linewidth=1,
                           label="λ = 0 (plain Adam)")
        plotting.style(ax, title, "coefficient λ", ylabel, logx=True, logy=logy)
    return {"05_weight_decay.png": fig}
