"""Activations: values and hand-written derivatives against closed forms and ``jax.grad``."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab import activations
from lab.activations import ACTIVATIONS, Activation, get_activation

# name, kwargs, closed-form value, closed-form derivative (NumPy, float64), derivative at z = 0
ROWS = [
    ("sigmoid", {}, lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2, 0.25),
    ("tanh", {}, np.tanh, lambda z: 1 / np.cosh(z) ** 2, 1.0),
    ("relu", {}, lambda z: np.maximum(z, 0), lambda z: (z > 0).astype(float), 0.0),
    ("leaky_relu", {}, lambda z: np.where(z >= 0, z, 0.01 * z), lambda z: np.where(z >= 0, 1, 0.01), 1.0),
    ("leaky_relu", {"negative_slope": 0.2}, lambda z: np.where(z >= 0, z, 0.2 * z),
     lambda z: np.where(z >= 0, 1, 0.2), 1.0),
    ("elu", {}, lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
     lambda z: np.where(z > 0, 1, np.exp(np.minimum(z, 0))), 1.0),
    ("elu", {"alpha": 0.7}, lambda z: np.where(z > 0, z, 0.7 * np.expm1(np.minimum(z, 0))),
     lambda z: np.where(z > 0, 1, 0.7 * np.exp(np.minimum(z, 0))), 0.7),
    ("identity", {}, lambda z: z, np.ones_like, 1.0),
]
IDS = [f"{name}{kwargs or ''}" for name, kwargs, *_ in ROWS]
# A grid with the kink itself, both signed zeros, tiny and saturating values.
Z = np.concatenate([np.linspace(-8.0, 8.0, 161), [0.0, -0.0, 1e-300, -1e-300, 1e-8, -1e-8, -40.0, 40.0]])


def test_table_covers_every_activation():
    assert {name for name, *_ in ROWS} == set(ACTIVATIONS)


@pytest.mark.parametrize(("name", "kwargs", "value", "deriv", "at_zero"), ROWS, ids=IDS)
def test_value_and_derivative_match_closed_forms(x64, name, kwargs, value, deriv, at_zero):
    act = get_activation(name, **kwargs)
    z = jnp.asarray(Z, jnp.float64)
    np.testing.assert_allclose(act.fn(z), value(Z), rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(act.grad(z), deriv(Z), rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize(("name", "kwargs", "value", "deriv", "at_zero"), ROWS, ids=IDS)
def test_derivative_matches_jax_grad_including_the_kink(x64, name, kwargs, value, deriv, at_zero):
    del value, deriv
    act = get_activation(name, **kwargs)
    z = jnp.asarray(Z, jnp.float64)
    # Away from saturation jax.grad and the hand-written form agree to rounding; at |z| = 40 the
    # sigmoid's s(1 - s) (jax) underflows where s(z) s(-z) (ours) does not, hence the atol.
    np.testing.assert_allclose(act.grad(z), jax.vmap(jax.grad(act.fn))(z), rtol=1e-13, atol=1e-15)
    # The non-smooth point, exactly: ReLU'(0) = 0, LeakyReLU'(0) = 1, ELU'(0) = alpha.
    assert float(act.grad(jnp.float64(0.0))) == at_zero == float(jax.grad(act.fn)(jnp.float64(0.0)))


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(row=st.sampled_from(ROWS), z=st.floats(-30.0, 30.0))
def test_derivative_matches_jax_grad_anywhere(row, z):
    name, kwargs, *_ = row
    act = get_activation(name, **kwargs)
    with jax.enable_x64(True):
        zz = jnp.float64(z)
        assert math.isclose(float(act.grad(zz)), float(jax.grad(act.fn)(zz)), rel_tol=1e-12, abs_tol=1e-14)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_float32_in_float32_out(name):
    act = get_activation(name)
    z = jnp.linspace(-3.0, 3.0, 7, dtype=jnp.float32)
    assert act.fn(z).dtype == act.grad(z).dtype == jnp.float32


def test_sigmoid_derivative_keeps_relative_accuracy_when_saturated():
    z = jnp.float32(20.0)  # sigma'(20) = e^-20 (1 + e^-20)^-2, about 2.06e-9
    assert math.isclose(float(activations.sigmoid_grad(z)), math.exp(-20) / (1 + math.exp(-20)) ** 2,
                        rel_tol=1e-5)


def test_unknown_name_raises_listing_valid_names():
    with pytest.raises(ValueError, match="unknown activation 'swish'") as info:
        get_activation("swish")
    for name in ACTIVATIONS:
        assert name in str(info.value)


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [("relu", {"alpha": 1.0}, "'relu' takes no parameters, not alpha"),
     ("elu", {"negative_slope": 0.1}, "'elu' takes alpha, not negative_slope")],
)
def test_parameters_an_activation_does_not_take_raise(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_activation(name, **kwargs)


def test_activation_instances_pass_through():
    act = Activation("custom", jnp.sin, jnp.cos)
    assert get_activation(act) is act


def test_softmax_rows_sum_to_one_and_ignore_shifts(x64):
    logits = jnp.array([[1.0, 2.0, 3.0], [1e4, 0.0, -1e4]], jnp.float64)
    p = activations.softmax(logits)
    np.testing.assert_allclose(p.sum(axis=-1), [1.0, 1.0], rtol=1e-15)
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(p[0], e / e.sum(), rtol=1e-14)
    np.testing.assert_array_equal(p[1], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(activations.softmax(logits[:1] + 100.0), p[:1], rtol=1e-13)


def test_log_softmax_is_finite_and_exact_at_huge_logits():
    logits = jnp.array([[1e4, 0.0, -1e4]], jnp.float32)
    np.testing.assert_array_equal(activations.log_softmax(logits), [[0.0, -1e4, -2e4]])
    grad = jax.grad(lambda z: activations.log_softmax(z)[0, 1])(logits)
    np.testing.assert_array_equal(grad, [[-1.0, 1.0, 0.0]])  # d/dz of z_1 - logsumexp(z), softmax = e_0


# Softmax's hand-written derivative: the Jacobian diag(s) - s s^T and the product s * (v - sum(v s)).
# The hand example: z = (0, ln 2, ln 3), so s = (1, 2, 3) / 6 and J = diag(s) - s s^T written out.
Z_HAND = np.log([1.0, 2.0, 3.0])
J_HAND = np.array([[5.0, -2.0, -3.0], [-2.0, 8.0, -6.0], [-3.0, -6.0, 9.0]]) / 36


def test_softmax_jacobian_closed_form_on_a_hand_example(x64):
    jac = activations.softmax_jacobian(jnp.asarray(Z_HAND))
    np.testing.assert_allclose(jac, J_HAND, rtol=1e-14, atol=1e-16)
    # v = e_0 picks out row 0; v = -onehot(2) / s (the derivative of -log s_2) gives s - onehot(2).
    np.testing.assert_allclose(activations.softmax_vjp(jnp.asarray(Z_HAND), jnp.array([1.0, 0.0, 0.0])),
                               J_HAND[0], rtol=1e-14, atol=1e-16)
    v = jnp.array([0.0, 0.0, -2.0])  # -1 / s_2 = -6 / 3
    np.testing.assert_allclose(activations.softmax_vjp(jnp.asarray(Z_HAND), v), [1 / 6, 2 / 6, -1 / 2],
                               rtol=1e-14)


def test_softmax_jacobian_matches_jax_jacobian(x64):
    z = jnp.asarray(np.random.default_rng(0).normal(0.0, 3.0, (2, 3, 5)))  # batched: (..., k)
    jac = activations.softmax_jacobian(z)
    assert jac.shape == (2, 3, 5, 5)
    for i, j in np.ndindex(2, 3):
        np.testing.assert_allclose(jac[i, j], jax.jacobian(activations.softmax)(z[i, j]), rtol=1e-13,
                                   atol=1e-16)
    np.testing.assert_allclose(jac @ jnp.ones(5)[None, None, :, None], 0.0, atol=1e-15)  # shift invariance


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_softmax_vjp_matches_jax_vjp(x64, axis):
    rng = np.random.default_rng(1)
    z, v = (jnp.asarray(rng.normal(0.0, 3.0, (4, 3, 6))) for _ in range(2))
    _, vjp = jax.vjp(lambda z: activations.softmax(z, axis=axis), z)
    np.testing.assert_allclose(activations.softmax_vjp(z, v, axis=axis), vjp(v)[0], rtol=1e-12,
                               atol=1e-15)
    if axis == -1:  # the product is the Jacobian applied on the left, row by row
        jac = activations.softmax_jacobian(z)
        np.testing.assert_allclose(activations.softmax_vjp(z, v), (v[..., None, :] @ jac)[..., 0, :],
                                   rtol=1e-12, atol=1e-15)


def test_softmax_derivatives_are_finite_at_huge_logits_and_keep_float32():
    z = jnp.array([1e4, 0.0, -1e4], jnp.float32)  # s = e_0 exactly: the Jacobian is 0
    jac = activations.softmax_jacobian(z)
    assert jac.dtype == jnp.float32
    np.testing.assert_array_equal(jac, np.zeros((3, 3)))
    np.testing.assert_array_equal(activations.softmax_vjp(z, jnp.array([1.0, 2.0, 3.0], jnp.float32)), 0.0)


def test_softmax_vjp_shape_mismatch_raises():
    with pytest.raises(ValueError, match="does not match logits shape"):
        activations.softmax_vjp(jnp.zeros((2, 3)), jnp.zeros((3,)))
