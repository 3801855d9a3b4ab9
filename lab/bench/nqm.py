"""The noisy quadratic model (NQM) as a lab problem: its data set, its model and its expected loss.

Zhang et al., *Which Algorithmic Choices Matter at Which Batch Sizes? Insights From a Noisy Quadratic
Model*, NeurIPS 2019: the loss ``L(θ) = ½ Σ_i h_i θ_i²`` with curvatures ``h_i = 1 / i``, and
mini-batch gradients ``H θ - H^{1/2} ξ̄`` whose noise has covariance ``H / B``. Here it is a regression
the sweep engine trains unchanged: the examples' targets are noise vectors ``ξ ~ N(0, I)`` (scaled,
see :func:`data`), the model predicts one vector for every example, and the mean squared error of an
example is ``½ Σ_i (√h_i θ_i - ξ_i)²``, whose gradient is ``H θ - H^{1/2} ξ``. Within one epoch a
batch holds examples no earlier batch held, so each step's noise is a fresh draw. Held-out noise is
the validation set: its loss is ``L(θ)`` plus the irreducible noise ``½ mean ‖ξ‖² ≈ d / 2``.

:func:`expected_loss` is the closed form of ``E L(θ_t)`` under SGD with heavy-ball momentum.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from lab.data import Dataset
from lab.models import Model

__all__ = ["DIM", "N_TEST", "N_TRAIN", "curvatures", "data", "expected_loss", "loss", "model"]

DIM = 100  # dimensions; curvatures 1, 1/2, ..., 1/100 (condition number 100)
N_TRAIN = 10_000  # noise draws in the training set (a fifth of them the validation set)
N_TEST = 2_000
INIT_STD = 1.0  # θ_0 ~ N(0, INIT_STD² I), drawn from the run's seed


def curvatures(dim: int = DIM) -> np.ndarray:
    """(dim,) float64 diagonal of H: ``h_i = 1 / i`` (Zhang et al.'s spectrum)."""
    return 1.0 / np.arange(1, dim + 1, dtype=np.float64)


def data(seed: int) -> Dataset:
    """The NQM's examples, drawn from ``seed``: targets ``y = √(d/2) ξ`` with ``ξ ~ N(0, I_d)`` (the
    factor makes the mean over the d outputs of a squared error a half sum), inputs a constant 0 the
    model ignores; ``(N_TRAIN, 1)`` and ``(N_TRAIN, DIM)`` training arrays, ``N_TEST`` test rows."""
    k_train, k_test = jax.random.split(jax.random.fold_in(jax.random.key(seed), 0x4E514D))
    scale = jnp.float32(math.sqrt(DIM / 2))
    y_train = scale * jax.random.normal(k_train, (N_TRAIN, DIM), jnp.float32)
    y_test = scale * jax.random.normal(k_test, (N_TEST, DIM), jnp.float32)
    return Dataset(jnp.zeros((N_TRAIN, 1), jnp.float32), y_train, jnp.zeros((N_TEST, 1), jnp.float32), y_test)


def model() -> Model:
    """The NQM's model: params ``{"w": θ (1, d)}``, θ_0 ~ N(0, INIT_STD²); every example's output is
    ``√(d/2) √h ⊙ θ`` (batch, d), whatever its input. With :func:`data` as targets the mean squared
    error of an example is ``½ Σ_i (√h_i θ_i - ξ_i)²``."""

    def init(key, input_shape, n_out):
        del input_shape  # the input is a placeholder
        return {"w": INIT_STD * jax.random.normal(key, (1, n_out), jnp.float32)}

    def apply(params, x):
        theta = params["w"]  # (1, d)
        d = theta.shape[-1]
        root_h = jnp.asarray(np.sqrt(curvatures(d) * d / 2), theta.dtype)[None, :]
        return jnp.broadcast_to(root_h * theta, (x.shape[0], d))

    return Model(init, apply)


def loss(params, dim: int = DIM) -> np.ndarray:
    """``L(θ) = ½ Σ_i h_i θ_i²`` of params with a leading run axis: ``{"w": (runs, 1, d)}`` -> (runs,)."""
    theta = np.asarray(params["w"], np.float64).reshape(-1, dim)
    return 0.5 * theta**2 @ curvatures(dim)


def expected_loss(learning_rate: float, batch_size: int, steps: int, momentum: float = 0.0,
                  dim: int = DIM, init_std: float = INIT_STD) -> np.ndarray:
    r"""``E L(θ_t)`` for ``t = 0 .. steps`` under SGD with heavy-ball momentum (lab's and optax's ``sgd``).

    Per dimension, with the state :math:`z_t = (θ_t, m_{t-1})`, :math:`m_{-1} = 0`:

    .. math::
        m_t = h θ_t - \sqrt{h}\,\bar ξ_t + μ m_{t-1},\qquad θ_{t+1} = θ_t - α m_t,

    so :math:`z_{t+1} = A z_t + b \bar ξ_t` with :math:`A = [[1 - αh, -αμ], [h, μ]]`,
    :math:`b = \sqrt{h}\,(α, -1)` and :math:`\operatorname{Var} \bar ξ_t = 1/B`, independent of
    :math:`z_t`; the second moments follow :math:`S_{t+1} = A S_t A^\top + b b^\top / B` from
    :math:`S_0 = \operatorname{diag}(σ_0^2, 0)`. Without momentum this is Zhang et al.'s
    :math:`E θ_{t+1}^2 = (1 - αh)^2 E θ_t^2 + α^2 h / B` (their gradient noise covariance ``H / B``).

    Returns:
        (steps + 1,) float64 expected losses ``½ Σ_i h_i E θ_{t,i}²``.
    """
    h = curvatures(dim)
    a = np.zeros((dim, 2, 2))
    a[:, 0, 0], a[:, 0, 1] = 1 - learning_rate * h, -learning_rate * momentum
    a[:, 1, 0], a[:, 1, 1] = h, momentum
    b = np.sqrt(h)[:, None] * np.asarray([learning_rate, -1.0])  # (dim, 2)
    noise = b[:, :, None] * b[:, None, :] / batch_size  # (dim, 2, 2)
    s = np.zeros((dim, 2, 2))
    s[:, 0, 0] = init_std**2
    out = np.empty(steps + 1)
    for t in range(steps + 1):
        out[t] = 0.5 * h @ s[:, 0, 0]
        s = a @ s @ a.transpose(0, 2, 1) + noise
    return out
