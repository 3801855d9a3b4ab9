"""The optimizer catalogue: every optimizer the lab knows, declared once.

An :class:`Entry` names an optimizer and holds everything the rest of the lab needs to know about
it: the factory, the optax reference it is verified against and the settings it is verified with,
its label and colour in figures, the search space it is tuned over, and its ``torch.optim``
counterpart with the convention that separates them. ``lab verify``, sweeps, the experiments, the
figures' palette, ``--help`` texts, the tests and the docs' table all read this catalogue; adding an
optimizer means writing its transformation and one :func:`register` call next to it (the classic
six are registered at the end of :mod:`lab.optim.classic`).

    from lab.optim import catalogue
    catalogue.register(catalogue.Entry("my_sgd", my_sgd, reference=optax.sgd, label="My SGD",
                                       verify=({"learning_rate": 0.1},)))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import optax

Factory = Callable[..., optax.GradientTransformation]

# Colour-blind-safe colours. The classic six keep Okabe & Ito's (2008) palette; an optimizer that
# declares no colour gets the next of EXTRA_COLORS (Paul Tol's "muted" and "light" schemes) in
# registration order, so it is never left out of a figure.
EXTRA_COLORS = ("#332288", "#88CCEE", "#44AA99", "#117733", "#999933", "#DDCC77", "#CC6677", "#882255",
                "#AA4499", "#0072B2", "#F0E442", "#77AADD", "#EE8866", "#BBCC33", "#AAAA00", "#FFAABB",
                "#99DDFF", "#44BB99", "#EEDD88", "#DDDDDD")
SCALES = ("log", "linear")


@dataclass(frozen=True)
class Hyperparameter:
    """One dimension of a search space: ``name`` drawn from ``[low, high]`` on a ``log`` or
    ``linear`` scale."""

    name: str
    low: float
    high: float
    scale: str = "log"

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"Hyperparameter {self.name!r}: unknown scale {self.scale!r}; valid: "
                             f"{', '.join(SCALES)}")
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"Hyperparameter {self.name!r}: bounds must be finite with low < high, got "
                             f"[{self.low}, {self.high}]")
        if self.scale == "log" and self.low <= 0:
            raise ValueError(f"Hyperparameter {self.name!r}: a log scale needs low > 0, got {self.low}")


LEARNING_RATE = Hyperparameter("learning_rate", 1e-4, 10.0)


@dataclass(frozen=True)
class Torch:
    """An optimizer's ``torch.optim`` counterpart: the class name, and the convention that separates
    the two libraries (empty where they agree). ``docs/optimizers.md`` gives each difference's
    measured size."""

    name: str  # e.g. "Adam": torch.optim.Adam
    note: str = ""


@dataclass(frozen=True)
class Entry:
    """One optimizer of the catalogue.

    Attributes:
        name: the optimizer's name in sweeps, ``lab verify`` and figures (optax's alias name).
        factory: builds the ``optax.GradientTransformation`` from keyword hyperparameters.
        reference: optax's factory for the same optimizer, taking the same arguments; ``lab verify``
            compares ``factory(**kw)`` with ``reference(**kw)``.
        reference_name: how the reference is written in tables (default ``optax.<name>``).
        label: the display name in figures and tables.
        color: its colour in every figure (``None``: one is assigned, see :func:`color`).
        verify: the settings (keyword arguments) ``lab verify`` checks it with.
        schedule: whether the reference takes a learning-rate schedule (then every setting is also
            verified with one).
        search_space: what tuning draws: the learning rate at least, and the other numeric
            hyperparameters worth tuning, each with its range.
        torch: the ``torch.optim`` counterpart, or ``None`` where torch has none.
        featured: part of the comparisons' default selection of optimizers.
        needs_value: its ``update`` takes the loss value (``update(g, state, params, value=loss)``),
            as Polyak's step size does.
        eval_params: for optimizers whose evaluation parameters are not their iterates (schedule-free
            methods): ``eval_params(state, params) -> params`` to evaluate (optax's argument order,
            as ``optax.contrib.schedule_free_eval_params``); ``None``: the params themselves.
        complex_params: optax runs it on complex parameters too (gradients conjugated by the caller).
    """

    name: str
    factory: Factory
    reference: Factory
    reference_name: str = ""
    label: str = ""
    color: str | None = None
    verify: tuple[Mapping[str, Any], ...] = ()
    schedule: bool = True
    search_space: tuple[Hyperparameter, ...] = (LEARNING_RATE,)
    torch: Torch | None = None
    featured: bool = False
    needs_value: bool = False
    eval_params: Callable[[Any, Any], Any] | None = None
    complex_params: bool = False

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"catalogue entry name must be an identifier, got {self.name!r}")
        if not self.reference_name:
            object.__setattr__(self, "reference_name", f"optax.{self.name}")
        if not self.label:
            object.__setattr__(self, "label", self.name)
        object.__setattr__(self, "verify", tuple(dict(kw) for kw in self.verify))
        object.__setattr__(self, "search_space", tuple(self.search_space))
        names = [h.name for h in self.search_space]
        if len(set(names)) != len(names):
            raise ValueError(f"catalogue entry {self.name!r}: repeated names in its search space {names}")


_ENTRIES: dict[str, Entry] = {}


def register(entry: Entry, *, replace: bool = False) -> Entry:
    """Add ``entry`` to the catalogue (``replace=True`` to overwrite an entry of the same name)."""
    if not isinstance(entry, Entry):
        raise TypeError(f"register expects a catalogue.Entry, got {type(entry).__name__}")
    if entry.name in _ENTRIES and not replace:
        raise ValueError(f"optimizer {entry.name!r} is already in the catalogue (replace=True overwrites it)")
    _ENTRIES[entry.name] = entry
    return entry


def unregister(name: str) -> None:
    """Remove ``name`` from the catalogue (a no-op if it is not there)."""
    _ENTRIES.pop(name, None)


def names() -> tuple[str, ...]:
    """Every optimizer's name, in registration order."""
    return tuple(_ENTRIES)


def featured() -> tuple[str, ...]:
    """The comparisons' default selection, in registration order."""
    return tuple(name for name, e in _ENTRIES.items() if e.featured)


def entries() -> tuple[Entry, ...]:
    return tuple(_ENTRIES.values())


def get(name: str) -> Entry:
    """The entry called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in _ENTRIES:
        raise ValueError(f"unknown optimizer {name!r}; valid names: {', '.join(_ENTRIES)}")
    return _ENTRIES[name]


def color(name: str) -> str:
    """``name``'s colour: the declared one, else the next free colour of :data:`EXTRA_COLORS` in
    registration order (optimizers outside the catalogue come after all of those)."""
    entry = _ENTRIES.get(name)
    if entry is not None and entry.color:
        return entry.color
    undeclared = [n for n, e in _ENTRIES.items() if not e.color]
    i = undeclared.index(name) if name in undeclared else len(undeclared) + sum(map(ord, name))
    return EXTRA_COLORS[i % len(EXTRA_COLORS)]


def label(name: str) -> str:
    """``name``'s display label (the name itself for an optimizer outside the catalogue)."""
    entry = _ENTRIES.get(name)
    return entry.label if entry is not None else name


class _Factories(Mapping):
    """A live, read-only ``name -> factory`` view of the catalogue."""

    def __getitem__(self, name: str) -> Factory:
        return _ENTRIES[name].factory

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_ENTRIES))

    def __len__(self) -> int:
        return len(_ENTRIES)

    def __repr__(self) -> str:
        return f"OPTIMIZERS({', '.join(_ENTRIES)})"


FACTORIES: Mapping[str, Factory] = _Factories()


def markdown_table() -> str:
    """The docs' optimizer table (``docs/optimizers.md``), generated from the catalogue."""
    rows = ["| optimizer | `lab.optim` | optax reference | verified with | `torch.optim` | convention |",
            "| --- | --- | --- | --- | --- | --- |"]
    for e in _ENTRIES.values():
        settings = "; ".join(", ".join(f"{k}={v}" for k, v in kw.items()) for kw in e.verify) or "—"
        torch = f"`{e.torch.name}`" if e.torch else "—"
        note = (e.torch.note if e.torch else "") or ("same" if e.torch else "")
        rows.append(f"| {e.label} | `{e.name}` | `{e.reference_name}` | {settings} | {torch} | "
                    f"{note or '—'} |")
    return "\n".join(rows)


__all__ = ["EXTRA_COLORS", "Entry", "FACTORIES", "Hyperparameter", "LEARNING_RATE", "SCALES", "Torch",
           "color", "entries", "featured", "get", "label", "markdown_table", "names", "register",
           "unregister"]
