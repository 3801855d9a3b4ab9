"""Adam with a running maximum in the denominator, each with the arguments, names and defaults of its
optax namesake: :func:`amsgrad` (the maximum of the second moment) and :func:`adamax` and
:func:`adamaxw` (a decaying maximum of ``|g|``, Adam's infinity-norm limit), with their ``scale_by_*``
blocks and catalogue entries. Flags (``bias_correction_*``) are static Python values.
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
    checked_chain,
    safe_increment,
    zeros_like,
)
from lab.optim.blocks import ScaleByAdamState, add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, Torch, register

__all__ = ["ScaleByAmsgradState", "adamax", "adamaxw", "amsgrad", "scale_by_adamax", "scale_by_amsgrad"]


def _check(b1, b2, eps, eps_root=0.0) -> None:
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("eps_root", eps_root, 0.0)


def _first_moment(b1: Scalar):
    """``m_t = (1 - b1) g_t + b1 m_{t-1}`` for one leaf."""
    return lambda g, m: cast(1 - b1, m.dtype) * g + cast(b1, m.dtype) * m


# ----------------------------------------------------------------------------- building blocks


class ScaleByAmsgradState(NamedTuple):
    """State of :func:`scale_by_amsgrad`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # first moment; each leaf its parameter's shape and dtype
    nu: Updates  # second moment; each leaf its parameter's shape and dtype
    nu_max: Updates  # running maximum of the (corrected) second moment; shape and dtype as nu


def scale_by_amsgrad(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8, eps_root: Scalar = 0.0,
                     bias_correction_mu: bool = True,
                     bias_correction_nu: bool = True) -> optax.GradientTransformation:
    """AMSGrad's rescaling: Adam's, over the running maximum of the second moment; see :func:`amsgrad`.

    Args:
        b1, b2, eps, eps_root, bias_correction_mu, bias_correction_nu: as in :func:`amsgrad`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAmsgradState`.
    """
    _check(b1, b2, eps, eps_root)
    check_flag("bias_correction_mu", bias_correction_mu)
    check_flag("bias_correction_nu", bias_correction_nu)

    def init_fn(params):
        return ScaleByAmsgradState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params),
                                   nu=zeros_like(params), nu_max=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(_first_moment(b1), updates, state.mu)
        nu = jax.tree.map(lambda g, v: cast(1 - b2, v.dtype) * abs_sq(g).astype(v.dtype)
                          + cast(b2, v.dtype) * v, updates, state.nu)
        count = safe_increment(state.count)
        bc1, bc2 = bias_correction(b1, count), bias_correction(b2, count)
        mu_hat = jax.tree.map(lambda m: m / bc1.astype(m.dtype), mu) if bias_correction_mu else mu
        nu_hat = jax.tree.map(lambda v: v / bc2.astype(v.dtype), nu) if bias_correction_nu else nu
        # For a complex leaf nu is real-valued (zero imaginary part), so the lexicographic maximum of
        # complex numbers is the maximum of the real parts.
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu_hat)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + cast(eps_root, v.dtype)) + cast(eps, v.dtype)),
                               mu_hat, nu_max)
        return updates, ScaleByAmsgradState(count=count, mu=mu, nu=nu, nu_max=nu_max)

    return optax.GradientTransformation(init_fn, update_fn)


def scale_by_adamax(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8) -> optax.GradientTransformation:
    """Adamax's rescaling: the first moment over a decaying maximum of ``|g|``; see :func:`adamax`.

    Args:
        b1, b2, eps: as in :func:`adamax`.

    Returns:
        An ``optax.GradientTransformation`` with state ``ScaleByAdamState`` (``nu``: the maximum).
    """
    _check(b1, b2, eps)

    def init_fn(params):
        return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params))

    def infinity_moment(g, v):
        a = jnp.abs(g)  # real, also for a complex leaf
        return jnp.maximum((a + cast(eps, a.dtype)).astype(v.dtype), cast(b2, v.dtype) * v)

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(_first_moment(b1), updates, state.mu)
        nu = jax.tree.map(infinity_moment, updates, state.nu)
        count = safe_increment(state.count)
        bc1 = bias_correction(b1, count)
        updates = jax.tree.map(lambda m, v: (m / bc1.astype(m.dtype)) / v, mu, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- optimizers

def amsgrad(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
            eps_root: Scalar = 0.0, *, bias_correction_mu: bool = True,
            bias_correction_nu: bool = True) -> optax.GradientTransformation:
    r"""AMSGrad: Adam whose denominator never shrinks.

    .. math::
        \hat v^{\max}_t = \max(\hat v^{\max}_{t-1}, \hat v_t), \qquad
        u_t = -\alpha_t \hat m_t / (\sqrt{\hat v^{\max}_t + \bar\epsilon} + \epsilon)

    with Adam's moments, bias-corrected (:math:`\hat m_t = m_t / (1 - \beta_1^t)`,
    :math:`\hat v_t = v_t / (1 - \beta_2^t)`) unless switched off. The maximum is taken of the
    corrected :math:`\hat v_t`; PyTorch's ``Adam(amsgrad=True)`` takes it of the raw :math:`v_t` and
    divides by the current :math:`1 - \beta_2^t`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        bias_correction_mu: correct :math:`m_t` (``False``: the paper's rule).
        bias_correction_nu: correct :math:`v_t` before the maximum (``False``: the paper's rule).

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.amsgrad``.

    References:
        Reddi, Kale and Kumar, *On the Convergence of Adam and Beyond*, ICLR 2018.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_amsgrad(b1, b2, eps, eps_root, bias_correction_mu, bias_correction_nu),
                         scale_by_learning_rate(learning_rate), allow_complex=True, name="lab.optim.amsgrad")


def adamax(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999,
           eps: Scalar = 1e-8) -> optax.GradientTransformation:
    r"""Adamax: Adam with the infinity norm in place of the root mean square.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = \max(|g_t| + \epsilon, \beta_2 v_{t-1}), \quad
        u_t = -\alpha_t \frac{m_t}{(1 - \beta_1^t)\, v_t}

    (:math:`v_0 = 0`; the maximum needs no bias correction).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1], the decay of the maximum.
        eps: :math:`\epsilon \ge 0`, added to :math:`|g_t|`.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.adamax``.

    References:
        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015, section 7.1.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adamax(b1, b2, eps), scale_by_learning_rate(learning_rate),
                         allow_complex=True, name="lab.optim.adamax")


def adamaxw(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
            weight_decay: Scalar = 1e-4) -> optax.GradientTransformation:
    r"""AdamaxW: Adamax with decoupled weight decay scaled by the learning rate.

    .. math::
        u_t = -\alpha_t \left(\frac{m_t}{(1 - \beta_1^t)\, v_t} + \lambda \theta_t\right)

    with :math:`m_t, v_t` as in :func:`adamax`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1, b2, eps: as in :func:`adamax`.
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.adamaxw``.

    References:
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adamax(b1, b2, eps), add_decayed_weights(weight_decay),
                         scale_by_learning_rate(learning_rate), allow_complex=True, name="lab.optim.adamaxw")


# ----------------------------------------------------------------------------- catalogue entries

_B1 = Hyperparameter("b1", 0.5, 0.99, "linear")
_B2 = Hyperparameter("b2", 0.9, 0.9999, "linear")

register(Entry(
    "amsgrad", amsgrad, optax.amsgrad, label="AMSGrad", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-8},
            {"learning_rate": 1e-2, "bias_correction_mu": False, "bias_correction_nu": False}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("eps", 1e-10, 1e-4)),
    torch=Torch("Adam", "Adam(amsgrad=True) keeps the maximum of the raw v and divides it by the current "
                "1−β₂ᵗ; optax the maximum of the corrected v̂: they agree while v̂ grows, and torch forgets a "
                "large early gradient that optax keeps"),
))
register(Entry(
    "adamax", adamax, optax.adamax, label="Adamax", complex_params=True,
    verify=({"learning_rate": 2e-3}, {"learning_rate": 1e-2, "b1": 0.5, "b2": 0.99, "eps": 1e-6}),
    search_space=(LEARNING_RATE, _B1, _B2),
    torch=Torch("Adamax", "same rule; torch defaults to lr=2e-3, and its weight_decay is an L2 term added "
                "to the gradient"),
))
register(Entry(
    "adamaxw", adamaxw, optax.adamaxw, label="AdamaxW", complex_params=True,
    verify=({"learning_rate": 2e-3, "weight_decay": 0.1},
            {"learning_rate": 1e-2, "b1": 0.5, "b2": 0.99, "eps": 1e-6, "weight_decay": 1e-3}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("weight_decay", 1e-5, 1.0)),
))
