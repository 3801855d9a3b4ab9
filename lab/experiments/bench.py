"""The benchmark in the gallery: the built-in optimizers on every workload of ``lab bench``, drawn from the
committed baseline summaries (``python scripts/bench_baselines.py`` computes them); nothing is trained.

    lab run bench

The summaries are found, checked and scored by ``lab bench``'s own code (:func:`lab.bench.suite.plan`
and :func:`lab.bench.suite.scores`), and drawn by :mod:`lab.bench.figures`. Missing or stale ones give a
figure and one line on stderr that say so and how to compute them.
"""

from __future__ import annotations

import sys
import textwrap
from dataclasses import dataclass

from lab import plotting
from lab.bench import baselines, figures, suite, summaries
from lab.bench.protocol import Settings
from lab.bench.workloads import WORKLOADS
from lab.experiments.common import Context
from lab.experiments.record import Record

DESCRIPTION = ("the built-in optimizers on lab bench's six workloads: performance profiles and rank table, "
               "from the committed baselines (python scripts/bench_baselines.py; never rerun here)")
FIGURES = ("13_bench.png",)
REUSE = False  # it only reads files that may have changed: always reread them
COMMAND = "python scripts/bench_baselines.py"


@dataclass(frozen=True)
class Config:
    """Which summaries to read: the optimizers, the workloads and the protocol settings they were computed
    under, from ``directory`` (None: the committed baselines, ``lab/bench/baselines``; a ``lab bench --out``
    directory works too)."""

    optimizers: tuple[str, ...] = baselines.BASELINES
    workloads: tuple[str, ...] = tuple(WORKLOADS)
    settings: Settings = Settings()
    directory: str | None = None


def quick() -> Config:
    return Config()  # drawing them costs a second: the quick figure is the real one


def run(cfg: Config, ctx: Context) -> Record:
    """Find, check and score the summaries (``lab bench``'s code); nothing is trained here."""
    del ctx
    unknown = [w for w in cfg.workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"Config.workloads: unknown workload {unknown[0]!r}; valid: {', '.join(WORKLOADS)}")
    directory = cfg.directory or summaries.BASELINES_DIR
    workloads = [WORKLOADS[w] for w in cfg.workloads]
    where = "the committed baselines (lab/bench/baselines)" if cfg.directory is None else directory
    record = Record(meta={"where": where, "budget": cfg.settings.budget, "seeds": cfg.settings.seeds})
    try:
        targets = baselines.load_targets(workloads)
        # lab bench's lookup: its results directory's summaries/, then the baselines (here both `directory`)
        cells = suite.plan(list(cfg.optimizers), workloads, cfg.settings, targets, out=directory,
                           baselines=directory)
    except (ValueError, TypeError) as err:  # a missing or stale target, a stale summary...: one line each
        return _not_drawn(record, f"{where}: {err}")
    missing = [c for c in cells if c.summary is None]
    if missing:
        first = missing[0]
        return _not_drawn(record, f"{where}: {len(missing)} of {len(cells)} summaries are missing (the "
                                  f"first: {first.optimizer} on {first.workload.name})")
    done = [c.summary for c in cells]
    record.meta["table"] = suite.scores(cells, done)
    # what the profiles need of each summary (every trial stays in its file), named as lab bench names it
    record.meta["summaries"] = [{"optimizer": str(c.optimizer), "workload": c.workload.name,
                                 "steps_to_target": s["steps_to_target"]}
                                for c, s in zip(cells, done, strict=True)]
    columns, rows = figures.table_rows(record.meta["table"])
    record.meta["summary"] = {"columns": columns, "rows": rows}
    return record


def _not_drawn(record: Record, reason: str) -> Record:
    """The record of a figure that cannot be drawn yet: ``reason`` and how to compute the summaries."""
    message = f"{FIGURES[0]} not drawn: {reason}; the baselines are computed by {COMMAND}"
    print(message, file=sys.stderr)
    record.meta["missing"] = message
    record.meta["summary"] = {"columns": ["not drawn"], "rows": [[message]]}
    return record


def _title(meta: dict, optimizers: int, workloads: list[str]) -> str:
    """What was measured: the optimizers, the workloads, the protocol's budget and seeds, where from."""
    line = (f"Benchmark: {optimizers} built-in optimizers on the {len(workloads)} workloads of lab bench, "
            "steps to each workload's validation target")
    context = (f"budget {meta['budget']} tuning trials (quasi-random, chosen on a validation split), the "
               f"chosen one rerun on {meta['seeds']} seeds per optimizer and workload; {meta['where']}, "
               f"computed by {COMMAND}")
    return "\n".join(textwrap.wrap(line, 140) + textwrap.wrap(context, 140))


def draw(record: Record) -> dict:
    meta = record.meta
    if "table" not in meta:
        fig, axes = plotting.figure(3, width=5.4, height=4.4, title="Benchmark: the built-in optimizers on "
                                    "the workloads of lab bench (performance profiles and rank table)")
        for ax in axes[0]:
            ax.axis("off")
        lines = textwrap.wrap(meta["missing"], 90, break_on_hyphens=False)
        fig.text(0.5, 0.45, "\n".join([*lines, "", "then  lab run bench"]), ha="center", va="center",
                 fontsize=11)
        return {FIGURES[0]: fig}
    optimizers, workloads, steps = figures.steps_array(meta["summaries"])
    fig, axes = plotting.figure(3, width=5.4, height=5.6, title=_title(meta, len(optimizers), workloads))
    ax_profiles = axes[0, 0]
    grid = axes[0, 1].get_subplotspec().get_gridspec()
    for ax in axes[0, 1:]:
        ax.remove()
    ax_table = fig.add_subplot(grid[0, 1:])
    figures.draw_profiles(ax_profiles, optimizers, steps,
                          legend={"loc": "upper center", "bbox_to_anchor": (0.5, -0.13), "ncol": 2})
    ax_profiles.set_title("(a) Performance profiles: share of workloads within tau of the fastest",
                          fontsize=10)
    figures.draw_table(ax_table, meta["table"])
    ax_table.set_title("(b) Rank table: AlgoPerf score and rank, 95% bootstrap intervals over seeds; "
                       "median steps to the target per workload", fontsize=10)
    return {FIGURES[0]: fig}

