# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Weight initialization
#
# Before the first step of training, every weight needs a value. All zeros does not work (every
# unit of a layer would compute, and learn, the same thing), so weights are drawn at random. But
# *how spread out* they are decides whether a signal survives the trip through a deep network: too
# small and it fades to nothing layer after layer, too large and it explodes or saturates. This
# notebook compares the lab's initializers: a plain **normal** and **uniform** distribution with a
# fixed small spread, and **Xavier** (Glorot) and **He** (Kaiming), whose spread depends on the
# layer's size. We look at the weights, at how the spread of the activations changes with depth,
# and at training from each.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports. From the lab: `get_initializer(name)` returns a function `(key, fan_in, fan_out)` that
# draws a `(fan_in, fan_out)` weight matrix, and `target_variance` the variance it aims for;
# `init_mlp(key, sizes, init=name)` builds a whole network with it (biases start at 0) and
# `mlp_hidden` returns every hidden layer's output. Training uses `lab.optim.sgd` and the digits.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from lab import accuracy, batch_indices, cross_entropy, digits, init_mlp, mlp
from lab.initializers import get_initializer, target_variance
from lab.models import mlp_hidden
from lab.optim import sgd

# %% [markdown]
# ## The initializers
#
# A layer with $n_\mathrm{in}$ inputs (`fan_in`) and $n_\mathrm{out}$ outputs (`fan_out`) has an
# $n_\mathrm{in} \times n_\mathrm{out}$ weight matrix. Each initializer draws every entry
# independently, with mean 0 and this variance:
#
# | name | distribution | variance of each weight |
# | --- | --- | --- |
# | `normal` | $\mathcal N(0, \sigma^2)$, $\sigma = 0.01$ | $\sigma^2 = 10^{-4}$ |
# | `uniform` | $U(-a, a)$, $a = 0.05$ | $a^2/3 \approx 8.3 \times 10^{-4}$ |
# | `xavier_normal` | normal | $2 / (n_\mathrm{in} + n_\mathrm{out})$ |
# | `xavier_uniform` | $U(-a, a)$, $a = \sqrt{6 / (n_\mathrm{in} + n_\mathrm{out})}$ | the same |
# | `he_normal` | normal | $2 / n_\mathrm{in}$ |
# | `he_uniform` | $U(-a, a)$, $a = \sqrt{6 / n_\mathrm{in}}$ | the same |
#
# Below we draw a 256 x 256 matrix from each and compare the measured variance with the target
# (they should agree to a percent or so), and draw the histograms: for this size Xavier's and He's
# standard deviations (0.063 and 0.088) are six and nine times the plain normal's 0.01.

# %%
NAMES = ("normal", "uniform", "xavier_normal", "xavier_uniform", "he_normal", "he_uniform")
fan_in = fan_out = 256
fig, ax = plt.subplots(figsize=(7, 4))
bins = np.linspace(-0.3, 0.3, 121)
for name in NAMES:
    w = get_initializer(name)(jax.random.key(0), fan_in, fan_out)
    target = target_variance(name, fan_in, fan_out)
    print(f"{name:>15}: measured variance {float(jnp.var(w)):.2e}, target {target:.2e}")
    ax.hist(np.asarray(w).ravel(), bins=bins, histtype="step", density=True, label=name)
ax.set_xlabel("weight value")
ax.set_ylabel("probability density (1 / weight unit)")
ax.set_yscale("log")
ax.set_title(f"Initial weights of a {fan_in} x {fan_out} layer")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Why the variance depends on the layer's size
#
# One unit computes $z = \sum_{i=1}^{\mathrm{fan\_in}} w_i h_i$. With independent, zero-mean weights,
# the variances add up: $\mathrm{Var}[z] = \mathrm{fan\_in} \cdot \mathrm{Var}[w] \cdot
# \mathbb E[h^2]$. For the signal to keep its size from layer to layer we need
# $\mathrm{fan\_in} \cdot \mathrm{Var}[w] \approx 1$ for tanh (which is about the identity near 0),
# and $\approx 2$ for ReLU, which sets half of its inputs to 0 and so halves $\mathbb E[h^2]$. Xavier
# takes $2/(\mathrm{fan\_in} + \mathrm{fan\_out})$, a compromise between the forward pass
# ($1/\mathrm{fan\_in}$) and the backward pass ($1/\mathrm{fan\_out}$); He takes $2/\mathrm{fan\_in}$.
# A fixed $\sigma = 0.01$ gives $\mathrm{fan\_in} \cdot \mathrm{Var}[w] = 0.0128$ for 128 inputs: the
# signal shrinks about 9-fold at every layer.
#
# Let us watch it. A deep network (20 hidden layers of 128 units) gets a batch of 512 digit images,
# and we measure the standard deviation of every hidden layer's output, for tanh and for ReLU, with
# four initializers. The y axis is logarithmic: a straight falling line is a signal that shrinks by
# the same factor at every layer.

# %%
data = digits(jax.random.key(0))
x = data.x_train[:512]
depth, width = (8, 128) if QUICK else (20, 128)
deep_sizes = (64, *[width] * depth, 10)
SPREAD = ("normal", "uniform", "xavier_normal", "he_normal")

fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
for ax, activation in zip(axes, ("tanh", "relu"), strict=True):
    for name in SPREAD:
        hidden = mlp_hidden(init_mlp(jax.random.key(1), deep_sizes, init=name), x, activation)
        ax.semilogy(range(1, depth + 1), [float(jnp.std(h)) for h in hidden], "o-", label=name)
    ax.set_xlabel("hidden layer (1 = next to the input)")
    ax.set_title(f"{activation}: spread of the activations with depth")
    ax.grid(alpha=0.3)
axes[0].set_ylabel("std of the layer's outputs (activation units)")
axes[0].legend()
plt.show()

# %% [markdown]
# Read the two panels:
#
# * `normal` (0.01) and `uniform` (0.05) shrink the signal at every layer; after 20 layers it is
#   gone (below $10^{-10}$ with ReLU). The gradients of the lower layers shrink with it.
# * With **tanh**, Xavier keeps the spread nearly steady (it falls slowly, because tanh is a little
#   flatter than the identity), and He's larger weights keep it higher, near tanh's saturation.
# * With **ReLU**, Xavier loses a factor $\sqrt 2$ per layer (it does not account for the zeroed
#   half), and He holds the spread constant, as designed.
#
# ## Training from each initialization
#
# Does it matter once training starts? We train a 6-layer ReLU network (5 hidden layers of 64 units)
# on the digits with plain SGD (learning rate 0.05, batches of 64), from each initializer and several
# seeds. All runs have parameters of the same shapes, so we stack them along a leading "run" axis and
# train all of them at once: `jax.vmap` maps the training function over the runs and `jax.lax.scan`
# runs the steps inside one compiled program. Every run sees the same batches
# (`lab.batch_indices` with one key).

# %%
steps = 20 if QUICK else 800
seeds = 1 if QUICK else 4
train_sizes = (64, 64, 64, 64, 64, 64, 10)
n = data.x_train.shape[0]
opt = sgd(learning_rate=0.05)
runs = [(name, seed) for name in SPREAD for seed in range(seeds)]
stacked = jax.tree_util.tree_map(
    lambda *leaves: jnp.stack(leaves),
    *[init_mlp(jax.random.key(100 + seed), train_sizes, init=name) for name, seed in runs])


@jax.jit
def train(stacked):
    """Train every run of `stacked`: (runs, steps) mini-batch losses and (runs,) final test accuracy."""
    def one(params):
        def step(carry, t):
            params, state = carry
            idx = batch_indices(jax.random.key(0), t, n, 64)
            loss, grads = jax.value_and_grad(
                lambda p: cross_entropy(mlp(p, data.x_train[idx], "relu"), data.y_train[idx]))(params)
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
        return losses, accuracy(mlp(params, data.x_test, "relu"), data.y_test)
    return jax.vmap(one)(stacked)


losses, test_accuracy = map(np.asarray, train(stacked))

# %% [markdown]
# The training loss of each initializer (mean over its seeds, smoothed over 20 steps), and the final
# test accuracy. The dashed line is $\log 10 \approx 2.30$, the loss of guessing.

# %%
window = 1 if QUICK else 20
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in SPREAD:
    rows = [i for i, run in enumerate(runs) if run[0] == name]
    mean = np.convolve(losses[rows].mean(axis=0), np.ones(window) / window, mode="valid")
    ax.semilogy(np.arange(len(mean)) + window, mean, label=name)
    print(f"{name:>14}: final test accuracy {test_accuracy[rows].mean():.3f} "
          f"(seeds: {', '.join(f'{a:.3f}' for a in test_accuracy[rows])})")
ax.axhline(np.log(10), color="gray", linestyle="--", linewidth=1)
ax.set_xlabel("step (SGD updates, batch 64)")
ax.set_ylabel(f"training loss (cross-entropy, nats; mean of {window} steps)")
ax.set_title(f"6-layer ReLU MLP from each initializer, mean of {seeds} seeds")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# The small fixed spreads leave the network stuck near the guessing line: the signal and the
# gradients through five layers are too small for SGD to get going (with enough steps it may escape,
# but slowly and depending on the seed). Xavier and He train at once; He, matched to ReLU, is at
# least as fast. Adaptive optimizers such as Adam rescale small gradients and hide part of this
# difference, which is one reason they are popular; a good initialization is still the cheap fix.
#
# ## Exercises
#
# **1.** Compute by hand the standard deviation He uses for a layer with 256 inputs, and check it
# against `target_variance("he_normal", 256, 10)` and a drawn matrix.
#
# **2.** Train the network above from all-zero weights (`init="zeros"`). What happens to the loss,
# and why? (Hint: what is the gradient of a weight whose layer's inputs are all 0?)
#
# **3.** `get_initializer("normal", std=s)` makes a normal initializer with any spread, and `init_mlp`
# accepts it as `init`. Which $s$ keeps the spread of a 128-wide ReLU network's activations
# constant with depth? Check it with the activation-spread experiment.

# %% [markdown]
# <details><summary>Solution</summary>
#
# He's variance is $2/\mathrm{fan\_in} = 2/256$, so the standard deviation is
# $\sqrt{2/256} \approx 0.0884$ (it does not depend on `fan_out`).
#
# ```python
# print(np.sqrt(2 / 256), np.sqrt(target_variance("he_normal", 256, 10)))   # 0.0884 twice
# print(float(jnp.std(get_initializer("he_normal")(jax.random.key(0), 256, 10))))  # about 0.088
# ```
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# zero = init_mlp(jax.random.key(0), train_sizes, init="zeros")
# zero_losses, zero_accuracy = train(jax.tree_util.tree_map(lambda a: a[None], zero))
# print(zero_losses[0, :3], zero_losses[0, -3:], zero_accuracy)
# ```
#
# The loss starts at $\log 10$ and barely moves; the accuracy stays near chance. With zero weights
# every hidden layer outputs 0 (ReLU of 0), so the gradient $h^\top\delta$ of every weight matrix is 0
# and so is every $\delta$ below the output layer (it is multiplied by the zero weights). Only the
# output layer's biases learn, which fits the class frequencies and no more. Random weights break
# this symmetry.
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# A ReLU layer keeps the spread when $\mathrm{fan\_in} \cdot s^2 = 2$: $s = \sqrt{2/128} = 0.125$,
# which is He's rule for this width.
#
# ```python
# init = get_initializer("normal", std=float(np.sqrt(2 / width)))
# hidden = mlp_hidden(init_mlp(jax.random.key(1), deep_sizes, init=init), x, "relu")
# print([round(float(jnp.std(h)), 3) for h in hidden])   # wanders between 0.17 and 0.28, no steady fall
# ```
#
# </details>
