"""Search spaces and quasi-random trials for tuning optimizers in ``lab bench``.

A search space is a tuple of dimensions: :class:`lab.optim.catalogue.Hyperparameter` (a number on a
log or linear scale) or :class:`Choice` (one of a few values). The catalogue's entries carry their
own; a user's comes as JSON (:func:`parse`, :func:`load`); :func:`search_space` picks the one that
applies to an optimizer, and :func:`sample` draws trials from it by scrambled Halton points.
"""

from __future__ import annotations

import collections
import inspect
import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import qmc

from lab.optim import catalogue
from lab.optim.catalogue import SCALES, Hyperparameter

__all__ = ["RESERVED", "RESERVED_PREFIXES", "Choice", "as_dict", "check_names", "default_learning_rate",
           "load", "parse", "sample", "search_space"]

# Names a search space may hold besides the optimizer's arguments: the penalties the sweep adds to the
# objective (lab.sweep.PENALTIES), the learning-rate schedule and its settings, gradient clipping's.
RESERVED = ("l1", "l2", "schedule")
RESERVED_PREFIXES = ("schedule.", "clip.")
_SCALAR = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Choice:
    """One dimension of a search space: ``name`` takes one of ``values`` (JSON scalars), each equally
    often."""

    name: str
    values: tuple[Any, ...]

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(self.values))
        bad = [v for v in self.values if not isinstance(v, _SCALAR)
               or (isinstance(v, float) and not math.isfinite(v))]
        if not self.values or bad:
            raise ValueError(f"Choice {self.name!r}: expected a non-empty list of strings, finite numbers, "
                             f"true/false or null, got {list(self.values)!r}")
        if len({(type(v), v) for v in self.values}) != len(self.values):
            raise ValueError(f"Choice {self.name!r}: repeated values in {list(self.values)!r}")


Dimension = Hyperparameter | Choice


def _dimension(name: str, spec: Any, where: str) -> Dimension:
    """One entry of a JSON search space: ``{"low", "high", "scale"}`` (AlgoPerf's ``{"min", "max",
    "scaling"}`` too), a list of choices (AlgoPerf's ``{"feasible_points": [...]}`` too)."""
    if isinstance(spec, Mapping) and set(spec) == {"feasible_points"}:
        spec = spec["feasible_points"]
    if isinstance(spec, list):
        try:
            return Choice(name, tuple(spec))
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: {name!r}: expected {{\"low\": ..., \"high\": ..., \"scale\": \"log\" or "
                         f"\"linear\"}} or a list of choices, got {json.dumps(spec)}")
    keys = {"low": "low", "high": "high", "scale": "scale", "min": "low", "max": "high", "scaling": "scale"}
    unknown = [k for k in spec if k not in keys]
    if unknown:
        raise ValueError(f"{where}: {name!r}: unknown key {unknown[0]!r}; valid: low, high, scale")
    fields = {keys[k]: v for k, v in spec.items()}
    missing = [k for k in ("low", "high", "scale") if k not in fields]
    if len(fields) != len(spec) or missing:
        raise ValueError(f"{where}: {name!r}: expected exactly the keys low, high and scale, got "
                         f"{', '.join(spec)}")
    if fields["scale"] not in SCALES:
        raise ValueError(f"{where}: {name!r}: unknown scale {fields['scale']!r}; valid: {', '.join(SCALES)}")
    for k in ("low", "high"):
        v = fields[k]
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise ValueError(f"{where}: {name!r}: {k} must be a number, got {json.dumps(v)}")
    try:
        return Hyperparameter(name, float(fields["low"]), float(fields["high"]), fields["scale"])
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def parse(spec: str | Mapping[str, Any], where: str = "search space") -> tuple[Dimension, ...]:
    """A search space from JSON text or the dict it decodes to.

    Each key is a hyperparameter's name; its value is either a range or a list of choices::

        {"learning_rate": {"low": 1e-4, "high": 1e-1, "scale": "log"},
         "b1": {"low": 0.8, "high": 0.99, "scale": "linear"},
         "schedule": ["constant", "warmup_cosine"]}

    ``"log"`` draws uniformly in log space (``low > 0``), ``"linear"`` uniformly in ``[low, high]``; a
    list draws each choice equally often (a one-element list fixes the value). AlgoPerf's spelling,
    ``{"min": ..., "max": ..., "scaling": ...}`` and ``{"feasible_points": [...]}``, is read too.

    Raises:
        ValueError: one line naming the bad key: not JSON, not an object, an unknown key or scale,
            bounds out of order, a log scale with ``low <= 0``.
    """
    if isinstance(spec, str):
        def unique(pairs):
            keys = [k for k, _ in pairs]
            if len(set(keys)) != len(keys):
                raise ValueError(f"{where}: {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
            return dict(pairs)

        try:
            spec = json.loads(spec, object_pairs_hook=unique)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON: {err}") from None
    if not isinstance(spec, Mapping) or not spec:
        raise ValueError(f"{where}: expected a non-empty JSON object of hyperparameters, got "
                         f"{json.dumps(spec) if not isinstance(spec, Mapping) else '{}'}")
    for name in spec:
        if not isinstance(name, str) or not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"{where}: {name!r} is not a hyperparameter name (letters, digits, '_', "
                             f"'.' between parts)")
    return tuple(_dimension(name, value, where) for name, value in spec.items())


def load(path: str | os.PathLike) -> tuple[Dimension, ...]:
    """A search space from a JSON file (the format of :func:`parse`); errors name the file."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ValueError(f"search space file {os.fspath(path)!r}: cannot read it: {reason}") from None
    return parse(text, where=f"search space file {os.fspath(path)!r}")


def as_dict(space: tuple[Dimension, ...]) -> dict[str, Any]:
    """The JSON-ready dict of ``space`` (``parse(as_dict(space)) == space``)."""
    return {d.name: list(d.values) if isinstance(d, Choice) else
            {"low": d.low, "high": d.high, "scale": d.scale} for d in _check_space(space)}


def _check_space(space) -> tuple[Dimension, ...]:
    if not isinstance(space, tuple | list) or not space or \
            not all(isinstance(d, Hyperparameter | Choice) for d in space):
        raise ValueError(f"search space: expected a non-empty tuple of Hyperparameter and Choice, got "
                         f"{space!r}")
    names = [d.name for d in space]
    repeated = [n for n, c in collections.Counter(names).items() if c > 1]
    if repeated:
        raise ValueError(f"search space: {repeated[0]!r} appears more than once")
    return tuple(space)


def _name(factory: Callable) -> str:
    return getattr(factory, "__name__", repr(factory))


def check_names(space: tuple[Dimension, ...], factory: Callable) -> None:
    """Raise a one-line ``ValueError`` for a name in ``space`` that ``factory`` does not take.

    Allowed: the factory's keyword arguments (any name, if it takes ``**kwargs``), the reserved names
    :data:`RESERVED` and names starting with one of :data:`RESERVED_PREFIXES`.
    """
    space = _check_space(space)
    try:
        signature = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        raise ValueError(f"search space: cannot read the arguments of {_name(factory)}; pass a Python "
                         f"function") from None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.values()):
        return
    keyword = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    valid = [k for k, p in signature.items() if p.kind in keyword]
    for d in space:
        if d.name not in valid and d.name not in RESERVED and not d.name.startswith(RESERVED_PREFIXES):
            allowed = valid + list(RESERVED) + [p + "*" for p in RESERVED_PREFIXES]
            raise ValueError(f"search space: {d.name!r} is not an argument of {_name(factory)}; valid: "
                             f"{', '.join(allowed)}")


def default_learning_rate() -> Hyperparameter:
    """The learning-rate range of a candidate without a search space: the range the catalogue's
    optimizers use most often (ties: the widest), log-uniform."""
    ranges = [(h.low, h.high, h.scale) for e in catalogue.entries() for h in e.search_space
              if h.name == "learning_rate"]
    if not ranges:
        return catalogue.LEARNING_RATE
    counts = collections.Counter(ranges)
    low, high, _ = max(counts, key=lambda r: (counts[r], math.log(r[1] / r[0]) if r[0] > 0 else 0.0))
    return Hyperparameter("learning_rate", low, high, "log")


def search_space(optimizer: str | Callable, space: Any = None) -> tuple[Dimension, ...]:
    """The search space to tune ``optimizer`` over.

    Args:
        optimizer: a catalogue name or a factory (keyword hyperparameters -> GradientTransformation).
        space: the user's search space (a tuple of dimensions, a dict or JSON text, see :func:`parse`),
            checked against the factory's arguments; ``None``: the catalogue entry's search space, or
            for a factory outside the catalogue, ``learning_rate`` on :func:`default_learning_rate`.
    """
    if isinstance(optimizer, str):
        entry = catalogue.get(optimizer)
    elif callable(optimizer):
        entry = next((e for e in catalogue.entries() if e.factory is optimizer), None)
    else:
        raise TypeError(f"optimizer: expected a catalogue name or a factory, got {type(optimizer).__name__}")
    factory = entry.factory if entry is not None else optimizer
    if space is not None:
        space = parse(space) if isinstance(space, str | Mapping) else _check_space(space)
        check_names(space, factory)
        return space
    if entry is not None:
        return entry.search_space
    try:
        takes_lr = "learning_rate" in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        takes_lr = False
    if not takes_lr:
        raise ValueError(f"{_name(factory)} has no learning_rate argument, so it needs a search space "
                         f"(for example {{\"name\": {{\"low\": 1e-4, \"high\": 1.0, \"scale\": \"log\"}}}})")
    return (default_learning_rate(),)


def sample(space: tuple[Dimension, ...], n: int, seed: int) -> list[dict[str, Any]]:
    r"""``n`` trials from ``space``, quasi-random: scrambled Halton points mapped to each dimension.

    Point :math:`u \in [0, 1)^d` (one coordinate per dimension) becomes

    - log scale: :math:`x = \exp(\log a + u (\log b - \log a))`, log-uniform on :math:`[a, b]`;
    - linear scale: :math:`x = a + u (b - a)`;
    - a choice of :math:`k` values: value number :math:`\lfloor k u \rfloor`.

    AlgoPerf draws its tuning trials the same way: quasi-random search (Bousquet et al. 2017,
    "Critical Hyper-Parameters: No Random, No Cry", arXiv:1706.03200) from a shuffled, shifted Halton
    sequence (mlcommons/algorithmic-efficiency, ``algoperf/halton.py``). Halton points fill the cube
    more evenly than independent draws (low discrepancy: in the coordinate of prime base p, the first
    p^m points fall one in each interval of width p^-m), so a handful of trials do not bunch up;
    unlike Sobol points, whose balance needs a power of two, any number of trials keeps it.
    scipy's scrambling (Owen 2017, "A randomized Halton algorithm in R") randomises the points by
    ``seed`` and removes the correlations of the unscrambled sequence's first points (which AlgoPerf
    skips instead).

    Args:
        space: the dimensions (from :func:`search_space` or :func:`parse`).
        n: number of trials, >= 1.
        seed: a non-negative integer; the same seed gives the same trials.

    Returns:
        ``n`` dicts ``{name: value}`` in the space's order (floats, or the choices' values).
    """
    space = _check_space(space)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: expected a positive integer number of trials, got {n!r}")
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed: expected a non-negative integer, got {seed!r}")
    points = qmc.Halton(d=len(space), scramble=True, rng=np.random.default_rng(seed)).random(n)
    columns = []
    for d, u in zip(space, points.T, strict=True):
        if isinstance(d, Choice):
            index = np.minimum((u * len(d.values)).astype(np.int64), len(d.values) - 1)
            columns.append([d.values[i] for i in index])
        elif d.scale == "log":
            x = np.exp(math.log(d.low) + u * (math.log(d.high) - math.log(d.low)))
            columns.append([float(v) for v in np.clip(x, d.low, d.high)])
        else:
            columns.append([float(v) for v in np.clip(d.low + u * (d.high - d.low), d.low, d.high)])
    return [{d.name: column[i] for d, column in zip(space, columns, strict=True)} for i in range(n)]
