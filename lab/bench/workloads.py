"""The benchmark's workloads: a problem with a fixed step budget, batch size, validation metric and target.

    from lab.bench.workloads import WORKLOADS, test_metric
    w = WORKLOADS["digits_mlp"]
    result = run_sweep(w.sweep("adam", {"learning_rate": [1e-3, 3e-3]}, seeds=3), keep_params=True)
    w.validation_curves(result)                    # (runs, evaluations): what choices and targets see
    test_metric(w, result.final_params)            # (runs,): the test set, post hoc

As in DeepOBS and AlgoPerf, every workload's problem has ``validation=True``: the sweep's evaluation
set is a stratified part of the training set held out from it, the test set is never seen by a
choice, and :func:`test_metric` scores final params on the real test set afterwards. Every
workload has a :meth:`Workload.quick` variant with a tiny budget, for tests and ``--quick``.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from lab.problems import Problem, load_data, metrics
from lab.sweep import SweepConfig, SweepResult

__all__ = ["METRICS", "QUICK_STEPS", "WORKLOADS", "Workload", "test_metric"]

METRICS = ("accuracy", "loss")  # accuracy: higher is better; loss: lower is better
QUICK_STEPS = 8  # the quick variants' budget


@dataclass(frozen=True)
class Workload:
    """One benchmark task: what is trained, for how long, and how a run is scored.

    Attributes:
        name: letters, digits and ``_``.
        problem: the :class:`lab.problems.Problem`, with ``validation=True``.
        steps: the step budget of every run.
        batch_size: the mini-batch size.
        eval_every: evaluate on the validation set every this many steps; at most 1% of the budget
            (``max(1, steps // 100)``), so that steps-to-target are resolved finely.
        metric: ``"accuracy"`` (higher is better) or ``"loss"`` (lower is better), on the validation
            set during the run and on the test set after it.
        target: the validation metric that counts as reached (see :mod:`lab.bench.targets`), or None
            until it is set.
        description: one or two sentences for people.
    """

    name: str
    problem: Problem
    steps: int
    batch_size: int
    eval_every: int
    metric: str
    target: float | None = None
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not re.fullmatch(r"[A-Za-z0-9_]+", self.name):
            raise ValueError(f"Workload.name: expected letters, digits and '_', got {self.name!r}")
        if not isinstance(self.problem, Problem):
            raise ValueError(f"Workload.problem: expected a Problem, got {type(self.problem).__name__}")
        if not self.problem.validation:
            raise ValueError(f"Workload.problem: {self.name} must be evaluated on held-out training data "
                             f"(Problem(..., validation=True)), never on the test set")
        for field in ("steps", "batch_size", "eval_every"):
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"Workload.{field}: expected a positive integer, got {value!r}")
        finest = max(1, self.steps // 100)
        if self.eval_every > finest:
            raise ValueError(f"Workload.eval_every: {self.eval_every} is coarser than 1% of the {self.steps} "
                             f"steps; at most {finest}")
        if self.metric not in METRICS:
            raise ValueError(f"Workload.metric: expected one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.metric == "accuracy" and not self.problem.is_classification:
            raise ValueError(f"Workload.metric: {self.name} has regression targets, which have no accuracy")
        if self.target is not None:
            if isinstance(self.target, bool) or not isinstance(self.target, int | float) \
                    or not math.isfinite(self.target):
                raise ValueError(f"Workload.target: expected a finite number or None, got {self.target!r}")
            object.__setattr__(self, "target", float(self.target))

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def sweep(self, optimizer, grid: Mapping[str, Any], fixed: Mapping[str, Any] | None = None,
              seeds: int = 1, name: str | None = None) -> SweepConfig:
        """The :class:`lab.sweep.SweepConfig` that trains ``optimizer`` over ``grid`` on this workload:
        its problem, steps, batch size and evaluation interval; named after the workload."""
        return SweepConfig.make(self.problem, optimizer, grid, fixed, seeds=seeds, steps=self.steps,
                                batch_size=self.batch_size, eval_every=self.eval_every,
                                name=name or self.name)

    def validation_curves(self, result: SweepResult) -> np.ndarray:
        """(runs, evaluations) validation metric of a sweep of this workload at ``result.eval_steps``
        (NaN once a run diverged)."""
        if result.config.problem != self.problem or result.config.steps != self.steps \
                or result.config.batch_size != self.batch_size or result.config.eval_every != self.eval_every:
            raise ValueError(f"validation_curves: the sweep {result.config.name!r} is not of workload "
                             f"{self.name} (problem, steps, batch size or eval_every differ)")
        return np.asarray(result.test_accuracy if self.higher_is_better else result.test_loss)

    def quick(self) -> Workload:
        """The same workload with a budget of :data:`QUICK_STEPS` steps, named ``<name>_quick``, no target."""
        return dataclasses.replace(self, name=f"{self.name}_quick", steps=QUICK_STEPS, eval_every=1,
                                   target=None, description=f"{self.description} (quick)")

    def to_dict(self) -> dict:
        """What defines the workload (its target and description aside), JSON-ready."""
        return {"name": self.name, "problem": self.problem.to_dict(), "sources": self.problem.sources(),
                "steps": self.steps, "batch_size": self.batch_size, "eval_every": self.eval_every,
                "metric": self.metric}

    def identity(self) -> str:
        """12 hex digits of the SHA-256 of :meth:`to_dict`: its problem (with the model's and data's
        source hashes), budget, batch size, evaluation interval and metric. Baseline results and
        targets carry it, and are refused when the workload has changed since."""
        text = json.dumps(self.to_dict(), sort_keys=True, allow_nan=False)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def test_metric(workload: Workload, params) -> np.ndarray:
    """The workload's metric of final params on the real test set (never seen while tuning).

    Args:
        workload: the workload the params were trained on.
        params: a params pytree with a leading run axis (``SweepResult.final_params``).

    Returns:
        (runs,) float32 test accuracy or test loss, NaN for params that are not finite.
    """
    problem = dataclasses.replace(workload.problem, validation=False)
    data = load_data(problem)  # the test set is the evaluation set without validation
    loss, acc = _test_metrics(problem, params, data.x_test, data.y_test)
    out = np.asarray(acc if workload.higher_is_better else loss)
    finite = np.all(np.stack([np.all(np.isfinite(np.asarray(leaf)).reshape(out.size, -1), axis=1)
                              for leaf in jax.tree.leaves(params)]), axis=0)
    return np.where(finite, out, np.float32(np.nan))


@functools.partial(jax.jit, static_argnums=0)
def _test_metrics(problem: Problem, params, x, y):
    return jax.vmap(lambda p: metrics(problem, p, x, y))(params)


# ----------------------------------------------------------------------------- the suite


def _mlp(dataset: str, hidden: tuple[int, ...], **kwargs) -> Problem:
    return Problem(dataset, hidden=hidden, validation=True, **kwargs)


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("digits_softmax", Problem("digits", model="linear", validation=True), steps=400, batch_size=64,
             eval_every=4, metric="accuracy",
             description="Softmax regression on the 8x8 digits: a convex problem."),
    Workload("digits_mlp", _mlp("digits", (128,)), steps=400, batch_size=64, eval_every=4, metric="accuracy",
             description="The lab's digits MLP: one hidden layer of 128 ReLUs."),
    Workload("mnist1d_mlp", _mlp("mnist1d", (128, 128)), steps=1000, batch_size=64, eval_every=10,
             metric="accuracy", description="An MLP (two hidden layers of 128 ReLUs) on MNIST-1D."),
    Workload("mnist1d_cnn", Problem("mnist1d", model="cnn1d", model_kwargs={"channels": (16, 16, 16)},
                                    validation=True),
             steps=600, batch_size=64, eval_every=6, metric="accuracy",
             description="A 1D CNN (three stride-2 convolutions of 16 channels, mean pooling) on MNIST-1D."),
    Workload("nqm", Problem("lab.bench.nqm:data", model="lab.bench.nqm:model", loss="mse", validation=True),
             steps=400, batch_size=16, eval_every=4, metric="loss",
             description="Zhang et al.'s noisy quadratic model: 100 curvatures 1/i, gradient noise of "
                         "covariance H / B (lab.bench.nqm); its loss includes the noise floor of about 50."),
    Workload("deep_narrow_mlp", _mlp("digits", (32,) * 12, init="xavier_normal"), steps=400, batch_size=64,
             eval_every=4, metric="accuracy",
             description="Twelve hidden layers of 32 ReLUs on the digits with Glorot initialization, which "
                         "halves a ReLU signal's variance at each layer: gradients vanish at the start."),
)}
