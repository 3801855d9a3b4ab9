"""Activation functions and their hand-written derivatives.

Each activation is an :class:`Activation`: ``fn(z)`` and ``grad(z) = d fn(z) / dz``, both
elementwise functions of the pre-activation ``z``. The derivatives are written by hand so that
:mod:`lab.backprop` can run the chain rule without ``jax.grad``; tests check them against it.

Non-smooth points follow ``jax.grad``'s choices, so the hand-written backprop and autodiff agree
exactly: ReLU'(0) = 0, LeakyReLU'(0) = 1, ELU'(0) = alpha.

Softmax (for outputs) is not elementwise: its hand-written derivative is the Jacobian
:func:`softmax_jacobian` (``diag(s) - s s^T``) and the product :func:`softmax_vjp`
(``s * (v - sum(v s))``) that backprop uses instead of building it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array


class Activation(NamedTuple):
    """An elementwise activation ``fn`` and its derivative ``grad`` (both of the pre-activation)."""

    name: str
    fn: Callable[[Array], Array]
    grad: Callable[[Array], Array]


def sigmoid(z: Array) -> Array:
    """sigma(z) = 1 / (1 + exp(-z)), computed stably for large |z|."""
    return jax.nn.sigmoid(z)


def sigmoid_grad(z: Array) -> Array:
    """sigma'(z) = sigma(z) (1 - sigma(z)); at most 1/4, the root of vanishing gradients."""
    # Written as sigma(z) sigma(-z): equal to sigma(1 - sigma), but 1 - sigma(z) rounds to 0 for
    # z > ~17 in float32 while sigma(-z) keeps its relative accuracy.
    return jax.nn.sigmoid(z) * jax.nn.sigmoid(-z)


def tanh(z: Array) -> Array:
    """tanh(z)."""
    return jnp.tanh(z)


def tanh_grad(z: Array) -> Array:
    """tanh'(z) = 1 - tanh(z)^2 = sech(z)^2."""
    # As sech^2 rather than 1 - t^2: once tanh(z) rounds to +-1 (|z| > ~9 in float32, ~19 in
    # float64) 1 - t^2 is 0 or all rounding error, while sech^2 keeps its relative accuracy.
    return jnp.square(1 / jnp.cosh(z))


def relu(z: Array) -> Array:
    """max(z, 0)."""
    # jax.nn.relu, not jnp.maximum: maximum's derivative at a tie is 1/2, relu's is 0.
    return jax.nn.relu(z)


def relu_grad(z: Array) -> Array:
    """1 for z > 0, else 0 (0 at z = 0, as ``jax.grad(jax.nn.relu)`` gives)."""
    return (z > 0).astype(z.dtype)


def leaky_relu(z: Array, negative_slope: float = 0.01) -> Array:
    """z for z >= 0, negative_slope * z otherwise."""
    return jnp.where(z >= 0, z, negative_slope * z)


def leaky_relu_grad(z: Array, negative_slope: float = 0.01) -> Array:
    """1 for z >= 0, negative_slope for z < 0 (matching ``jax.grad`` of :func:`leaky_relu`)."""
    return jnp.where(z >= 0, jnp.ones_like(z), jnp.full_like(z, negative_slope))


def elu(z: Array, alpha: float = 1.0) -> Array:
    """z for z > 0, alpha (exp(z) - 1) otherwise."""
    # The inner where keeps the unused branch finite (no inf * 0 = NaN in the grad); it is a
    # where and not a minimum because minimum's derivative at a tie is 1/2.
    return jnp.where(z > 0, z, alpha * jnp.expm1(jnp.where(z > 0, jnp.zeros_like(z), z)))


def elu_grad(z: Array, alpha: float = 1.0) -> Array:
    """1 for z > 0, alpha exp(z) otherwise."""
    return jnp.where(z > 0, jnp.ones_like(z), alpha * jnp.exp(jnp.where(z > 0, jnp.zeros_like(z), z)))


def identity(z: Array) -> Array:
    """z (for linear models and the output layer)."""
    return z


def identity_grad(z: Array) -> Array:
    """1."""
    return jnp.ones_like(z)


def softmax(logits: Array, axis: int = -1) -> Array:
    """exp(z_i) / sum_j exp(z_j) along ``axis``, shifted by the max for stability."""
    return jax.nn.softmax(logits, axis=axis)


def softmax_jacobian(logits: Array) -> Array:
    """d softmax(z)_i / d z_j = s_i ([i == j] - s_j), i.e. ``diag(s) - s s^T``, with s = softmax(z).

    Args:
        logits: (..., k), softmax taken along the last axis.

    Returns:
        (..., k, k): entry ``[..., i, j]`` is the derivative of output i with respect to input j
        (symmetric). Softmax is not elementwise, so unlike the other activations its derivative is
        a matrix per row; it is singular (``J @ 1 = 0``, softmax ignores a common shift of z).
    """
    s = softmax(logits, axis=-1)
    k = s.shape[-1]
    eye = jnp.eye(k, dtype=s.dtype).reshape((1,) * (s.ndim - 1) + (k, k))  # same rank as the result
    return s[..., :, None] * (eye - s[..., None, :])


def softmax_vjp(logits: Array, v: Array, axis: int = -1) -> Array:
    """The vector-Jacobian product ``v @ J`` of softmax at ``logits``: ``s * (v - sum(v * s))``.

    Per row, ``(v^T J)_j = sum_i v_i s_i ([i == j] - s_j) = s_j (v_j - sum_i v_i s_i)``: the chain
    rule through softmax without building the (k, k) Jacobian. With ``v = -onehot(y) / s`` (the
    derivative of -log s_y) it gives ``s - onehot(y)``, the cross-entropy output delta of
    :mod:`lab.backprop`.

    Args:
        logits: (..., k, ...) pre-activations, softmax taken along ``axis``.
        v: the upstream gradient dJ/d softmax(logits), same shape as ``logits``.
        axis: the softmax axis.

    Returns:
        dJ/d logits, same shape as ``logits``.
    """
    if v.shape != logits.shape:
        raise ValueError(f"softmax_vjp: v shape {v.shape} does not match logits shape {logits.shape}")
    s = softmax(logits, axis=axis)
    return s * (v - jnp.sum(v * s, axis=axis, keepdims=True))


def log_softmax(logits: Array, axis: int = -1) -> Array:
    """z_i - logsumexp(z) along ``axis``: finite even for logits of 1e4."""
    shifted = logits - jax.lax.stop_gradient(jnp.max(logits, axis=axis, keepdims=True))
    return shifted - jnp.log(jnp.sum(jnp.exp(shifted), axis=axis, keepdims=True))


_BUILDERS: dict[str, Callable[..., Activation]] = {
    "sigmoid": lambda: Activation("sigmoid", sigmoid, sigmoid_grad),
    "tanh": lambda: Activation("tanh", tanh, tanh_grad),
    "relu": lambda: Activation("relu", relu, relu_grad),
    "leaky_relu": lambda negative_slope=0.01: Activation(
        "leaky_relu",
        functools.partial(leaky_relu, negative_slope=negative_slope),
        functools.partial(leaky_relu_grad, negative_slope=negative_slope),
    ),
    "elu": lambda alpha=1.0: Activation(
        "elu", functools.partial(elu, alpha=alpha), functools.partial(elu_grad, alpha=alpha)
    ),
    "identity": lambda: Activation("identity", identity, identity_grad),
}

ACTIVATIONS: tuple[str, ...] = tuple(_BUILDERS)


def get_activation(name: str | Activation, **kwargs: float) -> Activation:
    """Look an activation up by name; ``kwargs`` set ``negative_slope`` (leaky_relu) or ``alpha`` (elu).

    Raises:
        ValueError: for an unknown name, listing the valid ones, or a parameter it does not take.
    """
    if isinstance(name, Activation):
        return name
    if name not in _BUILDERS:
        raise ValueError(f"unknown activation {name!r}; valid names: {', '.join(ACTIVATIONS)}")
    takes = tuple(inspect.signature(_BUILDERS[name]).parameters)
    if unknown := sorted(set(kwargs) - set(takes)):
        takes_text = ", ".join(takes) or "no parameters"
        raise ValueError(f"activation {name!r} takes {takes_text}, not {', '.join(unknown)}")
    return _BUILDERS[name](**kwargs)
