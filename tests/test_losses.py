"""Losses: values against numbers worked out by hand, stability, and shape errors."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lab.losses import LOSSES, accuracy, cross_entropy, get_loss, mse, mse_classification, one_hot


def _a(values, dtype=jnp.float32):
    return jnp.asarray(values, dtype)


# loss, prediction, target, value worked out by hand
HAND = [
    # -log softmax([0, 0])[0] = log 2
    ("cross_entropy", [[0.0, 0.0]], [0], math.log(2)),
    # softmax([0, log 3]) = (1/4, 3/4): label 1 costs log(4/3)
    ("cross_entropy", [[0.0, math.log(3)]], [1], math.log(4 / 3)),
    # the mean over the batch of log 2 and log(4/3)
    ("cross_entropy", [[0.0, 0.0], [0.0, math.log(3)]], [0, 1], (math.log(2) + math.log(4 / 3)) / 2),
    # -log(e^1 / (e^1 + e^2 + e^3)) = log(1 + e + e^2)
    ("cross_entropy", [[3.0, 2.0, 1.0]], [2], math.log(1 + math.e + math.e**2)),
    # (1 + 4 + 9 + 16) / 4 entries
    ("mse", [[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]], 7.5),
    # (0.5^2 + 0 + 1.5^2) / 3 on a (3, 1) regression target
    ("mse", [[1.0], [2.0], [3.0]], [[0.5], [2.0], [4.5]], (0.25 + 2.25) / 3),
    # one-hot [1, 0, 0] exactly: 0; all-zero outputs against one-hot class 1: 1 / 3
    ("mse_classification", [[1.0, 0.0, 0.0]], [0], 0.0),
    ("mse_classification", [[0.0, 0.0, 0.0]], [1], 1 / 3),
    # ((0.5-1)^2 + 0.5^2 + 2^2 + (1-1)^2) / 4 = (0.25 + 0.25 + 4 + 0) / 4
    ("mse_classification", [[0.5, 0.5], [2.0, 1.0]], [0, 1], 4.5 / 4),
]


def test_table_covers_every_loss():
    assert {name for name, *_ in HAND} == set(LOSSES)


@pytest.mark.parametrize(("name", "pred", "target", "value"), HAND)
def test_hand_computed_values(x64, name, pred, target, value):
    target = jnp.asarray(target, jnp.float64 if name == "mse" else jnp.int32)
    got = get_loss(name)(jnp.asarray(pred, jnp.float64), target)
    assert got.shape == () and got.dtype == jnp.float64
    assert math.isclose(float(got), value, rel_tol=1e-14, abs_tol=1e-15)


def test_cross_entropy_is_finite_at_huge_logits():
    logits = _a([[1e4, 0.0], [0.0, 1e4], [1e4, -1e4]])
    np.testing.assert_array_equal(cross_entropy(logits, jnp.array([0, 1, 0])), 0.0)
    np.testing.assert_array_equal(cross_entropy(logits, jnp.array([1, 1, 1])), (1e4 + 0 + 2e4) / 3)
    grad = jax.grad(cross_entropy)(logits, jnp.array([1, 0, 1]))
    assert np.all(np.isfinite(grad))
    np.testing.assert_allclose(grad, np.array([[1, -1], [-1, 1], [1, -1]]) / 3)  # (softmax - onehot) / 3


@settings(max_examples=40, deadline=None, derandomize=True, database=None)
@given(
    logits=hnp.arrays(np.float64, (3, 4), elements=st.floats(-1e4, 1e4)),
    labels=hnp.arrays(np.int32, (3,), elements=st.integers(0, 3)),
    shift=st.floats(-1e3, 1e3),
)
def test_cross_entropy_matches_a_numpy_logsumexp(logits, labels, shift):
    """Any logits in [-1e4, 1e4]: finite, >= 0, equal to a NumPy reference, invariant to shifts."""
    m = logits.max(axis=1)
    ref = np.mean(m + np.log(np.exp(logits - m[:, None]).sum(axis=1)) - logits[np.arange(3), labels])
    with jax.enable_x64(True):
        got = float(cross_entropy(jnp.asarray(logits), jnp.asarray(labels)))
        shifted = float(cross_entropy(jnp.asarray(logits + shift), jnp.asarray(labels)))
    assert math.isfinite(got) and got >= 0
    assert math.isclose(got, ref, rel_tol=1e-12, abs_tol=1e-12)
    assert math.isclose(shifted, got, rel_tol=1e-9, abs_tol=1e-9)


BAD_SHAPES = {  # name: (loss, prediction, target, error message)
    "mse (1, 2) vs (2,)": (mse, [[1.0, 2.0]], [1.0, 2.0],
                           r"mse: prediction shape \(1, 2\) does not match target shape \(2,\)"),
    "mse (2, 1) vs (1, 2)": (mse, [[1.0], [2.0]], [[1.0, 2.0]], "does not match target shape"),
    "ce batch 2 vs 3 labels": (cross_entropy, [[1.0, 2.0]] * 2, [0, 1, 1],
                               r"got logits \(2, 2\) and labels \(3,\)"),
    "ce 1-d logits": (cross_entropy, [1.0, 2.0], [0], r"expected logits \(batch, classes\)"),
    "ce float labels": (cross_entropy, [[1.0, 2.0]], [1.0], "labels must be integer class indices"),
    "ce one-hot labels": (cross_entropy, [[1.0, 2.0]], [[0, 1]], r"got logits \(1, 2\) and labels \(1, 2\)"),
    "mse_classification batch": (mse_classification, [[1.0, 2.0]], [0, 1], "mse_classification: expected"),
    "mse_classification 1-d": (mse_classification, [1.0, 2.0], [0, 1], "mse_classification: expected"),
}


@pytest.mark.parametrize(("fn", "pred", "target", "match"), BAD_SHAPES.values(), ids=BAD_SHAPES)
def test_shape_mismatches_raise(fn, pred, target, match):
    target = np.asarray(target)  # ints stay ints (labels), floats stay floats (regression targets)
    with pytest.raises(ValueError, match=match):
        fn(_a(pred), jnp.asarray(target, jnp.float32 if target.dtype.kind == "f" else jnp.int32))


def test_one_hot():
    np.testing.assert_array_equal(one_hot(jnp.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    assert one_hot(jnp.array([1]), 2).dtype == jnp.float32


def test_accuracy():
    logits = _a([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    assert float(accuracy(logits, jnp.array([1, 0, 0, 0]))) == 0.75
    assert float(accuracy(logits, jnp.array([0, 1, 0, 1]))) == 0.0
    with pytest.raises(ValueError, match=r"accuracy: expected .* got logits \(4, 2\) and labels \(4, 1\)"):
        accuracy(logits, jnp.array([[1], [0], [0], [0]]))  # would broadcast to (4, 4) otherwise


def test_get_loss_unknown_name_lists_valid_names():
    assert get_loss("mse") is mse
    with pytest.raises(ValueError, match="unknown loss 'hinge'; valid names: mse, cross_entropy, mse_classi"):
        get_loss("hinge")
