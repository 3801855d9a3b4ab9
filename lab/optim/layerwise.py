"""Blocks that act leaf by leaf on a whole tree: :func:`masked` (apply a transformation to the
leaves a mask selects, as ``optax.masked``) and :func:`scale_by_trust_ratio` (LARS's and LAMB's
per-leaf trust ratio), with the helpers they share.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lab.optim.base import Array, Scalar, abs_sq, cast, check_scalar

__all__ = ["Mask", "MaskedState", "leaf_norm", "masked", "needs_params", "scale_by_trust_ratio"]

Mask = Any  # None, a tree of bools with the params' structure or a prefix of it, or params -> such a tree


def leaf_norm(x: Array) -> Array:
    """A leaf's Euclidean norm, real also for a complex leaf (``jnp.linalg.norm``'s arithmetic)."""
    return jnp.sqrt(jnp.sum(jnp.real(abs_sq(x))))


def needs_params(name: str, params: Any) -> None:
    """Raise a ValueError saying that ``name``'s update needs the parameters, if they are missing."""
    if params is None:
        raise ValueError(f"{name} needs params: call update(updates, state, params)")



class MaskedState(NamedTuple):
    """State of :func:`masked`."""

    inner_state: Any  # the inner transformation's state, over the selected leaves only


def masked(inner: optax.GradientTransformation, mask: Mask) -> optax.GradientTransformation:
    """Apply ``inner`` to the leaves ``mask`` selects and pass the others through (``optax.masked``).

    Args:
        inner: the transformation to apply.
        mask: a tree of bools with the params' structure, or a prefix of it (``True`` selects a leaf
            or a whole subtree), or a function of the params (of the updates in ``update``) returning
            one. It decides the program's structure, so its values must be concrete. ``None``: all.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`MaskedState`.
    """
    if mask is None:
        return inner

    def select(mask_tree, tree):  # masked-out subtrees become None, an empty node
        try:
            return jax.tree.map(lambda m, t: t if bool(m) else None, mask_tree, tree)
        except (ValueError, TypeError) as err:
            raise ValueError("mask must be a tree of concrete bools with the params' structure (or a "
                             f"prefix of it), or a function returning one; got {mask_tree!r}") from err

    def init_fn(params):
        return MaskedState(inner_state=inner.init(select(mask(params) if callable(mask) else mask, params)))

    def update_fn(updates, state, params=None):
        mask_tree = mask(updates) if callable(mask) else mask
        new, inner_state = inner.update(select(mask_tree, updates), state.inner_state,
                                        None if params is None else select(mask_tree, params))
        updates = jax.tree.map(lambda m, n, u: n if bool(m) else u, mask_tree, new, updates)
        return updates, MaskedState(inner_state=inner_state)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_trust_ratio(min_norm: Scalar = 0.0, trust_coefficient: Scalar = 1.0,
                         eps: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Scale each leaf's update by its trust ratio, the leaf's norm over its update's.

    .. math::
        u \leftarrow c \, \frac{\max(\|\theta\|, n_0)}{\max(\|u\|, n_0) + \epsilon} \, u
        \quad (u \text{ unchanged where either norm is } 0)

    Args:
        min_norm: :math:`n_0 \ge 0`, a floor under both norms.
        trust_coefficient: :math:`c \ge 0`.
        eps: :math:`\epsilon \ge 0`, added to the update's norm.

    Returns:
        A stateless ``optax.GradientTransformation``; its ``update`` needs ``params``.
    """
    check_scalar("min_norm", min_norm, 0.0)
    check_scalar("trust_coefficient", trust_coefficient, 0.0)
    check_scalar("eps", eps, 0.0)

    def scale(u, p):
        p_norm = jnp.maximum(leaf_norm(p), cast(min_norm, p.real.dtype))
        u_norm = jnp.maximum(leaf_norm(u), cast(min_norm, u.real.dtype))
        ratio = cast(trust_coefficient, p_norm.dtype) * p_norm / (u_norm + cast(eps, u_norm.dtype))
        ratio = jnp.where((p_norm == 0) | (u_norm == 0), jnp.ones_like(ratio), ratio)
        return u * ratio.astype(u.dtype)

    def update_fn(updates, state, params=None):
        needs_params("scale_by_trust_ratio", params)
        return jax.tree.map(scale, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)
