"""The blocks the classic optimizers are chained from, each with optax's name, arguments and
defaults: :func:`trace`, :func:`ema`, :func:`scale_by_rms`, :func:`scale_by_stddev`,
:func:`scale_by_adam`, :func:`scale_by_rss`, :func:`add_decayed_weights`, :func:`scale_by_learning_rate`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from lab.optim.base import (
    Array,
    Scalar,
    ScalarOrSchedule,
    Updates,
    abs_sq,
    bias_correction,
    cast,
    check_flag,
    check_learning_rate,
    check_scalar,
    full_like,
    safe_increment,
    zeros_like,
)


class TraceState(NamedTuple):
    """State of :func:`trace`."""

    trace: Updates  # momentum buffer m; each leaf its parameter's shape and dtype


def trace(decay: Scalar, nesterov: bool = False) -> optax.GradientTransformation:
    r"""Heavy-ball momentum: accumulate past updates without damping.

    .. math::
        m_t = g_t + \mu m_{t-1}, \qquad
        u_t = m_t \;\text{or, with Nesterov,}\; u_t = g_t + \mu m_t

    with :math:`m_0 = 0`. This is ``torch.optim.SGD``'s buffer with ``dampening=0`` (whose first
    buffer ``m_1 = g_1`` is the same thing).

    Args:
        decay: the momentum coefficient :math:`\mu` in [0, 1].
        nesterov: use Nesterov's look-ahead form (Sutskever et al., 2013).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`TraceState`.

    References:
        Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
        Sutskever et al., *On the importance of initialization and momentum in deep learning*, 2013.
    """
    check_scalar("decay", decay, 0.0, 1.0)
    check_flag("nesterov", nesterov)

    def init_fn(params):
        return TraceState(trace=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        f = lambda g, m: g + cast(decay, g.dtype) * m  # noqa: E731
        new_trace = jax.tree.map(f, updates, state.trace)
        updates = jax.tree.map(f, updates, new_trace) if nesterov else new_trace
        return updates, TraceState(trace=new_trace)

    return optax.GradientTransformation(init_fn, update_fn)


class EmaState(NamedTuple):
    """State of :func:`ema`."""

    ema: Updates  # velocity v; each leaf its parameter's shape and dtype


def ema(decay: Scalar, nesterov: bool = False) -> optax.GradientTransformation:
    r"""Momentum as an exponential moving average of the gradients, without bias correction.

    .. math::
        v_t = \beta v_{t-1} + (1 - \beta) g_t, \qquad
        u_t = v_t \;\text{or, with Nesterov,}\; u_t = \beta v_t + (1 - \beta) g_t

    with :math:`v_0 = 0`. Since :math:`v_t = (1 - \beta) m_t` for the heavy-ball buffer
    :math:`m_t` of :func:`trace`, this is heavy-ball momentum with the learning rate multiplied by
    :math:`1 - \beta`.

    Args:
        decay: the averaging coefficient :math:`\beta` in [0, 1].
        nesterov: use the look-ahead form.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`EmaState`.
    """
    check_scalar("decay", decay, 0.0, 1.0)
    check_flag("nesterov", nesterov)
    one_minus = 1 - decay

    def init_fn(params):
        return EmaState(ema=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        f = lambda g, v: cast(one_minus, g.dtype) * g + cast(decay, g.dtype) * v  # noqa: E731
        new_ema = jax.tree.map(f, updates, state.ema)
        updates = jax.tree.map(f, updates, new_ema) if nesterov else new_ema
        return updates, EmaState(ema=new_ema)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRmsState(NamedTuple):
    """State of :func:`scale_by_rms`."""

    nu: Updates  # EMA of squared gradients; each leaf its parameter's shape and dtype


def scale_by_rms(decay: Scalar = 0.9, eps: Scalar = 1e-8, initial_scale: Scalar = 0.0,
                 eps_in_sqrt: bool = True) -> optax.GradientTransformation:
    r"""Divide by the root of an exponential moving average of squared gradients (RMSProp).

    .. math::
        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \qquad
        u_t = g_t / \sqrt{\nu_t + \epsilon} \;\text{or}\; g_t / (\sqrt{\nu_t} + \epsilon)

    with :math:`\nu_0` = ``initial_scale`` (PyTorch uses 0, TF1 used 1).

    Args:
        decay: :math:`\rho` in [0, 1].
        eps: :math:`\epsilon \ge 0`.
        initial_scale: :math:`\nu_0 \ge 0`.
        eps_in_sqrt: put :math:`\epsilon` inside the square root (optax's default) or outside it
            (PyTorch's ``RMSprop``).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByRmsState`.

    References:
        Hinton, *Neural Networks for Machine Learning*, lecture 6e, 2012.
    """
    check_scalar("decay", decay, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("initial_scale", initial_scale, 0.0)
    check_flag("eps_in_sqrt", eps_in_sqrt)
    one_minus = 1 - decay

    def init_fn(params):
        return ScaleByRmsState(nu=full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        nu = jax.tree.map(
            lambda g, n: cast(one_minus, n.dtype) * abs_sq(g).astype(n.dtype) + cast(decay, n.dtype) * n,
            updates, state.nu)
        if eps_in_sqrt:
            updates = jax.tree.map(lambda g, n: g * jax.lax.rsqrt(n + cast(eps, n.dtype)), updates, nu)
        else:
            updates = jax.tree.map(lambda g, n: g / (jnp.sqrt(n) + cast(eps, n.dtype)), updates, nu)
        return updates, ScaleByRmsState(nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByStddevState(NamedTuple):
    """State of :func:`scale_by_stddev`."""

    mu: Updates  # EMA of gradients; each leaf its parameter's shape and dtype
    nu: Updates  # EMA of squared gradients; each leaf its parameter's shape and dtype


def scale_by_stddev(decay: Scalar = 0.9, eps: Scalar = 1e-8, initial_scale: Scalar = 0.0,
                    eps_in_sqrt: bool = True) -> optax.GradientTransformation:
    r"""Divide by the root of a moving estimate of the gradients' variance (centered RMSProp).

    .. math::
        \mu_t = \rho \mu_{t-1} + (1 - \rho) g_t, \quad
        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \quad
        u_t = g_t / \sqrt{\nu_t - \mu_t^2 + \epsilon} \;\text{or}\; g_t / (\sqrt{\nu_t - \mu_t^2} + \epsilon)

    Args:
        decay: :math:`\rho` in [0, 1].
        eps: :math:`\epsilon \ge 0`.
        initial_scale: :math:`\nu_0 \ge 0` (:math:`\mu_0 = 0`).
        eps_in_sqrt: put :math:`\epsilon` inside the square root or outside it (PyTorch).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByStddevState`.

    References:
        Graves, *Generating Sequences With Recurrent Neural Networks*, 2013, eq. 38-40.
    """
    check_scalar("decay", decay, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("initial_scale", initial_scale, 0.0)
    check_flag("eps_in_sqrt", eps_in_sqrt)
    one_minus = 1 - decay

    def init_fn(params):
        return ScaleByStddevState(mu=zeros_like(params), nu=full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        ema = lambda x, t: cast(one_minus, x.dtype) * x + cast(decay, x.dtype) * t  # noqa: E731
        mu = jax.tree.map(ema, updates, state.mu)
        nu = jax.tree.map(lambda g, n: ema(abs_sq(g).astype(n.dtype), n), updates, state.nu)
        if eps_in_sqrt:
            scale = lambda m, n: jax.lax.rsqrt(n - abs_sq(m).astype(n.dtype) + cast(eps, n.dtype))  # noqa: E731
        else:
            scale = lambda m, n: 1 / (jnp.sqrt(n - abs_sq(m).astype(n.dtype)) + cast(eps, n.dtype))  # noqa: E731
        updates = jax.tree.map(lambda g, m, n: g * scale(m, n), updates, mu, nu)
        return updates, ScaleByStddevState(mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdamState(NamedTuple):
    """State of :func:`scale_by_adam`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # first moment; each leaf its parameter's shape and dtype
    nu: Updates  # second moment; each leaf its parameter's shape and dtype


def scale_by_adam(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
                  eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Adam's rescaling: bias-corrected first moment over the root of the second.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \\
        \hat m_t = m_t / (1 - \beta_1^t), \quad \hat v_t = v_t / (1 - \beta_2^t), \quad
        u_t = \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)

    Args:
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root (as in the paper and PyTorch).
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root (for meta-gradients).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdamState`.

    References:
        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("eps_root", eps_root, 0.0)
    one_minus_b1, one_minus_b2 = 1 - b1, 1 - b2

    def init_fn(params):
        return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params),
                                nu=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: cast(one_minus_b1, g.dtype) * g + cast(b1, g.dtype) * m,
                          updates, state.mu)
        nu = jax.tree.map(
            lambda g, v: cast(one_minus_b2, v.dtype) * abs_sq(g).astype(v.dtype) + cast(b2, v.dtype) * v,
            updates, state.nu)
        count = safe_increment(state.count)
        bc1, bc2 = bias_correction(b1, count), bias_correction(b2, count)

        def direction(m, v):
            m_hat = m / bc1.astype(m.dtype)
            v_hat = v / bc2.astype(v.dtype)
            return m_hat / (jnp.sqrt(v_hat + cast(eps_root, v.dtype)) + cast(eps, v.dtype))

        updates = jax.tree.map(direction, mu, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRssState(NamedTuple):
    """State of :func:`scale_by_rss`."""

    sum_of_squares: Updates  # running sum of squared gradients; each leaf its parameter's shape/dtype


def scale_by_rss(initial_accumulator_value: Scalar = 0.1, eps: Scalar = 1e-7) -> optax.GradientTransformation:
    r"""Divide by the root of the sum of all squared gradients so far (Adagrad).

    .. math::
        s_t = s_{t-1} + g_t^2, \qquad u_t = g_t / \sqrt{s_t + \epsilon} \;(0 \text{ where } s_t = 0)

    Args:
        initial_accumulator_value: :math:`s_0 \ge 0`.
        eps: :math:`\epsilon \ge 0`, inside the square root.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByRssState`.

    References:
        Duchi et al., *Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization*, JMLR 2011.
    """
    check_scalar("initial_accumulator_value", initial_accumulator_value, 0.0)
    check_scalar("eps", eps, 0.0)

    def init_fn(params):
        return ScaleByRssState(sum_of_squares=full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sos = jax.tree.map(lambda g, s: abs_sq(g).astype(s.dtype) + s, updates, state.sum_of_squares)
        # A coordinate whose gradients were all zero (with s_0 = 0) gets a zero step, not 0/0. For a
        # complex leaf the sum is real-valued in a complex dtype: compare its real part.
        scale = lambda s: jnp.where(jnp.real(s) > 0, jax.lax.rsqrt(s + cast(eps, s.dtype)), jnp.zeros_like(s))  # noqa: E731
        updates = jax.tree.map(lambda g, s: g * scale(s), updates, sos)
        return updates, ScaleByRssState(sum_of_squares=sos)

    return optax.GradientTransformation(init_fn, update_fn)


def add_decayed_weights(weight_decay: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Add decoupled weight decay to the updates: :math:`u_t = u_t + \lambda \theta_t`.

    Placed after Adam's rescaling (and before the learning rate) it gives AdamW; placed before a
    rescaling it is an L2 penalty on the loss (PyTorch's ``weight_decay`` in ``SGD``/``Adam``).

    Args:
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        A stateless ``optax.GradientTransformation``; its ``update`` needs ``params`` (except for a
        Python ``0``, which leaves the updates as they are without reading the parameters: one pass
        over memory less in optimizers whose decay is off by default).

    References:
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    check_scalar("weight_decay", weight_decay, 0.0)
    off = isinstance(weight_decay, int | float) and not isinstance(weight_decay, bool) and weight_decay == 0

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if off:
            return updates, state
        if params is None:
            raise ValueError("add_decayed_weights needs params: call update(updates, state, params)")
        updates = jax.tree.map(lambda g, p: g + cast(weight_decay, g.dtype) * p, updates, params)
        return updates, state

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByLearningRateState(NamedTuple):
    """State of :func:`scale_by_learning_rate` with a schedule."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1


def scale_by_learning_rate(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Multiply by minus the learning rate: :math:`u_t = -\alpha_t u_t`.

    Args:
        learning_rate: :math:`\alpha \ge 0`, or a schedule :math:`t \mapsto \alpha_t` of the
            int32 step count (0 at the first update), as in optax.

    Returns:
        An ``optax.GradientTransformation``; stateless for a constant, with
        :class:`ScaleByLearningRateState` for a schedule.
    """
    check_learning_rate(learning_rate)

    if callable(learning_rate):

        def init_fn(params):
            del params
            return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))

        def update_fn(updates, state, params=None):
            del params
            neg_lr = -jnp.asarray(learning_rate(state.count))
            updates = jax.tree.map(lambda g: cast(neg_lr, g.dtype) * g, updates)
            return updates, ScaleByLearningRateState(count=safe_increment(state.count))

        return optax.GradientTransformation(init_fn, update_fn)

    neg_lr = -learning_rate

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: cast(neg_lr, g.dtype) * g, updates), state

    return optax.GradientTransformation(init_fn, update_fn)

