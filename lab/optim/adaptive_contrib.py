"""Adaptive methods from ``optax.contrib``, each with the arguments, names and defaults of its optax
namesake: :func:`adopt` (Adam normalized by the previous second moment), :func:`ademamix` (a fast and
a slow momentum) and :func:`prodigy` (Adam with a learned step size), with their blocks and catalogue
entries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
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
    debias,
    moment,
    safe_increment,
    zeros_like,
)
from lab.optim.blocks import add_decayed_weights, scale_by_learning_rate
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, register
from lab.optim.layerwise import Mask, masked

__all__ = ["ProdigyState", "ScaleByAdemamixState", "ScaleByAdoptState", "ademamix", "adopt", "prodigy",
           "scale_by_ademamix", "scale_by_adopt"]


# ----------------------------------------------------------------------------- building blocks


class ScaleByAdoptState(NamedTuple):
    """State of :func:`scale_by_adopt`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # momentum of the normalized gradients; each leaf its parameter's shape and dtype
    nu: Updates  # second moment; each leaf its parameter's shape and dtype


def _fourth_root(count: Array) -> Array:
    """``count ** 0.25`` in the default float dtype (optax's ``lambda x: x**0.25``, made explicit)."""
    return count.astype(jnp.result_type(float)) ** 0.25


def scale_by_adopt(b1: Scalar = 0.9, b2: Scalar = 0.9999, eps: Scalar = 1e-6, *, nesterov: bool = False,
                   use_clipping: bool = True,
                   clip_value_fn: Callable[[Array], Array] = _fourth_root) -> optax.GradientTransformation:
    """ADOPT's rescaling; see :func:`adopt`.

    Args:
        b1, b2, eps, nesterov, use_clipping, clip_value_fn: as in :func:`adopt`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdoptState`.
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_flag("nesterov", nesterov)
    check_flag("use_clipping", use_clipping)
    if not callable(clip_value_fn):
        raise TypeError(f"clip_value_fn must be a function of the step count, got {clip_value_fn!r}")

    def init_fn(params):
        return ScaleByAdoptState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params), nu=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        # The first step only records v_0 = g_0^2 (b2 -> 0) and leaves the momentum at 0 (b1 -> 1).
        started = state.count > 0
        b1_, b2_ = jnp.where(started, b1, 1), jnp.where(started, b2, 0)
        nu = jax.tree.map(lambda g, v: moment(abs_sq(g), v, b2_), updates, state.nu)
        clip = clip_value_fn(state.count) if use_clipping else None

        def normalized(g, v):  # by the previous step's second moment
            x = g / jnp.maximum(jnp.sqrt(v), cast(eps, v.dtype))
            return jnp.clip(x, -cast(clip, x.dtype), cast(clip, x.dtype)) if use_clipping else x

        x = jax.tree.map(normalized, updates, state.nu)
        mu = jax.tree.map(lambda x, m: moment(x, m, b1_), x, state.mu)
        out = jax.tree.map(lambda x, m: moment(x, m, b1_), x, mu) if nesterov else mu
        return out, ScaleByAdoptState(count=safe_increment(state.count), mu=mu, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdemamixState(NamedTuple):
    """State of :func:`scale_by_ademamix`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    m1: Updates  # fast EMA of the gradients; each leaf its parameter's shape and dtype
    m2: Updates  # slow EMA of the gradients; each leaf its parameter's shape and dtype
    nu: Updates  # second moment; each leaf its parameter's shape and dtype


def scale_by_ademamix(b1: Scalar = 0.9, b2: Scalar = 0.999, b3: ScalarOrSchedule = 0.9999,
                      alpha: ScalarOrSchedule = 6.0, eps: Scalar = 1e-8,
                      eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    """AdEMAMix's rescaling; see :func:`ademamix` (whose ``alpha`` defaults to 5, this block's to 6,
    as in optax).

    Args:
        b1, b2, b3, alpha, eps, eps_root: as in :func:`ademamix`.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByAdemamixState`.
    """
    check_scalar("b1", b1, 0.0, 1.0)
    check_scalar("b2", b2, 0.0, 1.0)
    if not callable(b3):
        check_scalar("b3", b3, 0.0, 1.0)
    if not callable(alpha):
        check_scalar("alpha", alpha, 0.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("eps_root", eps_root, 0.0)

    def init_fn(params):
        return ScaleByAdemamixState(count=jnp.zeros([], jnp.int32), m1=zeros_like(params),
                                    m2=zeros_like(params), nu=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        b3_t = b3(state.count) if callable(b3) else b3
        alpha_t = alpha(state.count) if callable(alpha) else alpha
        m1 = jax.tree.map(lambda g, m: moment(g, m, b1), updates, state.m1)
        m2 = jax.tree.map(lambda g, m: moment(g, m, b3_t), updates, state.m2)
        nu = jax.tree.map(lambda g, v: moment(abs_sq(g), v, b2), updates, state.nu)
        count = safe_increment(state.count)
        bc1, bc2 = bias_correction(b1, count), bias_correction(b2, count)
        updates = jax.tree.map(
            lambda m1, m2, v: (debias(m1, bc1) + cast(alpha_t, m2.dtype) * m2)
            / (jnp.sqrt(debias(v, bc2) + cast(eps_root, v.dtype)) + cast(eps, v.dtype)), m1, m2, nu)
        return updates, ScaleByAdemamixState(count=count, m1=m1, m2=m2, nu=nu)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- optimizers


def adopt(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.9999, eps: Scalar = 1e-6, *,
          nesterov: bool = False, use_clipping: bool = True,
          clip_value_fn: Callable[[Array], Array] = _fourth_root) -> optax.GradientTransformation:
    r"""ADOPT: Adam's momentum of gradients normalized by the *previous* second moment, clipped early on.

    .. math::
        x_t = \operatorname{clip}\big(g_t / \max(\sqrt{v_{t-1}}, \epsilon), \pm c(t)\big), \quad
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) x_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \quad u_t = -\alpha_t m_t

    for steps :math:`t = 1, 2, \ldots`; step 0 only records :math:`v_0 = g_0^2` and moves nothing.
    Nesterov's form steps by :math:`-\alpha_t (\beta_1 m_t + (1 - \beta_1) x_t)`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, a floor under :math:`\sqrt{v_{t-1}}`.
        nesterov: Nesterov's look-ahead form.
        use_clipping: clip :math:`x_t` to :math:`\pm c(t)`.
        clip_value_fn: :math:`c`, a function of the step count (default :math:`t^{1/4}`).

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.contrib.adopt``.

    References:
        Taniguchi et al., *ADOPT: Modified Adam Can Converge with Any β2 with the Optimal Rate*,
        NeurIPS 2024.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adopt(b1, b2, eps, nesterov=nesterov, use_clipping=use_clipping,
                                        clip_value_fn=clip_value_fn),
                         scale_by_learning_rate(learning_rate), name="lab.optim.adopt")


def ademamix(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999,
             b3: ScalarOrSchedule = 0.9999, alpha: ScalarOrSchedule = 5.0, eps: Scalar = 1e-8,
             eps_root: Scalar = 0.0, weight_decay: Scalar = 0.0,
             mask: Mask = None) -> optax.GradientTransformation:
    r"""AdEMAMix: AdamW whose step mixes a fast momentum with a slow one that remembers old gradients.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \quad
        m'_t = \beta_3 m'_{t-1} + (1 - \beta_3) g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2, \\
        u_t = -\eta_t \Big(\frac{\hat m_t + \alpha m'_t}{\sqrt{\hat v_t + \bar\epsilon} + \epsilon}
        + \lambda \theta_t\Big)

    with :math:`\hat m_t, \hat v_t` bias-corrected as in Adam and the slow :math:`m'_t` not.

    Args:
        learning_rate: :math:`\eta \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1], for the fast momentum.
        b2: :math:`\beta_2` in [0, 1], for the second moment.
        b3: :math:`\beta_3` in [0, 1], for the slow momentum, or a schedule of the step count (the
            paper warms it up).
        alpha: :math:`\alpha \ge 0`, the slow momentum's weight, or a schedule (the paper warms it up).
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        weight_decay: :math:`\lambda \ge 0`.
        mask: which leaves get weight decay (see :func:`lab.optim.masked`); ``None``: all.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.contrib.ademamix``.

    References:
        Pagliardini, Ablin and Grangier, *The AdEMAMix Optimizer: Better, Faster, Older*, ICLR 2025.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_ademamix(b1, b2, b3, alpha, eps, eps_root),
                         masked(add_decayed_weights(weight_decay), mask),
                         scale_by_learning_rate(learning_rate), name="lab.optim.ademamix")


class ProdigyState(NamedTuple):
    """State of :func:`prodigy`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    exp_avg: Updates  # EMA of the scaled gradients d g; each leaf its parameter's shape and dtype
    exp_avg_sq: Updates  # EMA of their squares; each leaf its parameter's shape and dtype
    grad_sum: Updates  # s, the weighted sum of scaled gradients; each leaf its parameter's shape/dtype
    params0: Updates  # the initial parameters x_0
    estim_lr: Array  # shape (), the params' lowest dtype: d, the estimated distance to a solution
    numerator_weighted: Array  # shape (), the params' lowest dtype: r, the weighted sum in d's numerator


def _lowest_dtype(params) -> jnp.dtype:
    dtypes = [jnp.result_type(p) for p in jax.tree.leaves(params)] or [jnp.result_type(float)]
    return functools.reduce(lambda a, b: a if jnp.promote_types(a, b) == b else b, dtypes)


def prodigy(learning_rate: ScalarOrSchedule = 1.0, betas: tuple[Scalar, Scalar] = (0.9, 0.999),
            beta3: Scalar | None = None, eps: Scalar = 1e-8, estim_lr0: Scalar = 1e-6,
            estim_lr_coef: Scalar = 1.0, weight_decay: Scalar = 0.0,
            safeguard_warmup: bool = False) -> optax.GradientTransformation:
    r"""Prodigy: AdamW whose step size learns the distance to a solution (D-Adaptation, faster).

    .. math::
        \hat\alpha_t = d_{t-1} \alpha_t \sqrt{1 - \beta_2^t} / (1 - \beta_1^t), \quad
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) d_{t-1} g_t, \quad
        v_t = \beta_2 v_{t-1} + (1 - \beta_2) d_{t-1}^2 g_t^2, \\
        r_t = \beta_3 r_{t-1} + \tfrac{d_{t-1}}{d_0} \hat\alpha_t \langle g_t, x_0 - x_t \rangle, \quad
        s_t = \beta_3 s_{t-1} + \tfrac{\hat\alpha_t}{d_0} d_{t-1} g_t, \quad
        d_t = \max\big(d_{t-1}, c\, r_t / \|s_t\|_1\big), \\
        u_t = -\hat\alpha_t \Big(\frac{m_t}{\sqrt{v_t} + d_t \epsilon} + \lambda x_t\Big)

    With ``safeguard_warmup``, :math:`s_t` grows by :math:`\tfrac{d_{t-1}}{d_0} d_{t-1} g_t` instead
    (the learning rate leaves the estimate's denominator). :math:`d, r` are scalars over all leaves.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule; 1 is the natural scale (a schedule
            peaking at 1 is recommended).
        betas: :math:`(\beta_1, \beta_2)`, each in [0, 1].
        beta3: :math:`\beta_3` in [0, 1]; ``None``: :math:`\sqrt{\beta_2}`.
        eps: :math:`\epsilon \ge 0`.
        estim_lr0: :math:`d_0 > 0`, the initial (under-)estimate.
        estim_lr_coef: :math:`c \ge 0`, multiplying every estimate.
        weight_decay: :math:`\lambda \ge 0`, decoupled (AdamW's).
        safeguard_warmup: drop the learning rate from the estimate's denominator.

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ProdigyState` whose ``update`` needs
        ``params``; comparable to ``optax.contrib.prodigy``.

    References:
        Mishchenko and Defazio, *Prodigy: An Expeditiously Adaptive Parameter-Free Learner*, ICML 2024.
    """
    check_learning_rate(learning_rate)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    beta1, beta2 = betas
    check_scalar("betas[0]", beta1, 0.0, 1.0)
    check_scalar("betas[1]", beta2, 0.0, 1.0)
    beta3 = beta2 ** 0.5 if beta3 is None else beta3
    check_scalar("beta3", beta3, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_scalar("estim_lr0", estim_lr0, 1e-300)  # a divisor
    check_scalar("estim_lr_coef", estim_lr_coef, 0.0)
    check_scalar("weight_decay", weight_decay, 0.0)
    check_flag("safeguard_warmup", safeguard_warmup)

    def init_fn(params):
        dtype = _lowest_dtype(params)
        return ProdigyState(count=jnp.zeros([], jnp.int32), exp_avg=zeros_like(params),
                            exp_avg_sq=zeros_like(params), grad_sum=zeros_like(params), params0=params,
                            estim_lr=cast(estim_lr0, dtype), numerator_weighted=jnp.zeros([], dtype))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("prodigy needs params: call update(updates, state, params)")
        count = safe_increment(state.count)
        alpha = learning_rate(state.count) if callable(learning_rate) else learning_rate
        d = state.estim_lr
        dt = d.dtype
        bc = (bias_correction(beta2, count) ** 0.5) / bias_correction(beta1, count)
        # The step size alpha-hat, rounded once to the state's dtype (the correction is in float32 at
        # least), as optax's compiled product is: XLA drops its intermediate bfloat16 rounding.
        wide = jnp.float32 if jnp.finfo(dt).bits < 32 else dt
        dlr = (d.astype(wide) * cast(alpha, wide) * bc.astype(wide)).astype(dt)
        dg = jax.tree.map(lambda g: d.astype(g.dtype) * g, updates)
        # <g, x_0 - x> as optax computes it: a contraction at the highest precision, leaf by leaf.
        inner = sum(jax.tree.leaves(jax.tree.map(
            lambda g, p0, p: jnp.tensordot(g, p0 - p, g.ndim, precision=jax.lax.Precision.HIGHEST),
            updates, state.params0, params)))
        exp_avg = jax.tree.map(lambda x, m: moment(x, m, beta1), dg, state.exp_avg)
        exp_avg_sq = jax.tree.map(
            lambda x, v: cast(beta2, v.dtype) * v + cast(1 - beta2, v.dtype) * x * x, dg, state.exp_avg_sq)
        s_scale = d if safeguard_warmup else dlr
        grad_sum = jax.tree.map(lambda x, s: cast(beta3, s.dtype) * s + s_scale.astype(s.dtype) * x
                                / cast(estim_lr0, s.dtype), dg, state.grad_sum)
        numerator = cast(beta3, dt) * state.numerator_weighted + (d / cast(estim_lr0, dt)) * dlr * inner
        denominator = sum(jnp.sum(jnp.abs(s)) for s in jax.tree.leaves(grad_sum))  # ||s_t||_1
        new_d = jnp.maximum(d, cast(estim_lr_coef, dt) * numerator / denominator)

        def step(m, v, p):
            decay = (cast(-weight_decay, dt) * dlr).astype(p.dtype) * p
            return decay - dlr.astype(m.dtype) * m / (jnp.sqrt(v) + (new_d * cast(eps, dt)).astype(v.dtype))

        updates = jax.tree.map(step, exp_avg, exp_avg_sq, params)
        return updates, ProdigyState(count=count, exp_avg=exp_avg, exp_avg_sq=exp_avg_sq, grad_sum=grad_sum,
                                     params0=state.params0, estim_lr=new_d, numerator_weighted=numerator)

    return checked_chain(optax.GradientTransformation(init_fn, update_fn), name="lab.optim.prodigy")


# ----------------------------------------------------------------------------- catalogue entries

register(Entry(
    "adopt", adopt, optax.contrib.adopt, reference_name="optax.contrib.adopt", label="ADOPT",
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "eps": 1e-4, "nesterov": True,
             "use_clipping": False}),
    search_space=(LEARNING_RATE, Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("b2", 0.9, 0.9999, "linear")),
))
register(Entry(
    "ademamix", ademamix, optax.contrib.ademamix, reference_name="optax.contrib.ademamix", label="AdEMAMix",
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.8, "b2": 0.99, "b3": 0.999, "alpha": 8.0, "eps": 1e-6,
             "eps_root": 1e-8, "weight_decay": 0.1}),
    search_space=(LEARNING_RATE, Hyperparameter("b3", 0.99, 0.9999, "linear"),
                  Hyperparameter("alpha", 1.0, 10.0, "linear")),
))
register(Entry(
    "prodigy", prodigy, optax.contrib.prodigy, reference_name="optax.contrib.prodigy", label="Prodigy",
    verify=({"learning_rate": 1.0},
            {"learning_rate": 0.5, "betas": (0.8, 0.99), "beta3": 0.9, "eps": 1e-6, "estim_lr0": 1e-5,
             "estim_lr_coef": 2.0, "weight_decay": 1e-2, "safeguard_warmup": True}),
    search_space=(Hyperparameter("learning_rate", 0.1, 10.0), Hyperparameter("estim_lr0", 1e-8, 1e-4)),
))
