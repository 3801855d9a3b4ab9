"""Learning-rate schedules and gradient clipping in a sweep: their hyperparameters (dotted names, such
as ``schedule.warmup_steps`` and ``clip.max_norm``, that no optimizer takes), swept or fixed like an
optimizer's and traced as float32 arrays; their checks; and the functions the compiled program applies.

A schedule multiplies the optimizer's update at step ``t`` (0 at the first update, as optax's
``count``) by a factor in ``[0, 1]``-ish; for an optimizer whose update is proportional to its
learning rate, that is the learning rate scheduled. How they are used: ``docs/sweep_files.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = ["CLIP_MAX_NORM", "DEFAULT", "NAMES", "SCHEDULES", "Parameter", "check_kind", "check_names",
           "check_runs", "check_value", "clip", "defaults", "multiplier", "scale"]

DEFAULT = "constant"
CLIP_MAX_NORM = "clip.max_norm"  # gradients clipped to this global norm before the optimizer


class Parameter(NamedTuple):
    """One number of a schedule (or of clipping), swept or fixed under ``name``."""

    name: str
    default: float | str | None  # None: required; "steps": the sweep's steps
    rule: str  # "steps >= 0", "steps >= 1", ">= 0" or "> 0": what check_value allows


SCHEDULES: dict[str, tuple[Parameter, ...]] = {
    "constant": (),
    "warmup_cosine": (Parameter("schedule.warmup_steps", 0.0, "steps >= 0"),
                      Parameter("schedule.decay_steps", "steps", "steps >= 1"),
                      Parameter("schedule.end_value", 0.0, ">= 0")),
    "step_decay": (Parameter("schedule.transition_steps", None, "steps >= 1"),
                   Parameter("schedule.decay_rate", None, "> 0")),
}
_CLIP = Parameter(CLIP_MAX_NORM, None, "> 0")
_ALL = {p.name: p for params in SCHEDULES.values() for p in params} | {CLIP_MAX_NORM: _CLIP}
NAMES = tuple(_ALL)  # every name of this module: never passed to the optimizer


def check_kind(kind) -> None:
    """``ValueError`` naming ``SweepConfig.schedule`` unless ``kind`` is a key of :data:`SCHEDULES`."""
    if kind not in SCHEDULES:
        raise ValueError(f"SweepConfig.schedule: unknown schedule {kind!r}; valid: {', '.join(SCHEDULES)}")


def check_names(kind: str, given: dict[str, str]) -> None:
    """Every dotted name of ``given`` (name -> its field, ``"grid"``, ``"points"`` or ``"fixed"``)
    belongs to schedule ``kind`` (or is ``clip.max_norm``), and every required one is given."""
    own = [p.name for p in SCHEDULES[kind]]
    for name, field in given.items():
        if name in own or name == CLIP_MAX_NORM or not name.startswith(("schedule.", "clip.")):
            continue
        owners = [k for k, params in SCHEDULES.items() if name in [p.name for p in params]]
        if owners:
            raise ValueError(f"SweepConfig.{field}: {name!r} is a parameter of schedule {owners[0]!r}, "
                             f"not of {kind!r} (set schedule = {owners[0]!r}); {kind!r} takes: "
                             f"{', '.join(own) or 'none'}")
        raise ValueError(f"SweepConfig.{field}: {name!r} is not a schedule or clipping parameter; valid: "
                         f"{', '.join(NAMES)}")
    for p in SCHEDULES[kind]:
        if p.default is None and p.name not in given:
            raise ValueError(f"SweepConfig.schedule: {kind!r} needs {p.name!r}; sweep it or fix it")


def check_value(name: str, value, field: str) -> None:
    """``ValueError`` naming ``field`` and ``name`` unless ``value`` is allowed for ``name``."""
    rule = _ALL[name].rule
    number = isinstance(value, int | float | np.number) and not isinstance(value, bool)
    number = number and math.isfinite(value)
    ok = number and (value > 0 if rule == "> 0" else value >= int(rule[-1]))
    if ok and rule.startswith("steps"):
        ok = float(value) == int(value)
    if not ok:
        what = f"a whole number of steps {rule[6:]}" if rule.startswith("steps") else f"a number {rule}"
        raise ValueError(f"SweepConfig.{field}: {name}={value!r}: must be {what}")


def defaults(kind: str, steps: int) -> dict[str, float]:
    """The value of each optional parameter of ``kind`` when it is neither swept nor fixed."""
    return {p.name: float(steps if p.default == "steps" else p.default)
            for p in SCHEDULES[kind] if p.default is not None}


def check_runs(kind: str, values: dict[str, np.ndarray], field: str) -> None:
    """Checks across parameters, run by run (``values``: name -> (runs,) values, defaults included):
    a cosine decay needs ``decay_steps > warmup_steps``."""
    if kind == "warmup_cosine":
        warmup, decay = values["schedule.warmup_steps"], values["schedule.decay_steps"]
        bad = np.flatnonzero(decay <= warmup)
        if bad.size:
            i = bad[0]
            raise ValueError(f"SweepConfig.{field}: schedule.decay_steps={float(decay[i]):g} must be larger "
                             f"than schedule.warmup_steps={float(warmup[i]):g} (decay_steps counts the "
                             f"warm-up too)")


def multiplier(kind: str, hp: dict[str, jax.Array], t: jax.Array) -> jax.Array:
    r"""() float32 factor of the update at step ``t`` (int32, 0 at the first update).

    - ``warmup_cosine``: :math:`t / W` for :math:`t < W`, then
      :math:`e + (1 - e)\,\tfrac12(1 + \cos(\pi \min(t - W, D - W) / (D - W)))`: optax's
      ``warmup_cosine_decay_schedule(0, 1, W, D, e)``;
    - ``step_decay``: :math:`r^{\lfloor t / T \rfloor}`: optax's
      ``exponential_decay(1, T, r, staircase=True)``.
    """
    count = t.astype(jnp.float32)
    if kind == "warmup_cosine":
        warmup, decay, end = hp["schedule.warmup_steps"], hp["schedule.decay_steps"], hp["schedule.end_value"]
        length = decay - warmup
        cosine = 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.minimum(count - warmup, length) / length))
        return jnp.where(count < warmup, count / jnp.maximum(warmup, 1.0), (1.0 - end) * cosine + end)
    if kind == "step_decay":
        return hp["schedule.decay_rate"] ** jnp.floor(count / hp["schedule.transition_steps"])
    raise ValueError(f"multiplier: no factor for schedule {kind!r}")


def scale(updates, factor: jax.Array):
    """``updates`` times ``factor``, leaf by leaf in each leaf's dtype."""
    return jax.tree.map(lambda u: u * factor.astype(u.dtype), updates)


def clip(grads, max_norm: jax.Array):
    """``grads`` clipped to global norm ``max_norm``: ``optax.clip_by_global_norm`` (it keeps no state)."""
    transform = optax.clip_by_global_norm(max_norm)
    return transform.update(grads, transform.init(grads))[0]
