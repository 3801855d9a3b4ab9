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
# # 2. Activation functions and vanishing gradients
#
# Between the layers of a network sits an elementwise nonlinearity, the *activation function*.
# Without it, a stack of layers would collapse into one linear map. This notebook looks at the five
# activations of the lab, **sigmoid, tanh, ReLU, Leaky ReLU and ELU**, and at their derivatives,
# because backpropagation multiplies by the derivative once per layer (notebook 1). That product
# decides whether the gradient reaching the first layers of a deep network is useful or vanishingly
# small. We measure it layer by layer, and then train deep networks with each activation.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports. From the lab: `get_activation(name)` returns an `Activation` with the function `fn`
# and its hand-written derivative `grad`; `init_mlp`/`mlp` build and run a network (parameters are a
# list of `{"w", "b"}` dicts, see notebook 1); `digits` is the 8x8 handwritten-digit data set
# (64 pixel inputs, 10 classes); `lab.optim.sgd` is plain gradient descent in optax's form.

# %%
import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from lab import batch_indices, cross_entropy, digits, init_mlp, mlp
from lab.activations import get_activation
from lab.optim import sgd

NAMES = ("sigmoid", "tanh", "relu", "leaky_relu", "elu")

# %% [markdown]
# ## The five functions
#
# | name | $f(z)$ | $f'(z)$ |
# | --- | --- | --- |
# | sigmoid | $1 / (1 + e^{-z})$ | $f(z)\,(1 - f(z))$, at most $1/4$ |
# | tanh | $\tanh z$ | $1 - \tanh^2 z$, at most $1$ |
# | ReLU | $\max(z, 0)$ | $1$ for $z > 0$, else $0$ |
# | Leaky ReLU | $z$ for $z \ge 0$, $0.01\,z$ otherwise | $1$ or $0.01$ |
# | ELU | $z$ for $z > 0$, $e^z - 1$ otherwise | $1$ or $e^z$ |
#
# The left panel draws the functions, the right panel their derivatives: lines are the lab's
# hand-written derivatives, dots are `jax.grad` of the function at a few points (they should sit on
# the lines). Look at the right panel's heights: sigmoid's derivative never exceeds 0.25, and both
# sigmoid and tanh go flat (derivative near 0) once $|z|$ is larger than about 3 ("saturation").
# ReLU's derivative is exactly 1 for every positive input and exactly 0 for every negative one.

# %%
z = jnp.linspace(-4.0, 4.0, 401)
dots = jnp.linspace(-3.5, 3.5, 15)
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
for name in NAMES:
    act = get_activation(name)
    (line,) = left.plot(z, act.fn(z), label=name)
    right.plot(z, act.grad(z), color=line.get_color(), label=name)
    right.plot(dots, jax.vmap(jax.grad(act.fn))(dots), "o", color=line.get_color(), markersize=3)
left.set(xlabel="pre-activation z", ylabel="f(z)", title="Activation functions", ylim=(-1.5, 4))
right.set(xlabel="pre-activation z", ylabel="f'(z)", title="Derivatives (lines: by hand, dots: jax.grad)")
left.legend()
left.grid(alpha=0.3)
right.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## What one layer does to the gradient
#
# In the backward pass, the gradient arriving at a hidden layer is multiplied elementwise by
# $f'(z)$ before it moves on to the layer below (notebook 1: $\delta_{l-1} = (\delta_l W_l^\top)
# \odot f'(z_{l-1})$). So the typical size of $f'(z)$ is a per-layer factor. For pre-activations
# $z$ drawn from a standard normal distribution (roughly what a well-initialized layer produces),
# the table gives the mean of $f'(z)$, the root mean square (what scales the gradient's length), and
# the fraction of inputs where $f'(z) = 0$ exactly (the gradient is cut off completely there).

# %%
samples = jax.random.normal(jax.random.key(0), (100_000,))
print(f"{'activation':>11} {'mean f_prime':>13} {'rms f_prime':>12} {'fraction exactly 0':>19}")
for name in NAMES:
    d = get_activation(name).grad(samples)
    print(f"{name:>11} {float(jnp.mean(d)):13.3f} {float(jnp.sqrt(jnp.mean(d**2))):12.3f} "
          f"{float(jnp.mean(d == 0)):19.3f}")

# %% [markdown]
# ## Gradient norms layer by layer in a deep network
#
# Now a deep network: 10 weight layers, 64 units wide, on a batch of 256 digit images. For each
# activation we take `jax.grad` of the loss at initialization and measure the size (Frobenius norm)
# of the gradient of every weight matrix, from layer 1 (next to the input) to layer 10 (the output
# layer). Each activation gets the initialization designed for it: Xavier (`xavier_normal`) for
# sigmoid and tanh, He (`he_normal`) for the ReLU family (notebook 3 is about initialization). The
# numbers are averaged over several random initializations (seeds): the parameters of all seeds are
# stacked into one pytree with a leading seed axis, and `jax.vmap` runs the seeds at once.

# %%
INIT = {"sigmoid": "xavier_normal", "tanh": "xavier_normal", "relu": "he_normal",
        "leaky_relu": "he_normal", "elu": "he_normal"}
data = digits(jax.random.key(0))
x, y = data.x_train[:256], data.y_train[:256]
depth, width = 10, 64
sizes = (64, *[width] * (depth - 1), 10)
seeds = 2 if QUICK else 8
keys = jax.random.split(jax.random.key(1), seeds)


def init_seeds(init):
    """The parameters of every seed, stacked: each leaf gets a leading (seeds,) axis."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves),
                                  *[init_mlp(k, sizes, init=init) for k in keys])


@functools.partial(jax.jit, static_argnames="activation")
def layer_grad_norms(stacked, activation):
    """(seeds, layers) Frobenius norm of dLoss/dW for every layer."""
    def one(params):
        grads = jax.grad(lambda p: cross_entropy(mlp(p, x, activation), y))(params)
        return jnp.stack([jnp.linalg.norm(g["w"]) for g in grads])
    return jax.vmap(one)(stacked)


params = {init: init_seeds(init) for init in set(INIT.values())}
norms = {name: np.asarray(layer_grad_norms(params[INIT[name]], name)).mean(axis=0) for name in NAMES}
layers = np.arange(1, depth + 1)
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in NAMES:
    ax.semilogy(layers, norms[name], "o-", label=f"{name} ({INIT[name]})")
ax.set_xlabel("layer (1 = next to the input)")
ax.set_ylabel("gradient norm ||dL/dW|| (loss units per weight unit)")
ax.set_title(f"Gradient size by layer at initialization, {depth}-layer MLP, mean of {seeds} seeds")
ax.legend(fontsize=8)
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# Read the sigmoid line from right to left: going down the network, every layer multiplies the
# gradient by roughly $\sqrt{\mathrm{mean}(f'^2)}$ times the weights' scale, and for the sigmoid that
# is well below 1, so the first layer's gradient is orders of magnitude smaller than the last one's.
# Those layers barely move during training. This is the **vanishing gradient**. The ReLU family
# (with He initialization) keeps the gradient's size nearly constant through the depth. The ratio
# of the last layer's gradient to the first layer's, in numbers:

# %%
for name in NAMES:
    print(f"{name:>11}: last layer / first layer = {norms[name][-1] / norms[name][0]:10.1f}")

# %% [markdown]
# ## Does it matter for training?
#
# We train the same 10-layer network with each activation, by plain gradient descent (SGD, learning
# rate 0.05, mini-batches of 64 images), and record the training loss. (At 0.1 the ELU network
# diverges: its gradients are the largest of the five, as the figure above shows.) The training
# loop is written out: `opt.init` makes the optimizer's state, `opt.update` turns gradients into updates and
# `optax.apply_updates` adds them to the parameters; `lab.batch_indices` picks each step's
# mini-batch (a fresh shuffle every epoch) and `jax.lax.scan` runs the steps inside one compiled
# program. Every activation starts from the first seed's initialization above. The SGD step feels
# the gradient's size directly (unlike Adam, which rescales it), so a network whose lower layers get
# tiny gradients learns slowly, if at all. The dashed line is the loss of guessing uniformly among 10
# classes, $\log 10 \approx 2.30$.

# %%
steps = 30 if QUICK else 1000
batch = 64
n = data.x_train.shape[0]


@functools.partial(jax.jit, static_argnames="activation")
def train(params, activation, key):
    """Training loss at every step of SGD (lr 0.05, batch 64) on the digits, from `params`."""
    opt = sgd(learning_rate=0.05)

    def step(carry, t):
        params, state = carry
        idx = batch_indices(key, t, n, batch)
        loss, grads = jax.value_and_grad(
            lambda p: cross_entropy(mlp(p, data.x_train[idx], activation), data.y_train[idx]))(params)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), loss

    _, losses = jax.lax.scan(step, (params, opt.init(params)), jnp.arange(steps))
    return losses


first_seed = {init: jax.tree_util.tree_map(lambda a: a[0], p) for init, p in params.items()}
curves = {name: np.asarray(train(first_seed[INIT[name]], name, jax.random.key(2))) for name in NAMES}
window = 1 if QUICK else 25  # a running mean over this many steps smooths the mini-batch noise
fig, ax = plt.subplots(figsize=(6.5, 4.2))
for name in NAMES:
    smooth = np.convolve(curves[name], np.ones(window) / window, mode="valid")
    ax.semilogy(np.arange(len(smooth)) + window, smooth, label=name)
ax.axhline(np.log(10), color="gray", linestyle="--", linewidth=1)
ax.set_xlabel("step (SGD updates, batch 64)")
ax.set_ylabel(f"training loss (cross-entropy, nats; mean of {window} steps)")
ax.set_title(f"Training a {depth}-layer MLP on the digits with each activation")
ax.legend()
ax.grid(alpha=0.3)
plt.show()
for name in NAMES:
    print(f"{name:>11}: loss over the last 50 steps {curves[name][-50:].mean():.3f}")

# %% [markdown]
# The sigmoid network never leaves the dashed line: the gradient reaching its lower layers is a
# hundred thousand times too small to move them, and the top layer alone cannot do better than
# guess. The other four all learn the training set. ELU starts fastest here: its derivative is the
# largest of the five on typical inputs (the table above). Leaky ReLU and ELU differ from ReLU only
# for negative inputs, where they keep some gradient instead of none; that protects against "dead"
# units (a ReLU unit whose input is negative for every example never receives a gradient again),
# which matters more with large learning rates than here.
#
# ## Exercises
#
# **1.** Compute ELU's derivative at $z = -2$ by hand and check it against
# `get_activation("elu").grad` and `jax.grad`.
#
# **2.** Initialize the sigmoid network with He (`"he_normal"`) instead of Xavier and redraw its
# gradient norms by layer. Does a larger weight scale cure the vanishing gradient?
#
# **3.** `get_activation("leaky_relu", negative_slope=0.2)` makes a leakier ReLU. What fraction of
# standard-normal inputs get a zero derivative with ReLU, and with it? What is the mean derivative?

# %% [markdown]
# <details><summary>Solution</summary>
#
# For $z \le 0$, ELU is $e^z - 1$, so its derivative is $e^z$; at $z = -2$ that is $e^{-2} \approx 0.1353$.
#
# ```python
# elu = get_activation("elu")
# print(float(elu.grad(jnp.array(-2.0))), float(jax.grad(elu.fn)(-2.0)), float(np.exp(-2.0)))  # all 0.1353
# ```
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# he = np.asarray(layer_grad_norms(init_seeds("he_normal"), "sigmoid")).mean(axis=0)
# plt.semilogy(layers, norms["sigmoid"], "o-", label="sigmoid, xavier_normal")
# plt.semilogy(layers, he, "o-", label="sigmoid, he_normal")
# plt.xlabel("layer (1 = next to the input)")
# plt.ylabel("gradient norm ||dL/dW||")
# plt.legend()
# plt.show()
# print("last / first:", he[-1] / he[0])
# ```
#
# Only partly: larger weights make the per-layer factor $\lVert W\rVert \cdot f'$ bigger, so the
# gradient shrinks less from layer to layer, but $f'(z) \le 1/4$ still costs a constant factor per
# layer, and with still larger weights the pre-activations grow, the sigmoid saturates and $f'$
# falls towards 0 again. The sigmoid's mean derivative of at most $1/4$ is the root of the problem.
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# leaky = get_activation("leaky_relu", negative_slope=0.2)
# relu = get_activation("relu")
# print("ReLU:  zero fraction", float(jnp.mean(relu.grad(samples) == 0)),
#       " mean", float(jnp.mean(relu.grad(samples))))         # about 0.5 and 0.5
# print("leaky: zero fraction", float(jnp.mean(leaky.grad(samples) == 0)),
#       " mean", float(jnp.mean(leaky.grad(samples))))        # 0 and about 0.5 + 0.5 * 0.2 = 0.6
# ```
#
# </details>
