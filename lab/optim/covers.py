"""SM3: Adagrad whose second moment is covered by one accumulator per index of each axis, so a
matrix's second moment takes memory for its rows plus its columns; optax's arguments and defaults.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lab.optim.base import Scalar, Updates, cast, check_scalar, checked_chain, zeros_like
from lab.optim.blocks import scale_by_learning_rate
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, register


class ScaleBySM3State(NamedTuple):
    """State of :func:`scale_by_sm3`."""

    mu: Any  # per leaf, a tuple of accumulators: one per axis, (n_i,) each, for a leaf of rank >= 2;
    #          the leaf's own shape for a vector or scalar. Each in the leaf's dtype
    nu: Updates  # momentum of the rescaled gradients; each leaf its parameter's shape and dtype


def scale_by_sm3(b1: Scalar = 0.9, eps: Scalar = 1e-8) -> optax.GradientTransformation:
    r"""SM3-II's rescaling: cover each entry by one accumulator per axis, keep their minimum.

    For a leaf of rank :math:`k \ge 2` with one accumulator :math:`\mu^{(a)}` per axis :math:`a`,

    .. math::
        \nu_t(i) = g_t(i)^2 + \min_a \mu^{(a)}_{t-1}(i_a), \quad
        \mu^{(a)}_t(j) = \max_{i:\, i_a = j} \nu_t(i), \\
        m_t = (1 - \beta_1)\, g_t / \sqrt{\nu_t + \epsilon} + \beta_1 m_{t-1}, \quad u_t = m_t

    with :math:`0` where :math:`\nu_t = 0`. A vector (or scalar) keeps :math:`\nu` itself, which
    is Adagrad's sum of squares. optax's ``scale_by_sm3`` fails on scalar leaves (IndexError);
    here a scalar is handled as the vector of length 1 it is.

    Args:
        b1: :math:`\beta_1` in [0, 1].
        eps: :math:`\epsilon \ge 0`, inside the square root.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleBySM3State`.

    References:
        Anil et al., *Memory-Efficient Adaptive Optimization*, NeurIPS 2019.
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)

    def accumulators(p):
        if p.ndim < 2:
            return (jnp.zeros_like(p),)
        return tuple(jnp.zeros((n,), p.dtype) for n in p.shape)

    def update_fn(updates, state, params=None):
        del params

        def one(g, mu, m):
            if g.ndim < 2:
                nu = g ** 2 + mu[0]
                new_mu = (nu,)
            else:
                expanded = [jnp.reshape(a, [n if i == j else 1 for j in range(g.ndim)])
                            for i, (a, n) in enumerate(zip(mu, g.shape, strict=True))]
                nu = g ** 2 + functools.reduce(jnp.minimum, expanded)
                new_mu = tuple(jnp.max(nu, axis=tuple(j for j in range(g.ndim) if j != i))
                               for i in range(g.ndim))
            scaled = g * jnp.where(nu > 0, jax.lax.rsqrt(nu + cast(eps, nu.dtype)), jnp.zeros_like(nu))
            return cast(1 - b1, g.dtype) * scaled + cast(b1, g.dtype) * m, new_mu

        leaves, treedef = jax.tree.flatten(updates)
        outs = [one(*args) for args in zip(leaves, treedef.flatten_up_to(state.mu),
                                           treedef.flatten_up_to(state.nu), strict=True)]
        nu = treedef.unflatten([o[0] for o in outs])
        return nu, ScaleBySM3State(mu=treedef.unflatten([o[1] for o in outs]), nu=nu)

    return optax.GradientTransformation(
        lambda params: ScaleBySM3State(mu=jax.tree.map(accumulators, params), nu=zeros_like(params)),
        update_fn)


def sm3(learning_rate: Scalar, momentum: Scalar = 0.9) -> optax.GradientTransformation:
    r"""SM3: Adagrad with a second moment covered by per-axis accumulators, with momentum.

    :math:`u_t = -\alpha m_t` for :math:`m_t` of :func:`scale_by_sm3`; memory for the second
    moment is the sum of a leaf's dimensions instead of their product.

    Args:
        learning_rate: :math:`\alpha \ge 0`, a number (optax's ``sm3`` takes no schedule).
        momentum: :math:`\beta_1` in [0, 1].

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.sm3``.

    References:
        Anil et al., *Memory-Efficient Adaptive Optimization*, NeurIPS 2019.
    """
    check_scalar("learning_rate", learning_rate, 0.0)
    check_scalar("momentum", momentum, 0.0, 1.0)  # before scale_by_sm3, which calls it b1
    return checked_chain(scale_by_sm3(momentum), scale_by_learning_rate(learning_rate), name="lab.optim.sm3")


def optax_sm3(learning_rate, momentum=0.9) -> optax.GradientTransformation:
    """``optax.sm3`` with scalar leaves viewed as vectors of length 1 (on a scalar leaf ``optax.sm3``
    raises an IndexError; on a length-1 vector it does what :func:`sm3` does on the scalar)."""
    tx = optax.sm3(learning_rate, momentum)
    as_vectors = lambda tree: jax.tree.map(lambda x: jnp.reshape(x, (1,)) if x.ndim == 0 else x, tree)  # noqa: E731

    def update_fn(updates, state, params=None):
        new, state = tx.update(as_vectors(updates), state, None if params is None else as_vectors(params))
        return jax.tree.map(lambda u, g: jnp.reshape(u, g.shape), new, updates), state

    return optax.GradientTransformation(lambda params: tx.init(as_vectors(params)), update_fn)


# ----------------------------------------------------------------------------- catalogue entry

register(Entry(
    "sm3", sm3, optax_sm3, reference_name="optax.sm3", label="SM3", schedule=False,
    verify=({"learning_rate": 0.1}, {"learning_rate": 0.3, "momentum": 0.5}),
    search_space=(LEARNING_RATE, Hyperparameter("momentum", 0.0, 0.99, "linear")),
))

__all__ = ["ScaleBySM3State", "optax_sm3", "scale_by_sm3", "sm3"]
