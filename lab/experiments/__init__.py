"""The experiments the lab exists for, one module each (``lab/experiments/<name>.py``).

    lab list                      # every experiment, one line each
    lab run optimizers --quick    # one experiment: run (or reuse), save, draw, print a summary
    lab figures                   # every experiment, every figure, into figures/

An experiment module declares, and nothing else lists it (:func:`registry` finds every module of
this package that has ``FIGURES``):

- ``DESCRIPTION``: one line for ``lab list``;
- ``Config``: a frozen dataclass whose defaults are the full experiment, and ``quick()``: the same
  comparison small enough for CI;
- ``run(config, ctx) -> Record``: trains through :func:`lab.sweep.run_sweep` (whose store makes a
  finished sweep free to reuse) or computes with :mod:`lab.analysis`; it never draws;
- ``draw(record) -> {filename: Figure}``, one figure per name of ``FIGURES``, with the helpers of
  :mod:`lab.plotting`;
- optionally ``REUSE = False`` (always rerun: it only reads files that may have changed) and
  ``SEEDS_FIELD`` (the config field that ``--seeds`` sets, default ``"seeds"``).

The record is saved (:mod:`lab.experiments.record`), so a plotting change redraws and trains nothing.

Two choices that every comparison shares, so that they stay comparable:

- the digits MLP is the demo's 64-128-10 ReLU network with He init, mini-batches of 64;
- "best" hyperparameters are chosen on data the figures never report: the optimizer comparison
  tunes on a validation split held out of the training set (``Problem(validation=True)``) and picks
  the lowest final validation loss (seed mean, diverged runs worst), then reruns that choice on the
  full training set and reports the test set; the other comparisons that pick a setting pick it on
  the training loss.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
import os
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax

from lab.experiments.common import Context
from lab.experiments.record import Record, config_hash, load_record, record_dir, save_record

__all__ = ["Context", "Experiment", "Record", "config_hash", "draw_experiment", "get_experiment",
           "load_record", "record_dir", "registry", "run_experiment", "save_record"]


@dataclass(frozen=True)
class Experiment:
    """One comparison, as its module declares it: configs, how to run it, how to draw it."""

    name: str
    description: str
    config: Callable[[], Any]  # the full config (the module's Config with its defaults)
    quick: Callable[[], Any]
    run: Callable[[Any, Context], Record]
    draw: Callable[[Record], dict]
    figures: tuple[str, ...]
    reuse: bool = True
    seeds_field: str = "seeds"

    @classmethod
    def from_module(cls, module) -> Experiment:
        """The experiment ``module`` declares (see this package's docstring).

        Raises:
            TypeError: if the module leaves out a declaration.
        """
        name = module.__name__.rsplit(".", 1)[-1]
        missing = [a for a in ("DESCRIPTION", "Config", "quick", "run", "draw") if not hasattr(module, a)]
        if missing:
            raise TypeError(f"experiment module {name!r} declares FIGURES but not {', '.join(missing)}")
        return cls(name, module.DESCRIPTION, module.Config, module.quick, module.run, module.draw,
                   tuple(module.FIGURES), getattr(module, "REUSE", True),
                   getattr(module, "SEEDS_FIELD", "seeds"))

    def make_config(self, quick: bool = False, seeds: int | None = None, steps: int | None = None):
        """The full or quick config, with ``seeds``/``steps`` overridden where given.

        Raises:
            ValueError: if the experiment has no such setting.
        """
        config = self.quick() if quick else self.config()
        for flag, field_name, value in (("seeds", self.seeds_field, seeds), ("steps", "steps", steps)):
            if value is None:
                continue
            if not hasattr(config, field_name):
                raise ValueError(f"experiment {self.name!r} has no --{flag} setting")
            config = dataclasses.replace(config, **{field_name: value})
        return config


@functools.cache
def registry() -> dict[str, Experiment]:
    """Every experiment of this package by name, in the order of their figures (01, 02, ...)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "FIGURES"):
            found.append(Experiment.from_module(module))
    return {e.name: e for e in sorted(found, key=lambda e: e.figures[0])}


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by name; ``ValueError`` listing the valid ones otherwise."""
    experiments = registry()
    if name not in experiments:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(experiments)}")
    return experiments[name]


def run_experiment(name: str, config, *, results_dir: str = "results", force: bool = False,
                   quiet: bool = True) -> Record:
    """Run (or reuse the saved record of) experiment ``name`` with ``config``, and save its record."""
    experiment = get_experiment(name)
    directory = record_dir(results_dir, name, config)
    if experiment.reuse and not force:
        record = load_record(directory)
        if record is not None:
            return record
    ctx = Context(store_dir=os.path.join(results_dir, "sweeps"), force=force, quiet=quiet)
    record = experiment.run(config, ctx)
    record.meta["experiment"] = name
    record.meta["config"] = json.loads(json.dumps(dataclasses.asdict(config), default=str))
    if jax.process_index() == 0:  # in a multi-process job, one process writes
        save_record(directory, record)
    return record


def draw_experiment(name: str, record: Record, out_dir: str) -> list[str]:
    """Draw experiment ``name``'s figures from ``record`` into ``out_dir``; return the paths written.

    Raises:
        ValueError: if the drawer does not return exactly the figures the experiment declares.
    """
    from lab import plotting

    experiment = get_experiment(name)
    figures = experiment.draw(record)
    if sorted(figures) != sorted(experiment.figures):
        raise ValueError(f"experiment {name!r} drew {sorted(figures)}, but declares "
                         f"{list(experiment.figures)}")
    if jax.process_index() != 0:  # in a multi-process job, one process writes
        return []
    return plotting.save(figures, out_dir)
