"""A sweep's hyperparameter values: a grid (every combination of its axes) or an explicit list of
points (each run as given, for random and quasi-random search), the fixed values, their checks as
values (one-line ``ValueError`` naming the field and the point), and their layout over runs.

Both a grid and a list of points are held as columns ``((name, (value, ...)), ...)``: a grid's axes
are crossed, a list's columns are read row by row (point ``i`` is ``{name: values[i]}``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

__all__ = ["axis_values", "is_array_value", "normalize_fixed", "normalize_grid", "normalize_points",
           "point_columns", "run_values"]

Columns = tuple[tuple[str, tuple[float, ...]], ...]


def axis_values(values) -> tuple:
    """One grid axis as a tuple, unconverted (:func:`normalize_grid` checks the values and names the
    field); a scalar (or a string) is a one-point axis."""
    if isinstance(values, np.ndarray):
        values = values.tolist()
    if isinstance(values, str | bytes) or not isinstance(values, list | tuple | range):
        return (values,)
    return tuple(values)


def is_array_value(value) -> bool:
    """A fixed value that enters the program as an array (a number), not as a static constant."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, int | float | np.number) and math.isfinite(v)


def normalize_grid(grid, allow_empty: bool = False) -> Columns:
    """``grid`` (a mapping or pairs of name and values) as columns of floats, checked."""
    if isinstance(grid, Mapping):
        grid = tuple(grid.items())
    try:
        axes = tuple((k, axis_values(vs)) for k, vs in grid)
    except (TypeError, ValueError):
        raise ValueError(f"SweepConfig.grid: expected ((name, (values...)), ...), got {grid!r}") from None
    if not axes and not allow_empty:
        raise ValueError("SweepConfig.grid: empty; sweep at least one hyperparameter (even one value), "
                         "or give points")
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
            if not _is_number(v):
                raise ValueError(f"SweepConfig.grid: {k!r} values must be finite numbers, got {v!r}")
        as32 = np.asarray(values, np.float32)
        if len(np.unique(as32)) != len(as32):
            raise ValueError(f"SweepConfig.grid: {k!r} has repeated values (in float32) {values}")
        out.append((k, tuple(float(v) for v in values)))
    return tuple(out)


def point_columns(points) -> Columns:
    """A list of points (mappings name -> number, every one naming the same hyperparameters) as
    columns, in the first point's order; checked (one-line ``ValueError`` naming the point)."""
    if isinstance(points, Mapping) or not isinstance(points, list | tuple):
        raise ValueError(f"SweepConfig.points: expected a list of {{name: value}} points, got {points!r}")
    if not points:
        raise ValueError("SweepConfig.points: empty; give at least one point")
    names: list = []
    for i, point in enumerate(points):
        if not isinstance(point, Mapping):
            raise ValueError(f"SweepConfig.points: point {i}: expected {{name: value}}, got {point!r}")
        if i == 0:
            names = list(point)
            if not names:
                raise ValueError("SweepConfig.points: point 0 names no hyperparameter")
        elif set(point) != set(names):
            raise ValueError(f"SweepConfig.points: point {i} names {', '.join(sorted(map(str, point)))}; "
                             f"point 0 names {', '.join(sorted(map(str, names)))} (every point names the "
                             f"same hyperparameters)")
    return tuple((k, tuple(point[k] for point in points)) for k in names)


def normalize_points(columns) -> Columns:
    """A list of points given as columns (or as a list of mappings) as columns of floats, checked:
    names are strings, values finite numbers, no point repeated (in float32)."""
    if columns and isinstance(columns, list | tuple) and isinstance(columns[0], Mapping):
        columns = point_columns(columns)
    try:
        columns = tuple((k, tuple(vs)) for k, vs in columns)
    except (TypeError, ValueError):
        raise ValueError(f"SweepConfig.points: expected ((name, (value per point...)), ...), "
                         f"got {columns!r}") from None
    names = [k for k, _ in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"SweepConfig.points: repeated names in {names}")
    if len({len(vs) for _, vs in columns}) > 1 or any(not vs for _, vs in columns):
        raise ValueError(f"SweepConfig.points: every name needs one value per point, got "
                         f"{[(k, len(vs)) for k, vs in columns]}")
    for k, values in columns:
        if not isinstance(k, str):
            raise ValueError(f"SweepConfig.points: names must be strings, got {k!r}")
        for i, v in enumerate(values):
            if not _is_number(v):
                raise ValueError(f"SweepConfig.points: point {i}: {k!r} must be a finite number, got {v!r}")
    rows = np.asarray([vs for _, vs in columns], np.float32).T  # (points, names)
    _, first, inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    repeats = [i for i in range(len(rows)) if first[inverse.ravel()[i]] != i]
    if repeats:
        i = repeats[0]
        raise ValueError(f"SweepConfig.points: point {i} repeats point {first[inverse.ravel()[i]]} "
                         f"(in float32)")
    return tuple((k, tuple(float(v) for v in values)) for k, values in columns)


def normalize_fixed(fixed) -> tuple[tuple[str, object], ...]:
    """``fixed`` (a mapping or pairs) as sorted pairs, checked: numbers, bools, strings and None."""
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


def run_values(grid: Columns, points: Columns, seeds: int) -> dict[str, np.ndarray]:
    """Swept name -> (runs,) float32 values: points in order (or grid points, first axis slowest),
    each repeated for its ``seeds`` seeds."""
    if points:
        return {k: np.repeat(np.asarray(vs, np.float32), seeds) for k, vs in points}
    rows = list(itertools.product(*(v for _, v in grid)))
    return {k: np.repeat(np.asarray([p[i] for p in rows], np.float32), seeds)
            for i, (k, _) in enumerate(grid)}
