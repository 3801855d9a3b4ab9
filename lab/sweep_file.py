"""Sweep files: a :class:`lab.sweep.SweepConfig` described in TOML, for ``lab sweep FILE.toml``.

:func:`read` (a file) and :func:`parse` (a string) check every key and raise a one-line
``ValueError`` that names the file and the key (``sweep.toml: [grid] learning_rate: expected a list
of numbers, got "fast"``). The format, key by key: ``docs/sweep_files.md``.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import math
import os
import re
import tomllib
import types
import typing
from typing import Any

from lab.problems import Problem, check_model, load_data
from lab.sweep.config import SweepConfig

__all__ = ["FULL_BATCH", "from_table", "parse", "read"]

FULL_BATCH = "full"  # batch_size = "full": the whole training set each step (TOML has no None)
# Tables and keys read by hand; every other SweepConfig field of a simple type is a top-level key.
_TABLES = ("problem", "grid", "fixed", "points")
_BY_HAND = ("problem", "optimizer", "grid", "fixed", "points")
# A field's type -> (what a value must be, its plural, the test).
_SCALARS = {
    str: ("a string", "strings", lambda v: isinstance(v, str)),
    bool: ("true or false", "true or false values", lambda v: isinstance(v, bool)),
    int: ("an integer", "integers", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: ("a number", "numbers", lambda v: isinstance(v, int | float) and not isinstance(v, bool)),
}


def read(path: str | os.PathLike) -> SweepConfig:
    """The sweep described by the TOML file at ``path``; ``ValueError`` (one line) if it is not one.

    The file's name (without ``.toml``) is the sweep's ``name`` unless the file sets one.
    """
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            table = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise ValueError(f"{where}: is a directory, not a TOML file") from None
    except OSError as err:
        raise ValueError(f"{where}: cannot be read ({err.strerror or err})") from None
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: invalid TOML: {err}") from None
    except UnicodeDecodeError as err:
        raise ValueError(f"{where}: not UTF-8 text (byte {err.start})") from None
    stem = os.path.splitext(os.path.basename(where))[0]
    return from_table(table, where, default_name=stem if re.fullmatch(r"[A-Za-z0-9._-]+", stem) else None)


def parse(text: str, where: str = "<sweep>") -> SweepConfig:
    """The sweep described by the TOML ``text``; errors name ``where`` as if it were the file."""
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"{where}: invalid TOML: {err}") from None
    return from_table(table, where)


def from_table(table: dict[str, Any], where: str, default_name: str | None = None) -> SweepConfig:
    """The sweep described by a parsed TOML document (:func:`tomllib.loads`'s dict)."""
    top = _top_level_fields()
    valid = ["optimizer", *top, "problem", "grid", "points", "fixed"]
    for key in table:
        if key not in valid:
            raise ValueError(f"{where}: {key}: unknown key; valid: {', '.join(valid)}")
    if "optimizer" not in table:
        raise ValueError(f"{where}: optimizer: missing (a name such as \"adam\", or \"module:factory\")")
    if "grid" in table and "points" in table:
        raise ValueError(f"{where}: [[points]]: give [grid] (every combination of its values) or "
                         f"[[points]] (each point as written), not both")
    if "grid" not in table and "points" not in table:
        raise ValueError(f"{where}: [grid]: missing (the swept hyperparameters, each a list of values; "
                         f"or [[points]] tables, one per point)")
    optimizer = _convert(table["optimizer"], str, f"{where}: optimizer")
    problem = _problem(_table(table.get("problem", {}), f"{where}: [problem]"), where)
    grid = _grid(_flat(_table(table["grid"], f"{where}: [grid]")), where) if "grid" in table else None
    points = _points(table["points"], where) if "points" in table else None
    fixed = _fixed(_flat(_table(table.get("fixed", {}), f"{where}: [fixed]")), where)
    kwargs = {"name": default_name} if default_name is not None else {}
    for key, hint in top.items():
        if key == "batch_size" and table.get(key) == FULL_BATCH:
            kwargs[key] = None
        elif key == "batch_size" and isinstance(table.get(key), str):
            raise ValueError(f"{where}: batch_size: expected a positive integer or \"{FULL_BATCH}\", "
                             f"got {_show(table[key])}")
        elif key in table:
            kwargs[key] = _convert(table[key], hint, f"{where}: {key}")
    try:
        config = SweepConfig.make(problem, optimizer, grid, fixed, points=points, **kwargs)
        check_model(config.problem)  # the checks that need the data, before anything runs
        config.check_batch_size(load_data(config.problem).x_train.shape[0])
    except ValueError as err:
        raise ValueError(f"{where}: {_keys_of(str(err))}") from None
    return config


def _top_level_fields() -> dict[str, Any]:
    """The SweepConfig fields a file sets as top-level ``key = value`` (name -> type)."""
    hints = typing.get_type_hints(SweepConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(SweepConfig)
            if f.init and f.name not in _BY_HAND and _describe(hints[f.name]) is not None}


def _problem(table: dict, where: str) -> Problem:
    hints = typing.get_type_hints(Problem)
    fields = [f.name for f in dataclasses.fields(Problem) if f.init and _describe(hints[f.name]) is not None]
    kwargs = {}
    for key, value in table.items():
        if key not in fields:
            raise ValueError(f"{where}: [problem] {key}: unknown key; valid: {', '.join(fields)}")
        kwargs[key] = _convert(value, hints[key], f"{where}: [problem] {key}")
    try:
        return Problem(**kwargs)
    except ValueError as err:
        raise ValueError(f"{where}: {_keys_of(str(err))}") from None


def _grid(table: dict, where: str) -> dict[str, list]:
    is_number = _SCALARS[float][2]
    for key, values in table.items():
        if not isinstance(values, list) or not all(is_number(v) for v in values):
            hint = f" (one value: write [{_show(values)}], or set it in [fixed])" if is_number(values) else ""
            raise ValueError(f"{where}: [grid] {key}: expected a list of numbers, got {_show(values)}{hint}")
    return table


def _points(value, where: str) -> list[dict[str, Any]]:
    """``[[points]]`` tables: each a point, every value a number."""
    is_number = _SCALARS[float][2]
    if not isinstance(value, list) or not value or not all(isinstance(p, dict) for p in value):
        raise ValueError(f"{where}: [[points]]: expected [[points]] tables (one per point), "
                         f"got {_show(value)}")
    points = [_flat(p) for p in value]
    for i, point in enumerate(points):
        for key, v in point.items():
            if not is_number(v):
                raise ValueError(f"{where}: [[points]] point {i} {key}: expected a number, got {_show(v)}")
    return points


def _flat(table: dict, prefix: str = "") -> dict[str, Any]:
    """A table with TOML's dotted keys (``schedule.warmup_steps = 10``, read as nested tables)
    flattened back to dotted names."""
    out = {}
    for key, value in table.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def _fixed(table: dict, where: str) -> dict[str, Any]:
    for key, value in table.items():
        if not isinstance(value, bool | int | float | str):
            raise ValueError(f"{where}: [fixed] {key}: expected a number, true or false, or a string, "
                             f"got {_show(value)}")
    return table


def _table(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: expected a table, got {_show(value)}")
    return value


# ----------------------------------------------------------------------------- types and messages


def _describe(hint) -> tuple[str, Any] | None:
    """What a TOML value for a field of type ``hint`` must be, and its test; None if a file cannot
    give one. ``X | None`` is ``X`` (TOML has no None: leave the key out for the default)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return _describe(args[0]) if len(args) == 1 else None
    if hint in _SCALARS:
        what, _, test = _SCALARS[hint]
        return what, test
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        item = args[0]
        if item in _SCALARS:  # tuple[int, ...]: a list
            _, plural, test = _SCALARS[item]
            return f"a list of {plural}", lambda v: isinstance(v, list) and all(map(test, v))
        if typing.get_origin(item) is tuple and typing.get_args(item)[0] is str:  # (name, value) pairs
            return "a table", lambda v: isinstance(v, dict)
    return None


def _convert(value, hint, where: str):
    what, test = _describe(hint)
    if not test(value):
        raise ValueError(f"{where}: expected {what}, got {_show(value)}")
    return value


def _show(value) -> str:
    """A value as TOML writes it: ``"fast"``, ``true``, ``[1, 2]``, ``1e-3``, a table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, list):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, dict):
        return "a table {" + ", ".join(f"{k} = {_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, datetime.date | datetime.time):
        return f"a date/time {value.isoformat()}"
    return repr(value)


def _keys_of(message: str) -> str:
    """A config's message in the file's words: ``SweepConfig.grid:`` -> ``[grid]:``,
    ``SweepConfig.points: point 2`` -> ``[[points]] point 2``, ``SweepConfig.steps:`` -> ``steps:``,
    ``Problem.hidden`` -> ``[problem] hidden``."""
    message = re.sub(r"\bProblem\.(\w+)", r"[problem] \1", message)
    message = re.sub(r"\bSweepConfig\.points: point (\d+)", r"[[points]] point \1", message)
    return re.sub(r"\bSweepConfig\.(\w+)",
                  lambda m: ("[[points]]" if m[1] == "points" else f"[{m[1]}]") if m[1] in _TABLES else m[1],
                  message)
