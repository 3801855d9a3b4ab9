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


# Above this many element-updates a program run once is worth XLA's backend optimizations (measured on
# 2 CPU cores: 4 Adam pairs, 1000 steps, 2 seeds on the default tree take 2.5 s to compile and 5.4 s to
# run without them, 3.4 s and 2.0 s with them; without the 16512-element leaf, 2.2 + 0.8 s and 3.2 +
# 0.6 s). 64-bit programs keep them always: without them XLA's CPU rsqrt can differ by 2e-7 between two
# identical float64 computations, far above float64's tolerance.
OPTIMIZE_ABOVE = 10_000_000


def compiler_options(work: int, x64: bool) -> dict[str, int]:
    """XLA options for a program run once that updates ``work`` elements in all."""
    return {} if x64 or work > OPTIMIZE_ABOVE else {"xla_backend_optimization_level": 0}


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


def _flat(leaves: Sequence[Array], dtype) -> Array:
    def cast(x):
        if jnp.issubdtype(x.dtype, jnp.complexfloating) and not jnp.issubdtype(dtype, jnp.complexfloating):
            x = jnp.real(x)  # a complex update of real parameters, a bug reported by its dtype
        return x.reshape(-1).astype(dtype)

    return jnp.concatenate([cast(x) for x in leaves])


def flat_stats(c_leaves: Sequence[Array], r_leaves: Sequence[Array], lay: Layout, dtype) -> tuple[Array, ...]:
    """:func:`step_stats` of every leaf at once, over the leaves laid end to end (one vector, with
    segment reductions: a much smaller program than leaf by leaf). Each result is ``(leaves,)``."""
    dt = compute_dtype(dtype, dtype)
    real = real_dtype(dt)
    c, r = _flat(c_leaves, dt), _flat(r_leaves, dt)
    sizes = np.diff(np.asarray(lay.offsets))
    segments = jnp.asarray(np.repeat(np.arange(len(sizes), dtype=np.int32), sizes))
    n = len(sizes)
    finite_r, finite_c = jnp.isfinite(r), jnp.isfinite(c)
    same_nonfinite = jnp.where(finite_r, finite_c, (c == r) | (jnp.isnan(c) & jnp.isnan(r)))
    both = finite_r & finite_c
    diff = jnp.abs(jnp.where(both, c, 0) - jnp.where(both, r, 0)).astype(real)
    diff = jnp.where(same_nonfinite, diff, jnp.inf)
    worst = jax.ops.segment_max(diff, segments, n, indices_are_sorted=True)
    position = jnp.arange(c.size, dtype=np.int32)
    at = jax.ops.segment_min(jnp.where(diff == worst[segments], position, c.size), segments, n,
                             indices_are_sorted=True)
    at = jnp.minimum(at, max(c.size - 1, 0))
    ref_abs = jnp.where(finite_r, jnp.abs(r), 0).astype(real)
    empty = jnp.asarray(sizes == 0)
    zero = jnp.zeros((), real)
    return (jnp.where(empty, zero, worst), jnp.where(empty, 0, at - jnp.asarray(lay.offsets[:-1], np.int32)),
            jnp.where(empty, 0, c[at]), jnp.where(empty, 0, r[at]),
            jnp.where(empty, zero, jax.ops.segment_max(ref_abs, segments, n, indices_are_sorted=True)),
            jax.ops.segment_sum(ref_abs * ref_abs, segments, n, indices_are_sorted=True))


def run_pairs(pairs: Sequence[Pair], lay: Layout, seeds: Sequence[int], steps: int) -> list[Run]:
    """Run every pair over ``steps`` updates of the stream of each seed, in one compiled program.

    All pairs must agree on whether they need 64-bit types (the caller enables them). Returns, per
    pair, a :class:`Run`. Raises :class:`SideError` when a side raises
    while traced.
    """
    if lay.size == 0:  # nothing to update, nothing to compare
        zeros = {k: np.zeros((len(seeds), steps, len(lay.shapes))) for k in STAT_NAMES}
        return [Run(zeros, [(jnp.dtype(p.dtype).name,) * 2 for _ in lay.shapes]) for p in pairs]
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
                outs.append(flat_stats(c_leaves, r_leaves, lay, pair.dtype))
                # Both see the reference's parameters, so a difference cannot compound through them.
                with jax.numpy_dtype_promotion("standard"):
                    params = optax.apply_updates(params, r_upd)
                new_carry.append((params, c_state, r_state))
            return new_carry, outs

        return jax.lax.scan(step, carry, (g, v, g_imag))[1]

    args = (params0, grads, values, imag[0], imag[1])
    compiled = jax.jit(jax.vmap(one_seed)).lower(*args).compile(
        compiler_options=compiler_options(lay.size * steps * len(seeds) * len(pairs),
                                          any(needs_x64(p.dtype) for p in pairs)))
    outs = compiled(*args)
    return [Run({name: np.asarray(x) for name, x in zip(STAT_NAMES, out, strict=True)}, dtypes[k])
            for k, out in enumerate(outs)]
