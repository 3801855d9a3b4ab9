"""Per-layer activation std at init for four initializers with tanh and ReLU, and training curves.

    lab run initialization [--quick]

``small`` and ``large`` are N(0, std^2) with the given std. Training compares the same four
(``train_inits`` names them: ``"small normal"``, ``"large normal"``, ``"xavier_normal"``,
``"he_normal"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lab import plotting
from lab.experiments.common import Context, digits, final, init_batch, mean_std, sweep
from lab.experiments.record import Record

DESCRIPTION = ("per-layer activation std at init for small/large normal, Xavier and He with tanh and ReLU; "
               "training curves")
FIGURES = ("07_initialization.png",)
INITS = ("small normal", "large normal", "xavier_normal", "he_normal")


@dataclass(frozen=True)
class Config:
    """Per-layer activation std at init for four initializers with tanh and ReLU; training curves."""

    small: float = 0.01
    large: float = 1.0
    activations: tuple[str, ...] = ("tanh", "relu")
    depth: int = 10
    width: int = 64
    batch: int = 256
    train_inits: tuple[str, ...] = INITS
    train_activations: tuple[str, ...] = ("tanh", "relu")
    train_depth: int = 5
    learning_rate: float = 0.1
    seeds: int = 5
    steps: int = 1000
    eval_every: int = 50


def quick() -> Config:
    return Config(train_activations=("relu",), train_inits=("he_normal",), seeds=2, steps=200)


def run(cfg: Config, ctx: Context) -> Record:
    """Per-layer activation std at init (small/large normal, Xavier, He) and training curves."""
    import jax
    import jax.numpy as jnp

    from lab.analysis import init_stds, layer_activation_stds

    sizes = (64, *(cfg.width,) * (cfg.depth - 1), 10)
    inits = {"small normal": init_stds("normal", sizes, cfg.small),
             "large normal": init_stds("normal", sizes, cfg.large),
             "xavier_normal": init_stds("xavier_normal", sizes), "he_normal": init_stds("he_normal", sizes)}
    record = Record(meta={"inits": list(inits), "small": cfg.small, "large": cfg.large})
    x, _ = init_batch(cfg.batch)
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
            problem = digits(hidden=(cfg.width,) * (cfg.train_depth - 1), activation=act, init=name,
                             init_std=std)
            result = record.sweeps[f"{act}.{init}"] = sweep(
                ctx, problem, "sgd", {"learning_rate": (cfg.learning_rate,)},
                name=f"init-{act}-{init.replace(' ', '-')}", seeds=cfg.seeds, steps=cfg.steps,
                eval_every=cfg.eval_every, log_every=10)
            rows.append([act, init, "", "", mean_std(final(result, "test_accuracy"))])
    record.meta["summary"] = {"columns": ["activation", "init", "std layer 1", "std last hidden",
                                          "final test acc (training)"], "rows": rows}
    return record


def draw(record: Record) -> dict:
    a, meta = record.arrays, record.meta
    cfg = meta["config"]
    inits = meta["inits"]
    labels = {"small normal": f"normal, std {meta['small']:g}",
              "large normal": f"normal, std {meta['large']:g}", "xavier_normal": "Xavier (Glorot) normal",
              "he_normal": "He (Kaiming) normal", "normal": f"normal, std {meta['small']:g}"}
    colors = {name: plotting.series_color(i) for i, name in enumerate(INITS)}
    colors["normal"] = colors["small normal"]
    title = (f"Initialization: how the spread of activations evolves with depth ({cfg['depth']}-layer MLP, "
             f"width {cfg['width']}, {cfg['seeds']} seeds), and training from each init")
    fig, axes = plotting.figure(3, width=5.0, height=4.2, title=title)
    for ax, act in zip(axes[0, :2], cfg["activations"], strict=True):
        for name in inits:
            stds = a[f"{act}.{name}.stds"]
            plotting.curve(ax, np.arange(1, stds.shape[1] + 1), stds, color=colors[name], label=labels[name],
                           positive=True)
        ax.set_xticks(np.arange(1, a[f"{act}.{inits[0]}.stds"].shape[1] + 1))
        plotting.style(ax, f"Activation std per hidden layer, {act}", "hidden layer (1 = next to the input)",
                       "std of the layer's outputs (log scale)", logy=True)
    ax = axes[0, 2]
    steps = None
    for j, act in enumerate(cfg["train_activations"]):
        for name in cfg["train_inits"]:
            result = record.sweeps[f"{act}.{name}"]
            steps = result.config.steps
            plotting.sweep_curve(ax, result, "train_loss_eval", color=colors[name],
                                 linestyle=("-", "--", ":")[j % 3], label=f"{act}, {labels[name]}",
                                 positive=True)
    plotting.style(ax, f"Training ({cfg['train_depth']}-layer MLP, SGD lr {cfg['learning_rate']:g}, "
                   f"{steps} steps)", "step (updates)", "training loss (cross-entropy, nats)", logy=True)
    return {"07_initialization.png": fig}
