"""Adaptive methods that look at whole leaves (layers), each with the arguments, names and defaults of
its optax namesake: :func:`adan` (Nesterov momentum estimated from gradient differences), :func:`lamb`
and :func:`lars` (a trust ratio per leaf), :func:`novograd` (a second moment per leaf), with their
blocks and catalogue entries; masks and trust ratios come from :mod:`lab.optim.layerwise`. ADOPT,
AdEMAMix and Prodigy, from ``optax.contrib``, are in :mod:`lab.optim.adaptive_contrib`.
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
    check_learning_rate,
    check_scalar,
    checked_chain,
    debias,
    moment,
    safe_increment,
    zeros_like,
)
from lab.optim.blocks import add_decayed_weights, scale_by_adam, scale_by_learning_rate, trace
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, register
from lab.optim.layerwise import Mask, leaf_norm, masked, needs_params, scale_by_trust_ratio

__all__ = ["ScaleByAdanState", "ScaleByNovogradState", "adan", "lamb", "lars", "novograd", "scale_by_adan",
           "scale_by_novograd"]


# ----------------------------------------------------------------------------- building blocks


class ScaleByAdanState(NamedTuple):
    """State of :func:`scale_by_adan`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    m: Updates  # EMA of the gradients; each leaf its parameter's shape and dtype
    v: Updates  # EMA of the gradients' differences; each leaf its parameter's shape and dtype
    n: Updates  # EMA of the squared look-ahead gradients; each leaf its parameter's shape and dtype
    g: Updates  # the previous gradient; each leaf its parameter's shape and dtype


def scale_by_adan(b1: Scalar = 0.98, b2: Scalar = 0.92, b3: Scalar = 0.99, eps: Scalar = 1e-8,
                  eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    """Adan's rescaling; see :func:`adan` (whose ``eps_root`` defaults to 1e-8, this block's to 0).

    Args:
        b1, b2, b3, eps, eps_root: as in :func:`adan`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdanState`.
    """
    for name, value in (("b1", b1), ("b2", b2), ("b3", b3)):
        check_scalar(name, value, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("eps_root", eps_root, 0.0)

    def init_fn(params):
        return ScaleByAdanState(count=jnp.zeros([], jnp.int32), m=zeros_like(params), v=zeros_like(params),
                                n=zeros_like(params), g=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0  # no previous gradient: the difference is 0
        diff = jax.tree.map(lambda g, prev: jnp.where(first, jnp.zeros_like(g), g - prev), updates, state.g)
        m = jax.tree.map(lambda g, t: moment(g, t, b1), updates, state.m)
        v = jax.tree.map(lambda d, t: moment(d, t, b2), diff, state.v)
        n = jax.tree.map(lambda g, d, t: moment(abs_sq(g + cast(1 - b2, d.dtype) * d), t, b3),
                         updates, diff, state.n)
        count = safe_increment(state.count)
        bc1, bc2, bc3 = (bias_correction(b, count) for b in (b1, b2, b3))

        def direction(m, v, n):
            num = debias(m, bc1) + cast(1 - b2, v.dtype) * debias(v, bc2)
            return num / (jnp.sqrt(debias(n, bc3) + cast(eps_root, n.dtype)) + cast(eps, n.dtype))

        return jax.tree.map(direction, m, v, n), ScaleByAdanState(count=count, m=m, v=v, n=n, g=updates)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByNovogradState(NamedTuple):
    """State of :func:`scale_by_novograd`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # momentum of the normalized gradients; each leaf its parameter's shape and dtype
    nu: Updates  # EMA of each leaf's squared gradient norm; each leaf shape () in its parameter's dtype


def scale_by_novograd(b1: Scalar = 0.9, b2: Scalar = 0.25, eps: Scalar = 1e-8, eps_root: Scalar = 0.0,
                      weight_decay: Scalar = 0.0) -> optax.GradientTransformation:
    """NovoGrad's rescaling, weight decay included; see :func:`novograd` (whose ``eps`` defaults to
    1e-6, this block's to 1e-8).

    Args:
        b1, b2, eps, eps_root, weight_decay: as in :func:`novograd`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByNovogradState`, needing ``params``.
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    for name, value in (("eps", eps), ("eps_root", eps_root), ("weight_decay", weight_decay)):
        check_scalar(name, value, 0.0)

    def init_fn(params):
        return ScaleByNovogradState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params),
                                    nu=jax.tree.map(lambda p: jnp.zeros([], p.dtype), params))

    def update_fn(updates, state, params=None):
        needs_params("scale_by_novograd", params)
        count = safe_increment(state.count)

        def second_moment(g, n):  # the first step starts the average at ||g_1||^2
            sq = (leaf_norm(g) * leaf_norm(g)).astype(n.dtype)
            return jnp.where(count == 1, sq, moment(sq, n, b2))

        nu = jax.tree.map(second_moment, updates, state.nu)

        def momentum(g, p, n, m):  # m_0 = 0: the first step's b1 m_0 + x is x, as in optax
            x = g / (jnp.sqrt(n + cast(eps_root, n.dtype)) + cast(eps, n.dtype))
            return cast(b1, m.dtype) * m + (x + cast(weight_decay, p.dtype) * p)

        mu = jax.tree.map(momentum, updates, params, nu, state.mu)
        return mu, ScaleByNovogradState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- optimizers


def adan(learning_rate: ScalarOrSchedule, b1: Scalar = 0.98, b2: Scalar = 0.92, b3: Scalar = 0.99,
         eps: Scalar = 1e-8, eps_root: Scalar = 1e-8, weight_decay: Scalar = 0.0,
         mask: Mask = None) -> optax.GradientTransformation:
    r"""Adan: adaptive Nesterov momentum, estimated from the differences of successive gradients.

    .. math::
        d_t = g_t - g_{t-1}\; (d_1 = 0), \quad m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) d_t, \\
        n_t = \beta_3 n_{t-1} + (1 - \beta_3) |g_t + (1 - \beta_2) d_t|^2, \quad
        u_t = -\alpha_t \Big(\frac{\hat m_t + (1 - \beta_2) \hat v_t}{\sqrt{\hat n_t + \bar\epsilon}
        + \epsilon} + \lambda \theta_t\Big)

    with each moment bias-corrected as in Adam. The decays are optax's, one minus the paper's; weight
    decay is AdamW's (the paper divides by :math:`1 + \lambda \alpha` instead).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1], for the gradients.
        b2: :math:`\beta_2` in [0, 1], for their differences.
        b3: :math:`\beta_3` in [0, 1], for the squared look-ahead gradients.
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        weight_decay: :math:`\lambda \ge 0`.
        mask: which leaves get weight decay (see :func:`masked`); ``None``: all.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; like ``optax.adan``.

    References:
        Xie et al., *Adan: Adaptive Nesterov Momentum Algorithm for Faster Optimizing Deep Models*,
        IEEE TPAMI 2024 (arXiv:2208.06677).
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adan(b1, b2, b3, eps, eps_root),
                         masked(add_decayed_weights(weight_decay), mask),
                         scale_by_learning_rate(learning_rate), name="lab.optim.adan")


def lamb(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-6,
         eps_root: Scalar = 0.0, weight_decay: Scalar = 0.0,
         mask: Mask = None) -> optax.GradientTransformation:
    r"""LAMB: AdamW's direction, rescaled per leaf (per layer) to a step proportional to the leaf's norm.

    .. math::
        r_t = \frac{\hat m_t}{\sqrt{\hat v_t + \bar\epsilon} + \epsilon} + \lambda \theta_t, \qquad
        u_t = -\alpha_t \frac{\|\theta_t\|}{\|r_t\|} r_t

    with Adam's bias-corrected moments :math:`\hat m_t, \hat v_t` (see :func:`lab.optim.adam`), norms
    taken over each leaf, and the ratio 1 where either norm is 0.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        weight_decay: :math:`\lambda \ge 0`.
        mask: which leaves get weight decay (see :func:`masked`); ``None``: all. Every leaf gets the
            trust ratio.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; like ``optax.lamb``.

    References:
        You et al., *Large Batch Optimization for Deep Learning: Training BERT in 76 minutes*,
        ICLR 2020.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adam(b1, b2, eps, eps_root),
                         masked(add_decayed_weights(weight_decay), mask),
                         scale_by_trust_ratio(), scale_by_learning_rate(learning_rate),
                         allow_complex=True, name="lab.optim.lamb")


def lars(learning_rate: ScalarOrSchedule, weight_decay: Scalar = 0.0, weight_decay_mask: Mask = True,
         trust_coefficient: Scalar = 0.001, eps: Scalar = 0.0, trust_ratio_mask: Mask = True,
         momentum: Scalar = 0.9, nesterov: bool = False) -> optax.GradientTransformation:
    r"""LARS: SGD with momentum whose step is rescaled per leaf (per layer) by a trust ratio.

    .. math::
        r_t = g_t + \lambda \theta_t, \quad
        s_t = -\alpha_t \, c \frac{\|\theta_t\|}{\|r_t\| + \epsilon} r_t, \quad
        m_t = s_t + \mu m_{t-1}, \quad u_t = m_t \;(\text{Nesterov: } s_t + \mu m_t)

    with norms taken over each leaf and the ratio 1 where either norm is 0. The momentum accumulates
    steps already scaled by the learning rate (as in optax).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        weight_decay: :math:`\lambda \ge 0`, an L2 term added before the trust ratio.
        weight_decay_mask: which leaves get weight decay (see :func:`masked`); ``True``: all.
        trust_coefficient: :math:`c \ge 0`.
        eps: :math:`\epsilon \ge 0`, added to the norm of :math:`r_t`.
        trust_ratio_mask: which leaves get the trust ratio (the others step by :math:`-\alpha_t r_t`).
        momentum: :math:`\mu` in [0, 1].
        nesterov: Nesterov's look-ahead form.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; like ``optax.lars``.

    References:
        You et al., *Large Batch Training of Convolutional Networks*, 2017 (arXiv:1708.03888).
    """
    check_learning_rate(learning_rate)
    check_scalar("momentum", momentum, 0.0, 1.0)  # before trace(), which calls it decay
    return checked_chain(masked(add_decayed_weights(weight_decay), weight_decay_mask),
                         masked(scale_by_trust_ratio(trust_coefficient=trust_coefficient, eps=eps),
                                trust_ratio_mask),
                         scale_by_learning_rate(learning_rate), trace(momentum, nesterov),
                         allow_complex=True, name="lab.optim.lars")


def novograd(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.25, eps: Scalar = 1e-6,
             eps_root: Scalar = 0.0, weight_decay: Scalar = 0.0) -> optax.GradientTransformation:
    r"""NovoGrad: momentum of gradients normalized by a moving average of each leaf's squared norm.

    .. math::
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) \|g_t\|^2 \;(\nu_1 = \|g_1\|^2), \quad
        m_t = \beta_1 m_{t-1} + \frac{g_t}{\sqrt{\nu_t + \bar\epsilon} + \epsilon}
        + \lambda \theta_t, \quad u_t = -\alpha_t m_t

    with one :math:`\nu` per leaf (per layer), so half of Adam's memory.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; like ``optax.novograd``.

    References:
        Ginsburg et al., *Stochastic Gradient Methods with Layer-wise Adaptive Moments for Training
        of Deep Networks*, 2019 (arXiv:1905.11286).
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_novograd(b1, b2, eps, eps_root, weight_decay),
                         scale_by_learning_rate(learning_rate), allow_complex=True, name="lab.optim.novograd")


# ----------------------------------------------------------------------------- catalogue entries

_WEIGHT_DECAY = Hyperparameter("weight_decay", 1e-5, 1.0)

register(Entry(
    "adan", adan, optax.adan, label="Adan",
    verify=({"learning_rate": 1e-2},
            {"learning_rate": 1e-2, "b1": 0.9, "b2": 0.8, "b3": 0.95, "eps": 1e-6, "eps_root": 0.0,
             "weight_decay": 0.1}),
    search_space=(LEARNING_RATE, Hyperparameter("b1", 0.9, 0.99, "linear"),
                  Hyperparameter("b2", 0.8, 0.99, "linear"), Hyperparameter("b3", 0.95, 0.999, "linear")),
))
register(Entry(
    "lamb", lamb, optax.lamb, label="LAMB", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "eps_root": 1e-8,
             "weight_decay": 0.1}),
    search_space=(LEARNING_RATE, Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("b2", 0.9, 0.9999, "linear"), _WEIGHT_DECAY),
))
register(Entry(
    "lars", lars, optax.lars, label="LARS", complex_params=True,
    verify=({"learning_rate": 1.0},
            {"learning_rate": 0.1, "weight_decay": 1e-2, "trust_coefficient": 0.01, "eps": 1e-8,
             "momentum": 0.8, "nesterov": True}),
    search_space=(LEARNING_RATE, Hyperparameter("momentum", 0.5, 0.99, "linear"),
                  Hyperparameter("trust_coefficient", 1e-4, 1e-1), _WEIGHT_DECAY),
))
register(Entry(
    "novograd", novograd, optax.novograd, label="NovoGrad", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.5, "eps": 1e-8, "eps_root": 1e-10,
             "weight_decay": 1e-2}),
    search_space=(LEARNING_RATE, Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("b2", 0.1, 0.9, "linear"), _WEIGHT_DECAY),
))
