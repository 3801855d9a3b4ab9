"""Figures, drawn from saved experiment records: the only module that imports matplotlib.

:func:`draw` takes an experiment's name and its :class:`lab.experiments.Record` (arrays and meta,
as saved) and writes that experiment's PNGs; it never trains or runs numerics beyond means and
bands. Matplotlib is used through ``Figure`` objects and the Agg canvas, never ``pyplot``, so no
global state or display is involved.

Conventions shared by every figure:

- one fixed colour per optimizer everywhere (:data:`OPTIMIZER_COLORS`, Okabe & Ito's palette, which
  stays distinguishable under the common colour-vision deficiencies); other categories use
  :data:`PALETTE` (Paul Tol's muted scheme, also colour-blind safe) and ordered series (beta,
  strength) the ``cividis`` colormap;
- over seeds: a line for the mean and a band from the lowest to the highest seed;
- a diverged run is marked with an ``x`` at the step it diverged and counted in the legend; a
  setting where every seed diverged is marked on the axis edge, never silently dropped;
- files are written to a temporary name and renamed, so a failed draw leaves no partial PNG.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

OPTIMIZER_COLORS = {  # Okabe & Ito (2008)
    "sgd": "#000000",
    "momentum": "#E69F00",
    "rmsprop": "#56B4E9",
    "adam": "#D55E00",
    "adamw": "#CC79A7",
    "adagrad": "#009E73",
}
OPTIMIZER_LABELS = {"sgd": "SGD", "momentum": "Momentum", "rmsprop": "RMSprop", "adam": "Adam",
                    "adamw": "AdamW", "adagrad": "Adagrad"}
# Paul Tol's "muted", reordered so that neighbours differ most; light ones (cyan, sand) come last.
PALETTE = ("#332288", "#CC6677", "#44AA99", "#882255", "#999933", "#88CCEE", "#117733", "#AA4499",
           "#DDCC77")
LINESTYLES = ("-", "--", "-.", ":", (0, (6, 1.5)))  # with colour, so categories differ in two ways
DPI = 110


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def _linestyle(i: int):
    return LINESTYLES[i % len(LINESTYLES)]


def _ordered(n: int) -> list:
    """``n`` colours along cividis (dark blue to yellow), trimmed so the last stays visible on white."""
    cmap = matplotlib.colormaps["cividis"]
    return [cmap(v) for v in np.linspace(0.0, 0.85, n)]


# ----------------------------------------------------------------------------- statistics over seeds


def seed_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over axis 0 of the finite entries; NaN where no seed is finite.

    (Written out rather than ``np.nanmean`` so that an all-NaN column is not a warning.)
    """
    values = np.asarray(values, np.float64)
    finite = np.isfinite(values)
    count = finite.sum(axis=0)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, safe.sum(axis=0) / np.maximum(count, 1), np.nan)
    lo = np.where(count > 0, np.where(finite, values, np.inf).min(axis=0), np.nan)
    hi = np.where(count > 0, np.where(finite, values, -np.inf).max(axis=0), np.nan)
    return mean, lo, hi


def _last_finite(row: np.ndarray) -> tuple[int, float] | None:
    idx = np.flatnonzero(np.isfinite(row))
    return (int(idx[-1]), float(row[idx[-1]])) if idx.size else None


def curve(ax, x: np.ndarray, values: np.ndarray, *, color, label: str,
          diverged_step: np.ndarray | None = None, linestyle: str = "-", band: bool = True,
          positive: bool = False) -> None:
    """Mean line over seeds with a min-max band; diverged seeds marked with an ``x`` where they ended.

    Args:
        x: (T,) positions; values: (seeds, T), NaN after a run diverged.
        diverged_step: (seeds,) the step each run diverged at, -1 if it did not.
        positive: drop non-positive values (for a log axis).
    """
    values = np.asarray(values, np.float64)
    if positive:
        values = np.where(values > 0, values, np.nan)
    mean, lo, hi = seed_band(values)
    n_div = 0 if diverged_step is None else int(np.sum(np.asarray(diverged_step) >= 0))
    if n_div:
        label = f"{label} ({n_div}/{values.shape[0]} diverged, x where)"
    ax.plot(x, mean, color=color, linestyle=linestyle, label=label, linewidth=1.6)
    if band and values.shape[0] > 1:
        ax.fill_between(x, lo, hi, color=color, alpha=0.15, linewidth=0)
    if n_div:
        for seed in np.flatnonzero(np.asarray(diverged_step) >= 0):
            last = _last_finite(values[seed])
            if last is not None:
                ax.plot(x[last[0]], last[1], marker="x", color=color, markersize=8, mew=2, linestyle="none")


def _style(ax, title: str, xlabel: str, ylabel: str, *, logx: bool = False, logy: bool = False,
           legend: bool = True, legend_loc: str = "best") -> None:
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logx:
        ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.grid(True, which="major", alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc=legend_loc, framealpha=0.85)


def _fig(ncols: int, nrows: int = 1, *, width: float = 5.0, height: float = 4.0, title: str = "") -> tuple:
    size = (width * ncols, height * nrows + (0.3 * (title.count("\n") + 1) if title else 0))
    fig = Figure(figsize=size, layout="constrained", dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


def _sweep_curve(ax, arrays: dict, prefix: str, metric: str, *, mask=None, x=None, **kw) -> None:
    """``metric`` (or ``"test_error"``, 1 - test accuracy) of a packed sweep against eval steps (or ``x``)."""
    if metric == "test_error":
        values = 1.0 - arrays[f"{prefix}.test_accuracy"]
    else:
        values = arrays[f"{prefix}.{metric}"]
    steps = arrays[f"{prefix}.eval_steps"] if x is None else x
    div = arrays[f"{prefix}.diverged_step"]
    if mask is not None:
        values, div = values[mask], div[mask]
    curve(ax, steps, values, diverged_step=div, **kw)


def _seeds(arrays: dict, prefix: str, mask=None) -> int:
    seeds = arrays[f"{prefix}.seed"]
    return int(np.unique(seeds if mask is None else seeds[mask]).size)


# ----------------------------------------------------------------------------- the figures


def draw_optimizers(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    opts = [o for o in OPTIMIZER_COLORS if f"{o}.final.seed" in a]
    seeds = _seeds(a, f"{opts[0]}.final")
    target = meta["target"]
    fig, axes = _fig(3, width=5.2, height=4.4,
                     title=f"Optimizers on the digits MLP (64-128-10 ReLU, batch 64), each at the learning "
                           f"rate that won the same grid on a validation split; mean and min-max over "
                           f"{seeds} seeds")
    ax_loss, ax_acc, ax_tab = axes[0]
    for o in opts:
        lr = meta["best_learning_rate"][o]
        label = f"{OPTIMIZER_LABELS[o]} (lr {lr:.0e})"
        _sweep_curve(ax_loss, a, f"{o}.final", "train_loss_eval", color=OPTIMIZER_COLORS[o], label=label,
                     positive=True)
        _sweep_curve(ax_acc, a, f"{o}.final", "test_accuracy", color=OPTIMIZER_COLORS[o], label=label)
    _style(ax_loss, "Training loss (whole training set)", "step (updates)", "cross-entropy (nats)", logy=True)
    ax_acc.axhline(target, color="0.4", linestyle=":", linewidth=1.2, label=f"target {target:.0%}")
    finals = np.concatenate([a[f"{o}.final.test_accuracy"][:, -1] for o in opts])
    lo = float(np.min(finals[np.isfinite(finals)], initial=1.0))
    ax_acc.set_ylim(max(0.0, min(target, lo) - 0.04), 1.0)
    _style(ax_acc, "Test accuracy", "step (updates)", "accuracy (fraction correct)", legend_loc="lower right")
    rows = []
    for o in opts:
        hits = a[f"{o}.steps_to_target"]
        reached = hits[np.isfinite(hits)]
        if reached.size:
            text = f"{np.median(reached):.0f}"
            if reached.size < hits.size:
                text += f" ({hits.size - reached.size}/{hits.size} missed)"
        else:
            text = "missed"
        acc = a[f"{o}.final.test_accuracy"][:, -1]
        acc = acc[np.isfinite(acc)]
        rows.append([OPTIMIZER_LABELS[o], f"{meta['best_learning_rate'][o]:.0e}", text,
                     f"{acc.mean():.3f} ± {acc.std():.3f}" if acc.size else "diverged"])
    ax_tab.axis("off")
    table = ax_tab.table(cellText=rows, colLabels=["optimizer", "best lr", f"steps to {target:.0%}\n(median)",
                                                    "final test acc\n(mean ± std)"],
                         loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(8.5)
    table.scale(1.0, 1.9)
    for i, o in enumerate(opts, start=1):
        table[i, 0].get_text().set_color(OPTIMIZER_COLORS[o])
        table[i, 0].get_text().set_fontweight("bold")
    ax_tab.set_title(f"Steps to {target:.0%} test accuracy (first evaluation at or above it)", fontsize=10)
    return {"01_optimizers.png": fig}


def draw_lr_sensitivity(record) -> dict[str, Figure]:
    a = record.arrays
    opts = [o for o in OPTIMIZER_COLORS if f"{o}.seed" in a]
    seeds = _seeds(a, opts[0])
    steps = record.meta["sweeps"][opts[0]]["steps"]
    title = (f"Learning-rate sensitivity on the digits MLP\nfinal training loss after {steps} steps, mean "
             f"and min-max over {seeds} seeds")
    fig, axes = _fig(1, width=7.5, height=5.0, title=title)
    ax = axes[0, 0]
    top = blended_transform_factory(ax.transData, ax.transAxes)
    any_div = False
    for o in opts:
        lrs = a[f"{o}.hp.learning_rate"].reshape(-1, seeds)[:, 0]
        final = a[f"{o}.train_loss_eval"][:, -1].reshape(-1, seeds)  # (lrs, seeds)
        div = a[f"{o}.diverged"].reshape(-1, seeds)
        mean, lo, hi = seed_band(np.where(div, np.nan, final).T)
        color = OPTIMIZER_COLORS[o]
        ax.plot(lrs, mean, marker="o", markersize=4, color=color, label=OPTIMIZER_LABELS[o])
        ax.fill_between(lrs, lo, hi, color=color, alpha=0.18, linewidth=0)
        for lr, d in zip(lrs, div, strict=True):
            if d.any():
                any_div = True
                ax.plot(lr, 0.97, marker="x", color=color, markersize=9, mew=2, transform=top, clip_on=False)
                if not d.all():
                    ax.text(lr, 0.93, f"{int(d.sum())}/{d.size}", transform=top, color=color, fontsize=6.5,
                            ha="center")
    _style(ax, "", "learning rate", "final training loss (cross-entropy, nats)", logx=True, logy=True)
    if any_div:
        ax.text(0.01, 0.99, "x at the top: runs diverged at that learning rate (k/n: k of n seeds)",
                transform=ax.transAxes, va="top", fontsize=7.5, color="0.3")
    return {"02_lr_sensitivity.png": fig}


def draw_trajectories(record) -> dict[str, Figure]:
    a = record.arrays
    surfaces = [k.split(".")[1] for k in a if k.startswith("surface.") and k.endswith(".z")]
    opts = [o for o in OPTIMIZER_COLORS if f"{o}.points" in a]
    steps = a[f"{opts[0]}.points"].shape[1] - 1
    title = (f"Optimizer paths on 2D surfaces, {steps} steps from the same start\neach optimizer at the "
             "learning rate (from one log grid) with the lowest mean f along its path")
    fig, axes = _fig(2, 2, width=6.0, height=4.8, title=title)
    from lab.data import TEST_FUNCTIONS

    titles = {"rosenbrock": "Rosenbrock (minimum at (1, 1))",
              "quadratic": "ill-conditioned quadratic 0.1x² + 2y²",
              "saddle": "saddle x² − y² (start just off the ridge)",
              "beale": "Beale (minimum at (3, 0.5))"}
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
            pts = a[f"{o}.points"][i]
            lr = a[f"{o}.learning_rate"][i]
            ok = np.all(np.isfinite(pts), axis=1)
            pts = pts[: int(np.argmin(ok)) if not ok.all() else len(pts)]
            label = f"{OPTIMIZER_LABELS[o]} (lr {lr:.1e}){'' if ok.all() else ', diverged'}"
            ax.plot(pts[:, 0], pts[:, 1], color=OPTIMIZER_COLORS[o], linewidth=1.4, marker=".",
                    markersize=2.5, label=label)
            ax.plot(pts[-1, 0], pts[-1, 1], marker="s", color=OPTIMIZER_COLORS[o], markersize=5)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
        _style(ax, titles.get(s, s), "x (parameter 1)", "y (parameter 2)", legend_loc="best")
    return {"03_trajectories.png": fig}


def draw_regularization(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    colors = {"none": "0.35", "l1": "#332288", "l2": "#CC6677"}
    names = {"l1": "L1 (λ Σ|w|)", "l2": "L2 (λ/2 Σw²)"}
    seeds = _seeds(a, "l1")
    steps = meta["sweeps"]["l1"]["steps"]
    figs = {}
    fig, axes = _fig(3, width=5.2, height=4.2,
                     title=f"Regularization on an overfitting MLP (2-64-64-2 ReLU, {a['x_train'].shape[0]} "
                           f"noisy two-moons points, full-batch GD, {steps} steps); mean and min-max over "
                           f"{seeds} seeds")
    ax_loss, ax_zero, ax_hist = axes[0]
    for kind in ("l1", "l2"):
        lam = a[f"{kind}.hp.{kind}"].reshape(-1, seeds)[:, 0]
        pos = lam > 0
        for metric, ls, what in (("train_loss_eval", "-", "train"), ("test_loss", "--", "test")):
            final = a[f"{kind}.{metric}"][:, -1].reshape(-1, seeds)
            mean, lo, hi = seed_band(final.T)
            ax_loss.plot(lam[pos], mean[pos], ls, marker="o", markersize=4, color=colors[kind],
                         label=f"{names[kind]}, {what}")
            ax_loss.fill_between(lam[pos], lo[pos], hi[pos], color=colors[kind], alpha=0.15, linewidth=0)
            if kind == "l1":
                ax_loss.axhline(mean[~pos][0], color=colors["none"], linestyle=ls, linewidth=1,
                                label=f"none, {what}")
        frac = a[f"{kind}.near_zero_fraction"].reshape(-1, seeds)
        mean, lo, hi = seed_band(frac.T)
        ax_zero.plot(lam[pos], mean[pos], marker="o", markersize=4, color=colors[kind], label=names[kind])
        ax_zero.fill_between(lam[pos], lo[pos], hi[pos], color=colors[kind], alpha=0.15, linewidth=0)
        if kind == "l1":
            ax_zero.axhline(mean[~pos][0], color=colors["none"], linestyle=":", linewidth=1, label="none")
    _style(ax_loss, "Final loss against penalty strength", "penalty strength λ", "cross-entropy (nats)",
           logx=True)
    ax_zero.set_ylim(-0.02, 1.02)
    _style(ax_zero, "Fraction of weights with |w| < 1e-3", "penalty strength λ", "fraction of weights",
           logx=True)
    edges = a["magnitude_edges"]
    lam_b = meta["boundary_strength"]
    centers = np.sqrt(edges[1:-1] * edges[2:])
    for kind, label in (("none", "none"), ("l1", names["l1"]), ("l2", names["l2"])):
        src = "l1" if kind == "none" else kind
        strength = 0.0 if kind == "none" else lam_b
        mask = a[f"{src}.hp.{src}"] == np.float32(strength)
        counts = a[f"{src}.magnitude_hist"][mask].mean(axis=0)
        near_zero = float(a[f"{src}.near_zero_fraction"][mask].mean())
        strength_text = "" if kind == "none" else f", λ={lam_b:g}"
        ax_hist.step(centers, counts[1:] / counts.sum(), where="mid", color=colors[kind],
                     label=f"{label}{strength_text}: {near_zero:.0%} below 1e-3")
    ax_hist.axvline(1e-3, color="0.5", linestyle=":", linewidth=1)
    _style(ax_hist, "Final weight magnitudes", "|w| (log scale)", "fraction of weights per bin", logx=True,
           legend_loc="upper left")
    figs["04_regularization.png"] = fig

    fig, axes = _fig(3, width=4.6, height=4.0,
                     title=f"Decision boundaries on two moons (seed 0): no penalty, L1 and L2 at "
                           f"λ={lam_b:g}; shading = P(class 1), line = 0.5")
    xlim, ylim = a["xlim"], a["ylim"]
    grid = a["boundary"]
    gx = np.linspace(xlim[0], xlim[1], grid.shape[-1])
    gy = np.linspace(ylim[0], ylim[1], grid.shape[-2])
    x, y = a["x_train"], a["y_train"]
    test_loss = {}
    for kind, src, strength in (("none", "l1", 0.0), ("l1", "l1", lam_b), ("l2", "l2", lam_b)):
        mask = (a[f"{src}.hp.{src}"] == np.float32(strength)) & (a[f"{src}.seed"] == 0)
        test_loss[kind] = float(a[f"{src}.test_loss"][mask, -1][0])
    for ax, (kind, title) in zip(axes[0], (("none", "no penalty"), ("l1", f"L1, λ={lam_b:g}"),
                                           ("l2", f"L2, λ={lam_b:g}")), strict=True):
        i = ("none", "l1", "l2").index(kind)
        ax.contourf(gx, gy, grid[i], levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
        ax.contour(gx, gy, grid[i], levels=[0.5], colors="k", linewidths=1.5)
        ax.scatter(x[y == 0, 0], x[y == 0, 1], s=18, marker="o", color="#332288", edgecolor="w",
                   linewidth=0.5, label="class 0 (train)")
        ax.scatter(x[y == 1, 0], x[y == 1, 1], s=22, marker="^", color="#CC6677", edgecolor="k",
                   linewidth=0.4, label="class 1 (train)")
        _style(ax, f"{title} (test loss {test_loss[kind]:.2f})", "x₁", "x₂", legend_loc="lower left")
    figs["04_decision_boundaries.png"] = fig
    return figs


def draw_weight_decay(record) -> dict[str, Figure]:
    a = record.arrays
    seeds = _seeds(a, "adamw")
    steps = record.meta["sweeps"]["adamw"]["steps"]
    fig, axes = _fig(3, width=5.0, height=4.2,
                     title=f"Adam with an L2 penalty in the loss vs AdamW's decoupled weight decay (digits "
                           f"MLP, lr fixed, {steps} steps); mean and min-max over {seeds} seeds")
    series = (("adam_l2", "l2", "Adam + L2 penalty (λ/2 Σw² in the loss)", OPTIMIZER_COLORS["adam"]),
              ("adamw", "weight_decay", "AdamW (weight_decay = λ)", OPTIMIZER_COLORS["adamw"]))
    panels = (("test_accuracy", "Final test accuracy", "accuracy (fraction correct)", False),
              ("train_loss_eval", "Final training loss", "cross-entropy (nats)", True),
              ("weight_norm", "Final weight norm", "‖w‖₂ over all weights", True))
    for ax, (metric, title, ylabel, logy) in zip(axes[0], panels, strict=True):
        for prefix, hp, label, color in series:
            lam = a[f"{prefix}.hp.{hp}"].reshape(-1, seeds)[:, 0]
            values = a[f"{prefix}.{metric}"]
            values = values[:, -1] if values.ndim == 2 else values
            values = np.where(a[f"{prefix}.diverged"], np.nan, values).reshape(-1, seeds)
            mean, lo, hi = seed_band(values.T)
            pos = lam > 0
            ax.plot(lam[pos], mean[pos], marker="o", markersize=4, color=color, label=label)
            ax.fill_between(lam[pos], lo[pos], hi[pos], color=color, alpha=0.18, linewidth=0)
            if (~pos).any():
                ax.axhline(mean[~pos][0], color="0.4", linestyle=":", linewidth=1, label="λ = 0 (plain Adam)")
        _style(ax, title, "coefficient λ", ylabel, logx=True, logy=logy)
    return {"05_weight_decay.png": fig}


def draw_activations(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    acts = [k[: -len(".grad_norms")] for k in a if k.endswith(".grad_norms")]
    seeds = a[f"{acts[0]}.grad_norms"].shape[0]
    layers = a[f"{acts[0]}.grad_norms"].shape[1]
    steps = meta["sweeps"][f"{acts[0]}.train"]["steps"]
    fig, axes = _fig(2, 2, width=5.8, height=4.2,
                     title="Activation functions, their derivatives, and what they do to gradients")
    z = a["z"]
    for i, act in enumerate(acts):
        for ax, what in ((axes[0, 0], "fn"), (axes[0, 1], "grad")):
            ax.plot(z, a[f"{act}.{what}"], color=_color(i), linestyle=_linestyle(i), label=act, linewidth=1.6)
    axes[0, 0].set_ylim(-1.5, 4.0)
    _style(axes[0, 0], "Activation f(z)", "pre-activation z", "f(z)")
    _style(axes[0, 1], "Derivative f'(z) (sigmoid's is at most 1/4)", "pre-activation z", "f'(z)")
    layer_idx = np.arange(1, layers + 1)
    for i, act in enumerate(acts):
        curve(axes[1, 0], layer_idx, a[f"{act}.grad_norms"], color=_color(i), linestyle=_linestyle(i),
              label=f"{act} + {meta['init'][act]}")
    axes[1, 0].set_xticks(layer_idx)
    _style(axes[1, 0], f"Gradient norm per layer at initialization ({layers}-layer MLP, width 64, "
           f"{seeds} seeds)", "layer (1 = next to the input)", "‖∂L/∂W‖_F (log scale)", logy=True)
    for i, act in enumerate(acts):
        _sweep_curve(axes[1, 1], a, f"{act}.train", "train_loss_eval", color=_color(i),
                     linestyle=_linestyle(i), label=act, positive=True)
    depth = meta["config"]["train_depth"]
    _style(axes[1, 1], f"Training ({depth}-layer MLP, SGD lr {meta['config']['learning_rate']:g}, "
           f"{_seeds(a, f'{acts[0]}.train')} seeds, {steps} steps)", "step (updates)",
           "training loss (cross-entropy, nats)", logy=True)
    return {"06_activations.png": fig}


def draw_initialization(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    cfg = meta["config"]
    inits = meta["inits"]
    labels = {"small normal": f"normal, std {meta['small']:g}",
              "large normal": f"normal, std {meta['large']:g}",
              "xavier_normal": "Xavier (Glorot) normal", "he_normal": "He (Kaiming) normal",
              "normal": f"normal, std {meta['small']:g}"}
    order = ["small normal", "large normal", "xavier_normal", "he_normal"]
    colors = {name: _color(i) for i, name in enumerate(order)}
    colors["normal"] = colors["small normal"]
    title = (f"Initialization: how the spread of activations evolves with depth ({cfg['depth']}-layer MLP, "
             f"width {cfg['width']}, {cfg['seeds']} seeds), and training from each init")
    fig, axes = _fig(3, width=5.0, height=4.2, title=title)
    for ax, act in zip(axes[0, :2], cfg["activations"], strict=True):
        for name in inits:
            stds = a[f"{act}.{name}.stds"]
            curve(ax, np.arange(1, stds.shape[1] + 1), stds, color=colors[name], label=labels[name],
                  positive=True)
        ax.set_xticks(np.arange(1, a[f"{act}.{inits[0]}.stds"].shape[1] + 1))
        _style(ax, f"Activation std per hidden layer, {act}", "hidden layer (1 = next to the input)",
               "std of the layer's outputs (log scale)", logy=True)
    ax = axes[0, 2]
    styles = ("-", "--", ":")
    steps = None
    for j, act in enumerate(cfg["train_activations"]):
        for name in cfg["train_inits"]:
            prefix = f"{act}.{name}.train"
            steps = meta["sweeps"][prefix]["steps"]
            _sweep_curve(ax, a, prefix, "train_loss_eval", color=colors[name], linestyle=styles[j % 3],
                         label=f"{act}, {labels[name]}", positive=True)
    _style(ax, f"Training ({cfg['train_depth']}-layer MLP, SGD lr {cfg['learning_rate']:g}, {steps} steps)",
           "step (updates)", "training loss (cross-entropy, nats)", logy=True)
    return {"07_initialization.png": fig}


def draw_batch_size(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    n = meta["n_train"]
    sizes = meta["batch_sizes"]
    seeds = _seeds(a, f"b{sizes[0]}")
    lr = meta["config"]["learning_rate"]
    title = (f"Batch size: plain SGD at lr {lr:g} on the digits MLP with stochastic, mini-batch and "
             f"full-batch gradients; mean and min-max over {seeds} seeds")
    fig, axes = _fig(3, width=5.0, height=4.2, title=title)
    colors = _ordered(len(sizes))
    for i, bs in enumerate(sizes):
        prefix = f"b{bs}"
        label = f"full batch ({n})" if bs == 0 else ("stochastic (1)" if bs == 1 else f"mini-batch {bs}")
        steps = a[f"{prefix}.eval_steps"]
        _sweep_curve(axes[0, 0], a, prefix, "train_loss_eval", color=colors[i], label=label, positive=True)
        seen = np.maximum(steps * (bs or n), 1)
        _sweep_curve(axes[0, 1], a, prefix, "train_loss_eval", x=seen, color=colors[i], label=label,
                     positive=True)
        _sweep_curve(axes[0, 2], a, prefix, "test_accuracy", x=seen, color=colors[i], label=label)
    _style(axes[0, 0], "Training loss against steps", "step (updates)", "training loss (cross-entropy, nats)",
           logy=True)
    _style(axes[0, 1], "Training loss against examples seen", "examples seen (gradient evaluations)",
           "training loss (cross-entropy, nats)", logx=True, logy=True)
    _style(axes[0, 2], "Test accuracy against examples seen", "examples seen (gradient evaluations)",
           "accuracy (fraction correct)", logx=True, legend_loc="upper left")
    return {"08_batch_size.png": fig}


def draw_momentum(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    cfg = meta["config"]
    forms = [f for f in ("heavy_ball", "ema", "nesterov") if f"{f}.seed" in a]
    form_colors = {"heavy_ball": OPTIMIZER_COLORS["momentum"], "ema": "#0072B2", "nesterov": "#882255"}
    form_labels = {"heavy_ball": "heavy-ball  v ← βv + g", "ema": "EMA  v ← βv + (1−β)g",
                   "nesterov": "Nesterov (look-ahead)"}
    form_styles = {"heavy_ball": "-", "ema": "-", "nesterov": "--"}
    form_markers = {"heavy_ball": "o", "ema": "s", "nesterov": "^"}
    seeds = _seeds(a, forms[0])
    fig, axes = _fig(3, width=5.0, height=4.2,
                     title=f"Momentum on the digits MLP at lr {cfg['learning_rate']:g}: a sweep of β, and "
                           f"forms of it compared; mean and min-max over {seeds} seeds")
    betas = a["heavy_ball.hp.beta"].reshape(-1, seeds)[:, 0]
    colors = _ordered(len(betas))
    for i, b in enumerate(betas):
        mask = a["heavy_ball.hp.beta"] == b
        _sweep_curve(axes[0, 0], a, "heavy_ball", "train_loss_eval", mask=mask, color=colors[i],
                     label=f"β = {b:g}" + (" (plain SGD)" if b == 0 else ""), positive=True)
    _style(axes[0, 0], "Heavy-ball momentum, sweep of β", "step (updates)",
           "training loss (cross-entropy, nats)", logy=True)
    beta = np.float32(meta["compare_beta"])
    for f in forms:
        mask = a[f"{f}.hp.beta"] == beta
        _sweep_curve(axes[0, 1], a, f, "train_loss_eval", mask=mask, color=form_colors[f],
                     label=form_labels[f], linestyle=form_styles[f], positive=True)
    _style(axes[0, 1], f"Forms of momentum at β = {meta['compare_beta']:g} (EMA = heavy-ball, lr×(1−β))",
           "step (updates)", "training loss (cross-entropy, nats)", logy=True)
    for f in forms:
        b = a[f"{f}.hp.beta"].reshape(-1, seeds)[:, 0]
        final = np.where(a[f"{f}.diverged"], np.nan, a[f"{f}.train_loss_eval"][:, -1]).reshape(-1, seeds)
        mean, lo, hi = seed_band(final.T)
        axes[0, 2].plot(b, mean, marker=form_markers[f], markersize=6, color=form_colors[f],
                        linestyle=form_styles[f], label=form_labels[f], markerfacecolor="none")
        axes[0, 2].fill_between(b, lo, hi, color=form_colors[f], alpha=0.18, linewidth=0)
    _style(axes[0, 2], "Final training loss against β", "β (momentum coefficient)",
           "final training loss (cross-entropy, nats)", logy=True)
    return {"09_momentum.png": fig}


def draw_losses(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    losses = [k for k in ("cross_entropy", "mse_classification") if f"{k}.seed" in a]
    names = {"cross_entropy": "cross-entropy", "mse_classification": "MSE to one-hot"}
    colors = {"cross_entropy": "#332288", "mse_classification": "#CC6677"}
    seeds = _seeds(a, losses[0])
    opt = OPTIMIZER_LABELS.get(meta["optimizer"], meta["optimizer"])
    title = (f"Loss for classification: cross-entropy vs mean squared error\n(digits MLP, {opt}; mean and "
             f"min-max over {seeds} seeds)")
    fig, axes = _fig(2, width=5.6, height=4.2, title=title)
    styles = ("-", "--", ":", "-.")
    for loss in losses:
        lrs = np.unique(a[f"{loss}.hp.learning_rate"])
        for j, lr in enumerate(lrs):
            mask = a[f"{loss}.hp.learning_rate"] == lr
            label = f"{names[loss]}, lr {lr:.0e}"
            _sweep_curve(axes[0, 0], a, loss, "test_error", mask=mask, color=colors[loss], label=label,
                         linestyle=styles[j % 4], positive=True)
            _sweep_curve(axes[0, 1], a, loss, "train_loss_eval", mask=mask, color=colors[loss], label=label,
                         linestyle=styles[j % 4], positive=True)
    _style(axes[0, 0], "Test error", "step (updates)", "test error (1 − accuracy, log scale)", logy=True)
    _style(axes[0, 1], "Each loss on the training set\n(different units: compare shapes, not heights)",
           "step (updates)", "training loss (nats for CE, squared units for MSE)", logy=True)
    return {"10_losses.png": fig}


FLOOR = 1e-12  # where an exact zero error is drawn on the log axis


def draw_verification(record) -> dict[str, Figure]:
    a, meta = record.arrays, record.meta
    opts = [o for o in OPTIMIZER_COLORS if f"{o}.step_errors" in a]
    cols = min(3, len(opts))
    rows = -(-len(opts) // cols)
    steps = a[f"{opts[0]}.step_errors"].shape[1]
    title = (f"Verification: per-step relative error of each hand-written optimizer against optax\n({steps} "
             "steps, same gradient stream; dotted lines: each dtype's tolerance)")
    fig, axes = _fig(cols, rows, width=4.8, height=3.6, title=title)
    dtype_colors = {"float32": "#332288", "bfloat16": "#CC6677", "float64": "#117733"}
    for ax, o in zip(axes.flat, opts, strict=False):
        errors, tols, labels = a[f"{o}.step_errors"], a[f"{o}.tolerances"], meta["cases"][o]
        t = np.arange(1, errors.shape[1] + 1)
        zero_cases = []
        for err, tol, label in zip(errors, tols, labels, strict=True):
            setting, dtype = label.split(", ")
            color = dtype_colors.get(dtype, "0.3")
            ls = "-" if setting == "constant lr" else "--"
            if np.all(err == 0):
                zero_cases.append(label)
            ax.plot(t, np.where(err > 0, err, FLOOR), color=color, linestyle=ls, linewidth=1.2, label=label)
            ax.axhline(tol, color=color, linestyle=":", linewidth=1.2)
        ax.set_ylim(FLOOR / 3, 1.0)
        if zero_cases:
            ax.text(0.5, 0.3, f"bitwise identical to optax: error exactly 0 at every step\n"
                    f"in {len(zero_cases)} of {len(labels)} cases (drawn at {FLOOR:g})",
                    transform=ax.transAxes, ha="center", fontsize=7.5, color="0.25")
        title = f"{OPTIMIZER_LABELS[o]} vs optax.{'sgd(momentum=β)' if o == 'momentum' else o}"
        _style(ax, title, "step", "relative error (max norm, log)", logy=True, legend_loc="center right")
    for ax in list(axes.flat)[len(opts):]:
        ax.axis("off")
    return {"11_verification.png": fig}


def _short_device(bench: dict, i: int) -> str:
    return re.sub(r",\s*\d+ device\(s\)$", "", str(bench.get("device", f"device {i}")))


def draw_speed(record) -> dict[str, Figure]:
    meta = record.meta
    benches = meta.get("benchmarks") or []
    title = "Speed of the sweep engine (one compiled program for all runs)"
    if benches:
        notes = benches[0].get("notes", "").split(";")[0]
        title += f"\n{' and '.join(_short_device(b, i) for i, b in enumerate(benches))}; {notes}"
    fig, axes = _fig(2, width=5.6, height=4.4, title=title)
    ax_scale, ax_base = axes[0]
    if not benches:
        for ax in (ax_scale, ax_base):
            ax.axis("off")
        text = (f"not measured yet\n\nrun  python benchmarks/sweep.py --json --out {meta['path']}\n"
                "then  lab run speed")
        fig.text(0.5, 0.45, text, ha="center", va="center", fontsize=12)
        return {"12_speed.png": fig}
    markers, hatches = ("o", "^", "s"), ("", "//", "..")
    for i, bench in enumerate(benches):
        scaling = bench.get("scaling") or []
        if not scaling:
            continue
        device = _short_device(bench, i)
        runs = np.array([s["runs"] for s in scaling], np.float64)
        total = np.array([s["seconds"] for s in scaling], np.float64)
        compile_s = np.array([s.get("compile_seconds", np.nan) for s in scaling], np.float64)
        ax_scale.plot(runs, total, marker=markers[i % 3], color=OPTIMIZER_COLORS["adam"],
                      linestyle=_linestyle(i), label=f"lab sweep run time, {device}")
        compiled = np.where(compile_s > 0.01, compile_s, np.nan)  # ~0 s: a program cached by an earlier point
        ax_scale.plot(runs, compiled, marker=markers[i % 3], color="0.45", linestyle=_linestyle(i),
                      markerfacecolor="none", label=f"compile time (once), {device}")
        if i == 0:
            ax_scale.plot(runs, total[0] * runs / runs[0], linestyle=":", color="0.65",
                          label="linear in runs (from the first point)")
    first = benches[0]
    _style(ax_scale, f"Time against number of runs (Adam, digits MLP, {first.get('steps')} steps each)",
           "runs in the sweep", "seconds", logx=True, logy=True, legend_loc="upper left")
    columns = [("lab sweep", "lab_seconds", OPTIMIZER_COLORS["adam"]),
               ("Python loop over\na jitted optax step", "optax_loop_seconds", "#88CCEE"),
               ("PyTorch eager\ntorch.optim.Adam", "torch_seconds", "#DDCC77")]
    width = 0.8 / len(benches)
    for i, bench in enumerate(benches):
        device = _short_device(bench, i)
        lab_s = bench.get("lab_seconds")
        for j, (_, key, color) in enumerate(columns):
            x = j - 0.4 + width * (i + 0.5)
            value = bench.get(key)
            if value is None:
                ax_base.text(x, 1.0, "not\nmeasured", ha="center", va="bottom", fontsize=7,
                             transform=blended_transform_factory(ax_base.transData, ax_base.transAxes))
                continue
            ax_base.bar(x, float(value), width=width * 0.95, color=color, edgecolor="k", hatch=hatches[i % 3],
                        label=device if j == 0 else None)
            text = f"{float(value):.3g} s"
            if j and lab_s:
                text += f"\n{value / lab_s:.0f}x"
            ax_base.text(x, float(value), text, ha="center", va="bottom", fontsize=7)
    ax_base.set_xticks(np.arange(len(columns)), [c for c, *_ in columns], fontsize=8)
    ax_base.margins(y=0.2)
    fracs = ", ".join(f"{b['matmul_rate_fraction']:.0%}" for b in benches
                      if isinstance(b.get("matmul_rate_fraction"), int | float))
    extra = f"; lab at {fracs} of the matmul rate" if fracs else ""
    _style(ax_base, f"{first.get('runs')} runs x {first.get('steps')} steps, run time{extra}", "",
           "seconds (log scale; Nx = the lab's time)", logy=True, legend_loc="upper left")
    return {"12_speed.png": fig}


DRAWERS: dict[str, Callable] = {
    "optimizers": draw_optimizers,
    "lr_sensitivity": draw_lr_sensitivity,
    "trajectories": draw_trajectories,
    "regularization": draw_regularization,
    "weight_decay": draw_weight_decay,
    "activations": draw_activations,
    "initialization": draw_initialization,
    "batch_size": draw_batch_size,
    "momentum": draw_momentum,
    "losses": draw_losses,
    "verification": draw_verification,
    "speed": draw_speed,
}


def draw(name: str, record, out_dir: str) -> list[str]:
    """Draw experiment ``name``'s figures from its record into ``out_dir``; return the paths written.

    Every figure is drawn before any file is written, and each is written to a temporary name and
    renamed, so an error leaves neither a partial PNG nor a half-updated set.
    """
    figures = DRAWERS[name](record)
    os.makedirs(out_dir, exist_ok=True)
    written, temps = [], []
    try:
        for filename, fig in figures.items():
            fd, tmp = tempfile.mkstemp(dir=out_dir, prefix=f".{filename}.", suffix=".tmp")
            temps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                fig.savefig(f, format="png", dpi=DPI)
        for tmp, filename in zip(temps, figures, strict=True):
            path = os.path.join(out_dir, filename)
            os.replace(tmp, path)
            written.append(path)
    finally:
        for tmp in temps:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return written
