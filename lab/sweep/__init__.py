"""Sweeps: a whole comparison (hyperparameter grid x seeds) of one optimizer as one XLA program.

    config = SweepConfig.make(Problem("digits"), "adam", {"learning_rate": [1e-3, 3e-3]}, seeds=4)
    result = run_sweep(config)          # or reused from results/<name>-<hash>/ if already done

How it runs (purejaxrl's recipe, with the run axis outermost):

- every (grid point, seed) pair is a *run*; runs are ordered grid-major, seed-minor. A run's
  hyperparameters (and L1/L2 strengths), swept or fixed numbers, are float32 arrays with the run
  axis first, so the grid's size is a shape and its values are data: the compiled program is cached
  on what shapes it (:class:`_ProgramKey`), and other values reuse it.
- run ``r`` with seed ``s`` draws ``k_init, k_batch = jax.random.split(jax.random.key(s))``: its
  params are ``init_params(problem, k_init)`` and its batch at step ``t`` is
  ``lab.data.batch_indices(k_batch, t, n, batch_size)``; runs of one seed share their batches,
  and each chunk draws the permutations of the epochs it touches once per seed. The data set
  depends on ``problem.data_seed`` only.
- the steps run in chunks: each chunk is one compiled ``lax.scan`` over a fixed number of steps of
  a ``vmap`` over the runs, with the state donated; steps past the end are masked, so the last chunk
  reuses the same program. Data stay on the device; only per-step losses come back per chunk.
- between chunks: the progress bar moves, records are filled in, and a checkpoint is written
  (atomically), so Ctrl-C or a killed process loses at most the chunk in flight.
- a run whose loss or new params are not finite is *diverged*: it is frozen at its last finite
  params, marked at that step, and its later records are NaN; other runs are untouched.
- with several devices, the run axis is sharded over a one-axis ``Mesh`` (runs padded to a
  multiple of the device count); results equal the single-device ones.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import itertools
import json
import math
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lab.data import Dataset
from lab.problems import Problem, init_params, load_data, metrics
from lab.problems import data_loss as problem_loss
from lab.regularizers import l1_penalty, l2_penalty
from lab.sweep import store
from lab.sweep.store import SweepResult

Array = jax.Array

__all__ = ["PENALTIES", "Problem", "SweepConfig", "SweepInterrupted", "SweepResult", "result_dir",
           "run_sweep"]

PENALTIES = ("l1", "l2")  # swept or fixed like optimizer kwargs, but enter the objective
NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight
HIST_BINS = 50
TARGET_CHUNKS = 20  # default number of chunks (progress updates and checkpoints) per sweep


def optimizer_factory(name: str) -> Callable[..., optax.GradientTransformation]:
    """The optimizer factory called ``name``: :func:`lab.optim.get_optimizer`."""
    from lab.optim import get_optimizer

    return get_optimizer(name)


def _optimizer_names() -> tuple[str, ...]:
    from lab.optim import OPTIMIZERS

    return tuple(OPTIMIZERS)


# ----------------------------------------------------------------------------- config


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a problem, an optimizer family, a grid of hyperparameters, seeds and a schedule.

    Validates itself; every error is a ``ValueError`` naming the field.

    Attributes:
        problem: what is trained (:class:`lab.problems.Problem`).
        optimizer: a key of :data:`lab.optim.OPTIMIZERS`.
        grid: ``((name, (value, ...)), ...)``: swept optimizer kwargs and ``"l1"``/``"l2"``
            penalty strengths; every combination (cartesian product) is run. Values are run as
            float32.
        fixed: ``((name, value), ...)``: optimizer kwargs (or ``l1``/``l2``) held at one value. A
            number enters the program as an array (like a one-value grid axis); flags
            (``nesterov=True``) and ``None`` (``momentum=None``) are static: they shape the program.
        seeds: seeds ``0 .. seeds-1`` per grid point.
        steps: optimizer steps per run.
        batch_size: mini-batch size; ``None`` (or the training-set size) is full batch, 1 is SGD.
        eval_every: evaluate on the whole train and test sets every this many steps (and at 0 and
            at ``steps``).
        log_every: record the mini-batch loss every this many steps.
        name: a label for the results directory (letters, digits, ``._-``).
    """

    problem: Problem
    optimizer: str
    grid: tuple[tuple[str, tuple[float, ...]], ...]
    fixed: tuple[tuple[str, object], ...] = ()
    seeds: int = 1
    steps: int = 500
    batch_size: int | None = 64
    eval_every: int = 50
    log_every: int = 1
    name: str = "sweep"

    @classmethod
    def make(cls, problem: Problem, optimizer: str, grid: Mapping[str, Any],
             fixed: Mapping[str, Any] | None = None, **kwargs) -> SweepConfig:
        """Build from dicts and lists: ``make(problem, "adam", {"learning_rate": [1e-3, 1e-2]}, seeds=2)``.

        A scalar grid value is a one-point axis.
        """
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"SweepConfig: unknown field(s) {', '.join(sorted(unknown))}")
        axes = tuple((k, _axis_values(v)) for k, v in dict(grid).items())
        return cls(problem=problem, optimizer=optimizer, grid=axes,
                   fixed=tuple(dict(fixed or {}).items()), **kwargs)

    def __post_init__(self):
        if not isinstance(self.problem, Problem):
            raise ValueError(f"SweepConfig.problem: expected a Problem, got {type(self.problem).__name__}")
        if self.optimizer not in _optimizer_names():
            raise ValueError(f"SweepConfig.optimizer: unknown optimizer {self.optimizer!r}; "
                             f"valid: {', '.join(_optimizer_names())}")
        for field in ("seeds", "steps", "eval_every", "log_every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SweepConfig.{field}: expected a positive integer, got {value!r}")
        n_train = load_data(self.problem).x_train.shape[0]
        if self.batch_size is not None:
            b = self.batch_size
            if not isinstance(b, int) or isinstance(b, bool) or b < 1:
                raise ValueError(f"SweepConfig.batch_size: expected a positive integer or None, "
                                 f"got {self.batch_size!r}")
            if self.batch_size > n_train:
                raise ValueError(f"SweepConfig.batch_size: {self.batch_size} is larger than the "
                                 f"{n_train} training examples")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"SweepConfig.name: expected letters, digits and '._-' only, got {self.name!r}")
        object.__setattr__(self, "grid", _normalize_grid(self.grid))
        object.__setattr__(self, "fixed", _normalize_fixed(self.fixed))
        self._check_names()

    def _check_names(self):
        factory = optimizer_factory(self.optimizer)
        params = inspect.signature(factory).parameters
        valid = tuple(params) + PENALTIES
        swept, fixed = [k for k, _ in self.grid], dict(self.fixed)
        for field, names in (("grid", swept), ("fixed", fixed)):
            for k in names:
                if k not in valid:
                    raise ValueError(f"SweepConfig.{field}: {k!r} is not a hyperparameter of "
                                     f"{self.optimizer!r}; valid: {', '.join(valid)}")
        for k, values in self.grid:
            if k in params and isinstance(params[k].default, bool):
                raise ValueError(f"SweepConfig.grid: {k!r} is a static flag of {self.optimizer!r} (it shapes "
                                 f"the program), so it cannot be swept; got {list(values)}; set it in fixed")
        both = set(swept) & set(fixed)
        if both:
            raise ValueError(f"SweepConfig.fixed: {', '.join(sorted(both))} also swept in grid")
        for k, p in params.items():
            if p.default is inspect.Parameter.empty and k not in swept and k not in fixed:
                raise ValueError(f"SweepConfig.grid: {self.optimizer!r} needs {k!r}; sweep it or fix it")
        for k in PENALTIES:
            v = fixed.get(k, 0.0)
            if not isinstance(v, int | float) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"SweepConfig.fixed: {k}={v!r}: must be a non-negative number")
        for k, values in self.grid:
            if k in PENALTIES:
                for v in values:
                    if not v >= 0:
                        raise ValueError(f"SweepConfig.grid: {k}={v!r}: must be non-negative")
        self._check_values(factory, params)

    def _check_values(self, factory, params):
        """Build the optimizer with every concrete value, so that a bad one (a negative learning rate,
        a beta above 1, a flag that is not a bool) fails here with the optimizer's own message, blamed
        on its field: each value is tried alone (other arguments at their defaults, required ones at
        values already checked), then with the fixed values and the first grid point."""
        swept = {k: vs for k, vs in self.grid if k not in PENALTIES}
        opt_fixed = {k: v for k, v in self.fixed if k not in PENALTIES}
        required = [k for k, p in params.items() if p.default is inspect.Parameter.empty]
        context = {k: swept[k][0] if k in swept else opt_fixed[k] for k in required}
        checks = [(k, "grid" if k in swept else "fixed") for k in required]
        checks += [(k, "fixed") for k in opt_fixed if k not in required]
        checks += [(k, "grid") for k in swept if k not in required]

        def build(field, k, v, **args):
            try:
                factory(**args)
            except (TypeError, ValueError) as err:
                message = " ".join(str(err).split())
                raise ValueError(f"SweepConfig.{field}: {k}={v!r}: {message}") from None

        for k, field in checks:
            for v in swept[k] if field == "grid" else (opt_fixed[k],):
                build(field, k, v, **{**context, k: v})
        first = {k: vs[0] for k, vs in swept.items()}
        for k, field in checks:  # together: a value may be refused only next to another one
            for v in swept[k] if field == "grid" else (opt_fixed[k],):
                build(field, k, v, **{**first, **opt_fixed, k: v})

    # --- derived quantities

    @property
    def grid_size(self) -> int:
        return math.prod(len(v) for _, v in self.grid)

    @property
    def runs(self) -> int:
        return self.grid_size * self.seeds

    def run_hparams(self) -> dict[str, np.ndarray]:
        """Swept name -> (runs,) float32 values, grid-major (first axis slowest), seed-minor."""
        points = list(itertools.product(*(v for _, v in self.grid)))
        return {k: np.repeat(np.asarray([p[i] for p in points], np.float32), self.seeds)
                for i, (k, _) in enumerate(self.grid)}

    def run_seeds(self) -> np.ndarray:
        """(runs,) int32 seed of each run."""
        return np.tile(np.arange(self.seeds, dtype=np.int32), self.grid_size)

    def logged_steps(self) -> np.ndarray:
        return np.arange(0, self.steps, self.log_every, dtype=np.int32)

    def eval_steps(self) -> np.ndarray:
        steps = set(range(0, self.steps + 1, self.eval_every)) | {self.steps}
        return np.asarray(sorted(steps), np.int32)

    # --- serialization

    def to_dict(self) -> dict:
        return {
            "problem": self.problem.to_dict(),
            "optimizer": self.optimizer,
            "grid": [[k, list(v)] for k, v in self.grid],
            "fixed": [[k, v] for k, v in self.fixed],
            "seeds": self.seeds, "steps": self.steps, "batch_size": self.batch_size,
            "eval_every": self.eval_every, "log_every": self.log_every, "name": self.name,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SweepConfig:
        if not isinstance(d, Mapping):
            raise ValueError(f"SweepConfig: expected a dict, got {type(d).__name__} {d!r}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"SweepConfig: unknown field(s) {', '.join(sorted(unknown))}")
        for field in ("problem", "optimizer", "grid"):
            if field not in d:
                got = ", ".join(sorted(d)) or "none"
                raise ValueError(f"SweepConfig.{field}: missing (got fields {got})")
        d = dict(d)
        if not isinstance(d["problem"], Mapping):
            raise ValueError(f"SweepConfig.problem: expected a dict, got {d['problem']!r}")
        d["problem"] = Problem.from_dict(d["problem"])
        try:
            d["grid"] = tuple((k, _axis_values(v)) for k, v in d["grid"])
        except (TypeError, ValueError):
            raise ValueError(f"SweepConfig.grid: expected [[name, [values...]], ...], "
                             f"got {d['grid']!r}") from None
        try:
            d["fixed"] = tuple((k, v) for k, v in d.get("fixed", ()))
        except (TypeError, ValueError):
            raise ValueError(f"SweepConfig.fixed: expected [[name, value], ...], "
                             f"got {d['fixed']!r}") from None
        return cls(**d)

    def hash(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of :meth:`to_dict`, the results format
        (:data:`lab.sweep.store.FORMAT_VERSION`) and ``lab.__version__``: results (and checkpoints) of
        another engine live under another name, so they are never reused."""
        import lab

        identity = {"config": self.to_dict(), "results_format": store.FORMAT_VERSION, "lab": lab.__version__}
        text = json.dumps(identity, sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _axis_values(values) -> tuple:
    """One grid axis as a tuple, unconverted (:func:`_normalize_grid` checks the values and names the
    field); a scalar (or a string) is a one-point axis."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | range):
        return (values,)
    return tuple(values)


def _normalize_grid(grid) -> tuple[tuple[str, tuple[float, ...]], ...]:
    if isinstance(grid, Mapping):
        grid = tuple(grid.items())
    try:
        axes = tuple((k, _axis_values(vs)) for k, vs in grid)
    except (TypeError, ValueError):
        raise ValueError(f"SweepConfig.grid: expected ((name, (values...)), ...), got {grid!r}") from None
    if not axes:
        raise ValueError("SweepConfig.grid: empty; sweep at least one hyperparameter (even one value)")
    names = [k for k, _ in axes]
    if len(set(names)) != len(names):
        raise ValueError(f"SweepConfig.grid: repeated names in {names}")
    out = []
    for k, values in axes:
        if not isinstance(k, str):
            raise ValueError(f"SweepConfig.grid: names must be strings, got {k!r}")
        if not values:
            raise ValueError(f"SweepConfig.grid: {k!r} has no values")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int | float | np.number) or not math.isfinite(v):
                raise ValueError(f"SweepConfig.grid: {k!r} values must be finite numbers, got {v!r}")
        as32 = np.asarray(values, np.float32)
        if len(np.unique(as32)) != len(as32):
            raise ValueError(f"SweepConfig.grid: {k!r} has repeated values (in float32) {values}")
        out.append((k, tuple(float(v) for v in values)))
    return tuple(out)


def _normalize_fixed(fixed) -> tuple[tuple[str, object], ...]:
    if isinstance(fixed, Mapping):
        fixed = tuple(fixed.items())
    out = []
    for k, v in fixed:
        if not isinstance(k, str):
            raise ValueError(f"SweepConfig.fixed: names must be strings, got {k!r}")
        if v is not None and not isinstance(v, bool | int | float | str):
            raise ValueError(f"SweepConfig.fixed: {k}={v!r}: only numbers, bools, strings and None")
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"SweepConfig.fixed: {k}={v!r} is not finite")
        out.append((k, v))
    if len({k for k, _ in out}) != len(out):
        raise ValueError(f"SweepConfig.fixed: repeated names in {[k for k, _ in out]}")
    return tuple(sorted(out))


# ----------------------------------------------------------------------------- the program


class RunState(NamedTuple):
    """Per-run state carried through the scan (a leading run axis is added by vmap)."""

    params: Any  # the model's params pytree, float32
    opt_state: Any  # the optimizer's state pytree (meaningless once the run is inactive)
    diverged_step: Array  # () int32, -1 while the run is healthy


class _Program(NamedTuple):
    init: Callable  # (hparams, seeds, data) -> (RunState, eval0 (runs, 3))
    chunk: Callable  # (RunState, start, hparams, seeds, data) -> (RunState, (runs, chunk), (runs, segs, 3))
    chunk_steps: int  # a multiple of segment_steps
    segment_steps: int  # evaluations happen at segment ends only


def _tree_where(cond: Array, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _all_finite(tree) -> Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


class _ProgramKey(NamedTuple):
    """What decides a sweep's program (beside the chunk length, run count, devices and x64 mode):
    the key of the compile cache. Grid values, fixed numeric values, ``log_every`` and ``name`` are
    not in it: they enter as arrays or only matter on the host."""

    problem: Problem
    optimizer: str
    arrays: tuple[str, ...]  # hyperparameters that enter as (runs,) float32 arrays, sorted
    static: tuple[tuple[str, object], ...]  # fixed flags, None and strings: they shape the program
    seeds: int  # the chunk draws each seed's batch permutations once
    steps: int
    batch_size: int | None  # None: full batch
    eval_every: int


def _is_array_value(value) -> bool:
    """A fixed value that enters the program as an array (a number), not as a static constant."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _program_key(config: SweepConfig) -> _ProgramKey:
    """The :class:`_ProgramKey` of ``config``."""
    n = load_data(config.problem).x_train.shape[0]
    fixed = dict(config.fixed)
    arrays = sorted([k for k, _ in config.grid] + [k for k, v in fixed.items() if _is_array_value(v)])
    static = tuple((k, v) for k, v in config.fixed if not _is_array_value(v))
    batch = None if config.batch_size is None or config.batch_size >= n else config.batch_size
    return _ProgramKey(config.problem, config.optimizer, tuple(arrays), static, config.seeds, config.steps,
                       batch, config.eval_every)


def _program_hparams(config: SweepConfig) -> dict[str, np.ndarray]:
    """Name -> (runs,) float32 value of every hyperparameter the program takes as an array: the swept
    ones and the fixed numbers (a fixed number is a one-value axis)."""
    hparams = config.run_hparams()
    for k, v in config.fixed:
        if _is_array_value(v):
            hparams[k] = np.full(config.runs, v, np.float32)
    return hparams


def _build_program(config: _ProgramKey, chunk_steps: int) -> _Program:
    """The per-run step, vmapped over runs and scanned over a chunk of steps (not yet jitted).

    A chunk is a scan over segments of ``segment_steps`` steps (see :func:`chunk_layout`); a segment
    is a scan over steps with no branch in it, followed by the whole-data-set evaluation when the
    segment ends at an evaluation step (one ``cond`` per segment, not one per step).
    """
    problem, steps = config.problem, config.steps
    chunk_steps, segment_steps = chunk_layout(chunk_steps, config.eval_every, steps)
    segments = chunk_steps // segment_steps
    n = load_data(problem).x_train.shape[0]
    full_batch = config.batch_size is None
    batch = n if full_batch else config.batch_size
    steps_per_epoch = n // batch
    # A chunk's steps touch at most this many epochs; their permutations are drawn at its start
    # (one sort per run and epoch, not one per step, and no branch inside the scan).
    epochs_per_chunk = (chunk_steps - 1) // steps_per_epoch + 2
    factory = optimizer_factory(config.optimizer)
    static_opt = dict(config.static)  # flags and None (penalties are numbers, so arrays)
    array_opt = [k for k in config.arrays if k not in PENALTIES]

    def optimizer(hp):
        return factory(**{k: hp[k] for k in array_opt}, **static_opt)

    def penalty(params, hp):
        total = jnp.zeros((), jnp.float32)
        for name, fn in (("l1", l1_penalty), ("l2", l2_penalty)):
            if name in hp:  # neither swept nor fixed: no penalty in the program
                total = total + hp[name] * fn(params)
        return total

    def objective(params, x, y, hp):
        loss = problem_loss(problem, params, x, y)
        return loss + penalty(params, hp), loss

    def evaluate(params, data: Dataset) -> Array:
        train_loss, _ = metrics(problem, params, data.x_train, data.y_train)
        test_loss, test_acc = metrics(problem, params, data.x_test, data.y_test)
        return jnp.stack([train_loss, test_loss, test_acc])  # (3,)

    def init_run(hp, seed, data):
        k_init, k_batch = jax.random.split(jax.random.key(seed))
        params = init_params(problem, k_init)
        del k_batch  # batches depend on the seed alone, so the chunk draws them per seed
        state = RunState(params, optimizer(hp).init(params), jnp.int32(-1))
        return state, evaluate(params, data)

    def epoch_perms(seed, first_epoch):
        """(epochs_per_chunk, n) permutations of epochs first_epoch, first_epoch + 1, ... of a seed."""
        k_batch = jax.random.split(jax.random.key(seed))[1]
        epochs = first_epoch + jnp.arange(epochs_per_chunk, dtype=jnp.int32)
        return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(k_batch, e), n))(epochs)

    def step_run(state: RunState, perms, seed, t, first_epoch, hp, data):
        params, opt_state, diverged_step = state
        if full_batch:
            x, y = data.x_train, data.y_train
        else:  # exactly lab.data.batch_indices(k_batch, t, n, batch)
            perm = perms[seed, t // steps_per_epoch - first_epoch]
            idx = jax.lax.dynamic_slice(perm, ((t % steps_per_epoch) * batch,), (batch,))
            x, y = data.x_train[idx], data.y_train[idx]
        (objective_value, loss), grads = jax.value_and_grad(objective, has_aux=True)(params, x, y, hp)
        updates, new_opt_state = optimizer(hp).update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        active = (t < steps) & (diverged_step < 0)
        finite = jnp.isfinite(objective_value) & _all_finite(new_params)
        ok = active & finite
        params = _tree_where(ok, new_params, params)
        # The optimizer state is not frozen: once a run is inactive (diverged, or past the last
        # step in the final chunk) it is never used again, and skipping its select saves a pass
        # over two to three copies of the params per step (about 9% of a step on a CPU).
        opt_state = new_opt_state
        diverged_step = jnp.where(active & ~finite, t, diverged_step)
        logged = jnp.where(active, loss, jnp.float32(jnp.nan))
        return RunState(params, opt_state, diverged_step), logged

    def init(hparams, seeds, data):
        return jax.vmap(init_run, in_axes=(0, 0, None))(hparams, seeds, data)

    def chunk(state, start, hparams, seeds, data):
        # Runs of one seed share their batches: draw each seed's permutations once, not once per
        # run (sorting is the costliest part of a step on a CPU otherwise).
        first_epoch = start // steps_per_epoch
        perms = None if full_batch else jax.vmap(epoch_perms, in_axes=(0, None))(
            jnp.arange(config.seeds, dtype=jnp.int32), first_epoch)  # (seeds, epochs, n)

        def step(state, t):
            return jax.vmap(step_run, in_axes=(0, None, 0, None, None, 0, None))(
                state, perms, seeds, t, first_epoch, hparams, data)

        def segment(state, seg_start):
            state, losses = jax.lax.scan(step, state, seg_start + jnp.arange(segment_steps, dtype=jnp.int32))
            end = seg_start + segment_steps
            # After the last step the state no longer changes, so the segment holding step `steps`
            # evaluates the final params.
            due = ((end % config.eval_every == 0) & (end <= steps)) | ((end >= steps) & (seg_start < steps))
            evals = jax.lax.cond(due, lambda p: jax.vmap(evaluate, in_axes=(0, None))(p, data),
                                 lambda p: jnp.full((runs, 3), jnp.nan, jnp.float32), state.params)
            evals = jnp.where(state.diverged_step[:, None] >= 0, jnp.nan, evals)
            return state, (losses, evals)

        runs = state.diverged_step.shape[0]
        starts = start + segment_steps * jnp.arange(segments, dtype=jnp.int32)
        state, (losses, evals) = jax.lax.scan(segment, state, starts)
        # (segments, segment_steps, runs) -> (runs, chunk_steps); (segments, runs, 3) -> (runs, segments, 3)
        return state, losses.reshape(chunk_steps, runs).T, jnp.swapaxes(evals, 0, 1)

    return _Program(init, chunk, chunk_steps, segment_steps)


# ----------------------------------------------------------------------------- devices


def _mesh() -> Mesh:
    return Mesh(np.asarray(jax.devices()), ("runs",))


def _put(x: np.ndarray, sharding: NamedSharding) -> Array:
    """A global array from a host array every process holds in full (works across hosts)."""
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def _get(x: Array) -> np.ndarray:
    """A (possibly sharded, possibly multi-host) array as a host numpy copy."""
    if x.is_fully_addressable:
        return np.array(x, copy=True)
    from jax.experimental import multihost_utils

    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def _pad(x: np.ndarray, runs_padded: int) -> np.ndarray:
    """Pad the run axis with copies of run 0 (valid values, so padded runs cannot diverge oddly)."""
    extra = runs_padded - x.shape[0]
    return np.concatenate([x, np.repeat(x[:1], extra, axis=0)]) if extra else x


# ----------------------------------------------------------------------------- interruption


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep after its last finished chunk was saved; ``str(err)`` is one line."""


class _CtrlC:
    """While active, the first SIGINT only sets a flag (checked between chunks); a second one
    interrupts at once. Only installed in the main thread (signals cannot be caught elsewhere)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested = False
        self._previous = None

    def _handler(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


# ----------------------------------------------------------------------------- running


def result_dir(config: SweepConfig, store_dir: str = "results") -> str:
    """Where ``config``'s results live: ``<store_dir>/<name>-<hash>``."""
    return os.path.join(store_dir, f"{config.name}-{config.hash()}")


def default_chunk_steps(steps: int) -> int:
    return max(1, math.ceil(steps / TARGET_CHUNKS))


def chunk_layout(chunk_steps: int, eval_every: int, steps: int) -> tuple[int, int]:
    """``(chunk_steps, segment_steps)`` near the requested chunk length, so that every evaluation
    step below ``steps`` ends a segment (chunks start at multiples of ``chunk_steps``)."""
    if eval_every >= steps:  # the only evaluation is at the end: no constraint
        return chunk_steps, chunk_steps
    if chunk_steps >= eval_every:
        return eval_every * (chunk_steps // eval_every), eval_every
    divisor = max(d for d in range(1, chunk_steps + 1) if eval_every % d == 0)
    segment = divisor if 2 * divisor >= chunk_steps else eval_every
    return segment, segment


def run_sweep(config: SweepConfig, *, store_dir: str | None = "results", force: bool = False,
              quiet: bool = False, keep_params: bool = False, chunk_steps: int | None = None
              ) -> SweepResult:
    """Run ``config`` (or load its saved results) and return a :class:`SweepResult`.

    Args:
        config: the sweep.
        store_dir: results are saved under ``<store_dir>/<name>-<hash>/``; a finished sweep there is
            loaded instead of rerun, an unfinished one resumes from its checkpoint. ``None``: no
            files at all (no reuse, no checkpoints).
        force: rerun even if finished results (or a checkpoint) exist.
        quiet: no progress bar.
        keep_params: also return (and save) every run's final params.
        chunk_steps: about this many steps per compiled chunk (default ``ceil(steps / 20)``; adjusted
            by :func:`chunk_layout` so that evaluations fall on segment ends). It changes neither the
            results nor the directory; a resumed sweep keeps the chunk length it started with.

    Raises:
        SweepInterrupted: after Ctrl-C, once the last finished chunk is saved (a subclass of
            ``KeyboardInterrupt``; its message is one line saying how to resume). Ctrl-C while
            compiling or initializing (or a second Ctrl-C during a chunk) raises it too, saying
            what is saved: nothing before the first checkpoint, else the checkpoint on disk.
    """
    directory = None if store_dir is None else result_dir(config, store_dir)
    if directory is not None and not force and store.is_complete(directory):
        result = store.load(directory)
        if keep_params and result.final_params is None:
            force = True  # saved without params: rerun to get them
        else:
            if jax.process_index() == 0:  # a checkpoint or *.tmp files left by a killed run
                store.remove_leftovers(directory, checkpoint=True)
            return result
    t_session = time.perf_counter()
    chunk_steps = chunk_steps or default_chunk_steps(config.steps)
    if not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ValueError(f"run_sweep: chunk_steps must be a positive integer, got {chunk_steps!r}")
    saved = {"step": None, "looping": False}  # the step of the checkpoint on disk, if any
    try:
        checkpoint = None if store_dir is None else os.path.join(directory, store.CHECKPOINT_NPZ)
        if directory is not None and jax.process_index() == 0:
            store.remove_leftovers(directory)  # *.tmp files of a killed write
        if force and checkpoint is not None and os.path.exists(checkpoint):
            os.unlink(checkpoint)
        resuming = checkpoint is not None and os.path.exists(checkpoint)
        if resuming:  # a resumed sweep keeps its chunk boundaries
            try:
                meta = _checkpoint_meta(checkpoint)
                chunk_steps, saved["step"] = meta["chunk_steps"], meta["done"]
            # Unreadable (it is written atomically, so damaged since): start over.
            except Exception:  # noqa: BLE001
                os.unlink(checkpoint)
                resuming = False
        return _compute(config, directory, checkpoint, resuming, chunk_steps, quiet, keep_params, t_session,
                        saved)
    except SweepInterrupted:
        raise
    except KeyboardInterrupt:  # before the chunk loop (compiling, initializing), or a second Ctrl-C
        if saved["step"] is not None:
            where = f"its checkpoint at step {saved['step']}/{config.steps} in {directory} is kept; " \
                    f"run it again to resume"
        elif directory is None:
            where = "nothing saved (store_dir=None), nothing to resume"
        else:
            where = "nothing saved yet, nothing to resume; run it again to start over"
        when = "during a chunk" if saved["looping"] else "while compiling or initializing"
        raise SweepInterrupted(f"sweep {config.name!r} interrupted {when}; {where}") from None


def _compute(config, directory, checkpoint, resuming, chunk_steps, quiet, keep_params, t_session, saved):
    """The part of :func:`run_sweep` that computes; ``saved["step"]`` follows the checkpoint on disk."""
    chunk_steps, segment_steps = chunk_layout(chunk_steps, config.eval_every, config.steps)
    data = load_data(config.problem)

    mesh = _mesh()
    n_dev = mesh.devices.size
    runs = config.runs
    runs_padded = -(-runs // n_dev) * n_dev
    by_run, replicated = NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())
    hparams = {k: _put(_pad(v, runs_padded), by_run) for k, v in _program_hparams(config).items()}
    seeds = _put(_pad(config.run_seeds(), runs_padded), by_run)
    data = jax.tree.map(lambda a: _put(np.asarray(a), replicated), data)

    t0 = time.perf_counter()
    init_fn, chunk_fn, state_shape = _compile(_program_key(config), chunk_steps, runs_padded,
                                              tuple(mesh.devices.flat), _x64())
    compile_seconds = time.perf_counter() - t0  # about 0 when this process compiled it before

    logged_steps, eval_steps = config.logged_steps(), config.eval_steps()
    eval_index = {int(e): i for i, e in enumerate(eval_steps)}
    records = {
        "train_loss": np.full((runs, logged_steps.size), np.nan, np.float32),
        "evals": np.full((runs, eval_steps.size, 3), np.nan, np.float32),
    }
    done, previous_wall, previous_compile = 0, 0.0, 0.0
    if resuming:
        state, done, previous_wall, previous_compile = _load_checkpoint(
            checkpoint, config, state_shape, records, runs, runs_padded, by_run)
    else:
        state, eval0 = init_fn(hparams, seeds, data)
        records["evals"][:, 0] = _get(eval0)[:runs]

    from tqdm.auto import tqdm

    bar = tqdm(total=config.steps, initial=done, disable=quiet, unit="step", dynamic_ncols=True,
               desc=f"{config.name}: {config.optimizer}, {runs} runs", file=sys.stderr)
    saved["looping"] = True
    with bar, _CtrlC(enabled=checkpoint is not None) as ctrl_c:
        while done < config.steps:
            start = done
            state, losses, evals = chunk_fn(state, np.int32(start), hparams, seeds, data)
            t = np.arange(start, start + chunk_steps)
            valid = t < config.steps
            losses, evals = _get(losses)[:runs], _get(evals)[:runs]
            logged = valid & (t % config.log_every == 0)
            records["train_loss"][:, t[logged] // config.log_every] = losses[:, logged]
            for j in range(chunk_steps // segment_steps):
                seg_start, end = start + j * segment_steps, start + (j + 1) * segment_steps
                if seg_start < config.steps and (end % config.eval_every == 0 or end >= config.steps):
                    records["evals"][:, eval_index[min(end, config.steps)]] = evals[:, j]
            done = min(start + chunk_steps, config.steps)
            if checkpoint is not None and done < config.steps:
                wall = previous_wall + time.perf_counter() - t_session
                _save_checkpoint(checkpoint, config, state, records, done, runs, wall,
                                 previous_compile + compile_seconds, chunk_steps)
                saved["step"] = done
            bar.update(done - start)
            if ctrl_c.requested and done < config.steps:
                raise SweepInterrupted(
                    f"sweep {config.name!r} interrupted at step {done}/{config.steps}; "
                    f"saved in {directory}, run it again to resume")

    final_params = jax.tree.map(lambda a: _get(a)[:runs], state.params)
    diverged_step = _get(state.diverged_step)[:runs]
    stats = weight_stats(final_params)
    result = SweepResult(
        config=config,
        hparams=config.run_hparams(),
        seed=config.run_seeds(),
        logged_steps=logged_steps,
        train_loss=records["train_loss"],
        eval_steps=eval_steps,
        train_loss_eval=records["evals"][:, :, 0],
        test_loss=records["evals"][:, :, 1],
        test_accuracy=records["evals"][:, :, 2],
        diverged=diverged_step >= 0,
        diverged_step=diverged_step,
        final_params=final_params if keep_params else None,
        wall_seconds=previous_wall + time.perf_counter() - t_session,
        compile_seconds=previous_compile + compile_seconds,
        meta=_meta(runs_padded, chunk_steps),
        **stats,
    )
    if directory is not None:
        if jax.process_index() == 0:
            store.save(directory, result)
            result.path = directory
            if os.path.exists(checkpoint):
                os.unlink(checkpoint)
    return result


def _x64() -> bool:
    """Whether 64-bit mode is on (``jax.enable_x64``): it changes how a program traces, so it is part
    of the compile cache's key (the program itself is float32 either way)."""
    return bool(jax.config.read("jax_enable_x64"))


@functools.lru_cache(maxsize=8)
def _compile(key: _ProgramKey, chunk_steps: int, runs_padded: int, devices: tuple, x64: bool = False):
    """Compiled init and chunk programs for ``runs_padded`` runs, and the state's shapes; cached, so
    that rerunning a sweep (or one of the same shape) in a process compiles nothing."""
    program = _build_program(key, chunk_steps)
    mesh = Mesh(np.asarray(devices), ("runs",))
    by_run, replicated = NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())
    data = load_data(key.problem)
    data_spec = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), data)
    hp_spec = {k: jax.ShapeDtypeStruct((runs_padded,), jnp.float32) for k in key.arrays}
    seeds_spec = jax.ShapeDtypeStruct((runs_padded,), jnp.int32)
    init_fn = jax.jit(program.init, in_shardings=(by_run, by_run, replicated), out_shardings=by_run)
    init_fn = init_fn.lower(hp_spec, seeds_spec, data_spec).compile()
    state_shape = jax.eval_shape(program.init, hp_spec, seeds_spec, data_spec)[0]
    chunk_fn = jax.jit(program.chunk, in_shardings=(by_run, replicated, by_run, by_run, replicated),
                       out_shardings=by_run, donate_argnums=0)
    start_spec = jax.ShapeDtypeStruct((), jnp.int32)
    chunk_fn = chunk_fn.lower(state_shape, start_spec, hp_spec, seeds_spec, data_spec).compile()
    return init_fn, chunk_fn, state_shape


def weight_stats(params, bins: int = HIST_BINS) -> dict[str, np.ndarray]:
    """Per-run summaries of the weights (``"w"`` leaves) of params with a leading run axis.

    Returns ``weight_norm`` (runs,), ``near_zero_fraction`` (runs,), ``weight_hist`` (runs, bins)
    and ``hist_edges`` (runs, bins + 1): run ``r``'s ``bins`` equal bins over ``[-m_r, m_r]``,
    ``m_r`` the largest finite ``|w|`` of run ``r`` itself (1 if all its weights are 0), so a run's
    histogram does not depend on the other runs of its sweep. Bins are ``[e_i, e_{i+1})``, the last
    one closed; non-finite weights are not counted.
    """
    from lab.regularizers import weights

    w = np.concatenate([np.asarray(x).reshape(x.shape[0], -1) for x in weights(params)], axis=1)
    runs = w.shape[0]
    finite = np.isfinite(w)
    m = np.max(np.where(finite, np.abs(w), 0), axis=1, initial=0).astype(np.float32)
    m = np.where(m > 0, m, np.float32(1))
    edges = np.stack([np.linspace(-mr, mr, bins + 1, dtype=np.float32) for mr in m]).reshape(runs, bins + 1)
    hist = np.zeros((runs, bins), np.int32)
    for r in range(runs):
        idx = np.clip(np.searchsorted(edges[r], w[r][finite[r]], side="right") - 1, 0, bins - 1)
        hist[r] = np.bincount(idx, minlength=bins)
    return {
        "weight_norm": np.sqrt(np.sum(np.square(w.astype(np.float64)), axis=1)).astype(np.float32),
        "near_zero_fraction": np.mean(np.abs(w) < NEAR_ZERO, axis=1).astype(np.float32),
        "weight_hist": hist,
        "hist_edges": edges,
    }


def _meta(runs_padded: int, chunk_steps: int) -> dict:
    import platform

    import optax as _optax

    from lab import __version__

    device = jax.devices()[0]
    return {
        "versions": {"lab": __version__, "jax": jax.__version__, "jaxlib": jax.lib.__version__
                     if hasattr(jax.lib, "__version__") else jax.__version__,
                     "optax": _optax.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "device": {"platform": device.platform, "kind": device.device_kind,
                   "count": jax.device_count(), "processes": jax.process_count()},
        "runs_padded": runs_padded,
        "chunk_steps": chunk_steps,
    }


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(path, config, state, records, done, runs, wall, compile_seconds, chunk_steps):
    leaves = [_get(x)[:runs] for x in jax.tree.leaves(state)]
    meta = {"config_hash": config.hash(), "done": done, "wall_seconds": wall, "chunk_steps": chunk_steps,
            "compile_seconds": compile_seconds, "leaves": len(leaves)}
    arrays = {f"state.{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays.update({f"records.{k}": v for k, v in records.items()})
    arrays["meta"] = np.asarray(json.dumps(meta))
    store.save_npz(path, arrays, digest=False)  # written atomically: complete or absent


def _checkpoint_meta(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return json.loads(str(z["meta"]))


def _load_checkpoint(path, config, state_shape, records, runs, runs_padded, sharding):
    arrays = store.load_npz(path)
    meta = json.loads(str(arrays["meta"]))
    if meta["config_hash"] != config.hash():
        raise ValueError(f"checkpoint {path} belongs to another config; delete it or pass force=True")
    treedef = jax.tree.structure(state_shape)
    shapes = jax.tree.leaves(state_shape)
    if meta["leaves"] != len(shapes):
        raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
    leaves = []
    for i, spec in enumerate(shapes):
        leaf = _pad(arrays[f"state.{i:05d}"], runs_padded)
        if leaf.shape != spec.shape or leaf.dtype != spec.dtype:
            raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
        leaves.append(_put(leaf, sharding))
    for k in records:
        records[k][...] = arrays[f"records.{k}"]
    return jax.tree.unflatten(treedef, leaves), meta["done"], meta["wall_seconds"], meta["compile_seconds"]
