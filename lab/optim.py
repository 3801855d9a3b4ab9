"""Hand-written optimizers as ``optax.GradientTransformation``, in optax's style.

Small building blocks (:func:`trace`, :func:`ema`, :func:`scale_by_rms`, :func:`scale_by_stddev`,
:func:`scale_by_adam`, :func:`scale_by_rss`, :func:`add_decayed_weights`,
:func:`scale_by_learning_rate`) are chained into the user-facing optimizers :func:`sgd`,
:func:`momentum`, :func:`rmsprop`, :func:`adam`, :func:`adamw` and :func:`adagrad`, whose arguments,
names and defaults are those of their optax namesakes, so ``lab.optim.adam(**kw)`` and
``optax.adam(**kw)`` are one-to-one comparable (:mod:`lab.verify` checks that they agree). Only
optax's types, ``apply_updates``, schedules and tree utilities are used, never its algorithms.

Hyperparameters may be Python numbers, JAX arrays, or tracers inside ``jit``/``vmap`` (a sweep
varies them with one compiled program). Concrete values are validated when the optimizer is built;
traced values cannot be inspected and are not. Flags that change the program's structure
(``momentum=None``, ``nesterov``, ``ema``, ``eps_in_sqrt``, ``centered``) are static Python values.

Dtype policy:

- every state leaf that mirrors a parameter (``trace``, ``mu``, ``nu``, ``sum_of_squares``) has that
  parameter's shape and dtype; step counts are int32 scalars that saturate at ``2**31 - 1`` instead
  of wrapping around (a count never overflows silently);
- updates have the gradient's dtype (gradients must have their parameter's dtype);
- a hyperparameter is combined with other scalars in its own precision (``1 - b2``) and then cast
  to the leaf's dtype where it meets the leaf, exactly what optax's weakly-typed Python floats do.
  Bias corrections ``1 - b**t`` are computed in at least float32 and cast afterwards, because in
  bfloat16 ``0.999**t`` rounds to 1 for small ``t`` and the correction would divide by zero.
- consequence in bfloat16 (8 significant bits, spacing 2**-8 just below 1): a decay above
  ``1 - 2**-9`` (0.99805) rounds to exactly 1.0 where it meets a bfloat16 leaf, while
  ``1 - decay`` (formed first, in the hyperparameter's precision) does not. So with Adam's default
  ``b2 = 0.999`` the second moment in bfloat16 is ``nu_t = nu_{t-1} + 0.001 g_t**2``: a scaled
  running *sum* of squared gradients, not a moving average. With the float32 bias correction
  ``1 - 0.999**t``, ``v_hat`` starts at the mean square and then drifts upward (for unit Gaussian
  gradients: 1.04x the mean square at step 100, 1.3x at 1000, 2.1x at 5000; less than the
  ``0.001 t`` of an exact sum, because bfloat16 drops increments below half an ulp), so the
  step slowly shrinks. The same holds for any decay above 0.99805 (RMSProp's ``decay``, an EMA
  momentum's ``beta``); 0.99 rounds to 0.98828125 and 0.9 to 0.8984375. This is optax's behaviour
  too (its weakly typed Python floats are cast the same way); :mod:`lab.verify` compares against
  optax, so it is the convention here. An implementation that updates ``nu`` as
  ``nu + (1 - b2) (g**2 - nu)`` (PyTorch's ``lerp_``) keeps a true moving average in bfloat16 and
  so differs from optax and from ``lab.optim`` there: a convention difference, not a bug of
  either. Where the moving average matters, use float32 parameters (and so float32 state).

Parameters may be any pytree of floating leaves (float32, float64, bfloat16), including scalar
leaves and the empty tree.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Scalar = float | Array  # a Python number or a scalar array, possibly traced
ScalarOrSchedule = Scalar | Callable[[Array], Array]
Updates = Any  # a pytree of arrays shaped like the params

_INT32_MAX = np.iinfo(np.int32).max

__all__ = [
    "OPTIMIZERS",
    "add_decayed_weights",
    "adagrad",
    "adam",
    "adamw",
    "ema",
    "get_optimizer",
    "momentum",
    "rmsprop",
    "safe_increment",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
    "sgd",
    "trace",
]


# ----------------------------------------------------------------------------- validation


def _check_scalar(name: str, value: Any, low: float, high: float = math.inf) -> None:
    """Raise if a concrete hyperparameter is not a real scalar in ``[low, high]``; skip tracers."""
    if isinstance(value, jax.core.Tracer):
        return  # a sweep's traced value: nothing to inspect at construction time
    if isinstance(value, (bool, np.bool_)) or not (
        isinstance(value, numbers.Real) or isinstance(value, (np.ndarray, jax.Array, np.generic))
    ):
        raise TypeError(f"{name} must be a real number or a scalar array, got {type(value).__name__} "
                        f"{value!r}")
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be a real number or a scalar array, got dtype {arr.dtype}")
    if arr.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got an array of shape {arr.shape} "
                         "(to sweep over values, vmap over scalars)")
    v = float(arr)
    if not (math.isfinite(v) and low <= v <= high):
        interval = f"[{low:g}, {high:g}]" if high != math.inf else f"[{low:g}, inf)"
        raise ValueError(f"{name} must be finite and in {interval}, got {value!r}")


def _check_learning_rate(learning_rate: Any) -> None:
    if callable(learning_rate) and not isinstance(learning_rate, (jax.Array, np.ndarray)):
        return  # a schedule: a function of the step count
    _check_scalar("learning_rate", learning_rate, 0.0)


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a Python bool (it decides the program's structure), "
                        f"got {type(value).__name__} {value!r}")


def _check_float_leaves(params: Any) -> None:
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(f"lab.optim supports floating-point leaves only; leaf "
                            f"{jax.tree_util.keystr(path) or '<root>'} has dtype {jnp.result_type(leaf)}")


# ----------------------------------------------------------------------------- numerics


def safe_increment(count: Array) -> Array:
    """``count + 1`` for an int32 step count, saturating at ``2**31 - 1`` instead of wrapping."""
    return jnp.where(count < _INT32_MAX, count + 1, jnp.int32(_INT32_MAX))


def _cast(value: Scalar, dtype) -> Array:
    """A hyperparameter (or scalar derived from one) in a leaf's dtype."""
    return jnp.asarray(value).astype(dtype)


def _bias_correction(decay: Scalar, count: Array) -> Array:
    """``1 - decay**count`` in at least float32 (see the module's dtype policy)."""
    d = jnp.asarray(decay)
    if not jnp.issubdtype(d.dtype, jnp.floating) or jnp.finfo(d.dtype).bits < 32:
        d = d.astype(jnp.float32)
    return 1 - d ** count.astype(d.dtype)


def _zeros_like(params: Any) -> Any:
    return jax.tree.map(jnp.zeros_like, params)


def _full_like(params: Any, value: Scalar) -> Any:
    return jax.tree.map(lambda p: jnp.full_like(p, _cast(value, p.dtype)), params)


# ----------------------------------------------------------------------------- building blocks


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
    _check_scalar("decay", decay, 0.0, 1.0)
    _check_flag("nesterov", nesterov)

    def init_fn(params):
        return TraceState(trace=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        f = lambda g, m: g + _cast(decay, g.dtype) * m  # noqa: E731
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
    _check_scalar("decay", decay, 0.0, 1.0)
    _check_flag("nesterov", nesterov)
    one_minus = 1 - decay

    def init_fn(params):
        return EmaState(ema=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        f = lambda g, v: _cast(one_minus, g.dtype) * g + _cast(decay, g.dtype) * v  # noqa: E731
        new_ema = jax.tree.map(f, updates, state.ema)
        updates = jax.tree.map(f, updates, new_ema) if nesterov else new_ema
        return updates, EmaState(ema=new_ema)

    return optax.GradientTransformation(init_fn, update_fn)


_ema = ema  # ``momentum``'s ``ema`` flag shadows the block's name


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
    _check_scalar("decay", decay, 0.0, 1.0)
    _check_scalar("eps", eps, 0.0)
    _check_scalar("initial_scale", initial_scale, 0.0)
    _check_flag("eps_in_sqrt", eps_in_sqrt)
    one_minus = 1 - decay

    def init_fn(params):
        return ScaleByRmsState(nu=_full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        nu = jax.tree.map(lambda g, n: _cast(one_minus, g.dtype) * (g * g) + _cast(decay, g.dtype) * n,
                          updates, state.nu)
        if eps_in_sqrt:
            updates = jax.tree.map(lambda g, n: g * jax.lax.rsqrt(n + _cast(eps, n.dtype)), updates, nu)
        else:
            updates = jax.tree.map(lambda g, n: g / (jnp.sqrt(n) + _cast(eps, n.dtype)), updates, nu)
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
    _check_scalar("decay", decay, 0.0, 1.0)
    _check_scalar("eps", eps, 0.0)
    _check_scalar("initial_scale", initial_scale, 0.0)
    _check_flag("eps_in_sqrt", eps_in_sqrt)
    one_minus = 1 - decay

    def init_fn(params):
        return ScaleByStddevState(mu=_zeros_like(params), nu=_full_like(params, initial_scale))

    def update_fn(updates, state, params=None):
        del params
        ema = lambda x, t: _cast(one_minus, x.dtype) * x + _cast(decay, x.dtype) * t  # noqa: E731
        mu = jax.tree.map(ema, updates, state.mu)
        nu = jax.tree.map(lambda g, n: ema(g * g, n), updates, state.nu)
        if eps_in_sqrt:
            scale = lambda m, n: jax.lax.rsqrt(n - m * m + _cast(eps, n.dtype))  # noqa: E731
        else:
            scale = lambda m, n: 1 / (jnp.sqrt(n - m * m) + _cast(eps, n.dtype))  # noqa: E731
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
    _check_scalar("b1", b1, 0.0, 1.0)
    _check_scalar("b2", b2, 0.0, 1.0)
    _check_scalar("eps", eps, 0.0)
    _check_scalar("eps_root", eps_root, 0.0)
    one_minus_b1, one_minus_b2 = 1 - b1, 1 - b2

    def init_fn(params):
        return ScaleByAdamState(count=jnp.zeros([], jnp.int32), mu=_zeros_like(params),
                                nu=_zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        mu = jax.tree.map(lambda g, m: _cast(one_minus_b1, g.dtype) * g + _cast(b1, g.dtype) * m,
                          updates, state.mu)
        nu = jax.tree.map(lambda g, v: _cast(one_minus_b2, g.dtype) * (g * g) + _cast(b2, g.dtype) * v,
                          updates, state.nu)
        count = safe_increment(state.count)
        bc1, bc2 = _bias_correction(b1, count), _bias_correction(b2, count)

        def direction(m, v):
            m_hat = m / bc1.astype(m.dtype)
            v_hat = v / bc2.astype(v.dtype)
            return m_hat / (jnp.sqrt(v_hat + _cast(eps_root, v.dtype)) + _cast(eps, v.dtype))

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
    _check_scalar("initial_accumulator_value", initial_accumulator_value, 0.0)
    _check_scalar("eps", eps, 0.0)

    def init_fn(params):
        return ScaleByRssState(sum_of_squares=_full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        sos = jax.tree.map(lambda g, s: g * g + s, updates, state.sum_of_squares)
        # A coordinate whose gradients were all zero (with s_0 = 0) gets a zero step, not 0/0.
        updates = jax.tree.map(
            lambda g, s: g * jnp.where(s > 0, jax.lax.rsqrt(s + _cast(eps, s.dtype)), jnp.zeros_like(s)),
            updates, sos)
        return updates, ScaleByRssState(sum_of_squares=sos)

    return optax.GradientTransformation(init_fn, update_fn)


def add_decayed_weights(weight_decay: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Add decoupled weight decay to the updates: :math:`u_t = u_t + \lambda \theta_t`.

    Placed after Adam's rescaling (and before the learning rate) it gives AdamW; placed before a
    rescaling it is an L2 penalty on the loss (PyTorch's ``weight_decay`` in ``SGD``/``Adam``).

    Args:
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        A stateless ``optax.GradientTransformation``; its ``update`` needs ``params``.

    References:
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    _check_scalar("weight_decay", weight_decay, 0.0)

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("add_decayed_weights needs params: call update(updates, state, params)")
        updates = jax.tree.map(lambda g, p: g + _cast(weight_decay, g.dtype) * p, updates, params)
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
    _check_learning_rate(learning_rate)

    if callable(learning_rate):

        def init_fn(params):
            del params
            return ScaleByLearningRateState(count=jnp.zeros([], jnp.int32))

        def update_fn(updates, state, params=None):
            del params
            neg_lr = -jnp.asarray(learning_rate(state.count))
            updates = jax.tree.map(lambda g: _cast(neg_lr, g.dtype) * g, updates)
            return updates, ScaleByLearningRateState(count=safe_increment(state.count))

        return optax.GradientTransformation(init_fn, update_fn)

    neg_lr = -learning_rate

    def init_fn(params):
        del params
        return optax.EmptyState()

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(lambda g: _cast(neg_lr, g.dtype) * g, updates), state

    return optax.GradientTransformation(init_fn, update_fn)


def _checked_chain(*transforms: optax.GradientTransformation) -> optax.GradientTransformation:
    """``optax.chain`` whose ``init`` rejects non-floating leaves with a clear error."""
    chained = optax.chain(*transforms)

    def init_fn(params):
        _check_float_leaves(params)
        return chained.init(params)

    return optax.GradientTransformation(init_fn, chained.update)


# ----------------------------------------------------------------------------- optimizers


def sgd(learning_rate: ScalarOrSchedule, momentum: Scalar | None = None,
        nesterov: bool = False) -> optax.GradientTransformation:
    r"""Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

    .. math::
        u_t = -\alpha_t g_t \;\text{or, with momentum,}\; m_t = g_t + \mu m_{t-1},\;
        u_t = -\alpha_t m_t \;(\text{Nesterov: } -\alpha_t (g_t + \mu m_t))

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        momentum: :math:`\mu` in [0, 1], or ``None`` (static) for no momentum buffer at all. A
            traced value, even 0, means a momentum buffer with that coefficient.
        nesterov: Nesterov's look-ahead form (only with momentum).

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.sgd`` with the same arguments.

    References:
        Robbins and Monro, *A Stochastic Approximation Method*, 1951;
        Sutskever et al., *On the importance of initialization and momentum in deep learning*, 2013.
    """
    _check_learning_rate(learning_rate)
    _check_flag("nesterov", nesterov)
    if momentum is None:
        return _checked_chain(scale_by_learning_rate(learning_rate))
    _check_scalar("momentum", momentum, 0.0, 1.0)  # before trace(), which calls it decay
    return _checked_chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate))


def momentum(learning_rate: ScalarOrSchedule, beta: Scalar = 0.9, nesterov: bool = False,
             ema: bool = False) -> optax.GradientTransformation:
    r"""Momentum SGD, in the heavy-ball form or in the seed's moving-average form.

    Heavy ball (``ema=False``): :math:`m_t = \beta m_{t-1} + g_t,\; u_t = -\alpha_t m_t`, which is
    ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``.

    Moving average (``ema=True``, the seed's form): :math:`v_t = \beta v_{t-1} + (1 - \beta) g_t,\;
    u_t = -\alpha_t v_t`, which is ``optax.chain(optax.ema(beta, debias=False),
    optax.scale_by_learning_rate(learning_rate))``. Since :math:`v_t = (1 - \beta) m_t`, it equals
    heavy-ball momentum with the learning rate multiplied by :math:`1 - \beta` (with a schedule too):
    the same trajectory, with a 10x smaller step at :math:`\beta = 0.9`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        beta: :math:`\beta` in [0, 1].
        nesterov: Nesterov's look-ahead form, :math:`u_t = -\alpha_t (g_t + \beta m_t)` (heavy
            ball) or :math:`-\alpha_t (\beta v_t + (1 - \beta) g_t)` (moving average).
        ema: use the moving-average form.

    Returns:
        An ``optax.GradientTransformation``.

    References:
        Polyak, *Some methods of speeding up the convergence of iteration methods*, 1964.
    """
    _check_learning_rate(learning_rate)
    _check_flag("ema", ema)
    _check_scalar("beta", beta, 0.0, 1.0)  # before the blocks, which call it decay
    if ema:
        return _checked_chain(_ema(beta, nesterov), scale_by_learning_rate(learning_rate))
    return _checked_chain(trace(beta, nesterov), scale_by_learning_rate(learning_rate))


def rmsprop(learning_rate: ScalarOrSchedule, decay: Scalar = 0.9, eps: Scalar = 1e-8,
            initial_scale: Scalar = 0.0, eps_in_sqrt: bool = True, centered: bool = False,
            momentum: Scalar | None = None, nesterov: bool = False) -> optax.GradientTransformation:
    r"""RMSProp: divide by a moving root-mean-square of the gradients, optionally centered and with
    momentum applied after the learning rate (as optax and PyTorch do).

    .. math::
        \nu_t = \rho \nu_{t-1} + (1 - \rho) g_t^2, \quad
        s_t = -\alpha_t g_t / \sqrt{\nu_t + \epsilon}, \quad
        m_t = s_t + \mu m_{t-1}, \quad u_t = m_t

    Centered, :math:`\nu_t` is replaced by :math:`\nu_t - \bar g_t^2` with :math:`\bar g_t` a moving
    average of the gradients. ``eps_in_sqrt=False`` gives PyTorch's :math:`\sqrt{\nu_t} + \epsilon`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        decay: :math:`\rho` in [0, 1].
        eps: :math:`\epsilon \ge 0`.
        initial_scale: :math:`\nu_0 \ge 0` (PyTorch: 0, TF1: 1).
        eps_in_sqrt: whether :math:`\epsilon` goes inside the square root.
        centered: divide by the estimated standard deviation instead of the RMS.
        momentum: :math:`\mu` in [0, 1] or ``None`` (static) for no momentum.
        nesterov: Nesterov's look-ahead form of the momentum.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.rmsprop``.

    References:
        Hinton, *Neural Networks for Machine Learning*, lecture 6e, 2012;
        Graves, *Generating Sequences With Recurrent Neural Networks*, 2013.
    """
    _check_learning_rate(learning_rate)
    _check_flag("centered", centered)
    _check_flag("nesterov", nesterov)
    if momentum is not None:
        _check_scalar("momentum", momentum, 0.0, 1.0)  # before trace(), which calls it decay
    scaler = scale_by_stddev if centered else scale_by_rms
    blocks = [scaler(decay, eps, initial_scale, eps_in_sqrt), scale_by_learning_rate(learning_rate)]
    if momentum is not None:
        blocks.append(trace(momentum, nesterov))
    return _checked_chain(*blocks)


def adam(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
         eps_root: Scalar = 0.0) -> optax.GradientTransformation:
    r"""Adam: :math:`u_t = -\alpha_t \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)`.

    See :func:`scale_by_adam` for the moments and their bias correction.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.adam``.

    References:
        Kingma and Ba, *Adam: A Method for Stochastic Optimization*, ICLR 2015.
    """
    _check_learning_rate(learning_rate)
    return _checked_chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate))


def adamw(learning_rate: ScalarOrSchedule, b1: Scalar = 0.9, b2: Scalar = 0.999, eps: Scalar = 1e-8,
          eps_root: Scalar = 0.0, weight_decay: Scalar = 1e-4) -> optax.GradientTransformation:
    r"""AdamW: Adam with decoupled weight decay, scaled by the learning rate.

    .. math::
        u_t = -\alpha_t \left(\hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)
        + \lambda \theta_t\right)

    The decay is multiplied by the full learning rate :math:`\alpha_t` (as in optax and PyTorch),
    not only by the schedule multiplier as in Loshchilov and Hutter's paper.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        b1: :math:`\beta_1` in [0, 1].
        b2: :math:`\beta_2` in [0, 1].
        eps: :math:`\epsilon \ge 0`, outside the square root.
        eps_root: :math:`\bar\epsilon \ge 0`, inside the square root.
        weight_decay: :math:`\lambda \ge 0`.

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.adamw``.

    References:
        Loshchilov and Hutter, *Decoupled Weight Decay Regularization*, ICLR 2019.
    """
    _check_learning_rate(learning_rate)
    return _checked_chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay),
                          scale_by_learning_rate(learning_rate))


def adagrad(learning_rate: ScalarOrSchedule, initial_accumulator_value: Scalar = 0.1,
            eps: Scalar = 1e-7) -> optax.GradientTransformation:
    r"""Adagrad: :math:`s_t = s_{t-1} + g_t^2,\; u_t = -\alpha_t g_t / \sqrt{s_t + \epsilon}`.

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        initial_accumulator_value: :math:`s_0 \ge 0`.
        eps: :math:`\epsilon \ge 0`, inside the square root (PyTorch puts it outside).

    Returns:
        An ``optax.GradientTransformation``, comparable to ``optax.adagrad``.

    References:
        Duchi et al., *Adaptive Subgradient Methods for Online Learning and Stochastic
        Optimization*, JMLR 2011.
    """
    _check_learning_rate(learning_rate)
    return _checked_chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate))


OPTIMIZERS: dict[str, Callable[..., optax.GradientTransformation]] = {
    "sgd": sgd,
    "momentum": momentum,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
    "adagrad": adagrad,
}


def get_optimizer(name: str) -> Callable[..., optax.GradientTransformation]:
    """Look an optimizer factory up by name. Raises ValueError for an unknown name, listing the valid ones."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]
