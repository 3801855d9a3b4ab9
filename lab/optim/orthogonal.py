"""Muon: momentum orthogonalized by Newton–Schulz iterations for matrices, NAdamW for every other
leaf, with optax's arguments, coefficients and shape handling (``optax.contrib.muon``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

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
    bias_correction,
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

# Jordan's quintic coefficients (a, b, c) and the per-step coefficients of Ahn et al.'s Dion.
NS_COEFFS = {
    "standard": (3.4445, -4.7750, 2.0315),
    "dion": ((4.0848, -6.8946, 2.9270), (3.9505, -6.3029, 2.6377), (3.7418, -5.5913, 2.3037),
             (2.8769, -3.1427, 1.2046), (2.8366, -3.0525, 1.2012)),
}
PRECONDITIONINGS = ("frobenius", "spectral", "aol", "schatten")


def _ns_step(x: Array, a: Array, coeffs: Array) -> Array:
    """One quintic step :math:`c_0 X + (c_1 A + c_2 A^2) X` for :math:`A = X X^H` (given)."""
    b = coeffs[1] * a + coeffs[2] * a @ a
    return coeffs[0] * x + b @ x


def _first_step(x: Array, coeffs: Array, preconditioning: str, eps: Scalar) -> Array:
    """The first step, where the AOL and Schatten-4 rescalings of ``x`` happen."""
    a = x @ x.T.conj()
    if preconditioning == "aol":  # rescale each row by its Gram row's absolute sum
        s = jnp.expand_dims(jax.lax.rsqrt(jnp.clip(jnp.abs(a).sum(axis=-1), min=eps)), -1)
        x, a = x * s, a * s * s.transpose(-1, -2)
    elif preconditioning == "schatten":  # divide by the Schatten-4 norm ||A||_F^(1/2)
        s = jnp.expand_dims(jax.lax.rsqrt(jnp.clip(jnp.linalg.norm(a, ord="fro", axis=(-2, -1)), min=eps)),
                            (0, -1))
        x, a = x * s, a * s ** 2
    return _ns_step(x, a, coeffs)


def orthogonalize_via_newton_schulz(x: Array, ns_coeffs: Any = NS_COEFFS["standard"], ns_steps: int = 5,
                                    preconditioning: str = "frobenius", eps: Scalar = 1e-8) -> Array:
    r"""An approximate :math:`U V^\top` of the matrix :math:`X = U S V^\top`, by Newton–Schulz.

    :math:`X` is transposed to be wide, divided by its Frobenius (or spectral) norm plus
    :math:`\epsilon` (AOL and Schatten preconditioning rescale in the first step instead), then
    iterated :math:`X \leftarrow c_0 X + (c_1 A + c_2 A^2) X` with :math:`A = X X^\top`. Jordan's
    coefficients drive every singular value into roughly [0.7, 1.2] in five steps rather than
    exactly to 1. Coefficients are rounded to ``x``'s dtype, as in optax.

    Args:
        x: a matrix (m, n).
        ns_coeffs: :math:`(c_0, c_1, c_2)`, or one such triple per step.
        ns_steps: the number of steps for a single triple (static).
        preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
        eps: :math:`\epsilon \ge 0`.

    Returns:
        The orthogonalized matrix, shaped and typed like ``x``.
    """
    coeffs = jnp.asarray(ns_coeffs).astype(x.dtype)
    rows = [coeffs] * ns_steps if coeffs.ndim == 1 else list(coeffs)
    transposed = x.shape[0] > x.shape[1]
    if transposed:
        x = x.T
    if preconditioning == "frobenius":
        x = x / (jnp.linalg.norm(x, ord="fro") + cast(eps, x.dtype))
    elif preconditioning == "spectral":
        x = x / (jnp.linalg.norm(x, ord=2) + cast(eps, x.dtype))
    for i, c in enumerate(rows):
        x = _first_step(x, c, preconditioning, eps) if i == 0 else _ns_step(x, x @ x.T.conj(), c)
    return x.T if transposed else x


class ScaleByMuonState(NamedTuple):
    """State of :func:`scale_by_muon`."""

    count: Array  # shape (), int32: steps taken, saturating at 2**31 - 1
    mu: Updates  # momentum; each leaf its parameter's shape and dtype


def scale_by_muon(ns_coeffs: Any = NS_COEFFS["standard"], ns_steps: int = 5, beta: Scalar = 0.95,
                  eps: Scalar = 1e-8, *, nesterov: bool = True, adaptive: bool = False,
                  preconditioning: str = "frobenius") -> optax.GradientTransformation:
    r"""Muon's rescaling of matrix leaves: orthogonalize the (Nesterov) momentum.

    .. math::
        m_t = \beta m_{t-1} + (1 - \beta) g_t, \quad
        \hat m_t = \beta \frac{m_t}{1 - \beta^{t+1}} + (1 - \beta) \frac{g_t}{1 - \beta^t}
        \;(\text{or } m_t / (1 - \beta^t)), \quad
        u_t = \operatorname{NS}(\hat m_t)

    with ``adaptive``: :math:`u_t = \langle \hat m_t, \operatorname{NS}(\hat m_t)\rangle
    \operatorname{NS}(\hat m_t)`. Every leaf must be a matrix.

    Args:
        ns_coeffs, ns_steps, preconditioning, eps: as in :func:`orthogonalize_via_newton_schulz`.
        beta: :math:`\beta` in [0, 1].
        nesterov: use the look-ahead :math:`\hat m_t`.
        adaptive: scale by the dual norm (Bernstein and Newhouse, 2024).

    Returns:
        An ``optax.GradientTransformation`` with state :class:`ScaleByMuonState`.

    References:
        Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024.
    """
    check_scalar("beta", beta, 0.0, 1.0)
    check_scalar("eps", eps, 0.0)
    check_flag("nesterov", nesterov)
    check_flag("adaptive", adaptive)
    if preconditioning not in PRECONDITIONINGS:
        raise ValueError(f"preconditioning must be one of {', '.join(PRECONDITIONINGS)}; "
                         f"got {preconditioning!r}")
    if isinstance(ns_steps, bool) or not isinstance(ns_steps, (int, np.integer)) or ns_steps < 0:
        raise TypeError(f"ns_steps must be a Python int >= 0 (the number of steps compiled), "
                        f"got {ns_steps!r}")
    coeffs = np.asarray(ns_coeffs, np.float64)
    if coeffs.ndim not in (1, 2) or coeffs.shape[-1] != 3 or not np.all(np.isfinite(coeffs)):
        raise ValueError(f"ns_coeffs must be finite with shape (3,) or (n, 3), got shape {coeffs.shape}")
    if coeffs.ndim == 2:  # optax's rule: at most ns_steps rows, all of them used
        if coeffs.shape[0] > ns_steps:
            raise ValueError(f"ns_coeffs has {coeffs.shape[0]} rows, more than ns_steps={ns_steps}")
        ns_coeffs = tuple(map(tuple, ns_coeffs))

    def update_fn(updates, state, params=None):
        del params
        for g in jax.tree.leaves(updates):
            if g.ndim != 2:
                raise ValueError(f"scale_by_muon orthogonalizes matrices; got a leaf of shape {g.shape}")
        mu = jax.tree.map(lambda g, m: cast(1 - beta, g.dtype) * g + cast(beta, g.dtype) * m,
                          updates, state.mu)
        count = safe_increment(state.count)
        bc = bias_correction(beta, count)
        if nesterov:
            bc_next = bias_correction(beta, safe_increment(count))
            mu_hat = jax.tree.map(lambda m, g: cast(beta, m.dtype) * (m / bc_next.astype(m.dtype))
                                  + cast(1 - beta, g.dtype) * (g / bc.astype(g.dtype)), mu, updates)
        else:
            mu_hat = jax.tree.map(lambda m: m / bc.astype(m.dtype), mu)
        out = jax.tree.map(lambda m: orthogonalize_via_newton_schulz(m, ns_coeffs, ns_steps, preconditioning,
                                                                     eps), mu_hat)
        if adaptive:
            out = jax.tree.map(lambda m, o: jnp.sum(m.conj() * o) * o, mu_hat, out)
        return out, ScaleByMuonState(count=count, mu=mu)

    return optax.GradientTransformation(
        lambda params: ScaleByMuonState(count=jnp.zeros([], jnp.int32), mu=zeros_like(params)), update_fn)


def scale_by_shape(consistent_rms: Scalar | None = None) -> optax.GradientTransformation:
    r"""Scale each matrix update by its shape (fan-in :math:`n_{in}` rows, fan-out :math:`n_{out}`
    columns): :math:`\sqrt{\max(1, n_{out} / n_{in})}` (Jordan's width scaling), or
    :math:`r \sqrt{\max(n_{in}, n_{out})}` with ``consistent_rms`` :math:`r` (Liu et al., 2025,
    which gives the update an RMS of about :math:`r`, like AdamW's).

    Returns:
        A stateless ``optax.GradientTransformation``.
    """
    if consistent_rms is not None:
        check_scalar("consistent_rms", consistent_rms, 0.0)

    def scale(u):
        fan_in, fan_out = u.shape
        if consistent_rms is None:
            return cast(jnp.sqrt(jnp.maximum(1, fan_out / fan_in)), u.dtype) * u
        return cast(jnp.sqrt(jnp.maximum(fan_in, fan_out)) * consistent_rms, u.dtype) * u

    def update_fn(updates, state, params=None):
        del params
        return jax.tree.map(scale, updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


class PartitionState(NamedTuple):
    """State of :func:`matrices_apart`: each part's state, ``None`` where the other part's leaves are."""

    matrices: Any  # the state of the transformation of the matrix leaves
    others: Any  # the state of the transformation of every other leaf


def matrices_apart(matrices: optax.GradientTransformation, others: optax.GradientTransformation
                   ) -> optax.GradientTransformation:
    """Apply ``matrices`` to the leaves of rank 2 and ``others`` to the rest (optax's
    ``partition`` with Muon's default labels); each sees the tree with ``None`` in place of the
    other's leaves."""

    def split(tree, is_matrix, treedef, want):
        return treedef.unflatten([x if m == want else None for x, m in zip(treedef.flatten_up_to(tree),
                                                                            is_matrix, strict=True)])

    def init_fn(params):
        leaves, treedef = jax.tree.flatten(params)
        is_matrix = [p.ndim == 2 for p in leaves]
        return PartitionState(matrices.init(split(params, is_matrix, treedef, True)),
                              others.init(split(params, is_matrix, treedef, False)))

    def update_fn(updates, state, params=None):
        leaves, treedef = jax.tree.flatten(updates)
        is_matrix = [g.ndim == 2 for g in leaves]

        def run(tx, tx_state, want):  # a part without leaves keeps its (empty) state
            if want not in is_matrix:
                return None, tx_state
            part = lambda tree: None if tree is None else split(tree, is_matrix, treedef, want)  # noqa: E731
            return tx.update(part(updates), tx_state, part(params))

        (u_m, s_m), (u_o, s_o) = run(matrices, state.matrices, True), run(others, state.others, False)
        from_m, from_o = iter(jax.tree.leaves(u_m)), iter(jax.tree.leaves(u_o))
        merged = [next(from_m) if m else next(from_o) for m in is_matrix]
        return treedef.unflatten(merged), PartitionState(s_m, s_o)

    return optax.GradientTransformation(init_fn, update_fn)


def muon(learning_rate: ScalarOrSchedule, ns_coeffs: Any = NS_COEFFS["standard"], ns_steps: int = 5,
         beta: Scalar = 0.95, eps: Scalar = 1e-8, weight_decay: Scalar = 0.0, weight_decay_mask: Any = None,
         mu_dtype: Any = None, *, nesterov: bool = True, adaptive: bool = False,
         preconditioning: str = "frobenius", adam_b1: Scalar = 0.9, adam_b2: Scalar = 0.999,
         adam_eps_root: Scalar = 0.0, adam_weight_decay: Scalar = 0.0,
         adam_learning_rate: ScalarOrSchedule | None = None, muon_weight_dimension_numbers: Any = None,
         consistent_rms: Scalar | None = None) -> optax.GradientTransformation:
    r"""Muon: momentum orthogonalized by Newton–Schulz for every matrix, NAdamW for the rest.

    For a matrix leaf :math:`W` (fan-in rows :math:`n_{in}`, fan-out columns :math:`n_{out}`):

    .. math::
        u_t = -\alpha_t \left(\sqrt{\max(1, n_{out}/n_{in})}\,
        \operatorname{NS}(\hat m_t) + \lambda W_t\right)

    with :math:`\hat m_t` and NS of :func:`scale_by_muon`. Every other leaf (vectors, scalars,
    tensors) follows AdamW (NAdamW with ``nesterov``) with ``adam_b1``, ``adam_b2``, ``eps``,
    ``adam_eps_root``, ``adam_weight_decay`` and ``adam_learning_rate`` (default: the learning rate).

    Args:
        learning_rate: :math:`\alpha \ge 0` or a schedule.
        ns_coeffs: :math:`(c_0, c_1, c_2)`, one triple per step, or a preset: ``"standard"``
            (Jordan's) or ``"dion"``.
        ns_steps: Newton–Schulz steps (static; with per-step triples, at least their number).
        beta: momentum :math:`\beta` in [0, 1].
        eps: added to the norm before the iterations, and Adam's :math:`\epsilon`.
        weight_decay: :math:`\lambda \ge 0` of the matrices (multiplied by the learning rate).
        weight_decay_mask, mu_dtype, muon_weight_dimension_numbers: only ``None`` (every leaf
            decays, momentum in the parameters' dtype, exactly the rank-2 leaves are matrices).
        nesterov: Nesterov momentum for both parts.
        adaptive: scale by the dual norm (see :func:`scale_by_muon`).
        preconditioning: ``"frobenius"``, ``"spectral"``, ``"aol"`` or ``"schatten"``.
        adam_b1, adam_b2, adam_eps_root, adam_weight_decay, adam_learning_rate: the Adam part's.
        consistent_rms: ``None`` for the width scaling above, or :math:`r` for
            :math:`r \sqrt{\max(n_{in}, n_{out})}` (see :func:`scale_by_shape`).

    Returns:
        An ``optax.GradientTransformation`` whose ``update`` needs ``params``; comparable to
        ``optax.contrib.muon``.

    References:
        Jordan et al., *Muon: An optimizer for hidden layers in neural networks*, 2024;
        Liu et al., *Muon is Scalable for LLM Training*, 2025.
    """
    check_learning_rate(learning_rate)
    for name, value in (("weight_decay_mask", weight_decay_mask), ("mu_dtype", mu_dtype),
                        ("muon_weight_dimension_numbers", muon_weight_dimension_numbers)):
        if value is not None:
            raise ValueError(f"lab.optim.muon supports only {name}=None (every leaf decays, momentum in "
                             "the parameters' dtype, rank-2 leaves are the matrices); got "
                             f"{type(value).__name__}")
    if isinstance(ns_coeffs, str):
        if ns_coeffs not in NS_COEFFS:
            raise ValueError(f"unknown ns_coeffs preset {ns_coeffs!r}; valid: {', '.join(NS_COEFFS)}")
        ns_coeffs = NS_COEFFS[ns_coeffs]
    adam_learning_rate = learning_rate if adam_learning_rate is None else adam_learning_rate
    check_learning_rate(adam_learning_rate)
    for name, value in (("adam_b1", adam_b1), ("adam_b2", adam_b2)):
        check_scalar(name, value, 0.0, 1.0)
    check_scalar("adam_eps_root", adam_eps_root, 0.0)
    check_scalar("adam_weight_decay", adam_weight_decay, 0.0)
    check_flag("nesterov", nesterov)
    adam = (scale_by_nadam if nesterov else scale_by_adam)(adam_b1, adam_b2, eps, adam_eps_root)
    return checked_chain(matrices_apart(
        optax.chain(scale_by_muon(ns_coeffs, ns_steps, beta, eps, nesterov=nesterov, adaptive=adaptive,
                                  preconditioning=preconditioning),
                    scale_by_shape(consistent_rms), add_decayed_weights(weight_decay),
                    scale_by_learning_rate(learning_rate)),
        optax.chain(adam, add_decayed_weights(adam_weight_decay), scale_by_learning_rate(adam_learning_rate)),
    ), name="lab.optim.muon")


# ----------------------------------------------------------------------------- catalogue entry

register(Entry(
    "muon", muon, optax.contrib.muon, reference_name="optax.contrib.muon", label="Muon",
    verify=({"learning_rate": 1e-2},
            {"learning_rate": 3e-2, "ns_coeffs": "dion", "beta": 0.9, "eps": 1e-6, "weight_decay": 1e-2,
             "nesterov": False, "adaptive": True, "preconditioning": "aol", "adam_b1": 0.8, "adam_b2": 0.99,
             "adam_eps_root": 1e-10, "adam_weight_decay": 1e-2, "adam_learning_rate": 3e-3,
             "consistent_rms": 0.2}),
    search_space=(LEARNING_RATE, Hyperparameter("beta", 0.8, 0.99, "linear")),
    torch=Torch("Muon", "torch takes 2-D parameters only (no Adam part), runs Newton–Schulz in bfloat16, "
                "divides by max(‖X‖, 1e-7) not ‖X‖ + 1e-8, keeps its momentum without bias correction, "
                "defaults to weight_decay 0.1 (optax: 0) and scales by √max(1, rows/cols) of its "
                "(out, in) weights, the same as optax's √max(1, fan_out/fan_in) of (in, out) ones"),
))

__all__ = ["NS_COEFFS", "PRECONDITIONINGS", "PartitionState", "ScaleByMuonState", "matrices_apart", "muon",
           "orthogonalize_via_newton_schulz", "scale_by_muon", "scale_by_shape"]
