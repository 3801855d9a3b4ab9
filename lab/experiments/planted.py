"""Deliberately wrong optimizers: realistic mistakes of a hand-written optimizer, for showing what
``lab verify`` catches and at which step.

Each :class:`Planted` pairs a buggy factory with the optax optimizer it tries to be. They are the
same kinds of mistakes that tests/test_verify.py plants; the verification figure draws how each one
crosses its tolerance.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lab import optim


class _AdamState(NamedTuple):
    count: jax.Array  # () in the count dtype
    mu: optax.Updates  # first moment, the params' shapes and dtypes
    nu: optax.Updates  # second moment, the params' shapes and dtypes


def _adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, *, count_dtype=jnp.int32, factor=1.0):
    """Adam written out by hand, optax's ordering, with the step count held in ``count_dtype`` and
    every update multiplied by ``factor``."""

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return _AdamState(jnp.zeros((), count_dtype), zeros, zeros)

    def update(grads, state, params=None):
        del params
        count = state.count + jnp.ones((), count_dtype)
        lr = learning_rate(state.count.astype(jnp.int32)) if callable(learning_rate) else learning_rate
        t = count.astype(jnp.float32)

        def leaf(g, m, v):
            m = jnp.asarray(1 - b1, g.dtype) * g + jnp.asarray(b1, g.dtype) * m
            v = jnp.asarray(1 - b2, g.dtype) * g * g + jnp.asarray(b2, g.dtype) * v
            m_hat = m / (1 - jnp.float32(b1) ** t).astype(g.dtype)
            v_hat = v / (1 - jnp.float32(b2) ** t).astype(g.dtype)
            u = -jnp.asarray(lr).astype(g.dtype) * m_hat / (jnp.sqrt(v_hat) + jnp.asarray(eps, g.dtype))
            return jnp.asarray(factor, g.dtype) * u, m, v

        out = jax.tree.map(leaf, grads, state.mu, state.nu)
        pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=lambda x: isinstance(x, tuple))  # noqa: E731
        return pick(0), _AdamState(count, pick(1), pick(2))

    return optax.GradientTransformation(init, update)


class _CountState(NamedTuple):
    count: jax.Array  # () int32: updates so far


def _late_learning_rate(learning_rate) -> optax.GradientTransformation:
    schedule = learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)

    def update(updates, state, params=None):
        del params
        lr = jnp.asarray(schedule(state.count + 1))  # BUG: the rate of the next step, not this one's
        return jax.tree.map(lambda g: -lr.astype(g.dtype) * g, updates), _CountState(state.count + 1)

    return optax.GradientTransformation(lambda params: _CountState(jnp.zeros((), jnp.int32)), update)


def eps_inside_the_root(learning_rate):
    """Adam with eps under the square root, ``sqrt(v_hat + eps)``: a floor of 1e-4 on the denominator."""
    return optim.adam(learning_rate, eps=0.0, eps_root=1e-8)


def step_count_in_bfloat16(learning_rate):
    """Adam counting its steps in bfloat16, which holds integers exactly only up to 256: the bias
    correction stalls after that."""
    return _adam(learning_rate, count_dtype=jnp.bfloat16)


def schedule_read_one_step_late(learning_rate):
    """Adam that reads its learning-rate schedule at the next step's count."""
    return optax.chain(optim.scale_by_adam(), _late_learning_rate(learning_rate))


def factor_1001(learning_rate):
    """Adam whose every step is 1.001 times optax's (a constant slipped into the step size)."""
    return _adam(learning_rate, factor=1.001)


def weight_decay_before_adam(learning_rate, weight_decay=1e-4):
    """AdamW with the decay added before Adam's rescaling: an L2 penalty, not decoupled decay."""
    return optax.chain(optim.add_decayed_weights(weight_decay), optim.scale_by_adam(),
                       optim.scale_by_learning_rate(learning_rate))


@dataclass(frozen=True)
class Planted:
    """A buggy optimizer and the optax optimizer it tries to be."""

    name: str  # the short name in figures
    factory: Callable[..., optax.GradientTransformation]
    reference: str  # the reference's name for lab.verify.compare ("adam": optax.adam)
    kwargs: Mapping[str, Any] = field(default_factory=lambda: {"learning_rate": 1e-3})


BUGS = (
    Planted("eps inside the root", eps_inside_the_root, "adam"),
    Planted("step count in bfloat16", step_count_in_bfloat16, "adam"),
    Planted("schedule read one step late", schedule_read_one_step_late, "adam"),
    Planted("every step x 1.001", factor_1001, "adam"),
    Planted("weight decay before Adam", weight_decay_before_adam, "adamw"),
)


def get(name: str) -> Planted:
    """The planted bug called ``name``; ``ValueError`` listing the valid names otherwise."""
    for bug in BUGS:
        if bug.name == name:
            return bug
    raise ValueError(f"unknown planted bug {name!r}; valid: {', '.join(b.name for b in BUGS)}")


__all__ = ["BUGS", "Planted", "get"]
