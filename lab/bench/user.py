"""Your own workload for ``lab bench``: a problem from ``"npz:PATH"`` or ``"module:factory"`` with a step
budget, batch size and metric, and its validation target, computed when not given by the procedure of
the suite's targets at a smaller budget, stored beside the bench's summaries and reused while the
workload is unchanged (``docs/bench.md``, "Your own workload").

    w = user.workload("npz:my_data.npz", steps=400, batch_size=64)
    target = user.stored_target("results/bench", w)              # None: not computed yet
    entry = user.compute_target(w, store_dir="results/bench/sweeps")
    user.save_targets("results/bench", {w.name: entry})
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Callable, Mapping

from lab import specs
from lab.bench import baselines
from lab.bench.protocol import Settings
from lab.bench.workloads import WORKLOADS, Workload
from lab.data import read_npz
from lab.problems import Problem
from lab.sweep import store

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_STEPS", "REFERENCES", "TARGETS_FILE", "TARGET_SETTINGS",
           "compute_target", "procedure", "provenance", "save_targets", "stored_target", "workload"]

DEFAULT_STEPS, DEFAULT_BATCH_SIZE = 400, 64
TARGETS_FILE = "targets.json"  # under the bench's results directory, beside summaries/
# A target costs two optimizers' benchmark at the default settings (budget and seeds), on other trials.
REFERENCES = ("momentum", "adam")
TARGET_SETTINGS = Settings(search_seed=1)
_SUITE_NAMES = {n for w in WORKLOADS.values() for n in (w.name, w.quick().name)}


def workload(spec: str, steps: int | None = None, batch_size: int | None = None,
             metric: str | None = None) -> Workload:
    """A :class:`lab.bench.workloads.Workload` from your own problem, without a target.

    Args:
        spec: ``"npz:PATH"``: the data set of :func:`lab.data.read_npz` with the lab's default model,
            an MLP (one hidden layer of 128 ReLUs), cross-entropy for integer labels and ``mse`` for
            float targets; named after the file (letters, digits and ``_``). ``"module:factory"``:
            ``factory()`` returns a ``Workload`` (its own settings stand unless given here) or a
            :class:`lab.problems.Problem` (named after the factory).
        steps: the step budget (default :data:`DEFAULT_STEPS`); evaluated every ``max(1, steps // 100)``.
        batch_size: default :data:`DEFAULT_BATCH_SIZE`.
        metric: ``"accuracy"`` or ``"loss"`` (default: accuracy for class labels, else loss).

    Raises:
        ValueError: one line naming the option as ``lab bench`` spells it (``--workload``, ``--steps``,
            ``--batch-size``, ``--metric``): a spec that does not import or is not a factory, a file
            that is not a lab npz, a factory that returns something else, a name of the suite's.
    """
    if not isinstance(spec, str):
        raise ValueError(f"--workload: expected 'npz:PATH' or 'module:factory', got {spec!r}")
    for flag, value in (("--steps", steps), ("--batch-size", batch_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{flag}: expected a positive integer, got {value!r}")
    if metric is not None and metric not in ("accuracy", "loss"):
        raise ValueError(f"--metric: expected 'accuracy' or 'loss', got {metric!r}")
    made = _npz(spec) if spec.startswith("npz:") else _factory(spec)
    if isinstance(made, Problem):
        made = Workload(_name(spec), dataclasses.replace(made, validation=True), steps=DEFAULT_STEPS,
                        batch_size=DEFAULT_BATCH_SIZE, eval_every=max(1, DEFAULT_STEPS // 100),
                        metric="accuracy" if made.is_classification else "loss", description=spec)
    given = {k: v for k, v in (("steps", steps), ("batch_size", batch_size), ("metric", metric))
             if v is not None}
    if "steps" in given:
        given["eval_every"] = max(1, steps // 100)
    if metric == "accuracy" and not made.problem.is_classification:
        raise ValueError(f"--metric: {spec} has regression targets, which have no accuracy; use 'loss'")
    if made.name in _SUITE_NAMES:
        raise ValueError(f"--workload: {spec} is named {made.name!r}, a name of the suite's workloads; "
                         f"name it otherwise")
    return dataclasses.replace(made, **given)


def _npz(spec: str) -> Problem:
    try:
        data = read_npz(spec[4:])[1]
    except ValueError as err:
        raise ValueError(f"--workload: {spec!r}: {err}") from None
    return Problem(spec, validation=True, loss="mse" if data.y_train.ndim == 2 else "cross_entropy")


def _factory(spec: str) -> Workload | Problem:
    if ":" not in spec:
        raise ValueError(f"--workload: expected 'npz:PATH' or 'module:factory', got {spec!r}")
    factory = specs.from_string(spec, "--workload", {}, "workload").resolve("--workload")
    if not callable(factory):
        raise ValueError(f"--workload: {spec!r} is a {type(factory).__name__}, not a factory")
    try:
        made = factory()
    except Exception as err:  # noqa: BLE001 - the user's factory failed
        raise ValueError(f"--workload: {spec}() raised {type(err).__name__}: {' '.join(str(err).split())}") \
            from None
    if not isinstance(made, Workload | Problem):
        raise ValueError(f"--workload: {spec}() returned {type(made).__name__}, not a "
                         f"lab.bench.workloads.Workload or a lab.problems.Problem")
    return made


def _name(spec: str) -> str:
    """An npz file's stem, or a factory's name, as letters, digits and ``_``."""
    base = os.path.splitext(os.path.basename(spec[4:]))[0] if spec.startswith("npz:") \
        else spec.partition(":")[2].rsplit(".", 1)[-1]
    return re.sub(r"[^A-Za-z0-9_]", "_", base) or "workload"


def procedure(quick: bool = False) -> dict:
    """How a target is computed (:func:`lab.bench.baselines.compute_targets`' arguments): the
    :data:`REFERENCES` tuned with :data:`TARGET_SETTINGS`, their best results within the first
    :data:`lab.bench.baselines.TARGET_WITHIN` of the steps; for a ``quick`` variant, the suite's quick
    targets' (:data:`lab.bench.baselines.QUICK_REFERENCES`, their settings, window and slack)."""
    if quick:
        return baselines.procedure(quick=True)
    return {"references": REFERENCES, "settings": TARGET_SETTINGS, "within": baselines.TARGET_WITHIN,
            "slack": 0.0}


def compute_target(workload: Workload, quick: bool = False, store_dir: str | None = None,
                   progress: Callable[[int], None] | None = None) -> dict:
    """The target of ``workload`` by :func:`procedure` (its sweeps saved and reused in ``store_dir``):
    its :func:`lab.bench.targets.target_entry` (JSON-ready)."""
    found = baselines.compute_targets([workload], **procedure(quick), store_dir=store_dir, progress=progress)
    return found[workload.name]


def _read(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
        entries = content["targets"]
        if not isinstance(entries, dict) or not all(isinstance(e, dict) for e in entries.values()):
            raise TypeError("expected {\"targets\": {name: entry}}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path} cannot be read ({type(err).__name__}: {err}); remove it to compute "
                         f"the targets again") from None
    return entries


def provenance(workload: Workload, quick: bool = False) -> dict:
    """The fields of a target entry that say how :func:`compute_target` sets it now: a stored target
    whose fields differ was set another way, and is stale like one of a changed workload."""
    return baselines.provenance(workload, procedure(quick))


def stored_target(out: str, workload: Workload, recompute: bool = False, quick: bool = False) -> float | None:
    """The target stored for ``workload`` in ``out``/:data:`TARGETS_FILE`, or None (none stored, or
    one of another version of the workload with ``recompute``).

    Raises:
        ValueError: one line: the file cannot be read, or its entry was computed for another version
            of the workload (its identity changed) and ``recompute`` is False.
    """
    path = os.path.join(out, TARGETS_FILE)
    entry = _read(path).get(workload.name)
    if entry is None:
        return None
    target = entry.get("target")
    if isinstance(target, bool) or not isinstance(target, int | float) or not math.isfinite(target):
        raise ValueError(f"{path}: {workload.name}: target {target!r} is not a finite number; remove it "
                         f"to compute it again")
    changed = {k: entry.get(k) for k, v in provenance(workload, quick).items() if entry.get(k) != v}
    if changed and entry.get("workload_identity") == workload.identity():
        if recompute:
            return None
        raise ValueError(f"{path}: {workload.name}: the target was computed another way ("
                         f"{', '.join(f'{k} {v!r}' for k, v in changed.items())}); rerun with --recompute to "
                         f"compute it again")
    if entry.get("workload_identity") != workload.identity():
        if recompute:
            return None
        raise ValueError(f"{path}: {workload.name}: the target was computed for workload identity "
                         f"{entry.get('workload_identity')}, it is now {workload.identity()}; rerun with "
                         f"--recompute to compute it again")
    return float(target)


def save_targets(out: str, entries: Mapping[str, dict]) -> str:
    """Add (or replace) ``entries`` (name -> :func:`compute_target`'s entry) in ``out``/:data:`TARGETS_FILE`
    (written atomically); returns its path."""
    path = os.path.join(out, TARGETS_FILE)
    merged = _read(path) | dict(entries)
    os.makedirs(out, exist_ok=True)
    store.save_json(path, {"format": 1, "targets": dict(sorted(merged.items()))})
    return path
