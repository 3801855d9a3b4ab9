"""The compiled program behind :func:`lab.verify.compare`: several candidate/reference pairs run side by
side over the same gradient stream, each pair feeding both optimizers its reference's parameters,
with the per-step error statistics computed in the program.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.verify.stream import IMAG_SEED, STAT_NAMES, Layout, step_stats, stream

Array = jax.Array
CONSTANT, SCHEDULE = "constant lr", "schedule"  # the settings every dtype is run in


def oscillating_schedule(learning_rate: float):
    """``lr * (1 + 0.5 sin(0.3 t + 1))``: a schedule that differs at every step (by up to 15%)."""

    def schedule(count: Array) -> Array:
        t = jnp.asarray(count).astype(jnp.asarray(learning_rate * 1.0).dtype)
        return learning_rate * (1 + 0.5 * jnp.sin(0.3 * t + 1))

    return schedule


def accepts_value(tx: optax.GradientTransformation) -> bool:
    """Whether ``tx.update`` takes ``value=`` (a ``value`` parameter, or ``**kwargs``)."""
    try:
        params = inspect.signature(tx.update).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "value" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


@dataclasses.dataclass(frozen=True)
class Pair:
    """A candidate and a reference transformation compared in one dtype. ``*_value``: whether that
    side's ``update`` gets the loss value as ``value=``."""

    candidate: optax.GradientTransformation
    reference: optax.GradientTransformation
    dtype: Any
    candidate_value: bool = False
    reference_value: bool = False


class Run(NamedTuple):
    """One case's outcome: per-step statistics (each ``(seeds, steps, leaves)``, named
    :data:`STAT_NAMES`), each leaf's (candidate, reference) update dtype names, the parameter
    rounding allowed at each worst element (torch candidates), and whether the case decides."""

    stats: dict[str, np.ndarray]
    dtypes: list[tuple[str, str]]
    rounding: np.ndarray | None = None
    decides: bool = True


class SideError(Exception):
    """An exception raised by one side of pair ``index`` while it was built into the program."""

    def __init__(self, index: int, side: str, error: BaseException):
        super().__init__(f"{side} of pair {index}: {error}")
        self.index, self.side, self.error = index, side, error


def needs_x64(dtype: Any) -> bool:
    return jnp.dtype(dtype) in (jnp.dtype(jnp.float64), jnp.dtype(jnp.complex128))


def real_dtype(dtype: Any):
    return jnp.finfo(jnp.dtype(dtype)).dtype


def compute_dtype(a: Any, b: Any):
    """The dtype both updates are compared in: their common type, at least float32."""
    with jax.numpy_dtype_promotion("standard"):
        common = jnp.promote_types(a, b)
        floor = jnp.complex64 if jnp.issubdtype(common, jnp.complexfloating) else jnp.float32
        return jnp.promote_types(common, floor)


# Above this many element-updates a program is worth XLA's backend optimizations (measured on 2 CPU
# cores: 4 Adam pairs, 1000 steps, 2 seeds on the default tree take 2.5 s to compile and 5.4 s to run
# without them, 3.4 s and 2.0 s with them; without the 16512-element leaf, 2.2 + 0.8 s and 3.2 + 0.6 s).
OPTIMIZE_ABOVE = 10_000_000


def compiler_options(work: int) -> dict[str, int]:
    """XLA options for a program run once that updates ``work`` elements in all."""
    return {} if work > OPTIMIZE_ABOVE else {"xla_backend_optimization_level": 0}


def as_leaves(flat: Array, flat_imag: Array | None, lay: Layout, dtype) -> list[Array]:
    """Leaves in ``dtype`` from the float32 real (and, for a complex dtype, imaginary) stream."""
    if jnp.issubdtype(dtype, jnp.complexfloating):
        real = real_dtype(dtype)
        flat = jax.lax.complex(flat.astype(real), flat_imag.astype(real))
    return [x.astype(dtype) for x in lay.split(flat)]


def call(index: int, side: str, fn, *args, **kwargs):
    """``fn(*args, **kwargs)``; an exception becomes a :class:`SideError` naming the pair and side."""
    try:
        if side == "reference":  # optax itself is not strict-promotion clean
            with jax.numpy_dtype_promotion("standard"):
                return fn(*args, **kwargs)
        return fn(*args, **kwargs)
    except SideError:
        raise
    except Exception as err:
        raise SideError(index, side, err) from err


def update(index: int, side: str, tx, grads, state, params, value, pass_value: bool):
    extra = {"value": value} if pass_value else {}
    return call(index, side, tx.update, grads, state, params, **extra)


def check_structures(c_upd, r_upd) -> tuple[list[Array], list[Array]]:
    c_leaves, r_leaves = jax.tree.leaves(c_upd), jax.tree.leaves(r_upd)
    if len(c_leaves) != len(r_leaves):
        raise ValueError("candidate and reference updates have different tree structures")
    for c, r in zip(c_leaves, r_leaves, strict=True):
        if c.shape != r.shape:
            raise ValueError(f"candidate update shape {c.shape} differs from the reference's {r.shape}")
    return c_leaves, r_leaves


def leaf_stats(xp, c, r, allowance=None):
    """:func:`step_stats` of one leaf's updates, compared in :func:`compute_dtype` (zeros if empty)."""
    dt = compute_dtype(c.dtype, r.dtype)
    c, r = c.reshape(-1).astype(dt), r.reshape(-1).astype(dt)
    if c.size == 0:
        zero = xp.zeros((), dt)
        return (xp.zeros((), real_dtype(dt)), xp.zeros((), np.int32), zero, zero,
                xp.zeros((), real_dtype(dt)), xp.zeros((), real_dtype(dt)))
    out = step_stats(xp, c, r, None if allowance is None else allowance.reshape(-1))
    return out[:1] + (out[1].astype(np.int32),) + out[2:]


def run_pairs(pairs: Sequence[Pair], lay: Layout, seeds: Sequence[int], steps: int) -> list[Run]:
    """Run every pair over ``steps`` updates of the stream of each seed, in one compiled program.

    All pairs must agree on whether they need 64-bit types (the caller enables them). Returns, per
    pair, a :class:`Run`. Raises :class:`SideError` when a side raises
    while traced.
    """
    if not lay.shapes:
        return [Run({k: np.zeros((len(seeds), steps, 0)) for k in STAT_NAMES}, []) for _ in pairs]
    params0, grads, values = stream(lay, tuple(seeds), steps)
    is_complex = any(jnp.issubdtype(p.dtype, jnp.complexfloating) for p in pairs)
    imag = stream(lay, tuple(s + IMAG_SEED for s in seeds), steps)[:2] if is_complex else (None, None)
    dtypes: dict[int, list[tuple[str, str]]] = {}

    def one_seed(p0, g, v, p0_imag, g_imag):
        carry = []
        for k, pair in enumerate(pairs):
            params = lay.unflatten(as_leaves(p0, p0_imag, lay, pair.dtype))
            carry.append((params, call(k, "candidate", pair.candidate.init, params),
                          call(k, "reference", pair.reference.init, params)))

        def step(carry, xs):
            g_t, v_t, g_imag_t = xs
            new_carry, outs = [], []
            for k, (pair, (params, c_state, r_state)) in enumerate(zip(pairs, carry, strict=True)):
                grads_t = lay.unflatten(as_leaves(g_t, g_imag_t, lay, pair.dtype))
                value = v_t.astype(real_dtype(pair.dtype))
                c_upd, c_state = update(k, "candidate", pair.candidate, grads_t, c_state, params, value,
                                        pair.candidate_value)
                r_upd, r_state = update(k, "reference", pair.reference, grads_t, r_state, params, value,
                                        pair.reference_value)
                c_leaves, r_leaves = check_structures(c_upd, r_upd)
                dtypes[k] = [(jnp.dtype(c.dtype).name, jnp.dtype(r.dtype).name)
                             for c, r in zip(c_leaves, r_leaves, strict=True)]
                stats = [leaf_stats(jnp, c, r) for c, r in zip(c_leaves, r_leaves, strict=True)]
                outs.append(_stack(stats, pair.dtype))
                # Both see the reference's parameters, so a difference cannot compound through them.
                with jax.numpy_dtype_promotion("standard"):
                    params = optax.apply_updates(params, r_upd)
                new_carry.append((params, c_state, r_state))
            return new_carry, outs

        return jax.lax.scan(step, carry, (g, v, g_imag))[1]

    args = (params0, grads, values, imag[0], imag[1])
    compiled = jax.jit(jax.vmap(one_seed)).lower(*args).compile(
        compiler_options=compiler_options(lay.size * steps * len(seeds) * len(pairs)))
    outs = compiled(*args)
    return [Run({name: np.asarray(x) for name, x in zip(STAT_NAMES, out, strict=True)}, dtypes[k])
            for k, out in enumerate(outs)]


def _stack(stats: list[tuple[Array, ...]], dtype) -> tuple[Array, ...]:
    """Each statistic stacked over leaves, in one dtype per statistic (a leaf whose update has another
    dtype, a bug reported as such, is converted)."""
    value = compute_dtype(dtype, dtype)
    real = real_dtype(value)

    def cast(x, dt):
        if jnp.issubdtype(x.dtype, jnp.complexfloating) and not jnp.issubdtype(dt, jnp.complexfloating):
            x = jnp.real(x)
        return x.astype(dt)

    kinds = {"idx": jnp.int32, "cand": value, "ref": value}
    return tuple(jnp.stack([cast(s[i], kinds.get(name, real)) for s in stats])
                 for i, name in enumerate(STAT_NAMES))
