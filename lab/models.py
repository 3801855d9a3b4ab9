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
import numpy as np

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


# ----------------------------------------------------------------------------- convolutions


def conv(x: Array, w: Array, stride: int = 1, padding: int = 0) -> Array:
    """Convolution (cross-correlation, as in every deep-learning library) over the spatial axes of
    channels-last ``x``: (batch, *spatial, c_in) with ``w`` (*kernel, c_in, c_out) -> (batch,
    *spatial_out, c_out), each spatial axis padded with ``padding`` zeros on both sides."""
    n_spatial = w.ndim - 2
    spatial = "WHD"[:n_spatial][::-1] if n_spatial > 1 else "W"
    dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return jax.lax.conv_general_dilated(x, w, window_strides=(stride,) * n_spatial,
                                        padding=[(padding, padding)] * n_spatial, dimension_numbers=dims)


def init_cnn(key: Array, kernel: Sequence[int], channels: Sequence[int], n_out: int,
             init: str | Initializer = "he_normal", dtype=jnp.float32) -> dict:
    """Params of :func:`cnn`: conv layers ``{"w": (*kernel, c_in, c_out), "b": (c_out,)}`` for the
    widths ``channels = (c_in, c_1, ..., c_k)``, then a dense head (c_k, n_out). A conv weight's fan-in
    is ``prod(kernel) * c_in`` (what He and Xavier initialization need)."""
    kernel, channels = tuple(int(k) for k in kernel), tuple(int(c) for c in channels)
    init_fn = get_initializer(init)
    keys = jax.random.split(key, len(channels))
    size = int(np.prod(kernel))
    convs = [{"w": init_fn(k, size * c_in, c_out, dtype=dtype).reshape(*kernel, c_in, c_out),
              "b": zeros(c_out, dtype)}
             for k, c_in, c_out in zip(keys[:-1], channels[:-1], channels[1:], strict=True)]
    head = {"w": init_fn(keys[-1], channels[-1], n_out, dtype=dtype), "b": zeros(n_out, dtype)}
    return {"conv": convs, "head": head}


def cnn(params: dict, x: Array, activation: str | Activation = "relu", stride: int = 2,
        padding: int = 1) -> Array:
    """Convolutions (each followed by the activation), global average pooling over space, and a
    dense head: (batch, *spatial, c_in) -> (batch, n_out) logits."""
    act = get_activation(activation)
    h = x
    for layer in params["conv"]:
        out = conv(h, layer["w"], stride, padding)
        h = act.fn(out + jnp.broadcast_to(layer["b"], out.shape))
    pooled = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))  # (batch, channels)
    return linear(params["head"], pooled)
