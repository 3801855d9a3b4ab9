"""References by name: the catalogue's optax counterparts, optax's optimizers and optax.contrib's."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import optax
import optax.contrib

from lab.optim import catalogue

# optax's module of optimizer aliases (adam, sgd, lion, nadam = a partial of adam, ...).
_ALIAS_MODULE = "optax._src.alias"


def _module(obj: Any) -> str:
    if isinstance(obj, functools.partial):
        obj = obj.func
    return getattr(obj, "__module__", "") or ""


def _wraps_a_transformation(fn: Callable) -> bool:
    """Whether ``fn`` takes another transformation (a wrapper such as ``sam`` or ``schedule_free``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any("GradientTransformation" in str(p.annotation) for p in params)


def _first_parameter(fn: Callable) -> str:
    try:
        return next(iter(inspect.signature(fn).parameters), "")
    except (TypeError, ValueError):
        return ""


def _optax_optimizer(name: str) -> tuple[str, Callable] | None:
    """``optax.<name>`` if it is an optimizer alias or a ``scale_by_*`` transformation."""
    fn = getattr(optax, name, None)
    if not callable(fn) or isinstance(fn, type):
        return None
    module = _module(fn)
    if module == _ALIAS_MODULE or (name.startswith("scale_by_") and module.startswith("optax._src.")):
        return f"optax.{name}", fn
    return None


def _contrib_optimizer(name: str) -> tuple[str, Callable] | None:
    """``optax.contrib.<name>`` if it is an optimizer: its first argument is ``learning_rate`` (or it is
    a ``scale_by_*`` transformation) and it wraps no other transformation."""
    fn = getattr(optax.contrib, name, None)
    if not callable(fn) or isinstance(fn, type) or not _module(fn).startswith("optax.contrib"):
        return None
    optimizer = _first_parameter(fn) == "learning_rate" or name.startswith("scale_by_")
    if optimizer and not _wraps_a_transformation(fn):
        return f"optax.contrib.{name}", fn
    return None


def resolve_reference(reference: Any) -> tuple[str, Any]:
    """``(label, factory or transformation)`` for a reference given by value or by name.

    A name is, in this order: a catalogue optimizer (its optax reference, e.g. ``"momentum"``); an
    optax optimizer alias (``"adam"``, ``"nadam"``, ...) or ``scale_by_*`` transformation; or an
    ``optax.contrib`` optimizer (``"muon"`` or ``"contrib.muon"``). Anything else (``"chain"``,
    ``"apply_updates"``, schedules, losses, wrappers of another optimizer) is a ValueError naming it.
    """
    if not isinstance(reference, str):
        return name_of(reference), reference
    if reference in catalogue.names():
        entry = catalogue.get(reference)
        return entry.reference_name, entry.reference
    name = reference.removeprefix("optax.")
    if name.startswith("_") or not name:
        raise ValueError(f"optax has no optimizer named {reference!r}")
    if name.startswith("contrib."):
        found = _contrib_optimizer(name.removeprefix("contrib."))
        exists = hasattr(optax.contrib, name.removeprefix("contrib."))
    else:
        found = _optax_optimizer(name) or (None if hasattr(optax, name) else _contrib_optimizer(name))
        exists = hasattr(optax, name) or hasattr(optax.contrib, name)
    if found is not None:
        return found
    if not exists:
        raise ValueError(f"optax has no optimizer named {reference!r} (looked in optax and optax.contrib)")
    where = name if name.startswith("contrib.") or hasattr(optax, name) else f"contrib.{name}"
    raise ValueError(f"optax.{where} is not an optimizer factory; the reference must be an optax "
                     "optimizer such as adam, sgd, rmsprop, contrib.muon or a scale_by_* transformation")


def name_of(obj: Any) -> str:
    """A readable name for a candidate or reference: its qualified name, or its type's."""
    if isinstance(obj, str):
        return obj
    if isinstance(obj, functools.partial):
        return name_of(obj.func)
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or type(obj).__name__
