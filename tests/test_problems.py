"""Problems: validation of the config (built-in and user models, npz files), the data (the validation
split holds out part of the training set, so never the test set; MNIST-1D is the published set),
and identity: a model's or data file's source hash, which changes when they are edited."""

import dataclasses
import hashlib
import importlib
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lab.models
import lab.sweep
from lab import mnist1d, specs
from lab.data import VALIDATION_FRACTION
from lab.models import init_cnn, init_mlp
from lab.problems import (
    Problem,
    check_model,
    init_params,
    input_shape,
    load_data,
    n_outputs,
    predict,
)

USER_MODEL = """
    import jax, jax.numpy as jnp

    def two_layer(width=4, scale=1.0):
        def init(key, input_shape, n_out):
            k1, k2 = jax.random.split(key)
            d = input_shape[0]
            return {"hidden": {"w": scale * jax.random.normal(k1, (d, width)), "b": jnp.zeros(width)},
                    "out": {"w": jax.random.normal(k2, (width, n_out)) / width, "b": jnp.zeros(n_out)}}

        def apply(params, x):
            h = jnp.tanh(x @ params["hidden"]["w"] + params["hidden"]["b"][None, :])
            return h @ params["out"]["w"] + params["out"]["b"][None, :]

        return init, apply

    def wrong_outputs():
        return (lambda key, shape, n: {"w": jnp.zeros((shape[0], 3))}), (lambda p, x: x @ p["w"])

    def no_weights():
        return (lambda key, shape, n: {"v": jnp.zeros((n,))}), (lambda p, x: x * p["v"][None, :])

    def int_params():
        return (lambda key, shape, n: {"w": jnp.zeros((shape[0], n), jnp.int32)}), (lambda p, x: x)

    def raises(width):
        raise RuntimeError("no GPU here")

    def not_a_model():
        return 3

    def crashes_in_apply():
        return (lambda key, shape, n: {"w": jnp.zeros((shape[0], n))}), (lambda p, x: x @ p["missing"])

    NOT_CALLABLE = 3
"""


def write_module(directory, name: str, source: str):
    """``source`` as module ``name`` in ``directory`` (on sys.path), imported afresh."""
    (directory / f"{name}.py").write_text(textwrap.dedent(source))
    if str(directory) not in sys.path:
        sys.path.insert(0, str(directory))
    sys.modules.pop(name, None)
    importlib.invalidate_caches()
    return importlib.import_module(name)


@pytest.fixture
def user_model(tmp_path):
    module = write_module(tmp_path, "lab_test_user_model", USER_MODEL)
    yield module
    sys.path.remove(str(tmp_path))
    sys.modules.pop("lab_test_user_model", None)


@pytest.mark.parametrize("change, message", [
    (dict(dataset="mnist"), r"Problem\.dataset: unknown data set 'mnist'"),
    (dict(dataset="moons", loss="mse"), r"Problem\.loss: 'mse'"),
    (dict(hidden=(0,)), r"Problem\.hidden: .*\(0,\)"),
    (dict(activation="gelu"), r"Problem\.activation: .*'gelu'"),
    (dict(n_train=10), r"Problem\.n_train"),
    (dict(init="he_normal", init_std=1.0), r"Problem\.init_std: .*'he_normal'"),
    (dict(init="normal", init_std=0.0), r"Problem\.init_std: .*got 0\.0"),
    (dict(init="gaussian"), r"Problem\.init: "), (dict(validation="yes"), r"Problem\.validation: .*'yes'"),
    (dict(model="resnet"), r"Problem\.model: unknown name 'resnet'; valid: mlp, linear, cnn1d, cnn2d, or "),
    (dict(model=":f"), r"Problem\.model: expected 'module:attr' \(e\.g\. 'my_pkg\.opt:my_adam'\), got ':f'"),
    (dict(model="no_such_module_xyz:f"), r"Problem\.model: cannot import 'no_such_module_xyz'"),
    (dict(model="cnn1d", hidden=(8,)), r"Problem\.hidden: the 'cnn1d' model does not take it"),
    (dict(model="linear", activation="tanh"), r"Problem\.activation: the 'linear' model does not take it"),
    (dict(model="cnn1d", model_kwargs={"chanels": (4,)}), r"Problem\.model_kwargs: 'chanels' is not an "
                                                          r"argument of 'cnn1d'; valid: channels, kernel"),
    (dict(model="cnn1d", model_kwargs={"activation": "tanh"}), r"Problem\.model_kwargs: 'activation' is a "
                                                               r"field of Problem; set Problem\.activation"),
    (dict(model="cnn1d", model_kwargs={"channels": (4, 0)}), r"Problem\.model_kwargs: 'cnn1d': channels: "),
    (dict(model="cnn1d", model_kwargs={"channels": {4}}), r"Problem\.model_kwargs: expected a dict of"),
    (dict(model="mlp", model_kwargs={"hidden": (3,)}), r"Problem\.model_kwargs: 'hidden' is a field"),
    (dict(model=3), r"Problem\.model: expected a name, 'module:attr' or a callable, got 3"),
    (dict(dataset="mnist1d", n_train=100), r"Problem\.n_train / Problem\.noise: only generated data sets"),
    (dict(dataset="mnist1d", loss="mse"), r"Problem\.loss: 'mse' does not fit data set 'mnist1d'"),
    (dict(data_seed=1.5), r"Problem\.data_seed: expected an integer or None, got 1\.5"),
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


# ----------------------------------------------------------------------------- MNIST-1D


def test_mnist1d_is_the_published_data_set_unless_data_seed_is_given():
    published = load_data(Problem("mnist1d"))
    np.testing.assert_array_equal(published.x_train, mnist1d.mnist1d().x_train)  # seed 42
    assert Problem("mnist1d").seed == 42 and Problem().seed == 0
    assert published.x_train.shape == (4000, 40) and published.x_test.shape == (1000, 40)
    assert (input_shape(Problem("mnist1d")), n_outputs(Problem("mnist1d"))) == ((40,), 10)
    assert load_data(Problem("mnist1d", data_seed=42)).x_train is not None
    np.testing.assert_array_equal(load_data(Problem("mnist1d", data_seed=42)).y_train, published.y_train)


# ----------------------------------------------------------------------------- models


def test_built_in_models_take_the_problems_fields_and_their_own_kwargs():
    key = jax.random.key(3)
    mlp = init_params(Problem(hidden=(5,), init="xavier_uniform"), key)
    for got, want in zip(jax.tree.leaves(mlp), jax.tree.leaves(init_mlp(key, (64, 5, 10), "xavier_uniform")),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    problem = Problem("mnist1d", model="cnn1d", init="he_uniform",
                      model_kwargs={"channels": [6, 7], "kernel": 3})
    assert problem.model_kwargs == (("channels", (6, 7)), ("kernel", 3))  # hashable, sorted
    assert problem.to_dict()["model_kwargs"] == {"channels": [6, 7], "kernel": 3}
    assert Problem.from_dict(problem.to_dict()) == problem
    cnn = init_params(problem, key)
    reference = init_cnn(key, (3,), (1, 6, 7), 10, "he_uniform")
    for got, want in zip(jax.tree.leaves(cnn), jax.tree.leaves(reference), strict=True):
        np.testing.assert_array_equal(got, want)
    assert predict(problem, cnn, load_data(problem).x_test[:3]).shape == (3, 10)
    assert Problem(model=lab.models.cnn1d_model) == Problem(model="cnn1d")  # a built-in passed as itself
    digits = Problem(model="cnn2d", model_kwargs={"channels": (4,)})  # the 8x8 digits as images
    assert init_params(digits, key)["conv"][0]["w"].shape == (3, 3, 1, 4)


def test_a_users_model_from_a_module_trains_with_its_kwargs_and_the_files_identity(user_model):
    problem = Problem("moons", model="lab_test_user_model:two_layer", model_kwargs={"width": 3, "scale": 0.5})
    with open(user_model.__file__, "rb") as f:
        assert problem.identity[0] == hashlib.sha256(f.read()).hexdigest()
    params = init_params(problem, jax.random.key(0))
    init, apply = user_model.two_layer(width=3, scale=0.5)
    want = init(jax.random.key(0), (2,), 2)
    np.testing.assert_array_equal(params["hidden"]["w"], want["hidden"]["w"])
    x = load_data(problem).x_test
    np.testing.assert_array_equal(predict(problem, params, x), apply(want, x))
    # The factory itself, from Python: the same model, identified by its module's file.
    direct = Problem("moons", model=user_model.two_layer, model_kwargs={"width": 3, "scale": 0.5})
    assert direct == problem and direct.model == "lab_test_user_model:two_layer"


def test_editing_a_users_model_changes_its_identity_once_reloaded(user_model, tmp_path):
    before = Problem("moons", model="lab_test_user_model:two_layer").identity
    (tmp_path / "lab_test_user_model.py").write_text(textwrap.dedent(USER_MODEL).replace("tanh", "sin"))
    # Not reloaded: the code that runs is the old one, and so is its identity.
    assert Problem("moons", model="lab_test_user_model:two_layer").identity == before
    importlib.reload(user_model)
    after = Problem("moons", model="lab_test_user_model:two_layer")
    assert after.identity != before and after.identity[1] == before[1]  # the data's is unchanged
    assert Problem("moons", model="lab_test_user_model:two_layer") == after


def test_a_model_defined_in_a_function_is_identified_by_its_own_source():
    def make(width=2):
        def init(key, shape, n_out):
            return {"w": jnp.zeros((shape[0], n_out))}

        return init, lambda p, x: x @ p["w"]

    def make_other(width=2):
        def init(key, shape, n_out):
            return {"w": jnp.ones((shape[0], n_out))}

        return init, lambda p, x: x @ p["w"]

    a, b = Problem("moons", model=make), Problem("moons", model=make_other)
    assert a.model == "test_problems:test_a_model_defined_in_a_function_is_identified_by_its_own_source" \
                      ".<locals>.make"
    assert a.identity[0] == specs.function_digest(make) != b.identity[0]
    assert float(jnp.sum(init_params(a, jax.random.key(0))["w"])) == 0.0


@pytest.mark.parametrize(("spec", "kwargs", "message"), [
    ("wrong_outputs", {}, r"Problem\.model: the apply of 'lab_test_user_model:wrong_outputs' gives \(2, 3\) "
                          r"for 2 examples; expected \(2, 2\)"),
    ("no_weights", {}, r"Problem\.model: the params of .*no_weights' have no weights "
                       r"\(leaves of rank >= 2\)"),
    ("int_params", {}, r"Problem\.model: the init of .*int_params' must return a pytree of float arrays"),
    ("raises", {"width": 2}, r"Problem\.model: lab_test_user_model:raises\(\*\*\{'width': 2\}\) raised "
                             r"RuntimeError: no GPU here"),
    ("not_a_model", {}, r"Problem\.model: 'lab_test_user_model:not_a_model' returned int, not a Model"),
    ("two_layer", {"depth": 2}, r"Problem\.model_kwargs: 'depth' is not an argument of .*two_layer'; "
                                r"valid: width, scale"),
    ("crashes_in_apply", {}, r"Problem\.model: .*crashes_in_apply' failed on inputs of shape \(2,\) with 2 "
                             r"outputs: KeyError"),
    ("NOT_CALLABLE", {}, r"Problem\.model: 'lab_test_user_model:NOT_CALLABLE' is a int, not a factory"),
    ("missing", {}, r"Problem\.model: 'lab_test_user_model' has no attribute 'missing'"),
])
def test_a_bad_user_model_gets_one_line_naming_the_field(user_model, spec, kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        check_model(Problem("moons", model=f"lab_test_user_model:{spec}", model_kwargs=kwargs))
    assert "\n" not in str(info.value)


def test_a_problem_read_back_with_its_identity_imports_nothing_until_trained():
    saved = {"model": "lab_test_never_written:make", "dataset": "npz:/no/such/file.npz", "loss": "mse"}
    sources = {"model": "ab" * 32, "data": "cd" * 32}
    problem = Problem.from_dict({**Problem().to_dict(), **saved}, sources=sources)
    assert problem.identity == ("ab" * 32, "cd" * 32) and "lab_test_never_written" not in sys.modules
    with pytest.raises(ValueError, match=r"Problem\.dataset: 'npz:/no/such/file\.npz': not a file"):
        load_data(problem)


# ----------------------------------------------------------------------------- your own data


def _save(path, regression=False, n=40):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n + 10, 3)).astype(np.float32)
    y = x @ rng.normal(size=(3, 2)) if regression else (x[:, 0] > 0).astype(np.int64) + 2 * (x[:, 1] > 1)
    np.savez(path, x_train=x[:n], y_train=y[:n], x_test=x[n:], y_test=y[n:])
    return x, y


def test_an_npz_data_set_is_trained_as_given_and_identified_by_its_content(tmp_path):
    path = tmp_path / "mine.npz"
    x, y = _save(path)
    problem = Problem(f"npz:{path}", hidden=(4,))
    assert problem.identity[1] == hashlib.sha256(path.read_bytes()).hexdigest()
    data = load_data(problem)
    np.testing.assert_array_equal(data.x_train, x[:40])
    np.testing.assert_array_equal(data.y_test, y[40:])
    assert n_outputs(problem) == int(y.max()) + 1 == 4 and problem.is_classification
    split = load_data(Problem(f"npz:{path}", validation=True))  # the validation split works on it too
    assert split.x_train.shape[0] + split.x_test.shape[0] == 40
    not_loaded_yet = Problem(f"npz:{path}", hidden=(3,))

    _save(path, regression=True)  # the file changes: a new problem has another identity ...
    with pytest.raises(ValueError, match=r"Problem\.loss: 'cross_entropy' does not fit data set 'npz:.*' "
                                         r"\(regression targets\); valid: mse"):
        Problem(f"npz:{path}")
    other = Problem(f"npz:{path}", loss="mse")
    assert other.identity[1] != problem.identity[1] and n_outputs(other) == 2
    np.testing.assert_allclose(load_data(other).y_train.shape, (40, 2))
    # ... and an old one refuses to train on data that are no longer its own.
    with pytest.raises(ValueError, match=r"Problem\.dataset: 'npz:.*' changed since this problem was made"):
        load_data(not_loaded_yet)


def test_a_bad_npz_file_is_refused_when_the_problem_is_made(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, x_train=np.zeros((3, 2)), y_train=np.zeros(2, int), x_test=np.zeros((1, 2)),
             y_test=np.zeros(1, int))
    with pytest.raises(ValueError) as info:
        Problem(f"npz:{path}")
    assert str(info.value) == f"Problem.dataset: 'npz:{path}': y_train: 2 rows, x_train has 3"
    with pytest.raises(ValueError, match=r"Problem\.dataset: 'npz:nowhere\.npz': not a file"):
        Problem("npz:nowhere.npz")
    with pytest.raises(ValueError, match=r"Problem\.n_train / Problem\.noise: only generated"):
        _save(path)
        Problem(f"npz:{path}", n_train=10)


def test_a_data_set_from_a_function_of_the_seed_is_checked_identified_and_trained(monkeypatch, tmp_path):
    source = textwrap.dedent("""
        import numpy as np
        from lab.data import Dataset

        def blobs(seed):
            rng = np.random.default_rng(seed)
            x = rng.normal(size=(40, 3))
            return Dataset(x, (x[:, 0] > 0).astype(np.int64), x[:10] + 1, (x[:10, 0] > -1).astype(np.int64))

        def nan_targets(seed):
            return Dataset(np.zeros((4, 2)), np.full((4, 1), np.nan), np.zeros((2, 2)), np.zeros((2, 1)))

        def three(seed):
            return np.zeros((4, 2)), np.zeros(4, int), np.zeros((2, 2))
    """)
    (tmp_path / "lab_test_user_data.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    problem = Problem("lab_test_user_data:blobs", hidden=(4,), data_seed=3)
    module_hash = hashlib.sha256(source.encode()).hexdigest()
    assert problem.sources()["data"] == module_hash
    data = load_data(problem)
    expected = np.random.default_rng(3).normal(size=(40, 3))
    np.testing.assert_array_equal(np.asarray(data.x_train), expected.astype(np.float32))
    assert data.y_train.dtype == jnp.int32 and n_outputs(problem) == 2 and input_shape(problem) == (3,)
    held = load_data(dataclasses.replace(problem, validation=True))
    assert held.x_train.shape[0] + held.x_test.shape[0] == 40  # the validation split works on it too
    back = Problem.from_dict(problem.to_dict(), sources=problem.sources())
    assert back == problem and load_data(back).x_train.shape == (40, 3)
    for spec, message in [("lab_test_user_data:nan_targets", r"nan_targets\(0\) gave x float64\(4, 2\), "
                                                                r"y float64\(4, 1\); expected finite"),
                          ("lab_test_user_data:three", r"three\(0\) raised ValueError: not enough values"),
                          ("lab_test_user_data:missing", r"'lab_test_user_data' has no attribute 'missing'"),
                          ("no_such_set", r"unknown data set 'no_such_set'.*'module:function' for your own")]:
        with pytest.raises(ValueError, match=r"Problem\.dataset: .*" + message):
            Problem(spec, loss="mse")
    with pytest.raises(ValueError, match=r"Problem\.loss: 'mse' does not fit .*blobs' \(class labels\)"):
        Problem("lab_test_user_data:blobs", loss="mse")
