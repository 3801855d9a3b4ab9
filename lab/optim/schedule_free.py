"""Schedule-Free AdamW (``optax.contrib.schedule_free_adamw``): momentum replaced by interpolation
between a base iterate and its running average, and the rule for the parameters to evaluate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
    full_like,
    safe_increment,
)
from lab.optim.blocks import add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import Entry, Hyperparameter, register


class ScaleByRmsWithCountState(NamedTuple):
    """State of :func:`scale_by_debiased_rms`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    nu: Updates  # EMA of squared gradients; each leaf its parameter's shape and dtype


def scale_by_debiased_rms(decay: Scalar = 0.999, eps: Scalar = 1e-8) -> optax.GradientTransformation:
    r"""Divide by the root of a bias-corrected moving average of squared gradients (Adam without
    its first moment; optax's ``scale_by_rms(eps_in_sqrt=False, bias_correction=True)``).

    .. math::
        \nu_t = \beta_2 \nu_{t-1} + (1 - \beta_2) g_t^2, \quad
        u_t = g_t / \left(\sqrt{\nu_t / (1 - \beta_2^t)} + \epsilon\right)

    Args:
        decay: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByRmsWithCountState`.
    """
    check_scalar("decay", decay, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)

    def update_fn(updates, state, params=None):
        del params
        nu = jax.tree.map(lambda g, v: cast(1 - decay, g.dtype) * abs_sq(g) + cast(decay, v.dtype) * v,
                          updates, state.nu)
        count = safe_increment(state.count)
        bc = bias_correction(decay, count)
        # optax multiplies by 1 / (sqrt + eps) rather than dividing: the same rounding here.
        updates = jax.tree.map(lambda g, v: (1 / (jnp.sqrt(v / bc.astype(v.dtype)) + cast(eps, v.dtype))) * g,
                               updates, nu)
        return updates, ScaleByRmsWithCountState(count=count, nu=nu)

    return optax.GradientTransformation(
        lambda params: ScaleByRmsWithCountState(jnp.zeros([], jnp.int32), full_like(params, 0.0)), update_fn)


class ScheduleFreeState(NamedTuple):
    """State of :func:`schedule_free` (optax's fields)."""

    b1: Array  # shape (), the params' lowest dtype: beta_1, for the evaluation parameters
    weight_sum: Array  # shape (), the params' lowest dtype: sum of the averaging weights so far
    step_count: Array  # shape (), int32: 1 at the first update (the schedule is read there)
    max_lr: Array  # shape (), the params' lowest dtype: largest learning rate so far
    base_optimizer_state: Any  # the base optimizer's state
    z: Updates  # the base optimizer's iterate z; each leaf its parameter's shape, in state_dtype


def _lowest_dtype(params) -> Any:
    return optax.tree.dtype(params, "lowest")


def _wider(a: Array, b: Array) -> Any:
    """The dtype of ``a`` or ``b`` with more bits (where ``state_dtype`` differs from the params')."""
    return b.dtype if jnp.finfo(b.dtype).bits > jnp.finfo(a.dtype).bits else a.dtype


def schedule_free(base_optimizer: optax.GradientTransformation, learning_rate: ScalarOrSchedule,
                  b1: Scalar = 0.9, weight_lr_power: Scalar = 2.0, state_dtype: Any = None
                  ) -> optax.GradientTransformation:
    r"""Make ``base_optimizer`` schedule-free: its steps move :math:`z`, the parameters :math:`y`
    interpolate between :math:`z` and the weighted average :math:`x` of the :math:`z` iterates.

    .. math::
        z_{t+1} = z_t + \Delta_t, \quad
        c_{t+1} = \frac{\gamma_t^r}{\sum_{i \le t} \gamma_i^r}, \quad
        x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1}, \quad
        y_{t+1} = \beta_1 x_{t+1} + (1 - \beta_1) z_{t+1}

    with :math:`\Delta_t` the base optimizer's update at :math:`y_t`, :math:`\gamma_t` the largest
    learning rate so far and :math:`r` = ``weight_lr_power``; :math:`x_t = (y_t - (1 - \beta_1)
    z_t) / \beta_1` is recomputed from the parameters. The update is :math:`y_{t+1} - y_t`, a
    difference of parameters, so it is rounded to an ulp of the parameters, not of the update. A
    schedule is read at ``step_count`` (1 at the first update), one step ahead of the base
    optimizer's count, as in optax. The weights are summed in the params' lowest dtype.

    Args:
        base_optimizer: gives :math:`\Delta_t` (with its learning rate; without momentum).
        learning_rate: :math:`\gamma \ge 0` or a schedule (for the weights only).
        b1: :math:`\beta_1` in (0, 1].
        weight_lr_power: :math:`r \ge 0`.
        state_dtype: the dtype of :math:`z` (``None``: the params'); updates keep the params' dtype.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScheduleFreeState`; its ``update``
        needs ``params``. Evaluate at :func:`schedule_free_eval_params`.

    References:
        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024.
    """
    check_learning_rate(learning_rate)
    check_scalar("b1", b1, 0.0, 1.0)
    if not isinstance(b1, jax.core.Tracer) and float(b1) == 0.0:
        raise ValueError("b1 must be > 0 for schedule-free methods (x is recovered by dividing by b1), got 0")
    check_scalar("weight_lr_power", weight_lr_power, 0.0)

    def init_fn(params):
        dtype = _lowest_dtype(params)
        z = params if state_dtype is None else jax.tree.map(lambda p: p.astype(state_dtype), params)
        return ScheduleFreeState(b1=jnp.asarray(b1, dtype), weight_sum=jnp.zeros([], dtype),
                                 step_count=jnp.ones([], jnp.int32), max_lr=jnp.zeros([], dtype),
                                 base_optimizer_state=base_optimizer.init(params),
                                 z=jax.tree.map(jnp.copy, z))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("schedule_free needs params: call update(updates, state, params)")
        dtype = state.max_lr.dtype
        lr = learning_rate(state.step_count) if callable(learning_rate) else learning_rate
        max_lr = jnp.maximum(state.max_lr, cast(lr, dtype))
        weight = max_lr ** cast(weight_lr_power, dtype)
        weight_sum = state.weight_sum + weight
        ck = jnp.where(jnp.isnan(weight) | jnp.isnan(weight_sum), jnp.full(weight.shape, jnp.nan, dtype),
                       jnp.nan_to_num(weight / weight_sum, nan=0.0, posinf=jnp.inf))
        steps, base_state = base_optimizer.update(updates, state.base_optimizer_state, params)
        z = jax.tree.map(lambda zi, s: (zi + s.astype(zi.dtype)).astype(zi.dtype), state.z, steps)

        def one(y, z_old, z_new):
            wide = _wider(y, z_new)
            y, z_old, z_new = y.astype(wide), z_old.astype(wide), z_new.astype(wide)
            beta, one_minus, c = cast(b1, wide), cast(1 - b1, wide), cast(ck, wide)
            x = (y - one_minus * z_old) / beta
            x = (1 - c) * x + c * z_new
            return (beta * x + one_minus * z_new - y).astype(y.dtype)

        new = jax.tree.map(one, params, state.z, z)
        return new, ScheduleFreeState(b1=state.b1, weight_sum=weight_sum,
                                      step_count=safe_increment(state.step_count), max_lr=max_lr,
                                      base_optimizer_state=base_state, z=z)

    return optax.GradientTransformation(init_fn, update_fn)


def _schedule_free_state(state: Any) -> Any:
    """The schedule-free state within ``state`` (a chain's tuple of states, searched in order)."""
    if hasattr(state, "b1") and hasattr(state, "z"):
        return state
    if isinstance(state, tuple):
        for inner in state:
            found = _schedule_free_state(inner)
            if found is not None:
                return found
    return None


def schedule_free_eval_params(state: Any, params: Any) -> Any:
    r"""The parameters to evaluate a schedule-free run at: the average
    :math:`x = (y - (1 - \beta_1) z) / \beta_1`, with :math:`\beta_1` as stored in the state (in
    the params' lowest dtype, as optax does; in bfloat16 it is rounded).

    Args:
        state: the optimizer state of :func:`schedule_free_adamw` (or of a chain containing it).
        params: the current parameters :math:`y`.

    Returns:
        :math:`x`, shaped like ``params``.
    """
    found = _schedule_free_state(state)
    if found is None:
        raise ValueError(f"schedule_free_eval_params needs the state of a schedule-free optimizer, got "
                         f"{type(state).__name__}")
    def one(y, z):
        wide = _wider(y, z)
        b1 = found.b1.astype(wide)
        return ((y.astype(wide) - (1.0 - b1) * z.astype(wide)) / b1).astype(y.dtype)

    return jax.tree.map(one, params, found.z)


def schedule_free_adamw(learning_rate: Scalar = 0.0025, warmup_steps: int | None = None, b1: Scalar = 0.9,
                        b2: Scalar = 0.999, eps: Scalar = 1e-8, weight_decay: Scalar = 0.0,
                        weight_lr_power: Scalar = 2.0, state_dtype: Any = None
                        ) -> optax.GradientTransformation:
    r"""Schedule-Free AdamW: AdamW without momentum, made schedule-free (see :func:`schedule_free`).

    .. math::
        \Delta_t = -\gamma_t \left(g_t / (\sqrt{\hat\nu_t} + \epsilon) + \lambda y_t\right)

    at the parameters :math:`y_t`, with :math:`\hat\nu_t` of :func:`scale_by_debiased_rms` and a
    linear warm-up of :math:`\gamma_t` from 0 over ``warmup_steps``. Evaluate the model at
    :func:`schedule_free_eval_params`, not at the parameters.

    Args:
        learning_rate: :math:`\gamma \ge 0`, a number (as in optax).
        warmup_steps: length of the linear warm-up, or ``None``.
        b1: :math:`\beta_1` in (0, 1], the interpolation.
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        weight_decay: :math:`\lambda \ge 0` (multiplied by the learning rate).
        weight_lr_power: :math:`r \ge 0`.
        state_dtype: the dtype of :math:`z` (``None``: the params').

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.contrib.schedule_free_adamw``.

    References:
        Defazio et al., *The Road Less Scheduled*, NeurIPS 2024.
    """
    check_scalar("learning_rate", learning_rate, 0.0)
    check_scalar("b2", b2, 0.0, 1.0)  # before scale_by_debiased_rms, which calls it decay
    if warmup_steps is not None:
        if isinstance(warmup_steps, bool) or not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise ValueError(f"warmup_steps must be None or a Python int >= 1, got {warmup_steps!r}")
        learning_rate = optax.warmup_constant_schedule(init_value=0.0, peak_value=learning_rate,
                                                       warmup_steps=warmup_steps)
    base = optax.chain(scale_by_debiased_rms(b2, eps), add_decayed_weights(weight_decay),
                       scale_by_learning_rate(learning_rate))
    return checked_chain(schedule_free(base, learning_rate, b1, weight_lr_power, state_dtype),
                         name="lab.optim.schedule_free_adamw")


register(Entry(
    "schedule_free_adamw", schedule_free_adamw, optax.contrib.schedule_free_adamw,
    reference_name="optax.contrib.schedule_free_adamw", label="Schedule-Free AdamW", schedule=False,
    eval_params=schedule_free_eval_params,
    verify=({"learning_rate": 2.5e-3},
            {"learning_rate": 1e-2, "warmup_steps": 100, "b1": 0.8, "b2": 0.99, "eps": 1e-6,
             "weight_decay": 1e-3, "weight_lr_power": 1.0}),
    search_space=(Hyperparameter("learning_rate", 1e-4, 1.0), Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("weight_decay", 1e-5, 1.0)),
))

__all__ = ["ScaleByRmsWithCountState", "ScheduleFreeState", "scale_by_debiased_rms", "schedule_free_adamw",
           "schedule_free_eval_params"]
