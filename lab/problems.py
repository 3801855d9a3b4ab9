"""Problems: a data set, a model and a loss, built from one frozen, hashable config.

A :class:`Problem` decides shapes (data size, layer widths), so it is static; what a sweep varies
(optimizer hyperparameters, L1/L2 strengths, seeds) is not part of it. The data set depends only on
``data_seed``, never on a run's seed, so every run of a sweep sees the same data.

Every model is an MLP in :mod:`lab.models`' list-of-layers form; ``hidden=()`` is a single affine
layer, i.e. linear regression (``loss="mse"``) or softmax regression (a classification loss).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from lab.activations import ACTIVATIONS
from lab.data import Dataset, circles, digits, linear_regression_task, two_moons
from lab.initializers import get_initializer
from lab.losses import accuracy, get_loss
from lab.models import MLPParams, init_mlp, mlp

Array = jax.Array

DATASETS = ("digits", "moons", "circles", "linreg")
CLASSIFICATION_LOSSES = ("cross_entropy", "mse_classification")
_CLASSES = {"digits": 10, "moons": 2, "circles": 2}
_SPREAD_KWARG = {"normal": "std", "uniform": "scale"}  # the initializers that take init_std
VALIDATION_FRACTION = 0.2
_GENERATED_DEFAULTS = {"moons": (200, 0.2), "circles": (200, 0.1), "linreg": (200, 0.1)}  # n_train, noise


@dataclass(frozen=True)
class Problem:
    """What is trained: data set, model and loss. Validates itself (``ValueError`` naming the field).

    Attributes:
        dataset: ``"digits"`` (8x8 images, 10 classes), ``"moons"``, ``"circles"`` (2D, 2 classes)
            or ``"linreg"`` (5 features, 1 target).
        hidden: hidden-layer widths; ``()`` is a linear / softmax-regression model.
        activation: a name in :data:`lab.activations.ACTIVATIONS`.
        init: a weight initializer name (see :mod:`lab.initializers`); biases start at zero.
        loss: ``"cross_entropy"`` or ``"mse_classification"`` for classification, ``"mse"`` for
            ``linreg``.
        data_seed: the data set (split, generated points) depends on this seed only.
        n_train: training-set size of a generated data set (default 200; the test set is 200).
        noise: noise of a generated data set (default 0.2 moons, 0.1 circles, 0.1 linreg).
        init_std: the spread of the ``normal`` (its std, default 0.01) or ``uniform`` (its half-width,
            default 0.05) initializer; the other initializers derive theirs from the fan-in/out.
        validation: hold out a stratified :data:`VALIDATION_FRACTION` of the training set and use it
            as the evaluation set: a sweep's ``test_*`` metrics are then *validation* metrics, and
            the test set is never seen. For choosing hyperparameters; rerun the choice without it.
    """

    dataset: str = "digits"
    hidden: tuple[int, ...] = (128,)
    activation: str = "relu"
    init: str = "he_normal"
    loss: str = "cross_entropy"
    data_seed: int = 0
    n_train: int | None = None
    noise: float | None = None
    init_std: float | None = None
    validation: bool = False

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"Problem.dataset: unknown data set {self.dataset!r}; "
                             f"valid: {', '.join(DATASETS)}")
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
        valid_losses = ("mse",) if self.dataset == "linreg" else CLASSIFICATION_LOSSES
        if self.loss not in valid_losses:
            raise ValueError(f"Problem.loss: {self.loss!r} does not fit data set {self.dataset!r}; "
                             f"valid: {', '.join(valid_losses)}")
        if not isinstance(self.data_seed, int) or isinstance(self.data_seed, bool):
            raise ValueError(f"Problem.data_seed: expected an integer, got {self.data_seed!r}")
        if self.dataset == "digits" and (self.n_train is not None or self.noise is not None):
            raise ValueError("Problem.n_train / Problem.noise: only generated data sets take them, "
                             "not digits")
        if self.n_train is not None and (not isinstance(self.n_train, int) or self.n_train < 1):
            raise ValueError(f"Problem.n_train: expected a positive integer or None, got {self.n_train!r}")
        if self.noise is not None:
            if not isinstance(self.noise, int | float) or not self.noise >= 0:
                raise ValueError(f"Problem.noise: expected a non-negative number or None, got {self.noise!r}")
            object.__setattr__(self, "noise", float(self.noise))

    @property
    def is_classification(self) -> bool:
        return self.dataset != "linreg"

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, d: dict) -> Problem:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Problem: unknown field(s) {', '.join(sorted(unknown))}")
        return cls(**{**d, "hidden": tuple(d.get("hidden", (128,)))})


@functools.lru_cache(maxsize=16)
def load_data(problem: Problem) -> Dataset:
    """The problem's train/evaluation split (cached per problem); depends on ``data_seed`` only.

    With ``problem.validation`` the evaluation set is the held-out part of the training set (see
    :func:`validation_split`), otherwise the test set.
    """
    data = _load_train_test(dataclasses.replace(problem, validation=False))
    return validation_split(data, problem.data_seed) if problem.validation else data


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


def _load_train_test(problem: Problem) -> Dataset:
    key = jax.random.key(problem.data_seed)
    if problem.dataset == "digits":
        return digits(key)
    n_default, noise_default = _GENERATED_DEFAULTS[problem.dataset]
    n = n_default if problem.n_train is None else problem.n_train
    noise = noise_default if problem.noise is None else problem.noise
    if problem.dataset == "moons":
        return two_moons(key, n_train=n, noise=noise)
    if problem.dataset == "circles":
        return circles(key, n_train=n, noise=noise)
    return linear_regression_task(key, n_train=n, noise=noise)[0]


def layer_sizes(problem: Problem) -> tuple[int, ...]:
    """``(d_in, *hidden, d_out)``."""
    data = load_data(problem)
    d_out = _CLASSES.get(problem.dataset) or data.y_train.shape[1]
    return (data.x_train.shape[1], *problem.hidden, d_out)


def init_params(problem: Problem, key: Array) -> MLPParams:
    """Fresh params for the problem's model (a list of ``{"w", "b"}`` layers)."""
    spread = {} if problem.init_std is None else {_SPREAD_KWARG[problem.init]: problem.init_std}
    return init_mlp(key, layer_sizes(problem), init=get_initializer(problem.init, **spread))


def predict(problem: Problem, params: MLPParams, x: Array) -> Array:
    """(batch, d_in) -> (batch, d_out) outputs (logits for classification)."""
    return mlp(params, x, problem.activation)


def data_loss(problem: Problem, params: MLPParams, x: Array, y: Array) -> Array:
    """The problem's loss (without penalties) on a batch."""
    return get_loss(problem.loss)(predict(problem, params, x), y)


def metrics(problem: Problem, params: MLPParams, x: Array, y: Array) -> tuple[Array, Array]:
    """``(loss, accuracy)`` on a data set; accuracy is NaN for regression."""
    out = predict(problem, params, x)
    loss = get_loss(problem.loss)(out, y)
    if problem.is_classification:  # labels in argmax's index dtype, which is int64 under jax.enable_x64
        acc = accuracy(out, y.astype(jax.dtypes.canonicalize_dtype(jnp.int64)))
    else:
        acc = jnp.full((), jnp.nan, out.dtype)
    return loss, acc
