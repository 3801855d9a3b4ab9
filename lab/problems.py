"""Problems: a data set, a model and a loss, built from one frozen, hashable config.

A :class:`Problem` decides shapes (data size, model), so it is static; what a sweep varies
(optimizer hyperparameters, L1/L2 strengths, seeds) is not part of it. The data set depends only on
``data_seed``, never on a run's seed, so every run of a sweep sees the same data.

Models are built in (``mlp``, ``linear``, ``cnn1d``, ``cnn2d``) or ``"module:factory"``; data sets built
in, ``"npz:PATH"`` or ``"module:function"``. Each has an identity (:mod:`lab.specs`), part of equality.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import lab.data
import lab.mnist1d
from lab import specs
from lab.activations import ACTIVATIONS
from lab.data import (
    Dataset,
    as_dataset,
    circles,
    digits,
    linear_regression_task,
    read_npz,
    two_moons,
    validation_split,
)
from lab.initializers import get_initializer
from lab.losses import accuracy, get_loss
from lab.models import MODELS, Model
from lab.regularizers import weights

Array = jax.Array

DATASETS = ("digits", "moons", "circles", "linreg", "mnist1d")  # and "npz:PATH", "module:function"
CLASSIFICATION_LOSSES = ("cross_entropy", "mse_classification")
_CLASSES = {"digits": 10, "moons": 2, "circles": 2, "mnist1d": 10}
_SPREAD_KWARG = {"normal": "std", "uniform": "scale"}  # the initializers that take init_std
_GENERATED_DEFAULTS = {"moons": (200, 0.2), "circles": (200, 0.1), "linreg": (200, 0.1)}  # n_train, noise
_DEFAULT_SEEDS = {"mnist1d": lab.mnist1d.DEFAULT_SEED}  # others: 0
# The Problem fields a built-in model takes (the others must keep their defaults); its other
# arguments come from model_kwargs.
_MODEL_FIELDS = {"mlp": ("hidden", "activation", "init"), "linear": ("init",),
                 "cnn1d": ("activation", "init"), "cnn2d": ("activation", "init")}
_FIELD_DEFAULTS = {"hidden": (128,), "activation": "relu", "init": "he_normal", "init_std": None}


@dataclass(frozen=True)
class Problem:
    """What is trained: data set, model and loss. Validates itself (``ValueError`` naming the field).

    Attributes:
        dataset: ``"digits"`` (8x8 images, 10 classes), ``"moons"``, ``"circles"`` (2D, 2 classes),
            ``"linreg"`` (5 features, 1 target), ``"mnist1d"`` (signals of length 40, 10 classes),
            ``"npz:PATH"`` (see :func:`lab.data.read_npz`) or ``"module:function"`` (or the function):
            ``function(data seed)`` returns a :class:`lab.data.Dataset` of arrays as an npz holds.
        hidden: hidden-layer widths of the ``mlp``; ``()`` is a linear / softmax-regression model.
        activation: a name in :data:`lab.activations.ACTIVATIONS` (``mlp``, ``cnn1d``, ``cnn2d``).
        init: a weight initializer name (see :mod:`lab.initializers`); biases start at zero.
        loss: ``"cross_entropy"`` or ``"mse_classification"`` for class labels, ``"mse"`` for
            regression targets (``linreg``, or an npz file with float targets).
        data_seed: the data set (split, generated points) depends on this seed only; ``None`` is the
            data set's default (0; 42 for MNIST-1D, the published data set).
        n_train: training-set size of a generated data set (default 200; the test set is 200).
        noise: noise of a generated data set (default 0.2 moons, 0.1 circles, 0.1 linreg).
        init_std: the spread of the ``normal`` (its std, default 0.01) or ``uniform`` (its half-width,
            default 0.05) initializer; the other initializers derive theirs from the fan-in/out.
        validation: hold out a stratified :data:`lab.data.VALIDATION_FRACTION` of the training set and use it
            as the evaluation set: a sweep's ``test_*`` metrics are then *validation* metrics, and
            the test set is never seen. For choosing hyperparameters; rerun the choice without it.
        model: ``"mlp"``, ``"linear"``, ``"cnn1d"``, ``"cnn2d"`` (see :data:`lab.models.MODELS`),
            ``"module:factory"`` or, from Python, the factory itself: ``factory(**model_kwargs)``
            returns a :class:`lab.models.Model`.
        model_kwargs: the model's other arguments (``{"channels": (32, 32)}``); a dict is accepted.
        identity: the SHA-256 of the model's and of the data set's source (:mod:`lab.specs`), filled
            in, not given.
    """

    dataset: str = "digits"
    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    init: str = "he_normal"
    loss: str = "cross_entropy"
    data_seed: int | None = None
    n_train: int | None = None
    noise: float | None = None
    init_std: float | None = None
    validation: bool = False
    model: str = "mlp"
    model_kwargs: tuple[tuple[str, Any], ...] = ()
    identity: tuple[str, str] = field(init=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        if not all(isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in self.hidden):
            raise ValueError(f"Problem.hidden: expected positive integer widths, got {self.hidden}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"Problem.activation: unknown {self.activation!r}; "
                             f"valid: {', '.join(ACTIVATIONS)}")
        try:
            get_initializer(self.init)
        except ValueError as err:
            raise ValueError(f"Problem.init: {err}") from None
        if self.init_std is not None:
            if self.init not in _SPREAD_KWARG:
                raise ValueError(f"Problem.init_std: only the {' and '.join(_SPREAD_KWARG)} initializers "
                                 f"take a spread, not {self.init!r}")
            if not isinstance(self.init_std, int | float) or not 0 < self.init_std < float("inf"):
                raise ValueError(f"Problem.init_std: expected a positive number, got {self.init_std!r}")
            object.__setattr__(self, "init_std", float(self.init_std))
        if not isinstance(self.validation, bool):
            raise ValueError(f"Problem.validation: expected True or False, got {self.validation!r}")
        seed = self.data_seed
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"Problem.data_seed: expected an integer or None, got {self.data_seed!r}")
        object.__setattr__(self, "dataset", _dataset_spec(self.dataset))
        self._check_data_fields()
        kwargs = specs.normalize_kwargs(self.model_kwargs, "Problem.model_kwargs")
        object.__setattr__(self, "model_kwargs", kwargs)
        object.__setattr__(self, "model", _model_spec(self.model))
        self._check_model_fields()
        object.__setattr__(self, "identity", (self.model.source, self.dataset.source))
        if self.model.resolved:
            build_model(self)  # the factory's own checks of its arguments, now

    def _check_data_fields(self):
        generated = self.dataset in _GENERATED_DEFAULTS
        if not generated and (self.n_train is not None or self.noise is not None):
            raise ValueError(f"Problem.n_train / Problem.noise: only generated data sets "
                             f"({', '.join(_GENERATED_DEFAULTS)}) take them, not {str(self.dataset)!r}")
        if self.n_train is not None and (not isinstance(self.n_train, int) or self.n_train < 1):
            raise ValueError(f"Problem.n_train: expected a positive integer or None, got {self.n_train!r}")
        if self.noise is not None:
            if not isinstance(self.noise, int | float) or not self.noise >= 0:
                raise ValueError(f"Problem.noise: expected a non-negative number or None, got {self.noise!r}")
            object.__setattr__(self, "noise", float(self.noise))
        regression = _regression(self.dataset, self.seed)
        if regression is not None:  # None: a data set read back from saved results, not opened
            valid_losses = ("mse",) if regression else CLASSIFICATION_LOSSES
            if self.loss not in valid_losses:
                kind = "regression targets" if regression else "class labels"
                raise ValueError(f"Problem.loss: {self.loss!r} does not fit data set {str(self.dataset)!r} "
                                 f"({kind}); valid: {', '.join(valid_losses)}")
        elif self.loss not in (*CLASSIFICATION_LOSSES, "mse"):
            raise ValueError(f"Problem.loss: unknown {self.loss!r}")

    def _check_model_fields(self):
        taken = _MODEL_FIELDS.get(self.model, ())
        for name, default in _FIELD_DEFAULTS.items():
            given = getattr(self, name)
            if given != default and name not in taken and not (name == "init_std" and "init" in taken):
                raise ValueError(f"Problem.{name}: the {str(self.model)!r} model does not take it "
                                 f"(its arguments go in model_kwargs)")
        for name, _ in self.model_kwargs:
            if name in _FIELD_DEFAULTS:
                raise ValueError(f"Problem.model_kwargs: {name!r} is a field of Problem; set Problem.{name}")

    @property
    def is_classification(self) -> bool:
        return self.loss in CLASSIFICATION_LOSSES

    @property
    def seed(self) -> int:
        """The data seed in effect: ``data_seed``, or the data set's default."""
        return self.data_seed if self.data_seed is not None else _DEFAULT_SEEDS.get(self.dataset, 0)

    def sources(self) -> dict[str, str]:
        """The identity as saved with results: ``{"model": sha256, "data": sha256}``."""
        return {"model": self.model.source, "data": self.dataset.source}

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        return {**d, "dataset": str(self.dataset), "model": str(self.model), "hidden": list(self.hidden),
                "model_kwargs": specs.kwargs_dict(self.model_kwargs)}

    @classmethod
    def from_dict(cls, d: dict, sources: dict[str, str] | None = None) -> Problem:
        """The inverse of :meth:`to_dict`. With ``sources`` (the identity saved with results), the
        model is not imported and no data file is opened until the problem is trained."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls) if f.init}
        if unknown:
            raise ValueError(f"Problem: unknown field(s) {', '.join(sorted(unknown))}")
        d = {**d, "hidden": tuple(d.get("hidden", (128,)))}
        if sources is not None:
            d["dataset"] = specs.saved(d.get("dataset", "digits"), sources["data"])
            d["model"] = specs.saved(d.get("model", "mlp"), sources["model"])
        return cls(**d)


# ----------------------------------------------------------------------------- specs


def _dataset_spec(dataset) -> specs.Spec:
    if isinstance(dataset, specs.Spec):
        return dataset
    if callable(dataset):
        return specs.from_callable(dataset, "Problem.dataset")
    if not isinstance(dataset, str) or (dataset not in DATASETS and ":" not in dataset):
        raise ValueError(f"Problem.dataset: unknown data set {dataset!r}; valid: {', '.join(DATASETS)}, "
                         f"or 'npz:PATH' or 'module:function' for your own")
    if dataset.startswith("npz:"):
        return specs.Spec(dataset, *_read_npz(dataset))
    if dataset not in DATASETS:  # a function of the seed that returns the data set
        return specs.from_string(dataset, "Problem.dataset", {}, "data set")
    module = lab.mnist1d if dataset == "mnist1d" else lab.data
    return specs.Spec(dataset, specs.module_digest(module), dataset)


def _regression(dataset: specs.Spec, seed: int) -> bool | None:
    """Whether the data set holds regression targets; None if unknown (read back, not opened)."""
    if dataset in DATASETS:
        return dataset == "linreg"
    if not dataset.resolved:
        return None
    npz = dataset.startswith("npz:")
    data = dataset.resolve("Problem.dataset") if npz else _function_data(dataset, seed, dataset.source)
    return bool(data.y_train.ndim == 2)


def _read_npz(name: str) -> tuple[str, Dataset]:
    try:
        return read_npz(name[4:])
    except ValueError as err:
        raise ValueError(f"Problem.dataset: {str(name)!r}: {err}") from None


@functools.lru_cache(maxsize=4)
def _function_data(spec: specs.Spec, seed: int, source: str) -> Dataset:
    """A ``"module:function"`` data set: ``function(seed)``, checked and cast as an npz file is."""
    del source  # part of the cache key only: a spec compares as its string
    where, function = f"Problem.dataset: {str(spec)}({seed})", spec.resolve("Problem.dataset")
    try:
        x_tr, y_tr, x_te, y_te = (np.asarray(a) for a in function(seed))
    except Exception as err:  # noqa: BLE001 - the user's function failed, or gave no four arrays
        raise ValueError(f"{where} raised {type(err).__name__}: {' '.join(str(err).split())} "
                         f"(expected a lab.data.Dataset)") from None
    return as_dataset(where, x_tr, y_tr, x_te, y_te)


def _model_spec(model) -> specs.Spec:
    if isinstance(model, specs.Spec):
        return model
    if isinstance(model, str):
        return specs.from_string(model, "Problem.model", MODELS)
    return specs.from_callable(model, "Problem.model", MODELS)


@functools.lru_cache(maxsize=32)
def build_model(problem: Problem) -> Model:
    """The problem's :class:`lab.models.Model` (cached per problem; the model's factory is imported
    if the problem was read back from saved results, and refused if its source changed)."""
    factory = problem.model.resolve("Problem.model", MODELS)
    if not callable(factory):
        raise ValueError(f"Problem.model: {str(problem.model)!r} is a {type(factory).__name__}, "
                         f"not a factory of models")
    kwargs = dict(problem.model_kwargs)
    if problem.model in _MODEL_FIELDS:  # a built-in: it takes some of the Problem's fields
        spread = {} if problem.init_std is None else {_SPREAD_KWARG[problem.init]: problem.init_std}
        given = {"hidden": problem.hidden, "activation": problem.activation,
                 "init": get_initializer(problem.init, **spread)}
        kwargs.update({k: given[k] for k in _MODEL_FIELDS[problem.model]})
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        params = None
    if params is not None and not any(p.kind is p.VAR_KEYWORD for p in params.values()):
        for k, _ in problem.model_kwargs:
            if k not in params:
                raise ValueError(f"Problem.model_kwargs: {k!r} is not an argument of {str(problem.model)!r}; "
                                 f"valid: {', '.join(p for p in params if p not in _FIELD_DEFAULTS)}")
    try:
        model = factory(**kwargs)
    except ValueError as err:  # the built-ins' own checks name their argument
        raise ValueError(f"Problem.model_kwargs: {str(problem.model)!r}: {err}") from None
    except Exception as err:  # noqa: BLE001 - the user's factory failed
        raise ValueError(f"Problem.model: {str(problem.model)}(**{dict(problem.model_kwargs)}) raised "
                         f"{type(err).__name__}: {' '.join(str(err).split())}") from None
    if not (isinstance(model, tuple) and len(model) == 2 and all(map(callable, model))):
        raise ValueError(f"Problem.model: {str(problem.model)!r} returned {type(model).__name__}, not a "
                         f"Model (a pair of functions init(key, input_shape, n_out), apply(params, x))")
    return Model(*model)


# ----------------------------------------------------------------------------- data


@functools.lru_cache(maxsize=16)
def load_data(problem: Problem) -> Dataset:
    """The problem's train/evaluation split (cached per problem); depends on ``data_seed`` only. The
    evaluation set is the test set, or with ``problem.validation`` held-out training data."""
    data = _load_train_test(problem)
    return validation_split(data, problem.seed) if problem.validation else data


@functools.lru_cache(maxsize=16)
def _load_train_test(problem: Problem) -> Dataset:
    """The train/test data of ``problem`` (its ``validation`` aside)."""
    key = jax.random.key(problem.seed)
    name = problem.dataset
    if name.startswith("npz:"):
        digest, data = _read_npz(name)
        if digest != name.source:
            raise ValueError(f"Problem.dataset: {str(name)!r} changed since this problem was made "
                             f"(identity {name.source[:12]}, now {digest[:12]}); make the problem again")
        return Dataset(*(jnp.asarray(a) for a in data))
    if name not in DATASETS:
        return _function_data(name, problem.seed, name.source)
    if name == "digits":
        return digits(key)
    if name == "mnist1d":
        return lab.mnist1d.mnist1d(problem.seed)
    n_default, noise_default = _GENERATED_DEFAULTS[name]
    n = n_default if problem.n_train is None else problem.n_train
    noise = noise_default if problem.noise is None else problem.noise
    if name == "moons":
        return two_moons(key, n_train=n, noise=noise)
    if name == "circles":
        return circles(key, n_train=n, noise=noise)
    return linear_regression_task(key, n_train=n, noise=noise)[0]


@functools.lru_cache(maxsize=32)
def n_outputs(problem: Problem) -> int:
    """The model's output size: the number of classes, or of regression targets."""
    if problem.dataset in _CLASSES:
        return _CLASSES[problem.dataset]
    data = _load_train_test(problem)
    if not problem.is_classification:
        return int(data.y_train.shape[1])
    return int(max(np.max(np.asarray(data.y_train)), np.max(np.asarray(data.y_test)))) + 1


def input_shape(problem: Problem) -> tuple[int, ...]:
    """One example's shape, e.g. ``(64,)`` for the digits, ``(40,)`` for MNIST-1D."""
    return tuple(load_data(problem).x_train.shape[1:])


@functools.lru_cache(maxsize=32)
def check_model(problem: Problem) -> None:
    """Check the model against its data without running it (``jax.eval_shape``): float params with
    at least one weight, and outputs (batch, n_out). ``ValueError`` naming ``Problem.model``."""
    model, name = build_model(problem), str(problem.model)
    shape, n_out = input_shape(problem), n_outputs(problem)
    try:
        params = jax.eval_shape(lambda key: model.init(key, shape, n_out), jax.random.key(0))
        x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
        out = jax.eval_shape(model.apply, params, x)
    except Exception as err:  # noqa: BLE001 - the model's own failure, in one line
        raise ValueError(f"Problem.model: {name!r} failed on inputs of shape {shape} with {n_out} outputs: "
                         f"{type(err).__name__}: {' '.join(str(err).split())[:300]}") from None
    leaves = jax.tree.leaves(params)
    if not leaves or not all(jnp.issubdtype(p.dtype, jnp.floating) for p in leaves):
        raise ValueError(f"Problem.model: the init of {name!r} must return a pytree of float arrays, "
                         f"got {params}")
    if not weights(params):
        raise ValueError(f"Problem.model: the params of {name!r} have no weights (leaves of rank >= 2), "
                         f"which the L1/L2 penalties and the weight statistics read")
    if not hasattr(out, "shape") or out.shape != (2, n_out):
        got = getattr(out, "shape", type(out).__name__)
        raise ValueError(f"Problem.model: the apply of {name!r} gives {got} for 2 examples; "
                         f"expected (2, {n_out})")


def init_params(problem: Problem, key: Array) -> Any:
    """Fresh params for the problem's model (for the ``mlp``, a list of ``{"w", "b"}`` layers)."""
    check_model(problem)
    return build_model(problem).init(key, input_shape(problem), n_outputs(problem))


def predict(problem: Problem, params, x: Array) -> Array:
    """(batch, *input_shape) -> (batch, n_out) outputs (logits for classification)."""
    return build_model(problem).apply(params, x)


def data_loss(problem: Problem, params, x: Array, y: Array) -> Array:
    """The problem's loss (without penalties) on a batch."""
    return get_loss(problem.loss)(predict(problem, params, x), y)


def metrics(problem: Problem, params, x: Array, y: Array) -> tuple[Array, Array]:
    """``(loss, accuracy)`` on a data set; accuracy is NaN for regression."""
    out = predict(problem, params, x)
    loss = get_loss(problem.loss)(out, y)
    if problem.is_classification:  # labels in argmax's index dtype, which is int64 under jax.enable_x64
        acc = accuracy(out, y.astype(jax.dtypes.canonicalize_dtype(jnp.int64)))
    else:
        acc = jnp.full((), jnp.nan, out.dtype)
    return loss, acc
