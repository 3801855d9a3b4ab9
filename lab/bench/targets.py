"""Workload targets: how they are set from baseline results, and the committed file that holds them.

AlgoPerf's procedure: tune reference optimizers with a large budget, and take as each workload's
validation target the best validation result they reach (here: within the first part of the step
budget, :data:`lab.bench.baselines.TARGET_WITHIN`). :func:`set_target` does that from each reference
optimizer's per-seed best validation metric (of its best trial): the median over seeds per optimizer,
then the best optimizer, optionally relaxed. Targets are committed in :data:`TARGETS_JSON`
with their provenance; :func:`load_targets` refuses one whose workload has changed since.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence

import numpy as np

from lab.bench.protocol import PROTOCOL_VERSION
from lab.bench.workloads import WORKLOADS, Workload
from lab.sweep import SweepResult

__all__ = ["TARGETS_JSON", "TARGET_FIELDS", "best_validation", "load_targets", "save_targets", "set_target",
           "target_entry", "with_targets"]

TARGETS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "targets.json")
FORMAT = 1
# Every entry's fields: the target, what it is tied to, and how it was set.
TARGET_FIELDS = {"target": float, "metric": str, "workload_identity": str, "optimizers": list, "trials": int,
                 "seeds": int, "within_steps": int, "slack": float, "protocol": int, "created": str}


def best_validation(workload: Workload, result: SweepResult, within: int | None = None) -> np.ndarray:
    """(runs,) best validation metric each run of a sweep of ``workload`` reached at any evaluation
    (at a step ``<= within``, if given): the highest accuracy or lowest loss; the worst value (-inf or
    +inf) for a run that diverged."""
    curves = workload.validation_curves(result)
    if within is not None:
        curves = curves[:, np.asarray(result.eval_steps) <= within]
    worst = -np.inf if workload.higher_is_better else np.inf
    curves = np.where(np.isnan(curves), worst, curves)
    best = curves.max(axis=1) if workload.higher_is_better else curves.min(axis=1)
    return np.where(np.asarray(result.diverged), worst, best)


def set_target(best: Mapping[str, Sequence[float]], metric: str, initial: float | None = None,
               slack: float = 0.0) -> float:
    """A workload's validation target from its reference optimizers' results.

    ``target = m* + slack * (initial - m*)``, where ``m*`` is the best, over reference optimizers, of
    each one's median over seeds of its best validation metric (:func:`best_validation` of the
    optimizer's tuned trial, rerun with several seeds). A seed that diverged (NaN or the worst value)
    counts as the worst, so an optimizer whose median seed diverged cannot set the target. ``slack``
    moves the target back toward the metric at initialization, by that fraction of the way (0: the
    best result exactly, as AlgoPerf).

    Args:
        best: optimizer name -> (seeds,) best validation metrics.
        metric: ``"accuracy"`` (higher is better) or ``"loss"``.
        initial: the validation metric at step 0 (needed if ``slack > 0``).
        slack: in [0, 1).

    Raises:
        ValueError: no optimizers or seeds, an unknown metric, a bad slack, or no finite result.
    """
    if metric not in ("accuracy", "loss"):
        raise ValueError(f"set_target: metric must be 'accuracy' or 'loss', got {metric!r}")
    if isinstance(slack, bool) or not isinstance(slack, int | float) or not 0 <= slack < 1:
        raise ValueError(f"set_target: slack must be in [0, 1), got {slack!r}")
    if slack > 0 and (initial is None or not math.isfinite(initial)):
        raise ValueError(f"set_target: a slack of {slack} needs the finite initial metric, got {initial!r}")
    if not best:
        raise ValueError("set_target: no reference optimizers")
    sign = 1.0 if metric == "accuracy" else -1.0  # maximize sign * metric
    medians = {}
    for name, values in best.items():
        values = np.asarray(values, np.float64).ravel()
        if values.size == 0:
            raise ValueError(f"set_target: optimizer {name!r} has no seeds")
        medians[name] = np.median(np.where(np.isnan(values), -np.inf, sign * values))
    top = max(medians.values())
    if not math.isfinite(top):
        raise ValueError(f"set_target: every reference optimizer's median seed diverged ({', '.join(best)})")
    top = sign * top
    return float(top + slack * (initial - top)) if slack > 0 else float(top)


def target_entry(workload: Workload, target: float, optimizers: Sequence[str], trials: int, seeds: int,
                 slack: float, created: str, within_steps: int | None = None) -> dict:
    """One entry of :data:`TARGETS_JSON` for ``workload``: the target with its provenance (the reference
    optimizers, their trials and seeds, the steps its results were taken within (default: the whole
    budget), the slack, when it was made) and the workload's identity."""
    entry = {"target": float(target), "metric": workload.metric, "workload_identity": workload.identity(),
             "optimizers": list(optimizers), "trials": trials, "seeds": seeds,
             "within_steps": workload.steps if within_steps is None else within_steps, "slack": float(slack),
             "protocol": PROTOCOL_VERSION, "created": created}
    _check_entry(workload.name, entry, workload, "target_entry")
    return entry


def save_targets(entries: Mapping[str, dict], path: str = TARGETS_JSON) -> None:
    """Write workload name -> :func:`target_entry` to ``path`` (checked first; written atomically)."""
    for name, entry in entries.items():
        _check_entry(name, entry, WORKLOADS.get(name), path)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, "targets": dict(sorted(entries.items()))}, f, indent=1, allow_nan=False)
        f.write("\n")
    os.replace(tmp, path)


def load_targets(path: str = TARGETS_JSON, workloads: Mapping[str, Workload] = WORKLOADS) -> dict[str, float]:
    """Workload name -> committed target of each of ``workloads``, from ``path`` ({} if there is no
    such file); entries of the suite's other workloads are skipped, unchecked.

    Raises:
        ValueError: one line naming the file, the workload and the field: not JSON, another format,
            an unknown workload, a missing or mistyped field, a metric that is not the workload's,
            or a ``workload_identity`` that is not the workload's now (it changed since the target
            was set: set it again).
    """
    if not os.path.exists(path):
        return {}
    try:
        with open(path) as f:
            content = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot be read as JSON ({' '.join(str(err).split())})") from None
    if not isinstance(content, dict) or content.get("format") != FORMAT \
            or not isinstance(content.get("targets"), dict):
        raise ValueError(f"{path}: expected {{\"format\": {FORMAT}, \"targets\": {{name: entry}}}}")
    out = {}
    for name, entry in content["targets"].items():
        if name not in workloads and name in WORKLOADS:
            continue  # a workload not asked for: its entry (stale or not) does not block the others
        if name not in workloads:
            raise ValueError(f"{path}: unknown workload {name!r}; valid: {', '.join(workloads)}")
        _check_entry(name, entry, workloads[name], path)
        out[name] = float(entry["target"])
    return out


def with_targets(workloads: Mapping[str, Workload] = WORKLOADS,
                 path: str = TARGETS_JSON) -> dict[str, Workload]:
    """The workloads with their committed targets (None where none is committed)."""
    targets = load_targets(path, workloads)
    return {name: dataclasses.replace(w, target=targets.get(name)) for name, w in workloads.items()}


def _check_entry(name: str, entry, workload: Workload | None, where: str) -> None:
    if workload is None:
        raise ValueError(f"{where}: unknown workload {name!r}; valid: {', '.join(WORKLOADS)}")
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: {name}: expected an object with fields {', '.join(TARGET_FIELDS)}")
    for field, kind in TARGET_FIELDS.items():
        value = entry.get(field)
        ok = isinstance(value, kind) and not isinstance(value, bool)
        if kind is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if not ok:
            raise ValueError(f"{where}: {name}: field {field!r} must be a {kind.__name__}, got {value!r}")
    if entry["metric"] != workload.metric:
        raise ValueError(f"{where}: {name}: metric {entry['metric']!r}, but it is {workload.metric!r}")
    if entry["workload_identity"] != workload.identity():
        raise ValueError(f"{where}: {name}: the target was set for workload identity "
                         f"{entry['workload_identity']}, it is now {workload.identity()}; set it again")
    if entry["protocol"] != PROTOCOL_VERSION:
        raise ValueError(f"{where}: {name}: the target was set under protocol version {entry['protocol']}, "
                         f"it is now {PROTOCOL_VERSION}; set it again")
    if not 1 <= entry["within_steps"] <= workload.steps:
        raise ValueError(f"{where}: {name}: field 'within_steps' must be 1 to the workload's "
                         f"{workload.steps} steps, got {entry['within_steps']}")
    if not entry["optimizers"] or not all(isinstance(o, str) for o in entry["optimizers"]):
        raise ValueError(f"{where}: {name}: field 'optimizers' must name the reference optimizers")
