"""The benchmark's reference results: the named baseline optimizers, the validation targets and the
procedure that computes them (``python scripts/bench_baselines.py``; ``docs/bench.md``).

A target is the best validation result that the :data:`TARGET_REFERENCES` reach with a large budget
within the first :data:`TARGET_WITHIN` of the workload's steps (AlgoPerf's procedure, smaller): for each
reference, :data:`TARGET_SETTINGS`'s trials, the trial with the best validation metric in that window
rerun on its seeds; the target is :func:`lab.bench.targets.set_target` of their best validation metrics
in the window (the best over references of the median over seeds). The window leaves every optimizer
up to three times the steps the best reference needed, so that steps to target tell optimizers apart
(a target set at the end of the budget is reached, if at all, in its last steps).
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable

import numpy as np

from lab.bench import protocol, targets
from lab.bench.protocol import Settings
from lab.bench.summaries import BASELINES_DIR
from lab.bench.workloads import WORKLOADS, Workload
from lab.sweep import run_sweep, store

__all__ = ["BASELINES", "QUICK_REFERENCES", "QUICK_SLACK", "QUICK_TARGETS_JSON", "QUICK_TARGET_SETTINGS",
           "QUICK_WITHIN", "TARGET_REFERENCES", "TARGET_SETTINGS", "TARGET_WITHIN", "compute_targets",
           "load_targets", "procedure", "provenance", "save_quick_targets", "within_steps"]

# The committed baselines: the catalogue's six classic optimizers and four newer ones.
BASELINES = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad", "nadam", "lion", "schedule_free_adamw",
             "adafactor")
TARGET_REFERENCES = ("momentum", "adam", "nadam", "lion")
TARGET_SETTINGS = Settings(budget=50, seeds=5, search_seed=1)  # not the benchmark's trials (search_seed)
TARGET_WITHIN = 1 / 3  # targets are the best results reached within this fraction of a workload's steps
# The quick variants' targets (lab bench --quick), set by the same procedure at a small budget: two
# references, 4 trials, 2 seeds, results over the whole budget, relaxed by a slack.
QUICK_TARGETS_JSON = os.path.join(BASELINES_DIR, "targets_quick.json")
QUICK_REFERENCES = ("momentum", "adam")
QUICK_TARGET_SETTINGS = Settings(budget=4, seeds=2, search_seed=1)
QUICK_WITHIN = 1.0
QUICK_SLACK = 0.25  # a quarter of the way back to the initial metric: reachable by a 3-trial search


def load_targets(workloads: list[Workload]) -> dict[str, float]:
    """Workload name -> validation target of each of ``workloads`` that has one: the committed targets
    (:func:`lab.bench.targets.load_targets`) of the full workloads, and the quick variants' from
    :data:`QUICK_TARGETS_JSON`. One line (``ValueError``) for a target whose workload changed since."""
    full = {w.name: w for w in workloads if w.name in WORKLOADS}
    found = targets.load_targets(workloads=full) if full else {}
    quick = [w for w in workloads if w.name not in WORKLOADS]
    if quick and os.path.isfile(QUICK_TARGETS_JSON):
        with open(QUICK_TARGETS_JSON, encoding="utf-8") as f:
            entries = json.load(f)["targets"]
        for w in quick:
            entry = entries.get(w.name)
            if entry is not None and (entry["workload_identity"] != w.identity()
                                      or entry.get("protocol") != protocol.PROTOCOL_VERSION):
                raise ValueError(f"{QUICK_TARGETS_JSON}: {w.name}: the target was set for workload identity "
                                 f"{entry['workload_identity']} under protocol version "
                                 f"{entry.get('protocol')}, it is now {w.identity()} under "
                                 f"{protocol.PROTOCOL_VERSION}; set it again "
                                 f"(python scripts/bench_baselines.py --quick --targets)")
            if entry is not None:
                found[w.name] = float(entry["target"])
    return {w.name: found[w.name] for w in workloads if w.name in found}


def save_quick_targets(entries: dict[str, dict]) -> None:
    """Add (or replace) quick variants' entries (:func:`lab.bench.targets.target_entry`) in
    :data:`QUICK_TARGETS_JSON`."""
    old = {}
    if os.path.isfile(QUICK_TARGETS_JSON):
        with open(QUICK_TARGETS_JSON, encoding="utf-8") as f:
            old = json.load(f)["targets"]
    os.makedirs(BASELINES_DIR, exist_ok=True)
    store.save_json(QUICK_TARGETS_JSON, {"format": 1, "targets": dict(sorted((old | entries).items()))})


def procedure(quick: bool = False) -> dict:
    """How the suite's targets are set (:func:`compute_targets`' ``references``, ``settings``,
    ``within`` and ``slack``): the full workloads', or the quick variants'."""
    if quick:
        return {"references": QUICK_REFERENCES, "settings": QUICK_TARGET_SETTINGS, "within": QUICK_WITHIN,
                "slack": QUICK_SLACK}
    return {"references": TARGET_REFERENCES, "settings": TARGET_SETTINGS, "within": TARGET_WITHIN,
            "slack": 0.0}


def provenance(workload: Workload, how: dict) -> dict:
    """The fields of a target entry (:func:`lab.bench.targets.target_entry`) that say how it was set, as
    procedure ``how`` (:func:`procedure`'s keys) sets it on ``workload``: an entry whose fields differ
    was set another way."""
    return {"optimizers": list(how["references"]), "trials": how["settings"].budget,
            "seeds": how["settings"].seeds, "within_steps": within_steps(workload, how["within"]),
            "slack": float(how["slack"]), "protocol": protocol.PROTOCOL_VERSION}


def within_steps(workload: Workload, fraction: float) -> int:
    """The last step of the first ``fraction`` (in (0, 1]) of ``workload``'s budget, rounded to an
    evaluation step (at least the first, at most the last step: the whole budget for 1)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction <= 1:
        raise ValueError(f"within: expected a fraction in (0, 1], got {fraction!r}")
    if fraction == 1:
        return workload.steps
    evaluations = max(1, round(workload.steps * fraction / workload.eval_every))
    return min(workload.steps, evaluations * workload.eval_every)


def compute_targets(workloads: list[Workload], *, references: tuple[str, ...] = TARGET_REFERENCES,
                    settings: Settings = TARGET_SETTINGS, within: float = TARGET_WITHIN, slack: float = 0.0,
                    store_dir: str | None = None, quiet: bool = True,
                    progress: Callable[[int], None] | None = None) -> dict[str, dict]:
    """Each workload's validation target by the documented procedure (module docstring): results are
    taken within the first ``within`` of its steps (1: the whole budget); ``slack`` moves the target
    back toward the metric at initialization by that fraction (0: AlgoPerf's).

    Returns:
        name -> :func:`lab.bench.targets.target_entry` (JSON-ready).
    """
    found = {}
    for workload in workloads:
        best, initial = {}, []
        last = within_steps(workload, within)
        for name in references:
            spec = protocol.resolve(name)
            trials = protocol.draw(protocol.search_space(spec), settings)
            scores = np.full(len(trials), np.nan)  # each trial's best validation metric in the window
            for config, indices in protocol.trial_sweeps(spec, workload, trials):
                result = run_sweep(config, store_dir=store_dir, quiet=quiet)
                scores[indices] = targets.best_validation(workload, result, within=last)
                if progress is not None:
                    progress(config.runs * config.steps)
            chosen = protocol.select(np.full(len(trials), np.inf), scores, workload.higher_is_better)
            config = protocol.winner_sweep(spec, workload, trials[chosen], settings.seeds)
            result = run_sweep(config, store_dir=store_dir, quiet=quiet)
            best[name] = targets.best_validation(workload, result, within=last)
            initial.extend(workload.validation_curves(result)[:, 0])
            if progress is not None:
                progress(config.runs * config.steps)
        target = targets.set_target(best, workload.metric, float(np.median(initial)), slack)
        found[workload.name] = targets.target_entry(
            workload, target, list(references), settings.budget, settings.seeds, slack,
            datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"), within_steps=last)
    return found
