"""Numerics behind the figures that are not sweeps: looks at a network at initialization, paths of
optimizers on 2D surfaces, and small summaries of sweep results.

Everything here is a pure function of arrays and explicit PRNG keys; nothing touches files or
imports matplotlib. Work over seeds, learning rates and surfaces is ``vmap``-ed inside one ``jit``,
never a Python loop over jitted steps:

- :func:`layer_gradient_norms`: ``||dL/dW_l||_F`` of every layer at initialization, for every
  (activation, initialization) pair and seed, as one program;
- :func:`layer_activation_stds`: the standard deviation of every hidden layer's output at init;
- :func:`surface_paths`: one optimizer on every 2D surface for every learning rate of a grid, as
  one ``lax.scan`` (the surface is picked by ``lax.switch``, so all surfaces share the program);
- :func:`path_score`, :func:`best_paths`: the learning rate tuned per surface, and its path;
- :func:`decision_grid`: a classifier's probability of class 1 on a 2D grid, for every run;
- :func:`activation_curves`: each activation and its derivative on a grid;
- :func:`magnitude_histogram`: how many weights fall in each (log-spaced) magnitude bin, per run;
- :func:`steps_to_target`: the first evaluated step at which a run reaches a target accuracy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.activations import Activation, get_activation
from lab.data import TEST_FUNCTIONS
from lab.initializers import normal
from lab.losses import get_loss
from lab.models import init_mlp, mlp, mlp_hidden

Array = jax.Array
OptimizerFactory = Callable[[Array], optax.GradientTransformation]  # learning_rate -> transformation


# ----------------------------------------------------------------------------- at initialization


def init_stds(init: str, sizes: Sequence[int], std: float | None = None) -> np.ndarray:
    """Per-layer weight std of a normal-family initializer: (layers,) float32.

    ``init`` is ``"normal"`` (with ``std``, default 0.01), ``"xavier_normal"`` or ``"he_normal"``
    (or an alias); the std is the square root of :func:`lab.initializers.target_variance`.
    """
    from lab.initializers import target_variance

    kwargs = {} if std is None else {"std": std}
    return np.sqrt([target_variance(init, fan_in, fan_out, **kwargs)
                    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True)]).astype(np.float32)


def _scaled_mlp(key: Array, sizes: tuple[int, ...], stds: Array):
    """``init_mlp`` with layer ``l``'s weights ``stds[l] * N(0, 1)``: the same draws as any normal init."""
    params = init_mlp(key, sizes, functools.partial(normal, std=1.0))
    return [{"w": layer["w"] * stds[i], "b": layer["b"]} for i, layer in enumerate(params)]


def _switched(activations: tuple[str, ...], index: Array) -> Activation:
    """The activation ``activations[index]`` for a traced ``index`` (``lax.switch`` picks it)."""
    picked = [get_activation(a) for a in activations]
    fns, grads = [a.fn for a in picked], [a.grad for a in picked]
    return Activation("switched", lambda z: jax.lax.switch(index, fns, z),
                      lambda z: jax.lax.switch(index, grads, z))


@functools.partial(jax.jit, static_argnames=("sizes", "activations", "loss"))
def layer_gradient_norms(keys: Array, x: Array, y: Array, stds: Array, *, sizes: tuple[int, ...],
                         activations: tuple[str, ...], loss: str = "cross_entropy") -> Array:
    """Frobenius norm of the loss gradient with respect to each layer's weights, at initialization.

    Every (activation, initialization) pair of a comparison is one program: ``vmap`` over pairs
    (``lax.switch`` picks the activation) and over seeds.

    Args:
        keys: (seeds,) PRNG keys; seed ``s`` draws the weights as ``init_mlp(keys[s], sizes, ...)``.
        x: (batch, sizes[0]) inputs; y: (batch,) integer labels.
        stds: (pairs, layers) float32 weight std per layer (see :func:`init_stds`); biases are 0.
        sizes: layer widths ``(d_in, hidden..., d_out)``.
        activations: (pairs,) activation names, pair ``i`` uses ``activations[i]`` and ``stds[i]``.
        loss: a name in :mod:`lab.losses`.

    Returns:
        (pairs, seeds, layers) float32: ``||dL/dW_l||_F``, layer 0 nearest the input.
    """
    loss_fn = get_loss(loss)
    names = tuple(dict.fromkeys(activations))

    def one(index, layer_stds, key):
        act = _switched(names, index)
        grads = jax.grad(lambda p: loss_fn(mlp(p, x, act), y))(_scaled_mlp(key, sizes, layer_stds))
        return jnp.stack([jnp.sqrt(jnp.sum(jnp.square(g["w"]))) for g in grads])

    index = jnp.asarray([names.index(a) for a in activations], jnp.int32)
    over_seeds = jax.vmap(one, in_axes=(None, None, 0))
    return jax.vmap(over_seeds, in_axes=(0, 0, None))(index, stds, keys)


@functools.partial(jax.jit, static_argnames=("sizes", "activations"))
def layer_activation_stds(keys: Array, x: Array, stds: Array, *, sizes: tuple[int, ...],
                          activations: tuple[str, ...]) -> Array:
    """Standard deviation (over batch and units) of each hidden layer's output at initialization.

    Args: as :func:`layer_gradient_norms` (no labels).

    Returns:
        (pairs, seeds, hidden layers) float32, layer 0 nearest the input.
    """
    names = tuple(dict.fromkeys(activations))

    def one(index, layer_stds, key):
        hidden = mlp_hidden(_scaled_mlp(key, sizes, layer_stds), x, _switched(names, index))
        return jnp.stack([jnp.std(h) for h in hidden])

    index = jnp.asarray([names.index(a) for a in activations], jnp.int32)
    over_seeds = jax.vmap(one, in_axes=(None, None, 0))
    return jax.vmap(over_seeds, in_axes=(0, 0, None))(index, stds, keys)


# ----------------------------------------------------------------------------- 2D surfaces


def _surface_path(optimizer: OptimizerFactory, fns: tuple[Callable, ...], steps: int,
                  index: Array, start: Array, learning_rate: Array) -> tuple[Array, Array]:
    """One optimizer's path on surface ``fns[index]``: (steps+1, 2) points and (steps+1,) values."""
    opt = optimizer(learning_rate)

    def f(p):
        return jax.lax.switch(index, fns, p)

    def step(carry, _):
        p, state = carry
        value, grad = jax.value_and_grad(f)(p)
        updates, state = opt.update(grad, state, p)
        return (optax.apply_updates(p, updates), state), (p, value)

    (last, _), (points, values) = jax.lax.scan(step, (start, opt.init(start)), None, length=steps)
    return (jnp.concatenate([points, last[None]]), jnp.concatenate([values, f(last)[None]]))


@functools.partial(jax.jit, static_argnames=("optimizer", "surfaces", "steps"))
def surface_paths(learning_rates: Array, *, optimizer: OptimizerFactory, surfaces: tuple[str, ...],
                  steps: int) -> tuple[Array, Array]:
    """Run ``optimizer`` from each surface's standard start, for every learning rate, ``steps`` steps.

    One compiled program per optimizer: ``vmap`` over surfaces (``lax.switch`` picks the function)
    and over learning rates, ``lax.scan`` over steps. A path that overflows turns NaN/inf and stays so.

    Args:
        learning_rates: (lrs,) float32, passed to ``optimizer`` as a traced array.
        optimizer: ``learning_rate -> optax.GradientTransformation`` (hashable, e.g. a module-level
            function or ``functools.partial``).
        surfaces: names in :data:`lab.data.TEST_FUNCTIONS`.
        steps: number of optimizer steps.

    Returns:
        ``points`` (surfaces, lrs, steps+1, 2) and ``values`` (surfaces, lrs, steps+1), float32;
        index 0 is the start.
    """
    fns = tuple(TEST_FUNCTIONS[s].fn for s in surfaces)
    starts = jnp.asarray([TEST_FUNCTIONS[s].start for s in surfaces], jnp.float32)
    path = functools.partial(_surface_path, optimizer, fns, steps)
    over_lrs = jax.vmap(path, in_axes=(None, None, 0))
    return jax.vmap(over_lrs, in_axes=(0, 0, None))(jnp.arange(len(surfaces)), starts, learning_rates)


def path_score(points: np.ndarray, values: np.ndarray, surface: str) -> np.ndarray:
    """How good a path is (lower is better): the mean surface value along it, inside the plot window.

    The mean over steps rewards getting low *fast*, not only ending low. Points are first clipped
    to the surface's plot window, so on an unbounded surface (the saddle) escaping past the window
    counts as reaching its edge, not as minus infinity. A path that turned NaN or inf scores +inf.

    Args:
        points: (..., steps+1, 2); values: (..., steps+1) (as from :func:`surface_paths`).

    Returns:
        (...,) float64 scores.
    """
    spec = TEST_FUNCTIONS[surface]
    lo = np.array([spec.xlim[0], spec.ylim[0]])
    hi = np.array([spec.xlim[1], spec.ylim[1]])
    finite = np.all(np.isfinite(points), axis=(-2, -1)) & np.all(np.isfinite(values), axis=-1)
    clipped = np.clip(np.nan_to_num(points.astype(np.float64)), lo, hi)
    inside = np.asarray(spec.fn(jnp.asarray(clipped, jnp.float32)), np.float64)
    return np.where(finite, inside.mean(axis=-1), np.inf)


def best_paths(learning_rates: np.ndarray, points: np.ndarray, values: np.ndarray,
               surfaces: Sequence[str]) -> dict[str, np.ndarray]:
    """Per surface, the learning rate with the best :func:`path_score` and its path.

    Returns:
        ``learning_rate`` (surfaces,), ``points`` (surfaces, steps+1, 2), ``values`` (surfaces,
        steps+1), and ``scores`` (surfaces, lrs) for every learning rate tried.
    """
    scores = np.stack([path_score(points[i], values[i], s) for i, s in enumerate(surfaces)])
    best = np.argmin(scores, axis=1)  # ties go to the smaller learning rate (the grid ascends)
    rows = np.arange(len(surfaces))
    return {"learning_rate": np.asarray(learning_rates)[best], "points": points[rows, best],
            "values": values[rows, best], "scores": scores}


# ----------------------------------------------------------------------------- classifiers on a plane


@functools.partial(jax.jit, static_argnames=("activation", "resolution", "xlim", "ylim"))
def decision_grid(params, *, activation: str, xlim: tuple[float, float], ylim: tuple[float, float],
                  resolution: int = 100) -> Array:
    """Probability of class 1 of a two-class MLP on a ``resolution x resolution`` grid, for every run.

    Args:
        params: an MLP's params with a leading run axis on every leaf (as a sweep keeps them).

    Returns:
        (runs, resolution, resolution) float32, rows along y (``[i, j]`` is at ``(x_j, y_i)``).
    """
    xs = jnp.linspace(xlim[0], xlim[1], resolution, dtype=jnp.float32)
    ys = jnp.linspace(ylim[0], ylim[1], resolution, dtype=jnp.float32)
    gx, gy = jnp.meshgrid(xs, ys)
    grid = jnp.stack([gx.ravel(), gy.ravel()], axis=1)

    def one(p):
        logits = mlp(p, grid, activation)
        return jax.nn.softmax(logits, axis=-1)[:, 1].reshape(resolution, resolution)

    return jax.vmap(one)(params)


def activation_curves(names: Sequence[str], z: Array) -> dict[str, np.ndarray]:
    """``{name: (fn(z), grad(z))}`` as numpy, for drawing each activation and its derivative."""
    out = {}
    for name in names:
        act = get_activation(name)
        out[name] = (np.asarray(act.fn(z)), np.asarray(act.grad(z)))
    return out


# ----------------------------------------------------------------------------- sweep summaries


def magnitude_histogram(params, edges: np.ndarray) -> np.ndarray:
    """Counts of ``|w|`` per run in bins ``edges`` (ascending, from 0), over every weight leaf.

    Log-spaced edges show what a linear histogram hides: L1 piles weights up at (nearly) zero,
    L2 only shrinks them. Magnitudes beyond the last edge land in the last bin.

    Args:
        params: a model's params with a leading run axis (numpy or JAX arrays).
        edges: (bins + 1,) ascending bin edges.

    Returns:
        (runs, bins) int64 counts.
    """
    from lab.regularizers import weights

    w = np.concatenate([np.abs(np.asarray(x)).reshape(x.shape[0], -1)
                        for x in weights(params, batch_dims=1)], axis=1)
    bins = len(edges) - 1
    idx = np.clip(np.searchsorted(edges, w, side="right") - 1, 0, bins - 1)
    return np.stack([np.bincount(row[np.isfinite(mag)], minlength=bins)
                     for row, mag in zip(idx, w, strict=True)])


def steps_to_target(eval_steps: np.ndarray, accuracy: np.ndarray, target: float) -> np.ndarray:
    """First evaluated step at which each run's accuracy reaches ``target``; NaN where it never does.

    Args:
        eval_steps: (E,) steps at which accuracy was measured, ascending.
        accuracy: (runs, E).

    Returns:
        (runs,) float64.
    """
    reached = np.asarray(accuracy) >= target
    first = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), np.asarray(eval_steps, np.float64)[first], np.nan)
