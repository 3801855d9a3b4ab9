"""The MLP's loss gradient by the chain rule, written by hand: what ``jax.grad`` does for us.

Notation for an MLP with ``L`` layers (``params[l] = {"w": W_l, "b": b_l}``, l = 0..L-1), a batch
of ``B`` rows ``x`` and activation ``f``:

    h_0 = x                                        (B, d_0)
    z_l = h_l @ W_l + b_l                          (B, d_{l+1})   pre-activations, cached
    h_{l+1} = f(z_l)          for l < L - 1        hidden outputs, cached
    out = z_{L-1}                                  (B, d_L)       logits / raw outputs
    J = loss(out, y) + l1 * sum|W| + l2/2 * sum W^2

Backward pass (the delta rule). Let ``delta_l = dJ/dz_l`` (B, d_{l+1}). It starts at the output,

    cross_entropy:       delta_{L-1} = (softmax(out) - onehot(y)) / B
    mse:                 delta_{L-1} = 2 (out - y) / (B K)              (K = d_L outputs)
    mse_classification:  delta_{L-1} = 2 (out - onehot(y)) / (B K)

(the ``1/B`` and ``1/(B K)`` are the means in :mod:`lab.losses`). The cross-entropy delta is the
chain rule through softmax written out: with ``p = softmax(out)``, the loss is ``-log p_y`` with
``d/dp = -onehot(y) / p``, and :func:`lab.activations.softmax_vjp` of that, ``p * (v - sum(v p))``,
is ``p - onehot(y)``; the simplified form is used because it stays finite where ``p_y`` underflows
to 0. The delta then moves down one layer at a time:

    dJ/dW_l = h_l^T @ delta_l + l1 sign(W_l) + l2 W_l          (d_l, d_{l+1})
    dJ/db_l = sum over the batch of delta_l                    (d_{l+1},)
    delta_{l-1} = (delta_l @ W_l^T) * f'(z_{l-1})              (B, d_l)

with ``f'`` the hand-written derivative from :mod:`lab.activations`. Non-smooth points use the same
choices as ``jax.grad``: ReLU'(0) = 0, LeakyReLU'(0) = 1, ELU'(0) = alpha, and for L1 the
subgradient sign(0) = 0 (see :mod:`lab.regularizers`), so this and autodiff agree exactly there too.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lab.activations import Activation, get_activation
from lab.losses import LOSSES, one_hot
from lab.models import MLPParams, linear
from lab.regularizers import penalty, penalty_grad

Array = jax.Array


def output_delta(loss: str, out: Array, y: Array) -> tuple[Array, Array]:
    """The loss value and ``dloss/dout`` for the MLP's raw outputs ``out`` (B, K).

    Args:
        loss: ``"cross_entropy"`` or ``"mse_classification"`` (``y``: (B,) integer labels) or
            ``"mse"`` (``y``: (B, K) regression targets).
        out: (B, K) logits or raw outputs.
        y: targets, as above.

    Returns:
        ``(value, delta)``: the scalar loss and its gradient with respect to ``out``, (B, K).

    Raises:
        ValueError: for an unknown loss name (listing the valid ones) or shapes that do not fit.
    """
    if loss not in LOSSES:
        raise ValueError(f"unknown loss {loss!r}; valid names: {', '.join(LOSSES)}")
    value = LOSSES[loss](out, y)  # validates the shapes
    batch, classes = out.shape
    if loss == "cross_entropy":
        # d/dz_i of -log softmax(z)_y = softmax(z)_i - [i == y]; softmax is stable at logits of 1e4.
        delta = (jax.nn.softmax(out, axis=-1) - one_hot(y, classes, out.dtype)) / batch
    else:
        target = y if loss == "mse" else one_hot(y, classes, out.dtype)
        # d/dout of mean((out - target)^2) over B * K entries.
        delta = 2 * (out - target) / (batch * classes)
    return value, delta


def mlp_value_and_grad(
    params: MLPParams,
    x: Array,
    y: Array,
    *,
    activation: str | Activation,
    loss: str,
    l1: float | Array = 0.0,
    l2: float | Array = 0.0,
) -> tuple[Array, MLPParams]:
    """``J = loss(mlp(params, x), y) + l1 sum|w| + l2/2 sum w^2`` and ``dJ/dparams`` by the chain rule.

    The same objective as ``regularized(lambda p, x, y: get_loss(loss)(mlp(p, x, activation), y),
    l1, l2)``; its gradient is computed with the delta rule of the module docstring, without
    autodiff. Jit-able with ``activation`` and ``loss`` static; ``l1`` and ``l2`` may be traced.

    Args:
        params: MLP params, a list of ``{"w": (d_l, d_{l+1}), "b": (d_{l+1},)}``, as ``init_mlp`` makes.
        x: (B, d_0) inputs.
        y: (B,) integer labels for ``cross_entropy`` / ``mse_classification``; (B, d_L) for ``mse``.
        activation: hidden-layer activation, a name from ``lab.activations.ACTIVATIONS`` or an
            :class:`~lab.activations.Activation`.
        loss: ``"cross_entropy"``, ``"mse"`` or ``"mse_classification"``.
        l1: L1 strength on weights (not biases).
        l2: L2 strength on weights (not biases).

    Returns:
        ``(value, grads)``: the scalar objective and a list of ``{"w", "b"}`` dicts shaped like params.
    """
    act = get_activation(activation)

    # Forward pass, caching each layer's input h_l and the hidden pre-activations z_l.
    hs = [x]  # h_l: (B, d_l), l = 0..L-1
    zs = []  # z_l: (B, d_{l+1}), l = 0..L-2 (the output layer's z is `out`)
    for layer in params[:-1]:
        zs.append(linear(layer, hs[-1]))
        hs.append(act.fn(zs[-1]))
    out = linear(params[-1], hs[-1])  # (B, d_L)

    value, delta = output_delta(loss, out, y)  # delta: dJ/dout, (B, d_L)

    # Backward pass, output layer first.
    grads: MLPParams = [{} for _ in params]
    for l in range(len(params) - 1, -1, -1):
        grads[l] = {
            "w": hs[l].T @ delta,  # (d_l, B) @ (B, d_{l+1}) -> (d_l, d_{l+1})
            "b": jnp.sum(delta, axis=0),  # (d_{l+1},)
        }
        if l > 0:
            # dJ/dh_l = delta_l @ W_l^T, then through h_l = f(z_{l-1}): elementwise times f'(z_{l-1}).
            delta = (delta @ params[l]["w"].T) * act.grad(zs[l - 1])  # (B, d_l)

    value = value + penalty(params, l1, l2)
    grads = jax.tree_util.tree_map(jnp.add, grads, penalty_grad(params, l1, l2))
    return value, grads
