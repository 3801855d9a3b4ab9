"""Each optimizer's path on 2D test surfaces, at the learning rate tuned for that surface.

    lab run trajectories [--quick]

Every optimizer runs on every surface for every learning rate of one log grid (one compiled program
per optimizer, :func:`lab.analysis.surface_paths`); the learning rate with the lowest mean value
along the path wins (:func:`lab.analysis.best_paths`).
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.colors
import numpy as np

from lab import plotting
from lab.experiments.common import Context
from lab.experiments.record import Record

DESCRIPTION = ("paths of each optimizer on Rosenbrock, an ill-conditioned quadratic, a saddle and Beale, "
               "each at its tuned learning rate")
FIGURES = ("03_trajectories.png",)
TITLES = {"rosenbrock": "Rosenbrock (minimum at (1, 1))",
          "quadratic": "ill-conditioned quadratic 0.1x² + 2y²",
          "saddle": "saddle x² − y² (start just off the ridge)",
          "beale": "Beale (minimum at (3, 0.5))"}


@dataclass(frozen=True)
class Config:
    """Each optimizer's path on each 2D surface, at the learning rate tuned for that surface."""

    optimizers: tuple[str, ...] = ("sgd", "momentum", "rmsprop", "adam", "adagrad")
    surfaces: tuple[str, ...] = ("rosenbrock", "quadratic", "saddle", "beale")
    learning_rates: tuple[float, ...] = tuple(float(v) for v in np.logspace(-4, 0, 17))
    steps: int = 500
    resolution: int = 200


def quick() -> Config:
    return Config(learning_rates=tuple(float(v) for v in np.logspace(-4, 0, 9)), steps=200, resolution=100)


def run(cfg: Config, ctx: Context) -> Record:
    """Every optimizer on every surface for every learning rate (one program per optimizer)."""
    import jax.numpy as jnp

    from lab.analysis import best_paths, surface_paths
    from lab.data import TEST_FUNCTIONS
    from lab.optim import get_optimizer

    del ctx  # nothing is trained through the sweep store
    record = Record()
    lrs = np.asarray(cfg.learning_rates, np.float32)
    record.arrays["learning_rates"] = lrs
    for s in cfg.surfaces:
        spec = TEST_FUNCTIONS[s]
        xs = np.linspace(*spec.xlim, cfg.resolution, dtype=np.float32)
        ys = np.linspace(*spec.ylim, cfg.resolution, dtype=np.float32)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1)
        record.arrays[f"surface.{s}.x"], record.arrays[f"surface.{s}.y"] = xs, ys
        record.arrays[f"surface.{s}.z"] = np.asarray(spec.fn(jnp.asarray(grid)))
    rows = []
    for opt in cfg.optimizers:
        points, values = surface_paths(jnp.asarray(lrs), optimizer=get_optimizer(opt), surfaces=cfg.surfaces,
                                       steps=cfg.steps)
        best = best_paths(lrs, np.asarray(points), np.asarray(values), cfg.surfaces)
        for k, v in best.items():
            record.arrays[f"{opt}.{k}"] = v
        rows.append([opt, *(f"{lr:.1e} -> {val:.3g}" for lr, val in zip(best["learning_rate"],
                                                                        best["values"][:, -1], strict=True))])
    record.meta["summary"] = {"columns": ["optimizer", *(f"{s}: lr -> final f" for s in cfg.surfaces)],
                              "rows": rows}
    return record


def draw(record: Record) -> dict:
    from lab.data import TEST_FUNCTIONS

    a, cfg = record.arrays, record.meta["config"]
    opts, surfaces = cfg["optimizers"], cfg["surfaces"]
    steps = a[f"{opts[0]}.points"].shape[1] - 1
    title = (f"Optimizer paths on 2D surfaces, {steps} steps from the same start\neach optimizer at the "
             "learning rate (from one log grid) with the lowest mean f along its path")
    fig, axes = plotting.figure(2, 2, width=6.0, height=4.8, title=title)
    for i, s in enumerate(surfaces):
        ax = axes.flat[i]
        x, y, z = a[f"surface.{s}.x"], a[f"surface.{s}.y"], a[f"surface.{s}.z"]
        if np.all(z >= 0):
            levels = np.logspace(np.log10(max(z.min(), 1e-3)), np.log10(z.max()), 25)
            ax.contour(x, y, np.maximum(z, levels[0]), levels=levels, cmap="Greys", linewidths=0.6, alpha=0.7,
                       norm=matplotlib.colors.LogNorm())
        else:
            ax.contour(x, y, z, levels=25, cmap="Greys", linewidths=0.6, alpha=0.7)
        spec = TEST_FUNCTIONS[s]
        if spec.minimum is not None:
            ax.plot(*spec.minimum, marker="*", color="0.2", markersize=14, linestyle="none", label="minimum")
        ax.plot(*spec.start, marker="o", color="0.2", markersize=6, linestyle="none", label="start")
        for o in opts:
            pts, lr = a[f"{o}.points"][i], a[f"{o}.learning_rate"][i]
            ok = np.all(np.isfinite(pts), axis=1)
            pts = pts[: int(np.argmin(ok)) if not ok.all() else len(pts)]
            label = f"{plotting.optimizer_label(o)} (lr {lr:.1e}){'' if ok.all() else ', diverged'}"
            color = plotting.optimizer_color(o)
            ax.plot(pts[:, 0], pts[:, 1], color=color, linewidth=1.4, marker=".", markersize=2.5, label=label)
            ax.plot(pts[-1, 0], pts[-1, 1], marker="s", color=color, markersize=5)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        plotting.style(ax, TITLES.get(s, s), "x (parameter 1)", "y (parameter 2)", legend_loc="best")
    return {"03_trajectories.png": fig}
