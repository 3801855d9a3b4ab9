"""MNIST-1D against the reference generator of the ``mnist1d`` package (a test-only dependency).

The reference is called as ``make_dataset(get_dataset_args())`` only: ``get_dataset`` downloads from
the internet and writes a pickle into the working directory.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from lab import mnist1d


@pytest.fixture(scope="module")
def reference():
    with warnings.catch_warnings():
        # The reference imports scipy modules that some scipy versions deprecate; nothing else.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(mnist1d|scipy)(\.|$)")
        import mnist1d.data as ref

        state = np.random.get_state()
        data = ref.make_dataset(ref.get_dataset_args())
        np.random.set_state(state)  # the reference seeds the global generator; leave it as found
    return data


def test_default_data_set_is_the_published_one(reference):
    ours = mnist1d.generate()
    assert ours["x"].shape == (4000, 40) and ours["x_test"].shape == (1000, 40)
    np.testing.assert_array_equal(ours["y"], reference["y"])
    np.testing.assert_array_equal(ours["y_test"], reference["y_test"])
    np.testing.assert_allclose(ours["x"], reference["x"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["x_test"], reference["x_test"], rtol=0, atol=1e-12)


def test_dataset_is_float32_rounding_of_the_reference(reference):
    data = mnist1d.mnist1d()
    assert data.x_train.dtype == np.float32 and data.y_train.dtype == np.int32
    np.testing.assert_array_equal(np.asarray(data.x_train), reference["x"].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(data.y_test), reference["y_test"])
    assert sorted(np.unique(np.asarray(data.y_train)).tolist()) == list(range(10))


def test_depends_on_its_seed_only():
    a = mnist1d.generate(7, mnist1d.Mnist1dArgs(num_samples=100))
    b = mnist1d.generate(7, mnist1d.Mnist1dArgs(num_samples=100))
    c = mnist1d.generate(8, mnist1d.Mnist1dArgs(num_samples=100))
    np.testing.assert_array_equal(a["x"], b["x"])
    assert not np.array_equal(a["x"], c["x"])


def test_generating_does_not_touch_the_global_generator():
    np.random.seed(123)
    expected = np.random.RandomState(123).rand(3)
    mnist1d.generate(3, mnist1d.Mnist1dArgs(num_samples=20))
    np.testing.assert_array_equal(np.random.rand(3), expected)


def test_signals_are_standardized_over_the_whole_set():
    d = mnist1d.generate(5, mnist1d.Mnist1dArgs(num_samples=200))
    x = np.concatenate([d["x"], d["x_test"]])
    assert abs(x.mean()) < 1e-12 and abs(x.std() - 1) < 1e-12
    assert np.bincount(np.concatenate([d["y"], d["y_test"]])).tolist() == [20] * 10
