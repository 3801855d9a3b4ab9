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
