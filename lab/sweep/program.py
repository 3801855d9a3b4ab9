"""The compiled program of a sweep: the per-run step, ``vmap``-ped over runs and ``scan``-ned over a
chunk of steps, its chunk layout, and a compile cache keyed on what shapes the program
(:class:`ProgramKey`), so that sweeps that differ only in values reuse it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lab.data import Dataset
from lab.problems import Problem, check_model, data_loss, init_params, load_data, metrics
from lab.regularizers import l1_penalty, l2_penalty
from lab.sweep import schedules
from lab.sweep.config import (
    NOT_OPTIMIZER_ARGS,
    SweepConfig,
    is_array_value,
    optimizer_eval_params,
    optimizer_factory,
)

Array = jax.Array

__all__ = ["Program", "ProgramKey", "RunState", "build_program", "chunk_layout", "clear_compile_cache",
           "compile_program", "default_chunk_steps", "eval_params_fn", "program_hparams", "program_key"]

TARGET_CHUNKS = 20  # default number of chunks (progress updates and checkpoints) per sweep


class RunState(NamedTuple):
    """Per-run state carried through the scan (a leading run axis is added by vmap)."""

    params: Any  # the model's params pytree, float32
    opt_state: Any  # the optimizer's state pytree (meaningless once the run is inactive)
    diverged_step: Array  # () int32, -1 while the run is healthy


class Program(NamedTuple):
    """A sweep's two functions, not yet jitted."""

    init: Callable  # (hparams, seeds, data) -> (RunState, eval0 (runs, 3))
    chunk: Callable  # (RunState, start, hparams, seeds, data) -> (RunState, (runs, chunk), (runs, segs, 3))


class ProgramKey(NamedTuple):
    """What decides a sweep's program (beside the chunk length, run count, devices and x64 mode):
    the key of the compile cache. Grid values, fixed numeric values, ``log_every`` and ``name`` are
    not in it: they enter as arrays or only matter on the host."""

    problem: Problem
    optimizer: str  # a lab.specs.Spec: compares as its string, so its identity is the next field
    identity: tuple[str, ...]  # SweepConfig.identity: the optimizer's, model's and data's source
    arrays: tuple[str, ...]  # hyperparameters that enter as (runs,) float32 arrays, sorted (clip.max_norm
    # among them clips the gradients)
    static: tuple[tuple[str, object], ...]  # fixed flags, None and strings: they shape the program
    seeds: int  # the chunk draws each seed's batch permutations once
    steps: int
    batch_size: int | None  # None: full batch
    eval_every: int
    schedule: str = schedules.DEFAULT  # the kind; its numbers are among the arrays
    first_seed: int = 0  # the seeds are first_seed .. first_seed + seeds - 1


def program_key(config: SweepConfig) -> ProgramKey:
    """The :class:`ProgramKey` of ``config``; checks the model against the data first (one-line
    ``ValueError`` naming ``Problem.model``), before anything is compiled."""
    n = load_data(config.problem).x_train.shape[0]
    check_model(config.problem)
    optimizer_factory(config.optimizer)  # imported now if read from saved results (and unchanged)
    arrays = sorted(program_hparams(config))
    static = tuple((k, v) for k, v in config.fixed if not is_array_value(v))
    batch = None if config.batch_size is None or config.batch_size >= n else config.batch_size
    return ProgramKey(config.problem, config.optimizer, config.identity, tuple(arrays), static, config.seeds,
                      config.steps, batch, config.eval_every, config.schedule, config.first_seed)


def program_hparams(config: SweepConfig) -> dict[str, np.ndarray]:
    """Name -> (runs,) float32 value of every hyperparameter the program takes as an array: the swept
    ones, the fixed numbers (a fixed number is a one-value axis) and the defaults of the schedule's
    numbers that are neither."""
    hparams = config.run_hparams()
    fixed = {k: v for k, v in config.fixed if is_array_value(v)}
    for k, v in (schedules.defaults(config.schedule, config.steps) | fixed).items():
        if k not in hparams:
            hparams[k] = np.full(config.runs, v, np.float32)
    return hparams


# ----------------------------------------------------------------------------- chunk layout


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


# ----------------------------------------------------------------------------- the program


def _tree_where(cond: Array, a, b):
    return jax.tree.map(lambda x, y: jnp.where(cond, x, y), a, b)


def _all_finite(tree) -> Array:
    # isfinite(sum(x * 0)): 0 * x is 0 for a finite x and NaN for inf or NaN, and a sum keeps a NaN,
    # so this is all(isfinite(x)) in one float reduction per leaf instead of a bool array reduced
    # in two passes. (A max would not do: XLA's CPU reductions can drop a NaN from a max.)
    leaves = [jnp.isfinite(jnp.sum(x * 0)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


def build_program(config: ProgramKey, chunk_steps: int) -> Program:
    """The per-run step, vmapped over runs and scanned over a chunk of steps (not yet jitted).

    ``chunk_steps`` must be a chunk length of :func:`chunk_layout`. A chunk is a scan over segments
    of ``segment_steps`` steps; a segment is a scan over steps with no branch in it, followed by the
    whole-data-set evaluation when the segment ends at an evaluation step (one ``cond`` per
    segment, not one per step).
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
    array_opt = [k for k in config.arrays if k not in NOT_OPTIMIZER_ARGS]
    eval_params = optimizer_eval_params(config.optimizer)
    clipped = schedules.CLIP_MAX_NORM in config.arrays

    def optimizer(hp):
        return factory(**{k: hp[k] for k in array_opt}, **static_opt)

    def penalty(params, hp):
        total = jnp.zeros((), jnp.float32)
        for name, fn in (("l1", l1_penalty), ("l2", l2_penalty)):
            if name in hp:  # neither swept nor fixed: no penalty in the program
                total = total + hp[name] * fn(params)
        return total

    def objective(params, x, y, hp):
        loss = data_loss(problem, params, x, y)
        return loss + penalty(params, hp), loss

    def evaluate(params, data: Dataset) -> Array:
        train_loss, _ = metrics(problem, params, data.x_train, data.y_train)
        test_loss, test_acc = metrics(problem, params, data.x_test, data.y_test)
        return jnp.stack([train_loss, test_loss, test_acc])  # (3,)

    def evaluated(state: RunState):
        """The params a run is evaluated at: its optimizer's eval_params, or the params themselves."""
        return state.params if eval_params is None else eval_params(state.opt_state, state.params)

    def init_run(hp, seed, data):
        k_init, k_batch = jax.random.split(jax.random.key(seed))
        params = init_params(problem, k_init)
        del k_batch  # batches depend on the seed alone, so the chunk draws them per seed
        state = RunState(params, optimizer(hp).init(params), jnp.int32(-1))
        return state, evaluate(evaluated(state), data)

    def epoch_perms(seed, first_epoch):
        """(epochs_per_chunk, n) permutations of epochs first_epoch, first_epoch + 1, ... of a seed."""
        k_batch = jax.random.split(jax.random.key(seed))[1]
        epochs = first_epoch + jnp.arange(epochs_per_chunk, dtype=jnp.int32)
        return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(k_batch, e), n))(epochs)

    def step_run(state: RunState, batches, seed, t, hp, data):
        params, opt_state, diverged_step = state
        if full_batch:
            x, y = data.x_train, data.y_train
        else:  # exactly lab.data.batch_indices(k_batch, t, n, batch)
            idx = batches[seed - config.first_seed]
            x, y = data.x_train[idx], data.y_train[idx]
        (objective_value, loss), grads = jax.value_and_grad(objective, has_aux=True)(params, x, y, hp)
        if clipped:
            grads = schedules.clip(grads, hp[schedules.CLIP_MAX_NORM])
        opt = optimizer(hp)
        # Optimizers that take extra arguments get the objective's value (Polyak's step size needs
        # it); the others, and the transforms of a chain that do not use it, never see it.
        extra = {"value": objective_value} if isinstance(opt, optax.GradientTransformationExtraArgs) else {}
        updates, new_opt_state = opt.update(grads, opt_state, params, **extra)
        if config.schedule != schedules.DEFAULT:  # a factor on the update at step t (optax's count)
            updates = schedules.scale(updates, schedules.multiplier(config.schedule, hp, t))
        new_params = optax.apply_updates(params, updates)
        active = (t < steps) & (diverged_step < 0)
        finite = jnp.isfinite(objective_value) & _all_finite(new_params)
        ok = active & finite
        params = _tree_where(ok, new_params, params)
        # The optimizer state is not frozen: once a run is inactive (diverged, or past the last
        # step in the final chunk) it is never used again, and skipping its select saves a pass
        # over two to three copies of the params per step (about 9% of a step on a CPU). Runs evaluated
        # at their eval_params need it: it holds the evaluated point.
        opt_state = new_opt_state if eval_params is None else _tree_where(ok, new_opt_state, opt_state)
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
            config.first_seed + jnp.arange(config.seeds, dtype=jnp.int32), first_epoch)  # (seeds, epochs, n)

        def step(state, t):
            # Step t's batch of every seed, (seeds, batch), sliced before a run picks its seed: indexed
            # inside the vmap, the permutations were gathered whole for every run at every step.
            epoch = t // steps_per_epoch - first_epoch
            batches = None if full_batch else jax.lax.dynamic_slice_in_dim(
                jax.lax.dynamic_index_in_dim(perms, epoch, axis=1, keepdims=False),
                (t % steps_per_epoch) * batch, batch, axis=1)
            return jax.vmap(step_run, in_axes=(0, None, 0, None, 0, None))(
                state, batches, seeds, t, hparams, data)

        def segment(state, seg_start):
            state, losses = jax.lax.scan(step, state, seg_start + jnp.arange(segment_steps, dtype=jnp.int32))
            end = seg_start + segment_steps
            # After the last step the state no longer changes, so the segment holding step `steps`
            # evaluates the final params.
            due = ((end % config.eval_every == 0) & (end <= steps)) | ((end >= steps) & (seg_start < steps))
            evals = jax.lax.cond(due, lambda s: jax.vmap(lambda r: evaluate(evaluated(r), data))(s),
                                 lambda s: jnp.full((runs, 3), jnp.nan, jnp.float32), state)
            evals = jnp.where(state.diverged_step[:, None] >= 0, jnp.nan, evals)
            return state, (losses, evals)

        runs = state.diverged_step.shape[0]
        starts = start + segment_steps * jnp.arange(segments, dtype=jnp.int32)
        state, (losses, evals) = jax.lax.scan(segment, state, starts)
        # (segments, segment_steps, runs) -> (runs, chunk_steps); (segments, runs, 3) -> (runs, segments, 3)
        return state, losses.reshape(chunk_steps, runs).T, jnp.swapaxes(evals, 0, 1)

    return Program(init, chunk)


# ----------------------------------------------------------------------------- compile cache


@functools.lru_cache(maxsize=8)
def compile_program(key: ProgramKey, chunk_steps: int, runs_padded: int, devices: tuple, x64: bool = False):
    """Compiled ``(init_fn, chunk_fn, state_shape)`` for ``runs_padded`` runs sharded over ``devices``
    (a one-axis mesh named ``"runs"``); cached, so that rerunning a sweep (or one of the same shape)
    in a process compiles nothing. ``x64``: whether ``jax_enable_x64`` is on (it changes how the
    program traces, so it is part of the key; the program is float32 either way)."""
    program = build_program(key, chunk_steps)
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


@functools.lru_cache(maxsize=8)
def eval_params_fn(key: ProgramKey) -> Callable | None:
    """``(opt_state, params) -> params`` over runs (jitted), the params a sweep's final params are
    saved at, when its optimizer has ``eval_params`` (see :func:`lab.sweep.config.optimizer_eval_params`);
    None otherwise: the params themselves."""
    eval_params = optimizer_eval_params(key.optimizer)
    return None if eval_params is None else jax.jit(jax.vmap(eval_params))


def clear_compile_cache() -> None:
    """Forget every compiled program, so that the next sweep compiles (and reports its compile time)."""
    compile_program.cache_clear()
    eval_params_fn.cache_clear()
