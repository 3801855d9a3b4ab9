"""What a sweep is: :class:`SweepConfig`, a frozen, self-validating description of one comparison
(problem, optimizer, grid, seeds, schedule) and its hash, which names its results directory.

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

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import specs
from lab.optim import OPTIMIZERS
from lab.problems import Problem

__all__ = ["FORMAT_VERSION", "PENALTIES", "SweepConfig", "optimizer_factory"]

# The results format: in every results sidecar and in the config hash (with the sources' identity),
# so results of another engine live under another name. Bump it whenever the engine changes what a
# sweep computes or stores. (Here rather than in the store so that the config needs no store.)
FORMAT_VERSION = 3  # 2: hist_edges per run, (runs, bins + 1); 3: sources in the sidecar, params by path
PENALTIES = ("l1", "l2")  # swept or fixed like optimizer kwargs, but enter the objective
_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError,
                  jax.errors.TracerArrayConversionError)


def optimizer_factory(spec: specs.Spec) -> Callable[..., optax.GradientTransformation]:
    """The factory a config's optimizer spec names (imported again if read from saved results)."""
    return spec.resolve("SweepConfig.optimizer", OPTIMIZERS)


def is_array_value(value) -> bool:
    """A fixed value that enters the program as an array (a number), not as a static constant."""
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class SweepConfig:
    """One sweep: a problem, an optimizer family, a grid of hyperparameters, seeds and a schedule.

    Validates itself; every error is a one-line ``ValueError`` naming the field. No data are loaded:
    :meth:`check_batch_size` is the one check that needs them.

    Attributes:
        problem: what is trained (:class:`lab.problems.Problem`).
        optimizer: a name of the catalogue (:data:`lab.optim.OPTIMIZERS`), ``"module:factory"``
            (``"my_pkg.opt:my_adam"``, ``"optax:lion"``) or, from Python, the factory itself; it is
            called with keyword hyperparameters and returns an ``optax.GradientTransformation``.
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
    identity: tuple[str, ...] = dataclasses.field(init=False, repr=False)

    @classmethod
    def make(cls, problem: Problem, optimizer: str | Callable, grid: Mapping[str, Any],
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
        if not isinstance(self.optimizer, specs.Spec):
            spec = (specs.from_string(self.optimizer, "SweepConfig.optimizer", OPTIMIZERS, "optimizer")
                    if isinstance(self.optimizer, str) else
                    specs.from_callable(self.optimizer, "SweepConfig.optimizer", OPTIMIZERS))
            object.__setattr__(self, "optimizer", spec)
        for field in ("seeds", "steps", "eval_every", "log_every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"SweepConfig.{field}: expected a positive integer, got {value!r}")
        b = self.batch_size
        if b is not None and (not isinstance(b, int) or isinstance(b, bool) or b < 1):
            raise ValueError(f"SweepConfig.batch_size: expected a positive integer or None, got {b!r}")
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ValueError(f"SweepConfig.name: expected letters, digits and '._-' only, got {self.name!r}")
        object.__setattr__(self, "grid", _normalize_grid(self.grid))
        object.__setattr__(self, "fixed", _normalize_fixed(self.fixed))
        object.__setattr__(self, "identity", (self.optimizer.source, *self.problem.identity))
        if self.optimizer.resolved:  # (read back from saved results: checked when it was made)
            self._check_names()

    def check_batch_size(self, n_train: int) -> None:
        """Raise a one-line ``ValueError`` if ``batch_size`` exceeds the ``n_train`` training examples."""
        if self.batch_size is not None and self.batch_size > n_train:
            raise ValueError(f"SweepConfig.batch_size: {self.batch_size} is larger than the "
                             f"{n_train} training examples")

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
        valid = tuple(params) + PENALTIES
        swept, fixed = [k for k, _ in self.grid], dict(self.fixed)
        for field_name, names in (("grid", swept), ("fixed", fixed)):
            for k in names:
                if k not in valid and not any_name:
                    raise ValueError(f"SweepConfig.{field_name}: {k!r} is not a hyperparameter of "
                                     f"{str(self.optimizer)!r}; valid: {', '.join(valid)}")
        for k, values in self.grid:
            if k in params and isinstance(params[k].default, bool):
                raise ValueError(f"SweepConfig.grid: {k!r} is a static flag of {str(self.optimizer)!r} "
                                 f"(it shapes the program), so it cannot be swept; got {list(values)}; "
                                 f"set it in fixed")
        both = set(swept) & set(fixed)
        if both:
            raise ValueError(f"SweepConfig.fixed: {', '.join(sorted(both))} also swept in grid")
        for k, p in params.items():
            if p.default is inspect.Parameter.empty and k not in swept and k not in fixed:
                raise ValueError(f"SweepConfig.grid: {str(self.optimizer)!r} needs {k!r}; sweep it or fix it")
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
        self._check_traced(factory)

    def _check_values(self, factory, params):
        """Build the optimizer with every concrete value, so that a bad one (a negative learning rate,
        a beta above 1, a flag that is not a bool) fails here with the optimizer's own message, blamed
        on its field: each value is tried alone (other arguments at their defaults, required ones at
        values already checked), then with the fixed values and the first grid point."""
        swept = {k: vs for k, vs in self.grid if k not in PENALTIES}
        opt_fixed = {k: v for k, v in self.fixed if k not in PENALTIES}
        required = [k for k, p in params.items() if p.default is inspect.Parameter.empty]
        context = {k: swept[k][0] if k in swept else opt_fixed[k] for k in required}
        checks = [(k, "grid" if k in swept else "fixed") for k in required]  # (name, field)
        checks += [(k, "fixed") for k in opt_fixed if k not in required]
        checks += [(k, "grid") for k in swept if k not in required]

        def build(where, k, v, **args):
            try:
                made = factory(**args)
            except (TypeError, ValueError) as err:
                blame = f"{where}: {k}={v!r}" if k else where
                raise ValueError(f"SweepConfig.{blame}: {_one_line(err)}") from None
            except Exception as err:  # noqa: BLE001 - the factory failed otherwise: its own bug
                call = ", ".join(f"{k}={v!r}" for k, v in args.items())
                raise ValueError(f"SweepConfig.optimizer: {self.optimizer}({call}) raised "
                                 f"{type(err).__name__}: {_one_line(err)}") from None
            if not isinstance(made, optax.GradientTransformation):
                raise ValueError(f"SweepConfig.optimizer: {str(self.optimizer)!r} returned "
                                 f"{type(made).__name__}, not an optax.GradientTransformation")

        for k, where in checks:
            for v in swept[k] if where == "grid" else (opt_fixed[k],):
                build(where, k, v, **{**context, k: v})
        first = {k: vs[0] for k, vs in swept.items()}
        for k, where in checks:  # together: a value may be refused only next to another one
            for v in swept[k] if where == "grid" else (opt_fixed[k],):
                build(where, k, v, **{**first, **opt_fixed, k: v})
        if not checks:  # nothing but penalties swept or fixed: the optimizer at its defaults
            build("optimizer", None, None)

    def _check_traced(self, factory):
        """Trace the optimizer (``jax.eval_shape``: nothing runs) with its numeric hyperparameters as
        arrays, as the program passes them, on a small params tree, through ``init`` and ``update``:
        a factory that branches on a value in Python fails here, naming the argument."""
        numbers = {k: v for k, v in self.fixed if k not in PENALTIES and is_array_value(v)}
        numbers.update({k: vs[0] for k, vs in self.grid if k not in PENALTIES})
        static = {k: v for k, v in self.fixed if k not in PENALTIES and not is_array_value(v)}

        def step(traced: dict, concrete: dict):
            opt = factory(**concrete, **traced, **static)
            params = {"b": jnp.zeros(2, jnp.float32), "w": jnp.ones((3, 2), jnp.float32)}
            extra = {"value": jnp.zeros((), jnp.float32)} if isinstance(
                opt, optax.GradientTransformationExtraArgs) else {}
            return opt.update(params, opt.init(params), params, **extra)

        def trace(names):
            traced = {k: jax.ShapeDtypeStruct((), jnp.float32) for k in names}
            concrete = {k: v for k, v in numbers.items() if k not in names}
            jax.eval_shape(lambda t: step(t, concrete), traced)

        try:
            trace(list(numbers))
        except _TRACER_ERRORS:
            culprits = [k for k in numbers if _fails(trace, [k])] or list(numbers)
            where = "grid" if culprits[0] in dict(self.grid) else "fixed"
            raise ValueError(
                f"SweepConfig.{where}: {culprits[0]!r} enters the program as an array, but "
                f"{str(self.optimizer)!r} uses its value in Python (an if, float() or int() on it); "
                f"compute with it in jnp (jnp.where, lax.cond) so that it can be traced") from None
        except Exception as err:  # noqa: BLE001 - init or update failed: say so in one line
            raise ValueError(f"SweepConfig.optimizer: {str(self.optimizer)!r} failed in init or update on a "
                             f"small params tree: {type(err).__name__}: {_one_line(err)[:300]}") from None

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
            "optimizer": str(self.optimizer),
            "grid": [[k, list(v)] for k, v in self.grid],
            "fixed": [[k, v] for k, v in self.fixed],
            "seeds": self.seeds, "steps": self.steps, "batch_size": self.batch_size,
            "eval_every": self.eval_every, "log_every": self.log_every, "name": self.name,
        }

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
        d["problem"] = Problem.from_dict(d["problem"], sources=sources)
        if sources is not None:
            d["optimizer"] = specs.saved(d["optimizer"], sources["optimizer"])
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
        (:data:`FORMAT_VERSION`) and :meth:`sources`: results (and checkpoints) of another engine, or
        of an edited optimizer, model or data file, live under another name, so they are never reused."""
        identity = {"config": self.to_dict(), "results_format": FORMAT_VERSION, "sources": self.sources()}
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


def _fails(trace, names) -> bool:
    try:
        trace(names)
    except _TRACER_ERRORS:
        return True
    return False


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
