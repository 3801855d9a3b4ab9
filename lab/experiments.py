"""The experiments the lab exists for: each a frozen config, a quick variant, a runner and its figures.

    lab list                      # every experiment, one line each
    lab run optimizers --quick    # one experiment: run (or reuse), save, draw, print a summary
    lab figures                   # every experiment, every figure, into figures/

An :class:`Experiment` is a name, a one-line description, a full and a ``quick`` config (frozen
dataclasses; the quick one is small enough for CI and documented next to the full one), a runner
``run(config, ctx) -> Record`` and the names of the figures :mod:`lab.plotting` draws from the
record. Runners train through :func:`lab.sweep.run_sweep` (whose store makes finished sweeps free to
reuse) or compute with :mod:`lab.analysis`; they never draw. Their output, a :class:`Record` of
numpy arrays plus a JSON-able ``meta`` dict, is saved under
``<results>/experiments/<name>-<config hash>/`` (``record.npz``, then ``record.json`` with the
npz's SHA-256, written last, so a half-written record is never loaded). A plotting change therefore
redraws from the record and trains nothing.

Two choices that every comparison here shares, so that they stay comparable:

- the digits MLP is the demo's 64-128-10 ReLU network with He init, mini-batches of 64;
- "best" hyperparameters are chosen on data the figures never report: the optimizer comparison
  tunes on a validation split held out of the training set (``Problem(validation=True)``) and picks
  the lowest final validation loss (seed mean, diverged runs worst), as the optimizer-benchmark
  literature does, then reruns that choice on the full training set and reports the test set; the
  other comparisons that pick a setting pick it on the training loss.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RECORD_VERSION = 2  # bump when a runner's record changes shape, so stale records are not reused
RECORD_NPZ, RECORD_JSON = "record.npz", "record.json"
OPTIMIZER_NAMES = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad")
SPEED_JSONS = (os.path.join("benchmarks", "results", "sweep_cpu.json"),  # the first is the one asked for
               os.path.join("benchmarks", "results", "sweep_gpu.json"))


@dataclass
class Record:
    """What a runner produces: flat ``name -> array`` (saved as npz) and JSON-able ``meta``.

    ``meta["summary"]`` is ``{"columns": [...], "rows": [[...], ...]}`` for ``lab run``'s table;
    ``meta["sweeps"]`` maps each packed sweep's prefix to its runs and timings.
    """

    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Context:
    """Where and how runners train: the sweep store, whether to rerun, whether to show progress."""

    store_dir: str = "results"
    force: bool = False
    quiet: bool = True


# ----------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class OptimizersConfig:
    """Every optimizer on the digits MLP with the same tuning budget (experiments 1 and 2).

    Each optimizer is tuned over the same log grid of learning rates with ``tune_seeds`` seeds,
    trained on 80% of the training set; the learning rate with the lowest final loss on the other
    20% (the validation split) is rerun with ``seeds`` seeds on the whole training set, and the test
    set is looked at only then. Steps-to-target: the first evaluated step at which test accuracy
    reaches ``target``.
    """

    optimizers: tuple[str, ...] = OPTIMIZER_NAMES
    # Half decades from 1e-4 to 10: wide enough that every optimizer's best lies inside the grid.
    learning_rates: tuple[float, ...] = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0, 3.0, 10.0)
    tune_seeds: int = 3
    seeds: int = 10
    steps: int = 1000
    batch_size: int = 64
    eval_every: int = 50
    target: float = 0.95


@dataclass(frozen=True)
class TrajectoriesConfig:
    """Each optimizer's path on each 2D surface, at the learning rate tuned for that surface."""

    optimizers: tuple[str, ...] = ("sgd", "momentum", "rmsprop", "adam", "adagrad")
    surfaces: tuple[str, ...] = ("rosenbrock", "quadratic", "saddle", "beale")
    learning_rates: tuple[float, ...] = tuple(float(v) for v in np.logspace(-4, 0, 17))
    steps: int = 500
    resolution: int = 200


@dataclass(frozen=True)
class RegularizationConfig:
    """None vs L1 vs L2 on an MLP that overfits two moons (few, noisy points; a wide network).

    Plain full-batch gradient descent: near zero, an L1-penalized weight then oscillates by at most
    ``learning_rate * l1`` (below the 1e-3 "near-zero" threshold for every strength here), where
    Adam's normalized steps would make it oscillate by about a learning rate.
    """

    strengths: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 3e-3, 1e-2)
    boundary_strength: float = 1e-2  # the L1 and L2 strength of the decision-boundary panel
    hidden: tuple[int, ...] = (64, 64)
    n_train: int = 60
    noise: float = 0.3
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 4000
    eval_every: int = 100


@dataclass(frozen=True)
class WeightDecayConfig:
    """Adam with an L2 term in the loss against AdamW's decoupled decay, at matched coefficients."""

    strengths: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    learning_rate: float = 1e-3
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


@dataclass(frozen=True)
class ActivationsConfig:
    """Activations, their derivatives, gradient norms at init in a deep MLP, and training curves.

    Each activation is paired with the initializer designed for it (Xavier for sigmoid and tanh,
    He for the ReLU family). Training uses plain SGD, which (unlike Adam) feels the gradient's scale.
    """

    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
    depth: int = 10  # weight layers of the deep MLP looked at, at init
    width: int = 64
    batch: int = 256  # training images the gradient at init is taken on
    train_depth: int = 5  # weight layers of the MLP trained
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


@dataclass(frozen=True)
class InitializationConfig:
    """Per-layer activation std at init for four initializers with tanh and ReLU; training curves.

    ``small`` and ``large`` are N(0, std^2) with the given std. Training compares the same four
    (``train_inits`` names them: ``"small normal"``, ``"large normal"``, ``"xavier_normal"``,
    ``"he_normal"``).
    """

    small: float = 0.01
    large: float = 1.0
    activations: tuple[str, ...] = ("tanh", "relu")
    depth: int = 10
    width: int = 64
    batch: int = 256
    train_inits: tuple[str, ...] = ("small normal", "large normal", "xavier_normal", "he_normal")
    train_activations: tuple[str, ...] = ("tanh", "relu")
    train_depth: int = 5
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


@dataclass(frozen=True)
class BatchSizeConfig:
    """Plain SGD at one learning rate with stochastic (1), mini-batch and full-batch gradients.

    ``0`` in ``batch_sizes`` stands for the full batch.
    """

    batch_sizes: tuple[int, ...] = (1, 16, 128, 0)
    learning_rate: float = 0.05
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 25


@dataclass(frozen=True)
class MomentumConfig:
    """Heavy-ball momentum over a sweep of beta, against its EMA form and Nesterov's."""

    betas: tuple[float, ...] = (0.0, 0.5, 0.9, 0.95, 0.99)
    forms: tuple[str, ...] = ("heavy_ball", "ema", "nesterov")
    compare_beta: float = 0.9
    learning_rate: float = 0.01
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


@dataclass(frozen=True)
class LossesConfig:
    """Cross-entropy against mean squared error on one-hot targets, same network and optimizer."""

    losses: tuple[str, ...] = ("cross_entropy", "mse_classification")
    optimizer: str = "adam"
    learning_rates: tuple[float, ...] = (1e-3, 1e-2)
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


@dataclass(frozen=True)
class VerificationConfig:
    """Per-step relative error of every hand-written optimizer against its optax namesake."""

    optimizers: tuple[str, ...] = OPTIMIZER_NAMES
    learning_rate: float = 1e-2
    dtypes: tuple[str, ...] = ("float32", "bfloat16", "float64")
    schedule: bool = True  # also run with an oscillating learning-rate schedule
    steps: int = 1000
    seeds: int = 2


@dataclass(frozen=True)
class SpeedConfig:
    """The sweep engine's time against the number of runs, from ``benchmarks/sweep.py``'s JSON files.

    The first path (the CPU run) is required for a measured figure; later ones (another device's
    run, recorded there with ``--out``) are drawn beside it when present.
    """

    paths: tuple[str, ...] = SPEED_JSONS


# ----------------------------------------------------------------------------- helpers


DIGITS_HIDDEN = (128,)


def _digits(**kw):
    from lab.problems import Problem

    return Problem("digits", **{"hidden": DIGITS_HIDDEN, "activation": "relu", "init": "he_normal", **kw})


def _sweep(ctx: Context, problem, optimizer: str, grid: dict, *, name: str, fixed: dict | None = None,
           keep_params: bool = False, **kw):
    from lab.sweep import SweepConfig, run_sweep

    config = SweepConfig.make(problem, optimizer, grid, fixed or {}, name=name, **kw)
    return run_sweep(config, store_dir=ctx.store_dir, force=ctx.force, quiet=ctx.quiet,
                     keep_params=keep_params)


_PACKED = ("seed", "logged_steps", "train_loss", "eval_steps", "train_loss_eval", "test_loss",
           "test_accuracy", "diverged", "diverged_step", "weight_norm", "near_zero_fraction")


def _pack(record: Record, prefix: str, result, mask: np.ndarray | None = None) -> None:
    """Copy a sweep's per-run arrays (``mask``-selected runs) into ``record`` under ``prefix.``."""
    runs = np.ones(result.runs, bool) if mask is None else mask
    for name in _PACKED:
        value = np.asarray(getattr(result, name))
        per_run = name not in ("logged_steps", "eval_steps")
        record.arrays[f"{prefix}.{name}"] = value[runs] if per_run else value
    for name, value in result.hparams.items():
        record.arrays[f"{prefix}.hp.{name}"] = value[runs]
    record.meta.setdefault("sweeps", {})[prefix] = {
        "runs": int(result.runs), "steps": int(result.config.steps), "optimizer": result.config.optimizer,
        "wall_seconds": float(result.wall_seconds), "compile_seconds": float(result.compile_seconds),
    }


def _fmt_mean_std(values: np.ndarray, fmt: str = ".3f") -> str:
    values = np.asarray(values, np.float64)
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return "diverged"
    text = f"{finite.mean():{fmt}} +- {finite.std():{fmt}}"
    return text if finite.size == values.size else f"{text} ({values.size - finite.size} diverged)"


def _final(result, name: str, mask: np.ndarray | None = None) -> np.ndarray:
    values = np.asarray(getattr(result, name))[:, -1]
    return values if mask is None else values[mask]


# ----------------------------------------------------------------------------- runners


def _tune(cfg: OptimizersConfig, ctx: Context, optimizer: str):
    """The learning-rate sweep on the validation problem: its ``test_*`` metrics are validation ones."""
    return _sweep(ctx, _digits(validation=True), optimizer, {"learning_rate": cfg.learning_rates},
                  name=f"tune-{optimizer}", seeds=cfg.tune_seeds, steps=cfg.steps, batch_size=cfg.batch_size,
                  eval_every=cfg.eval_every, log_every=10)


def run_optimizers(cfg: OptimizersConfig, ctx: Context) -> Record:
    """Tune each optimizer on one shared learning-rate grid, rerun its best over ``seeds`` seeds."""
    from lab.analysis import steps_to_target

    record = Record(meta={"target": cfg.target})
    rows = []
    for opt in cfg.optimizers:
        tune = _tune(cfg, ctx, opt)
        best = tune.best("test_loss")["learning_rate"]  # the validation loss (see _tune)
        final = _sweep(ctx, _digits(), opt, {"learning_rate": (best,)}, name=f"best-{opt}",
                       seeds=cfg.seeds, steps=cfg.steps, batch_size=cfg.batch_size,
                       eval_every=cfg.eval_every, log_every=10)
        _pack(record, f"{opt}.tune", tune)
        _pack(record, f"{opt}.final", final)
        acc = record.arrays[f"{opt}.final.test_accuracy"]
        hits = steps_to_target(record.arrays[f"{opt}.final.eval_steps"], acc, cfg.target)
        record.arrays[f"{opt}.steps_to_target"] = hits
        record.meta.setdefault("best_learning_rate", {})[opt] = best
        reached = hits[np.isfinite(hits)]
        train_loss = record.arrays[f"{opt}.final.train_loss_eval"][:, -1]
        rows.append([opt, f"{best:.0e}", _fmt_mean_std(train_loss, ".4f"),
                     _fmt_mean_std(acc[:, -1]),
                     f"{np.median(reached):.0f} ({reached.size}/{hits.size})" if reached.size else "missed"])
    record.meta["summary"] = {"columns": ["optimizer", "best lr", "final train loss", "final test acc",
                                          f"steps to {cfg.target:.0%} (median, hits)"], "rows": rows}
    return record


def run_lr_sensitivity(cfg: OptimizersConfig, ctx: Context) -> Record:
    """The tuning sweeps of :func:`run_optimizers` (reused from the store when it ran first)."""
    record = Record()
    rows = []
    for opt in cfg.optimizers:
        tune = _tune(cfg, ctx, opt)
        _pack(record, opt, tune)
        loss = tune.grid_view("train_loss_eval")[..., -1]  # (lrs, seeds)
        ok = ~tune.grid_view("diverged")
        stable = [lr for lr, good in zip(cfg.learning_rates, ok.all(axis=1), strict=True) if good]
        best = tune.best("test_loss")["learning_rate"]  # chosen on validation loss, as in run_optimizers
        best_loss = np.where(np.isfinite(loss).all(axis=1), loss.mean(axis=1), np.inf).min()
        rows.append([opt, f"{best:.0e}", f"{best_loss:.4f}",
                     f"{min(stable):.0e} .. {max(stable):.0e}" if stable else "none"])
    record.meta["summary"] = {"columns": ["optimizer", "best lr", "best final train loss",
                                          "lrs without divergence"], "rows": rows}
    return record


def run_trajectories(cfg: TrajectoriesConfig, ctx: Context) -> Record:
    """Every optimizer on every surface for every learning rate (one program per optimizer)."""
    import jax.numpy as jnp

    from lab import optim
    from lab.analysis import best_paths, surface_paths
    from lab.data import TEST_FUNCTIONS

    del ctx  # nothing is trained through the sweep store
    record = Record()
    lrs = np.asarray(cfg.learning_rates, np.float32)
    record.arrays["learning_rates"] = lrs
    for s in cfg.surfaces:
        spec = TEST_FUNCTIONS[s]
        xs = np.linspace(*spec.xlim, cfg.resolution, dtype=np.float32)
        ys = np.linspace(*spec.ylim, cfg.resolution, dtype=np.float32)
        grid = np.stack(np.meshgrid(xs, ys), axis=-1)
        record.arrays[f"surface.{s}.x"], record.arrays[f"surface.{s}.y"] = xs, ys
        record.arrays[f"surface.{s}.z"] = np.asarray(spec.fn(jnp.asarray(grid)))
    rows = []
    for opt in cfg.optimizers:
        points, values = surface_paths(jnp.asarray(lrs), optimizer=optim.get_optimizer(opt),
                                       surfaces=cfg.surfaces, steps=cfg.steps)
        best = best_paths(lrs, np.asarray(points), np.asarray(values), cfg.surfaces)
        for k, v in best.items():
            record.arrays[f"{opt}.{k}"] = v
        rows.append([opt, *(f"{lr:.1e} -> {val:.3g}" for lr, val in zip(best["learning_rate"],
                                                                        best["values"][:, -1], strict=True))])
    record.meta["summary"] = {"columns": ["optimizer", *(f"{s}: lr -> final f" for s in cfg.surfaces)],
                              "rows": rows}
    return record


def run_regularization(cfg: RegularizationConfig, ctx: Context) -> Record:
    """L1 and L2 strength sweeps (strength 0 = none), weight magnitudes, and decision boundaries."""
    import jax

    from lab.analysis import decision_grid, magnitude_histogram
    from lab.problems import Problem, load_data

    problem = Problem("moons", hidden=cfg.hidden, activation="relu", init="he_normal", n_train=cfg.n_train,
                      noise=cfg.noise)
    data = load_data(problem)
    record = Record(meta={"boundary_strength": cfg.boundary_strength})
    lim = ((-1.5, 2.5), (-1.25, 1.75))
    record.arrays["x_train"], record.arrays["y_train"] = np.asarray(data.x_train), np.asarray(data.y_train)
    record.arrays["xlim"], record.arrays["ylim"] = np.asarray(lim[0]), np.asarray(lim[1])
    edges = np.concatenate([[0.0], np.logspace(-8, 1, 46)]).astype(np.float32)
    record.arrays["magnitude_edges"] = edges
    rows, boundary = [], []
    for kind in ("l1", "l2"):
        result = _sweep(ctx, problem, cfg.optimizer, {kind: (0.0, *cfg.strengths)}, name=f"reg-{kind}",
                        fixed={"learning_rate": cfg.learning_rate}, seeds=cfg.seeds, steps=cfg.steps,
                        batch_size=None, eval_every=cfg.eval_every, keep_params=True)
        _pack(record, kind, result)
        record.arrays[f"{kind}.magnitude_hist"] = magnitude_histogram(result.final_params, edges)
        for s in cfg.strengths:
            m = result.select(**{kind: s})
            rows.append([kind, f"{s:g}", _fmt_mean_std(_final(result, "train_loss_eval", m), ".3f"),
                         _fmt_mean_std(_final(result, "test_loss", m), ".3f"),
                         _fmt_mean_std(result.near_zero_fraction[m], ".3f")])
        strengths = (0.0, cfg.boundary_strength) if kind == "l1" else (cfg.boundary_strength,)
        for s in strengths:
            run = int(np.flatnonzero(result.select(**{kind: s}, seed=0))[0])
            boundary.append(jax.tree.map(lambda leaf, run=run: leaf[run], result.final_params))
    params = jax.tree.map(lambda *leaves: np.stack(leaves), *boundary)
    record.arrays["boundary"] = np.asarray(decision_grid(params, activation="relu", xlim=lim[0], ylim=lim[1],
                                                         resolution=150))
    record.meta["summary"] = {"columns": ["penalty", "strength", "final train loss", "final test loss",
                                          "near-zero weights"], "rows": rows}
    return record


def run_weight_decay(cfg: WeightDecayConfig, ctx: Context) -> Record:
    """Adam + L2 penalty vs AdamW at the same coefficients (0 included once, as plain Adam)."""
    record = Record()
    fixed = {"learning_rate": cfg.learning_rate}
    kw = dict(seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every, log_every=10)
    adam = _sweep(ctx, _digits(), "adam", {"l2": (0.0, *cfg.strengths)}, name="wd-adam-l2", fixed=fixed, **kw)
    adamw = _sweep(ctx, _digits(), "adamw", {"weight_decay": cfg.strengths}, name="wd-adamw", fixed=fixed,
                   **kw)
    _pack(record, "adam_l2", adam)
    _pack(record, "adamw", adamw)
    rows = []
    for s in cfg.strengths:
        a, w = adam.select(l2=s), adamw.select(weight_decay=s)
        rows.append([f"{s:g}", _fmt_mean_std(_final(adam, "test_accuracy", a)),
                     _fmt_mean_std(_final(adamw, "test_accuracy", w)),
                     _fmt_mean_std(adam.weight_norm[a], ".1f"), _fmt_mean_std(adamw.weight_norm[w], ".1f")])
    record.meta["summary"] = {"columns": ["coefficient", "Adam+L2 test acc", "AdamW test acc",
                                          "Adam+L2 |w|", "AdamW |w|"], "rows": rows}
    return record


ACTIVATION_INIT = {"sigmoid": "xavier_normal", "tanh": "xavier_normal", "relu": "he_normal",
                   "leaky_relu": "he_normal", "elu": "he_normal", "identity": "xavier_normal"}


def _init_batch(n: int):
    import jax

    from lab.data import digits

    data = digits(jax.random.key(0))
    return data.x_train[:n], data.y_train[:n]


def run_activations(cfg: ActivationsConfig, ctx: Context) -> Record:
    """Curves, gradient norms at init (deep MLP), and SGD training curves per activation."""
    import jax
    import jax.numpy as jnp

    from lab.analysis import activation_curves, init_stds, layer_gradient_norms

    record = Record(meta={"init": {a: ACTIVATION_INIT[a] for a in cfg.activations}})
    z = jnp.linspace(-4.0, 4.0, 401, dtype=jnp.float32)
    record.arrays["z"] = np.asarray(z)
    for name, (fn, grad) in activation_curves(cfg.activations, z).items():
        record.arrays[f"{name}.fn"], record.arrays[f"{name}.grad"] = fn, grad
    x, y = _init_batch(cfg.batch)
    sizes = (64, *(cfg.width,) * (cfg.depth - 1), 10)
    stds = np.stack([init_stds(ACTIVATION_INIT[a], sizes) for a in cfg.activations])
    keys = jax.random.split(jax.random.key(1), cfg.seeds)
    norms = np.asarray(layer_gradient_norms(keys, x, y, jnp.asarray(stds), sizes=sizes,
                                            activations=cfg.activations))
    rows = []
    for act, act_norms in zip(cfg.activations, norms, strict=True):
        record.arrays[f"{act}.grad_norms"] = act_norms
        problem = _digits(hidden=(cfg.width,) * (cfg.train_depth - 1), activation=act,
                          init=ACTIVATION_INIT[act])
        result = _sweep(ctx, problem, "sgd", {"learning_rate": (cfg.learning_rate,)}, name=f"act-{act}",
                        seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every, log_every=10)
        _pack(record, f"{act}.train", result)
        rows.append([act, ACTIVATION_INIT[act], f"{np.median(act_norms[:, 0]):.2e}",
                     f"{np.median(act_norms[:, -1]):.2e}", _fmt_mean_std(_final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["activation", "init", "|dL/dW_1| at init (median)",
                                          "|dL/dW_last| at init", "final test acc"], "rows": rows}
    return record


def run_initialization(cfg: InitializationConfig, ctx: Context) -> Record:
    """Per-layer activation std at init (small/large normal, Xavier, He) and training curves."""
    import jax
    import jax.numpy as jnp

    from lab.analysis import init_stds, layer_activation_stds

    sizes = (64, *(cfg.width,) * (cfg.depth - 1), 10)
    inits = {"small normal": init_stds("normal", sizes, cfg.small),
             "large normal": init_stds("normal", sizes, cfg.large),
             "xavier_normal": init_stds("xavier_normal", sizes), "he_normal": init_stds("he_normal", sizes)}
    record = Record(meta={"inits": list(inits), "small": cfg.small, "large": cfg.large})
    x, _ = _init_batch(cfg.batch)
    keys = jax.random.split(jax.random.key(2), cfg.seeds)
    pairs = [(act, label) for act in cfg.activations for label in inits]
    table = jnp.asarray(np.stack([inits[label] for _, label in pairs]))
    stds = np.asarray(layer_activation_stds(keys, x, table, sizes=sizes,
                                            activations=tuple(a for a, _ in pairs)))
    rows = []
    for (act, label), pair_stds in zip(pairs, stds, strict=True):
        record.arrays[f"{act}.{label}.stds"] = pair_stds
        rows.append([act, label, f"{pair_stds[:, 0].mean():.3g}", f"{pair_stds[:, -1].mean():.3g}", ""])
    for act in cfg.train_activations:
        for init in cfg.train_inits:
            name, std = {"small normal": ("normal", cfg.small), "large normal": ("normal", cfg.large)}.get(
                init, (init, None))
            problem = _digits(hidden=(cfg.width,) * (cfg.train_depth - 1), activation=act, init=name,
                              init_std=std)
            result = _sweep(ctx, problem, "sgd", {"learning_rate": (cfg.learning_rate,)},
                            name=f"init-{act}-{init.replace(' ', '-')}", seeds=cfg.seeds, steps=cfg.steps,
                            eval_every=cfg.eval_every, log_every=10)
            _pack(record, f"{act}.{init}.train", result)
            rows.append([act, init, "", "", _fmt_mean_std(_final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["activation", "init", "std layer 1", "std last hidden",
                                          "final test acc (training)"], "rows": rows}
    return record


def run_batch_size(cfg: BatchSizeConfig, ctx: Context) -> Record:
    """Plain SGD at one learning rate with each batch size (0 = full batch)."""
    from lab.problems import load_data

    n = int(load_data(_digits()).x_train.shape[0])
    record = Record(meta={"n_train": n, "batch_sizes": list(cfg.batch_sizes)})
    rows = []
    for bs in cfg.batch_sizes:
        result = _sweep(ctx, _digits(), "sgd", {"learning_rate": (cfg.learning_rate,)},
                        name=f"batch-{bs or 'full'}",
                        seeds=cfg.seeds, steps=cfg.steps, batch_size=bs or None, eval_every=cfg.eval_every,
                        log_every=10)
        _pack(record, f"b{bs}", result)
        rows.append([str(bs or f"full ({n})"), f"{cfg.steps * (bs or n):,}",
                     _fmt_mean_std(_final(result, "train_loss_eval"), ".4f"),
                     _fmt_mean_std(_final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["batch size", "examples seen", "final train loss",
                                          "final test acc"], "rows": rows}
    return record


MOMENTUM_FORMS = {"heavy_ball": {}, "ema": {"ema": True}, "nesterov": {"nesterov": True}}


def run_momentum(cfg: MomentumConfig, ctx: Context) -> Record:
    """Each momentum form over the beta grid, at one learning rate."""
    record = Record(meta={"compare_beta": cfg.compare_beta})
    rows = []
    for form in cfg.forms:
        fixed = {"learning_rate": cfg.learning_rate, **MOMENTUM_FORMS[form]}
        result = _sweep(ctx, _digits(), "momentum", {"beta": cfg.betas}, name=f"momentum-{form}", fixed=fixed,
                        seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every, log_every=10)
        _pack(record, form, result)
        for b in cfg.betas:
            m = result.select(beta=b)
            rows.append([form, f"{b:g}", _fmt_mean_std(_final(result, "train_loss_eval", m), ".4f"),
                         _fmt_mean_std(_final(result, "test_accuracy", m))])
    record.meta["summary"] = {"columns": ["form", "beta", "final train loss", "final test acc"], "rows": rows}
    return record


def run_losses(cfg: LossesConfig, ctx: Context) -> Record:
    """The same network and optimizer trained on cross-entropy and on MSE to one-hot targets."""
    record = Record(meta={"optimizer": cfg.optimizer})
    rows = []
    for loss in cfg.losses:
        result = _sweep(ctx, _digits(loss=loss), cfg.optimizer, {"learning_rate": cfg.learning_rates},
                        name=f"loss-{loss}", seeds=cfg.seeds, steps=cfg.steps, eval_every=cfg.eval_every,
                        log_every=10)
        _pack(record, loss, result)
        for lr in cfg.learning_rates:
            m = result.select(learning_rate=lr)
            rows.append([loss, f"{lr:g}", _fmt_mean_std(_final(result, "train_loss_eval", m), ".4f"),
                         _fmt_mean_std(_final(result, "test_accuracy", m))])
    record.meta["summary"] = {"columns": ["loss", "lr", "final train loss (its own)", "final test acc"],
                              "rows": rows}
    return record


def _lab_momentum(learning_rate, beta=0.9):
    from lab.optim import momentum

    return momentum(learning_rate, beta=beta)


def _optax_momentum(learning_rate, beta=0.9):
    import optax

    return optax.sgd(learning_rate, momentum=beta)


def run_verification(cfg: VerificationConfig, ctx: Context) -> Record:
    """Every hand-written optimizer against optax on one gradient stream; per-step relative errors.

    ``momentum`` is checked against its optax counterpart ``optax.sgd(momentum=beta)``; the others
    against their optax namesakes, each with ``learning_rate`` (and, where :func:`lab.verify.compare`
    can, an oscillating schedule of it) at optax's defaults otherwise.
    """
    from lab import optim
    from lab.verify import compare

    del ctx
    record = Record(meta={"cases": {}})
    rows = []
    for opt in cfg.optimizers:
        candidate, reference = (_lab_momentum, _optax_momentum) if opt == "momentum" else (
            optim.get_optimizer(opt), opt)
        report = compare(candidate, reference, {"learning_rate": cfg.learning_rate}, steps=cfg.steps,
                         seeds=tuple(range(cfg.seeds)), dtypes=cfg.dtypes, schedule=cfg.schedule)
        record.arrays[f"{opt}.step_errors"] = report.step_errors
        record.arrays[f"{opt}.tolerances"] = report.tolerances
        record.meta["cases"][opt] = report.labels
        reference_name = "optax.sgd(momentum=beta)" if opt == "momentum" else report.reference
        rows.append([opt, reference_name, f"{report.max_rel_error:.2e}", "PASS" if report.passed else "FAIL"])
    record.meta["summary"] = {"columns": ["optimizer", "reference", "max relative error", "verdict"],
                              "rows": rows}
    return record


def run_speed(cfg: SpeedConfig, ctx: Context) -> Record:
    """Read ``benchmarks/sweep.py``'s JSON files (those that exist); nothing is measured here."""
    del ctx
    record = Record(meta={"path": cfg.paths[0], "measured": os.path.exists(cfg.paths[0]), "benchmarks": []})
    rows = []
    for path in cfg.paths if record.meta["measured"] else ():
        if not os.path.exists(path):
            continue
        with open(path) as f:
            bench = json.load(f)
        record.meta["benchmarks"].append(bench)
        rows.append([str(bench.get("device")), str(bench.get("runs")), str(bench.get("steps")),
                     *(f"{bench.get(k)}" for k in ("lab_seconds", "optax_loop_seconds", "torch_seconds"))])
    if not rows:
        command = f"run: python benchmarks/sweep.py --json --out {cfg.paths[0]}"
        rows = [["not measured yet", command, "", "", "", ""]]
    record.meta["summary"] = {"columns": ["device", "runs", "steps", "lab s", "optax loop s", "torch s"],
                              "rows": rows}
    return record


# ----------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Experiment:
    """One comparison: configs (full and quick), how to run it, and the figures drawn from it."""

    name: str
    description: str
    config: Any
    quick: Any
    run: Callable[[Any, Context], Record]
    figures: tuple[str, ...]
    reuse: bool = True  # False: always rerun (it only reads a file that may have changed)
    seeds_field: str = "seeds"  # the config field that --seeds sets

    def make_config(self, quick: bool = False, seeds: int | None = None, steps: int | None = None):
        """The full or quick config, with ``seeds``/``steps`` overridden where given.

        Raises:
            ValueError: if the experiment has no such setting.
        """
        config = self.quick if quick else self.config
        for flag, field_name, value in (("seeds", self.seeds_field, seeds), ("steps", "steps", steps)):
            if value is None:
                continue
            if not hasattr(config, field_name):
                raise ValueError(f"experiment {self.name!r} has no --{flag} setting")
            config = dataclasses.replace(config, **{field_name: value})
        return config


# Quick variants: the same comparisons, small enough for CI (`lab figures --quick`, about 1.5 minutes
# on two cores, most of it compiling one program per sweep). Fewer seeds and steps throughout; fewer
# optimizers, forms, batch sizes and initializers where each costs a compiled sweep. The figure test
# checks the literature's agreed numbers on exactly these.
QUICK = {
    "optimizers": OptimizersConfig(optimizers=("sgd", "adam"), learning_rates=(1e-3, 1e-2, 1e-1),
                                   tune_seeds=2, seeds=2, steps=200),
    "trajectories": TrajectoriesConfig(learning_rates=tuple(float(v) for v in np.logspace(-4, 0, 9)),
                                       steps=200, resolution=100),
    "regularization": RegularizationConfig(strengths=(1e-4, 1e-3, 1e-2), seeds=2, steps=1000),
    "weight_decay": WeightDecayConfig(strengths=(1e-3, 1e-1), seeds=2, steps=200),
    "activations": ActivationsConfig(activations=("sigmoid", "relu"), seeds=2, steps=200),
    "initialization": InitializationConfig(train_activations=("relu",), train_inits=("he_normal",), seeds=2,
                                           steps=200),
    "batch_size": BatchSizeConfig(batch_sizes=(1, 0), seeds=2, steps=200),
    "momentum": MomentumConfig(betas=(0.0, 0.9), forms=("heavy_ball",), seeds=2, steps=200),
    "losses": LossesConfig(learning_rates=(1e-3,), seeds=2, steps=200),
    "verification": VerificationConfig(optimizers=("sgd", "momentum", "adam"), dtypes=("float32",),
                                       schedule=False, steps=200, seeds=1),
}

EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("optimizers", "SGD, Momentum, RMSprop, Adam, AdamW, Adagrad on the digits MLP, each tuned on "
               "the same learning-rate grid, best rerun over seeds; curves and steps-to-target",
               OptimizersConfig(), QUICK["optimizers"], run_optimizers, ("01_optimizers.png",)),
    Experiment("lr_sensitivity", "final training loss against learning rate for every optimizer, with "
               "divergence marked (the tuning sweeps of 'optimizers')",
               OptimizersConfig(), QUICK["optimizers"], run_lr_sensitivity, ("02_lr_sensitivity.png",),
               seeds_field="tune_seeds"),
    Experiment("trajectories", "paths of each optimizer on Rosenbrock, an ill-conditioned quadratic, a "
               "saddle and Beale, each at its tuned learning rate",
               TrajectoriesConfig(), QUICK["trajectories"], run_trajectories, ("03_trajectories.png",)),
    Experiment("regularization", "none vs L1 vs L2 across strengths on an overfitting MLP (two moons): "
               "losses, weight magnitudes, sparsity, decision boundaries",
               RegularizationConfig(), QUICK["regularization"], run_regularization,
               ("04_regularization.png", "04_decision_boundaries.png")),
    Experiment("weight_decay", "Adam with an L2 penalty vs AdamW's decoupled weight decay at matched "
               "coefficients", WeightDecayConfig(), QUICK["weight_decay"], run_weight_decay,
               ("05_weight_decay.png",)),
    Experiment("activations", "activation functions and derivatives, per-layer gradient norms at init in "
               "a 10-layer MLP, training curves", ActivationsConfig(), QUICK["activations"], run_activations,
               ("06_activations.png",)),
    Experiment("initialization", "per-layer activation std at init for small/large normal, Xavier and He "
               "with tanh and ReLU; training curves", InitializationConfig(), QUICK["initialization"],
               run_initialization, ("07_initialization.png",)),
    Experiment("batch_size", "full-batch vs stochastic vs mini-batch SGD, against steps and examples seen",
               BatchSizeConfig(), QUICK["batch_size"], run_batch_size, ("08_batch_size.png",)),
    Experiment("momentum", "a sweep of beta; heavy-ball vs its EMA form vs Nesterov",
               MomentumConfig(), QUICK["momentum"], run_momentum, ("09_momentum.png",)),
    Experiment("losses", "cross-entropy vs mean squared error for classification",
               LossesConfig(), QUICK["losses"], run_losses, ("10_losses.png",)),
    Experiment("verification", "per-step relative error of each hand-written optimizer against optax, "
               "with the dtype's tolerance", VerificationConfig(), QUICK["verification"], run_verification,
               ("11_verification.png",)),
    Experiment("speed", "the sweep engine's time against the number of runs, beside the baselines of "
               "benchmarks/sweep.py (read from its JSON, never rerun here)",
               SpeedConfig(), SpeedConfig(), run_speed, ("12_speed.png",), reuse=False),
)}


def get_experiment(name: str) -> Experiment:
    """Look an experiment up by name; ``ValueError`` listing the valid ones otherwise."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; valid: {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]


# ----------------------------------------------------------------------------- records on disk


def config_hash(name: str, config) -> str:
    """12 hex digits identifying an experiment's record: its name, config and record version."""
    text = json.dumps({"name": name, "config": dataclasses.asdict(config), "version": RECORD_VERSION},
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def record_dir(results_dir: str, name: str, config) -> str:
    return os.path.join(results_dir, "experiments", f"{name}-{config_hash(name, config)}")


def save_record(directory: str, record: Record) -> None:
    """Save atomically: ``record.npz`` first, then ``record.json`` (with the npz's hash) marks it done."""
    from lab.sweep import store as results

    side = os.path.join(directory, RECORD_JSON)
    if os.path.exists(side):
        os.unlink(side)
    digest = results.save_npz(os.path.join(directory, RECORD_NPZ), record.arrays)
    results.save_json(side, {"complete": True, "npz_sha256": digest, "version": RECORD_VERSION,
                             "meta": record.meta})


def load_record(directory: str) -> Record | None:
    """The complete record in ``directory``, or None if there is none (or it is incomplete)."""
    from lab.sweep import store as results

    npz, side = os.path.join(directory, RECORD_NPZ), os.path.join(directory, RECORD_JSON)
    if not (os.path.exists(npz) and os.path.exists(side)):
        return None
    with open(side) as f:
        meta = json.load(f)
    if not meta.get("complete") or meta.get("npz_sha256") != results.sha256(npz):
        return None
    return Record(results.load_npz(npz), meta["meta"])


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
    save_record(directory, record)
    return record
