"""Running a sweep: :func:`run_sweep` shards the runs over the devices, calls the compiled program
chunk by chunk, records losses and evaluations, checkpoints between chunks, turns Ctrl-C into
:class:`SweepInterrupted` once the last chunk is saved, and saves the :class:`SweepResult`.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple

import jax
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from lab.problems import load_data
from lab.regularizers import weights
from lab.sweep import program, store
from lab.sweep.config import SweepConfig
from lab.sweep.program import RunState, chunk_layout, default_chunk_steps, program_hparams, program_key
from lab.sweep.store import SweepResult

Array = jax.Array

__all__ = ["HIST_BINS", "NEAR_ZERO", "SweepInterrupted", "run_sweep", "weight_stats"]

NEAR_ZERO = 1e-3  # |w| below this counts as a near-zero weight
HIST_BINS = 50


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep after its last finished chunk was saved; ``str(err)`` is one line."""


@dataclass
class _Progress:
    """How far a sweep got: what the Ctrl-C message says, and the time of earlier sessions."""

    saved_step: int | None = None  # the step of the checkpoint on disk, None if there is none
    looping: bool = False  # in the chunk loop (else compiling or initializing)
    wall_seconds: float = 0.0  # earlier sessions of a resumed sweep
    compile_seconds: float = 0.0  # earlier sessions, plus this one's once it compiled


class _Sweep(NamedTuple):
    """One call of :func:`run_sweep`: what it computes and where it saves."""

    config: SweepConfig
    directory: str | None  # <store_dir>/<name>-<hash>, None: no files
    checkpoint: str | None  # <directory>/checkpoint.npz
    resuming: bool  # start from the checkpoint (its step is progress.saved_step)
    chunk_steps: int  # steps per compiled chunk, a multiple of segment_steps
    segment_steps: int  # evaluations fall on segment ends
    records: dict[str, np.ndarray]  # train_loss (runs, logged), evals (runs, evaluations, 3); NaN until done
    progress: _Progress
    t_session: float  # time.perf_counter() when this session started
    quiet: bool
    keep_params: bool


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
            by :func:`lab.sweep.program.chunk_layout` so that evaluations fall on segment ends). It
            changes neither the results nor the directory; a resumed sweep keeps the chunk length it
            started with.

    Raises:
        ValueError: ``config.batch_size`` is larger than the training set, or ``chunk_steps`` is not
            a positive integer (before anything is compiled or written).
        SweepInterrupted: after Ctrl-C, once the last finished chunk is saved (a subclass of
            ``KeyboardInterrupt``; its message is one line saying how to resume). Ctrl-C while
            compiling or initializing (or a second Ctrl-C during a chunk) raises it too, saying
            what is saved: nothing before the first checkpoint, else the checkpoint on disk.
    """
    config.check_batch_size(load_data(config.problem).x_train.shape[0])
    chunk_steps = chunk_steps or default_chunk_steps(config.steps)
    if not isinstance(chunk_steps, int) or chunk_steps < 1:
        raise ValueError(f"run_sweep: chunk_steps must be a positive integer, got {chunk_steps!r}")
    directory = None if store_dir is None else store.result_dir(config, store_dir)
    if directory is not None and not force and store.is_complete(directory):
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
        if directory is not None and jax.process_index() == 0:
            store.remove_leftovers(directory)  # *.tmp files of a killed write
        if force and checkpoint is not None and os.path.exists(checkpoint):
            os.unlink(checkpoint)
        if checkpoint is not None and os.path.exists(checkpoint):  # a resumed sweep keeps its chunk length
            try:
                chunk_steps, progress = _checkpoint_progress(checkpoint)
            # Unreadable (it is written atomically, so damaged since): start over.
            except Exception:  # noqa: BLE001
                os.unlink(checkpoint)
        resuming = checkpoint is not None and os.path.exists(checkpoint)
        chunk_steps, segment_steps = chunk_layout(chunk_steps, config.eval_every, config.steps)
        records = {
            "train_loss": np.full((config.runs, config.logged_steps().size), np.nan, np.float32),
            "evals": np.full((config.runs, config.eval_steps().size, 3), np.nan, np.float32),
        }
        return _compute(_Sweep(config, directory, checkpoint, resuming, chunk_steps, segment_steps, records,
                               progress, t_session, quiet, keep_params))
    except SweepInterrupted:
        raise
    except KeyboardInterrupt:  # before the chunk loop (compiling, initializing), or a second Ctrl-C
        if progress.saved_step is not None:
            where = f"its checkpoint at step {progress.saved_step}/{config.steps} in {directory} is kept; " \
                    f"run it again to resume"
        elif directory is None:
            where = "nothing saved (store_dir=None), nothing to resume"
        else:
            where = "nothing saved yet, nothing to resume; run it again to start over"
        when = "during a chunk" if progress.looping else "while compiling or initializing"
        raise SweepInterrupted(f"sweep {config.name!r} interrupted {when}; {where}") from None


def _compute(sweep: _Sweep) -> SweepResult:
    """The part of :func:`run_sweep` that computes; ``sweep.progress`` follows the checkpoint on disk."""
    config, progress, records = sweep.config, sweep.progress, sweep.records
    data = load_data(config.problem)

    mesh = _mesh()
    n_dev = mesh.devices.size
    runs = config.runs
    runs_padded = -(-runs // n_dev) * n_dev
    by_run, replicated = NamedSharding(mesh, PartitionSpec("runs")), NamedSharding(mesh, PartitionSpec())
    hparams = {k: _put(_pad(v, runs_padded), by_run) for k, v in program_hparams(config).items()}
    seeds = _put(_pad(config.run_seeds(), runs_padded), by_run)
    data = jax.tree.map(lambda a: _put(np.asarray(a), replicated), data)

    t0 = time.perf_counter()
    init_fn, chunk_fn, state_shape = program.compile_program(
        program_key(config), sweep.chunk_steps, runs_padded, tuple(mesh.devices.flat), _x64())
    progress.compile_seconds += time.perf_counter() - t0  # about 0 when this process compiled it before

    if sweep.resuming:
        state, done = _load_checkpoint(sweep, state_shape, runs_padded, by_run), progress.saved_step
    else:
        state, eval0 = init_fn(hparams, seeds, data)
        records["evals"][:, 0] = _get(eval0)[:runs]
        done = 0

    from tqdm.auto import tqdm

    bar = tqdm(total=config.steps, initial=done, disable=sweep.quiet, unit="step", dynamic_ncols=True,
               desc=f"{config.name}: {config.optimizer}, {runs} runs", file=sys.stderr)
    progress.looping = True
    with bar, _CtrlC(enabled=sweep.checkpoint is not None) as ctrl_c:
        while done < config.steps:
            start = done
            state, losses, evals = chunk_fn(state, np.int32(start), hparams, seeds, data)
            _record(sweep, start, _get(losses)[:runs], _get(evals)[:runs])
            done = min(start + sweep.chunk_steps, config.steps)
            if sweep.checkpoint is not None and done < config.steps:
                _save_checkpoint(sweep, state, done)
            bar.update(done - start)
            if ctrl_c.requested and done < config.steps:
                raise SweepInterrupted(
                    f"sweep {config.name!r} interrupted at step {done}/{config.steps}; "
                    f"saved in {sweep.directory}, run it again to resume")

    final_params = jax.tree.map(lambda a: _get(a)[:runs], state.params)
    diverged_step = _get(state.diverged_step)[:runs]
    stats = weight_stats(final_params)
    result = SweepResult(
        config=config,
        hparams=config.run_hparams(),
        seed=config.run_seeds(),
        logged_steps=config.logged_steps(),
        train_loss=records["train_loss"],
        eval_steps=config.eval_steps(),
        train_loss_eval=records["evals"][:, :, 0],
        test_loss=records["evals"][:, :, 1],
        test_accuracy=records["evals"][:, :, 2],
        diverged=diverged_step >= 0,
        diverged_step=diverged_step,
        final_params=final_params if sweep.keep_params else None,
        wall_seconds=_wall_seconds(sweep),
        compile_seconds=progress.compile_seconds,
        meta=_meta(runs_padded, sweep.chunk_steps),
        **stats,
    )
    if sweep.directory is not None and jax.process_index() == 0:
        store.save(sweep.directory, result)
        result.path = sweep.directory
        if os.path.exists(sweep.checkpoint):
            os.unlink(sweep.checkpoint)
    return result


def _record(sweep: _Sweep, start: int, losses: np.ndarray, evals: np.ndarray) -> None:
    """File a chunk's outputs, (runs, chunk_steps) losses and (runs, segments, 3) evaluations, into
    ``sweep.records``: logged steps and evaluation steps only, none past the end."""
    config, chunk_steps, segment_steps = sweep.config, sweep.chunk_steps, sweep.segment_steps
    eval_index = {int(e): i for i, e in enumerate(config.eval_steps())}
    t = np.arange(start, start + chunk_steps)
    logged = (t < config.steps) & (t % config.log_every == 0)
    sweep.records["train_loss"][:, t[logged] // config.log_every] = losses[:, logged]
    for j in range(chunk_steps // segment_steps):
        seg_start, end = start + j * segment_steps, start + (j + 1) * segment_steps
        if seg_start < config.steps and (end % config.eval_every == 0 or end >= config.steps):
            sweep.records["evals"][:, eval_index[min(end, config.steps)]] = evals[:, j]


def _wall_seconds(sweep: _Sweep) -> float:
    """Wall time of the sweep so far, over every session."""
    return sweep.progress.wall_seconds + time.perf_counter() - sweep.t_session


def _x64() -> bool:
    """Whether 64-bit mode is on (``jax.enable_x64``): part of the compile cache's key."""
    return bool(jax.config.read("jax_enable_x64"))


def weight_stats(params, bins: int = HIST_BINS) -> dict[str, np.ndarray]:
    """Per-run summaries of the weights (``"w"`` leaves) of params with a leading run axis.

    Returns ``weight_norm`` (runs,), ``near_zero_fraction`` (runs,), ``weight_hist`` (runs, bins)
    and ``hist_edges`` (runs, bins + 1): run ``r``'s ``bins`` equal bins over ``[-m_r, m_r]``,
    ``m_r`` the largest finite ``|w|`` of run ``r`` itself (1 if all its weights are 0), so a run's
    histogram does not depend on the other runs of its sweep. Bins are ``[e_i, e_{i+1})``, the last
    one closed; non-finite weights are not counted.
    """
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
    from lab import __version__  # the package's version (lab imports this module first)

    device = jax.devices()[0]
    return {
        "versions": {"lab": __version__, "jax": jax.__version__, "jaxlib": jax.lib.__version__
                     if hasattr(jax.lib, "__version__") else jax.__version__,
                     "optax": optax.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "device": {"platform": device.platform, "kind": device.device_kind,
                   "count": jax.device_count(), "processes": jax.process_count()},
        "runs_padded": runs_padded,
        "chunk_steps": chunk_steps,
    }


# ----------------------------------------------------------------------------- checkpoints


def _save_checkpoint(sweep: _Sweep, state: RunState, done: int) -> None:
    """Write the state after ``done`` steps and the records so far (atomically: complete or absent)."""
    runs = sweep.config.runs
    leaves = [_get(x)[:runs] for x in jax.tree.leaves(state)]
    meta = {"config_hash": sweep.config.hash(), "done": done, "wall_seconds": _wall_seconds(sweep),
            "chunk_steps": sweep.chunk_steps, "compile_seconds": sweep.progress.compile_seconds,
            "leaves": len(leaves)}
    arrays = {f"state.{i:05d}": leaf for i, leaf in enumerate(leaves)}
    arrays.update({f"records.{k}": v for k, v in sweep.records.items()})
    arrays["meta"] = np.asarray(json.dumps(meta))
    store.save_npz(sweep.checkpoint, arrays, digest=False)
    sweep.progress.saved_step = done


def _checkpoint_progress(path: str) -> tuple[int, _Progress]:
    """The chunk length and the progress recorded in the checkpoint at ``path``."""
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    return meta["chunk_steps"], _Progress(meta["done"], wall_seconds=meta["wall_seconds"],
                                          compile_seconds=meta["compile_seconds"])


def _load_checkpoint(sweep: _Sweep, state_shape, runs_padded: int, sharding: NamedSharding) -> RunState:
    """The state saved in ``sweep.checkpoint``, sharded; its records are copied into ``sweep.records``."""
    path = sweep.checkpoint
    arrays = store.load_npz(path)
    meta = json.loads(str(arrays["meta"]))
    if meta["config_hash"] != sweep.config.hash():
        raise ValueError(f"checkpoint {path} belongs to another config; delete it or pass force=True")
    shapes = jax.tree.leaves(state_shape)
    if meta["leaves"] != len(shapes):
        raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
    leaves = []
    for i, spec in enumerate(shapes):
        leaf = _pad(arrays[f"state.{i:05d}"], runs_padded)
        if leaf.shape != spec.shape or leaf.dtype != spec.dtype:
            raise ValueError(f"checkpoint {path} does not fit this program; delete it or pass force=True")
        leaves.append(_put(leaf, sharding))
    for k in sweep.records:
        sweep.records[k][...] = arrays[f"records.{k}"]
    return jax.tree.unflatten(jax.tree.structure(state_shape), leaves)


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
