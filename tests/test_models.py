"""Models: parameter shapes and the forward pass against a NumPy float64 reference."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lab.models import count_params, init_linear, init_mlp, linear, mlp, mlp_hidden

NUMPY_ACTIVATIONS = {
    "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "tanh": np.tanh,
    "relu": lambda z: np.maximum(z, 0),
    "leaky_relu": lambda z: np.where(z >= 0, z, 0.01 * z),
    "elu": lambda z: np.where(z > 0, z, np.expm1(np.minimum(z, 0))),
    "identity": lambda z: z,
}


def _numpy_mlp(params, x, act):
    """Forward pass in NumPy float64: every hidden output, then the logits."""
    h, hidden = np.asarray(x, np.float64), []
    for layer in params:
        z = h @ np.asarray(layer["w"], np.float64) + np.asarray(layer["b"], np.float64)
        hidden.append(act(z))
        h = hidden[-1]
    return hidden[:-1], z


def _random_mlp(key, sizes):
    """An MLP with random (not zero) biases, so the bias path is exercised."""
    params = init_mlp(key, sizes)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(params))
    return [{"w": p["w"], "b": jax.random.normal(k, p["b"].shape)} for k, p in zip(keys, params, strict=True)]


@pytest.mark.parametrize("sizes", [(5, 3), (5, 7, 6, 3)])
def test_init_mlp_shapes_dtypes_and_zero_biases(sizes):
    params = init_mlp(jax.random.key(0), sizes)
    assert isinstance(params, list) and len(params) == len(sizes) - 1
    for layer, fan_in, fan_out in zip(params, sizes[:-1], sizes[1:], strict=True):
        assert set(layer) == {"w", "b"}
        assert layer["w"].shape == (fan_in, fan_out) and layer["b"].shape == (fan_out,)
        assert layer["w"].dtype == layer["b"].dtype == jnp.float32
        np.testing.assert_array_equal(layer["b"], 0)
    assert count_params(params) == sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:], strict=True))


def test_init_mlp_is_deterministic_and_uses_a_key_per_layer():
    a, b = init_mlp(jax.random.key(3), (6, 6, 6)), init_mlp(jax.random.key(3), (6, 6, 6))
    for la, lb in zip(a, b, strict=True):
        np.testing.assert_array_equal(la["w"], lb["w"])
    assert not np.any(np.asarray(a[0]["w"]) == np.asarray(a[1]["w"]))
    other = init_mlp(jax.random.key(4), (6, 6, 6))
    assert not np.any(np.asarray(a[0]["w"]) == np.asarray(other[0]["w"]))


def test_init_mlp_uses_the_named_initializer(x64):
    params = init_mlp(jax.random.key(0), (3, 200, 100), init="he_uniform", dtype=jnp.float64)
    for layer in params:
        fan_in = layer["w"].shape[0]
        assert layer["w"].dtype == jnp.float64
        assert float(jnp.max(jnp.abs(layer["w"]))) <= np.sqrt(6 / fan_in)
        assert float(jnp.max(jnp.abs(layer["w"]))) >= 0.95 * np.sqrt(6 / fan_in)
    ones = init_mlp(jax.random.key(0), (2, 3), init=lambda k, i, o, dtype: jnp.ones((i, o), dtype))
    np.testing.assert_array_equal(ones[0]["w"], np.ones((2, 3)))


@pytest.mark.parametrize("sizes", [(), (3,), (3, 0, 2), (3, -1)])
def test_init_mlp_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes must be at least two positive widths"):
        init_mlp(jax.random.key(0), sizes)


@pytest.mark.parametrize("activation", list(NUMPY_ACTIVATIONS))
def test_mlp_matches_numpy_reference(activation):
    params = _random_mlp(jax.random.key(1), (5, 7, 6, 3))
    x = jax.random.normal(jax.random.key(2), (4, 5))
    act = NUMPY_ACTIVATIONS[activation]
    hidden, logits = _numpy_mlp(params, x, act)
    out = jax.jit(mlp, static_argnums=2)(params, x, activation)
    assert out.shape == (4, 3) and out.dtype == jnp.float32
    np.testing.assert_allclose(out, logits, rtol=1e-5, atol=1e-5)
    got = mlp_hidden(params, x, activation)
    assert len(got) == len(hidden) == 2
    for h, ref in zip(got, hidden, strict=True):
        np.testing.assert_allclose(h, ref, rtol=1e-5, atol=1e-5)


def test_mlp_default_activation_is_relu_and_the_last_layer_is_linear():
    params = _random_mlp(jax.random.key(5), (5, 7, 6, 3))
    x = jax.random.normal(jax.random.key(6), (4, 5))
    _, ref = _numpy_mlp(params, x, NUMPY_ACTIVATIONS["relu"])
    np.testing.assert_allclose(mlp(params, x), ref, rtol=1e-5, atol=1e-5)
    assert np.any(np.asarray(mlp(params, x)) < 0)  # no activation on the logits


def test_linear_and_init_linear():
    params = init_linear(jax.random.key(0), 3, 2)
    assert params["w"].shape == (3, 2) and params["b"].shape == (2,)
    np.testing.assert_array_equal(params["b"], 0)
    params = {"w": jnp.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]), "b": jnp.array([0.5, -0.5])}
    x = jnp.array([[1.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(linear(params, x), [[-3.5, -4.5], [3.5, 3.5]])
    np.testing.assert_array_equal(linear(params, x[0]), [-3.5, -4.5])  # one example, no batch axis


def test_batch_of_one():
    params = _random_mlp(jax.random.key(7), (5, 7, 6, 3))
    x = jax.random.normal(jax.random.key(8), (1, 5))
    _, ref = _numpy_mlp(params, x, NUMPY_ACTIVATIONS["tanh"])
    np.testing.assert_allclose(mlp(params, x, "tanh"), ref, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- convolutions


@pytest.mark.parametrize(("kernel", "spatial"), [((5,), (40,)), ((3, 3), (8, 8))])
def test_cnn_matches_torch_conv_layers(kernel, spatial, x64):
    """lab's CNN (convolutions, ReLU, global mean pooling, dense head) against torch.nn.functional's
    conv1d/conv2d with the same weights, in float64."""
    import torch

    from lab.models import cnn, init_cnn

    params = init_cnn(jax.random.key(0), kernel, (1, 6, 7), 10, dtype=jnp.float64)
    params = jax.tree.map(lambda a: a + 0.01, params)  # nonzero biases
    x = jax.random.normal(jax.random.key(1), (3, *spatial, 1), jnp.float64)
    out = np.asarray(cnn(params, x))
    t = lambda a: torch.tensor(np.asarray(a))  # noqa: E731
    h = t(x).movedim(-1, 1)  # channels first
    conv = torch.nn.functional.conv1d if len(kernel) == 1 else torch.nn.functional.conv2d
    for layer in params["conv"]:
        w = t(layer["w"]).movedim((-1, -2), (0, 1))  # (out, in, *kernel)
        h = torch.relu(conv(h, w, t(layer["b"]), stride=2, padding=1))
    ref = h.mean(dim=tuple(range(2, h.ndim))) @ t(params["head"]["w"]) + t(params["head"]["b"])
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out, ref.numpy(), rtol=1e-12, atol=1e-12)


def test_cnn_init_uses_the_convolutions_fan_in():
    """He init of a (5, c_in, c_out) kernel has variance 2 / (5 c_in), as torch's kaiming_normal_."""
    from lab.models import init_cnn

    params = init_cnn(jax.random.key(0), (5,), (16, 256, 4), 10)
    w = np.asarray(params["conv"][0]["w"])
    assert w.shape == (5, 16, 256)
    np.testing.assert_allclose(w.var(), 2 / (5 * 16), rtol=0.05)


@pytest.mark.parametrize(("kernel", "spatial", "stride", "padding"),
                         [((5,), (40,), 2, 1), ((3,), (9,), 1, 0), ((4,), (11,), 3, 2),
                          ((3, 3), (8, 8), 2, 1), ((2, 3), (7, 6), 1, 0)])
def test_conv_patches_equals_xlas_convolution(kernel, spatial, stride, padding, x64):
    """im2col (strided slices and one matrix product) against lax.conv_general_dilated, in float64,
    with odd sizes: a stride that does not divide the padded length, unequal kernel sides."""
    from lab.models import conv, conv_patches

    x = jax.random.normal(jax.random.key(0), (3, *spatial, 4), jnp.float64)
    w = jax.random.normal(jax.random.key(1), (*kernel, 4, 5), jnp.float64)
    want = conv(x, w, stride, padding)
    got = conv_patches(x, w, stride, padding)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_built_in_models_are_init_apply_pairs_over_their_input_shapes():
    from lab.models import MODELS, Model, init_cnn, init_mlp, mlp

    key = jax.random.key(0)
    mlp_model = MODELS["mlp"](hidden=(7,), activation="tanh", init="xavier_normal")
    params = mlp_model.init(key, (4, 3), 5)  # inputs are flattened: 12 features
    want = init_mlp(key, (12, 7, 5), init="xavier_normal")
    for got, ref in zip(jax.tree.leaves(params), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(got, ref)
    x = jax.random.normal(jax.random.key(1), (2, 4, 3))
    np.testing.assert_array_equal(mlp_model.apply(params, x), mlp(params, x.reshape(2, 12), "tanh"))

    linear = MODELS["linear"]()
    assert jax.tree.map(jnp.shape, linear.init(key, (6,), 2)) == {"w": (6, 2), "b": (2,)}

    # cnn2d reads the flat 8x8 digits as one-channel images; cnn1d gives a signal one channel.
    cnn2d = MODELS["cnn2d"](channels=(3, 4), kernel=3)
    params = cnn2d.init(key, (64,), 10)
    assert isinstance(cnn2d, Model) and params["conv"][0]["w"].shape == (3, 3, 1, 3)
    images = jax.random.normal(jax.random.key(2), (5, 64))
    np.testing.assert_array_equal(cnn2d.apply(params, images), cnn2d.apply(params, images.reshape(5, 8, 8)))
    cnn1d = MODELS["cnn1d"](channels=(3,), kernel=5)
    params = cnn1d.init(key, (40,), 10)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, init_cnn(key, (5,), (1, 3), 10))
    assert cnn1d.apply(params, jax.random.normal(key, (2, 40))).shape == (2, 10)


@pytest.mark.parametrize(("name", "kwargs", "message"), [
    ("cnn1d", dict(channels=()), r"channels: expected positive integers, got \(\)"),
    ("cnn1d", dict(channels=(4, 0)), r"channels: expected positive integers"),
    ("cnn1d", dict(kernel=0), r"kernel: expected an integer >= 1, got 0"),
    ("cnn2d", dict(padding=-1), r"padding: expected an integer >= 0, got -1"),
    ("cnn2d", dict(image_shape=(8,)), r"image_shape: expected \(h, w\) or \(h, w, c\)"),
    ("mlp", dict(hidden=(3, -1)), r"hidden: expected positive integers"),
    ("mlp", dict(activation="gelu"), r"gelu"),
])
def test_built_in_models_name_their_bad_argument(name, kwargs, message):
    from lab.models import MODELS

    with pytest.raises(ValueError, match=message) as info:
        MODELS[name](**kwargs)
    assert "\n" not in str(info.value)


def test_cnn2d_refuses_inputs_that_are_not_images():
    from lab.models import MODELS

    with pytest.raises(ValueError, match=r"2D CNN takes inputs of shape \(h, w\) .*got \(63,\)"):
        MODELS["cnn2d"]().init(jax.random.key(0), (63,), 10)
    with pytest.raises(ValueError, match=r"image_shape: \(7, 7\) does not hold inputs of shape \(64,\)"):
        MODELS["cnn2d"](image_shape=(7, 7)).init(jax.random.key(0), (64,), 10)
