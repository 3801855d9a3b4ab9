"""Data that ships with a dependency or is generated: nothing is downloaded.

- :func:`digits`: scikit-learn's bundled 8x8 digits (1797 images), pixels scaled to [0, 1],
  a stratified 80/20 train/test split drawn from an explicit key.
- :func:`two_moons`, :func:`circles`: 2D binary classification with Gaussian noise.
- :func:`linear_regression_task`: ``y = x @ w_true + b_true + noise`` with known weights.
- :func:`read_npz`: your own data from a NumPy ``.npz`` file, checked array by array;
  :func:`as_dataset` checks and casts the four arrays a user's data function returns.
- :func:`validation_split`: a stratified part of the training set held out for choosing.
- :data:`TEST_FUNCTIONS`: 2D :class:`Surface` s with known minima for trajectory pictures.
- :func:`batch_indices`: the indices of step ``t``'s batch, computed inside ``jit``.

Every generator takes an explicit PRNG key: same key, same data.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import zipfile
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Dataset(NamedTuple):
    """A train/test split; ``x_*`` are (n, features) floats, ``y_*`` (n,) int labels or (n, k)."""

    x_train: Array
    y_train: Array
    x_test: Array
    y_test: Array


@functools.lru_cache(maxsize=1)
def _digits_numpy() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return (bunch.data / 16.0).astype(np.float32), bunch.target.astype(np.int32)


def digits(key: Array, test_fraction: float = 0.2) -> Dataset:
    """The 8x8 digits: x in [0, 1] with 64 features, labels 0..9, stratified split.

    Each image gets a uniform random number drawn from ``key``; within each class the images are
    ordered by it (a uniformly random shuffle) and the first ``round(test_fraction * n_class)`` go
    to the test set, so both sets keep the class proportions. (One draw for all images rather than
    a permutation per class: that would compile a new program for each class size.)
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    x, y = _digits_numpy()
    u = np.asarray(jax.random.uniform(key, (y.size,), jnp.float32))
    train_idx, test_idx = [], []
    for c in range(10):
        idx = np.flatnonzero(y == c)
        idx = idx[np.argsort(u[idx], kind="stable")]
        n_test = int(round(test_fraction * idx.size))
        test_idx.append(idx[:n_test])
        train_idx.append(idx[n_test:])
    tr, te = np.sort(np.concatenate(train_idx)), np.sort(np.concatenate(test_idx))
    return Dataset(jnp.asarray(x[tr]), jnp.asarray(y[tr]), jnp.asarray(x[te]), jnp.asarray(y[te]))


# The generators are jitted with the sizes static: one compiled program per size, not one per op.


@functools.partial(jax.jit, static_argnums=1)
def _moons(key: Array, n: int, noise: float) -> tuple[Array, Array]:
    k_lab, k_t, k_noise = jax.random.split(key, 3)
    y = jax.random.bernoulli(k_lab, 0.5, (n,)).astype(jnp.int32)
    t = jax.random.uniform(k_t, (n,), jnp.float32, 0.0, jnp.pi)
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    lower = jnp.stack([1.0 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    x = jnp.where(y[:, None] == 0, upper, lower)
    return x + noise * jax.random.normal(k_noise, (n, 2), jnp.float32), y


@functools.partial(jax.jit, static_argnums=1)
def _circles(key: Array, n: int, noise: float, factor: float) -> tuple[Array, Array]:
    k_lab, k_t, k_noise = jax.random.split(key, 3)
    y = jax.random.bernoulli(k_lab, 0.5, (n,)).astype(jnp.int32)
    t = jax.random.uniform(k_t, (n,), jnp.float32, 0.0, 2 * jnp.pi)
    radius = jnp.where(y == 0, jnp.float32(1.0), jnp.asarray(factor, jnp.float32))
    x = radius[:, None] * jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    return x + noise * jax.random.normal(k_noise, (n, 2), jnp.float32), y


def two_moons(key: Array, n_train: int = 200, n_test: int = 200, noise: float = 0.2) -> Dataset:
    """Two interleaving half circles (label 0 upper, 1 lower) with N(0, noise^2) jitter."""
    k_tr, k_te = jax.random.split(key)
    return Dataset(*_moons(k_tr, n_train, noise), *_moons(k_te, n_test, noise))


def circles(key: Array, n_train: int = 200, n_test: int = 200, noise: float = 0.1,
            factor: float = 0.5) -> Dataset:
    """A circle of radius 1 (label 0) around one of radius ``factor`` (label 1), with jitter."""
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor must be in (0, 1), got {factor}")
    k_tr, k_te = jax.random.split(key)
    return Dataset(*_circles(k_tr, n_train, noise, factor), *_circles(k_te, n_test, noise, factor))


@functools.partial(jax.jit, static_argnames=("n_train", "n_test", "d"))
def linear_regression_task(key: Array, n_train: int = 200, n_test: int = 200, d: int = 5,
                           noise: float = 0.1) -> tuple[Dataset, Array, Array]:
    """``y = x @ w_true + b_true + noise * eps`` with x, w_true, eps ~ N(0, 1), b_true ~ N(0, 1).

    Returns:
        ``(dataset, w_true (d, 1), b_true (1,))``; targets are (n, 1).
    """
    k_w, k_b, k_x, k_e = jax.random.split(key, 4)
    w = jax.random.normal(k_w, (d, 1), jnp.float32)
    b = jax.random.normal(k_b, (1,), jnp.float32)
    x = jax.random.normal(k_x, (n_train + n_test, d), jnp.float32)
    y = x @ w + b[None, :] + noise * jax.random.normal(k_e, (n_train + n_test, 1), jnp.float32)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:]), w, b


# ----------------------------------------------------------------------------- your own data

NPZ_ARRAYS = ("x_train", "y_train", "x_test", "y_test")
VALIDATION_FRACTION = 0.2


def validation_split(data: Dataset, seed: int, fraction: float = VALIDATION_FRACTION) -> Dataset:
    """Split the training set into ``(train, validation)``, returned as ``Dataset(x_tr, y_tr, x_va, y_va)``.

    Stratified for class labels: in each class, the ``round(fraction * n_class)`` examples with the
    smallest uniform draws (from ``fold_in(key(seed), 1)``) are held out; regression targets are one
    class. Deterministic, and the held-out examples never overlap the training ones.
    """
    x, y = np.asarray(data.x_train), np.asarray(data.y_train)
    u = np.asarray(jax.random.uniform(jax.random.fold_in(jax.random.key(seed), 1), (x.shape[0],)))
    classes = y if y.ndim == 1 else np.zeros(x.shape[0], np.int32)
    held = np.zeros(x.shape[0], bool)
    for c in np.unique(classes):
        idx = np.flatnonzero(classes == c)
        held[idx[np.argsort(u[idx], kind="stable")[: int(round(fraction * idx.size))]]] = True
    return Dataset(jnp.asarray(x[~held]), jnp.asarray(y[~held]), jnp.asarray(x[held]), jnp.asarray(y[held]))


def as_dataset(where: str, x_tr, y_tr, x_te, y_te) -> Dataset:
    """Four arrays (from a user's data function) checked and cast as :func:`read_npz` casts a file's:
    x float32, integer labels int32, float targets (n, k) float32; a one-line ``ValueError`` starting
    with ``where`` otherwise."""
    labels = y_tr.dtype.kind in "iu"  # else float regression targets
    for x, y in ((x_tr, y_tr), (x_te, y_te)):
        if not (x.dtype.kind in "iuf" and x.ndim >= 2 and x.size and x.shape[1:] == x_tr.shape[1:]
                and y.shape[:1] == x.shape[:1] and np.isfinite(x).all() and np.isfinite(y).all()
                and (y.ndim == 1 and y.dtype.kind in "iu" and y.min() >= 0 if labels else
                     y.dtype.kind == "f" and y.ndim <= 2 and y.shape[1:] == y_tr.shape[1:])):
            raise ValueError(f"{where} gave x {x.dtype}{x.shape}, y {y.dtype}{y.shape}; expected finite "
                             f"x (n, features...), y (n,) labels >= 0 or (n, k) floats, as in the other set")
    ys = [jnp.asarray(y, jnp.int32) if labels else jnp.asarray(y, jnp.float32).reshape(len(y), -1)
          for y in (y_tr, y_te)]
    return Dataset(jnp.asarray(x_tr, jnp.float32), ys[0], jnp.asarray(x_te, jnp.float32), ys[1])


def read_npz(path: str) -> tuple[str, Dataset]:
    """Your own data set from a ``.npz`` file (``numpy.savez``), with the SHA-256 of its bytes.

    The file holds ``x_train``, ``y_train``, ``x_test``, ``y_test`` (other arrays are ignored); it is
    read with ``allow_pickle=False``. ``x_*`` are (examples, *features) numbers, returned as float32.
    ``y_*`` are either integer class labels (examples,), returned as int32, or float regression
    targets (examples,) or (examples, k), returned as float32 (examples, k).

    Returns:
        ``(sha256, dataset)``, the arrays as NumPy arrays.

    Raises:
        ValueError: one line naming the array and what is wrong with it: not a file or not an
            ``.npz``, a missing array, an empty set, shapes that do not match (x against y, train
            against test), a NaN or an infinity, labels below 0 or not of one kind (integer
            labels in one set, float targets in the other).
    """
    if not os.path.isfile(path):
        raise ValueError("not a file")
    st = os.stat(path)
    return _read_npz(os.path.abspath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _read_npz(path: str, size: int, mtime_ns: int) -> tuple[str, Dataset]:
    del size, mtime_ns  # part of the cache key only: a changed file is read again
    with open(path, "rb") as f:
        content = f.read()  # hashed and parsed from the same bytes: a file changing meanwhile is no risk
    return hashlib.sha256(content).hexdigest(), _parse_npz(content)


def _parse_npz(content: bytes) -> Dataset:
    if content.startswith(b"\x93NUMPY"):
        raise ValueError("a .npy file holds one array; save x_train, y_train, x_test, y_test with "
                         "numpy.savez")
    if not content.startswith(b"PK"):  # a zip archive, as numpy.savez writes
        raise ValueError("not a NumPy .npz file (write one with numpy.savez)")
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as z:
            missing = [k for k in NPZ_ARRAYS if k not in z.files]
            if missing:
                held = ", ".join(z.files) or "none"
                raise ValueError(f"missing array {missing[0]} (the file holds {held}; "
                                 f"expected {', '.join(NPZ_ARRAYS)})")
            arrays = {k: _array(z, k) for k in NPZ_ARRAYS}
    except (zipfile.BadZipFile, EOFError, OSError):
        raise ValueError("not a NumPy .npz file (write one with numpy.savez)") from None
    x_tr, y_tr, x_te, y_te = (arrays[k] for k in NPZ_ARRAYS)
    for name, x in (("x_train", x_tr), ("x_test", x_te)):
        if x.ndim < 2 or x.shape[0] == 0 or x.size == 0:
            raise ValueError(f"{name}: expected a non-empty (examples, features...) array, "
                             f"got shape {x.shape}")
    if x_tr.shape[1:] != x_te.shape[1:]:
        raise ValueError(f"x_test: features of shape {x_te.shape[1:]}, x_train's are {x_tr.shape[1:]}")
    labels = [np.issubdtype(y.dtype, np.integer) for y in (y_tr, y_te)]
    if labels[0] != labels[1]:
        raise ValueError(f"y_test: {y_te.dtype} values, y_train's are {y_tr.dtype}: both integer class "
                         f"labels or both float regression targets")
    for name, x, y in (("y_train", x_tr, y_tr), ("y_test", x_te, y_te)):
        if y.shape[:1] != x.shape[:1]:
            raise ValueError(f"{name}: {y.shape[0] if y.ndim else 'no'} rows, x{name[1:]} has {x.shape[0]}")
        if labels[0] and y.ndim != 1:
            raise ValueError(f"{name}: integer class labels must be one per example (n,), "
                             f"got shape {y.shape}")
        if labels[0] and y.min() < 0:
            raise ValueError(f"{name}: labels must be 0, 1, 2, ...; found {int(y.min())}")
        if labels[0] and y.max() > np.iinfo(np.int32).max:
            raise ValueError(f"{name}: label {int(y.max())} is out of range")
        if not labels[0] and not 1 <= y.ndim <= 2:
            raise ValueError(f"{name}: regression targets must be (n,) or (n, k), got shape {y.shape}")
    if not labels[0] and y_tr.shape[1:] != y_te.shape[1:]:
        raise ValueError(f"y_test: targets of shape {y_te.shape[1:]}, y_train's are {y_tr.shape[1:]}")
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf, refused below
        x_tr, x_te = x_tr.astype(np.float32), x_te.astype(np.float32)
        if labels[0]:
            y_tr, y_te = y_tr.astype(np.int32), y_te.astype(np.int32)
        else:
            y_tr, y_te = (y.astype(np.float32).reshape(y.shape[0], -1) for y in (y_tr, y_te))
    for name, a in zip(NPZ_ARRAYS, (x_tr, y_tr, x_te, y_te), strict=True):
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{name}: holds NaN or infinite values (in float32)")
    return Dataset(x_tr, y_tr, x_te, y_te)


def _array(z, name: str) -> np.ndarray:
    try:
        a = z[name]
    except ValueError:  # an object array, which only pickle could load
        raise ValueError(f"{name}: an object array (it would need pickle); save numbers") from None
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ValueError(f"{name}: expected integer or float numbers, got dtype {a.dtype}")
    return a


# ----------------------------------------------------------------------------- 2D surfaces


class Surface(NamedTuple):  # not "TestFunction": pytest would try to collect a class named Test*
    """A 2D surface ``fn(p)`` of a point ``p = (x, y)``, with where it is interesting to look."""

    name: str
    fn: Callable[[Array], Array]
    minimum: tuple[float, float] | None  # arg-min, or None where the surface is unbounded below
    min_value: float | None
    start: tuple[float, float]  # a standard starting point for trajectory pictures
    xlim: tuple[float, float]
    ylim: tuple[float, float]


def rosenbrock(p: Array) -> Array:
    """(1 - x)^2 + 100 (y - x^2)^2; minimum 0 at (1, 1) at the end of a curved valley."""
    x, y = p[..., 0], p[..., 1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def ill_conditioned_quadratic(p: Array) -> Array:
    """0.1 x^2 + 2 y^2; minimum 0 at (0, 0), condition number 20."""
    x, y = p[..., 0], p[..., 1]
    return 0.1 * x**2 + 2 * y**2


def saddle(p: Array) -> Array:
    """x^2 - y^2; a saddle point at (0, 0), unbounded below along y."""
    x, y = p[..., 0], p[..., 1]
    return x**2 - y**2


def beale(p: Array) -> Array:
    """(1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2; minimum 0 at (3, 0.5)."""
    x, y = p[..., 0], p[..., 1]
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y**2) ** 2 + (2.625 - x + x * y**3) ** 2


TEST_FUNCTIONS: dict[str, Surface] = {
    "rosenbrock": Surface("rosenbrock", rosenbrock, (1.0, 1.0), 0.0, (-1.5, 2.0), (-2.0, 2.0), (-1.0, 3.0)),
    "quadratic": Surface("quadratic", ill_conditioned_quadratic, (0.0, 0.0), 0.0, (-4.5, 1.5), (-5.0, 5.0),
                         (-2.0, 2.0)),
    "saddle": Surface("saddle", saddle, None, None, (-1.5, 0.01), (-2.0, 2.0), (-2.0, 2.0)),
    "beale": Surface("beale", beale, (3.0, 0.5), 0.0, (1.0, 1.5), (-0.5, 4.0), (-1.5, 2.0)),
}


# ----------------------------------------------------------------------------- batches


def batch_indices(key: Array, step: Array | int, n: int, batch_size: int | None) -> Array:
    """Indices of the batch used at ``step``, computable inside ``jit``/``scan``.

    - ``batch_size is None`` or ``>= n``: full batch, ``arange(n)`` every step.
    - otherwise: sampling without replacement within an epoch. Epoch ``e = step // (n // B)``
      uses the permutation ``permutation(fold_in(key, e), n)``, and step ``step`` takes its
      ``(step mod (n // B))``-th slice of ``B``; the last ``n mod B`` items of each permutation are
      skipped (a fresh permutation per epoch makes every item equally likely to be skipped).
      ``batch_size=1`` is stochastic gradient descent.

    ``n`` and ``batch_size`` are static (they decide shapes); ``step`` may be traced.
    """
    if batch_size is None or batch_size >= n:
        return jnp.arange(n)
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size}")
    steps_per_epoch = n // batch_size
    step = jnp.asarray(step, jnp.int32)
    perm = jax.random.permutation(jax.random.fold_in(key, step // steps_per_epoch), n)
    return jax.lax.dynamic_slice(perm, ((step % steps_per_epoch) * batch_size,), (batch_size,))
