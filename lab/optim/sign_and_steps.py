"""Optimizers that keep only the gradient's sign: :func:`sign_sgd`, :func:`signum`, :func:`lion`,
:func:`rprop`; and :func:`noisy_sgd`, which adds annealed noise to it. With their blocks and
catalogue entries; Polyak SGD, Fromage, Adadelta and the optimistic methods are in
:mod:`lab.optim.steps`.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.optim import blocks
from lab.optim.base import (
    Array,
    Scalar,
    ScalarOrSchedule,
    Updates,
    at_least_float32,
    cast,
    check_learning_rate,
    check_scalar,
    checked_chain,
    full_like,
    safe_increment,
    zeros_like,
)
from lab.optim.blocks import add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import Entry, Hyperparameter, Torch, register

# ----------------------------------------------------------------------------- blocks


def scale_by_sign() -> optax.GradientTransformation:
    r"""Keep each coordinate's sign: :math:`u_t = \operatorname{sign}(g_t)` (0 where :math:`g_t = 0`)."""

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(jnp.sign, updates), state

    return optax.GradientTransformation(optax.init_empty_state, update_fn)


class ScaleByLionState(NamedTuple):
    """State of :func:`scale_by_lion`."""

    mu: Updates  # momentum m; each leaf its parameter's shape and dtype


def scale_by_lion(b1: Scalar = 0.9, b2: Scalar = 0.99) -> optax.GradientTransformation:
    r"""Lion's direction: the sign of an interpolation, with a slower momentum kept in the state.

    .. math::
        u_t = \operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t), \qquad
        m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    one_minus_b1, one_minus_b2 = 1 - b1, 1 - b2

    def init_fn(params):
        return ScaleByLionState(mu=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        direction = jax.tree.map(
            lambda g, m: jnp.sign(cast(one_minus_b1, g.dtype) * g + cast(b1, g.dtype) * m), updates, state.mu)
        mu = jax.tree.map(lambda g, m: cast(one_minus_b2, g.dtype) * g + cast(b2, g.dtype) * m,
                          updates, state.mu)
        return direction, ScaleByLionState(mu=mu)

    return optax.GradientTransformation(init_fn, update_fn)


class AddNoiseState(NamedTuple):
    """State of :func:`add_noise`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    rng_key: Array  # a typed PRNG key (shape (), dtype key<...>), split at every step


def _check_key(key) -> None:
    if key is None:
        raise ValueError("noisy_sgd needs key: an int seed or a jax.random.key (the noise is random, and "
                         "the lab draws nothing without an explicit key)")
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key) and np.ndim(key) == 0:
        return
    if isinstance(key, numbers.Integral) and not isinstance(key, bool | np.bool_):
        return
    if dtype is not None and np.ndim(key) == 0 and jnp.issubdtype(dtype, jnp.integer):
        return
    if dtype == jnp.uint32 and np.shape(key) == (2,):
        return  # a raw key from jax.random.PRNGKey
    raise TypeError(f"key must be an int seed or a jax.random.key, got {type(key).__name__} {key!r}")


def add_noise(eta: Scalar, gamma: Scalar, key) -> optax.GradientTransformation:
    r"""Add annealed Gaussian noise: :math:`u_t = g_t + \sigma_t \xi_t`, with
    :math:`\sigma_t^2 = \eta / t^\gamma` and :math:`\xi_t \sim N(0, I)`.

    The noise is optax's for the same key: at each step the key is split into the next key and a
    sample key, and the sample key into one key per leaf, in tree order.
    """
    check_scalar("eta", eta, 0.0)
    check_scalar("gamma", gamma, 0.0)
    _check_key(key)

    def init_fn(params):
        del params
        if jnp.issubdtype(getattr(key, "dtype", jnp.int32), jax.dtypes.prng_key):
            rng_key = key
        elif np.shape(key) == (2,):
            rng_key = jax.random.wrap_key_data(key)
        else:
            rng_key = jax.random.key(key)
        return AddNoiseState(count=jnp.zeros([], jnp.int32), rng_key=rng_key)

    def update_fn(updates, state, params=None):
        del params
        count = safe_increment(state.count)
        rng_key, sample_key = jax.random.split(state.rng_key)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(sample_key, len(leaves))

        def noisy(g, k):
            # sigma in float32 at least (float64 for float64 leaves), as optax computes it.
            dt = at_least_float32(g.dtype)
            sigma = jnp.sqrt(cast(eta, dt) / count.astype(dt) ** cast(gamma, dt))
            return g + cast(sigma, g.dtype) * jax.random.normal(k, g.shape, g.dtype)

        updates = treedef.unflatten([noisy(g, k) for g, k in zip(leaves, keys, strict=True)])
        return updates, AddNoiseState(count=count, rng_key=rng_key)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByRpropState(NamedTuple):
    """State of :func:`scale_by_rprop`."""

    step_sizes: Updates  # per-coordinate step size; each leaf its parameter's shape and dtype
    prev_updates: Updates  # the last direction step * sign(g), 0 after a sign change; same


def scale_by_rprop(learning_rate: Scalar, eta_minus: Scalar = 0.5, eta_plus: Scalar = 1.2,
                   min_step_size: Scalar = 1e-6,
                   max_step_size: Scalar = 50.0) -> optax.GradientTransformation:
    r"""Rprop's direction: a per-coordinate step size that grows while the gradient keeps its sign.

    .. math::
        s_t = g_t\, d_{t-1}, \quad
        \Delta_t = \begin{cases} \operatorname{clip}(\eta^+ \Delta_{t-1}) & s_t > 0 \\
        \operatorname{clip}(\eta^- \Delta_{t-1}) & s_t < 0 \\ \Delta_{t-1} & s_t = 0 \end{cases}, \quad
        d_t = \begin{cases} 0 & s_t < 0 \\ \Delta_t \operatorname{sign}(g_t) & \text{else} \end{cases},
        \quad u_t = d_t

    with :math:`\Delta_0` = ``learning_rate``, :math:`d_0 = 0`, and clip to
    [``min_step_size``, ``max_step_size``].
    """
    if callable(learning_rate):
        raise TypeError("rprop's learning_rate is the initial step size and must be a number, not a "
                        "schedule (as in optax)")
    check_scalar("learning_rate", learning_rate, 0.0)
    check_scalar("eta_minus", eta_minus, 0.0)
    check_scalar("eta_plus", eta_plus, 0.0)
    check_scalar("min_step_size", min_step_size, 0.0)
    check_scalar("max_step_size", max_step_size, 0.0)

    def init_fn(params):
        return ScaleByRpropState(step_sizes=full_like(params, learning_rate), prev_updates=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        agree = jax.tree.map(lambda g, d: g * d, updates, state.prev_updates)

        def new_step(s, step):
            dt = step.dtype
            factor = jnp.where(s > 0, cast(eta_plus, dt), cast(eta_minus, dt))
            clipped = jnp.clip(step * factor, cast(min_step_size, dt), cast(max_step_size, dt))
            return jnp.where(s == 0, step, clipped)

        step_sizes = jax.tree.map(new_step, agree, state.step_sizes)
        directions = jax.tree.map(lambda s, g, step: jnp.where(s < 0, jnp.zeros_like(g), step * jnp.sign(g)),
                                  agree, updates, step_sizes)
        return directions, ScaleByRpropState(step_sizes=step_sizes, prev_updates=directions)

    return optax.GradientTransformation(init_fn, update_fn)



# ----------------------------------------------------------------------------- optimizers


def sign_sgd(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Sign SGD: step each coordinate by the learning rate against its gradient's sign.

    .. math:: u_t = -\alpha_t \operatorname{sign}(g_t)

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.sign_sgd``.

    References:
        Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex Problems*, ICML 2018.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_sign(), scale_by_learning_rate(learning_rate), name="lab.optim.sign_sgd")


def signum(learning_rate: ScalarOrSchedule, beta: Scalar = 0.9) -> optax.GradientTransformation:
    r"""Signum: sign SGD on a moving average of the gradients (no bias correction: the sign needs none).

    .. math:: m_t = \beta m_{t-1} + (1 - \beta) g_t, \qquad u_t = -\alpha_t \operatorname{sign}(m_t)

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        beta: :math:`\beta` in [0, 1].

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.signum``.

    References:
        Bernstein et al., *signSGD: Compressed Optimisation for Non-Convex Problems*, ICML 2018.
    """
    check_learning_rate(learning_rate)
    check_scalar("beta", beta, 0.0, 1.0)  # before ema(), which calls it decay
    return checked_chain(blocks.ema(beta), scale_by_sign(), scale_by_learning_rate(learning_rate),
                         name="lab.optim.signum")


def lion(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.99,
         weight_decay: Scalar = 1e-3) -> optax.GradientTransformation:
    r"""Lion (EvoLved Sign Momentum): a signed interpolation of gradient and momentum, plus decoupled
    weight decay scaled by the learning rate.

    .. math::
        u_t = -\alpha_t \left(\operatorname{sign}(\beta_1 m_{t-1} + (1 - \beta_1) g_t)
        + \lambda \theta_t\right), \qquad m_t = \beta_2 m_{t-1} + (1 - \beta_2) g_t

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule (typically 3-10x smaller than AdamW's).
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.lion``.

    References:
        Chen et al., *Symbolic Discovery of Optimization Algorithms*, NeurIPS 2023.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_lion(b1, b2), add_decayed_weights(weight_decay),
                         scale_by_learning_rate(learning_rate), name="lab.optim.lion")


def noisy_sgd(learning_rate: ScalarOrSchedule, eta: Scalar = 0.01, gamma: Scalar = 0.55,
              key=None) -> optax.GradientTransformation:
    r"""SGD with annealed Gaussian gradient noise.

    .. math::
        u_t = -\alpha_t (g_t + \sigma_t \xi_t), \qquad \sigma_t^2 = \eta / t^\gamma, \qquad
        \xi_t \sim N(0, I)

    with :math:`t = 1, 2, \dots` The noise is optax's for the same ``key``.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        eta: the initial variance :math:`\eta \ge 0`.
        gamma: the annealing exponent :math:`\gamma \ge 0`.
        key: an int seed or a ``jax.random.key`` (required: the lab draws nothing without one).

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.noisy_sgd``.

    References:
        Neelakantan et al., *Adding Gradient Noise Improves Learning for Very Deep Networks*, 2015.
    """
    check_learning_rate(learning_rate)
    return checked_chain(add_noise(eta, gamma, key), scale_by_learning_rate(learning_rate),
                         name="lab.optim.noisy_sgd")


def rprop(learning_rate: Scalar, eta_minus: Scalar = 0.5, eta_plus: Scalar = 1.2,
          min_step_size: Scalar = 1e-6, max_step_size: Scalar = 50.0) -> optax.GradientTransformation:
    r"""Rprop (resilient backpropagation): per-coordinate step sizes adapted from the gradient's sign
    alone; after a sign change the coordinate pauses for one step.

    .. math::
        u_t = -d_t, \qquad d_t = \Delta_t \operatorname{sign}(g_t) \;(0 \text{ if the sign flipped})

    with :math:`\Delta_t` grown by :math:`\eta^+` while the sign holds and shrunk by :math:`\eta^-`
    when it flips (see :func:`scale_by_rprop`). This is the paper's and ``torch.optim.Rprop``'s rule:
    each step moves by the step size it computes. ``optax.rprop`` (0.2.8) emits each step one update
    late (its first update is 0); see ``docs/optimizers.md``.

    Args:
        learning_rate: the initial step size :math:`\Delta_0 \ge 0` (a number, not a schedule).
        eta_minus: :math:`\eta^- \ge 0`, applied when the gradient changes sign.
        eta_plus: :math:`\eta^+ \ge 0`, applied when it keeps its sign.
        min_step_size: the smallest step size after an update.
        max_step_size: the largest.

    Returns:
        An ``optax.GradientTransformation``.

    References:
        Riedmiller and Braun, *A Direct Adaptive Method for Faster Backpropagation Learning: the RPROP
        Algorithm*, 1993; Igel and Hüsken, *Empirical evaluation of the improved Rprop learning
        algorithms*, 2003.
    """
    tx = scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)
    return checked_chain(tx, scale_by_learning_rate(1.0), name="lab.optim.rprop")


# ----------------------------------------------------------------------------- reference


def optax_rprop(learning_rate, eta_minus=0.5, eta_plus=1.2, min_step_size=1e-6,
                max_step_size=50.0) -> optax.GradientTransformation:
    """``optax.rprop`` emitting the update it computes: ``optax.scale_by_rprop`` (0.2.8) stores the
    step ``step_size * sign(g)`` of the current gradient in its state but returns the previous one;
    this reference returns the stored step, negated."""
    # The same fix is proposed upstream: google-deepmind/optax pull request 1725.
    inner = optax.scale_by_rprop(learning_rate, eta_minus, eta_plus, min_step_size, max_step_size)

    def update_fn(updates, state, params=None):
        del params
        _, state = inner.update(updates, state)
        return jax.tree.map(jnp.negative, state.prev_updates), state

    return optax.GradientTransformation(inner.init, update_fn)


# ----------------------------------------------------------------------------- catalogue entries

_SIGN_LR = Hyperparameter("learning_rate", 1e-5, 1.0)

register(Entry(
    "sign_sgd", sign_sgd, optax.sign_sgd, label="Sign SGD", verify=({"learning_rate": 0.1},),
    search_space=(_SIGN_LR,),
))
register(Entry(
    "signum", signum, optax.signum, label="Signum",
    verify=({"learning_rate": 0.1}, {"learning_rate": 0.01, "beta": 0.5}),
    search_space=(_SIGN_LR, Hyperparameter("beta", 0.5, 0.99, "linear")),
))
register(Entry(
    "lion", lion, optax.lion, label="Lion",
    verify=({"learning_rate": 1e-3}, {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.9, "weight_decay": 0.1}),
    search_space=(_SIGN_LR, Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("b2", 0.9, 0.999, "linear"), Hyperparameter("weight_decay", 1e-5, 1.0)),
))
register(Entry(
    "noisy_sgd", noisy_sgd, optax.noisy_sgd, label="Noisy SGD",
    verify=({"learning_rate": 0.1, "key": 0},
            {"learning_rate": 0.01, "eta": 0.1, "gamma": 0.3, "key": 1}),
    search_space=(Hyperparameter("learning_rate", 1e-4, 10.0), Hyperparameter("eta", 1e-4, 1.0),
                  Hyperparameter("gamma", 0.1, 1.0, "linear")),
))
register(Entry(
    "rprop", rprop, optax_rprop, reference_name="optax.rprop, returning the step it stores",
    label="Rprop", schedule=False,
    verify=({"learning_rate": 0.1},
            {"learning_rate": 0.01, "eta_minus": 0.3, "eta_plus": 1.5, "min_step_size": 1e-3,
             "max_step_size": 0.5}),
    search_space=(_SIGN_LR, Hyperparameter("eta_minus", 0.1, 0.9, "linear"),
                  Hyperparameter("eta_plus", 1.05, 2.0, "linear")),
    torch=Torch("Rprop", "same rule (etas=(eta_minus, eta_plus), step_sizes=(min, max)); torch also clips "
                "the first step size lr into step_sizes, and defaults to lr=0.01"),
))

__all__ = ["AddNoiseState", "ScaleByLionState", "ScaleByRpropState", "add_noise", "lion", "noisy_sgd",
           "rprop", "scale_by_lion", "scale_by_rprop", "scale_by_sign", "sign_sgd", "signum"]
