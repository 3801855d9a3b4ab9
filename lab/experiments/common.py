"""What the experiments' runners share: where they train, the digits MLP, and summary formatting."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab.sweep import Problem, SweepConfig, SweepResult, run_sweep

DIGITS_HIDDEN = (128,)  # the demo's 64-128-10 network


@dataclass(frozen=True)
class Context:
    """Where and how runners train: the sweep store, whether to rerun, whether to show progress."""

    store_dir: str = "results"
    force: bool = False
    quiet: bool = True


def digits(**kw) -> Problem:
    """The digits MLP every comparison shares (64-128-10 ReLU, He init), with ``kw`` changed."""
    return Problem("digits", **{"hidden": DIGITS_HIDDEN, "activation": "relu", "init": "he_normal", **kw})


def sweep(ctx: Context, problem: Problem, optimizer: str, grid: dict, *, name: str, fixed: dict | None = None,
          keep_params: bool = False, **kw) -> SweepResult:
    """:func:`lab.sweep.run_sweep` of ``SweepConfig.make(problem, optimizer, grid, fixed, **kw)`` in
    ``ctx``'s store (a finished sweep there is loaded, not rerun)."""
    config = SweepConfig.make(problem, optimizer, grid, fixed or {}, name=name, **kw)
    return run_sweep(config, store_dir=ctx.store_dir, force=ctx.force, quiet=ctx.quiet,
                     keep_params=keep_params)


def final(result: SweepResult, metric: str, runs: np.ndarray | None = None) -> np.ndarray:
    """(runs,) last evaluation of ``metric``, over the runs ``runs`` selects (default all)."""
    values = np.asarray(getattr(result, metric))[:, -1]
    return values if runs is None else values[runs]


def mean_std(values: np.ndarray, fmt: str = ".3f") -> str:
    """``"mean +- std"`` of the finite values, saying how many diverged."""
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "diverged"
    text = f"{finite.mean():{fmt}} +- {finite.std():{fmt}}"
    return text if finite.size == values.size else f"{text} ({values.size - finite.size} diverged)"


def init_batch(n: int):
    """The first ``n`` digits training images and labels, for looks at a network at initialization."""
    import jax

    from lab.data import digits as digits_data

    data = digits_data(jax.random.key(0))
    return data.x_train[:n], data.y_train[:n]
