"""The results store: a finished sweep (:class:`SweepResult`) as ``results.npz`` plus a JSON sidecar
``results.json``, written last, which marks the results complete; the checkpoint of an unfinished
sweep beside them; and the atomic file writes (:func:`atomic_write`, :func:`atomic_write_all`) that
every output of the lab goes through. Layout and guarantees: ``docs/sweeps.md``, "The store".
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any

import jax
import numpy as np

from lab.sweep.config import FORMAT_VERSION, SweepConfig

__all__ = ["CHECKPOINT_NPZ", "FORMAT_VERSION", "RESULTS_JSON", "RESULTS_NPZ", "IncompleteResultsError",
           "SweepResult", "atomic_write", "atomic_write_all", "is_complete", "load", "load_npz",
           "remove_leftovers", "result_dir", "save", "save_json", "save_npz", "sha256"]

RESULTS_NPZ = "results.npz"
RESULTS_JSON = "results.json"
CHECKPOINT_NPZ = "checkpoint.npz"

# (name, per-run) arrays saved under their own name in results.npz
_ARRAYS = ("seed", "logged_steps", "train_loss", "eval_steps", "train_loss_eval", "test_loss",
           "test_accuracy", "diverged", "diverged_step", "weight_norm", "near_zero_fraction",
           "weight_hist", "hist_edges")


class IncompleteResultsError(FileNotFoundError):
    """A results directory that holds no complete, consistent results."""


@dataclass
class SweepResult:
    """A finished sweep. Per-run arrays have the run axis first; runs are grid-major, seed-minor.

    Attributes:
        config: the :class:`SweepConfig` that produced it.
        hparams: swept name -> (runs,) float32 values (every name of ``config.grid`` or ``config.points``).
        seed: (runs,) int32 seed of each run (varies init and batch order, not the data).
        logged_steps: (L,) steps whose mini-batch loss is in ``train_loss``.
        train_loss: (runs, L) data loss (no penalty) of the batch at each logged step, taken at the
            params before that step's update; NaN after a run diverged.
        eval_steps: (E,) number of updates done at each evaluation: 0, eval_every, ..., steps.
        train_loss_eval, test_loss, test_accuracy: (runs, E) on the whole train / test set; NaN
            for steps a diverged run did not reach, and accuracy is NaN for regression.
        diverged: (runs,) bool; diverged_step: (runs,) int32 step whose loss or update was not
            finite (the run is frozen at the params before it), -1 if none.
        weight_norm: (runs,) L2 norm of all weights (``"w"`` leaves, not biases) at the end.
        near_zero_fraction: (runs,) fraction of weights with ``|w| < 1e-3`` at the end.
        weight_hist: (runs, bins) counts of final weights in bins ``hist_edges`` (runs, bins + 1):
            each run's own equal bins over ``[-max|w|, max|w|]`` of its final weights.
        final_params: params pytree with a run axis first, or None (``keep_params=False``). Loaded
            back as nested dicts and lists (a model's own pytree classes are not re-created: that
            would need its code).
        wall_seconds: time of the whole sweep (run + compile), summed over resumed sessions.
        compile_seconds: time spent compiling.
        meta: versions, device and other facts recorded in the sidecar.
        path: the directory it was saved in, or None.
    """

    config: SweepConfig
    hparams: dict[str, np.ndarray]
    seed: np.ndarray
    logged_steps: np.ndarray
    train_loss: np.ndarray
    eval_steps: np.ndarray
    train_loss_eval: np.ndarray
    test_loss: np.ndarray
    test_accuracy: np.ndarray
    diverged: np.ndarray
    diverged_step: np.ndarray
    weight_norm: np.ndarray
    near_zero_fraction: np.ndarray
    weight_hist: np.ndarray
    hist_edges: np.ndarray
    final_params: Any = None
    wall_seconds: float = 0.0
    compile_seconds: float = 0.0
    meta: dict = field(default_factory=dict)
    path: str | None = None

    @property
    def runs(self) -> int:
        return int(self.seed.shape[0])

    def select(self, **hparams: float) -> np.ndarray:
        """(runs,) bool mask of the runs whose swept hyperparameters equal the given values.

        Values are compared as float32, the precision they were run at.
        """
        mask = np.ones(self.runs, bool)
        for name, value in hparams.items():
            if name == "seed":
                mask &= self.seed == int(value)
                continue
            if name not in self.hparams:
                raise ValueError(f"select: {name!r} is not swept; swept: {', '.join(self.hparams)}")
            mask &= self.hparams[name] == np.float32(value)
        return mask

    def grid_view(self, name: str) -> np.ndarray:
        """A per-run array reshaped to ``(*grid sizes, seeds, ...)`` in the order of ``config.grid``;
        for a sweep over a list of points, ``(points, seeds, ...)``: the points are one axis, in order."""
        values = getattr(self, name) if name != "hparams" else None
        if values is None or not isinstance(values, np.ndarray) or values.shape[:1] != (self.runs,):
            raise ValueError(f"grid_view: {name!r} is not a per-run array")
        shape = self.config.grid_shape + (self.config.seeds,)
        return values.reshape(shape + values.shape[1:])

    def best(self, metric: str = "train_loss_eval", *, step: int = -1, mode: str | None = None
             ) -> dict[str, float]:
        """The grid point (or listed point) whose seed-mean of ``metric`` at eval index ``step`` is best.

        Diverged runs count as the worst value. ``mode`` is ``"min"`` or ``"max"`` (default: max for
        accuracy, min otherwise). Returns the swept hyperparameters of that point.
        """
        mode = mode or ("max" if "accuracy" in metric else "min")
        values = self.grid_view(metric)[..., step].astype(np.float64)  # (*grid, seeds)
        worst = -np.inf if mode == "max" else np.inf
        values = np.where(np.isfinite(values), values, worst).mean(axis=-1)
        flat = int(np.argmax(values) if mode == "max" else np.argmin(values))
        return self.config.grid_points()[flat]


# ----------------------------------------------------------------------------- files


def result_dir(config: SweepConfig, store_dir: str = "results") -> str:
    """Where ``config``'s results live: ``<store_dir>/<name>-<hash>``."""
    return os.path.join(store_dir, f"{config.name}-{config.hash()}")


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file atomically: ``write(file_object)`` into a temporary file, then rename it."""
    atomic_write_all({path: write})


def atomic_write_all(writes: Mapping[str, Callable[[IO[bytes]], None]]) -> None:
    """Write several files as a set: ``write(file_object)`` for each path into a temporary file in
    the path's directory, and only once every one was written, rename them into place.

    If a write (or a rename) raises, every temporary file is removed and every file already renamed
    gets its old content back (or is removed if it was new), so no partial file and no half-updated
    set is left; the exception propagates. (A process killed between two renames can still leave
    some files new and some old, never a partial one.)
    """
    temps: dict[str, str] = {}  # path -> its new content, written to a temporary name
    backups: dict[str, str | None] = {}  # path -> a hard link to its old content (None: it was new)
    try:
        for path, write in writes.items():
            temps[path] = _write_temp(path, write)
        for path, tmp in temps.items():  # one file needs no backup: its rename happens or not
            backups[path] = None
            if len(temps) > 1 and os.path.isfile(path):
                backups[path] = tmp[: -len(".tmp")] + ".old.tmp"
                try:
                    os.link(path, backups[path])
                except OSError:  # a file system without hard links
                    shutil.copyfile(path, backups[path])
        done = []
        try:
            for path, tmp in temps.items():
                os.replace(tmp, path)
                done.append(path)
        except BaseException:
            for path in done:  # put the old set back
                if backups[path] is None:
                    os.unlink(path)
                else:
                    os.replace(backups[path], path)
            raise
    finally:
        for name in [*temps.values(), *(b for b in backups.values() if b is not None)]:
            if os.path.exists(name):
                os.unlink(name)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_temp(path: str, write: Callable[[IO[bytes]], None]) -> str:
    """``write`` into a new temporary file beside ``path`` (``<name>.<random>.tmp``); its name."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + ".", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes it 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as f:
            write(f)
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


def save_npz(path: str, arrays: dict[str, np.ndarray], digest: bool = True) -> str | None:
    """Atomically save arrays (no object arrays) as an uncompressed ``.npz``; return its SHA-256
    (or None with ``digest=False``)."""
    for name, a in arrays.items():
        if np.asarray(a).dtype == object:
            raise TypeError(f"save_npz: {name!r} is an object array; it could not be loaded without pickle")
    atomic_write(path, lambda f: np.savez(f, **arrays))
    return sha256(path) if digest else None


def load_npz(path: str) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def save_json(path: str, obj: dict) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, allow_nan=False)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def remove_leftovers(directory: str, checkpoint: bool = False) -> None:
    """Remove the temporary files of writes that were killed before their rename (and, with
    ``checkpoint=True``, a checkpoint left beside complete results by a process killed between
    writing them and removing it). Nothing ever loads these files; this only tidies up."""
    if not os.path.isdir(directory):
        return
    names = (RESULTS_NPZ, RESULTS_JSON, CHECKPOINT_NPZ)
    for entry in os.listdir(directory):
        stale = entry.endswith(".tmp") and any(entry.startswith(name + ".") for name in names)
        if stale or (checkpoint and entry == CHECKPOINT_NPZ):
            try:
                os.unlink(os.path.join(directory, entry))
            except FileNotFoundError:
                pass


def is_complete(directory: str) -> bool:
    """True when ``directory`` holds complete, consistent results."""
    try:
        _read_sidecar(directory)
    except IncompleteResultsError:
        return False
    return True


def _read_sidecar(directory: str) -> dict:
    npz, side = os.path.join(directory, RESULTS_NPZ), os.path.join(directory, RESULTS_JSON)
    if not (os.path.exists(npz) and os.path.exists(side)):
        raise IncompleteResultsError(
            f"no complete results in {directory} (missing {RESULTS_NPZ} or {RESULTS_JSON})")
    try:
        with open(side, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as err:  # ValueError: truncated or invalid JSON (a killed writer)
        raise IncompleteResultsError(f"results in {directory} are incomplete: unreadable {RESULTS_JSON} "
                                     f"({type(err).__name__})") from None
    if not isinstance(meta, dict):
        raise IncompleteResultsError(f"results in {directory} are incomplete: {RESULTS_JSON} is not a dict")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise IncompleteResultsError(f"results in {directory} are in results format {version!r}; "
                                     f"this lab reads {FORMAT_VERSION}: rerun the sweep")
    if meta.get("complete") is not True or meta.get("npz_sha256") != sha256(npz):
        raise IncompleteResultsError(f"results in {directory} are incomplete or inconsistent")
    return meta


# ----------------------------------------------------------------------------- results


def save(directory: str, result: SweepResult) -> None:
    """Save ``result`` into ``directory``: arrays first, then the sidecar that marks them complete."""
    arrays = {name: np.asarray(getattr(result, name)) for name in _ARRAYS}
    arrays.update({f"hparam.{k}": np.asarray(v) for k, v in result.hparams.items()})
    paths = []
    if result.final_params is not None:
        leaves = jax.tree_util.tree_flatten_with_path(result.final_params)[0]
        arrays.update({f"final_params.{i:05d}": np.asarray(leaf) for i, (_, leaf) in enumerate(leaves)})
        paths = [_path_json(path) for path, _ in leaves]
    side = os.path.join(directory, RESULTS_JSON)
    if os.path.exists(side):  # a forced rerun: unmark the old results before replacing them
        os.unlink(side)
    digest = save_npz(os.path.join(directory, RESULTS_NPZ), arrays)
    save_json(side, {
        "format_version": FORMAT_VERSION,
        "complete": True,
        "npz_sha256": digest,
        "config": result.config.to_dict(),
        "sources": result.config.sources(),
        "hparam_names": list(result.hparams),
        "seeds": [int(s) for s in np.unique(result.seed)],
        "final_params_paths": paths,
        "wall_seconds": float(result.wall_seconds),
        "compile_seconds": float(result.compile_seconds),
        "meta": result.meta,
    })


def load(path: str) -> SweepResult:
    """Load a saved sweep from its directory (or its ``results.npz`` / ``results.json``). Nothing is
    imported: a config naming your own optimizer or model is read back with its saved identity.

    Raises:
        IncompleteResultsError: if the directory holds no complete, consistent results.
    """
    directory = path if os.path.isdir(path) else os.path.dirname(path)
    side = _read_sidecar(directory)
    arrays = load_npz(os.path.join(directory, RESULTS_NPZ))
    config = SweepConfig.from_dict(side["config"], sources=side["sources"])
    final_params = None
    if side["final_params_paths"]:
        leaves = [arrays[f"final_params.{i:05d}"] for i in range(len(side["final_params_paths"]))]
        final_params = _unflatten(side["final_params_paths"], leaves)
    return SweepResult(
        config=config,
        hparams={k: arrays[f"hparam.{k}"] for k in side["hparam_names"]},
        final_params=final_params,
        wall_seconds=side["wall_seconds"],
        compile_seconds=side["compile_seconds"],
        meta=side["meta"],
        path=directory,
        **{name: arrays[name] for name in _ARRAYS},
    )


def _path_json(path) -> list:
    """A leaf's key path as JSON: ``[["key", "w"], ["index", 0], ["attr", "conv"], ...]``."""
    out = []
    for entry in path:
        if isinstance(entry, jax.tree_util.SequenceKey):
            out.append(["index", entry.idx])
        elif isinstance(entry, jax.tree_util.DictKey):
            out.append(["key", entry.key])
        elif isinstance(entry, jax.tree_util.GetAttrKey):
            out.append(["key", entry.name])
        else:  # FlattenedIndexKey of a custom pytree node
            out.append(["key", entry.key])
    return out


def _unflatten(paths: list, leaves: list):
    """Nested dicts (``key``) and lists (``index``) holding ``leaves`` at ``paths``."""
    if paths == [[]]:
        return leaves[0]
    groups: dict = {}  # first key -> (the rest of each path, its leaf), in tree order
    for path, leaf in zip(paths, leaves, strict=True):
        rest, below = groups.setdefault(path[0][1], ([], []))
        rest.append(path[1:])
        below.append(leaf)
    children = {k: _unflatten(rest, below) for k, (rest, below) in groups.items()}
    return [children[i] for i in range(len(children))] if paths[0][0][0] == "index" else children
