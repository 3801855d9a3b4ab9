"""Weight initializers: each maps ``(key, fan_in, fan_out)`` to a ``(fan_in, fan_out)`` matrix.

The variance each one targets (Var[w] for every entry):

========================  =================================  ==========================
name                      distribution                       Var[w]
========================  =================================  ==========================
``normal``                N(0, std^2)                        std^2
``uniform``               U(-scale, scale)                   scale^2 / 3
``xavier_normal``         N(0, 2 / (fan_in + fan_out))       2 / (fan_in + fan_out)
``xavier_uniform``        U(-a, a), a = sqrt(6/(in+out))     2 / (fan_in + fan_out)
``he_normal``             N(0, 2 / fan_in)                   2 / fan_in
``he_uniform``            U(-a, a), a = sqrt(6/fan_in)       2 / fan_in
``zeros``                 all zeros                          0
========================  =================================  ==========================

Xavier/Glorot (Glorot & Bengio, 2010) keeps activation and gradient variance roughly constant
through tanh-like layers; He/Kaiming (He et al., 2015) doubles it to make up for ReLU zeroing half
of its inputs. Biases start at zero (:func:`zeros`).

``zeros`` (:func:`zeros_init`) is the zero initializer in the family's form: it takes ``(key, fan_in,
fan_out)`` like the others (the key is unused) and returns a ``(fan_in, fan_out)`` zero matrix, e.g.
for the all-zero-weights demonstration (every hidden unit stays the same, the symmetry is never
broken). Biases, shaped ``(fan_out,)``, use the shortcut :func:`zeros`. It is looked up by name
(:func:`get_initializer`, :func:`target_variance`) but is not in :data:`INITIALIZERS`, the random
initializers that the variance tests and figures loop over.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array
Initializer = Callable[..., Array]


def normal(key: Array, fan_in: int, fan_out: int, std: float = 0.01, dtype=jnp.float32) -> Array:
    """N(0, std^2) entries."""
    return std * jax.random.normal(key, (fan_in, fan_out), dtype)


def uniform(key: Array, fan_in: int, fan_out: int, scale: float = 0.05, dtype=jnp.float32) -> Array:
    """U(-scale, scale) entries; variance scale^2 / 3."""
    return jax.random.uniform(key, (fan_in, fan_out), dtype, -scale, scale)


def xavier_normal(key: Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> Array:
    """Glorot normal: N(0, 2 / (fan_in + fan_out))."""
    return normal(key, fan_in, fan_out, std=math.sqrt(2.0 / (fan_in + fan_out)), dtype=dtype)


def xavier_uniform(key: Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> Array:
    """Glorot uniform: U(-a, a) with a = sqrt(6 / (fan_in + fan_out))."""
    return uniform(key, fan_in, fan_out, scale=math.sqrt(6.0 / (fan_in + fan_out)), dtype=dtype)


def he_normal(key: Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> Array:
    """He/Kaiming normal: N(0, 2 / fan_in)."""
    return normal(key, fan_in, fan_out, std=math.sqrt(2.0 / fan_in), dtype=dtype)


def he_uniform(key: Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> Array:
    """He/Kaiming uniform: U(-a, a) with a = sqrt(6 / fan_in)."""
    return uniform(key, fan_in, fan_out, scale=math.sqrt(6.0 / fan_in), dtype=dtype)


def zeros(fan_out: int, dtype=jnp.float32) -> Array:
    """Zero biases of shape ``(fan_out,)`` (the bias shortcut; :func:`zeros_init` is the initializer)."""
    return jnp.zeros((fan_out,), dtype)


def zeros_init(key: Array, fan_in: int, fan_out: int, dtype=jnp.float32) -> Array:
    """All-zero ``(fan_in, fan_out)`` matrix, the ``"zeros"`` initializer; variance 0, ``key`` unused."""
    del key
    return jnp.zeros((fan_in, fan_out), dtype)


def target_variance(name: str, fan_in: int, fan_out: int, **kwargs: float) -> float:
    """The per-entry variance that initializer ``name`` targets (see the module table).

    ``kwargs`` are the initializer's own parameters (``std`` for normal, ``scale`` for uniform),
    with its defaults when left out.

    Raises:
        ValueError: for an unknown name, listing the valid ones, or a parameter it does not take.
    """
    name = _ALIASES.get(name, name)
    fn = _lookup(name)
    _check_params(name, fn, kwargs)
    params = {p.name: p.default for p in inspect.signature(fn).parameters.values()} | kwargs
    table = {
        "normal": lambda: params["std"] ** 2,
        "uniform": lambda: params["scale"] ** 2 / 3,
        "xavier_normal": lambda: 2.0 / (fan_in + fan_out),
        "xavier_uniform": lambda: 2.0 / (fan_in + fan_out),
        "he_normal": lambda: 2.0 / fan_in,
        "he_uniform": lambda: 2.0 / fan_in,
        "zeros": lambda: 0.0,
    }
    return table[name]()


INITIALIZERS: dict[str, Initializer] = {
    "normal": normal,
    "uniform": uniform,
    "xavier_normal": xavier_normal,
    "xavier_uniform": xavier_uniform,
    "he_normal": he_normal,
    "he_uniform": he_uniform,
}
_ALIASES = {
    "xavier": "xavier_normal",
    "glorot": "xavier_normal",
    "glorot_normal": "xavier_normal",
    "glorot_uniform": "xavier_uniform",
    "he": "he_normal",
    "kaiming": "he_normal",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
}


# Looked up by name like the others, but not a random initializer: not in INITIALIZERS.
_BY_NAME_ONLY: dict[str, Initializer] = {"zeros": zeros_init}


def _lookup(name: str) -> Initializer:
    """The initializer called ``name`` (aliases already resolved); ValueError listing valid names."""
    table = INITIALIZERS | _BY_NAME_ONLY
    if name not in table:
        valid = ", ".join([*table, *_ALIASES])
        raise ValueError(f"unknown initializer {name!r}; valid names: {valid}")
    return table[name]


def _check_params(name: str, fn: Initializer, kwargs: dict[str, float]) -> None:
    """ValueError naming every entry of ``kwargs`` that initializer ``fn`` does not take."""
    takes = [p for p in inspect.signature(fn).parameters if p not in ("key", "fan_in", "fan_out", "dtype")]
    if unknown := sorted(set(kwargs) - set(takes)):
        takes_text = ", ".join(takes) or "no parameters"
        raise ValueError(f"initializer {name!r} takes {takes_text}, not {', '.join(unknown)}")


def get_initializer(name: str | Initializer, **kwargs: float) -> Initializer:
    """Look an initializer up by name (or alias); ``kwargs`` set ``std`` / ``scale``.

    Returns a function ``(key, fan_in, fan_out, dtype=float32) -> (fan_in, fan_out) array``.

    Raises:
        ValueError: for an unknown name, listing the valid ones, or a parameter it does not take.
    """
    if callable(name):
        return name
    name = _ALIASES.get(name, name)
    fn = _lookup(name)
    if not kwargs:
        return fn
    _check_params(name, fn, kwargs)
    return lambda key, fan_in, fan_out, dtype=jnp.float32: fn(
        key, fan_in, fan_out, dtype=dtype, **kwargs
    )
