"""L1 and L2 penalties on weights (never biases), and the regularized objective.

Conventions (the ones the figures and the hand-written backprop use):

    penalty(params) = l1 * sum_i |w_i|  +  l2 / 2 * sum_i w_i^2

summed over every *weight*: by one rule for every model, a weight is a params leaf of rank >= 2 (a
dense layer's matrix, a convolution's kernel); leaves of rank 0 or 1 (biases, scales) are not
penalized. The gradient is
``l1 * sign(w) + l2 * w``. At ``w = 0`` the L1 term is not differentiable; we use the subgradient
``sign(0) = 0`` (the smallest one, which leaves a weight that sits at zero there). ``jax.grad(jnp.abs)``
would give 1 at 0, so :func:`l1_penalty` computes ``|w|`` as ``sign(w) * w``: the same value, and
autodiff then returns ``sign(w)`` (``sign`` has derivative 0), so ``jax.grad`` of the penalty and
the hand-written :func:`penalty_grad` agree at 0 too.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def is_weight(leaf, batch_dims: int = 0) -> bool:
    """Whether a params leaf is a weight: rank >= 2 once ``batch_dims`` leading (run) axes are set aside."""
    return jnp.ndim(leaf) - batch_dims >= 2


def weights(params, batch_dims: int = 0) -> list[Array]:
    """Every weight leaf (rank >= 2, not counting ``batch_dims`` leading axes) of a params pytree, in
    tree order."""
    return [leaf for leaf in jax.tree.leaves(params) if is_weight(leaf, batch_dims)]


def l1_penalty(params) -> Array:
    """sum_i |w_i| over weights; its ``jax.grad`` is ``sign(w)``, 0 at w = 0 (see the module docstring)."""
    return sum((jnp.sum(jnp.sign(w) * w) for w in weights(params)), start=jnp.zeros((), _dtype(params)))


def l2_penalty(params) -> Array:
    """1/2 sum_i w_i^2 over weights."""
    return sum(
        (0.5 * jnp.sum(jnp.square(w)) for w in weights(params)), start=jnp.zeros((), _dtype(params))
    )


def penalty(params, l1: float | Array = 0.0, l2: float | Array = 0.0) -> Array:
    """``l1 * sum|w| + l2/2 * sum w^2``; ``l1``, ``l2`` may be traced arrays (swept strengths)."""
    return l1 * l1_penalty(params) + l2 * l2_penalty(params)


def penalty_grad(params, l1: float | Array = 0.0, l2: float | Array = 0.0):
    """Gradient of :func:`penalty`, shaped like params: ``l1 sign(w) + l2 w`` on weights, 0 on biases."""
    return jax.tree.map(lambda p: l1 * jnp.sign(p) + l2 * p if is_weight(p) else jnp.zeros_like(p), params)


def regularized(loss_fn: Callable[..., Array], l1: float | Array = 0.0, l2: float | Array = 0.0):
    """Objective ``(params, *args) -> loss_fn(params, *args) + penalty(params, l1, l2)``."""

    def objective(params, *args):
        return loss_fn(params, *args) + penalty(params, l1, l2)

    return objective


def _dtype(params):
    leaves = weights(params)
    return leaves[0].dtype if leaves else jnp.float32
