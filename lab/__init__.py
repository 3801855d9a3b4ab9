"""optimizer-lab: see, measure and trust how training by backpropagation depends on the optimizer.

Modules and packages, each with one job:

- :mod:`lab.activations`, :mod:`lab.initializers`, :mod:`lab.models`, :mod:`lab.losses`,
  :mod:`lab.regularizers`: the numerics, as pure functions over plain pytrees;
- :mod:`lab.backprop`: the MLP's gradient by the chain rule, written by hand;
- :mod:`lab.data`, :mod:`lab.mnist1d`: embedded and generated data sets, and on-device batching;
- :mod:`lab.optim`: hand-written optimizers as ``optax.GradientTransformation``, and the optimizer
  catalogue (:mod:`lab.optim.catalogue`) that every other part of the lab reads;
- :mod:`lab.verify`: step-by-step comparison of an optimizer with a reference;
- :mod:`lab.problems`, :mod:`lab.sweep` (``config``, ``program``, ``run``, ``store``): whole
  comparisons (hyperparameters x seeds) as one compiled program, and the store that saves and
  resumes them;
- :mod:`lab.experiments` (one module per experiment), :mod:`lab.analysis`: the comparisons the lab
  exists for; each experiment draws its figures with the shared helpers of :mod:`lab.plotting`;
- :mod:`lab.sweep_file`, :mod:`lab.export`: sweeps described in TOML files, and results as CSV.
"""

from importlib.metadata import PackageNotFoundError, version

from lab.activations import ACTIVATIONS, Activation, get_activation
from lab.backprop import mlp_value_and_grad
from lab.data import (
    TEST_FUNCTIONS,
    Dataset,
    Surface,
    batch_indices,
    circles,
    digits,
    linear_regression_task,
    two_moons,
)
from lab.initializers import INITIALIZERS, get_initializer
from lab.losses import accuracy, cross_entropy, get_loss, mse, mse_classification
from lab.models import init_linear, init_mlp, linear, mlp
from lab.optim import OPTIMIZERS, adagrad, adam, adamw, get_optimizer, momentum, rmsprop, sgd
from lab.regularizers import l1_penalty, l2_penalty, penalty, regularized
from lab.sweep import Problem, SweepConfig, SweepInterrupted, SweepResult, run_sweep
from lab.sweep.store import load as load_results
from lab.verify import VerifyReport, compare, compare_trajectories

try:
    __version__ = version("optimizer-lab")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "Dataset",
    "INITIALIZERS",
    "OPTIMIZERS",
    "Problem",
    "Surface",
    "SweepConfig",
    "SweepInterrupted",
    "SweepResult",
    "TEST_FUNCTIONS",
    "VerifyReport",
    "__version__",
    "accuracy",
    "adagrad",
    "adam",
    "adamw",
    "batch_indices",
    "circles",
    "compare",
    "compare_trajectories",
    "cross_entropy",
    "digits",
    "get_activation",
    "get_initializer",
    "get_loss",
    "get_optimizer",
    "init_linear",
    "init_mlp",
    "l1_penalty",
    "l2_penalty",
    "linear",
    "linear_regression_task",
    "load_results",
    "mlp",
    "mlp_value_and_grad",
    "momentum",
    "mse",
    "mse_classification",
    "penalty",
    "regularized",
    "rmsprop",
    "run_sweep",
    "sgd",
    "two_moons",
]
