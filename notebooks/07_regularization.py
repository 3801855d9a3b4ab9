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
# # 7. Regularization: L1, L2 and weight decay
#
# A network with many more weights than training points can fit every point, noise included, and
# then does worse on new data: it *overfits*. A penalty on the weights added to the loss pulls them
# towards zero and the fit towards something simpler. The lab has two (`lab.regularizers`):
#
# $$\text{L1: } \lambda \sum_i |w_i|, \qquad \text{L2: } \frac{\lambda}{2} \sum_i w_i^2,$$
#
# over the weights (the matrices, not the biases). This notebook shows how differently they pull:
# L1 sets many weights to exactly zero (a *sparse* network), L2 shrinks them all a little. Then it
# turns to Adam, where an L2 penalty in the loss and AdamW's *decoupled weight decay* are not the
# same thing, although both are often called weight decay.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports: `jax.numpy` (written `jnp`) is NumPy's interface on JAX arrays; from the lab the
# sweep engine (`Problem`, `SweepConfig`, `run_sweep`), the data of a problem (`load_data`), the
# weights of a parameter tree (`lab.regularizers.weights`) and the decision regions of a two-class
# network (`lab.analysis.decision_grid`).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from lab.analysis import decision_grid
from lab.problems import load_data
from lab.regularizers import weights
from lab.sweep import Problem, SweepConfig, run_sweep

# %% [markdown]
# ## One weight: shrinking against thresholding
#
# Take one weight whose unpenalized best value is $a$: minimize $\frac12 (w-a)^2$ plus a penalty.
# Setting the derivative to zero gives closed forms:
#
# - L2: $w - a + \lambda w = 0$, so $w^* = a/(1+\lambda)$: every weight is scaled down by the same
#   factor and none becomes zero;
# - L1: $w - a + \lambda\,\text{sign}(w) = 0$, so $w^* = \text{sign}(a)\max(|a| - \lambda, 0)$, the
#   *soft threshold*: every weight moves towards zero by the same amount $\lambda$, and any weight
#   with $|a| \le \lambda$ lands exactly on zero.
#
# The reason is in the gradients: L2's pull $\lambda w$ weakens as the weight shrinks, L1's pull
# $\lambda\,\text{sign}(w)$ does not. The cell below draws both solutions for $\lambda = 1$ and checks
# them by running gradient descent on the penalized objective (with `jax.grad`). **What to look
# for:** the flat stretch of L1 between $-1$ and $1$, and the dots (gradient descent) on the lines.

# %%
lam = 1.0
a = np.linspace(-3, 3, 301)


def descend(a0, penalty, steps=2000, lr=0.01):
    """Minimize 0.5 (w - a)^2 + penalty(w) by gradient descent from w = a, for every a in the array a0."""
    grad = jax.grad(lambda w, a: 0.5 * (w - a) ** 2 + penalty(w))  # d/dw

    def run(a):
        return jax.lax.fori_loop(0, steps, lambda _, w: w - lr * grad(w, a), a)

    return np.asarray(jax.vmap(run)(jnp.asarray(a0, jnp.float32)))


a_check = np.array([-2.5, -1.5, -0.5, 0.3, 1.2, 2.0])
l1_gd = descend(a_check, lambda w: lam * jnp.sign(w) * w)  # |w| as sign(w) w: its derivative is 0 at 0
l2_gd = descend(a_check, lambda w: lam / 2 * w**2)

plt.figure(figsize=(6.5, 4.5))
plt.plot(a, a, ":", color="0.5", label="no penalty: w* = a")
plt.plot(a, a / (1 + lam), color="#CC6677", label="L2: w* = a / (1 + λ)")
plt.plot(a, np.sign(a) * np.maximum(np.abs(a) - lam, 0), color="#332288",
         label="L1: w* = sign(a) max(|a| − λ, 0)")
plt.plot(a_check, l2_gd, "o", color="#CC6677", label="gradient descent, L2")
plt.plot(a_check, l1_gd, "s", color="#332288", label="gradient descent, L1")
plt.xlabel("a (the best weight without a penalty)")
plt.ylabel("w* (the best weight with the penalty, λ = 1)")
plt.title("L2 shrinks every weight, L1 sets small ones to zero")
plt.grid(alpha=0.3)
plt.legend()
plt.show()

# %% [markdown]
# Gradient descent with L1 does not land on exactly zero: near zero the pull $\lambda\,\text{sign}(w)$
# flips sign at every step, so the weight jitters within about one step, `lr * λ`, of zero. The
# printout below shows it. That is why the lab counts a weight as *near zero* when $|w| < 10^{-3}$.

# %%
print("a:                ", a_check)
print("L1 by descent:    ", np.round(l1_gd, 4))
print("L1 closed form:   ", np.sign(a_check) * np.maximum(np.abs(a_check) - lam, 0))

# %% [markdown]
# ## A network that overfits two moons
#
# Now a real case: 60 noisy points of the *two moons* data set (two interleaved half-circles, two
# classes), and a 2-64-64-2 ReLU network with 4,500 weights, trained by full-batch gradient descent
# (`"sgd"`, `batch_size=None`) at learning rate 0.1. One sweep covers four networks: the grid
# `{"l1": [0, λ], "l2": [0, λ]}` crosses no penalty, L1 alone, L2 alone and both. The names `l1`
# and `l2` in a grid are the strengths of the lab's penalties, added to the loss by the sweep.
# `keep_params=True` returns each run's final weights as well, for the pictures below.
#
# **What to look for** in the loss curves: without a penalty the training loss keeps falling while
# the test loss turns upwards (overfitting); with either penalty the training loss stays higher and
# the test loss lower.

# %%
strength = 1e-2
problem = Problem("moons", hidden=(64, 64), n_train=60, noise=0.3)
config = SweepConfig.make(problem, "sgd", {"l1": [0.0, strength], "l2": [0.0, strength]},
                          {"learning_rate": 0.1}, seeds=2, steps=100 if QUICK else 4000, batch_size=None,
                          eval_every=10 if QUICK else 100)
moons = run_sweep(config, store_dir=None, quiet=True, keep_params=True)

cases = {"no penalty": (0.0, 0.0), f"L1, λ = {strength:g}": (strength, 0.0),
         f"L2, λ = {strength:g}": (0.0, strength), "L1 and L2": (strength, strength)}
colors = ["0.35", "#332288", "#CC6677", "#117733"]
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), sharey=True)
for (name, (l1, l2)), color in zip(cases.items(), colors, strict=True):
    runs = moons.select(l1=l1, l2=l2)
    ax1.plot(moons.eval_steps, moons.train_loss_eval[runs].mean(axis=0), color=color, label=name)
    ax2.plot(moons.eval_steps, moons.test_loss[runs].mean(axis=0), color=color, label=name)
ax1.set(xlabel="step (full-batch updates)", ylabel="cross-entropy (nats, without the penalty)",
        title="Training loss", yscale="log")
ax2.set(xlabel="step (full-batch updates)", title="Test loss (200 new points)")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Where the weights end up
#
# The histogram of the final weights' magnitudes $|w|$, on a log scale so that tiny weights are
# visible, and the fraction of weights below $10^{-3}$ (the sweep's `near_zero_fraction`). The
# weights of every run come from `weights(moons.final_params, batch_dims=1)`: the weight matrices,
# each with a leading axis over the runs. **What to look for:** with L1 almost every weight piled up
# just below $10^{-3}$: pruned, jittering within one step (`lr * λ` = 1e-3) of zero; with L2 one
# hump, shifted towards smaller values than without a penalty, with only a small fraction near zero.

# %%
magnitudes = np.concatenate([np.abs(np.asarray(w)).reshape(w.shape[0], -1)
                             for w in weights(moons.final_params, batch_dims=1)], axis=1)  # (runs, weights)
bins = np.logspace(-8, 1, 46)
plt.figure(figsize=(7, 4.2))
for (name, (l1, l2)), color in zip(cases.items(), colors, strict=True):
    runs = moons.select(l1=l1, l2=l2)
    near_zero = moons.near_zero_fraction[runs].mean()
    plt.hist(np.clip(magnitudes[runs].ravel(), bins[0], None), bins=bins, histtype="step", linewidth=1.6,
             color=color, label=f"{name}: {near_zero:.0%} below 1e-3", density=False,
             weights=np.full(magnitudes[runs].size, 1 / magnitudes[runs].size))
plt.axvline(1e-3, color="0.5", linestyle=":")
plt.xscale("log")
plt.xlabel("|w| (log scale; weights below 1e-8 in the first bin)")
plt.ylabel("fraction of weights per bin")
plt.title("Final weight magnitudes")
plt.legend(loc="upper left", fontsize=9)
plt.show()

# %% [markdown]
# ## Decision boundaries
#
# What the penalties do to the function the network computes: `decision_grid` evaluates each
# network's probability of class 1 on a grid of points (shading), and the line is where it is 0.5.
# **What to look for:** without a penalty the boundary bends around single noisy points; L1 draws
# it with a few straight pieces (few active units are left); L2 draws a smooth curve.

# %%
data = load_data(problem)
xlim, ylim = (-1.5, 2.5), (-1.25, 1.75)
chosen = [int(np.flatnonzero(moons.select(l1=l1, l2=l2, seed=0))[0])  # run index of seed 0
          for l1, l2 in list(cases.values())[:3]]
params = jax.tree.map(lambda leaf: jnp.asarray(leaf)[np.array(chosen)], moons.final_params)
grid = np.asarray(decision_grid(params, activation="relu", xlim=xlim, ylim=ylim, resolution=150))
gx, gy = np.linspace(*xlim, 150), np.linspace(*ylim, 150)
x, y = np.asarray(data.x_train), np.asarray(data.y_train)

fig, axes = plt.subplots(1, 3, figsize=(14, 4.2), sharey=True)
for ax, name, probability, run in zip(axes, list(cases)[:3], grid, chosen, strict=True):
    ax.contourf(gx, gy, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
    ax.contour(gx, gy, probability, levels=[0.5], colors="k", linewidths=1.5)
    ax.scatter(x[y == 0, 0], x[y == 0, 1], s=18, color="#332288", edgecolor="w", label="class 0")
    ax.scatter(x[y == 1, 0], x[y == 1, 1], s=22, marker="^", color="#CC6677", edgecolor="k",
               label="class 1")
    ax.set(title=f"{name} (test loss {moons.test_loss[run, -1]:.2f})", xlabel="x₁")
axes[0].set_ylabel("x₂")
axes[0].legend(loc="lower left")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Adam: an L2 penalty is not weight decay
#
# With plain gradient descent, an L2 penalty and *weight decay* (shrinking every weight by a fixed
# fraction at each step) are the same: the penalty's gradient $\lambda w$ times the learning rate
# $\alpha$ is a step $-\alpha\lambda w$. Adam breaks the equivalence. It divides the whole gradient,
# penalty included, by $\sqrt{\hat v}$, the running size of each weight's gradient: a weight with
# small gradients is decayed hard, one with large gradients barely. AdamW (Loshchilov & Hutter,
# 2019) *decouples* the decay: it adds $-\alpha\lambda w$ after Adam's rescaling, so every weight
# shrinks at the same rate.
#
# The lab's `adamw` with `weight_decay=0` is plain Adam, so one sweep covers both: the grid crosses
# AdamW's `weight_decay` with the L2 penalty `l2` on the digits network (64-128-10, learning rate
# 1e-3). We read Adam + L2 at `weight_decay=0` and AdamW at `l2=0`. **What to look for:** at the same
# λ, Adam with the L2 penalty ends with far smaller weights and, for the larger λ, a lower test
# accuracy; AdamW's weights shrink only gently and its accuracy holds.

# %%
lams = [1e-3, 1e-2, 1e-1]
config = SweepConfig.make(Problem("digits"), "adamw", {"weight_decay": [0.0, *lams], "l2": [0.0, *lams]},
                          {"learning_rate": 1e-3}, seeds=2, steps=50 if QUICK else 1000, batch_size=64,
                          eval_every=10 if QUICK else 50)
decay = run_sweep(config, store_dir=None, quiet=True)


def final(metric, **point):
    """Seed mean of a final metric at one grid point."""
    values = getattr(decay, metric)[decay.select(**point)]
    return float(np.mean(values[:, -1] if values.ndim == 2 else values))


fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
series = (("Adam + L2 penalty (λ/2 Σw² in the loss)", lambda s: {"weight_decay": 0.0, "l2": s}, "#332288"),
          ("AdamW (weight_decay = λ)", lambda s: {"weight_decay": s, "l2": 0.0}, "#CC6677"))
for name, point_of, color in series:
    ax1.plot(lams, [final("test_accuracy", **point_of(s)) for s in lams], "o-", color=color, label=name)
    ax2.plot(lams, [final("weight_norm", **point_of(s)) for s in lams], "o-", color=color, label=name)
for ax, metric in ((ax1, "test_accuracy"), (ax2, "weight_norm")):
    ax.axhline(final(metric, weight_decay=0.0, l2=0.0), color="0.4", linestyle=":",
               label="λ = 0 (plain Adam)")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
ax1.set(xlabel="coefficient λ", ylabel="final test accuracy (fraction correct)", title="Test accuracy")
ax2.set(xlabel="coefficient λ", ylabel="‖w‖₂ over all weights", yscale="log", title="Final weight norm")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What to take away
#
# - L1's pull on a weight has a constant size, so small weights go to zero: sparse networks, and
#   boundaries built from few pieces. L2's pull is proportional to the weight: everything shrinks,
#   nothing vanishes, and the function gets smoother.
# - With SGD an L2 penalty is weight decay. With Adam it is not: the penalty's gradient is rescaled
#   per weight. AdamW decays every weight at the same rate, and it is the form to use with Adam.
# - The lab's figures show the same over several strengths and seeds: `lab run regularization` and
#   `lab run weight_decay`.

# %% [markdown]
# ## Exercises
#
# **1.** For L1 with λ = 1 and $a = 0.7$, what does the soft threshold give, and what does L2 give?
# Check both with `descend`.
#
# <details><summary>Solution</summary>
#
# ```python
# print(descend([0.7], lambda w: 1.0 * jnp.sign(w) * w), max(0.7 - 1.0, 0.0))  # about 0 (within lr λ), 0
# print(descend([0.7], lambda w: 1.0 / 2 * w**2), 0.7 / 2)                   # 0.35, 0.35
# ```
#
# L1 sets the weight to zero, since $|a| \le \lambda$; L2 halves it.
#
# </details>

# %% [markdown]
# **2.** Count the hidden units that L1 switched off: a unit of the first hidden layer whose
# incoming weights are all below $10^{-3}$ in size computes a constant. How many of the 64 are left
# with and without L1? (The first layer's weights are `moons.final_params[0]["w"]`, shaped
# (runs, 2, 64).)
#
# <details><summary>Solution</summary>
#
# ```python
# w1 = np.abs(np.asarray(moons.final_params[0]["w"]))  # (runs, 2 inputs, 64 units)
# alive = (w1 >= 1e-3).any(axis=1).sum(axis=1)         # (runs,): units with some incoming weight
# for name, (l1, l2) in cases.items():
#     print(name, alive[moons.select(l1=l1, l2=l2)])
# ```
#
# Without a penalty, and with L2, all 64 units keep their inputs; with L1 only a handful do (2 or 3
# in one run), which is why its decision boundary is made of a few straight pieces.
#
# </details>

# %% [markdown]
# **3.** The sweep also trained a fourth network, with both penalties at once (the *elastic net*).
# Where does it sit between L1 and L2: its near-zero fraction, its test loss, its decision boundary?
#
# <details><summary>Solution</summary>
#
# ```python
# for name, (l1, l2) in cases.items():
#     runs = moons.select(l1=l1, l2=l2)
#     print(f"{name:14s} near zero {moons.near_zero_fraction[runs].mean():.0%}, "
#           f"final test loss {moons.test_loss[runs, -1].mean():.3f}")
# run = int(np.flatnonzero(moons.select(l1=strength, l2=strength, seed=0))[0])
# one = jax.tree.map(lambda leaf: jnp.asarray(leaf)[run][None], moons.final_params)
# probability = np.asarray(decision_grid(one, activation="relu", xlim=xlim, ylim=ylim, resolution=150))[0]
# plt.contourf(gx, gy, probability, levels=np.linspace(0, 1, 11), cmap="RdBu_r", alpha=0.55)
# plt.contour(gx, gy, probability, levels=[0.5], colors="k")
# plt.scatter(x[:, 0], x[:, 1], c=y, cmap="coolwarm", edgecolor="k", s=18)
# plt.show()
# ```
#
# L1 decides the sparsity: the elastic net prunes about as many weights as L1 alone, and its boundary
# is made of a few straight pieces like L1's; the added L2 shrinks the surviving weights a little
# more.
#
# </details>
