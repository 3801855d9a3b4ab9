"""Data: determinism, ranges, the stratified split, generators' geometry, surfaces, batching."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.datasets import load_digits

from lab import data  # not `from lab.data import Surface...`: keep pytest from eyeing data classes


def _rows(x, y):
    """The (x, y) rows of a data set as a sorted list of tuples: a multiset to compare."""
    return sorted(map(tuple, np.column_stack([np.asarray(x, np.float64), np.asarray(y, np.float64)])))


# ----------------------------------------------------------------------------- digits


@functools.cache
def _digits(seed: int) -> data.Dataset:
    return data.digits(jax.random.key(seed))


def test_digits_shapes_dtypes_and_ranges():
    d = _digits(0)
    assert d.x_train.shape[1] == d.x_test.shape[1] == 64
    assert d.x_train.shape[0] + d.x_test.shape[0] == 1797
    assert d.x_train.dtype == jnp.float32 and d.y_train.dtype == jnp.int32
    x = np.concatenate([d.x_train, d.x_test])
    assert x.min() == 0.0 and x.max() == 1.0  # scaled from 0..16 to [0, 1]


def test_digits_split_is_a_stratified_partition_of_the_bundled_data():
    d = _digits(0)
    bunch = load_digits()
    assert _rows(np.concatenate([d.x_train, d.x_test]), np.concatenate([d.y_train, d.y_test])) == _rows(
        bunch.data / 16.0, bunch.target
    )
    per_class = np.bincount(bunch.target, minlength=10)
    np.testing.assert_array_equal(np.bincount(np.asarray(d.y_test), minlength=10), np.round(0.2 * per_class))
    np.testing.assert_array_equal(
        np.bincount(np.asarray(d.y_train), minlength=10), per_class - np.round(0.2 * per_class)
    )


def test_digits_same_key_same_split_other_key_other_split():
    a, b, c = _digits(0), data.digits(jax.random.key(0)), _digits(1)
    for field in data.Dataset._fields:
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert _rows(a.x_test, a.y_test) != _rows(c.x_test, c.y_test)


def test_digits_test_fraction():
    d = data.digits(jax.random.key(0), test_fraction=0.5)
    assert abs(d.x_test.shape[0] - 1797 / 2) <= 5  # rounding within each of the 10 classes
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="test_fraction must be in"):
            data.digits(jax.random.key(0), test_fraction=bad)


# ----------------------------------------------------------------------------- 2D classification


@pytest.mark.parametrize("make", [data.two_moons, data.circles])
def test_2d_sets_shapes_labels_and_determinism(make):
    d = make(jax.random.key(0), n_train=300, n_test=100)
    assert d.x_train.shape == (300, 2) and d.x_test.shape == (100, 2)
    assert d.x_train.dtype == jnp.float32 and d.y_train.dtype == jnp.int32
    assert set(np.unique(d.y_train)) == {0, 1}
    assert abs(int(d.y_train.sum()) - 150) <= 6 * np.sqrt(300 / 4)  # labels are fair coin flips
    again, other = make(jax.random.key(0), n_train=300, n_test=100), make(jax.random.key(1), 300, 100)
    np.testing.assert_array_equal(d.x_train, again.x_train)
    np.testing.assert_array_equal(d.y_test, again.y_test)
    assert not np.array_equal(d.x_train, other.x_train)
    assert not np.array_equal(d.x_train[:100], d.x_test)  # train and test are separate draws


def test_two_moons_geometry_without_noise():
    d = data.two_moons(jax.random.key(0), 300, 100, noise=0.0)
    x, y = np.asarray(d.x_train, np.float64), np.asarray(d.y_train)
    upper, lower = x[y == 0], x[y == 1]
    # label 0: the upper unit half circle; label 1: the lower one, centred at (1, 0.5)
    np.testing.assert_allclose(np.hypot(upper[:, 0], upper[:, 1]), 1.0, atol=1e-6)
    assert np.all(upper[:, 1] >= -1e-6)
    np.testing.assert_allclose(np.hypot(lower[:, 0] - 1, lower[:, 1] - 0.5), 1.0, atol=1e-6)
    assert np.all(lower[:, 1] <= 0.5 + 1e-6)


def test_circles_geometry_and_noise_level():
    clean = data.circles(jax.random.key(0), 300, 100, noise=0.0, factor=0.3)
    r = np.hypot(*np.asarray(clean.x_train, np.float64).T)
    np.testing.assert_allclose(r, np.where(np.asarray(clean.y_train) == 0, 1.0, 0.3), atol=1e-6)
    noisy = data.circles(jax.random.key(0), 300, 100, noise=0.1, factor=0.3)
    radius = np.where(np.asarray(noisy.y_train) == 0, 1.0, 0.3)
    radial = np.hypot(*np.asarray(noisy.x_train, np.float64).T) - radius
    # The radial part of isotropic N(0, 0.1^2) jitter has std about 0.1 (its bias, about
    # noise^2 / 2r, is small); with 300 points the sample std is within 6 sd (0.025) of it.
    assert 0.075 <= np.std(radial) <= 0.125
    with pytest.raises(ValueError, match="factor must be in"):
        data.circles(jax.random.key(0), factor=1.0)


def test_linear_regression_task_known_weights():
    d, w, b = data.linear_regression_task(jax.random.key(0), n_train=500, n_test=300, d=4, noise=0.0)
    assert d.x_train.shape == (500, 4) and d.y_train.shape == (500, 1) and d.y_test.shape == (300, 1)
    assert w.shape == (4, 1) and b.shape == (1,)
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        ref = np.asarray(x, np.float64) @ np.asarray(w, np.float64) + np.asarray(b, np.float64)
        np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)
    noisy, w2, b2 = data.linear_regression_task(jax.random.key(0), n_train=500, n_test=300, d=4, noise=0.1)
    np.testing.assert_array_equal(w2, w)
    residual = np.asarray(noisy.y_train - noisy.x_train @ w2 - b2[None, :], np.float64)
    # chi-square bound on the noise variance, 6 sigma: 0.01 (1 +- 6 sqrt(2/500))
    assert abs(np.mean(residual**2) / 0.01 - 1) <= 6 * np.sqrt(2 / 500)


# ----------------------------------------------------------------------------- surfaces

WITH_MINIMUM = [name for name, s in data.TEST_FUNCTIONS.items() if s.minimum is not None]


def test_surfaces_are_the_four_named_in_the_issue():
    assert set(data.TEST_FUNCTIONS) == {"rosenbrock", "quadratic", "saddle", "beale"}
    for name, s in data.TEST_FUNCTIONS.items():
        assert isinstance(s, data.Surface) and s.name == name
        assert s.xlim[0] < s.start[0] < s.xlim[1] and s.ylim[0] < s.start[1] < s.ylim[1]


@pytest.mark.parametrize("name", WITH_MINIMUM)
def test_minimum_is_a_stationary_point_below_a_grid_of_the_box(name):
    s = data.TEST_FUNCTIONS[name]
    p = jnp.array(s.minimum, jnp.float32)
    assert float(s.fn(p)) == s.min_value
    np.testing.assert_array_equal(jax.grad(s.fn)(p), [0.0, 0.0])
    xs, ys = np.meshgrid(np.linspace(*s.xlim, 41), np.linspace(*s.ylim, 41))
    grid = jnp.asarray(np.stack([xs, ys], axis=-1), jnp.float32)  # (41, 41, 2): fn is vectorized
    values = s.fn(grid)
    assert values.shape == (41, 41) and float(values.min()) >= s.min_value


def test_quadratic_condition_number_and_saddle_curvature():
    h = jax.hessian(data.TEST_FUNCTIONS["quadratic"].fn)(jnp.zeros(2))
    np.testing.assert_allclose(h, [[0.2, 0.0], [0.0, 4.0]], rtol=1e-6)
    saddle = data.TEST_FUNCTIONS["saddle"]
    assert saddle.minimum is None and saddle.min_value is None
    np.testing.assert_array_equal(jax.grad(saddle.fn)(jnp.zeros(2)), [0.0, 0.0])
    np.testing.assert_allclose(jnp.linalg.eigvalsh(jax.hessian(saddle.fn)(jnp.zeros(2))), [-2.0, 2.0])


# ----------------------------------------------------------------------------- batches

KEY = jax.random.key(42)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _scanned(n, batch_size, steps):
    """The batch indices of steps 0..steps-1, made inside jit by a scan with a traced step."""

    def body(carry, step):
        return carry, data.batch_indices(KEY, step, n, batch_size)

    return jax.lax.scan(body, None, jnp.arange(steps))[1]


@pytest.mark.parametrize("batch_size", [None, 10, 25])
def test_full_batch(batch_size):
    np.testing.assert_array_equal(data.batch_indices(KEY, 3, 10, batch_size), np.arange(10))


@pytest.mark.parametrize("batch_size", [0, -3])
def test_bad_batch_size_raises(batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer or None"):
        data.batch_indices(KEY, 0, 10, batch_size)


@pytest.mark.parametrize(("n", "batch_size"), [(10, 3), (12, 4), (7, 1), (9, 8), (100, 32)])
def test_mini_batches_sample_without_replacement_within_each_epoch(n, batch_size):
    per_epoch, epochs = n // batch_size, 4
    idx = np.asarray(_scanned(n, batch_size, per_epoch * epochs))
    assert idx.shape == (per_epoch * epochs, batch_size)
    orders = idx.reshape(epochs, per_epoch * batch_size)
    for order in orders:
        assert len(set(order)) == n - n % batch_size  # no repeats, and all but n mod B items
        assert order.min() >= 0 and order.max() < n
    assert len({tuple(order) for order in orders}) == epochs  # a fresh permutation each epoch
    for step in (0, per_epoch - 1, per_epoch, 3 * per_epoch + per_epoch // 2):  # eager, Python int step
        np.testing.assert_array_equal(data.batch_indices(KEY, step, n, batch_size), idx[step])


def test_skipped_items_change_between_epochs():
    """With n mod B > 0 some items sit out each epoch, but not the same ones every epoch."""
    n, batch_size, epochs = 10, 4, 6
    idx = np.asarray(_scanned(n, batch_size, (n // batch_size) * epochs))
    skipped = {frozenset(set(range(n)) - set(order)) for order in idx.reshape(epochs, -1)}
    assert len(skipped) > 1


def test_different_keys_give_different_batches():
    a = data.batch_indices(jax.random.key(0), 0, 50, 10)
    b = data.batch_indices(jax.random.key(1), 0, 50, 10)
    assert not np.array_equal(a, b)


# ----------------------------------------------------------------------------- your own data (npz)


def _good_arrays(regression: bool = False) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    y_tr = rng.normal(size=12) if regression else np.arange(12) % 3
    y_te = rng.normal(size=4) if regression else np.arange(4) % 3
    return {"x_train": rng.normal(size=(12, 2, 3)), "y_train": y_tr,
            "x_test": rng.normal(size=(4, 2, 3)).astype(np.float32), "y_test": y_te, "notes": np.arange(3)}


def test_read_npz_returns_float32_features_labels_or_targets_and_the_files_hash(tmp_path):
    import hashlib

    path = tmp_path / "d.npz"
    arrays = _good_arrays()
    np.savez(path, **arrays)
    digest, d = data.read_npz(str(path))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert d.x_train.dtype == np.float32 and d.x_train.shape == (12, 2, 3)  # features keep their shape
    np.testing.assert_array_equal(d.x_train, arrays["x_train"].astype(np.float32))
    assert d.y_train.dtype == np.int32 and d.y_test.tolist() == [0, 1, 2, 0]
    np.savez(path, **_good_arrays(regression=True))
    digest2, d = data.read_npz(str(path))  # the file changed: read again
    assert digest2 != digest and d.y_train.shape == (12, 1) and d.y_test.dtype == np.float32


def _bad(**change):
    arrays = {k: v for k, v in _good_arrays().items() if k != "notes"}
    arrays.update(change)
    return {k: v for k, v in arrays.items() if v is not None}


@pytest.mark.parametrize(("arrays", "message"), [
    (_bad(y_test=None), r"missing array y_test \(the file holds x_train, y_train, x_test; expected"),
    (_bad(y_train=np.arange(11) % 3), r"y_train: 11 rows, x_train has 12"),
    (_bad(y_test=np.zeros(5, int)), r"y_test: 5 rows, x_test has 4"),
    (_bad(x_test=np.zeros((4, 3, 2))), r"x_test: features of shape \(3, 2\), x_train's are \(2, 3\)"),
    (_bad(x_train=np.zeros(12)), r"x_train: expected a non-empty \(examples, features...\) array, got shape"),
    (_bad(x_test=np.zeros((0, 2, 3)), y_test=np.zeros(0, int)), r"x_test: expected a non-empty"),
    (_bad(x_train=np.full((12, 2, 3), np.nan)), r"x_train: holds NaN or infinite values"),
    (_bad(x_test=np.full((4, 2, 3), 1e39)), r"x_test: holds NaN or infinite values \(in float32\)"),
    (_bad(y_train=np.arange(12) - 1), r"y_train: labels must be 0, 1, 2, \.\.\.; found -1"),
    (_bad(y_train=np.arange(12) * 0.5), r"y_test: int64 values, y_train's are float64: both integer"),
    (_bad(y_test=np.zeros((4, 2), int)), r"y_test: integer class labels must be one per example"),
    (_bad(x_train=np.zeros((12, 2, 3), bool)), r"x_train: expected integer or float numbers, got dtype bool"),
    (_bad(x_train=np.zeros((12, 2, 3), complex)), r"x_train: expected integer or float numbers"),
    (_bad(x_train=np.array([{}] * 12, dtype=object)), r"x_train: an object array \(it would need pickle\)"),
])
def test_read_npz_names_the_bad_array_in_one_line(tmp_path, arrays, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message) as info:
        data.read_npz(str(path))
    assert "\n" not in str(info.value)


def test_read_npz_refuses_what_is_not_an_npz_file(tmp_path):
    np.save(tmp_path / "one.npy", np.zeros(3))
    (tmp_path / "text.npz").write_text("x_train,y_train\n1,2\n")
    for path, message in [(tmp_path / "missing.npz", "not a file"), (tmp_path, "not a file"),
                          (tmp_path / "text.npz", r"not a NumPy \.npz file"),
                          (tmp_path / "one.npy", r"a \.npy file holds one array")]:
        with pytest.raises(ValueError, match=message):
            data.read_npz(str(path))
