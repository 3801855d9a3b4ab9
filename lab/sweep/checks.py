"""Checks of a sweep's optimizer against its hyperparameter values, before anything is compiled: the
factory built with every concrete value (:func:`build_with_values`) and traced with its numbers as
arrays (:func:`trace_with_arrays`); each failure is one ``ValueError`` line naming the config field.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import optax

from lab.sweep.hparams import is_array_value

__all__ = ["build_with_values", "one_line", "trace_with_arrays"]

_TRACER_ERRORS = (jax.errors.ConcretizationTypeError, jax.errors.TracerIntegerConversionError,
                  jax.errors.TracerArrayConversionError)


def build_with_values(factory, spec: str, params: dict, swept: dict, fixed: dict, where: str) -> None:
    """Build the optimizer with every concrete value, so that a bad one (a negative learning rate,
    a beta above 1, a flag that is not a bool) fails here with the optimizer's own message, blamed
    on its field: each value is tried alone (other arguments at their defaults, required ones at
    values already checked), then with the fixed values and the first grid point, or every point of
    a list whole (``where == "points"``).

    Args:
        factory: the optimizer factory; spec: its name in messages.
        params: the factory's keyword parameters (``inspect.Parameter`` by name).
        swept: name -> values of its swept arguments (grid axes or points' columns).
        fixed: name -> value of its fixed arguments.
        where: ``"grid"`` or ``"points"``, the field swept values are blamed on.
    """
    required = [k for k, p in params.items() if p.default is inspect.Parameter.empty]
    context = {k: swept[k][0] if k in swept else fixed[k] for k in required}
    checks = [(k, where if k in swept else "fixed") for k in required]  # (name, field)
    checks += [(k, "fixed") for k in fixed if k not in required]
    checks += [(k, where) for k in swept if k not in required]

    def build(blame, **args):
        try:
            made = factory(**args)
        except (TypeError, ValueError) as err:
            raise ValueError(f"SweepConfig.{blame}: {one_line(err)}") from None
        except Exception as err:  # noqa: BLE001 - the factory failed otherwise: its own bug
            call = ", ".join(f"{k}={v!r}" for k, v in args.items())
            raise ValueError(f"SweepConfig.optimizer: {spec}({call}) raised "
                             f"{type(err).__name__}: {one_line(err)}") from None
        if not isinstance(made, optax.GradientTransformation):
            raise ValueError(f"SweepConfig.optimizer: {str(spec)!r} returned "
                             f"{type(made).__name__}, not an optax.GradientTransformation")

    for k, field in checks:
        for v in dict.fromkeys(swept[k]) if field != "fixed" else (fixed[k],):
            point = f"point {swept[k].index(v)}: " if field == "points" else ""
            build(f"{field}: {point}{k}={v!r}", **{**context, k: v})
    if where == "points":  # each point whole, with the fixed values
        for i, row in enumerate(zip(*swept.values(), strict=True)):
            point = dict(zip(swept, row, strict=True))
            shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
            build(f"points: point {i} ({shown})", **fixed, **point)
    else:  # together: a value may be refused only next to another one
        first = {k: vs[0] for k, vs in swept.items()}
        for k, field in checks:
            for v in swept[k] if field == "grid" else (fixed[k],):
                build(f"{field}: {k}={v!r}", **{**first, **fixed, k: v})
    if not checks:  # nothing but penalties (or schedules) swept or fixed: the optimizer at its defaults
        build("optimizer")


def trace_with_arrays(factory, spec: str, swept: dict, fixed: dict, where: str) -> None:
    """Trace the optimizer (``jax.eval_shape``: nothing runs) with its numeric hyperparameters as
    arrays, as the program passes them, on a small params tree, through ``init`` and ``update``:
    a factory that branches on a value in Python fails here, naming the argument (arguments as in
    :func:`build_with_values`)."""
    numbers = {k: v for k, v in fixed.items() if is_array_value(v)}
    numbers.update({k: vs[0] for k, vs in swept.items()})
    static = {k: v for k, v in fixed.items() if not is_array_value(v)}

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

    def fails(names) -> bool:
        try:
            trace(names)
        except _TRACER_ERRORS:
            return True
        return False

    try:
        trace(list(numbers))
    except _TRACER_ERRORS:
        culprits = [k for k in numbers if fails([k])] or list(numbers)
        field = where if culprits[0] in swept else "fixed"
        raise ValueError(
            f"SweepConfig.{field}: {culprits[0]!r} enters the program as an array, but "
            f"{str(spec)!r} uses its value in Python (an if, float() or int() on it); "
            f"compute with it in jnp (jnp.where, lax.cond) so that it can be traced") from None
    except Exception as err:  # noqa: BLE001 - init or update failed: say so in one line
        raise ValueError(f"SweepConfig.optimizer: {str(spec)!r} failed in init or update on a "
                         f"small params tree: {type(err).__name__}: {one_line(err)[:300]}") from None


def one_line(err: BaseException) -> str:
    """An exception's message on one line (its type's name if it has none)."""
    return " ".join(str(err).split()) or type(err).__name__
