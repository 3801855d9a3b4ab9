"""Optimizers defined by how they size or extrapolate their step: :func:`polyak_sgd` (Polyak's step
from the loss value), :func:`fromage` (a step relative to the parameters' norm), :func:`adadelta`
(a step in the parameters' own units), :func:`optimistic_gradient_descent` and
:func:`optimistic_adam_v2` (extrapolation from the previous gradient). With their blocks and catalogue
entries.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.optim.adam_variants import scale_by_nadam
from lab.optim.base import (
    Array,
    Scalar,
    ScalarOrSchedule,
    Updates,
    abs_sq,
    at_least_float32,
    cast,
    check_flag,
    check_learning_rate,
    check_scalar,
    checked_chain,
    safe_increment,
    zeros_like,
)
from lab.optim.blocks import add_decayed_weights, scale_by_adam, scale_by_learning_rate
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, Torch, register
from lab.optim.layerwise import scale_by_trust_ratio

_F64_EPS = float(np.finfo(np.float64).eps)

# ----------------------------------------------------------------------------- blocks


def scale_by_polyak(f_min: Scalar = 0.0, max_learning_rate: Scalar = 1.0, eps: Scalar = 0.0,
                    variant: str = "sps") -> optax.GradientTransformationExtraArgs:
    r"""Polyak's step size: :math:`u_t = \gamma_t g_t` with
    :math:`\gamma_t = \min\{(f(x_t) - f^\star) / (\|g_t\|^2 + \epsilon), \gamma_{\max}\}`, 0 where
    :math:`\|g_t\|^2 + \epsilon` is below float64's machine epsilon. ``variant="sps+"`` uses
    :math:`(f(x_t) - f^\star)_+`. Its ``update`` takes the loss: ``update(g, state, params, value=f)``.
    """
    check_scalar("f_min", f_min, -math.inf)
    check_scalar("max_learning_rate", max_learning_rate, 0.0)
    check_scalar("eps", eps, 0.0)
    if variant not in ("sps", "sps+"):
        raise ValueError(f"variant must be 'sps' or 'sps+', got {variant!r}")

    def update_fn(updates, state, params=None, *, value=None, **extra_args):
        del params, extra_args
        if value is None:
            raise ValueError("polyak_sgd needs the loss: call update(grads, state, params, value=loss)")
        leaves = jax.tree.leaves(updates)
        if not leaves:
            return updates, state
        with jax.numpy_dtype_promotion("standard"):  # one norm over the tree, in its leaves' common dtype
            wide = jnp.result_type(*[x.dtype for x in leaves])
        sq_norm = sum(jnp.sum(abs_sq(x)).astype(wide) for x in leaves)
        v = jnp.asarray(value)
        gap = (v - cast(f_min, v.dtype)).astype(sq_norm.dtype)
        if variant == "sps+":
            gap = jnp.maximum(gap, 0)
        denom = sq_norm + cast(eps, sq_norm.dtype)
        # Below float64's epsilon (compared in float32 at least, as optax does) the step is 0.
        at_least_32 = at_least_float32(denom.dtype)
        step = jnp.where(denom.astype(at_least_32) <= cast(_F64_EPS, at_least_32), jnp.zeros_like(denom),
                         jnp.minimum(gap / denom, cast(max_learning_rate, denom.dtype)))
        return jax.tree.map(lambda g: cast(step, g.dtype) * g, updates), state

    return optax.GradientTransformationExtraArgs(optax.init_empty_state, update_fn)


class FromageStepState(NamedTuple):
    """State of :func:`fromage_step`."""

    count: Array  # shape (), int32: steps taken (the schedule's argument), saturating at 2**31 - 1


def fromage_step(learning_rate: ScalarOrSchedule) -> optax.GradientTransformation:
    r"""Fromage's step along a rescaled direction :math:`r_t`, then a division of the parameters by
    :math:`\sqrt{1 + \alpha_t^2}`: :math:`u_t = (-\alpha_t r_t + (1 - \sqrt{1 + \alpha_t^2})\,\theta_t)
    / \sqrt{1 + \alpha_t^2}`."""
    check_learning_rate(learning_rate)

    def init_fn(params):
        del params
        return FromageStepState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("fromage needs params: call update(updates, state, params)")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        mult = 1 / (1 + lr**2) ** 0.5
        # mult - 1 as optax computes it: in float32 (a schedule, or a traced learning rate) it cancels
        # to a relative error of about 1e-5 at lr = 0.05; the stable -lr^2 / (r (1 + r)), r = 1 / mult,
        # would part from optax's schedule case by more than float32's tolerance.
        neg_step, shrink = -(mult * lr), mult - 1
        updates = jax.tree.map(lambda r, p: cast(neg_step, r.dtype) * r + cast(shrink, p.dtype) * p,
                               updates, params)
        return updates, FromageStepState(count=safe_increment(state.count))

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByAdadeltaState(NamedTuple):
    """State of :func:`scale_by_adadelta`."""

    e_g: Updates  # EMA of squared gradients; each leaf its parameter's shape and dtype
    e_x: Updates  # EMA of squared steps; each leaf its parameter's shape and dtype


def scale_by_adadelta(rho: Scalar = 0.9, eps: Scalar = 1e-6) -> optax.GradientTransformation:
    r"""Adadelta's step, in the parameters' units: the RMS of past steps over the RMS of gradients.

    .. math::
        E[g^2]_t = \rho E[g^2]_{t-1} + (1 - \rho) g_t^2, \quad
        u_t = \frac{\sqrt{E[u^2]_{t-1} + \epsilon}}{\sqrt{E[g^2]_t + \epsilon}}\, g_t, \quad
        E[u^2]_t = \rho E[u^2]_{t-1} + (1 - \rho) u_t^2
    """
    check_scalar("rho", rho, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    one_minus = 1 - rho
    ema = lambda x, m: cast(one_minus, x.dtype) * (x * x) + cast(rho, x.dtype) * m  # noqa: E731

    def init_fn(params):
        return ScaleByAdadeltaState(e_g=zeros_like(params), e_x=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        e_g = jax.tree.map(ema, updates, state.e_g)
        updates = jax.tree.map(
            lambda g, eg, ex: (jnp.sqrt(ex + cast(eps, ex.dtype)) / jnp.sqrt(eg + cast(eps, eg.dtype))) * g,
            updates, e_g, state.e_x)
        e_x = jax.tree.map(ema, updates, state.e_x)
        return updates, ScaleByAdadeltaState(e_g=e_g, e_x=e_x)

    return optax.GradientTransformation(init_fn, update_fn)


class ScaleByOptimisticGradientState(NamedTuple):
    """State of :func:`scale_by_optimistic_gradient`."""

    is_initial_step: Array  # shape (), bool: no previous gradient yet
    previous_gradient: Updates  # g_{t-1}; each leaf its parameter's shape and dtype


def scale_by_optimistic_gradient(alpha: Scalar = 1.0, beta: Scalar = 1.0) -> optax.GradientTransformation:
    r"""Optimism: extrapolate from the previous gradient,
    :math:`u_t = (\alpha + \beta) g_t - \beta g_{t-1}`, with :math:`g_0 = g_1` (so :math:`u_1 = \alpha g_1`).
    """
    check_scalar("alpha", alpha, 0.0)
    check_scalar("beta", beta, 0.0)
    both = alpha + beta

    def init_fn(params):
        return ScaleByOptimisticGradientState(is_initial_step=jnp.array(True),
                                              previous_gradient=zeros_like(params))

    def update_fn(updates, state, params=None):
        del params

        def f(g, prev):
            prev = jnp.where(state.is_initial_step, g, prev)
            return cast(both, g.dtype) * g - cast(beta, g.dtype) * prev

        new = jax.tree.map(f, updates, state.previous_gradient)
        return new, ScaleByOptimisticGradientState(jnp.array(False), previous_gradient=updates)

    return optax.GradientTransformation(init_fn, update_fn)


# ----------------------------------------------------------------------------- optimizers


def polyak_sgd(max_learning_rate: Scalar = 1.0, scaling: ScalarOrSchedule = 1.0, f_min: Scalar = 0.0,
               eps: Scalar = 0.0, variant: str = "sps") -> optax.GradientTransformationExtraArgs:
    r"""SGD with Polyak's step size, computed from the loss value passed to ``update``.

    As in optax, the scaling is applied to the gradient before the step size is computed from it:

    .. math::
        v_t = s_t g_t, \qquad
        u_t = -\min\left\{\frac{f(x_t) - f^\star}{\|v_t\|^2 + \epsilon}, \gamma_{\max}\right\} v_t

    which for :math:`s = 1` is the paper's :math:`-\min\{(f - f^\star)/(\|g\|^2 + \epsilon),
    \gamma_{\max}\}\, g`. ``variant="sps+"`` uses :math:`(f(x_t) - f^\star)_+`.

    Args:
        max_learning_rate: :math:`\gamma_{\max} \ge 0` (a number).
        scaling: :math:`s \ge 0` or a schedule.
        f_min: :math:`f^\star`, a lower bound on the loss.
        eps: :math:`\epsilon \ge 0`.
        variant: ``"sps"`` or ``"sps+"`` (static).

    Returns:
        An ``optax.GradientTransformationExtraArgs`` whose ``update`` takes ``value=loss``;
        comparable to ``optax.polyak_sgd``.

    References:
        Loizou et al., *Stochastic Polyak Step-size for SGD: An Adaptive Learning Rate for Fast
        Convergence*, AISTATS 2021; Garrigos et al., *Function Value Learning: Adaptive Learning Rates
        Based on the Polyak Stepsize and Function Splitting in ERM*, 2023.
    """
    if not callable(scaling):
        check_scalar("scaling", scaling, 0.0)
    polyak = scale_by_polyak(f_min, max_learning_rate, eps, variant)
    chained = checked_chain(scale_by_learning_rate(scaling), polyak, name="lab.optim.polyak_sgd")
    # Extra-args type, so that chaining it again (optax.chain) still passes value= through.
    return optax.GradientTransformationExtraArgs(chained.init, chained.update)


def fromage(learning_rate: ScalarOrSchedule, min_norm: Scalar = 1e-6) -> optax.GradientTransformation:
    r"""Fromage (Frobenius matched gradient descent): steps of relative size :math:`\alpha` per layer.

    .. math::
        \theta_{t+1} = \frac{1}{\sqrt{1 + \alpha_t^2}} \left(\theta_t - \alpha_t
        \frac{\|\theta_t\|}{\|g_t\|} g_t\right)

    with norms per leaf, floored at ``min_norm``; the factor :math:`1/\sqrt{1 + \alpha_t^2}` keeps the
    parameters' norm from growing.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        min_norm: the floor of both norms, :math:`\ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.fromage``.

    References:
        Bernstein et al., *On the distance between two neural networks and the stability of
        learning*, NeurIPS 2020.
    """
    return checked_chain(scale_by_trust_ratio(min_norm), fromage_step(learning_rate),
                         name="lab.optim.fromage")


def adadelta(learning_rate: ScalarOrSchedule | None = None, rho: Scalar = 0.9, eps: Scalar = 1e-6,
             weight_decay: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Adadelta: Adadelta's step (see :func:`scale_by_adadelta`) of the L2-regularized gradient.

    .. math::
        \tilde g_t = g_t + \lambda \theta_t, \qquad
        u_t = -\alpha_t \frac{\sqrt{E[u^2]_{t-1} + \epsilon}}{\sqrt{E[\tilde g^2]_t + \epsilon}}\,\tilde g_t

    Args:
        learning_rate: :math:`\alpha \ge 0`, a schedule, or ``None`` for :math:`\alpha = 1` (the
            paper's rule; ``optax.adadelta`` then returns the ascent direction :math:`-u_t`).
        rho: :math:`\rho` in [0, 1].
        eps: :math:`\epsilon \ge 0`, inside both roots; it sets the first steps' size.
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.adadelta``.

    References:
        Zeiler, *ADADELTA: An Adaptive Learning Rate Method*, 2012.
    """
    # None is a step of 1 (descent); optax 0.2.8 then skips the scaling and so ascends.
    lr = 1.0 if learning_rate is None else learning_rate
    return checked_chain(add_decayed_weights(weight_decay), scale_by_adadelta(rho, eps),
                         scale_by_learning_rate(lr), name="lab.optim.adadelta")


def optimistic_gradient_descent(learning_rate: ScalarOrSchedule, alpha: Scalar = 1.0,
                                beta: Scalar = 1.0) -> optax.GradientTransformation:
    r"""Optimistic gradient descent: a gradient step corrected by the change of the gradient, which
    converges in the last iterate on min-max games where gradient descent cycles.

    .. math:: u_t = -\alpha_t \left((\alpha + \beta) g_t - \beta g_{t-1}\right), \qquad g_0 = g_1

    (:math:`\alpha_t` the learning rate; :math:`\alpha`, :math:`\beta` the optimism coefficients).

    Args:
        learning_rate: :math:`\alpha_t \ge 0` or a schedule.
        alpha: :math:`\alpha \ge 0`.
        beta: :math:`\beta \ge 0`, the weight of the negative momentum.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.optimistic_gradient_descent``.

    References:
        Mokhtari et al., *A Unified Analysis of Extra-gradient and Optimistic Gradient Methods for
        Saddle Point Problems: Proximal Point Approach*, AISTATS 2020.
    """
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_optimistic_gradient(alpha, beta), scale_by_learning_rate(learning_rate),
                         name="lab.optim.optimistic_gradient_descent")


def optimistic_adam_v2(learning_rate: ScalarOrSchedule, *, alpha: Scalar = 1.0, beta: Scalar = 1.0,
                       b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8, eps_root: Scalar = 0.0,
                       nesterov: bool = True) -> optax.GradientTransformation:
    r"""Optimistic Adam: optimism (see :func:`optimistic_gradient_descent`) applied to Adam's direction.

    .. math::
        r_t = \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon), \qquad
        u_t = -\alpha_t \left((\alpha + \beta) r_t - \beta r_{t-1}\right), \qquad r_0 = r_1

    with Adam's bias-corrected moments (by default NAdam's, :func:`lab.optim.scale_by_nadam`, as in optax).

    Args:
        learning_rate: :math:`\alpha_t \ge 0` or a schedule.
        alpha: :math:`\alpha \ge 0`.
        beta: :math:`\beta \ge 0`.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside it.
        nesterov: use Nesterov's first moment.

    Returns:
        An ``optax.GradientTransformation`` that accepts complex parameters; comparable to
        ``optax.optimistic_adam_v2``.

    References:
        Daskalakis et al., *Training GANs with Optimism*, ICLR 2018.
    """
    check_learning_rate(learning_rate)
    check_flag("nesterov", nesterov)
    adam = scale_by_nadam(b1, b2, eps, eps_root) if nesterov else scale_by_adam(b1, b2, eps, eps_root)
    return checked_chain(adam, scale_by_optimistic_gradient(alpha, beta),
                         scale_by_learning_rate(learning_rate), allow_complex=True,
                         name="lab.optim.optimistic_adam_v2")


# ----------------------------------------------------------------------------- reference


def optax_fromage(learning_rate, min_norm=1e-6) -> optax.GradientTransformation:
    """``optax.fromage`` with its updates cast to their parameters' dtype. With a schedule, optax
    0.2.8 returns float32 updates for bfloat16 parameters (the schedule's float32 value promotes
    them); the values are those of the lab's bfloat16 updates to within 1.8% (measured), and the lab
    keeps the parameters' dtype, as every optimizer does."""
    inner = optax.fromage(learning_rate, min_norm)

    def update_fn(updates, state, params=None):
        new, state = inner.update(updates, state, params)
        return jax.tree.map(lambda u, g: u.astype(g.dtype), new, updates), state

    return optax.GradientTransformation(inner.init, update_fn)


# ----------------------------------------------------------------------------- catalogue entries

register(Entry(
    "polyak_sgd", polyak_sgd, optax.polyak_sgd, label="Polyak SGD", schedule=False, needs_value=True,
    verify=({"max_learning_rate": 1.0},
            {"max_learning_rate": 0.5, "scaling": 0.5, "f_min": -1.0, "eps": 1e-3, "variant": "sps+"}),
    search_space=(Hyperparameter("max_learning_rate", 1e-3, 10.0), Hyperparameter("scaling", 0.1, 1.0)),
))
register(Entry(
    "fromage", fromage, optax_fromage, reference_name="optax.fromage (updates in the params' dtype)",
    label="Fromage",
    verify=({"learning_rate": 5e-3}, {"learning_rate": 0.1, "min_norm": 1e-3}),
    search_space=(Hyperparameter("learning_rate", 1e-4, 1.0),),
))
register(Entry(
    "adadelta", adadelta, optax.adadelta, label="Adadelta",
    verify=({"learning_rate": 1.0}, {"learning_rate": 0.1, "rho": 0.95, "eps": 1e-5, "weight_decay": 1e-2}),
    search_space=(LEARNING_RATE, Hyperparameter("rho", 0.8, 0.99, "linear"),
                  Hyperparameter("eps", 1e-8, 1e-3)),
    torch=Torch("Adadelta", "same rule and defaults (rho=0.9, eps=1e-6, weight_decay an L2 term); torch's lr "
                "defaults to 1.0, optax's to None (no scaling, the same)"),
))
register(Entry(
    "optimistic_gradient_descent", optimistic_gradient_descent, optax.optimistic_gradient_descent,
    label="Optimistic GD",
    verify=({"learning_rate": 0.1}, {"learning_rate": 2e-3, "alpha": 0.7, "beta": 0.1}),
    search_space=(LEARNING_RATE, Hyperparameter("alpha", 0.1, 2.0, "linear"),
                  Hyperparameter("beta", 0.01, 1.0, "linear")),
))
register(Entry(
    "optimistic_adam_v2", optimistic_adam_v2, optax.optimistic_adam_v2, label="Optimistic Adam",
    complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 2e-3, "alpha": 0.5, "beta": 2.0, "b1": 0.8, "b2": 0.99, "eps": 1e-6,
             "eps_root": 1e-8, "nesterov": False}),
    search_space=(LEARNING_RATE, Hyperparameter("beta", 0.01, 2.0), Hyperparameter("b1", 0.5, 0.99, "linear"),
                  Hyperparameter("b2", 0.9, 0.9999, "linear")),
))

__all__ = ["FromageStepState", "ScaleByAdadeltaState", "ScaleByOptimisticGradientState", "adadelta",
           "fromage", "fromage_step", "optimistic_adam_v2", "optimistic_gradient_descent", "polyak_sgd",
           "scale_by_adadelta", "scale_by_optimistic_gradient", "scale_by_polyak"]
