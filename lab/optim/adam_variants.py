"""Adam's variants with other moments, each with its optax namesake's arguments and defaults: :func:`nadam`,
:func:`nadamw` (Nesterov), :func:`adabelief`, :func:`radam` (rectified), :func:`yogi`; their ``scale_by_*``
blocks and catalogue entries. AMSGrad and Adamax (running maxima) are in :mod:`lab.optim.adam_maxima`.
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
    full_like,
    safe_increment,
)
from lab.optim.blocks import ScaleByAdamState, add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, Torch, register

__all__ = ["ScaleByBeliefState", "adabelief", "nadam", "nadamw", "radam", "scale_by_belief", "scale_by_nadam",
           "scale_by_radam", "scale_by_yogi", "yogi"]


# ----------------------------------------------------------------------------- shared arithmetic


def _moment(x: Array, t: Array, decay: Scalar) -> Array:
    """``(1 - decay) x + decay t`` in the state's dtype (``x`` may be a real ``|g|^2``)."""
    return cast(1 - decay, t.dtype) * x.astype(t.dtype) + cast(decay, t.dtype) * t


def _first_moment_hat(mu: Updates, g: Updates, b1: Scalar, count: Array, nesterov: bool) -> Updates:
    """Adam's :math:`\\hat m_t = m_t / (1 - \\beta_1^t)`, or Dozat's Nesterov look-ahead
    :math:`\\beta_1 m_t / (1 - \\beta_1^{t+1}) + (1 - \\beta_1) g_t / (1 - \\beta_1^t)`."""
    bc = bias_correction(b1, count)
    if not nesterov:
        return jax.tree.map(lambda m: m / bc.astype(m.dtype), mu)
    bc_next = bias_correction(b1, safe_increment(count))
    return jax.tree.map(lambda m, g: cast(b1, m.dtype) * (m / bc_next.astype(m.dtype))
                        + cast(1 - b1, g.dtype) * (g / bc.astype(g.dtype)), mu, g)


def _check_adam_args(b1, b2, eps, eps_root=0.0) -> None:
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("eps_root", eps_root, 0.0)


def _adam_state(params, initial_value: Scalar = 0.0) -> ScaleByAdamState:
    return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=full_like(params, initial_value),
                            nu=full_like(params, initial_value))


# ----------------------------------------------------------------------------- building blocks


def scale_by_nadam(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
                   eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    """NAdam's rescaling (optax's ``scale_by_adam(nesterov=True)``); see :func:`nadam`.

    Args:
        b1, b2, eps, eps_root: as in :func:`nadam`.

    Returns:
        An ``optax.GradientTransformation`` with state ``ScaleByAdamState``.
    """
    _check_adam_args(b1, b2, eps, eps_root)

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: _moment(g, m, b1), updates, state.mu)
        nu = jax.tree.map(lambda g, v: _moment(abs_sq(g), v, b2), updates, state.nu)
        count = safe_increment(state.count)
        mu_hat = _first_moment_hat(mu, updates, b1, count, nesterov=True)
        bc2 = bias_correction(b2, count)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v / bc2.astype(v.dtype) + cast(eps_root, v.dtype))
                                                 + cast(eps, v.dtype)), mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(_adam_state, update_fn)


class ScaleByBeliefState(NamedTuple):
    """State of :func:`scale_by_belief`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # first moment; each leaf its parameter's shape and dtype
    nu: Updates  # second moment of g - m, eps_root included; each leaf its parameter's shape and dtype


def scale_by_belief(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-16, eps_root: Scalar = 1e-16, *,
                    nesterov: bool = False) -> optax.GradientTransformation:
    """AdaBelief's rescaling: the first moment over the root of the variance around it; see
    :func:`adabelief`.

    Args:
        b1, b2, eps, eps_root, nesterov: as in :func:`adabelief`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByBeliefState`.
    """
    _check_adam_args(b1, b2, eps, eps_root)
    check_flag("nesterov", nesterov)

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: _moment(g, m, b1), updates, state.mu)
        nu = jax.tree.map(lambda g, m, s: _moment(abs_sq(g - m), s, b2) + cast(eps_root, s.dtype),
                          updates, mu, state.nu)
        count = safe_increment(state.count)
        mu_hat = _first_moment_hat(mu, updates, b1, count, nesterov)
        bc2 = bias_correction(b2, count)
        updates = jax.tree.map(lambda m, s: m / (jnp.sqrt(s / bc2.astype(s.dtype)) + cast(eps, s.dtype)),
                               mu_hat, nu)
        return updates, ScaleByBeliefState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(lambda params: ScaleByBeliefState(*_adam_state(params)), update_fn)


def scale_by_radam(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8, eps_root: Scalar = 0.0,
                   threshold: Scalar = 5.0, *, nesterov: bool = False) -> optax.GradientTransformation:
    """RAdam's rescaling: Adam's times the rectification :math:`r_t` once :math:`\\rho_t` reaches the
    threshold, the bias-corrected first moment alone before; see :func:`radam`.

    Args:
        b1, b2, eps, eps_root, threshold, nesterov: as in :func:`radam`.

    Returns:
        An ``optax.GradientTransformation`` with state ``ScaleByAdamState``.
    """
    _check_adam_args(b1, b2, eps, eps_root)
    check_scalar("threshold", threshold, 0.0)
    check_flag("nesterov", nesterov)
    if not isinstance(b2, jax.core.Tracer) and float(b2) == 1.0:
        raise ValueError(f"b2 must be in [0, 1) for RAdam (rho_inf = 2 / (1 - b2) - 1), got {b2!r}")
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: _moment(g, m, b1), updates, state.mu)
        nu = jax.tree.map(lambda g, v: _moment(abs_sq(g), v, b2), updates, state.nu)
        count = safe_increment(state.count)
        bc2 = bias_correction(b2, count)
        b2t = jnp.asarray(b2).astype(bc2.dtype) ** count.astype(bc2.dtype)
        rho = rho_inf - 2 * count.astype(bc2.dtype) * b2t / (1 - b2t)
        r = jnp.sqrt((rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho))
        rectify = rho >= cast(threshold, rho.dtype)  # else r is not defined (rho <= 4) or unreliable
        mu_hat = _first_moment_hat(mu, updates, b1, count, nesterov)

        def direction(m, v):
            adam = r.astype(m.dtype) * m / (jnp.sqrt(v / bc2.astype(v.dtype) + cast(eps_root, v.dtype))
                                             + cast(eps, v.dtype))
            return jnp.where(rectify, adam, m)

        return jax.tree.map(direction, mu_hat, nu), ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(_adam_state, update_fn)


def scale_by_yogi(b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-3, eps_root: Scalar = 0.0,
                  initial_accumulator_value: Scalar = 1e-6) -> optax.GradientTransformation:
    """Yogi's rescaling: Adam's with an additive update of the second moment; see :func:`yogi`.

    Args:
        b1, b2, eps: as in :func:`yogi`.
        eps_root: :math:`\\bar\\epsilon \\ge 0`, inside the square root.
        initial_accumulator_value: :math:`m_0 = v_0 \\ge 0` (optax starts both moments there).

    Returns:
        An ``optax.GradientTransformation`` with state ``ScaleByAdamState``.
    """
    _check_adam_args(b1, b2, eps, eps_root)
    check_scalar("initial_accumulator_value", initial_accumulator_value, 0.0)

    def second_moment(g, v):
        g2 = abs_sq(g).astype(v.dtype)
        return v - cast(1 - b2, v.dtype) * jnp.sign(v - g2) * g2

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: _moment(g, m, b1), updates, state.mu)
        nu = jax.tree.map(second_moment, updates, state.nu)
        count = safe_increment(state.count)
        mu_hat = _first_moment_hat(mu, updates, b1, count, nesterov=False)
        bc2 = bias_correction(b2, count)
        updates = jax.tree.map(lambda m, v: m / (jnp.sqrt(v / bc2.astype(v.dtype) + cast(eps_root, v.dtype))
                                                 + cast(eps, v.dtype)), mu_hat, nu)
        return updates, ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(lambda params: _adam_state(params, initial_accumulator_value),
                                        update_fn)


# ----------------------------------------------------------------------------- optimizers


def nadam(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
          eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    r"""NAdam: Adam whose first moment looks one step ahead, as Nesterov's momentum does.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \\
        \hat m_t = \frac{\beta_1 m_t}{1 - \beta_1^{t+1}} + \frac{(1 - \beta_1) g_t}{1 - \beta_1^t}, \quad
        \hat v_t = \frac{v_t}{1 - \beta_2^t}, \quad
        u_t = -\alpha_t \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)

    Dozat's Algorithm 2 also multiplies :math:`\hat v_t` by :math:`\beta_2`; optax and PyTorch do not.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.nadam``.

    References:
        Dozat, *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_nadam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate),
                         allow_complex=True, name="lab.optim.nadam")


def nadamw(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
           eps_root: Scalar = 0.0, *, weight_decay: Scalar = 1e-4) -> optax.GradientTransformation:
    r"""NAdamW: NAdam with decoupled weight decay scaled by the learning rate.

    .. math::
        u_t = -\alpha_t \left(\hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)
        + \lambda \theta_t\right)

    with :math:`\hat m_t, \hat v_t` as in :func:`nadam`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1, b2, eps, eps_root: as in :func:`nadam`.
        weight_decay: :math:`\lambda \ge 0` (keyword only: optax puts ``mu_dtype`` before it).

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.nadamw``.

    References:
        Dozat 2016 (see :func:`nadam`); Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, 2019.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_nadam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay),
                         scale_by_learning_rate(learning_rate), allow_complex=True, name="lab.optim.nadamw")


def adabelief(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-16,
              eps_root: Scalar = 1e-16, *, nesterov: bool = False) -> optax.GradientTransformation:
    r"""AdaBelief: Adam with the second moment taken around the first (the "belief" in the gradient).

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        s_t = \beta_2 s_{t-1} + (1 - \beta_2) (g_t - m_t)^2 + \bar\epsilon, \\
        u_t = -\alpha_t \frac{m_t / (1 - \beta_1^t)}{\sqrt{s_t / (1 - \beta_2^t)} + \epsilon}

    With ``nesterov``, :math:`m_t / (1 - \beta_1^t)` is NAdam's look-ahead (see :func:`nadam`).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root (the paper: 1e-8).
        eps_root: :math:`\bar\epsilon \ge 0`, added to :math:`s_t` itself (the paper: 0).
        nesterov: use NAdam's look-ahead first moment.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.adabelief``.

    References:
        Zhuang et al., *AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients*,
        NeurIPS 2020.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_belief(b1, b2, eps, eps_root, nesterov=nesterov),
                         scale_by_learning_rate(learning_rate), allow_complex=True,
                         name="lab.optim.adabelief")


def radam(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
          eps_root: Scalar = 0.0, threshold: Scalar = 5.0, *, nesterov: bool = False
          ) -> optax.GradientTransformation:
    r"""RAdam: Adam whose adaptive step is switched on, and scaled, by the variance of its estimate.

    .. math::
        \rho_\infty = \frac{2}{1 - \beta_2} - 1, \quad
        \rho_t = \rho_\infty - \frac{2 t \beta_2^t}{1 - \beta_2^t}, \quad
        r_t = \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\rho_t}}, \\
        u_t = -\alpha_t r_t \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)
        \;\text{if}\; \rho_t \ge \text{threshold}, \;\text{else}\; u_t = -\alpha_t \hat m_t

    with Adam's bias-corrected moments (:func:`nadam`'s look-ahead :math:`\hat m_t` with ``nesterov``).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1).
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        threshold: the :math:`\rho_t \ge 0` from which the adaptive step is used (the paper: 4,
            optax: 5, PyTorch: above 5).
        nesterov: use NAdam's look-ahead first moment.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.radam``.

    References:
        Liu et al., *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_radam(b1, b2, eps, eps_root, threshold, nesterov=nesterov),
                         scale_by_learning_rate(learning_rate), allow_complex=True, name="lab.optim.radam")


def yogi(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999,
         eps: Scalar = 1e-3) -> optax.GradientTransformation:
    r"""Yogi: Adam whose second moment moves by at most :math:`(1 - \beta_2) g_t^2` per step.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        v_t = v_{t-1} - (1 - \beta_2)\, \mathrm{sign}(v_{t-1} - g_t^2)\, g_t^2, \\
        u_t = -\alpha_t \frac{m_t / (1 - \beta_1^t)}{\sqrt{v_t / (1 - \beta_2^t)} + \epsilon}

    from :math:`m_0 = v_0 = 10^{-6}` (optax's start; the paper's :math:`m_0` is 0).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.yogi``.

    References:
        Zaheer et al., *Adaptive Methods for Nonconvex Optimization*, NeurIPS 2018.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_yogi(b1, b2, eps), scale_by_learning_rate(learning_rate),
                         allow_complex=True, name="lab.optim.yogi")


# ----------------------------------------------------------------------------- catalogue entries

_B1 = Hyperparameter("b1", 0.5, 0.99, "linear")
_B2 = Hyperparameter("b2", 0.9, 0.9999, "linear")

register(Entry(
    "nadam", nadam, optax.nadam, label="NAdam", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.5, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-8}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("eps", 1e-10, 1e-4)),
    torch=Torch("NAdam", "torch multiplies β₁ by a warm-up, μₜ = β₁(1 − 0.5·0.96^(t·momentum_decay)), "
                "momentum_decay=4e-3; 1e4 (μₜ = β₁) gives optax's rule, to torch's float32 product of μₜ"),
))
register(Entry(
    "nadamw", nadamw, optax.nadamw, label="NAdamW", complex_params=True,
    verify=({"learning_rate": 1e-3, "weight_decay": 0.1},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps_root": 1e-8, "weight_decay": 1e-3}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("weight_decay", 1e-5, 1.0)),
    torch=Torch("NAdam", "NAdam(decoupled_weight_decay=True), with NAdam's momentum warm-up (see nadam)"),
))
register(Entry(
    "adabelief", adabelief, optax.adabelief, label="AdaBelief", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-8, "eps_root": 0.0, "nesterov": True}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("eps", 1e-16, 1e-6)),
))
register(Entry(
    "radam", radam, optax.radam, label="RAdam", complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-6, "threshold": 10.0, "nesterov": True}),
    search_space=(LEARNING_RATE, _B1, _B2),
    torch=Torch("RAdam", "torch adds eps to √v before the bias correction (optax's eps/√(1−β₂ᵗ)) and "
                "rectifies from ρₜ > 5 (optax: ρₜ ≥ threshold = 5)"),
))
register(Entry(
    "yogi", yogi, optax.yogi, label="Yogi", complex_params=True,
    verify=({"learning_rate": 1e-2}, {"learning_rate": 1e-2, "b1": 0.5, "b2": 0.99, "eps": 1e-6}),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("eps", 1e-8, 1e-1)),
))
