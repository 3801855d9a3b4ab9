"""A whole benchmark: every optimizer on every workload under one protocol, planned (and checked)
before anything runs, summaries reused from the results directory and the committed baselines, and
the optimizers scored together by AlgoPerf's performance-profile score with bootstrap intervals.

    cells = suite.plan(["adam", "sgd"], [WORKLOADS["digits_mlp"]], Settings(), targets, out="results/bench")
    summaries = suite.run(cells, out="results/bench")
    table = suite.scores(cells, summaries)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import numpy as np

from lab import specs
from lab.bench import profiles, protocol, summaries
from lab.bench.protocol import Settings
from lab.bench.workloads import Workload

__all__ = ["Cell", "plan", "run", "scores", "steps_array"]


class Cell(NamedTuple):
    """One optimizer on one workload: what to run, or the stored summary that answers it."""

    optimizer: specs.Spec  # the spec, with its source hash
    workload: Workload
    space: tuple  # the search space
    target: float
    path: str  # where its summary is saved under the results directory
    summary: dict | None  # the stored summary, or None: to run


def plan(optimizers: list[str | Callable], workloads: list[Workload], settings: Settings,
         targets: Mapping[str, float], *, out: str, spaces: Mapping[str, Any] | None = None,
         recompute: bool = False, baselines: str | None = summaries.BASELINES_DIR,
         field: str = "optimizer") -> list[Cell]:
    """Check everything and find what is stored, running nothing and writing nothing.

    Args:
        optimizers: catalogue names, ``"module:factory"`` specs or factories.
        workloads: the workloads.
        settings: the protocol's settings.
        targets: workload name -> validation target (a workload's own ``target`` comes first).
        out: the results directory (summaries in ``out/summaries``, sweeps in ``out/sweeps``).
        spaces: optimizer spec -> its search space (a tuple, dict or JSON text); others: their own.
        recompute: recompute stale summaries instead of refusing them.
        baselines: a read-only directory of committed summaries, looked in after ``out``.
        field: how errors name the optimizers.

    Raises:
        ValueError: one line: an unknown optimizer or bad spec, a bad search space, a workload
            without a target, a trial the sweep engine refuses, a stale summary (:class:`StaleSummary`).
    """
    roots = [os.path.join(out, "summaries")] + ([baselines] if baselines else [])
    spaces = dict(spaces or {})
    cells = []
    for optimizer in optimizers:
        spec = protocol.resolve(optimizer, field)
        space = protocol.search_space(spec, spaces.get(str(spec)))
        trials = protocol.draw(space, settings)
        for workload in workloads:
            target = workload.target if workload.target is not None else targets.get(workload.name)
            if target is None:
                raise ValueError(f"workload {workload.name} has no validation target; compute the targets "
                                 f"with scripts/bench_baselines.py --targets (see docs/bench.md)")
            protocol.trial_sweeps(spec, workload, trials)  # the engine's checks of every trial, now
            stored = summaries.find(roots, spec, spec.source, workload,
                                    protocol.settings_dict(settings, space), recompute)
            if stored is not None and stored.get("target") != target:
                if not recompute:
                    raise summaries.StaleSummary(
                        f"summary of {spec} on {workload.name} was computed for target "
                        f"{stored.get('target')}, the target is now {target}; rerun with --recompute")
                stored = None
            path = summaries.path(roots[0], spec, workload, protocol.settings_dict(settings, space))
            cells.append(Cell(spec, workload, space, float(target), path, stored))
    return cells


def run(cells: list[Cell], settings: Settings, *, out: str, quiet: bool = True,
        progress: Callable[[int], None] | None = None) -> list[dict]:
    """Every cell's summary: stored ones as they are, the others computed and saved under ``out``
    (the sweeps under ``out/sweeps``, by every process of a multi-process job; the summaries by one)."""
    done = []
    for cell in cells:
        if cell.summary is not None:
            done.append(cell.summary)
            continue
        summary = protocol.evaluate(cell.optimizer, cell.workload, settings, target=cell.target,
                                    space=cell.space, store_dir=os.path.join(out, "sweeps"), quiet=quiet,
                                    progress=progress)
        if jax.process_index() == 0:  # in a multi-process job, one process writes
            summaries.save(os.path.join(out, "summaries"), summary, cell.workload)
        done.append(summary)
    return done


def run_steps(cells: list[Cell], settings: Settings) -> int:
    """The training steps (runs x steps) the cells still to run take: a progress bar's total."""
    return sum((settings.budget + settings.seeds) * c.workload.steps for c in cells if c.summary is None)


def steps_array(cells: list[Cell], done: list[dict]) -> tuple[list[str], list[str], np.ndarray]:
    """``(optimizers, workloads, steps)``: steps to target ``(S, W, seeds)`` (``inf``: never reached)."""
    optimizers = list(dict.fromkeys(str(c.optimizer) for c in cells))
    workloads = list(dict.fromkeys(c.workload.name for c in cells))
    seeds = max(len(s["steps_to_target"]) for s in done)
    steps = np.full((len(optimizers), len(workloads), seeds), np.inf)
    for cell, summary in zip(cells, done, strict=True):
        row = [np.inf if v is None else v for v in summary["steps_to_target"]]
        steps[optimizers.index(str(cell.optimizer)), workloads.index(cell.workload.name), :len(row)] = row
    return optimizers, workloads, steps


def scores(cells: list[Cell], done: list[dict], *, resamples: int = 1000, seed: int = 0) -> dict:
    """The benchmark's result, JSON-ready: per optimizer its score (AlgoPerf's area under the
    performance profile, :func:`lab.bench.profiles.benchmark_scores`), rank, their 95% bootstrap
    intervals over seeds, and per workload its steps to target, final metrics and tuning figures."""
    optimizers, workloads, steps = steps_array(cells, done)
    boot = profiles.bootstrap(steps, seed, resamples=resamples)
    by_cell = {(str(c.optimizer), c.workload.name): s for c, s in zip(cells, done, strict=True)}
    out = {}
    for i, name in enumerate(optimizers):
        per_workload = {}
        for w in workloads:
            s = by_cell[(name, w)]
            per_workload[w] = {
                "steps_to_target": s["median_steps_to_target"],
                "steps_to_target_per_seed": s["steps_to_target"],
                "target": s["target"], "metric": s["metric"], "final_validation": s["validation"]["mean"],
                "final_validation_std": s["validation"]["std"], "final_test": s["test"]["mean"],
                "final_test_std": s["test"]["std"], "fraction_trials_reaching": s["fraction_trials_reaching"],
                "step_seconds": s["step_seconds"], "time_to_target_seconds": s["time_to_target_seconds"],
                "best_hyperparameters": s["best_hyperparameters"]}
        out[name] = {"score": float(boot.score[i]), "score_interval": [float(boot.score_low[i]),
                                                                       float(boot.score_high[i])],
                     "rank": float(boot.rank[i]), "rank_interval": [float(boot.rank_low[i]),
                                                                    float(boot.rank_high[i])],
                     "workloads": per_workload}
    return out
