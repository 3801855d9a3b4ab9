"""What every optimizer of :mod:`lab.optim` shares: argument checks, dtype-safe arithmetic, and a
``chain`` that refuses leaves it cannot optimize.

Hyperparameters may be Python numbers, JAX arrays, or tracers inside ``jit``/``vmap``; concrete values
are checked when an optimizer is built, traced ones cannot be. The dtype conventions (state in each
parameter's dtype, hyperparameters cast where they meet a leaf, bias corrections in float32 at least)
are described in ``docs/optimizers.md``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Scalar = float | Array  # a Python number or a scalar array, possibly traced
ScalarOrSchedule = Scalar | Callable[[Array], Array]
Updates = Any  # a pytree of arrays shaped like the params

_INT32_MAX = np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- validation


def check_scalar(name: str, value: Any, low: float, high: float = math.inf) -> None:
    """Raise if a concrete hyperparameter is not a real scalar in ``[low, high]``; skip tracers."""
    if isinstance(value, jax.core.Tracer):
        return  # a sweep's traced value: nothing to inspect at construction time
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Real) or isinstance(value, (np.ndarray, jax.Array, np.generic))
    ):
        raise TypeError(f"{name} must be a real number or a scalar array, got {type(value).__name__} "
                        f"{value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real number or a scalar array, got dtype {arr.dtype}")
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape} "
                         "(to sweep over values, vmap over scalars)")
    v = float(arr)
    if not (math.isfinite(v) and low <= v <= high):
        interval = f"[{low:g}, {high:g}]" if high != math.inf else f"[{low:g}, inf)"
        raise ValueError(f"{name} must be finite and in {interval}, got {value!r}")


def check_learning_rate(learning_rate: Any) -> None:
    if callable(learning_rate) and not isinstance(learning_rate, (jax.Array, np.ndarray)):
        return  # a schedule: a function of the step count
    check_scalar("learning_rate", learning_rate, 0.0)


def check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a Python bool (it decides the program's structure), "
                        f"got {type(value).__name__} {value!r}")


def check_float_leaves(params: Any, allow_complex: bool = False, name: str = "this optimizer") -> None:
    """Raise a TypeError naming the first leaf that is not floating (or complex, where allowed)."""
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        dtype = jnp.result_type(leaf)
        is_complex = jnp.issubdtype(dtype, jnp.complexfloating)
        if jnp.issubdtype(dtype, jnp.floating) or (allow_complex and is_complex):
            continue
        where = jax.tree_util.keystr(path) or "<root>"
        if is_complex:
            raise TypeError(f"{name} supports real floating-point leaves only (as in optax); leaf {where} "
                            f"has dtype {dtype}")
        allowed = "floating-point or complex" if allow_complex else "floating-point"
        raise TypeError(f"lab.optim supports {allowed} leaves only; leaf {where} has dtype {dtype}")


# ----------------------------------------------------------------------------- numerics


def safe_increment(count: Array) -> Array:
    """``count + 1`` for an int32 step count, saturating at ``2**31 - 1`` instead of wrapping."""
    return jnp.where(count < _INT32_MAX, count + 1, jnp.int32(_INT32_MAX))


def cast(value: Scalar, dtype) -> Array:
    """A hyperparameter (or scalar derived from one) in a leaf's dtype."""
    return jnp.asarray(value).astype(dtype)


def moment(x: Array, t: Array, decay: Scalar) -> Array:
    """``(1 - decay) x + decay t`` in the state's dtype (``x`` may be a real ``|g|^2``)."""
    return cast(1 - decay, t.dtype) * x.astype(t.dtype) + cast(decay, t.dtype) * t


def debias(x: Array, correction: Array) -> Array:
    """A moment divided by its bias correction, cast to the moment's dtype."""
    return x / correction.astype(x.dtype)


def at_least_float32(dtype) -> jnp.dtype:
    """``dtype`` if it has 32 bits or more, else float32 (``jnp.promote_types`` refuses mixed
    floats under strict dtype promotion)."""
    dtype = jnp.dtype(dtype)
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)


def bias_correction(decay: Scalar, count: Array) -> Array:
    """``1 - decay**count`` in at least float32 (see the module's dtype policy)."""
    d = jnp.asarray(decay)
    if not jnp.issubdtype(d.dtype, jnp.floating) or jnp.finfo(d.dtype).bits < 32:
        d = d.astype(jnp.float32)
    return 1 - d ** count.astype(d.dtype)


def zeros_like(params: Any) -> Any:
    return jax.tree.map(jnp.zeros_like, params)


def full_like(params: Any, value: Scalar) -> Any:
    return jax.tree.map(lambda p: jnp.full_like(p, cast(value, p.dtype)), params)


def abs_sq(x: Array) -> Array:
    """``|x|**2``: ``x * x`` for a real leaf, the real ``(conj(x) * x).real`` for a complex one (as
    optax's second moments do). Cast it with ``.astype(state.dtype)`` where it meets a complex state."""
    return (jnp.conj(x) * x).real if jnp.iscomplexobj(x) else x * x


def checked_chain(*transforms: optax.GradientTransformation, allow_complex: bool = False,
                  name: str = "this optimizer") -> optax.GradientTransformation:
    """``optax.chain`` whose ``init`` rejects leaves it cannot optimize with a clear error: non-floating
    ones, and complex ones unless ``allow_complex`` (gradients of complex parameters are conjugated
    by the caller, as in optax). Extra arguments of ``update`` (a loss ``value``) reach every
    transformation that takes them, as in ``optax.chain``."""
    chained = optax.chain(*transforms)

    def init_fn(params):
        check_float_leaves(params, allow_complex, name)
        return chained.init(params)

    return optax.GradientTransformationExtraArgs(init_fn, chained.update)

