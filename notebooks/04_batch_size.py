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
# # 4. Batch size: batch, stochastic and mini-batch gradient descent
#
# The loss we minimize is a mean over all $n$ training examples, so its exact gradient needs all of
# them. **Batch** (full-batch) gradient descent computes exactly that at every step. **Stochastic**
# gradient descent (SGD in the strict sense) uses one random example per step: a gradient that is
# right on average but very noisy, and $n$ times cheaper. **Mini-batch** gradient descent sits in
# between, with $B$ examples per step; this is what "SGD" means in practice.
#
# Which is best depends on what you count. Per *step*, bigger batches make more progress, because
# their gradient is less noisy. Per *example seen* (the work done), small batches often win, because
# they update the weights far more often. This notebook measures the noise, then trains the same
# network with each batch size using the lab's sweeps, and plots the loss both ways.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports. `lab.sweep` runs training as one compiled program: a `Problem` says what is trained
# (data set, model, loss), a `SweepConfig` says how (optimizer, hyperparameters, seeds, steps,
# batch size), and `run_sweep` returns a `SweepResult` of arrays with one row per run. We also use
# the model and loss directly to measure gradient noise, and `jax.flatten_util.ravel_pytree`, which
# lays all parameters end to end in one vector (handy for measuring a gradient's length).

# %%
import jax
import matplotlib.pyplot as plt
import numpy as np
from jax.flatten_util import ravel_pytree

from lab import cross_entropy, digits, init_mlp, mlp
from lab.sweep import Problem, SweepConfig, run_sweep

# %% [markdown]
# ## How noisy is a mini-batch gradient?
#
# Take the lab's standard digits network (64 inputs, 128 ReLU hidden units, 10 outputs) at its
# initialization. With `jax.vmap` over examples we compute the gradient of each training example's
# loss separately: a matrix with one row per example and one column per parameter. The full-batch
# gradient $g$ is the mean of the rows. A mini-batch gradient $g_B$ is the mean of $B$ rows drawn
# without replacement.
#
# Statistics predicts its error: if $\sigma^2$ is the mean squared distance of the single-example
# gradients from $g$, then
#
# $$\mathbb E\,\lVert g_B - g \rVert^2 = \frac{\sigma^2}{B}\cdot\frac{n - B}{n - 1},$$
#
# the familiar $1/B$ of averaging, times a correction that reaches 0 at $B = n$ (the whole set has no
# sampling error). Below, the dots are measured over many random batches and the line is this
# formula; the error is shown relative to $\lVert g \rVert$.

# %%
data = digits(jax.random.key(0))
X, Y = data.x_train, data.y_train
n = X.shape[0]
params = init_mlp(jax.random.key(1), (64, 128, 10), init="he_normal")
flat, unravel = ravel_pytree(params)  # flat: all 9610 parameters in one vector


def example_loss(flat, x, y):
    return cross_entropy(mlp(unravel(flat), x[None], "relu"), y[None])  # one example as a batch of 1


per_example = np.asarray(jax.jit(jax.vmap(jax.grad(example_loss), in_axes=(None, 0, 0)))(flat, X, Y))
g = per_example.mean(axis=0)
sigma2 = np.mean(np.sum((per_example - g) ** 2, axis=1))
print(f"{n} examples x {per_example.shape[1]} parameters; |g| = {np.linalg.norm(g):.3f}, "
      f"sigma = {np.sqrt(sigma2):.3f}")

rng = np.random.default_rng(0)
batch_sizes = np.array([1, 4, 16, 64, 256, 1024])
draws = 20 if QUICK else 100
measured = [np.sqrt(np.mean([np.sum((per_example[rng.choice(n, b, replace=False)].mean(axis=0) - g) ** 2)
                             for _ in range(draws)])) for b in batch_sizes]
b_line = np.logspace(0, np.log10(n), 100)
predicted = np.sqrt(sigma2 / b_line * (n - b_line) / (n - 1))

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(batch_sizes, np.array(measured) / np.linalg.norm(g), "o", label=f"measured ({draws} batches each)")
ax.loglog(b_line, predicted / np.linalg.norm(g), "-", label="formula")
ax.axvline(n, color="gray", linestyle="--", linewidth=1)
ax.set_xlabel("batch size B (examples)")
ax.set_ylabel("rms |g_B - g| / |g| (dimensionless)")
ax.set_ylim(0.03, 20)  # the formula falls to 0 at B = n
ax.set_title("Mini-batch gradient error at initialization")
ax.legend()
ax.grid(alpha=0.3)
plt.show()

# %% [markdown]
# A single example's gradient is off by several times the true gradient's length: following it is
# close to a random walk that only drifts, on average, downhill. Every 4-fold increase of $B$ halves
# the error: 64 examples still leave an error of about 70% of the gradient's length, 1024 about 10%,
# and at the dashed line ($B = n$) there is none.
#
# ## Training with each batch size
#
# Now the lab trains the same network with plain SGD at one learning rate (0.05) and each batch size
# (`batch_size=None` is the full batch), over several seeds (each seed draws its own initialization
# and batch order). Each `run_sweep` call compiles its configuration into one program and runs all
# seeds of it at once; `store_dir=None` keeps the results in memory only (nothing is written). The
# lab evaluates the loss on the whole training set every `eval_every` steps. In quick mode only two
# batch sizes and a few steps are run.

# %%
sizes = (1, None) if QUICK else (1, 16, 128, None)
steps = 50 if QUICK else 1000
seeds = 2 if QUICK else 4
problem = Problem("digits")  # 64-128-10 ReLU MLP, He initialization, cross-entropy
results = {}
for b in sizes:
    config = SweepConfig.make(problem, "sgd", {"learning_rate": [0.05]}, seeds=seeds, steps=steps,
                              batch_size=b, eval_every=10 if QUICK else 25, name=f"batch-{b or 'full'}")
    results[b] = run_sweep(config, store_dir=None, quiet=True)
    print(f"batch {b or n:>4}: compiled and ran {seeds} seeds x {steps} steps in "
          f"{results[b].wall_seconds:.1f} s")

# %% [markdown]
# ## Loss against steps, and against examples seen
#
# Left: the training loss against the number of updates. Right: the same runs against the number of
# examples whose gradients were computed, $\mathrm{steps} \times B$ (log scale; one epoch is
# $n = 1438$ examples). Lines are the mean over seeds, shaded bands the range.
#
# Look for the order of the curves flipping between the panels. Per step, $B = 1$ is clearly the
# worst, and $B = 16$, $B = 128$ and the full batch are almost indistinguishable: beyond a few dozen
# examples, the gradient's noise no longer limits progress at this learning rate. Per example, the
# order is reversed: $B = 1$ gets furthest with the least data, since it made 1438 updates in the
# time the full batch made one. The noise shows too: $B = 1$'s band (the spread over seeds) is the
# widest, and its curve the most jagged.

# %%
label = {b: "full batch" if b is None else ("stochastic, B = 1" if b == 1 else f"mini-batch, B = {b}")
         for b in sizes}
fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained")
for b, result in results.items():
    loss = result.train_loss_eval  # (seeds, evaluations) loss on the whole training set
    steps_done = result.eval_steps
    seen = np.maximum(steps_done * (b or n), 1)
    for ax, xs in ((left, steps_done), (right, seen)):
        (line,) = ax.plot(xs, loss.mean(axis=0), label=label[b])
        ax.fill_between(xs, loss.min(axis=0), loss.max(axis=0), color=line.get_color(), alpha=0.2)
left.set(xlabel="step (updates)", ylabel="training loss (cross-entropy, nats)", yscale="log",
         title="Against steps")
right.set(xlabel="examples seen (steps x batch size)", ylabel="training loss (cross-entropy, nats)",
          xscale="log", yscale="log", title="Against examples seen")
for ax in (left, right):
    ax.grid(alpha=0.3)
left.legend()
plt.show()

# %% [markdown]
# The final numbers: training loss and test accuracy after the last step (mean over seeds), and how
# many passes over the training set (epochs) each run made.

# %%
print(f"{'batch':>10} {'examples seen':>14} {'epochs':>7} {'train loss':>11} {'test accuracy':>14}")
for b, result in results.items():
    seen = steps * (b or n)
    print(f"{b or n:>10} {seen:>14,} {seen / n:>7.1f} {result.train_loss_eval[:, -1].mean():>11.4f} "
          f"{result.test_accuracy[:, -1].mean():>14.3f}")

# %% [markdown]
# **Noise against speed.** Small batches make more progress per example, but each step is a noisy
# estimate, so their loss jitters and, at a fixed learning rate, settles at a noise floor instead of
# converging. Large batches are smooth but spend many examples on every step. On parallel hardware a
# step with 128 examples costs hardly more wall-clock time than a step with 1 (the examples are
# processed side by side), which is why mini-batches of tens to hundreds are the usual choice. The
# learning rate should change with the batch size too; the exercises try that.
#
# ## Exercises
#
# **1.** From the noise measurement, predict the relative gradient error at $B = 64$ from the one at
# $B = 16$ using only the $1/\sqrt B$ rule, and compare with the measured value.
#
# **2.** A rule of thumb ("linear scaling"): when the batch size is multiplied by $k$, multiply the
# learning rate by $k$; then one large step does about the work of $k$ small ones. Run $B = 128$ for
# 125 steps with learning rates 0.05 and 0.4 ($8 \times 0.05$) in one sweep. Compare their training
# losses with that of $B = 16$ at 0.05 after the same number of examples seen (16,000: 1000 steps).
#
# **3.** How many steps, and how many examples, does the full-batch run need to reach the training
# loss that $B = 16$ has after one epoch (about 90 steps)? Use `train_loss_eval` and `eval_steps`.

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# rel = dict(zip(batch_sizes.tolist(), np.array(measured) / np.linalg.norm(g)))
# print("predicted:", rel[16] / 2, " measured:", rel[64])   # a few percent apart: both are estimates
# ```
#
# $\sqrt{64/16} = 2$, so the error should halve; the finite-population factor $(n-B)/(n-1)$ makes
# the measured value slightly smaller still.
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# config = SweepConfig.make(problem, "sgd", {"learning_rate": [0.05, 0.4]}, seeds=seeds, steps=125,
#                           batch_size=128, eval_every=25, name="batch-128-lr")
# scaled = run_sweep(config, store_dir=None, quiet=True)
# for lr in (0.05, 0.4):
#     rows = scaled.hparams["learning_rate"] == np.float32(lr)
#     print(f"B = 128, lr {lr}, 125 steps: training loss {scaled.train_loss_eval[rows, -1].mean():.3f}")
# if 16 in results:  # (not in quick mode)
#     print(f"B = 16, lr 0.05, 1000 steps: training loss {results[16].train_loss_eval[:, -1].mean():.3f}")
# ```
#
# With 4 seeds: about 0.69 at lr 0.05, 0.14 at lr 0.4, and 0.13 for $B = 16$: with the scaled
# learning rate, $B = 128$ matches the small batch per example seen, in 8 times fewer steps. The rule
# holds while a large step behaves like several small ones; at large enough learning rates training
# becomes unstable and it breaks.
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# if 16 in results:
#     small, full = results[16], results[None]
#     epoch = np.searchsorted(small.eval_steps, n // 16)             # first evaluation after one epoch
#     target = small.train_loss_eval[:, epoch].mean()
#     reached = full.train_loss_eval.mean(axis=0) <= target
#     at = full.eval_steps[np.argmax(reached)]
#     print(f"B = 16: loss {target:.3f} after {small.eval_steps[epoch]} steps, "
#           f"{small.eval_steps[epoch] * 16:,} examples")
#     print(f"full batch: reaches it after {at} steps, {at * n:,} examples")
# ```
#
# About the same number of steps (100 at this evaluation spacing), but 90 times as many examples:
# the full batch's exact gradient buys nothing per step here that 16 examples did not already give.
#
# </details>
