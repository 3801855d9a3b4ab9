"""The benchmark protocol for one optimizer on one workload: quasi-random tuning trials trained on the
training part and scored on the validation split, the selection of one trial by its validation
result, its rerun on several seeds, and the summary that ``lab bench`` stores and scores.

    summary = protocol.evaluate("adam", WORKLOADS["digits_mlp"], Settings(budget=16, seeds=5),
                                target=0.97, store_dir="results/bench/sweeps")

The rules and where they come from (DeepOBS, AlgoPerf, Crowded Valley): ``docs/bench.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import specs
from lab.bench import profiles, search
from lab.bench.workloads import Workload, test_metric
from lab.optim import OPTIMIZERS
from lab.problems import init_params
from lab.sweep import SweepConfig, SweepResult, run_sweep, schedules
from lab.sweep.config import NOT_OPTIMIZER_ARGS, optimizer_factory

__all__ = ["PROTOCOL_VERSION", "Settings", "draw", "evaluate", "resolve", "search_space", "select",
           "settings_dict", "step_seconds", "trial_sweeps", "winner_sweep"]

PROTOCOL_VERSION = 2  # in every summary: bump it when the protocol changes what a summary holds
# (2: the selected trial is rerun on seeds 1 .. S, none of them the trials' seed 0)


@dataclass(frozen=True)
class Settings:
    """The protocol's settings: every optimizer of one benchmark is run under the same ones.

    Attributes:
        budget: tuning trials per optimizer and workload (AlgoPerf's external tuning: 5 to 20).
        seeds: seeds the selected trial is rerun on; its steps to target is the median over them.
        search_seed: the seed of the quasi-random trials (:func:`lab.bench.search.sample`).
    """

    budget: int = 16
    seeds: int = 5
    search_seed: int = 0

    def __post_init__(self):
        for field in ("budget", "seeds"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{field}: expected a positive integer, got {value!r}")
        seed = self.search_seed
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"search_seed: expected a non-negative integer, got {seed!r}")


def resolve(optimizer: str | Callable, field: str = "optimizer") -> specs.Spec:
    """The optimizer's spec with its source hash: a catalogue name, ``"module:factory"`` or a factory;
    a one-line ``ValueError`` naming ``field`` for anything else."""
    if isinstance(optimizer, specs.Spec):
        return optimizer
    if isinstance(optimizer, str):
        return specs.from_string(optimizer, field, OPTIMIZERS, "optimizer")
    return specs.from_callable(optimizer, field, OPTIMIZERS)


def search_space(optimizer: specs.Spec, space: Any = None) -> tuple:
    """The search space of ``optimizer`` (a spec from :func:`resolve`): ``space`` checked against its
    arguments, or its own (:func:`lab.bench.search.search_space`)."""
    factory = str(optimizer) if str(optimizer) in OPTIMIZERS else optimizer.resolve("optimizer", OPTIMIZERS)
    return search.search_space(factory, space)


_STEP_COUNTS = {p.name for params in schedules.SCHEDULES.values() for p in params
                if p.rule.startswith("steps")}  # swept as whole numbers of steps


def draw(space: tuple, settings: Settings) -> list[dict]:
    """The tuning trials: ``settings.budget`` quasi-random points of ``space``
    (:func:`lab.bench.search.sample`), schedule lengths in steps rounded to whole steps; a trial
    with a constant schedule drops the drawn ``schedule.*`` numbers (it has no use for them)."""
    trials = []
    for t in search.sample(space, settings.budget, settings.search_seed):
        constant = t.get("schedule") == "constant"
        trials.append({k: float(round(v)) if k in _STEP_COUNTS and _numeric(v) else v for k, v in t.items()
                       if not (constant and k.startswith("schedule."))})
    return trials


def _numeric(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _static(trial: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """The trial's values that shape the program (the schedule, flags, strings, None): one sweep each."""
    return tuple((k, v) for k, v in trial.items() if not _numeric(v))


def _sweep(workload: Workload, optimizer, static: tuple, points: list[dict], seeds: int,
           name: str, first_seed: int = 0) -> SweepConfig:
    fixed = {k: v for k, v in static if k != "schedule"}
    schedule = dict(static).get("schedule", "constant")
    return SweepConfig.make(workload.problem, optimizer, points=points, fixed=fixed, seeds=seeds,
                            steps=workload.steps, batch_size=workload.batch_size,
                            eval_every=workload.eval_every, schedule=schedule, name=name,
                            first_seed=first_seed)


def trial_sweeps(optimizer, workload: Workload, trials: list[dict]) -> list[tuple[SweepConfig, list[int]]]:
    """The sweeps that run ``trials`` (one seed each), with the trial numbers each sweep holds.

    Trials that agree on every value that is not a number (the ``schedule`` choice, a flag) share one
    sweep, so that a search space without such choices runs all its trials in one compiled program.
    """
    groups: dict[tuple, list[int]] = {}
    for i, trial in enumerate(trials):
        groups.setdefault(_static(trial), []).append(i)
    sweeps = []
    for g, (static, indices) in enumerate(groups.items()):
        points = [{k: v for k, v in trials[i].items() if _numeric(v)} for i in indices]
        name = f"{workload.name}-trials" + (f"-{g}" if len(groups) > 1 else "")
        sweeps.append((_sweep(workload, optimizer, static, points, 1, name), indices))
    return sweeps


def winner_sweep(optimizer, workload: Workload, trial: dict, seeds: int) -> SweepConfig:
    """The sweep that reruns the selected ``trial`` on ``seeds`` seeds, ``1 .. seeds``: fresh runs, none
    of them the trial's own run (seed 0), whose luck helped select it."""
    point = {k: v for k, v in trial.items() if _numeric(v)}
    return _sweep(workload, optimizer, _static(trial), [point], seeds, f"{workload.name}-selected",
                  first_seed=1)


def select(steps, finals, higher_is_better: bool) -> int:
    """The trial that wins the tuning, from validation results only: the fewest steps to the target;
    among trials tied on steps (or none reaching the target, all ``inf``), the best final validation
    metric; a diverged trial (NaN) is the worst; remaining ties go to the first trial drawn.

    Args:
        steps: ``(N,)`` each trial's steps to the validation target (``inf``: never).
        finals: ``(N,)`` each trial's final validation metric.
        higher_is_better: the metric's direction.
    """
    steps, finals = np.asarray(steps, np.float64), np.asarray(finals, np.float64)
    if steps.ndim != 1 or steps.shape != finals.shape or steps.size == 0:
        raise ValueError(f"select: expected two (N,) arrays, got {steps.shape} and {finals.shape}")
    worse = -finals if higher_is_better else finals  # smaller is better
    worse = np.where(np.isnan(worse), np.inf, worse)
    return int(np.lexsort((np.arange(steps.size), worse, steps))[0])


def step_seconds(config: SweepConfig, repeats: int = 5, number: int = 20) -> float:
    """The measured cost of one update of the optimizer of ``config`` (built with its first point and
    fixed values) on its problem's params: ``update`` jitted, called ``number`` times in a row per
    repeat; the least mean time per call over ``repeats``, in seconds."""
    kwargs = {k: v for k, v in (config.grid_points()[0] | dict(config.fixed)).items()
              if k not in NOT_OPTIMIZER_ARGS}
    opt = optimizer_factory(config.optimizer)(**kwargs)
    params = init_params(config.problem, jax.random.key(0))
    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    extra = {"value": jnp.float32(1.0)} if isinstance(opt, optax.GradientTransformationExtraArgs) else {}
    update = jax.jit(lambda g, s, p: opt.update(g, s, p, **extra))
    state = opt.init(params)
    jax.block_until_ready(update(grads, state, params))  # compile
    best = math.inf
    for _ in range(repeats):
        s = state
        start = time.perf_counter()
        for _ in range(number):
            _, s = update(grads, s, params)
        jax.block_until_ready(s)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def _floats(values) -> list[float | None]:
    """JSON-ready floats: ``inf`` and NaN as None."""
    return [float(v) if math.isfinite(v) else None for v in np.asarray(values, np.float64).ravel()]


def _worst_finite(curves: np.ndarray) -> np.ndarray:
    """Each trial's final validation metric, a diverged trial's replaced by its value at step 0 (its
    metric before training: chance accuracy or the initial loss), which :func:`expected_max` needs."""
    final, start = curves[:, -1], curves[:, 0]
    out = np.where(np.isfinite(final), final, start)
    fallback = np.nanmin(out) if np.isfinite(out).any() else 0.0
    return np.where(np.isfinite(out), out, fallback)


def evaluate(optimizer, workload: Workload, settings: Settings, *, target: float,
             space: tuple | None = None, store_dir: str | None = None, quiet: bool = True,
             progress: Callable[[int], None] | None = None) -> dict:
    """Tune ``optimizer`` on ``workload`` under ``settings`` and summarise the result (JSON-ready).

    Args:
        optimizer: a catalogue name, ``"module:factory"`` (``"optax:NAME"``) or a factory.
        workload: the workload (its problem holds out the validation split).
        settings: budget, seeds, search seed.
        target: the validation target (from the workload, or the targets file).
        space: the search space (:func:`lab.bench.search.search_space`; default the optimizer's).
        store_dir: where the sweeps are saved and reused (None: nowhere).
        quiet: no per-sweep progress bars.
        progress: called with the run-steps done after each sweep (for one bar over a whole bench).

    Returns:
        The summary: see ``docs/bench.md`` for its keys.
    """
    optimizer = resolve(optimizer)
    space = search_space(optimizer, space)
    higher = workload.higher_is_better
    trials = draw(space, settings)
    sweeps = trial_sweeps(optimizer, workload, trials)
    start = time.perf_counter()
    eval_steps, curves = None, np.full((settings.budget, 0), np.nan)
    for config, indices in sweeps:
        result = run_sweep(config, store_dir=store_dir, quiet=quiet)
        part = workload.validation_curves(result)
        if curves.shape[1] == 0:
            eval_steps, curves = result.eval_steps, np.full((settings.budget, part.shape[1]), np.nan)
        curves[indices] = part
        if progress is not None:
            progress(config.runs * config.steps)
    trial_steps = profiles.steps_to_target(eval_steps, curves, target, higher)
    best = select(trial_steps, curves[:, -1], higher)
    config = winner_sweep(optimizer, workload, trials[best], settings.seeds)
    result: SweepResult = run_sweep(config, store_dir=store_dir, quiet=quiet, keep_params=True)
    if progress is not None:
        progress(config.runs * config.steps)
    seed_curves = workload.validation_curves(result)
    seed_steps = profiles.steps_to_target(result.eval_steps, seed_curves, target, higher)
    median = float(profiles.median_steps(seed_steps))
    validation, test = seed_curves[:, -1], test_metric(workload, result.final_params)
    seconds = step_seconds(config)
    return {
        "protocol": PROTOCOL_VERSION, "optimizer": str(config.optimizer), "workload": workload.name,
        "identity": {"optimizer": config.optimizer.source, "workload": workload.identity()},
        "settings": settings_dict(settings, space),
        "metric": workload.metric, "higher_is_better": higher, "target": float(target),
        "steps_to_target": _floats(seed_steps), "median_steps_to_target": _floats([median])[0],
        "validation": _stats(validation), "test": _stats(test),
        "fraction_trials_reaching": float(profiles.fraction_reaching(trial_steps)),
        "expected_best_validation": _floats(profiles.expected_max(_worst_finite(curves), higher)),
        "selected_trial": best, "best_hyperparameters": trials[best],
        "trials": [{"hyperparameters": t, "steps_to_target": s, "final_validation": v}
                   for t, s, v in zip(trials, _floats(trial_steps), _floats(curves[:, -1]), strict=True)],
        "step_seconds": seconds,
        "time_to_target_seconds": _floats([median * seconds])[0],
        "compute_seconds": time.perf_counter() - start,
    }


def settings_dict(settings: Settings, space: tuple) -> dict:
    """The settings a summary was computed under, with its search space (JSON-ready)."""
    return {"budget": settings.budget, "seeds": settings.seeds, "search_seed": settings.search_seed,
            "search_space": search.as_dict(space)}


def _stats(values) -> dict:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    return {"mean": float(finite.mean()) if finite.size else None,
            "std": float(finite.std()) if finite.size else None,
            "per_seed": _floats(values)}
