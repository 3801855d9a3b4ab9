"""The figures' shared helpers: palette, seed bands, curves with diverged runs marked, styling, saving.

Each experiment draws its own figures from its saved record with these; so can any script:

    fig, axes = plotting.figure(1, title="Adam vs SGD")
    plotting.sweep_curve(axes[0, 0], result, "train_loss_eval", color=plotting.optimizer_color("adam"),
                         label="Adam", positive=True)
    plotting.style(axes[0, 0], "", "step (updates)", "training loss", logy=True)
    plotting.save({"adam_vs_sgd.png": fig}, "results")

Conventions shared by every figure:

- one fixed colour per optimizer everywhere (:func:`optimizer_color`: the colour the optimizer
  catalogue declares, Okabe & Ito's palette for the classic six, which stays distinguishable under
  the common colour-vision deficiencies; an optimizer that declares none is given one, so it is never
  left out); other categories use :data:`PALETTE` (Paul Tol's muted scheme, also colour-blind safe)
  and ordered series (beta, strength) the ``cividis`` colormap (:func:`ordered_colors`);
- over seeds: a line for the mean and a band from the lowest to the highest seed;
- a diverged run is marked with an ``x`` at the step it diverged and counted in the legend; a
  setting where every seed diverged is marked on the axis edge, never silently dropped;
- figures are ``matplotlib.figure.Figure`` objects (no ``pyplot``, no global state, no display);
  :func:`save` renders every figure before it writes any file, and writes each atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from lab.optim import catalogue
from lab.sweep import SweepResult, store

# Paul Tol's "muted", reordered so that neighbours differ most; light ones (cyan, sand) come last.
PALETTE = ("#332288", "#CC6677", "#44AA99", "#882255", "#999933", "#88CCEE", "#117733", "#AA4499",
           "#DDCC77")
LINESTYLES = ("-", "--", "-.", ":", (0, (6, 1.5)))  # with colour, so categories differ in two ways
DPI = 110


# ----------------------------------------------------------------------------- palette


def optimizer_color(name: str) -> str:
    """The optimizer's colour in every figure (see :func:`lab.optim.catalogue.color`)."""
    return catalogue.color(name)


def optimizer_label(name: str) -> str:
    """The optimizer's display name (``"Adam"`` for ``"adam"``)."""
    return catalogue.label(name)


def series_color(i: int) -> str:
    """The ``i``-th colour of :data:`PALETTE`, for categories that are not optimizers."""
    return PALETTE[i % len(PALETTE)]


def series_linestyle(i: int):
    return LINESTYLES[i % len(LINESTYLES)]


def ordered_colors(n: int) -> list:
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


def final_values(result: SweepResult, metric: str, *, drop_diverged: bool = True) -> np.ndarray:
    """``metric`` at the end of every run of a sweep, as ``(*grid sizes, seeds)``; NaN for diverged
    runs unless ``drop_diverged=False`` (for final-state metrics such as ``weight_norm``)."""
    values = result.grid_view(metric).astype(np.float64)
    if values.ndim > len(result.config.grid_shape) + 1:  # a metric over evaluations: its last one
        values = values[..., -1]
    return np.where(result.grid_view("diverged"), np.nan, values) if drop_diverged else values


# ----------------------------------------------------------------------------- drawing


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


def sweep_curve(ax, result: SweepResult, metric: str, *, runs: np.ndarray | None = None,
                x: np.ndarray | None = None, **kw) -> None:
    """:func:`curve` of a sweep's ``metric`` (or ``"test_error"``, 1 - test accuracy) against its
    evaluation steps (or ``x``), over the runs ``runs`` selects (a mask from ``result.select``;
    default every run)."""
    values = 1.0 - result.test_accuracy if metric == "test_error" else getattr(result, metric)
    diverged = result.diverged_step
    if runs is not None:
        values, diverged = values[runs], diverged[runs]
    curve(ax, result.eval_steps if x is None else x, values, diverged_step=diverged, **kw)


def grid_band(ax, x: np.ndarray, values: np.ndarray, *, color, label: str | None = None, alpha: float = 0.18,
              marker: str = "o", markersize: float = 4, **plot_kw) -> np.ndarray:
    """A line through the seed mean of ``values`` (points, seeds) at ``x`` (points,), with markers,
    and a band from the lowest to the highest seed. Returns the means."""
    mean, lo, hi = seed_band(np.asarray(values).T)
    ax.plot(x, mean, marker=marker, markersize=markersize, color=color, label=label, **plot_kw)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, linewidth=0)
    return mean


def style(ax, title: str, xlabel: str, ylabel: str, *, logx: bool = False, logy: bool = False,
          legend: bool = True, legend_loc: str = "best") -> None:
    """Title, axis labels, log scales, a light grid, and a small legend if anything is labelled."""
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


def figure(ncols: int, nrows: int = 1, *, width: float = 5.0, height: float = 4.0, title: str = ""
           ) -> tuple[Figure, np.ndarray]:
    """A figure of ``nrows x ncols`` panels of ``width x height`` inches and its (nrows, ncols) axes."""
    size = (width * ncols, height * nrows + (0.3 * (title.count("\n") + 1) if title else 0))
    fig = Figure(figsize=size, layout="constrained", dpi=DPI)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    if title:
        fig.suptitle(title, fontsize=12, fontweight="bold")
    return fig, axes


def save(figures: Mapping[str, Figure], out_dir: str) -> list[str]:
    """Write ``{filename: figure}`` as PNGs into ``out_dir``; return the paths written.

    Every figure is rendered before any file is written, and the files are written as a set (each
    to a temporary name, renamed once all are written), so an error leaves neither a partial PNG
    nor a half-updated set.
    """
    pngs = {}
    for filename, fig in figures.items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=DPI)
        pngs[os.path.join(out_dir, filename)] = buffer.getvalue()
    store.atomic_write_all({path: (lambda f, data=data: f.write(data)) for path, data in pngs.items()})
    return list(pngs)
