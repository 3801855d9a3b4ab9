"""lab.analysis against independent references: numpy backprop, numpy forward passes and optimizer loops."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab import analysis
from lab.data import TEST_FUNCTIONS
from lab.initializers import get_initializer
from lab.models import init_mlp

SIZES = (4, 5, 6, 3)


def _numpy_mlp_grads(params, x, y, activation):
    """Cross-entropy gradient of an MLP by the chain rule, in float64 numpy (the reference)."""
    acts = {"tanh": (np.tanh, lambda z: 1 - np.tanh(z) ** 2),
            "sigmoid": (lambda z: 1 / (1 + np.exp(-z)), lambda z: np.exp(-z) / (1 + np.exp(-z)) ** 2)}
    fn, dfn = acts[activation]
    ws = [np.asarray(layer["w"], np.float64) for layer in params]
    bs = [np.asarray(layer["b"], np.float64) for layer in params]
    hs, zs, h = [np.asarray(x, np.float64)], [], np.asarray(x, np.float64)
    for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
        z = h @ w + b
        zs.append(z)
        h = z if i == len(ws) - 1 else fn(z)
        hs.append(h)
    p = np.exp(h - h.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    delta = (p - np.eye(p.shape[1])[np.asarray(y)]) / len(y)
    grads = [None] * len(ws)
    for i in reversed(range(len(ws))):
        grads[i] = hs[i].T @ delta
        if i:
            delta = (delta @ ws[i].T) * dfn(zs[i - 1])
    return grads


def test_layer_gradient_norms_match_numpy_backprop_for_every_pair():
    keys = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(jax.random.key(1), (7, SIZES[0]), jnp.float32)
    y = jnp.array([0, 1, 2, 0, 1, 2, 2], jnp.int32)
    pairs = (("tanh", "xavier_normal"), ("sigmoid", "he_normal"), ("tanh", "he_normal"))
    stds = jnp.asarray(np.stack([analysis.init_stds(init, SIZES) for _, init in pairs]))
    got = np.asarray(analysis.layer_gradient_norms(keys, x, y, stds, sizes=SIZES,
                                                   activations=tuple(a for a, _ in pairs)))
    assert got.shape == (3, 3, len(SIZES) - 1)
    for p, (activation, init) in enumerate(pairs):
        for s, key in enumerate(keys):
            ref = _numpy_mlp_grads(init_mlp(key, SIZES, init), x, y, activation)
            np.testing.assert_allclose(got[p, s], [np.linalg.norm(g) for g in ref], rtol=1e-5)


def test_layer_activation_stds_match_numpy_forward():
    keys = jax.random.split(jax.random.key(2), 2)
    x = jax.random.normal(jax.random.key(3), (9, SIZES[0]), jnp.float32)
    stds = jnp.asarray(np.stack([analysis.init_stds("he_normal", SIZES),
                                 analysis.init_stds("normal", SIZES, 1.0)]))
    got = np.asarray(analysis.layer_activation_stds(keys, x, stds, sizes=SIZES, activations=("tanh", "relu")))
    assert got.shape == (2, 2, len(SIZES) - 2)
    for p, (act, init, kw) in enumerate((("tanh", "he_normal", {}), ("relu", "normal", {"std": 1.0}))):
        fn = np.tanh if act == "tanh" else (lambda z: np.maximum(z, 0))
        for s, key in enumerate(keys):
            h = np.asarray(x, np.float64)
            for i, layer in enumerate(init_mlp(key, SIZES, get_initializer(init, **kw))[:-1]):
                h = fn(h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64))
                np.testing.assert_allclose(got[p, s, i], h.std(), rtol=1e-5)


def test_init_stds_follow_the_initializers_variance():
    np.testing.assert_allclose(analysis.init_stds("he_normal", (4, 8, 2)), [np.sqrt(2 / 4), np.sqrt(2 / 8)])
    np.testing.assert_allclose(analysis.init_stds("xavier_normal", (4, 8)), [np.sqrt(2 / 12)])
    np.testing.assert_allclose(analysis.init_stds("normal", (4, 8, 2), std=0.5), [0.5, 0.5])


def _numpy_grad(surface, p):
    x, y = p
    if surface == "quadratic":
        return np.array([0.2 * x, 4 * y])
    if surface == "rosenbrock":
        return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])
    raise AssertionError(surface)


def _numpy_step(name, p, g, state, lr, t):
    """One step of plain SGD or Adam (optax's defaults), written out in float64."""
    if name == "sgd":
        return p - lr * g, state
    m, v = state
    m = 0.9 * m + 0.1 * g
    v = 0.999 * v + 0.001 * g * g
    m_hat, v_hat = m / (1 - 0.9**t), v / (1 - 0.999**t)
    return p - lr * m_hat / (np.sqrt(v_hat) + 1e-8), (m, v)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_surface_paths_match_a_numpy_loop_with_analytic_gradients(name):
    from lab import optim

    surfaces = ("quadratic", "rosenbrock")
    lrs = np.array([1e-4, 1e-3], np.float32)
    points, values = analysis.surface_paths(jnp.asarray(lrs), optimizer=getattr(optim, name),
                                            surfaces=surfaces, steps=20)
    assert points.shape == (2, 2, 21, 2) and values.shape == (2, 2, 21)
    for i, surface in enumerate(surfaces):
        for j, lr in enumerate(lrs):
            p = np.asarray(TEST_FUNCTIONS[surface].start, np.float64)
            state, ref = (np.zeros(2), np.zeros(2)), [p]
            for t in range(1, 21):
                p, state = _numpy_step(name, p, _numpy_grad(surface, p), state, float(lr), t)
                ref.append(p)
            np.testing.assert_allclose(points[i, j], np.stack(ref), rtol=2e-4, atol=1e-6)
            last = TEST_FUNCTIONS[surface].fn(jnp.asarray(ref[-1], jnp.float32))
            np.testing.assert_allclose(values[i, j, -1], last, rtol=1e-4, atol=1e-7)


def test_path_score_prefers_fast_paths_and_rejects_divergence():
    steps = np.linspace(0, 1, 11)[:, None]
    start = np.array(TEST_FUNCTIONS["quadratic"].start)
    slow = start * (1 - 0.5 * steps)
    fast = start * (1 - steps)
    diverged = fast.copy()
    diverged[5:] = np.nan
    points = np.stack([slow, fast, diverged])
    values = np.asarray(TEST_FUNCTIONS["quadratic"].fn(jnp.asarray(points, jnp.float32)))
    scores = analysis.path_score(points, values, "quadratic")
    assert scores[1] < scores[0] and scores[2] == np.inf
    best = analysis.best_paths(np.array([0.1, 0.2, 0.3]), points[None], values[None], ["quadratic"])
    assert best["learning_rate"][0] == 0.2
    np.testing.assert_array_equal(best["points"][0], fast)


def test_path_score_clips_unbounded_surfaces_to_the_window():
    # On the saddle, a path far outside the window scores as if it stopped at the window's edge.
    far = np.array([[[0.0, 0.0], [0.0, 1e6]]])
    values = np.array([[0.0, -1e12]])
    edge = TEST_FUNCTIONS["saddle"].ylim[1]
    np.testing.assert_allclose(analysis.path_score(far, values, "saddle"), [-(edge**2) / 2])


def test_decision_grid_matches_pointwise_softmax():
    keys = jax.random.split(jax.random.key(4), 3)
    params = jax.vmap(lambda k: init_mlp(k, (2, 8, 2), "he_normal"))(keys)
    grid = np.asarray(analysis.decision_grid(params, activation="relu", xlim=(-1.0, 2.0), ylim=(0.0, 1.0),
                                             resolution=5))
    assert grid.shape == (3, 5, 5)
    run, i, j = 1, 4, 2  # y index 4 -> y = 1.0, x index 2 -> x = 0.5
    layers = jax.tree_util.tree_map(lambda leaf: np.asarray(leaf[run], np.float64), params)
    h = np.maximum(np.array([0.5, 1.0]) @ layers[0]["w"] + layers[0]["b"], 0)
    logits = h @ layers[1]["w"] + layers[1]["b"]
    np.testing.assert_allclose(grid[run, i, j], np.exp(logits[1]) / np.exp(logits).sum(), rtol=1e-5)


def test_steps_to_target_marks_misses_as_nan():
    acc = np.array([[0.1, 0.5, 0.9, 0.95], [0.1, 0.2, 0.3, 0.4], [0.96, 0.97, 0.9, 0.99]])
    got = analysis.steps_to_target(np.array([0, 10, 20, 30]), acc, 0.9)
    np.testing.assert_array_equal(got, [20.0, np.nan, 0.0])


def test_activation_curves_match_known_values():
    curves = analysis.activation_curves(["sigmoid", "relu"], jnp.array([-1.0, 0.0, 2.0], jnp.float32))
    np.testing.assert_allclose(curves["sigmoid"][0][1], 0.5)
    np.testing.assert_allclose(curves["sigmoid"][1][1], 0.25)
    np.testing.assert_array_equal(curves["relu"][0], [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(curves["relu"][1], [0.0, 0.0, 1.0])


def test_surface_paths_compiles_once_per_optimizer():
    from lab.optim import sgd

    factory = functools.partial(sgd)
    lrs = jnp.asarray([1e-3, 1e-2], jnp.float32)
    kwargs = dict(optimizer=factory, surfaces=("quadratic",), steps=3)
    analysis.surface_paths(lrs, **kwargs)
    size = analysis.surface_paths._cache_size()
    analysis.surface_paths(lrs * 2, **kwargs)
    assert analysis.surface_paths._cache_size() == size
