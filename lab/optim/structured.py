"""Adafactor: second moments of large matrices kept as row and column factors, updates clipped and
scaled by the parameters' size. Blocks and arguments are optax's; dtypes follow :mod:`lab.optim.base`.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.optim.base import (
    Array,
    Scalar,
    ScalarOrSchedule,
    Updates,
    abs_sq,
    cast,
    check_flag,
    check_learning_rate,
    check_scalar,
    checked_chain,
    safe_increment,
)
from lab.optim.blocks import add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import Entry, Hyperparameter, Torch, register


def _real_dtype(dtype) -> np.dtype:
    """``float32`` for ``complex64``, the dtype itself for a real one."""
    return jnp.finfo(dtype).dtype


def _wider(a, b) -> np.dtype:
    """The dtype with more significant bits (``jnp.promote_types`` refuses under strict promotion)."""
    return jnp.dtype(a) if jnp.finfo(a).bits >= jnp.finfo(b).bits else jnp.dtype(b)


def _real_abs_sq(x: Array) -> Array:
    return abs_sq(x).real


def _map_split(f, n: int, tree: Any, *rest: Any) -> tuple[Any, ...]:
    """``f`` on each leaf of ``tree`` (with the matching subtrees of ``rest``), returning ``n``
    values per leaf; gives ``n`` trees shaped like ``tree``."""
    leaves, treedef = jax.tree.flatten(tree)
    outs = [f(*args) for args in zip(leaves, *(treedef.flatten_up_to(r) for r in rest), strict=True)]
    return tuple(treedef.unflatten([o[i] for o in outs]) for i in range(n))


# ----------------------------------------------------------------------------- Adafactor's blocks


def _factored_dims(shape: tuple[int, ...], factored: bool, min_dim_size_to_factor: int
                   ) -> tuple[int, int] | None:
    """The axes (d1, d0) of the second-largest and largest dimension, if both are at least
    ``min_dim_size_to_factor``; None: keep a full second moment (optax's rule and tie order)."""
    if not factored or len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


class FactoredState(NamedTuple):
    """State of :func:`scale_by_factored_rms` (optax's layout: unused fields hold a (1,) zero)."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    v_row: Updates  # factored leaves: the shape without its largest axis d0; real dtype of the leaf
    v_col: Updates  # factored leaves: the shape without axis d1; real dtype of the leaf
    v: Updates  # other leaves: the leaf's shape; real dtype of the leaf


def scale_by_factored_rms(factored: bool = True, decay_rate: Scalar = 0.8, step_offset: Scalar = 0,
                          min_dim_size_to_factor: int = 128, epsilon: Scalar = 1e-30
                          ) -> optax.GradientTransformation:
    r"""Divide by a factored estimate of the root mean square gradient (Adafactor's rescaling).

    With :math:`\hat\beta_{2t} = 1 - t^{-c}` for :math:`t = \text{count} - \text{offset} + 1`
    (computed in float32, as optax does) and :math:`G_t = g_t^2 + \epsilon_1`: a leaf whose two
    largest dimensions are both at least ``min_dim_size_to_factor`` keeps only the means of
    :math:`G_t` over its largest axis (rows :math:`R`) and over the second-largest (columns
    :math:`C`),

    .. math::
        R_t = \hat\beta_{2t} R_{t-1} + (1 - \hat\beta_{2t}) \operatorname{mean}_{d_0} G_t, \quad
        C_t = \hat\beta_{2t} C_{t-1} + (1 - \hat\beta_{2t}) \operatorname{mean}_{d_1} G_t, \\
        u_t = g_t \,/\, \sqrt{(R_t / \operatorname{mean}_{d_1} R_t)\, C_t}

    (the rank-one estimate :math:`\hat V = R C^\top / \operatorname{mean} R` of the second moment);
    any other leaf keeps the full :math:`V_t = \hat\beta_{2t} V_{t-1} + (1 - \hat\beta_{2t}) G_t`
    and :math:`u_t = g_t / \sqrt{V_t}`. Moving averages are formed in float32 at least and stored in
    the leaf's (real) dtype.

    Args:
        factored: whether to factor at all (static).
        decay_rate: the exponent :math:`c \ge 0` of the decay schedule.
        step_offset: subtracted from the step count (a fine-tuning run's first step); steps
            before it give :math:`t \le 0` and NaN, as in optax.
        min_dim_size_to_factor: factor only when two dimensions are at least this size (static).
        epsilon: :math:`\epsilon_1 \ge 0`, added to the squared gradients.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`FactoredState`.

    References:
        Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018.
    """
    check_flag("factored", factored)
    check_scalar("decay_rate", decay_rate, 0.0)
    check_scalar("step_offset", step_offset, -np.inf)
    if isinstance(min_dim_size_to_factor, bool) or not isinstance(min_dim_size_to_factor, (int, np.integer)):
        raise TypeError("min_dim_size_to_factor must be a Python int (it decides the state's shapes), got "
                        f"{type(min_dim_size_to_factor).__name__} {min_dim_size_to_factor!r}")
    check_scalar("epsilon", epsilon, 0.0)
    dims = functools.partial(_factored_dims, factored=factored, min_dim_size_to_factor=min_dim_size_to_factor)

    def init_fn(params):
        def one(p):
            real, unused = _real_dtype(p.dtype), jnp.zeros((1,), _real_dtype(p.dtype))
            d = dims(p.shape)
            if d is None:
                return unused, unused, jnp.zeros(p.shape, real)
            d1, d0 = d
            return (jnp.zeros(np.delete(p.shape, d0), real), jnp.zeros(np.delete(p.shape, d1), real), unused)

        return FactoredState(jnp.zeros([], jnp.int32), *_map_split(one, 3, params))

    def update_fn(updates, state, params=None):
        del params
        t = state.count.astype(jnp.float32) - cast(step_offset, jnp.float32) + 1
        decay = 1.0 - t ** -cast(decay_rate, jnp.float32)
        one_minus = 1.0 - decay  # in float32, as optax forms it

        def one(g, v_row, v_col, v):
            real = v.dtype
            ct = _wider(real, jnp.float32)  # bfloat16 averages are formed in float32
            ema = lambda old, new: (decay.astype(ct) * old.astype(ct)  # noqa: E731
                                    + one_minus.astype(ct) * new.astype(ct)).astype(real)
            g_sq = _real_abs_sq(g) + cast(epsilon, real)
            d = dims(g.shape)
            if d is None:
                v = ema(v, g_sq)
                return g * (v ** -0.5).astype(g.dtype), v_row, v_col, v
            d1, d0 = d
            v_row, v_col = ema(v_row, jnp.mean(g_sq, axis=d0)), ema(v_col, jnp.mean(g_sq, axis=d1))
            row_mean = jnp.mean(v_row, axis=d1 - 1 if d1 > d0 else d1, keepdims=True)
            row_factor = jnp.expand_dims((v_row / row_mean) ** -0.5, d0).astype(g.dtype)
            col_factor = jnp.expand_dims(v_col ** -0.5, d1).astype(g.dtype)
            return g * row_factor * col_factor, v_row, v_col, v

        updates, v_row, v_col, v = _map_split(one, 4, updates, state.v_row, state.v_col, state.v)
        return updates, FactoredState(safe_increment(state.count), v_row, v_col, v)

    return optax.GradientTransformation(init_fn, update_fn)


def clip_by_block_rms(threshold: Scalar) -> optax.GradientTransformation:
    r"""Clip each leaf's update to a root mean square of at most ``threshold``:
    :math:`u = u / \max(1, \operatorname{rms}(u) / d)`.

    Args:
        threshold: :math:`d \ge 1` (optax's documented range).

    Returns:
        A stateless ``optax.GradientTransformation``.
    """
    check_scalar("threshold", threshold, 1.0)

    def update_fn(updates, state, params=None):
        del params

        def clip(u):
            rms = jnp.sqrt(jnp.mean(_real_abs_sq(u)))
            return u / jnp.maximum(1.0, rms / cast(threshold, rms.dtype)).astype(u.dtype)

        return jax.tree.map(clip, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def scale_by_param_block_rms(min_scale: Scalar = 1e-3) -> optax.GradientTransformation:
    r"""Multiply each leaf's update by its parameters' root mean square, at least ``min_scale``:
    :math:`u = u \max(\operatorname{rms}(\theta), s_{\min})` (Adafactor's relative step size).

    Args:
        min_scale: :math:`s_{\min} \ge 0`.

    Returns:
        A stateless ``optax.GradientTransformation``; its ``update`` needs ``params``.
    """
    check_scalar("min_scale", min_scale, 0.0)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("scale_by_param_block_rms needs params: call update(updates, state, params)")

        def scale(u, p):
            rms = jnp.sqrt(jnp.mean(_real_abs_sq(p)))
            low = cast(min_scale, rms.dtype)
            return u * jnp.where(rms <= low, low, rms).astype(u.dtype)

        return jax.tree.map(scale, updates, params), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def _scale_by_positive(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    """``u = alpha_t u`` (optax's ``scale_by_learning_rate(flip_sign=False)``; with a schedule, its
    state is optax's ``ScaleByScheduleState``: the int32 step count)."""
    if not callable(learning_rate):
        scale = lambda u, state, params=None: (  # noqa: E731
            jax.tree.map(lambda g: cast(learning_rate, g.dtype) * g, u), state)
        return optax.GradientTransformation(lambda params: optax.EmptyState(), scale)

    def update_fn(updates, state, params=None):
        del params
        lr = jnp.asarray(learning_rate(state.count))
        return (jax.tree.map(lambda g: cast(lr, g.dtype) * g, updates),
                optax.ScaleByScheduleState(safe_increment(state.count)))

    return optax.GradientTransformation(lambda params: optax.ScaleByScheduleState(jnp.zeros([], jnp.int32)),
                                        update_fn)


class MomentumState(NamedTuple):
    """State of :func:`_ema_in_dtype`."""

    ema: Updates  # moving average of the updates; each leaf its shape, in the accumulator dtype


def _ema_in_dtype(decay: Scalar, accumulator_dtype) -> optax.GradientTransformation:
    """``m = (1 - b) u + b m`` stored in ``accumulator_dtype`` (complex leaves: its complex
    counterpart), formed in the wider of that and the leaf's dtype, returned in the leaf's dtype."""
    def init_fn(params):
        def zeros(p):
            complex_acc = jnp.complex128 if jnp.finfo(accumulator_dtype).bits == 64 else jnp.complex64
            return jnp.zeros(p.shape, complex_acc if jnp.iscomplexobj(p) else accumulator_dtype)

        return MomentumState(jax.tree.map(zeros, params))

    def update_fn(updates, state, params=None):
        del params

        def one(g, m):
            ct = _wider(g.dtype, m.dtype)
            new = (cast(1 - decay, g.dtype) * g).astype(ct) + (cast(decay, m.dtype) * m).astype(ct)
            return new.astype(g.dtype), new.astype(m.dtype)

        updates, ema = _map_split(one, 2, updates, state.ema)
        return updates, MomentumState(ema)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- Adafactor


def adafactor(learning_rate: ScalarOrSchedule | None = None, min_dim_size_to_factor: int = 128,
              decay_rate: Scalar = 0.8, decay_offset: Scalar = 0, multiply_by_parameter_scale: bool = True,
              clipping_threshold: Scalar | None = 1.0, momentum: Scalar | None = None,
              dtype_momentum: Any = jnp.float32, weight_decay_rate: Scalar | None = None,
              eps: Scalar = 1e-30, factored: bool = True, weight_decay_mask: Any = None
              ) -> optax.GradientTransformation:
    r"""Adafactor: factored second moments, update clipping and a step relative to the parameters.

    .. math::
        \hat u_t = g_t / \sqrt{\hat V_t}, \quad
        u_t = \hat u_t / \max(1, \operatorname{rms}(\hat u_t) / d), \quad
        s_t = \alpha_t \max(\operatorname{rms}(\theta_t), 10^{-3})\, u_t, \\
        m_t = (1 - \beta_1) s_t + \beta_1 m_{t-1} \;(\text{with momentum}), \quad
        \Delta\theta_t = -(m_t + \lambda \theta_t)

    for :math:`\hat V_t` of :func:`scale_by_factored_rms`, per leaf (optax's order of the
    blocks). ``None`` leaves a step out: no learning rate (:math:`\alpha = 1`), no clipping, no
    momentum, no weight decay. The decay :math:`\lambda` is not multiplied by the learning rate.

    Args:
        learning_rate: :math:`\alpha \ge 0`, a schedule, or ``None``.
        min_dim_size_to_factor: factor a leaf's second moment when two of its dimensions are at
            least this size (static).
        decay_rate: :math:`c`, with :math:`\hat\beta_{2t} = 1 - t^{-c}`.
        decay_offset: step-count offset of that schedule (a fine-tuning run's first step).
        multiply_by_parameter_scale: scale by :math:`\max(\operatorname{rms}(\theta), 10^{-3})`.
        clipping_threshold: :math:`d \ge 1` or ``None``.
        momentum: :math:`\beta_1` in [0, 1] or ``None`` (static: no momentum buffer).
        dtype_momentum: the momentum buffer's dtype (float32, as in optax, also for bfloat16 and
            float64 parameters; the updates keep the parameters' dtype).
        weight_decay_rate: :math:`\lambda \ge 0` or ``None``.
        eps: :math:`\epsilon_1 \ge 0`, added to the squared gradients.
        factored: whether to factor at all (static).
        weight_decay_mask: only ``None`` (decay every leaf).

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.adafactor``.

    References:
        Shazeer and Stern, *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, ICML 2018.
    """
    if learning_rate is not None:
        check_learning_rate(learning_rate)
    # The blocks name these decay_rate, step_offset, threshold, epsilon: check under the user's names.
    check_scalar("decay_offset", decay_offset, -np.inf)
    check_scalar("eps", eps, 0.0)
    if clipping_threshold is not None:
        check_scalar("clipping_threshold", clipping_threshold, 1.0)
    check_flag("multiply_by_parameter_scale", multiply_by_parameter_scale)
    if weight_decay_mask is not None:
        raise ValueError(f"lab.optim.adafactor decays every leaf: weight_decay_mask must be None, got "
                         f"{type(weight_decay_mask).__name__}")
    if not jnp.issubdtype(jnp.dtype(dtype_momentum), jnp.floating):
        raise TypeError(f"dtype_momentum must be a floating dtype, got {dtype_momentum!r}")
    blocks = [scale_by_factored_rms(factored, decay_rate, decay_offset, min_dim_size_to_factor, eps)]
    if clipping_threshold is not None:
        blocks.append(clip_by_block_rms(clipping_threshold))
    if learning_rate is not None:
        blocks.append(_scale_by_positive(learning_rate))
    if multiply_by_parameter_scale:
        blocks.append(scale_by_param_block_rms())
    if momentum is not None:
        check_scalar("momentum", momentum, 0.0, 1.0)
        blocks.append(_ema_in_dtype(momentum, jax.dtypes.canonicalize_dtype(dtype_momentum)))
    if weight_decay_rate is not None:
        check_scalar("weight_decay_rate", weight_decay_rate, 0.0)
        blocks.append(add_decayed_weights(weight_decay_rate))
    blocks.append(scale_by_learning_rate(1.0))  # descend: u = -u
    return checked_chain(*blocks, allow_complex=True, name="lab.optim.adafactor")


# ----------------------------------------------------------------------------- catalogue entries

register(Entry(
    "adafactor", adafactor, optax.adafactor, label="Adafactor", complex_params=True,
    verify=({"learning_rate": 5e-3},
            {"learning_rate": 5e-3, "min_dim_size_to_factor": 4, "decay_rate": 0.9, "decay_offset": -10,
             "clipping_threshold": 1.5, "multiply_by_parameter_scale": False, "weight_decay_rate": 1e-3,
             "eps": 1e-20}),
    search_space=(Hyperparameter("learning_rate", 1e-4, 1.0),
                  Hyperparameter("decay_rate", 0.5, 1.0, "linear"),
                  Hyperparameter("clipping_threshold", 1.0, 10.0)),
    torch=Torch("Adafactor", "torch's step is relative, min(lr, 1/√t)·max(rms(θ), 1e-3), where optax "
                "multiplies by lr; torch factors every matrix over its last two axes, optax only the "
                "two largest axes when both are ≥ 128; torch clamps V̂ at eps₁² (eps₁ = the dtype's "
                "epsilon), optax adds 1e-30 to g²; torch's weight decay is θ·(1 − lr·λ), optax adds λθ. "
                "On a leaf both factor, with lr < 1/√t, the steps agree (float64: within 1.2e-8, "
                "optax's decay rate being float32)"),
))

__all__ = ["FactoredState", "MomentumState", "adafactor", "clip_by_block_rms", "scale_by_factored_rms",
           "scale_by_param_block_rms"]
