"""No penalty vs L1 vs L2 on an MLP that overfits two moons (few, noisy points; a wide network).

    lab run regularization [--quick]

Plain full-batch gradient descent: near zero, an L1-penalized weight then oscillates by at most
``learning_rate * l1`` (below the 1e-3 "near-zero" threshold for every strength here), where Adam's
normalized steps would make it oscillate by about a learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, final, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = ("none vs L1 vs L2 across strengths on an overfitting MLP (two moons): losses, weight "
               "magnitudes, sparsity, decision boundaries")
FIGURES = ("04_regularization.png", "04_decision_boundaries.png")
LIMITS = ((-1.5, 2.5), (-1.25, 1.75))  # the decision-boundary plot's x and y range
COLORS = {"none": "0.35", "l1": "#332288", "l2": "#CC6677"}
NAMES = {"l1": "L1 (λ Σ|w|)", "l2": "L2 (λ/2 Σw²)"}


@dataclass(frozen=True)
class Config:
    """None vs L1 vs L2 on an MLP that overfits two moons, trained by full-batch gradient descent."""

    strengths: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 3e-3, 1e-2)
    boundary_strength: float = 1e-2  # the L1 and L2 strength of the decision-boundary panel
    hidden: tuple[int, ...] = (64, 64)
    n_train: int = 60
    noise: float = 0.3
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 4000
    eval_every: int = 100


def quick() -> Config:
    return Config(strengths=(1e-4, 1e-3, 1e-2), seeds=2, steps=1000)


def run(cfg: Config, ctx: Context) -> Record:
    """L1 and L2 strength sweeps (strength 0 = none), weight magnitudes, and decision boundaries."""
    import jax

    from lab.analysis import decision_grid, magnitude_histogram
    from lab.problems import Problem, load_data

    problem = Problem("moons", hidden=cfg.hidden, activation="relu", init="he_normal", n_train=cfg.n_train,
                      noise=cfg.noise)
    data = load_data(problem)
    record = Record(meta={"boundary_strength": cfg.boundary_strength})
    record.arrays["x_train"], record.arrays["y_train"] = np.asarray(data.x_train), np.asarray(data.y_train)
    record.arrays["xlim"], record.arrays["ylim"] = np.asarray(LIMITS[0]), np.asarray(LIMITS[1])
    edges = np.concatenate([[0.0], np.logspace(-8, 1, 46)]).astype(np.float32)
    record.arrays["magnitude_edges"] = edges
    rows, boundary = [], []
    for kind in ("l1", "l2"):
        result = record.sweeps[kind] = sweep(
            ctx, problem, cfg.optimizer, {kind: (0.0, *cfg.strengths)}, name=f"reg-{kind}",
            fixed={"learning_rate": cfg.learning_rate}, seeds=cfg.seeds, steps=cfg.steps, batch_size=None,
            eval_every=cfg.eval_every, keep_params=True)
        record.arrays[f"{kind}.magnitude_hist"] = magnitude_histogram(result.final_params, edges)
        for s in cfg.strengths:
            m = result.select(**{kind: s})
            rows.append([kind, f"{s:g}", mean_std(final(result, "train_loss_eval", m), ".3f"),
                         mean_std(final(result, "test_loss", m), ".3f"),
                         mean_std(result.near_zero_fraction[m], ".3f")])
        for s in (0.0, cfg.boundary_strength) if kind == "l1" else (cfg.boundary_strength,):
            run = int(np.flatnonzero(result.select(**{kind: s}, seed=0))[0])
            boundary.append(jax.tree.map(lambda leaf, run=run: leaf[run], result.final_params))
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *boundary)
    record.arrays["boundary"] = np.asarray(decision_grid(params, activation="relu", xlim=LIMITS[0],
                                                         ylim=LIMITS[1], resolution=150))
    record.meta["summary"] = {"columns": ["penalty", "strength", "final train loss", "final test loss",
                                          "near-zero weights"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    return {"04_regularization.png": _draw_sweeps(record),
            "04_decision_boundaries.png": _draw_boundaries(record)}


def _draw_sweeps(record: Record):
    a, l1 = record.arrays, record.sweeps["l1"]
    title = (f"Regularization on an overfitting MLP (2-64-64-2 ReLU, {a['x_train'].shape[0]} noisy "
             f"two-moons points, full-batch GD, {l1.config.steps} steps); mean and min-max over "
             f"{l1.config.seeds} seeds")
    fig, axes = plotting.figure(3, width=5.2, height=4.2, title=title)
    ax_loss, ax_zero, ax_hist = axes[0]
    for kind in ("l1", "l2"):
        result = record.sweeps[kind]
        lam = np.asarray(dict(result.config.grid)[kind])
        pos = lam > 0
        for metric, ls, what in (("train_loss_eval", "-", "train"), ("test_loss", "--", "test")):
            values = plotting.final_values(result, metric, drop_diverged=False)  # (strengths, seeds)
            plotting.grid_band(ax_loss, lam[pos], values[pos], color=COLORS[kind],
                               label=f"{NAMES[kind]}, {what}", alpha=0.15, linestyle=ls)
            if kind == "l1":
                ax_loss.axhline(plotting.seed_band(values[~pos].T)[0][0], color=COLORS["none"], linestyle=ls,
                                linewidth=1, label=f"none, {what}")
        frac = plotting.final_values(result, "near_zero_fraction", drop_diverged=False)
        plotting.grid_band(ax_zero, lam[pos], frac[pos], color=COLORS[kind], label=NAMES[kind], alpha=0.15)
        if kind == "l1":
            ax_zero.axhline(plotting.seed_band(frac[~pos].T)[0][0], color=COLORS["none"], linestyle=":",
                            linewidth=1, label="none")
    plotting.style(ax_loss, "Final loss against penalty strength", "penalty strength λ",
                   "cross-entropy (nats)", logx=True)
    ax_zero.set_ylim(-0.02, 1.02)
    plotting.style(ax_zero, "Fraction of weights with |w| < 1e-3", "penalty strength λ",
                   "fraction of weights", logx=True)
    edges = a["magnitude_edges"]
    lam_b = record.meta["boundary_strength"]
    centers = np.sqrt(edges[1:-1] * edges[2:])
    for kind, label in (("none", "none"), ("l1", NAMES["l1"]), ("l2", NAMES["l2"])):
        src = "l1" if kind == "none" else kind
        runs = record.sweeps[src].select(**{src: 0.0 if kind == "none" else lam_b})
        counts = a[f"{src}.magnitude_hist"][runs].mean(axis=0)
        near_zero = float(record.sweeps[src].near_zero_fraction[runs].mean())
        strength_text = "" if kind == "none" else f", λ={lam_b:g}"
        ax_hist.step(centers, counts[1:] / counts.sum(), where="mid", color=COLORS[kind],
                     label=f"{label}{strength_text}: {near_zero:.0%} below 1e-3")
    ax_hist.axvline(1e-3, color="0.5", linestyle=":", linewidth=1)
    plotting.style(ax_hist, "Final weight magnitudes", "|w| (log scale)", "fraction of weights per bin",
                   logx=True, legend_loc="upper left")
    return fig


def _draw_boundaries(record: Record):
    a = record.arrays
    lam_b = record.meta["boundary_strength"]
    fig, axes = plotting.figure(3, width=4.6, height=4.0,
                                title=f"Decision boundaries on two moons (seed 0): no penalty, L1 and L2 at "
                                      f"λ={lam_b:g}; shading = P(class 1), line = 0.5")
    xlim, ylim, grid = a["xlim"], a["ylim"], a["boundary"]
    gx = np.linspace(xlim[0], xlim[1], grid.shape[-1])
    gy = np.linspace(ylim[0], ylim[1], grid.shape[-2])
    x, y = a["x_train"], a["y_train"]
    panels = (("l1", 0.0, "no penalty"), ("l1", lam_b, f"L1, λ={lam_b:g}"), ("l2", lam_b, f"L2, λ={lam_b:g}"))
    for i, (ax, (src, strength, title)) in enumerate(zip(axes[0], panels, strict=True)):
        result = record.sweeps[src]
        test_loss = float(result.test_loss[result.select(**{src: strength}, seed=0), -1][0])
        ax.contourf(gx, gy, grid[i], levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(gx, gy, grid[i], levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(x[y == 0, 0], x[y == 0, 1], s=18, marker="o", color="#332288", edgecolor="w",
                   linewidth=0.5, label="class 0 (train)")
        ax.scatter(x[y == 1, 0], x[y == 1, 1], s=22, marker="^", color="#CC6677", edgecolor="k",
                   linewidth=0.4, label="class 1 (train)")
        plotting.style(ax, f"{title} (test loss {test_loss:.2f})", "x₁", "x₂", legend_loc="lower left")
    return fig
