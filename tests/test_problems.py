"""Problems: validation of the config, and the data: the validation split holds out part of the
training set (so never the test set)."""

import jax
import numpy as np
import pytest

import lab.sweep
from lab.problems import VALIDATION_FRACTION, Problem, init_params, load_data


@pytest.mark.parametrize("change, message", [
    (dict(dataset="mnist"), r"Problem\.dataset: unknown data set 'mnist'"),
    (dict(dataset="moons", loss="mse"), r"Problem\.loss: 'mse'"),
    (dict(hidden=(0,)), r"Problem\.hidden: .*\(0,\)"),
    (dict(activation="gelu"), r"Problem\.activation: .*'gelu'"),
    (dict(n_train=10), r"Problem\.n_train"),
    (dict(init="he_normal", init_std=1.0), r"Problem\.init_std: .*'he_normal'"),
    (dict(init="normal", init_std=0.0), r"Problem\.init_std: .*got 0\.0"),
    (dict(init="gaussian"), r"Problem\.init: "), (dict(validation="yes"), r"Problem\.validation: .*'yes'"),
])
def test_problem_validates_itself_naming_the_field(change, message):
    with pytest.raises(ValueError, match=message) as info:
        Problem(**change)
    assert "\n" not in str(info.value)


def test_the_sweep_package_exports_the_same_problem():
    assert lab.sweep.Problem is Problem


@pytest.mark.parametrize("problem", [Problem(validation=True),
                                     Problem("moons", hidden=(8,), n_train=101, validation=True),
                                     Problem("linreg", hidden=(), loss="mse", validation=True)])
def test_validation_split_partitions_the_training_set_and_keeps_class_shares(problem):
    full = load_data(Problem(**{**problem.to_dict(), "hidden": problem.hidden, "validation": False}))
    split = load_data(problem)
    x_full, y_full = np.asarray(full.x_train), np.asarray(full.y_train)
    x_tr, x_va = np.asarray(split.x_train), np.asarray(split.x_test)
    # Every training row lands in exactly one side: the multiset of rows is unchanged.
    joined = np.concatenate([x_tr, x_va])
    order = np.lexsort(joined.T), np.lexsort(x_full.T)
    np.testing.assert_array_equal(joined[order[0]], x_full[order[1]])
    assert abs(x_va.shape[0] - VALIDATION_FRACTION * x_full.shape[0]) <= 10  # rounding per class
    if y_full.ndim == 1:  # classification: stratified, each class within one example of 20%
        counts_va = np.bincount(np.asarray(split.y_test), minlength=y_full.max() + 1)
        counts = np.bincount(y_full)
        assert np.all(np.abs(counts_va - VALIDATION_FRACTION * counts) <= 0.5 + 1e-9)


def test_validation_split_is_deterministic_and_depends_on_the_data_seed():
    a, b = load_data(Problem(validation=True)), load_data(Problem(validation=True, data_seed=0))
    c = load_data(Problem(validation=True, data_seed=1))
    np.testing.assert_array_equal(np.asarray(a.y_test), np.asarray(b.y_test))
    assert not np.array_equal(np.asarray(a.x_test), np.asarray(c.x_test))


@pytest.mark.parametrize("init, std, expected_std", [("normal", None, 0.01), ("normal", 1.0, 1.0),
                                                     ("uniform", 0.3, 0.3 / np.sqrt(3))])
def test_init_std_sets_the_spread_of_normal_and_uniform(init, std, expected_std):
    params = init_params(Problem(hidden=(256,), init=init, init_std=std), jax.random.key(0))
    w = np.asarray(params[0]["w"])  # 64 x 256 = 16384 samples: the sample std is within ~1.1% (2 sigma)
    assert abs(w.std() / expected_std - 1) < 0.03
