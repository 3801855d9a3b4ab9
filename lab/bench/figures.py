"""The figures of a benchmark, drawn from its summaries (nothing is retrained): AlgoPerf's performance
profiles, steps to target per workload over seeds, and the expected best result of k tuning trials.

    figs = figures.draw(summaries, steps={"digits_mlp": 400})   # {"bench_profiles.png": Figure, ...}
    paths = figures.save(figs, "results/bench")                   # results/bench/figures/*.png

What each figure shows and how to read it: ``docs/bench.md``.
"""

from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, LogNorm
from matplotlib.figure import Figure

from lab import plotting
from lab.bench import profiles

__all__ = ["EDGE", "FILES", "NEVER_SHADE", "draw", "draw_profiles", "draw_table", "profile_taus",
           "ratio_shades", "save", "steps_array", "table_rows"]

FILES = ("bench_profiles.png", "bench_steps.png", "bench_budget.png")
EDGE = 1.1  # a run that never reaches the target is drawn at EDGE x the workload's training steps
RESAMPLES, BOOTSTRAP_SEED = 1000, 0  # as lab.bench.suite.scores: the same intervals as the table


def steps_array(summaries: Sequence[dict]) -> tuple[list[str], list[str], np.ndarray]:
    """``(optimizers, workloads, steps)`` from summaries, in order of first appearance: steps to target
    ``(S, W, seeds)``, ``inf`` where a seed never reaches the target (as ``lab.bench.suite.steps_array``).

    Raises:
        ValueError: an optimizer without a summary on some workload, or one given twice.
    """
    optimizers = list(dict.fromkeys(s["optimizer"] for s in summaries))
    workloads = list(dict.fromkeys(s["workload"] for s in summaries))
    seeds = max(len(s["steps_to_target"]) for s in summaries)
    steps = np.full((len(optimizers), len(workloads), seeds), np.nan)
    for s in summaries:
        i, j = optimizers.index(s["optimizer"]), workloads.index(s["workload"])
        if not np.isnan(steps[i, j, 0]):
            raise ValueError(f"summaries: {s['optimizer']} on {s['workload']} is given twice")
        steps[i, j] = np.inf
        steps[i, j, :len(s["steps_to_target"])] = [np.inf if v is None else v for v in s["steps_to_target"]]
    missing = np.argwhere(np.isnan(steps[..., 0]))
    if missing.size:
        i, j = missing[0]
        raise ValueError(f"summaries: no summary of {optimizers[i]} on {workloads[j]}; every optimizer "
                         f"needs one on every workload")
    return optimizers, workloads, steps


def profile_taus(ratios: np.ndarray, tau_max: float = profiles.TAU_MAX) -> np.ndarray:
    """Where the profiles change: 1, every finite ratio in [1, tau_max], and tau_max, sorted. Drawn as
    steps (each value holds until the next tau), these give the profiles exactly."""
    ratios = np.asarray(ratios, np.float64).ravel()
    inside = ratios[np.isfinite(ratios) & (ratios <= tau_max)]
    return np.unique(np.concatenate([[1.0, tau_max], inside]))


def _settings(summaries: Sequence[dict], workloads: list[str]) -> str:
    """What was measured, for the titles: workloads, budget, seeds, quick variants or not."""
    budgets = sorted({s["settings"]["budget"] for s in summaries})
    seeds = sorted({s["settings"]["seeds"] for s in summaries})
    quick = all(w.endswith("_quick") for w in workloads)
    text = (f"{len(workloads)} workload{'s' * (len(workloads) > 1)}: {', '.join(workloads)}; "
            f"{'/'.join(map(str, budgets))} tuning trials, {'/'.join(map(str, seeds))} seeds")
    return text + ("; quick variants (8 steps), not for conclusions" if quick else "")


def _title(title: str, context: str, width_inches: float) -> str:
    """``title`` over ``context`` wrapped to the figure's width (bold 12 pt: about 10 characters an inch)."""
    return "\n".join([title, *textwrap.wrap(context, max(40, int(10 * width_inches)))])


def _panels(n: int, title: str, context: str, width: float = 4.2, height: float = 3.4
            ) -> tuple[Figure, list]:
    ncols = min(n, 3)
    nrows = math.ceil(n / ncols)
    fig, axes = plotting.figure(ncols, nrows, width=width, height=height,
                                title=_title(title, context, width * ncols))
    axes = list(axes.ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _profiles_figure(optimizers, steps, context: str, tau_max: float) -> Figure:
    title = _title(f"Performance profiles: {len(optimizers)} optimizers", context, 6.4)
    fig, axes = plotting.figure(1, width=6.4, height=4.4, title=title)
    draw_profiles(axes[0, 0], optimizers, steps, tau_max)
    return fig


def draw_profiles(ax, optimizers: Sequence[str], steps: np.ndarray, tau_max: float = profiles.TAU_MAX,
                  legend: Mapping | None = None) -> profiles.Bootstrap:
    """Draw the performance profiles of ``steps`` ``(S, W, seeds)`` (:func:`steps_array`) on ``ax``:
    rho_s(tau) on [1, ``tau_max``] as step functions (gid ``profile:<optimizer>``), best score first and
    thickest, each optimizer's score and 95% bootstrap interval in the legend (placed by ``legend``'s
    keyword arguments to ``ax.legend``; default inside, lower right). Returns the bootstrap
    (the table's scores, ranks and intervals: the same resamples as :func:`lab.bench.suite.scores`)."""
    ratios = profiles.performance_ratios(profiles.median_steps(steps, axis=-1))  # (S, W)
    taus = profile_taus(ratios, tau_max)
    rho = profiles.performance_profile(ratios, taus)  # (S, T)
    boot = profiles.bootstrap(steps, BOOTSTRAP_SEED, resamples=RESAMPLES, tau_max=tau_max)
    for rank, i in enumerate(np.argsort(-boot.score, kind="stable")):  # best first, drawn thickest
        name = optimizers[i]
        label = (f"{plotting.optimizer_label(name)}: score {boot.score[i]:.2f} "
                 f"[{boot.score_low[i]:.2f}, {boot.score_high[i]:.2f}]")
        line, = ax.step(taus, rho[i], where="post", color=plotting.optimizer_color(name), label=label,
                        linestyle=plotting.series_linestyle(int(i)),
                        linewidth=2.6 - 1.4 * rank / len(optimizers))  # ties stay visible
        line.set_gid(f"profile:{name}")
    ax.set_xlim(1.0, tau_max)
    ax.set_ylim(-0.03, 1.03)
    plotting.style(ax, "share of workloads where each is within tau of the fastest (median over seeds)",
                   "tau: steps to target / fastest optimizer's steps (ratio)",
                   "rho(tau): fraction of workloads", legend=False)
    ax.legend(**{"fontsize": 7.5, "loc": "lower right", "framealpha": 0.85, **(legend or {})},
              title=f"score: area under rho on [1, {tau_max:g}], 95% bootstrap interval", title_fontsize=7)
    return boot


def table_rows(result: Mapping[str, dict]) -> tuple[list[str], list[list[str]]]:
    """``lab bench``'s rank table as text, from :func:`lab.bench.suite.scores`' result (``--json``'s
    ``"optimizers"``): ``(columns, rows)``, one row per optimizer, best rank first: its name, score and
    rank with their 95% bootstrap intervals, and the median steps to target on each workload (``-``:
    the median seed never reached it)."""
    workloads = list(next(iter(result.values()))["workloads"])
    rows = []
    for name, r in sorted(result.items(), key=lambda kv: kv[1]["rank"]):  # stable: ties keep their order
        (s_low, s_high), (r_low, r_high) = r["score_interval"], r["rank_interval"]
        rows.append([name, f"{r['score']:.2f} [{s_low:.2f}, {s_high:.2f}]",
                     f"{r['rank']:g} [{r_low:g}, {r_high:g}]",
                     *(_steps_text(r["workloads"][w]["steps_to_target"]) for w in workloads)])
    return ["optimizer", "score [95% interval]", "rank [95% interval]", *workloads], rows


def _steps_text(steps) -> str:
    return "-" if steps is None or not math.isfinite(steps) else f"{steps:g}"


def ratio_shades(tau_max: float = profiles.TAU_MAX) -> ScalarMappable:
    """The rank table's shading of a workload's cell by its ratio to the fastest optimizer's steps: from
    green (1, the fastest) to white (``tau_max``), on a log scale."""
    greens = matplotlib.colormaps["Greens"]
    cmap = LinearSegmentedColormap.from_list("ratio", [greens(0.55), greens(0.02)])
    return ScalarMappable(norm=LogNorm(1.0, tau_max), cmap=cmap)


NEVER_SHADE = "0.82"  # a cell whose median seed never reached the target


def draw_table(ax, result: Mapping[str, dict], tau_max: float = profiles.TAU_MAX) -> None:
    """Draw :func:`table_rows` on ``ax`` as a table (``ax.tables[0]``): optimizers by their display name
    in their catalogue colour, each workload headed by its validation target and each of its cells
    shaded by :func:`ratio_shades` (grey: never reached; white: beyond ``tau_max``), with a colour bar."""
    columns, rows = table_rows(result)
    workloads = columns[3:]
    medians = [[result[row[0]]["workloads"][w]["steps_to_target"] for w in workloads] for row in rows]
    ratios = profiles.performance_ratios([[np.inf if m is None else m for m in row] for row in medians])
    first = result[rows[0][0]]["workloads"]
    header = ["optimizer", "score\n[95% interval]", "rank\n[95% interval]",
              *(f"{_wrap_name(w)}\n{'acc. ≥' if first[w]['metric'] == 'accuracy' else 'loss ≤'} "
                f"{first[w]['target']:.3g}" for w in workloads)]
    ax.axis("off")
    text = [[plotting.optimizer_label(row[0]), *row[1:]] for row in rows]
    table = ax.table(cellText=text, colLabels=header, cellLoc="center", bbox=(0.0, 0.13, 1.0, 0.87))
    table.auto_set_font_size(False)
    table.set_fontsize(8)
    widths = [1.6, 1.4, 1.15] + [1.0] * len(workloads)
    shades = ratio_shades(tau_max)
    for (i, j), cell in table.get_celld().items():
        cell.set_width(widths[j])
        if i == 0:
            cell.set_height(cell.get_height() * 2.6)
            cell.set_facecolor("0.94")
        elif j == 0:
            cell.get_text().set_color(plotting.optimizer_color(rows[i - 1][0]))
            cell.get_text().set_fontweight("bold")
        elif j >= 3:
            r = ratios[i - 1, j - 3]
            cell.set_facecolor(NEVER_SHADE if not math.isfinite(r) else shades.to_rgba(r) if r <= tau_max
                               else "white")
    bar = ax.figure.colorbar(shades, cax=ax.inset_axes((0.6, 0.025, 0.38, 0.03)), orientation="horizontal")
    ticks = np.arange(1, math.floor(tau_max) + 1)
    bar.set_ticks(ticks, labels=[f"{t:g}x" for t in ticks], fontsize=7)
    bar.ax.minorticks_off()
    bar.ax.set_title("shade: median steps / the fastest optimizer's on that workload", fontsize=7)
    ax.text(0.0, 0.04, f"-: never reached (grey); white: more than {tau_max:g}x the fastest",
            transform=ax.transAxes, fontsize=7, va="center")


def _wrap_name(name: str) -> str:
    """A workload's name on two lines, broken after the underscore nearest its middle, if long."""
    cuts = [i + 1 for i, c in enumerate(name) if c == "_"]
    if len(name) <= 10 or not cuts:
        return name
    cut = min(cuts, key=lambda i: abs(i - len(name) / 2))
    return f"{name[:cut]}\n{name[cut:]}"


def _steps_figure(optimizers, workloads, steps, by_cell, budget_steps, context: str) -> Figure:
    fig, axes = _panels(len(workloads), "Steps to the validation target, over seeds", context,
                        height=0.9 + 0.45 * len(optimizers))
    rows = np.arange(len(optimizers))[::-1]  # the first optimizer at the top
    for j, (ax, w) in enumerate(zip(axes, workloads, strict=True)):
        finite = steps[:, j][np.isfinite(steps[:, j])]
        budget = budget_steps.get(w) or (float(finite.max()) if finite.size else 1.0)
        dotted = f"the {budget:g} trained" if w in budget_steps else "the most seen"
        edge = EDGE * budget
        for i, name in enumerate(optimizers):
            color, y = plotting.optimizer_color(name), rows[i]
            seeds = np.where(np.isfinite(steps[i, j]), steps[i, j], edge)
            median = float(profiles.median_steps(steps[i, j]))
            ax.plot([seeds.min(), seeds.max()], [y, y], color=color, linewidth=2, alpha=0.6,
                    solid_capstyle="butt")
            ax.plot(seeds, np.full(seeds.shape, y), linestyle="none", marker="o", markersize=5,
                    markerfacecolor="none", color=color)
            if math.isfinite(median):  # else the median seed never reached it: only the edge markers
                ax.plot([median], [y], linestyle="none", marker="D", markersize=7, color=color,
                        gid=f"median:{name}")
            never = ~np.isfinite(steps[i, j])
            if never.any():
                ax.plot(np.full(int(never.sum()), edge), np.full(int(never.sum()), y), linestyle="none",
                        marker=">", markersize=9, color=color, clip_on=False, gid=f"never:{name}")
        ax.axvline(budget, color="0.4", linestyle=":", linewidth=1)
        ax.set_xlim(0, edge)
        ax.set_ylim(-0.6, len(optimizers) - 0.4)
        ax.set_yticks(rows, [plotting.optimizer_label(n) for n in optimizers])
        s = by_cell[(optimizers[0], w)]
        direction = ">=" if s["higher_is_better"] else "<="
        plotting.style(ax, f"{w}: validation {s['metric']} {direction} {s['target']:.4g}",
                       f"steps to target (updates; dotted: {dotted})", "", legend=False)
    fig.supxlabel("diamond: median over seeds; circles: each seed; bar: lowest to highest seed; "
                  "> at the right edge: a seed that never reached the target", fontsize=8)
    return fig


def _budget_figure(optimizers, workloads, by_cell, context: str) -> Figure:
    fig, axes = _panels(len(workloads), "Expected best validation result of k tuning trials "
                        "(Dodge et al. 2019)", context)
    for ax, w in zip(axes, workloads, strict=True):
        s = by_cell[(optimizers[0], w)]
        for i, name in enumerate(optimizers):
            curve = by_cell[(name, w)]["expected_best_validation"]
            values = np.array([np.nan if v is None else v for v in curve], np.float64)
            k = np.arange(1, values.size + 1)
            ax.plot(k, values, color=plotting.optimizer_color(name), marker="o", markersize=3.5,
                    linestyle=plotting.series_linestyle(i), label=plotting.optimizer_label(name),
                    gid=f"budget:{name}")
        ax.axhline(s["target"], color="0.3", linestyle=":", linewidth=1, label=f"target {s['target']:.4g}")
        better = "higher" if s["higher_is_better"] else "lower"
        # a loss can span decades (a diverged trial counts with its initial loss): log scale
        ys = np.concatenate([np.asarray(line.get_ydata(), np.float64) for line in ax.get_lines()])
        logy = not s["higher_is_better"] and bool(np.all(ys[np.isfinite(ys)] > 0))
        plotting.style(ax, f"{w} ({better} is better)", "k: tuning trials",
                       f"expected best final validation {s['metric']}", logy=logy)
        ax.xaxis.get_major_locator().set_params(integer=True)
    return fig


def draw(summaries: Sequence[dict], *, steps: Mapping[str, int] | None = None,
         tau_max: float = profiles.TAU_MAX) -> dict[str, Figure]:
    """The benchmark's three figures from its summaries (``lab.bench.protocol.evaluate``'s, stored or
    computed), one per optimizer and workload.

    Args:
        summaries: the summaries; every optimizer needs one on every workload.
        steps: workload name -> its training steps, where never-reached runs are drawn just beyond
            (default: the largest steps to target seen on the workload).
        tau_max: the profiles' and scores' upper tau.

    Returns:
        ``{file name: Figure}`` for :data:`FILES`: the performance profiles (each optimizer's score
        and its bootstrap interval in the legend), steps to target per workload (median, each seed,
        lowest to highest), and the expected best validation result against the number of trials.
    """
    if not summaries:
        raise ValueError("summaries: expected at least one summary, got none")
    optimizers, workloads, steps_to_target = steps_array(summaries)
    by_cell = {(s["optimizer"], s["workload"]): s for s in summaries}
    context = _settings(summaries, workloads)
    return {
        FILES[0]: _profiles_figure(optimizers, steps_to_target, context, tau_max),
        FILES[1]: _steps_figure(optimizers, workloads, steps_to_target, by_cell, dict(steps or {}), context),
        FILES[2]: _budget_figure(optimizers, workloads, by_cell, context),
    }


def save(figures: Mapping[str, Figure], out: str) -> list[str]:
    """Write the figures as PNGs into ``out/figures`` (as a set, atomically); their paths."""
    return plotting.save(figures, os.path.join(out, "figures"))
