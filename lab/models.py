"""Models as pure functions of ``(params, x)``; params are plain pytrees.

- Linear regression and softmax (logistic) regression share one affine map
  ``x @ w + b`` with params ``{"w": (d_in, d_out), "b": (d_out,)}``: the first is trained with
  squared error on its outputs, the second with cross-entropy on them as logits.
- An MLP's params are a list of such dicts, one per layer; hidden layers apply the activation,
  the last layer returns raw outputs (logits).
- A CNN: convolutions over channels-last signals or images, global mean pooling, a dense head.
- :class:`Model` is what a problem trains: ``init(key, input_shape, n_out)`` and ``apply(params, x)``;
  :data:`MODELS` holds the built-in factories of models (``mlp``, ``linear``, ``cnn1d``, ``cnn2d``).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

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
    *spatial_out, c_out), each spatial axis padded with ``padding`` zeros on both sides. XLA's own
    convolution; :func:`conv_patches` computes the same as one matrix product."""
    n_spatial = w.ndim - 2
    spatial = "WHD"[:n_spatial][::-1] if n_spatial > 1 else "W"
    dims = (f"N{spatial}C", f"{spatial}IO", f"N{spatial}C")
    return jax.lax.conv_general_dilated(x, w, window_strides=(stride,) * n_spatial,
                                        padding=[(padding, padding)] * n_spatial, dimension_numbers=dims)


def conv_patches(x: Array, w: Array, stride: int = 1, padding: int = 0) -> Array:
    """:func:`conv` as im2col: every kernel-sized patch of ``x`` gathered by strided slices into
    (batch, *spatial_out, prod(kernel) * c_in), times ``w`` reshaped to (prod(kernel) * c_in, c_out).

    The same numbers as :func:`conv` (up to float rounding), but under ``vmap`` over runs (each run
    its own ``w``) it stays a batched matrix product, where XLA's convolution becomes a grouped
    convolution that is several times slower on a CPU (measured in ``docs/sweeps.md``).
    """
    kernel = w.shape[:-2]
    pad = [(0, 0)] + [(padding, padding)] * len(kernel) + [(0, 0)]
    xp = jnp.pad(x, pad)
    out = [(n + 2 * padding - k) // stride + 1 for n, k in zip(x.shape[1:-1], kernel, strict=True)]
    patches = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        start = (0, *offset, 0)
        ends = (o + stride * (m - 1) + 1 for o, m in zip(offset, out, strict=True))
        limit = (x.shape[0], *ends, x.shape[-1])
        patches.append(jax.lax.slice(xp, start, limit, (1, *(stride,) * len(kernel), 1)))
    cols = jnp.stack(patches, axis=-2)  # (batch, *out, prod(kernel), c_in): w's (*kernel, c_in) order
    cols = cols.reshape(*cols.shape[:-2], -1)
    return cols @ w.reshape(-1, w.shape[-1])


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
        out = conv_patches(h, layer["w"], stride, padding)
        h = act.fn(out + jnp.broadcast_to(layer["b"], out.shape))
    pooled = jnp.mean(h, axis=tuple(range(1, h.ndim - 1)))  # (batch, channels)
    return linear(params["head"], pooled)


# ----------------------------------------------------------------------------- models


class Model(NamedTuple):
    """A model as a pair of pure functions over any params pytree.

    ``init(key, input_shape, n_out) -> params`` (``input_shape`` is one example's, without the batch
    axis) and ``apply(params, x) -> outputs``: (batch, *input_shape) -> (batch, n_out), logits for
    classification. The weights (what L1/L2 penalize and the weight statistics summarize) are the
    leaves :func:`lab.regularizers.weights` finds: those of rank >= 2 (matrices, kernels); leaves of rank
    0 or 1 (biases, scales) are not penalized.
    """

    init: Callable[[Array, tuple[int, ...], int], Any]
    apply: Callable[[Any, Array], Array]


def _flat(x: Array) -> Array:
    """(batch, *shape) -> (batch, prod(shape)); 2D inputs are passed through untouched."""
    return x if x.ndim == 2 else x.reshape(x.shape[0], -1)


def mlp_model(hidden: Sequence[int] = (128,), activation: str = "relu",
              init: str | Initializer = "he_normal") -> Model:
    """:func:`mlp` with widths ``(prod(input_shape), *hidden, n_out)``; inputs are flattened."""
    hidden = _widths(hidden, "hidden", allow_empty=True)
    act = get_activation(activation)
    init_fn = get_initializer(init)

    def init_params(key, input_shape, n_out):
        return init_mlp(key, (math.prod(input_shape), *hidden, n_out), init=init_fn)

    def apply(params, x):
        return mlp(params, _flat(x), act)

    return Model(init_params, apply)


def linear_model(init: str | Initializer = "he_normal") -> Model:
    """:func:`linear`, one affine map ``{"w", "b"}``: linear or softmax regression."""
    init_fn = get_initializer(init)

    def init_params(key, input_shape, n_out):
        return init_linear(key, math.prod(input_shape), n_out, init=init_fn)

    def apply(params, x):
        return linear(params, _flat(x))

    return Model(init_params, apply)


def cnn1d_model(channels: Sequence[int] = (32, 32, 32), kernel: int = 5, stride: int = 2, padding: int = 1,
                activation: str = "relu", init: str | Initializer = "he_normal") -> Model:
    """:func:`cnn` over signals: inputs (length,) get one channel, (length, c_in) are used as given."""
    return _cnn_model(1, channels, kernel, stride, padding, activation, init, None)


def cnn2d_model(channels: Sequence[int] = (16, 32), kernel: int = 3, stride: int = 2, padding: int = 1,
                activation: str = "relu", init: str | Initializer = "he_normal",
                image_shape: Sequence[int] | None = None) -> Model:
    """:func:`cnn` over images: inputs (h, w) get one channel, (h, w, c_in) are used as given, and
    flat inputs (d,) are reshaped to ``image_shape`` (default: a square, as the 8x8 digits)."""
    if image_shape is not None:
        image_shape = _widths(image_shape, "image_shape")
        if len(image_shape) not in (2, 3):
            raise ValueError(f"image_shape: expected (h, w) or (h, w, c), got {image_shape}")
    return _cnn_model(2, channels, kernel, stride, padding, activation, init, image_shape)


def _cnn_model(n_spatial, channels, kernel, stride, padding, activation, init, image_shape) -> Model:
    channels = _widths(channels, "channels")
    for name, value, low in (("kernel", kernel, 1), ("stride", stride, 1), ("padding", padding, 0)):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    act = get_activation(activation)
    init_fn = get_initializer(init)

    def shape_of(input_shape):
        shape = tuple(input_shape)
        if image_shape is not None:
            if math.prod(shape) != math.prod(image_shape):
                raise ValueError(f"image_shape: {tuple(image_shape)} does not hold inputs of shape {shape}")
            shape = tuple(image_shape)
        elif n_spatial == 2 and len(shape) == 1 and math.isqrt(shape[0]) ** 2 == shape[0]:
            shape = (math.isqrt(shape[0]),) * 2
        if len(shape) == n_spatial:
            shape = (*shape, 1)
        if len(shape) != n_spatial + 1:
            plain = "(length,)" if n_spatial == 1 else "(h, w)"
            raise ValueError(f"a {n_spatial}D CNN takes inputs of shape {plain} or with channels last, "
                             f"got {tuple(input_shape)}")
        return shape

    def init_params(key, input_shape, n_out):
        shape = shape_of(input_shape)
        return init_cnn(key, (kernel,) * n_spatial, (shape[-1], *channels), n_out, init=init_fn)

    def apply(params, x):
        return cnn(params, x.reshape(x.shape[0], *shape_of(x.shape[1:])), act, stride, padding)

    return Model(init_params, apply)


def _widths(values, name: str, allow_empty: bool = False) -> tuple[int, ...]:
    try:
        out = tuple(values)
    except TypeError:
        raise ValueError(f"{name}: expected a sequence of positive integers, got {values!r}") from None
    if (not out and not allow_empty) or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0
                                                for v in out):
        raise ValueError(f"{name}: expected positive integers, got {values!r}")
    return out


MODELS: dict[str, Callable[..., Model]] = {
    "mlp": mlp_model, "linear": linear_model, "cnn1d": cnn1d_model, "cnn2d": cnn2d_model,
}
