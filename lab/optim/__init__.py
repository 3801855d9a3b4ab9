"""Hand-written optimizers as ``optax.GradientTransformation``, in optax's style.

Small building blocks (:mod:`lab.optim.blocks`) are chained into the user-facing optimizers
(:mod:`lab.optim.classic`), whose arguments, names and defaults are those of their optax namesakes,
so ``lab.optim.adam(**kw)`` and ``optax.adam(**kw)`` are one-to-one comparable (:mod:`lab.verify`
checks that they agree). Only optax's types, ``apply_updates``, schedules and tree utilities are
used, never its algorithms. :mod:`lab.optim.catalogue` declares every optimizer once; the rest of
the lab reads it. Parameters may be any pytree of floating leaves (float32, float64, bfloat16).
"""

from __future__ import annotations

from collections.abc import Callable

import optax

from lab.optim import catalogue
from lab.optim.base import safe_increment
from lab.optim.blocks import (
    EmaState,
    ScaleByAdamState,
    ScaleByLearningRateState,
    ScaleByRmsState,
    ScaleByRssState,
    ScaleByStddevState,
    TraceState,
    add_decayed_weights,
    ema,
    scale_by_adam,
    scale_by_learning_rate,
    scale_by_rms,
    scale_by_rss,
    scale_by_stddev,
    trace,
)
from lab.optim.classic import adagrad, adam, adamw, momentum, rmsprop, sgd

# The zoo, after the classic six (the catalogue keeps registration order): each family module
# registers its optimizers in the catalogue and exports them.
# isort: off
from lab.optim import adam_maxima, adam_variants, adaptive, adaptive_contrib, layerwise
from lab.optim import covers, orthogonal, schedule_free, sign_and_steps, steps, structured
from lab.optim.adam_variants import *  # noqa: F403
from lab.optim.adam_maxima import *  # noqa: F403
from lab.optim.adaptive import *  # noqa: F403
from lab.optim.layerwise import *  # noqa: F403
from lab.optim.adaptive_contrib import *  # noqa: F403
from lab.optim.sign_and_steps import *  # noqa: F403
from lab.optim.steps import *  # noqa: F403
from lab.optim.structured import *  # noqa: F403
from lab.optim.covers import *  # noqa: F403
from lab.optim.orthogonal import *  # noqa: F403
from lab.optim.schedule_free import *  # noqa: F403
# isort: on

OPTIMIZERS = catalogue.FACTORIES  # name -> factory, a live view of the catalogue

__all__ = [
    "EmaState",
    "OPTIMIZERS",
    "ScaleByAdamState",
    "ScaleByLearningRateState",
    "ScaleByRmsState",
    "ScaleByRssState",
    "ScaleByStddevState",
    "TraceState",
    "add_decayed_weights",
    "adagrad",
    "adam",
    "adamw",
    "catalogue",
    "ema",
    "get_optimizer",
    "momentum",
    "rmsprop",
    "safe_increment",
    "scale_by_adam",
    "scale_by_learning_rate",
    "scale_by_rms",
    "scale_by_rss",
    "scale_by_stddev",
    "sgd",
    "trace",
    *adam_variants.__all__,
    *adam_maxima.__all__,
    *adaptive.__all__,
    *layerwise.__all__,
    *adaptive_contrib.__all__,
    *sign_and_steps.__all__,
    *steps.__all__,
    *structured.__all__,
    *covers.__all__,
    *orthogonal.__all__,
    *schedule_free.__all__,
]


def get_optimizer(name: str) -> Callable[..., optax.GradientTransformation]:
    """The factory of catalogue optimizer ``name``; ``ValueError`` listing the valid names otherwise."""
    return catalogue.get(name).factory
