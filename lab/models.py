"""Models as pure functions of ``(params, x)``; params are plain pytrees.

- Linear regression and softmax (logistic) regression share one affine map
  ``x @ w + b`` with params ``{"w": (d_in, d_out), "b": (d_out,)}``: the first is trained with
  squared error on its outputs, the second with cross-entropy on them as logits.
- An MLP's params are a list of such dicts, one per layer; hidden layers apply the activation,
  the last layer returns raw outputs (logits).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from lab.activations import Activation, get_activation
from lab.initializers import Initializer, get_initializer, zeros

Array = jax.Array
Layer = dict[str, Array]  # {"w": (fan_in, fan_out), "b": (fan_out,)}
MLPParams = list[Layer]


def init_linear(key: Array, d_in: int, d_out: int, init: str | Initializer = "xavier_normal",
                dtype=jnp.float32) -> Layer:
    """Params of the affine map ``x @ w + b``: ``w`` from ``init``, ``b`` zero."""
    return {"w": get_initializer(init)(key, d_in, d_out, dtype=dtype), "b": zeros(d_out, dtype)}


def linear(params: Layer, x: Array) -> Array:
    """``x @ w + b``: (batch, d_in) -> (batch, d_out). Linear and softmax regression."""
    out = x @ params["w"]  # (batch, d_out)
    # Broadcast the bias explicitly: implicit (batch, d_out) + (d_out,) is a rank promotion, which
    # the strict test configuration (and any user who turns it on) rejects.
    return out + jnp.broadcast_to(params["b"], out.shape)


def init_mlp(key: Array, sizes: Sequence[int], init: str | Initializer = "he_normal",
             dtype=jnp.float32) -> MLPParams:
    """Params of an MLP with layer widths ``sizes = (d_in, hidden..., d_out)``.

    One key per layer is split from ``key``; weights come from ``init``, biases are zero.

    Raises:
        ValueError: if fewer than two sizes are given or one is not positive.
    """
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes must be at least two positive widths (d_in, ..., d_out), got {sizes}")
    init_fn = get_initializer(init)
    keys = jax.random.split(key, len(sizes) - 1)
    return [
        {"w": init_fn(k, fan_in, fan_out, dtype=dtype), "b": zeros(fan_out, dtype)}
        for k, fan_in, fan_out in zip(keys, sizes[:-1], sizes[1:], strict=True)
    ]


def mlp(params: MLPParams, x: Array, activation: str | Activation = "relu") -> Array:
    """Forward pass: (batch, d_in) -> (batch, d_out) logits; no activation on the last layer."""
    act = get_activation(activation)
    h = x
    for layer in params[:-1]:
        h = act.fn(linear(layer, h))
    return linear(params[-1], h)


def mlp_hidden(params: MLPParams, x: Array, activation: str | Activation = "relu") -> list[Array]:
    """The post-activation output of every hidden layer (for activation-statistics figures)."""
    act = get_activation(activation)
    hs, h = [], x
    for layer in params[:-1]:
        h = act.fn(linear(layer, h))
        hs.append(h)
    return hs


def count_params(params) -> int:
    """Total number of scalars in a params pytree."""
    return sum(int(jnp.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
