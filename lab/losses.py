"""Losses: mean squared error and cross-entropy from logits, plus accuracy.

Conventions: every loss is a mean over the batch. ``mse`` also averages over output dimensions
(``mean((pred - target)^2)``), so on one-hot targets it is the mean over batch and classes.
``cross_entropy`` takes integer labels and uses log-softmax, so it stays finite for logits of 1e4.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from lab.activations import log_softmax

Array = jax.Array


def mse(pred: Array, target: Array) -> Array:
    """Mean squared error ``mean((pred - target)^2)`` over all entries.

    Raises:
        ValueError: if ``pred`` and ``target`` shapes differ.
    """
    if pred.shape != target.shape:
        raise ValueError(
            f"mse: prediction shape {pred.shape} does not match target shape {target.shape}"
        )
    return jnp.mean(jnp.square(pred - target))


def cross_entropy(logits: Array, labels: Array) -> Array:
    """Mean over the batch of ``-log softmax(logits)[label]``.

    Args:
        logits: (batch, classes) floats.
        labels: (batch,) integer class indices.

    Raises:
        ValueError: if shapes do not fit or labels are not integers.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"cross_entropy: expected logits (batch, classes) and labels (batch,), "
            f"got logits {logits.shape} and labels {labels.shape}"
        )
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(f"cross_entropy: labels must be integer class indices, got {labels.dtype}")
    logp = log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


def one_hot(labels: Array, num_classes: int, dtype=jnp.float32) -> Array:
    """(batch,) integer labels -> (batch, num_classes) one-hot floats."""
    return jax.nn.one_hot(labels, num_classes, dtype=dtype)


def mse_classification(logits: Array, labels: Array) -> Array:
    """MSE between the raw outputs and one-hot targets (the MSE side of MSE vs cross-entropy)."""
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"mse_classification: expected outputs (batch, classes) and labels (batch,), "
            f"got {logits.shape} and {labels.shape}"
        )
    return mse(logits, one_hot(labels, logits.shape[1], logits.dtype))


def accuracy(logits: Array, labels: Array) -> Array:
    """Fraction of rows whose arg-max equals the label.

    Raises:
        ValueError: unless logits are (batch, classes) and labels (batch,); (batch, 1) labels would
            otherwise broadcast to a (batch, batch) comparison and give a wrong number silently.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"accuracy: expected logits (batch, classes) and labels (batch,), "
            f"got logits {logits.shape} and labels {labels.shape}"
        )
    return jnp.mean((jnp.argmax(logits, axis=-1) == labels).astype(logits.dtype))


LOSSES: dict[str, Callable[[Array, Array], Array]] = {
    "mse": mse,
    "cross_entropy": cross_entropy,
    "mse_classification": mse_classification,
}


def get_loss(name: str) -> Callable[[Array, Array], Array]:
    """Look a loss up by name. Raises ValueError for an unknown name, listing the valid ones."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; valid names: {', '.join(LOSSES)}")
    return LOSSES[name]
