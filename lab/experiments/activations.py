"""Activations, their derivatives, gradient norms at init in a deep MLP, and training curves.

    lab run activations [--quick]

Each activation is paired with the initializer designed for it (Xavier for sigmoid and tanh, He for
the ReLU family). Training uses plain SGD, which (unlike Adam) feels the gradient's scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, digits, final, init_batch, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = ("activation functions and derivatives, per-layer gradient norms at init in a 10-layer MLP, "
               "training curves")
FIGURES = ("06_activations.png",)
ACTIVATION_INIT = {"sigmoid": "xavier_normal", "tanh": "xavier_normal", "relu": "he_normal",
                   "leaky_relu": "he_normal", "elu": "he_normal", "identity": "xavier_normal"}


@dataclass(frozen=True)
class Config:
    """Each activation with its initializer: at init in a deep MLP, and trained by SGD."""

    activations: tuple[str, ...] = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")
    depth: int = 10  # weight layers of the deep MLP looked at, at init
    width: int = 64
    batch: int = 256  # training images the gradient at init is taken on
    train_depth: int = 5  # weight layers of the MLP trained
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


def quick() -> Config:
    return Config(activations=("sigmoid", "relu"), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """Curves, gradient norms at init (deep MLP), and SGD training curves per activation."""
    import jax
    import jax.numpy as jnp

    from lab.analysis import activation_curves, init_stds, layer_gradient_norms

    record = Record(meta={"init": {a: ACTIVATION_INIT[a] for a in cfg.activations}})
    z = jnp.linspace(-4.0, 4.0, 401, dtype=jnp.float32)
    record.arrays["z"] = np.asarray(z)
    for name, (fn, grad) in activation_curves(cfg.activations, z).items():
        record.arrays[f"{name}.fn"], record.arrays[f"{name}.grad"] = fn, grad
    x, y = init_batch(cfg.batch)
    sizes = (64, *(cfg.width,) * (cfg.depth - 1), 10)
    stds = np.stack([init_stds(ACTIVATION_INIT[a], sizes) for a in cfg.activations])
    keys = jax.random.split(jax.random.key(1), cfg.seeds)
    norms = np.asarray(layer_gradient_norms(keys, x, y, jnp.asarray(stds), sizes=sizes,
                                            activations=cfg.activations))
    rows = []
    for act, act_norms in zip(cfg.activations, norms, strict=True):
        record.arrays[f"{act}.grad_norms"] = act_norms
        problem = digits(hidden=(cfg.width,) * (cfg.train_depth - 1), activation=act,
                         init=ACTIVATION_INIT[act])
        result = record.sweeps[act] = sweep(ctx, problem, "sgd", {"learning_rate": (cfg.learning_rate,)},
                                            name=f"act-{act}", seeds=cfg.seeds, steps=cfg.steps,
                                            eval_every=cfg.eval_every, log_every=10)
        rows.append([act, ACTIVATION_INIT[act], f"{np.median(act_norms[:, 0]):.2e}",
                     f"{np.median(act_norms[:, -1]):.2e}", mean_std(final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["activation", "init", "|dL/dW_1| at init (median)",
                                          "|dL/dW_last| at init", "final test acc"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    a, meta = record.arrays, record.meta
    cfg = meta["config"]
    acts = cfg["activations"]
    seeds, layers = a[f"{acts[0]}.grad_norms"].shape
    trained = record.sweeps[acts[0]].config
    title = "Activation functions, their derivatives, and what they do to gradients"
    fig, axes = plotting.figure(2, 2, width=5.8, height=4.2, title=title)
    color, linestyle = plotting.series_color, plotting.series_linestyle
    for i, act in enumerate(acts):
        for ax, what in ((axes[0, 0], "fn"), (axes[0, 1], "grad")):
            ax.plot(a["z"], a[f"{act}.{what}"], color=color(i), linestyle=linestyle(i), label=act,
                    linewidth=1.6)
    axes[0, 0].set_ylim(-1.5, 4.0)
    plotting.style(axes[0, 0], "Activation f(z)", "pre-activation z", "f(z)")
    plotting.style(axes[0, 1], "Derivative f'(z) (sigmoid's is at most 1/4)", "pre-activation z", "f'(z)")
    layer_idx = np.arange(1, layers + 1)
    for i, act in enumerate(acts):
        plotting.curve(axes[1, 0], layer_idx, a[f"{act}.grad_norms"], color=color(i), linestyle=linestyle(i),
                       label=f"{act} + {meta['init'][act]}")
    axes[1, 0].set_xticks(layer_idx)
    plotting.style(axes[1, 0], f"Gradient norm per layer at initialization ({layers}-layer MLP, width 64, "
                   f"{seeds} seeds)", "layer (1 = next to the input)", "‖∂L/∂W‖_F (log scale)", logy=True)
    for i, act in enumerate(acts):
        plotting.sweep_curve(axes[1, 1], record.sweeps[act], "train_loss_eval", color=color(i),
                             linestyle=linestyle(i), label=act, positive=True)
    plotting.style(axes[1, 1], f"Training ({cfg['train_depth']}-layer MLP, SGD lr {cfg['learning_rate']:g}, "
                   f"{trained.seeds} seeds, {trained.steps} steps)", "step (updates)",
                   "training loss (cross-entropy, nats)", logy=True)
    return {"06_activations.png": fig}
