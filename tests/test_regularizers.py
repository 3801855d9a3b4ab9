"""Regularizers: penalties by hand, biases left alone, and the L1 subgradient at 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.regularizers import l1_penalty, l2_penalty, penalty, penalty_grad, regularized, weights

# sum|w| = 1 + 2 + 0 + 3 + 0.5 = 6.5; sum w^2 = 1 + 4 + 0 + 9 + 0.25 = 14.25. Biases are large on
# purpose: any leak of them into a penalty would show.
PARAMS = [
    {"w": jnp.array([[1.0, -2.0], [0.0, 3.0]]), "b": jnp.array([100.0, -100.0])},
    {"w": jnp.array([[-0.5], [0.0]]), "b": jnp.array([50.0])},
]


def test_penalties_by_hand():
    assert float(l1_penalty(PARAMS)) == 6.5
    assert float(l2_penalty(PARAMS)) == 14.25 / 2
    assert float(penalty(PARAMS, l1=0.5, l2=2.0)) == 0.5 * 6.5 + 2.0 / 2 * 14.25
    assert float(penalty(PARAMS)) == 0.0


def test_single_layer_params_and_empty_params():
    layer = {"w": jnp.array([[3.0, -4.0]]), "b": jnp.array([7.0, 7.0])}
    assert float(l1_penalty(layer)) == 7.0 and float(l2_penalty(layer)) == 12.5
    assert float(penalty([], l1=1.0, l2=1.0)) == 0.0


def test_biases_are_not_penalized():
    moved = [{"w": layer["w"], "b": layer["b"] + 1.0} for layer in PARAMS]
    assert float(penalty(moved, 0.3, 0.7)) == float(penalty(PARAMS, 0.3, 0.7))
    grad = penalty_grad(PARAMS, 0.3, 0.7)
    for layer in grad:
        np.testing.assert_array_equal(layer["b"], 0.0)


def test_weights_are_the_w_leaves_in_order():
    ws = weights(PARAMS)
    assert len(ws) == 2
    for w, layer in zip(ws, PARAMS, strict=True):
        assert w is layer["w"]


def test_the_weight_rule_is_rank_at_least_two_whatever_the_names():
    """Any model's pytree: a conv kernel (rank 3) and a matrix are weights, a vector and a scalar are
    not, whatever the keys; with a run axis (batch_dims=1) the same leaves are found."""
    params = {"kernel": jnp.full((3, 2, 4), 2.0), "dense": (jnp.array([[1.0, -1.0]]), jnp.ones(2) * 9.0),
              "scale": jnp.float32(5.0)}
    assert float(l1_penalty(params)) == 3 * 2 * 4 * 2.0 + 2.0
    grad = penalty_grad(params, 1.0, 0.0)
    np.testing.assert_array_equal(grad["dense"][1], 0.0)
    np.testing.assert_array_equal(grad["scale"], 0.0)
    np.testing.assert_array_equal(grad["kernel"], 1.0)
    stacked = jax.tree.map(lambda x: jnp.stack([x, x]), params)
    assert [w.shape for w in weights(stacked, batch_dims=1)] == [(2, 1, 2), (2, 3, 2, 4)]


@pytest.mark.parametrize(("l1", "l2"), [(0.0, 0.0), (0.3, 0.0), (0.0, 0.7), (0.3, 0.7)])
def test_gradient_by_hand_and_by_jax_grad_agree_at_zero_weights(l1, l2):
    """l1 sign(w) + l2 w on weights, with sign(0) = 0; jax.grad of the penalty gives the same."""
    expected = [
        {"w": l1 * np.array([[1.0, -1.0], [0.0, 1.0]]) + l2 * np.asarray(PARAMS[0]["w"]), "b": np.zeros(2)},
        {"w": l1 * np.array([[-1.0], [0.0]]) + l2 * np.asarray(PARAMS[1]["w"]), "b": np.zeros(1)},
    ]
    by_hand = penalty_grad(PARAMS, l1, l2)
    by_jax = jax.grad(penalty)(PARAMS, l1, l2)
    for e, h, j in zip(expected, by_hand, by_jax, strict=True):
        for key in ("w", "b"):
            np.testing.assert_allclose(h[key], e[key], rtol=1e-6)
            np.testing.assert_array_equal(j[key], h[key])


def test_regularized_objective_with_traced_strengths():
    def loss(params, x):
        return jnp.sum(params[0]["b"]) * x  # depends on a bias only, so the penalty is the rest

    strengths = jnp.array([0.0, 0.1, 1.0])

    @jax.jit
    @jax.vmap
    def objective(l1):
        return regularized(loss, l1=l1, l2=jnp.float32(2.0))(PARAMS, jnp.float32(3.0))

    np.testing.assert_allclose(objective(strengths), 0.0 * 3 + strengths * 6.5 + 14.25, rtol=1e-6)


def test_float64_params_give_a_float64_penalty(x64):
    params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), PARAMS)
    assert penalty(params, 0.1, 0.2).dtype == jnp.float64
    assert float(l1_penalty(params)) == 6.5
