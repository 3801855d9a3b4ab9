"""What a sweep is: :class:`SweepConfig`, a frozen, self-validating description of one comparison
(problem, optimizer, grid or points, seeds, steps, learning-rate schedule) and its hash, which names
its results directory.

Constructing a config checks every field without loading data; the check that needs the data (a
batch no larger than the training set) is :meth:`SweepConfig.check_batch_size`, which
:func:`lab.sweep.run_sweep` calls once it has the data. The optimizer is a catalogue name,
``"module:factory"`` (``"optax:NAME"``) or a factory; its identity (:mod:`lab.specs`) is hashed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import optax

from lab import specs
from lab.optim import OPTIMIZERS, catalogue
from lab.problems import Problem
from lab.sweep import checks, hparams, schedules

__all__ = ["FORMAT_VERSION", "NOT_OPTIMIZER_ARGS", "PENALTIES", "SweepConfig", "is_array_value",
           "optimizer_eval_params", "optimizer_factory"]

# The results format: in every results sidecar and in the config hash (with the sources' identity),
# so results of another engine live under another name. Bump it whenever the engine changes what a
# sweep computes or stores. (Here rather than in the store so that the config needs no store.)
FORMAT_VERSION = 3  # 2: hist_edges per run, (runs, bins + 1); 3: sources in the sidecar, params by path
PENALTIES = ("l1", "l2")  # swept or fixed like optimizer kwargs, but enter the objective
NOT_OPTIMIZER_ARGS = (*PENALTIES, *schedules.NAMES)  # swept or fixed, never passed to the optimizer


def optimizer_factory(spec: specs.Spec) -> Callable[..., optax.GradientTransformation]:
    """The factory a config's optimizer spec names (imported again if read from saved results)."""
    return spec.resolve("SweepConfig.optimizer", OPTIMIZERS)


def optimizer_eval_params(spec: specs.Spec) -> Callable[[Any, Any], Any] | None:
    """Where the optimizer named by ``spec`` is evaluated: ``eval_params(opt_state, params) -> params``
    of its catalogue entry, or the factory's ``eval_params`` attribute; None: at the params."""
    if str(spec) in OPTIMIZERS:
        return catalogue.get(str(spec)).eval_params
    return getattr(optimizer_factory(spec), "eval_params", None)


is_array_value = hparams.is_array_value


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a problem, an optimizer family, a grid (or a list of points) of hyperparameters,
    seeds, steps and a learning-rate schedule.

    Validates itself; every error is a one-line ``ValueError`` naming the field. No data are loaded:
    :meth:`check_batch_size` is the one check that needs them.

    Attributes:
        problem: what is trained (:class:`lab.problems.Problem`).
        optimizer: a name of the catalogue (:data:`lab.optim.OPTIMIZERS`), ``"module:factory"``
            (``"my_pkg.opt:my_adam"``, ``"optax:lion"``) or, from Python, the factory itself; it is
            called with keyword hyperparameters and returns an ``optax.GradientTransformation``.
            Evaluations and saved final params are taken at ``eval_params(opt_state, params)`` when
            its catalogue entry (or the factory, as an attribute) has one (schedule-free methods).
        grid: ``((name, (value, ...)), ...)``: swept optimizer kwargs, ``"l1"``/``"l2"`` penalty
            strengths and schedule/clipping parameters; every combination (cartesian product) is
            run. Values are run as float32. Empty when ``points`` are given.
        fixed: ``((name, value), ...)``: held at one value. A number enters the program as an array
            (like a one-value grid axis); flags (``nesterov=True``) and ``None`` (``momentum=None``)
            are static: they shape the program.
        seeds: seeds ``first_seed .. first_seed + seeds - 1`` per grid point.
        steps: optimizer steps per run.
        batch_size: mini-batch size; ``None`` (or the training-set size) is full batch, 1 is SGD.
        eval_every: evaluate on the whole train and test sets every this many steps (and at 0 and
            at ``steps``).
        log_every: record the mini-batch loss every this many steps.
        name: a label for the results directory (letters, digits, ``._-``).
        points: instead of a grid, an explicit list of points run as given (random or quasi-random
            search), as columns ``((name, (value of point 0, value of point 1, ...)), ...)``;
            :meth:`make` takes ``[{name: value}, ...]``. Every point names the same hyperparameters.
        schedule: ``"constant"`` (default), ``"warmup_cosine"`` or ``"step_decay"``: a factor on the
            optimizer's update at step ``t`` (0 at the first update), which for an optimizer whose
            update is proportional to its learning rate schedules the learning rate. Its numbers are
            swept or fixed: ``schedule.warmup_steps`` (default 0), ``schedule.decay_steps`` (warm-up
            included; default ``steps``) and ``schedule.end_value`` (a fraction of the peak, default
            0) for ``warmup_cosine``; ``schedule.transition_steps`` and ``schedule.decay_rate``
            (required) for ``step_decay``, the factor ``decay_rate ** floor(t / transition_steps)``.
            ``clip.max_norm`` (swept or fixed, any schedule) clips the gradient to that global norm
            before the optimizer (``optax.clip_by_global_norm``).
        first_seed: the first seed (default 0): a run's seed sets its initialization and its batch
            order, so a sweep of seeds from ``k`` repeats none of the runs of a sweep of seeds below ``k``.
        identity: the SHA-256 of the optimizer's, the model's and the data's source (filled in).
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
    points: tuple[tuple[str, tuple[float, ...]], ...] = ()
    schedule: str = schedules.DEFAULT
    first_seed: int = 0
    identity: tuple[str, ...] = dataclasses.field(init=False, repr=False)

    @classmethod
    def make(cls, problem: Problem, optimizer: str | Callable, grid: Mapping[str, Any] | None = None,
             fixed: Mapping[str, Any] | None = None, *, points: list[Mapping[str, float]] | None = None,
             **kwargs) -> SweepConfig:
        """Build from dicts and lists: ``make(problem, "adam", {"learning_rate": [1e-3, 1e-2]}, seeds=2)``,
        or ``make(problem, "adam", points=[{"learning_rate": 1e-3, "b1": 0.9}, ...], seeds=2)``.

        A scalar grid value is a one-point axis.
        """
        unknown = set(kwargs) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"SweepConfig: unknown field(s) {', '.join(sorted(unknown))}")
        if points is not None and grid:
            raise ValueError("SweepConfig.points: give a grid or a list of points, not both")
        axes = tuple((k, hparams.axis_values(v)) for k, v in dict(grid or {}).items())
        columns = () if points is None else hparams.point_columns(points)
        return cls(problem=problem, optimizer=optimizer, grid=axes, fixed=tuple(dict(fixed or {}).items()),
                   points=columns, **kwargs)

    def __post_init__(self):
        if not isinstance(self.problem, Problem):
            raise ValueError(f"SweepConfig.problem: expected a Problem, got {type(self.problem).__name__}")
        if not isinstance(self.optimizer, specs.Spec):
            spec = (specs.from_string(self.optimizer, "SweepConfig.optimizer", OPTIMIZERS, "optimizer")
                    if isinstance(self.optimizer, str) else
                    specs.from_callable(self.optimizer, "SweepConfig.optimizer", OPTIMIZERS))
            object.__setattr__(self, "optimizer", spec)
        for field in ("seeds", "steps", "eval_every", "log_every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SweepConfig.{field}: expected a positive integer, got {value!r}")
        s = self.first_seed
        if not isinstance(s, int) or isinstance(s, bool) or not 0 <= s < 2**31 - self.seeds:
            raise ValueError(f"SweepConfig.first_seed: expected a non-negative integer, got {s!r}")
        b = self.batch_size
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b < 1):
            raise ValueError(f"SweepConfig.batch_size: expected a positive integer or None, got {b!r}")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"SweepConfig.name: expected letters, digits and '._-' only, got {self.name!r}")
        schedules.check_kind(self.schedule)
        if self.points and self.grid:
            raise ValueError("SweepConfig.points: give a grid or a list of points, not both")
        object.__setattr__(self, "points", hparams.normalize_points(self.points) if self.points else ())
        object.__setattr__(self, "grid", hparams.normalize_grid(self.grid, allow_empty=bool(self.points)))
        object.__setattr__(self, "fixed", hparams.normalize_fixed(self.fixed))
        object.__setattr__(self, "identity", (self.optimizer.source, *self.problem.identity))
        if self.optimizer.resolved:  # (read back from saved results: checked when it was made)
            self._check_names()

    def check_batch_size(self, n_train: int) -> None:
        """Raise a one-line ``ValueError`` if ``batch_size`` exceeds the ``n_train`` training examples."""
        if self.batch_size is not None and self.batch_size > n_train:
            raise ValueError(f"SweepConfig.batch_size: {self.batch_size} is larger than the "
                             f"{n_train} training examples")

    @property
    def swept(self) -> tuple[tuple[str, tuple[float, ...]], ...]:
        """The grid's axes, or the points' columns: every swept name with its values."""
        return self.points or self.grid

    def _check_names(self):
        factory = optimizer_factory(self.optimizer)
        if not callable(factory):
            raise ValueError(f"SweepConfig.optimizer: {str(self.optimizer)!r} is a {type(factory).__name__}, "
                             f"not a callable that returns an optax.GradientTransformation")
        try:
            signature = inspect.signature(factory).parameters
        except (TypeError, ValueError):
            raise ValueError(f"SweepConfig.optimizer: cannot read the arguments of {str(self.optimizer)!r}; "
                             f"pass a Python function") from None
        keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        params = {k: p for k, p in signature.items() if p.kind in keyword}
        any_name = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values())
        where = "points" if self.points else "grid"
        swept, fixed = [k for k, _ in self.swept], dict(self.fixed)
        extra = {k: where for k in swept} | {k: "fixed" for k in fixed}
        schedules.check_names(self.schedule, extra)
        valid = (*params, *PENALTIES, *(p.name for p in schedules.SCHEDULES[self.schedule]),
                 schedules.CLIP_MAX_NORM)
        for field_name, names in ((where, swept), ("fixed", fixed)):
            for k in names:
                if k not in valid and not any_name:
                    raise ValueError(f"SweepConfig.{field_name}: {k!r} is not a hyperparameter of "
                                     f"{str(self.optimizer)!r}; valid: {', '.join(valid)}")
        for k, values in self.swept:
            if k in params and isinstance(params[k].default, bool):
                raise ValueError(f"SweepConfig.{where}: {k!r} is a static flag of {str(self.optimizer)!r} "
                                 f"(it shapes the program), so it cannot be swept; got {list(values)}; "
                                 f"set it in fixed")
        both = set(swept) & set(fixed)
        if both:
            raise ValueError(f"SweepConfig.fixed: {', '.join(sorted(both))} also swept in {where}")
        for k, p in params.items():
            if p.default is inspect.Parameter.empty and k not in swept and k not in fixed:
                raise ValueError(f"SweepConfig.{where}: {str(self.optimizer)!r} needs {k!r}; "
                                 f"sweep it or fix it")
        for k in PENALTIES:
            v = fixed.get(k, 0.0)
            if not isinstance(v, int | float) or isinstance(v, bool) or not v >= 0:
                raise ValueError(f"SweepConfig.fixed: {k}={v!r}: must be a non-negative number")
        for k, values in self.swept:
            for v in values if k in PENALTIES else ():
                if not v >= 0:
                    raise ValueError(f"SweepConfig.{where}: {k}={v!r}: must be non-negative")
        for k, v in [(k, v) for k, vs in self.swept for v in vs] + list(fixed.items()):
            if k in schedules.NAMES:
                schedules.check_value(k, v, where if k in swept else "fixed")
        given = schedules.defaults(self.schedule, self.steps) | {k: v for k, v in fixed.items()
                                                                 if k in schedules.NAMES}
        runs = {k: np.full(self.runs, v, np.float64) for k, v in given.items()} | self.run_hparams()
        schedules.check_runs(self.schedule, runs,
                             where if any(k.startswith("schedule.") for k in swept) else "fixed")
        opt_swept = {k: vs for k, vs in self.swept if k not in NOT_OPTIMIZER_ARGS}
        opt_fixed = {k: v for k, v in self.fixed if k not in NOT_OPTIMIZER_ARGS}
        checks.build_with_values(factory, self.optimizer, params, opt_swept, opt_fixed, where)
        checks.trace_with_arrays(factory, self.optimizer, opt_swept, opt_fixed, where)

    # --- derived quantities

    @property
    def grid_shape(self) -> tuple[int, ...]:
        """The shape of :meth:`lab.sweep.SweepResult.grid_view`'s leading axes (before the seeds): the
        grid's axis sizes, or ``(number of points,)``."""
        return (len(self.points[0][1]),) if self.points else tuple(len(v) for _, v in self.grid)

    @property
    def grid_size(self) -> int:
        """The number of grid points (or of listed points)."""
        return math.prod(self.grid_shape)

    @property
    def runs(self) -> int:
        return self.grid_size * self.seeds

    def grid_points(self) -> list[dict[str, float]]:
        """Every point ``{name: value}`` in run order (a grid's: first axis slowest)."""
        names = [k for k, _ in self.swept]
        rows = zip(*dict(self.points).values(), strict=True) if self.points else \
            itertools.product(*dict(self.grid).values())
        return [dict(zip(names, row, strict=True)) for row in rows]

    def run_hparams(self) -> dict[str, np.ndarray]:
        """Swept name -> (runs,) float32 values, point by point (a grid: first axis slowest), seed-minor."""
        return hparams.run_values(self.grid, self.points, self.seeds)

    def run_seeds(self) -> np.ndarray:
        """(runs,) int32 seed of each run."""
        seeds = np.arange(self.first_seed, self.first_seed + self.seeds, dtype=np.int32)
        return np.tile(seeds, self.grid_size)

    def logged_steps(self) -> np.ndarray:
        return np.arange(0, self.steps, self.log_every, dtype=np.int32)

    def eval_steps(self) -> np.ndarray:
        steps = set(range(0, self.steps + 1, self.eval_every)) | {self.steps}
        return np.asarray(sorted(steps), np.int32)

    # --- serialization

    def to_dict(self) -> dict:
        """The config as JSON-ready data. Fields at their defaults that older configs did not have
        (``points``, ``schedule``, ``first_seed``) are left out, so that those configs keep their hash; so is
        ``eval_params`` (true when evaluations are taken at the optimizer's ``eval_params``)."""
        d = {
            "problem": self.problem.to_dict(),
            "optimizer": str(self.optimizer),
            "grid": [[k, list(v)] for k, v in self.grid],
            "fixed": [[k, v] for k, v in self.fixed],
            "seeds": self.seeds, "steps": self.steps, "batch_size": self.batch_size,
            "eval_every": self.eval_every, "log_every": self.log_every, "name": self.name,
        }
        if self.points:
            d["points"] = [[k, list(v)] for k, v in self.points]
        if self.schedule != schedules.DEFAULT:
            d["schedule"] = self.schedule
        if self.first_seed:
            d["first_seed"] = self.first_seed
        if self.evaluated_at_eval_params():
            d["eval_params"] = True
        return d

    def evaluated_at_eval_params(self) -> bool:
        """Whether evaluations are taken at the optimizer's ``eval_params`` (:func:`optimizer_eval_params`);
        for a config read back from saved results with an optimizer outside the catalogue, as saved."""
        if str(self.optimizer) in OPTIMIZERS or self.optimizer.resolved:
            return optimizer_eval_params(self.optimizer) is not None
        return getattr(self, "_saved_eval_params", False)

    def sources(self) -> dict[str, str]:
        """The identity saved with results: SHA-256 of the optimizer's, model's and data's source."""
        return {"optimizer": self.optimizer.source, **self.problem.sources()}

    @classmethod
    def from_dict(cls, d: dict, sources: Mapping[str, str] | None = None) -> SweepConfig:
        """The inverse of :meth:`to_dict`. With ``sources`` (:meth:`sources`, saved with results),
        nothing is imported or read: the optimizer and model are imported only if the config is run
        again, and refused then if their source changed."""
        if not isinstance(d, Mapping):
            raise ValueError(f"SweepConfig: expected a dict, got {type(d).__name__} {d!r}")
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)} - {"eval_params"}
        if unknown:
            raise ValueError(f"SweepConfig: unknown field(s) {', '.join(sorted(unknown))}")
        for field in ("problem", "optimizer", "grid"):
            if field not in d:
                got = ", ".join(sorted(d)) or "none"
                raise ValueError(f"SweepConfig.{field}: missing (got fields {got})")
        d = dict(d)
        saved_eval_params = d.pop("eval_params", False) is True
        if not isinstance(d["problem"], Mapping):
            raise ValueError(f"SweepConfig.problem: expected a dict, got {d['problem']!r}")
        d["problem"] = Problem.from_dict(d["problem"], sources=sources)
        if sources is not None:
            d["optimizer"] = specs.saved(d["optimizer"], sources["optimizer"])
        for field in ("grid", "points"):
            try:
                d[field] = tuple((k, hparams.axis_values(v)) for k, v in d.get(field, ()))
            except (TypeError, ValueError):
                raise ValueError(f"SweepConfig.{field}: expected [[name, [values...]], ...], "
                                 f"got {d[field]!r}") from None
        try:
            d["fixed"] = tuple((k, v) for k, v in d.get("fixed", ()))
        except (TypeError, ValueError):
            raise ValueError(f"SweepConfig.fixed: expected [[name, value], ...], "
                             f"got {d['fixed']!r}") from None
        config = cls(**d)
        object.__setattr__(config, "_saved_eval_params", saved_eval_params)
        return config

    def hash(self) -> str:
        """12 hex digits of the SHA-256 of the canonical JSON of :meth:`to_dict`, the results format
        (:data:`FORMAT_VERSION`) and :meth:`sources`: results (and checkpoints) of another engine, or
        of an edited optimizer, model or data file, live under another name, so they are never reused."""
        identity = {"config": self.to_dict(), "results_format": FORMAT_VERSION, "sources": self.sources()}
        text = json.dumps(identity, sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

