"""The six classic optimizers, each a chain of :mod:`lab.optim.blocks` with the arguments, names and
defaults of its optax namesake: :func:`sgd`, :func:`momentum`, :func:`rmsprop`, :func:`adam`,
:func:`adamw`, :func:`adagrad`. Flags that change the program's structure (``momentum=None``,
``nesterov``, ``ema``, ``eps_in_sqrt``, ``centered``) are static Python values.
"""

from __future__ import annotations

import optax

from lab.optim import blocks
from lab.optim.base import (
    Scalar,
    ScalarOrSchedule,
    check_flag,
    check_learning_rate,
    check_scalar,
    checked_chain,
)
from lab.optim.blocks import (
    add_decayed_weights,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    trace,
)
from lab.optim.catalogue import LEARNING_RATE, Entry, Hyperparameter, Torch, register

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
    check_learning_rate(learning_rate)
    check_flag("nesterov", nesterov)
    if momentum is None:
        return checked_chain(scale_by_learning_rate(learning_rate), allow_complex=True)
    check_scalar("momentum", momentum, 0.0, 1.0)  # before trace(), which calls it decay
    return checked_chain(trace(momentum, nesterov), scale_by_learning_rate(learning_rate), allow_complex=True)


def momentum(learning_rate: ScalarOrSchedule, beta: Scalar = 0.9, nesterov: bool = False,
             ema: bool = False) -> optax.GradientTransformation:
    r"""Momentum SGD, in the heavy-ball form or as a moving average of the gradients.

    Heavy ball (``ema=False``): :math:`m_t = \beta m_{t-1} + g_t,\; u_t = -\alpha_t m_t`, which is
    ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``.

    Moving average (``ema=True``, as many textbooks write it):
    :math:`v_t = \beta v_{t-1} + (1 - \beta) g_t,\;
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
    check_learning_rate(learning_rate)
    check_flag("ema", ema)
    check_scalar("beta", beta, 0.0, 1.0)  # before the blocks, which call it decay
    block = blocks.ema(beta, nesterov) if ema else trace(beta, nesterov)
    return checked_chain(block, scale_by_learning_rate(learning_rate), allow_complex=True)


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
    check_learning_rate(learning_rate)
    check_flag("centered", centered)
    check_flag("nesterov", nesterov)
    if momentum is not None:
        check_scalar("momentum", momentum, 0.0, 1.0)  # before trace(), which calls it decay
    scaler = scale_by_stddev if centered else scale_by_rms
    blocks = [scaler(decay, eps, initial_scale, eps_in_sqrt), scale_by_learning_rate(learning_rate)]
    if momentum is not None:
        blocks.append(trace(momentum, nesterov))
    return checked_chain(*blocks, allow_complex=True)


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
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adam(b1, b2, eps, eps_root), scale_by_learning_rate(learning_rate),
                         allow_complex=True)


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
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_adam(b1, b2, eps, eps_root), add_decayed_weights(weight_decay),
                         scale_by_learning_rate(learning_rate), allow_complex=True)


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
    check_learning_rate(learning_rate)
    return checked_chain(scale_by_rss(initial_accumulator_value, eps), scale_by_learning_rate(learning_rate),
                         allow_complex=True)



# ----------------------------------------------------------------------------- references


def _times(learning_rate, factor):
    if callable(learning_rate):
        return lambda count: factor * learning_rate(count)
    return factor * learning_rate


def optax_momentum(learning_rate, beta=0.9, nesterov=False, ema=False) -> optax.GradientTransformation:
    """optax's counterpart of :func:`momentum`, built from optax's own blocks.

    Heavy ball is ``optax.sgd(momentum=beta)``; the moving-average form is ``optax.ema(beta,
    debias=False)`` chained with the learning rate, and its Nesterov variant (which optax's ``ema``
    lacks) is heavy-ball Nesterov with the learning rate times ``1 - beta``.
    """
    if not ema:
        return optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)
    if nesterov:
        return optax.sgd(_times(learning_rate, 1 - beta), momentum=beta, nesterov=True)
    return optax.chain(optax.ema(beta, debias=False), optax.scale_by_learning_rate(learning_rate))


# ----------------------------------------------------------------------------- catalogue entries

_B1 = Hyperparameter("b1", 0.5, 0.99, "linear")
_B2 = Hyperparameter("b2", 0.9, 0.9999, "linear")
_EPS = Hyperparameter("eps", 1e-10, 1e-4)

register(Entry(
    "sgd", sgd, optax.sgd, label="SGD", color="#000000", featured=True, complex_params=True,
    verify=({"learning_rate": 0.1}, {"learning_rate": 0.1, "momentum": 0.9},
            {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True}),
    torch=Torch("SGD", "same, with dampening=0; torch's dampening=μ is not the EMA form: its first "
                "buffer is g₁, not (1−μ)g₁"),
))
register(Entry(
    "momentum", momentum, optax_momentum, reference_name="optax.sgd(momentum=beta)",
    label="Momentum", color="#E69F00", featured=True, complex_params=True,
    verify=({"learning_rate": 0.1, "beta": 0.9}, {"learning_rate": 0.1, "beta": 0.9, "ema": True},
            {"learning_rate": 0.1, "beta": 0.8, "ema": True, "nesterov": True}),
    search_space=(LEARNING_RATE, Hyperparameter("beta", 0.5, 0.99, "linear")),
    torch=Torch("SGD", "SGD(lr, momentum=β) is the heavy-ball form; the EMA form (ema=True) is heavy "
                "ball with lr×(1−β)"),
))
register(Entry(
    "rmsprop", rmsprop, optax.rmsprop, label="RMSprop", color="#56B4E9", featured=True, complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-3, "decay": 0.99, "eps_in_sqrt": False, "momentum": 0.9},
            {"learning_rate": 1e-3, "centered": True, "momentum": 0.5, "nesterov": True,
             "initial_scale": 1.0}),
    search_space=(LEARNING_RATE, Hyperparameter("decay", 0.8, 0.999, "linear"), _EPS),
    torch=Torch("RMSprop", "torch puts eps outside the root (eps_in_sqrt=False) and defaults to "
                "alpha=0.99; optax: inside, decay=0.9"),
))
register(Entry(
    "adam", adam, optax.adam, label="Adam", color="#D55E00", featured=True, complex_params=True,
    verify=({"learning_rate": 1e-3},
            {"learning_rate": 1e-2, "b1": 0.5, "b2": 0.99, "eps": 1e-6, "eps_root": 1e-8}),
    search_space=(LEARNING_RATE, _B1, _B2, _EPS),
    torch=Torch("Adam", "same; torch's weight_decay is an L2 term added to the gradient"),
))
register(Entry(
    "adamw", adamw, optax.adamw, label="AdamW", color="#CC79A7", featured=True, complex_params=True,
    verify=({"learning_rate": 1e-3, "weight_decay": 0.1},),
    search_space=(LEARNING_RATE, _B1, _B2, Hyperparameter("weight_decay", 1e-5, 1.0)),
    torch=Torch("AdamW", "same rule; default weight_decay 1e-2 in torch, 1e-4 in optax"),
))
register(Entry(
    "adagrad", adagrad, optax.adagrad, label="Adagrad", color="#009E73", featured=True, complex_params=True,
    verify=({"learning_rate": 0.1}, {"learning_rate": 0.1, "initial_accumulator_value": 0.0, "eps": 1e-10}),
    search_space=(LEARNING_RATE, Hyperparameter("initial_accumulator_value", 1e-3, 1.0)),
    torch=Torch("Adagrad", "torch puts eps outside the root and starts the sum at 0; optax: inside, at 0.1"),
))
