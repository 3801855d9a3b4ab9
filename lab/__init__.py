"""optimizer-lab: see, measure and trust how training by backpropagation depends on the optimizer.

The library is a flat set of modules, each with one job:

- :mod:`lab.activations`, :mod:`lab.initializers`, :mod:`lab.models`, :mod:`lab.losses`,
  :mod:`lab.regularizers`: the numerics, as pure functions over plain pytrees;
- :mod:`lab.backprop`: the MLP's gradient by the chain rule, written by hand;
- :mod:`lab.data`: embedded and generated data sets, and on-device batching;
- :mod:`lab.optim`: hand-written optimizers as ``optax.GradientTransformation``;
- :mod:`lab.verify`: step-by-step comparison of two optimizers;
- :mod:`lab.sweep`, :mod:`lab.results`: whole comparisons as one compiled program, and their store;
- :mod:`lab.experiments`, :mod:`lab.plotting`: the comparisons the lab exists for, and their figures.
"""

from importlib.metadata import PackageNotFoundError, version

from lab.activations import ACTIVATIONS, Activation, get_activation
from lab.data import (
    TEST_FUNCTIONS,
    Dataset,
    batch_indices,
    circles,
    digits,
    linear_regression_task,
    two_moons,
)
from lab.initializers import INITIALIZERS, get_initializer
from lab.losses import accuracy, cross_entropy, get_loss, mse
from lab.models import init_linear, init_mlp, linear, mlp
from lab.regularizers import l1_penalty, l2_penalty, penalty, regularized

try:
    __version__ = version("optimizer-lab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "TEST_FUNCTIONS",
    "Activation",
    "Dataset",
    "__version__",
    "accuracy",
    "batch_indices",
    "circles",
    "cross_entropy",
    "digits",
    "get_activation",
    "get_initializer",
    "get_loss",
    "init_linear",
    "init_mlp",
    "l1_penalty",
    "l2_penalty",
    "linear",
    "linear_regression_task",
    "mlp",
    "mse",
    "penalty",
    "regularized",
    "two_moons",
]
