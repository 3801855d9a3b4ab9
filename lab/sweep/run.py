"""Running a sweep: :func:`run_sweep` shards the runs over every process's devices in blocks that fit
a memory budget, calls the compiled program chunk by chunk, records losses and evaluations,
checkpoints on a wall-clock interval and at Ctrl-C (:class:`SweepInterrupted`), saves the result.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from lab import distributed, memory
from lab.interrupt import DeferredInterrupt
from lab.problems import load_data
from lab.sweep import program, store
from lab.sweep.config import SweepConfig
from lab.sweep.program import RunState, chunk_layout, default_chunk_steps, program_hparams, program_key
from lab.sweep.store import SweepResult
from lab.weight_stats import HIST_BINS, NEAR_ZERO, weight_stats

__all__ = ["CHECKPOINT_SECONDS", "HIST_BINS", "NEAR_ZERO", "SweepInterrupted", "run_sweep", "weight_stats"]

CHECKPOINT_SECONDS = 30.0  # default time between checkpoints (0: after every chunk)
_STATS = ("diverged_step", "weight_norm", "near_zero_fraction", "weight_hist", "hist_edges")


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep after its last finished chunk was saved; ``str(err)`` is one line."""


@dataclass
class _Progress:
    """How far a sweep got: what the Ctrl-C message says, and the time of earlier sessions."""

    saved: tuple[int, int] | None = None  # (block, step) of the checkpoint on disk, None if there is none
    block_runs: int = 0  # runs per block, 0 until planned
    looping: bool = False  # in the chunk loop (else compiling or initializing)
    wall_seconds: float = 0.0  # earlier sessions of a resumed sweep
    compile_seconds: float = 0.0  # earlier sessions, plus this one's once it compiled


class _Sweep(NamedTuple):
    """One call of :func:`run_sweep`: what it computes and where it saves."""

    config: SweepConfig
    directory: str | None  # <store_dir>/<name>-<hash>, None: no files
    checkpoint: str | None  # <directory>/checkpoint.npz
    block_runs: int | None  # runs per block; None: not planned yet (a resumed sweep keeps its own)
    chunk_steps: int  # steps per compiled chunk, a multiple of segment_steps
    segment_steps: int  # evaluations fall on segment ends
    records: dict[str, np.ndarray]  # train_loss (runs, logged), evals (runs, evaluations, 3); NaN until done
    finished: dict[str, np.ndarray]  # _STATS and final params ("params.00000", ...) of finished blocks
    progress: _Progress
    t_session: float  # time.perf_counter() when this session started
    quiet: bool
    keep_params: bool
    checkpoint_seconds: float
    budget: int  # bytes per device


def run_sweep(config: SweepConfig, *, store_dir: str | None = "results", force: bool = False,
              quiet: bool = False, keep_params: bool = False, chunk_steps: int | None = None,
              checkpoint_seconds: float | None = None, memory_budget: int | str | None = None) -> SweepResult:
    """Run ``config`` (or load its saved results) and return a :class:`SweepResult`.

    Args:
        config: the sweep.
        store_dir: results are saved under ``<store_dir>/<name>-<hash>/``; a finished sweep there is
            loaded instead of rerun, an unfinished one resumes from its checkpoint. ``None``: no
            files at all (no reuse, no checkpoints). With several processes, a directory that every
            process sees.
        force: rerun even if finished results (or a checkpoint) exist.
        quiet: no progress bar (processes other than process 0 never show one).
        keep_params: also return (and save) every run's final params.
        chunk_steps: about this many steps per compiled chunk (default ``ceil(steps / 20)``; adjusted
            by :func:`lab.sweep.program.chunk_layout` so that evaluations fall on segment ends). It
            changes neither the results nor the directory; a resumed sweep keeps the chunk length it
            started with.
        checkpoint_seconds: checkpoint after the first chunk that ends at least this long (wall
            clock) after the last checkpoint (0: after every chunk), and always at Ctrl-C. Default
            :data:`CHECKPOINT_SECONDS` (30 s).
        memory_budget: bytes (or ``"512M"``, ``"4G"``) that one device may hold for the compiled
            program; a sweep that needs more runs in blocks of runs that reuse one program. Default:
            :func:`lab.memory.budget_bytes`.

    Raises:
        ValueError: ``config.batch_size`` is larger than the training set, ``chunk_steps``,
            ``checkpoint_seconds`` or ``memory_budget`` is not valid (before anything is compiled
            or written), or the processes do not see the same files in ``store_dir``.
        SweepInterrupted: after Ctrl-C, once the last finished chunk is saved (a subclass of
            ``KeyboardInterrupt``; its message is one line saying how to resume). Ctrl-C while
            compiling or initializing (or a second Ctrl-C during a chunk) raises it too, saying
            what is saved: nothing before the first checkpoint, else the checkpoint on disk.
        RuntimeError: with several processes, a collective failed (another process died).
    """
    config.check_batch_size(load_data(config.problem).x_train.shape[0])
    chunk_steps = chunk_steps or default_chunk_steps(config.steps)
    if not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ValueError(f"run_sweep: chunk_steps must be a positive integer, got {chunk_steps!r}")
    seconds = CHECKPOINT_SECONDS if checkpoint_seconds is None else checkpoint_seconds
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds >= 0:
        raise ValueError(f"run_sweep: checkpoint_seconds must be a number >= 0, got {seconds!r}")
    budget = memory.budget_bytes(memory_budget)
    directory = None if store_dir is None else store.result_dir(config, store_dir)
    complete = directory is not None and not force and store.is_complete(directory)
    shared = f"store_dir must be a directory that every process sees: the results in {directory}"
    distributed.agree([complete], shared)
    if complete:
        result = store.load(directory)
        if keep_params and result.final_params is None:
            force = True  # saved without params: rerun to get them
        else:
            if jax.process_index() == 0:  # a checkpoint or *.tmp files left by a killed run
                store.remove_leftovers(directory, checkpoint=True)
            return result
    t_session = time.perf_counter()
    progress = _Progress()
    try:
        checkpoint = None if directory is None else os.path.join(directory, store.CHECKPOINT_NPZ)
        block_runs = None
        if checkpoint is not None:
            if jax.process_index() == 0:
                _tidy(directory, checkpoint, force)
            distributed.barrier("lab.sweep.tidy")
            if os.path.exists(checkpoint):  # a resumed sweep keeps its chunk length and blocks
                chunk_steps, block_runs, progress = _checkpoint_progress(checkpoint)
            distributed.agree([chunk_steps, block_runs or 0, *(progress.saved or (-1, -1))], shared)
        chunk_steps, segment_steps = chunk_layout(chunk_steps, config.eval_every, config.steps)
        records = {
            "train_loss": np.full((config.runs, config.logged_steps().size), np.nan, np.float32),
            "evals": np.full((config.runs, config.eval_steps().size, 3), np.nan, np.float32),
        }
        return _compute(_Sweep(config, directory, checkpoint, block_runs, chunk_steps, segment_steps, records,
                               {}, progress, t_session, quiet, keep_params, float(seconds), budget))
    except SweepInterrupted:
        raise
    except KeyboardInterrupt:  # before the chunk loop (compiling, initializing), or a second Ctrl-C
        if progress.saved is not None:
            where = f"its checkpoint at {_position(config, progress)} in {directory} is kept; " \
                    f"run it again to resume"
        elif directory is None:
            where = "nothing saved (store_dir=None), nothing to resume"
        else:
            where = "nothing saved yet, nothing to resume; run it again to start over"
        when = "during a chunk" if progress.looping else "while compiling or initializing"
        raise SweepInterrupted(f"sweep {config.name!r} interrupted {when}; {where}") from None
    except jax.errors.JaxRuntimeError as err:
        if jax.process_count() == 1:
            raise
        saved = "nothing saved" if progress.saved is None else \
            f"start every process again to resume from {_position(config, progress)} in {directory}"
        raise RuntimeError(f"sweep {config.name!r}: an operation across processes failed, most likely "
                           f"because another process died ({str(err).splitlines()[0]}); {saved}") from err


def _tidy(directory: str, checkpoint: str, force: bool) -> None:
    """Process 0, before the others look: remove *.tmp files of a killed write, and the checkpoint if
    ``force`` or if it cannot be read (it is written atomically, so damaged since: start over)."""
    store.remove_leftovers(directory)
    if os.path.exists(checkpoint):
        try:
            _checkpoint_progress(checkpoint)  # raises if damaged, or written by an older engine
        except Exception:  # noqa: BLE001
            force = True
        if force:
            os.unlink(checkpoint)


def _compute(sweep: _Sweep) -> SweepResult:
    """The part of :func:`run_sweep` that computes; ``sweep.progress`` follows the checkpoint on disk."""
    config, progress, runs = sweep.config, sweep.progress, sweep.config.runs
    mesh = distributed.mesh()
    n_dev = mesh.devices.size
    by_run, replicated = NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())
    data = jax.tree.map(lambda a: distributed.put(np.asarray(a), replicated), load_data(config.problem))

    t0 = time.perf_counter()
    block_runs, (init_fn, chunk_fn, state_shape) = _plan(sweep, n_dev)
    progress.compile_seconds += time.perf_counter() - t0  # about 0 when this process compiled it before
    sweep, progress.block_runs = sweep._replace(block_runs=block_runs), block_runs
    blocks, padded = math.ceil(runs / block_runs), math.ceil(block_runs / n_dev) * n_dev
    hparams_all, seeds_all = program_hparams(config), config.run_seeds()
    first, done = progress.saved or (0, 0)
    resumed = _load_checkpoint(sweep, state_shape, padded, by_run) if progress.saved else None

    from tqdm.std import tqdm  # a text bar on stderr, in a terminal and in a notebook (no widgets needed)

    in_blocks = f" in {blocks} blocks" if blocks > 1 else ""
    bar = tqdm(total=config.steps * blocks, initial=first * config.steps + done, unit="step",
               disable=sweep.quiet or jax.process_index() != 0, dynamic_ncols=True, file=sys.stderr,
               desc=f"{config.name}: {config.optimizer}, {runs} runs{in_blocks}")
    last_save = time.monotonic()
    with bar, DeferredInterrupt(enabled=sweep.checkpoint is not None) as ctrl_c:
        for block in range(first, blocks):
            rows = slice(block * block_runs, min(runs, (block + 1) * block_runs))
            n = rows.stop - rows.start
            hparams = {k: distributed.put(_pad(v[rows], padded), by_run) for k, v in hparams_all.items()}
            seeds = distributed.put(_pad(seeds_all[rows], padded), by_run)
            if block == first and resumed is not None:
                state = resumed
            else:
                state, eval0 = init_fn(hparams, seeds, data)
                sweep.records["evals"][rows, 0] = distributed.host_array(eval0)[:n]
                done = 0
            progress.looping = True
            while done < config.steps:
                start = done
                state, losses, evals = chunk_fn(state, np.int32(start), hparams, seeds, data)
                losses, evals = distributed.host_array(losses)[:n], distributed.host_array(evals)[:n]
                _record(sweep, rows, start, losses, evals)
                done = min(start + sweep.chunk_steps, config.steps)
                bar.update(done - start)
                if done == config.steps:  # the block is finished: keep what the result needs of it
                    _finish_block(sweep, rows, state)
                    state = None
                    if block + 1 == blocks:
                        break
                if sweep.checkpoint is None:
                    continue
                # Stop at Ctrl-C of any process, save then or when due by process 0's clock: all alike.
                due = time.monotonic() - last_save >= sweep.checkpoint_seconds
                table = distributed.gather([ctrl_c.requested, due])
                stop = bool(table[:, 0].any())
                if stop or table[0, 1]:
                    _save_checkpoint(sweep, state, *((block + 1, 0) if state is None else (block, done)))
                    last_save = time.monotonic()
                    stop = stop or (ctrl_c.requested and jax.process_count() == 1)  # Ctrl-C while saving
                if stop:
                    where = _position(config, progress)
                    raise SweepInterrupted(f"sweep {config.name!r} interrupted at {where}; "
                                           f"saved in {sweep.directory}, run it again to resume")

    finished, tree = sweep.finished, jax.tree.structure(state_shape.params)
    final_params = jax.tree.unflatten(tree, [finished[f"params.{i:05d}"] for i in range(tree.num_leaves)]) \
        if sweep.keep_params else None
    result = SweepResult(
        config=config,
        hparams=config.run_hparams(),
        seed=config.run_seeds(),
        logged_steps=config.logged_steps(),
        train_loss=sweep.records["train_loss"],
        eval_steps=config.eval_steps(),
        train_loss_eval=sweep.records["evals"][:, :, 0],
        test_loss=sweep.records["evals"][:, :, 1],
        test_accuracy=sweep.records["evals"][:, :, 2],
        diverged=finished["diverged_step"] >= 0,
        final_params=final_params,
        wall_seconds=_wall_seconds(sweep),
        compile_seconds=progress.compile_seconds,
        meta=_meta(padded, sweep.chunk_steps, blocks, block_runs),
        **{k: finished[k] for k in _STATS},
    )
    if sweep.directory is not None:
        if jax.process_index() == 0:
            store.save(sweep.directory, result)
            if os.path.exists(sweep.checkpoint):
                os.unlink(sweep.checkpoint)
        distributed.barrier("lab.sweep.saved")  # every process returns once the results are in place
        result.path = sweep.directory
    return result


def _plan(sweep: _Sweep, n_dev: int) -> tuple[int, tuple]:
    """``(runs per block, compiled program)``: all runs if their program fits the memory budget of a
    device, else as many as fit (:func:`lab.memory.runs_per_block`); a resumed sweep keeps its own."""
    config = sweep.config
    key, devices = program_key(config), tuple(distributed.mesh().devices.flat)
    x64 = bool(jax.config.read("jax_enable_x64"))  # it changes how the program traces: part of the key

    def compile_for(block_runs):
        padded = math.ceil(block_runs / n_dev) * n_dev
        return program.compile_program(key, sweep.chunk_steps, padded, devices, x64)

    if sweep.block_runs is not None:
        return sweep.block_runs, compile_for(sweep.block_runs)
    compiled = compile_for(config.runs)
    block_runs = memory.runs_per_block(config.runs, n_dev, memory.program_bytes(*compiled[:2]), sweep.budget)
    block_runs = int(distributed.gather([block_runs])[:, 0].min())  # processes may see other budgets
    return block_runs, compiled if block_runs == config.runs else compile_for(block_runs)


def _position(config: SweepConfig, progress: _Progress) -> str:  # step 15/40 (of block 2/3)
    block, step = progress.saved
    blocks = math.ceil(config.runs / progress.block_runs) if progress.block_runs else 1
    return f"step {step}/{config.steps}" + (f" of block {block + 1}/{blocks}" if blocks > 1 else "")


def _record(sweep: _Sweep, rows: slice, start: int, losses: np.ndarray, evals: np.ndarray) -> None:
    """File a chunk's outputs for the runs ``rows``, (runs, chunk_steps) losses and (runs, segments, 3)
    evaluations, into ``sweep.records``: logged steps and evaluation steps only, none past the end."""
    config, chunk_steps, segment_steps = sweep.config, sweep.chunk_steps, sweep.segment_steps
    eval_index = {int(e): i for i, e in enumerate(config.eval_steps())}
    t = np.arange(start, start + chunk_steps)
    logged = (t < config.steps) & (t % config.log_every == 0)
    sweep.records["train_loss"][rows, t[logged] // config.log_every] = losses[:, logged]
    for j in range(chunk_steps // segment_steps):
        seg_start, end = start + j * segment_steps, start + (j + 1) * segment_steps
        if seg_start < config.steps and (end % config.eval_every == 0 or end >= config.steps):
            sweep.records["evals"][rows, eval_index[min(end, config.steps)]] = evals[:, j]


def _finish_block(sweep: _Sweep, rows: slice, state: RunState) -> None:
    """File the final params' summaries (and the params, if kept) of a finished block's runs: the
    params they are evaluated at (the optimizer's ``eval_params``, if it has one)."""
    n, evaluated = rows.stop - rows.start, program.eval_params_fn(program_key(sweep.config))
    params = state.params if evaluated is None else evaluated(state.opt_state, state.params)
    params = jax.tree.map(lambda a: distributed.host_array(a)[:n], params)
    stats = {"diverged_step": distributed.host_array(state.diverged_step)[:n], **weight_stats(params)}
    if sweep.keep_params:
        stats.update({f"params.{i:05d}": leaf for i, leaf in enumerate(jax.tree.leaves(params))})
    for k, v in stats.items():
        if k not in sweep.finished:
            sweep.finished[k] = np.zeros((sweep.config.runs, *v.shape[1:]), v.dtype)
        sweep.finished[k][rows] = v


def _wall_seconds(sweep: _Sweep) -> float:  # over every session so far
    return sweep.progress.wall_seconds + time.perf_counter() - sweep.t_session


def _meta(runs_padded: int, chunk_steps: int, blocks: int, block_runs: int) -> dict:
    from lab import __version__  # the package's version (lab imports this module first)

    device, jaxlib = jax.devices()[0], getattr(jax.lib, "__version__", jax.__version__)
    versions = {"lab": __version__, "jax": jax.__version__, "jaxlib": jaxlib, "optax": optax.__version__,
                "numpy": np.__version__, "python": platform.python_version()}
    return {"versions": versions, "device": {"platform": device.platform, "kind": device.device_kind,
                                             "count": jax.device_count(), "processes": jax.process_count()},
            "runs_padded": runs_padded, "chunk_steps": chunk_steps, "blocks": blocks,
            "block_runs": block_runs}


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(sweep: _Sweep, state: RunState | None, block: int, done: int) -> None:
    """Write the state of block ``block`` after ``done`` steps (None: the block is to start), the
    records so far and what is kept of finished blocks (atomically: complete or absent); only
    process 0 writes, every process gathers."""
    rows = min(sweep.config.runs - block * sweep.block_runs, sweep.block_runs)
    leaves = [] if state is None else [distributed.host_array(x)[:rows] for x in jax.tree.leaves(state)]
    meta = {"config_hash": sweep.config.hash(), "block": block, "done": done, "block_runs": sweep.block_runs,
            "wall_seconds": _wall_seconds(sweep), "chunk_steps": sweep.chunk_steps,
            "compile_seconds": sweep.progress.compile_seconds, "leaves": len(leaves)}
    arrays = {f"state.{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays.update({f"records.{k}": v for k, v in sweep.records.items()})
    arrays.update({f"finished.{k}": v for k, v in sweep.finished.items()})
    arrays["meta"] = np.asarray(json.dumps(meta))
    if jax.process_index() == 0:
        store.save_npz(sweep.checkpoint, arrays, digest=False)
    sweep.progress.saved = (block, done)


def _checkpoint_progress(path: str) -> tuple[int, int, _Progress]:
    """The chunk length, the runs per block and the progress recorded in the checkpoint at ``path``."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    return meta["chunk_steps"], meta["block_runs"], _Progress(
        (meta["block"], meta["done"]), meta["block_runs"], wall_seconds=meta["wall_seconds"],
        compile_seconds=meta["compile_seconds"])


def _load_checkpoint(sweep: _Sweep, state_shape, padded: int, sharding: NamedSharding) -> RunState | None:
    """The state saved in ``sweep.checkpoint``, sharded (None at the start of a block); its records and
    finished blocks are copied into ``sweep``."""
    path = sweep.checkpoint
    arrays = store.load_npz(path)
    meta = json.loads(str(arrays["meta"]))
    if meta["config_hash"] != sweep.config.hash():
        raise ValueError(f"checkpoint {path} belongs to another config; delete it or pass force=True")
    for k in sweep.records:
        sweep.records[k][...] = arrays[f"records.{k}"]
    sweep.finished.update({k[len("finished."):]: v for k, v in arrays.items() if k.startswith("finished.")})
    if meta["leaves"] == 0:
        return None
    shapes = jax.tree.leaves(state_shape)
    if meta["leaves"] != len(shapes):
        raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
    leaves = []
    for i, spec in enumerate(shapes):
        leaf = _pad(arrays[f"state.{i:05d}"], padded)
        if leaf.shape != spec.shape or leaf.dtype != spec.dtype:
            raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
        leaves.append(distributed.put(leaf, sharding))
    return jax.tree.unflatten(jax.tree.structure(state_shape), leaves)


def _pad(x: np.ndarray, runs_padded: int) -> np.ndarray:
    """Pad the run axis with copies of run 0 (valid values: padded runs cannot diverge oddly)."""
    return np.concatenate([x, np.repeat(x[:1], runs_padded - x.shape[0], axis=0)])
