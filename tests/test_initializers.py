"""Initializers: sample statistics against the variance each one documents.

A sample of n independent entries with variance s2 and kurtosis k has ``mean(w^2)`` with mean s2
and standard deviation ``s2 sqrt((k - 1) / n)``; for a normal (k = 3) that is the chi-square
statement ``n mean(w^2) / s2 ~ chi2(n)``, for a uniform k = 9/5. The check allows Z = 6 standard
deviations (a false alarm about once in 10^9 runs) and, with n = 65536, that is a band of +-3.3%
(normal) or +-2.1% (uniform): a variance 10% off, or a fan_in/fan_out mix-up, cannot pass.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.initializers import INITIALIZERS, get_initializer, target_variance, zeros, zeros_init
from lab.models import init_mlp

FAN_IN, FAN_OUT = 128, 512  # not square, so using fan_out for fan_in would show
Z = 6.0
# name, kwargs, kurtosis of the distribution, expected variance written out by hand
ROWS = [
    ("normal", {}, 3.0, 0.01**2),
    ("normal", {"std": 0.5}, 3.0, 0.25),
    ("uniform", {}, 9 / 5, 0.05**2 / 3),
    ("uniform", {"scale": 0.3}, 9 / 5, 0.03),
    ("xavier_normal", {}, 3.0, 2 / (128 + 512)),
    ("xavier_uniform", {}, 9 / 5, 2 / (128 + 512)),
    ("he_normal", {}, 3.0, 2 / 128),
    ("he_uniform", {}, 9 / 5, 2 / 128),
]
IDS = [f"{name}{kwargs or ''}" for name, kwargs, *_ in ROWS]


def _variance_ok(w: np.ndarray, target: float, kurtosis: float) -> bool:
    """mean(w^2) within Z standard deviations of ``target`` (the module docstring's bound)."""
    n = w.size
    return abs(np.mean(np.square(w)) - target) <= Z * target * math.sqrt((kurtosis - 1) / n)


def test_table_covers_every_initializer():
    assert {name for name, *_ in ROWS} == set(INITIALIZERS)


@pytest.mark.parametrize(("name", "kwargs", "kurtosis", "variance"), ROWS, ids=IDS)
def test_sample_variance_matches_target(name, kwargs, kurtosis, variance):
    assert math.isclose(target_variance(name, FAN_IN, FAN_OUT, **kwargs), variance, rel_tol=1e-12)
    w = get_initializer(name, **kwargs)(jax.random.key(0), FAN_IN, FAN_OUT)
    assert w.shape == (FAN_IN, FAN_OUT) and w.dtype == jnp.float32
    w = np.asarray(w, np.float64)
    assert _variance_ok(w, variance, kurtosis)
    # The bound is tight enough to matter: the same sample rescaled to a variance 10% off fails.
    assert not _variance_ok(w * math.sqrt(1.1), variance, kurtosis)
    assert not _variance_ok(w * math.sqrt(0.9), variance, kurtosis)
    # Zero mean, and the right family: sample kurtosis (sd ~0.02 here) near 3 or 9/5.
    assert abs(np.mean(w)) <= Z * math.sqrt(variance / w.size)
    assert abs(np.mean(w**4) / np.mean(w**2) ** 2 - kurtosis) <= 0.2
    if kurtosis == 9 / 5:  # uniform on (-a, a), a = sqrt(3 variance): bounded, and reaches near a
        a = math.sqrt(3 * variance)
        assert np.max(np.abs(w)) <= a * (1 + 1e-6) and np.max(np.abs(w)) >= 0.999 * a


def test_variance_targets_of_different_initializers_are_told_apart():
    """He and Xavier differ by (fan_in + fan_out) / fan_in here, far outside the band."""
    he = np.asarray(get_initializer("he_normal")(jax.random.key(1), FAN_IN, FAN_OUT), np.float64)
    assert _variance_ok(he, target_variance("he_normal", FAN_IN, FAN_OUT), 3.0)
    assert not _variance_ok(he, target_variance("xavier_normal", FAN_IN, FAN_OUT), 3.0)
    assert not _variance_ok(he, 2 / FAN_OUT, 3.0)  # He with fan_out by mistake


@pytest.mark.parametrize("name", INITIALIZERS)
def test_same_key_same_weights_other_key_other_weights(name):
    init = get_initializer(name)
    a, b, c = (init(jax.random.key(k), 3, 4) for k in (7, 7, 8))
    np.testing.assert_array_equal(a, b)
    assert not np.any(np.asarray(a) == np.asarray(c))


def test_float64_on_request(x64):
    for name in INITIALIZERS:
        assert get_initializer(name)(jax.random.key(0), 3, 4, dtype=jnp.float64).dtype == jnp.float64


@pytest.mark.parametrize(
    ("alias", "name"),
    [("xavier", "xavier_normal"), ("glorot", "xavier_normal"), ("glorot_normal", "xavier_normal"),
     ("glorot_uniform", "xavier_uniform"), ("he", "he_normal"), ("kaiming", "he_normal"),
     ("kaiming_normal", "he_normal"), ("kaiming_uniform", "he_uniform")],
)
def test_aliases(alias, name):
    assert get_initializer(alias) is INITIALIZERS[name]
    assert target_variance(alias, 3, 5) == target_variance(name, 3, 5)


@pytest.mark.parametrize("lookup", [get_initializer, lambda name, **kw: target_variance(name, 3, 4, **kw)],
                         ids=["get_initializer", "target_variance"])
@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [("he", {"std": 0.1}, "'he_normal' takes no parameters, not std"),
     ("normal", {"scale": 0.1}, "'normal' takes std, not scale"),
     ("normal", {"stdev": 0.1}, "'normal' takes std, not stdev"),  # a typo is not silently ignored
     ("uniform", {"std": 0.1, "scale": 0.2}, "'uniform' takes scale, not std")],
)
def test_parameters_an_initializer_does_not_take_raise(lookup, name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        lookup(name, **kwargs)


def test_target_variance_uses_the_parameters_it_is_given():
    # Hand values: std^2 and scale^2 / 3, and the initializers' own defaults when left out.
    assert math.isclose(target_variance("normal", 3, 4, std=0.2), 0.04, rel_tol=1e-12)
    assert math.isclose(target_variance("normal", 3, 4), 1e-4, rel_tol=1e-12)
    assert math.isclose(target_variance("uniform", 3, 4, scale=0.6), 0.12, rel_tol=1e-12)
    assert math.isclose(target_variance("uniform", 3, 4), 0.0025 / 3, rel_tol=1e-12)


def test_callables_pass_through():
    def fn(key, fan_in, fan_out, dtype=jnp.float32):
        return jnp.ones((fan_in, fan_out), dtype)

    assert get_initializer(fn) is fn


@pytest.mark.parametrize("lookup", [get_initializer, lambda name: target_variance(name, 3, 4)])
def test_unknown_name_raises_listing_valid_names(lookup):
    with pytest.raises(ValueError, match="unknown initializer 'lecun'") as info:
        lookup("lecun")
    for name in INITIALIZERS:
        assert name in str(info.value)


def test_zeros_for_biases():
    b = zeros(5)
    assert b.shape == (5,) and b.dtype == jnp.float32
    np.testing.assert_array_equal(b, np.zeros(5))


def test_zeros_initializer_takes_key_fan_in_fan_out(x64):
    init = get_initializer("zeros")
    assert init is zeros_init
    w = init(jax.random.key(0), 3, 5)
    assert w.shape == (3, 5) and w.dtype == jnp.float32
    np.testing.assert_array_equal(w, np.zeros((3, 5)))
    np.testing.assert_array_equal(init(jax.random.key(1), 3, 5), w)  # the key is not used
    assert init(jax.random.key(0), 3, 5, dtype=jnp.float64).dtype == jnp.float64
    assert target_variance("zeros", 3, 5) == 0.0
    with pytest.raises(ValueError, match="'zeros' takes no parameters, not std"):
        get_initializer("zeros", std=0.1)
    with pytest.raises(ValueError, match="'zeros' takes no parameters, not std"):
        target_variance("zeros", 3, 5, std=0.1)


def test_zeros_is_looked_up_by_name_but_not_among_the_random_initializers():
    # INITIALIZERS is what the variance tests and figures loop over; a variance of 0 has no place there.
    assert "zeros" not in INITIALIZERS
    with pytest.raises(ValueError, match="valid names: .*zeros"):
        get_initializer("lecun")


def test_zeros_by_name_in_an_mlp_gives_zero_weights():
    params = init_mlp(jax.random.key(0), (3, 4, 2), init="zeros")
    for layer, (fan_in, fan_out) in zip(params, [(3, 4), (4, 2)], strict=True):
        np.testing.assert_array_equal(layer["w"], np.zeros((fan_in, fan_out)))
        np.testing.assert_array_equal(layer["b"], np.zeros(fan_out))
