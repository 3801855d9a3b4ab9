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
# # 5. Losses: mean squared error against cross-entropy
#
# A classifier ends in a sigmoid (two classes) or a softmax (many classes) that turns its raw
# outputs, the *logits*, into probabilities. Two losses compare those probabilities with the label:
#
# - **mean squared error** (MSE): the squared distance between the probabilities and the one-hot
#   target, as in regression;
# - **cross-entropy** (CE): minus the log of the probability given to the right class.
#
# Both are smallest when the right class gets probability 1. But they behave very differently when
# the network is **confidently wrong**: MSE's gradient with respect to the logit *vanishes* there,
# so gradient descent hardly moves, while cross-entropy's gradient stays large. This notebook shows
# why, first on one logit, then on a softmax over ten classes, and then by training the same network
# on the 8x8 digits with each loss.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports. `jax.numpy` (written `jnp`) is NumPy's interface on JAX arrays; `jax.grad(f)` is a new
# function that returns the derivative of a scalar function `f` with respect to its first argument;
# `jax.vmap(g)` applies `g` to every entry of an array at once. From the lab we take the losses
# (`lab.losses`) and the sweep engine (`lab.sweep`) that trains many networks as one program.

# %%
import functools

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from lab.data import digits
from lab.initializers import normal
from lab.losses import cross_entropy, mse, mse_classification
from lab.models import Model, init_mlp, mlp
from lab.sweep import Problem, SweepConfig, run_sweep

# %% [markdown]
# ## One logit, two losses
#
# Take a two-class problem with one output: the logit $z$, the probability of class 1
# $p = \sigma(z) = 1/(1+e^{-z})$, and a true label $y = 1$. The two losses are
#
# $$L_\text{MSE}(z) = (\sigma(z) - 1)^2, \qquad L_\text{CE}(z) = -\log \sigma(z).$$
#
# A large negative $z$ means the network is confident that the answer is class 0: confidently
# wrong. The cell below evaluates both losses and their derivatives $dL/dz$ (from `jax.grad`) for
# $z$ from $-10$ to $10$. **What to look for:** on the left both losses are largest for negative
# $z$, as they should be; on the right, MSE's derivative is largest near $z \approx -1$ and then
# *falls* as the answer gets more wrong, while cross-entropy's derivative tends to $-1$.

# %%
def mse_one(z):
    return (jax.nn.sigmoid(z) - 1.0) ** 2


def ce_one(z):
    return -jax.nn.log_sigmoid(z)  # -log(sigmoid(z)), computed without overflow


z = jnp.linspace(-10.0, 10.0, 401)
d_mse = jax.vmap(jax.grad(mse_one))(z)  # dL/dz at every z
d_ce = jax.vmap(jax.grad(ce_one))(z)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
ax1.plot(z, mse_one(z), label="MSE  (σ(z) − 1)²")
ax1.plot(z, ce_one(z), label="cross-entropy  −log σ(z)")
ax1.set(xlabel="logit z (true class y = 1)", ylabel="loss", title="The losses", ylim=(0, 6))
ax2.semilogy(z, jnp.abs(d_mse), label="|dL/dz|, MSE")
ax2.semilogy(z, jnp.abs(d_ce), label="|dL/dz|, cross-entropy")
ax2.set(xlabel="logit z (true class y = 1)", ylabel="|dL/dz| (log scale)",
        title="Their gradients with respect to the logit")
for ax in (ax1, ax2):
    ax.axvspan(-10, -2, color="0.9", zorder=0, label="confidently wrong")
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
plt.show()

for value in (-2.0, -5.0, -10.0):
    print(f"z = {value:5.1f}:  p = {jax.nn.sigmoid(value):.1e}   dMSE/dz = {jax.grad(mse_one)(value):+.2e}"
          f"   dCE/dz = {jax.grad(ce_one)(value):+.3f}")

# %% [markdown]
# ## Why: the chain rule through the sigmoid
#
# With $p = \sigma(z)$ and $\sigma'(z) = p(1-p)$:
#
# $$\frac{dL_\text{MSE}}{dz} = 2(p-1)\,p(1-p), \qquad
#   \frac{dL_\text{CE}}{dz} = -\frac{1}{p}\,p(1-p) = p - 1.$$
#
# MSE's gradient carries the factor $\sigma'(z) = p(1-p)$, which goes to zero when the sigmoid
# saturates, *whichever side* it saturates on. Cross-entropy's $-\log$ divides that factor away: its
# gradient is just "probability minus target", at most 1 in size and largest when the answer is most
# wrong. The next cell checks both closed forms against `jax.grad`; **what to look for:** differences
# at the level of float32 rounding (about 1e-7).

# %%
p = jax.nn.sigmoid(z)
print("largest |jax.grad - closed form|, MSE:", float(jnp.max(jnp.abs(d_mse - 2 * (p - 1) * p * (1 - p)))))
print("largest |jax.grad - closed form|, CE: ", float(jnp.max(jnp.abs(d_ce - (p - 1)))))

# %% [markdown]
# ## Ten classes: the softmax
#
# With ten classes the logits $z \in \mathbb{R}^{10}$ go through the softmax
# $p_i = e^{z_i}/\sum_j e^{z_j}$. Cross-entropy's gradient is again "probabilities minus target",
# $\partial L_\text{CE}/\partial z = p - e_y$, and MSE on the probabilities again picks up the
# softmax's derivative, which vanishes as the softmax saturates.
#
# The lab has both losses in `lab.losses`, as means over the batch: `cross_entropy(logits, labels)`
# and `mse(prediction, target)`. It also has `mse_classification(outputs, labels)`, MSE between the
# network's *raw outputs* and the one-hot target, with no softmax in between; we plot it too.
#
# Below, the true class is 0 and a wrong class (class 1) gets the logit $c$, all others 0. As $c$
# grows the network becomes more and more confidently wrong. **What to look for:** cross-entropy's
# gradient norm levels off at $\sqrt 2$ (the norm of $e_1 - e_0$); MSE through the softmax falls
# exponentially, about $e^{-c}$; MSE on the raw outputs grows linearly, because nothing saturates
# (it also pushes the right class's output towards exactly 1 and the others to 0, the job of a
# regression, not of a classifier).

# %%
label = jnp.array([0])  # a batch of one example whose class is 0
target = jax.nn.one_hot(label, 10)  # (1, 10): its one-hot target

losses = {  # each: (1, 10) logits -> scalar loss
    "cross-entropy": lambda logits: cross_entropy(logits, label),
    "MSE on softmax probabilities": lambda logits: mse(jax.nn.softmax(logits, axis=-1), target),
    "MSE on raw outputs (mse_classification)": lambda logits: mse_classification(logits, label),
}


def logits_for(c):
    return jnp.zeros((1, 10)).at[0, 1].set(c)  # the wrong class 1 gets logit c


cs = jnp.linspace(0.0, 15.0, 151)
plt.figure(figsize=(6.5, 4))
for name, loss_fn in losses.items():
    norms = jax.vmap(lambda c, loss_fn=loss_fn: jnp.linalg.norm(jax.grad(loss_fn)(logits_for(c))))(cs)
    plt.semilogy(cs, norms, label=name)
plt.xlabel("logit c of the wrong class (true class has logit 0)")
plt.ylabel("‖∂L/∂z‖ over the ten logits (log scale)")
plt.title("How hard each loss pushes a confidently wrong answer")
plt.grid(alpha=0.3)
plt.legend()
plt.show()

# %% [markdown]
# ## Training: a network that starts confidently wrong
#
# Now the same effect in training. The network is a 64-128-10 ReLU MLP on the digits (8x8 images,
# 1438 for training, 359 for testing), trained by plain stochastic gradient descent (SGD), where
# the step is the gradient times the learning rate, so a vanishing gradient means a vanishing step.
#
# To make the network confidently wrong from the start, its weights are drawn from $N(0, 0.5^2)$,
# much larger than usual: the initial logits are large, and most images get a nearly one-hot softmax
# on some class, usually the wrong one. The model is written here as a *model factory* (a pair of
# `init` and `apply` functions, `lab.models.Model`); the argument `probabilities=True` makes it end
# in a softmax, so that the lab's `mse_classification` loss compares probabilities with the one-hot
# target: MSE through the softmax. With `probabilities=False` it returns logits, for cross-entropy.
#
# The next cell builds the network once and measures how confident and how wrong it is at the
# start. **What to look for:** a median top probability near 0.9, and most images (about 85%) wrong.

# %%
def digits_mlp(std=0.5, probabilities=False):
    """A 64-128-10 ReLU MLP with N(0, std^2) weights; outputs logits, or softmax probabilities."""
    def init(key, input_shape, n_out):
        return init_mlp(key, (input_shape[0], 128, n_out), init=functools.partial(normal, std=std))

    def apply(params, x):
        logits = mlp(params, x, "relu")
        return jax.nn.softmax(logits, axis=-1) if probabilities else logits

    return Model(init, apply)


data = digits(jax.random.key(0))
model = digits_mlp(std=0.5, probabilities=True)
probs = model.apply(model.init(jax.random.key(1), (64,), 10), data.x_train)
print(f"median top probability: {float(jnp.median(probs.max(axis=1))):.3f}")
print(f"fraction wrong:         {float(jnp.mean(probs.argmax(axis=1) != data.y_train)):.2f}")

# %% [markdown]
# Now the training. `Problem(dataset, loss=..., model=...)` says what is trained, and
# `SweepConfig.make(problem, optimizer, grid, seeds=..., steps=...)` says how: here SGD over a grid
# of two learning rates, each with several seeds (different initial weights and batches). `run_sweep`
# compiles the whole grid into one program and runs it; `store_dir=None` keeps the results in
# memory instead of saving them. Each loss gets its own sweep, with the same initial weights and the
# same batches (the same seeds).

# %%
steps = 30 if QUICK else 1000
seeds = 2 if QUICK else 3
learning_rates = [0.1, 1.0]

results = {}
for loss, probabilities in (("cross_entropy", False), ("mse_classification", True)):
    problem = Problem("digits", loss=loss, model=digits_mlp, model_kwargs={"std": 0.5,
                                                                           "probabilities": probabilities})
    config = SweepConfig.make(problem, "sgd", {"learning_rate": learning_rates}, seeds=seeds, steps=steps,
                              batch_size=64, eval_every=max(steps // 20, 1))
    results[loss] = run_sweep(config, store_dir=None, quiet=True)

# %% [markdown]
# Test accuracy against steps, one line per loss and learning rate (the mean over seeds; the band
# spans the lowest to the highest seed). **What to look for:** cross-entropy climbs quickly, to
# about 97% at either learning rate. MSE through the softmax starts on a plateau, since the images
# it gets confidently wrong hardly contribute to its gradient: at 0.1 it ends with about a third of
# the test images right, and even at 1 far below cross-entropy. (The sweep's `test_accuracy`
# has one row per run and one column per evaluation; `select(learning_rate=...)` picks the runs of
# one grid point.)

# %%
names = {"cross_entropy": "cross-entropy", "mse_classification": "MSE on softmax probabilities"}
colors = {"cross_entropy": "#332288", "mse_classification": "#CC6677"}
plt.figure(figsize=(7, 4.2))
for loss, result in results.items():
    for lr, style in zip(learning_rates, ("--", "-"), strict=True):
        acc = result.test_accuracy[result.select(learning_rate=lr)]  # (seeds, evaluations)
        plt.plot(result.eval_steps, acc.mean(axis=0), style, color=colors[loss],
                 label=f"{names[loss]}, lr {lr:g}")
        plt.fill_between(result.eval_steps, acc.min(axis=0), acc.max(axis=0), color=colors[loss],
                         alpha=0.15)
plt.xlabel("step (SGD updates, batches of 64)")
plt.ylabel("test accuracy (fraction correct)")
plt.title("Digits MLP started confidently wrong: cross-entropy vs MSE")
plt.ylim(0, 1)
plt.grid(alpha=0.3)
plt.legend()
plt.show()

for loss, result in results.items():
    for lr in learning_rates:
        acc = result.test_accuracy[result.select(learning_rate=lr), -1]
        print(f"{names[loss]:30s} lr {lr:<4g} final test accuracy {acc.mean():.3f} "
              f"(seeds: {np.round(acc, 3)})")

# %% [markdown]
# ## What to take away
#
# - Cross-entropy's gradient with respect to the logits is $p - e_y$: it never vanishes while the
#   answer is wrong, and it is largest when the answer is confidently wrong.
# - MSE on probabilities multiplies that error by the derivative of the sigmoid or softmax, which
#   vanishes exactly when the network is confident, right or wrong. With plain SGD that is a
#   plateau.
# - The lab's `mse_classification` (MSE on the raw outputs) does not saturate, and the lab's
#   loss figure compares it with cross-entropy on a normally initialized network (`lab run losses`).

# %% [markdown]
# ## Exercises
#
# **1.** Compute $dL/dz$ of both one-logit losses at $z = -20$ with `jax.grad`, and compare with the
# closed forms above. How many times larger is cross-entropy's?
#
# <details><summary>Solution</summary>
#
# ```python
# g_mse, g_ce = jax.grad(mse_one)(-20.0), jax.grad(ce_one)(-20.0)
# p20 = jax.nn.sigmoid(-20.0)
# print(g_mse, 2 * (p20 - 1) * p20 * (1 - p20))   # about -4.1e-09, both
# print(g_ce, p20 - 1)                            # about -1.0, both
# print(g_ce / g_mse)        # about 2.4e8: cross-entropy pushes 240 million times harder
# ```
#
# </details>

# %% [markdown]
# **2.** Show with `jax.grad` that cross-entropy's gradient with respect to the logits is
# `softmax(z) - one_hot(y)` for a random batch of logits. (Careful: `cross_entropy` is a *mean*
# over the batch, so the gradient of each row is divided by the batch size.)
#
# <details><summary>Solution</summary>
#
# ```python
# logits = 3 * jax.random.normal(jax.random.key(0), (5, 10))
# labels = jnp.array([0, 3, 9, 2, 2])
# g = jax.grad(cross_entropy)(logits, labels)
# expected = (jax.nn.softmax(logits, axis=-1) - jax.nn.one_hot(labels, 10)) / 5
# print(float(jnp.max(jnp.abs(g - expected))))   # about 1e-8: equal up to rounding
# ```
#
# </details>

# %% [markdown]
# **3.** Adam divides each step by a running estimate of the gradient's size. Train both networks
# again with `"adam"` at learning rate 1e-3 instead of SGD. Does MSE through the softmax still lag
# behind cross-entropy as much? Why?
#
# <details><summary>Solution</summary>
#
# ```python
# for loss, probabilities in (("cross_entropy", False), ("mse_classification", True)):
#     problem = Problem("digits", loss=loss, model=digits_mlp,
#                       model_kwargs={"std": 0.5, "probabilities": probabilities})
#     config = SweepConfig.make(problem, "adam", {"learning_rate": [1e-3]}, seeds=2, steps=1000,
#                               eval_every=50)
#     result = run_sweep(config, store_dir=None, quiet=True)
#     print(loss, result.test_accuracy[:, -1])
# ```
#
# Much closer: in one run, cross-entropy ended at about 94% and 96% test accuracy (two seeds), MSE
# through the softmax at about 95% and 87%. Adam's step has about the size of the learning rate
# whatever the gradient's scale, so a small gradient no longer means a small step. What Adam cannot
# fix is the gradient's *direction*: an image whose softmax is saturated on a wrong class still
# contributes almost nothing to it, so such images are corrected late, and a seed that starts with
# many of them lags behind.
#
# </details>
