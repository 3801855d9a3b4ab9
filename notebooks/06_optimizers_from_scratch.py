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
# # 6. Optimizers from scratch
#
# SGD, momentum, RMSprop and Adam are each a few lines of code. This notebook writes all four in
# the form the JAX optimizer library [optax](https://github.com/google-deepmind/optax) uses, checks
# each one against optax's own with the lab's verifier (`lab.verify`), and then watches them work:
# on the Rosenbrock function, a classic hard case in two dimensions, and on a small network that
# reads handwritten digits.
#
# The first cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every
# notebook with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports. `jax.numpy` (written `jnp`) is NumPy's interface on JAX arrays. Parameters in JAX are
# *pytrees*: nested dicts, lists and tuples whose leaves are arrays; `jax.tree.map(f, a, b)` applies
# `f` to matching leaves of trees of the same shape and returns a tree of the results. From the lab
# we take the verifier, the 2D test surfaces, the function that runs an optimizer on them and the
# sweep engine.

# %%
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib.colors
import matplotlib.pyplot as plt
import numpy as np
import optax

from lab import verify
from lab.analysis import best_paths, surface_paths
from lab.data import TEST_FUNCTIONS
from lab.sweep import Problem, SweepConfig, run_sweep

# %% [markdown]
# ## What an optimizer is in optax
#
# An optimizer is an `optax.GradientTransformation`: a pair of pure functions.
#
# - `init(params)` returns the optimizer's *state*: whatever it must remember between steps (a
#   momentum buffer, a step count), as a pytree shaped like the parameters;
# - `update(grads, state, params)` returns `(updates, new_state)`. The *updates* are what to add to
#   the parameters, $\theta \leftarrow \theta + u$ (`optax.apply_updates` does the adding); for
#   gradient descent they are minus the learning rate times the gradient.
#
# Nothing is changed in place: the state goes in and a new state comes out. Plain SGD,
# $u_t = -\alpha\, g_t$, remembers nothing, so its state is optax's `EmptyState()`. The cell
# below writes it and takes one step on a tiny parameter tree. **What to look for:** the update is
# $-0.1$ times the gradient, leaf by leaf.

# %%
def sgd(learning_rate):
    """SGD: u = -learning_rate * g."""
    def init(params):
        del params  # SGD keeps no state
        return optax.EmptyState()

    def update(grads, state, params=None):
        del params
        return jax.tree.map(lambda g: -learning_rate * g, grads), state

    return optax.GradientTransformation(init, update)


params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array(0.5)}
grads = {"w": jnp.array([0.3, 0.1]), "b": jnp.array(-1.0)}
opt = sgd(0.1)
updates, state = opt.update(grads, opt.init(params), params)
print("updates:", updates)
print("new params:", optax.apply_updates(params, updates))

# %% [markdown]
# ## Checking it against optax
#
# `lab.verify.compare(candidate, reference, kwargs, ...)` runs our optimizer (the *candidate*, here
# the factory `sgd`, called with `kwargs`) and optax's (the *reference*, named by a string such as
# `"sgd"`) on the same stream of gradients and the same parameters, step by step, and compares their
# updates. The default stream is built to catch bugs: leaves of many shapes (a scalar, odd shapes, a
# 129x128 matrix), gradient scales from 30 down to 1e-6 (so that a misplaced $\epsilon$ shows), and
# exact zeros. It reports the first step, leaf and element at which the two part, if they do.
#
# Two settings here: one dtype (float32) to keep it quick, and `schedule=False`, because our
# factories take a plain number as the learning rate, not a schedule (a function of the step, which
# optax's accept). **What to look for:** `PASS` and a largest relative error of 0 or a few 1e-8
# (float32 rounding; the tolerance is 2.4e-5).

# %%
verify_steps = 50 if QUICK else 1000


def check(candidate, reference, candidate_kwargs, reference_kwargs=None):
    """Verify ``candidate(**candidate_kwargs)`` against optax's ``reference`` (float32); print the verdict."""
    report = verify.compare(candidate, reference, candidate_kwargs=candidate_kwargs,
                            reference_kwargs=reference_kwargs or candidate_kwargs, steps=verify_steps,
                            dtypes=("float32",), schedule=False)
    print(report.summary().splitlines()[0])
    return report


report = check(sgd, "sgd", {"learning_rate": 0.1})

# %% [markdown]
# ## Momentum: three forms
#
# Momentum keeps a running sum of past gradients, so that steps along a direction the gradients
# agree on build up, and zig-zags across a valley cancel. Three forms are in use:
#
# | form | buffer | update |
# | --- | --- | --- |
# | heavy ball (optax, PyTorch) | $m_t = \beta m_{t-1} + g_t$ | $u_t = -\alpha\, m_t$ |
# | Nesterov | the same $m_t$ | $u_t = -\alpha\,(g_t + \beta m_t)$ (a look-ahead) |
# | moving average (many courses) | $v_t = \beta v_{t-1} + (1-\beta) g_t$ | $u_t = -\alpha\, v_t$ |
#
# The state is a `NamedTuple` with one field, the buffer: a pytree of zeros shaped like the
# parameters at the start. The flags `nesterov` and `ema` choose the form; being Python booleans
# fixed when the optimizer is built, they may be used in an `if`.
#
# optax has the heavy ball and Nesterov as `optax.sgd(learning_rate, momentum=β, nesterov=...)`;
# our argument is called `beta`, so the candidate and the reference get their own arguments.
# **What to look for:** both forms pass.

# %%
class MomentumState(NamedTuple):
    buffer: optax.Updates  # like params: m (heavy ball, Nesterov) or v (moving average)


def momentum(learning_rate, beta=0.9, nesterov=False, ema=False):
    """Momentum: m = beta m + g (ema: v = beta v + (1 - beta) g); u = -lr m (Nesterov: -lr (g + beta m))."""
    def init(params):
        return MomentumState(jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        if ema:
            buffer = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g, state.buffer, grads)
        else:
            buffer = jax.tree.map(lambda m, g: beta * m + g, state.buffer, grads)
        direction = jax.tree.map(lambda m, g: g + beta * m, buffer, grads) if nesterov else buffer
        return jax.tree.map(lambda d: -learning_rate * d, direction), MomentumState(buffer)

    return optax.GradientTransformation(init, update)


report = check(momentum, "sgd", {"learning_rate": 0.1, "beta": 0.9}, {"learning_rate": 0.1, "momentum": 0.9})
report = check(momentum, "sgd", {"learning_rate": 0.1, "beta": 0.9, "nesterov": True},
               {"learning_rate": 0.1, "momentum": 0.9, "nesterov": True})

# %% [markdown]
# The moving-average form has no optax counterpart of its own, and it needs none: unrolled,
# $v_t = (1-\beta) m_t$, so it is the heavy ball with the learning rate multiplied by $1-\beta$.
# The cell below feeds both forms the same 20 random gradients and compares their updates.
# **What to look for:** a largest difference at the level of float32 rounding, against updates of
# a few hundredths. (So in a sweep over learning rates the two forms trace the same curve, shifted by a
# factor of ten in the learning rate for $\beta = 0.9$.)

# %%
ema_form = momentum(0.1, beta=0.9, ema=True)
heavy_ball = momentum(0.1 * (1 - 0.9), beta=0.9)
p = {"w": jnp.zeros(5)}
s_ema, s_hb = ema_form.init(p), heavy_ball.init(p)
largest, scale = 0.0, 0.0
for key in jax.random.split(jax.random.key(0), 20):
    g = {"w": jax.random.normal(key, (5,))}
    u_ema, s_ema = ema_form.update(g, s_ema)
    u_hb, s_hb = heavy_ball.update(g, s_hb)
    largest = max(largest, float(jnp.max(jnp.abs(u_ema["w"] - u_hb["w"]))))
    scale = max(scale, float(jnp.max(jnp.abs(u_hb["w"]))))
print(f"largest |u_ema - u_heavy_ball| = {largest:.1e}, largest |u| = {scale:.2f}")

# %% [markdown]
# ## RMSprop
#
# RMSprop divides each coordinate's gradient by a running root mean square of that coordinate's
# past gradients, so that every coordinate moves at about the same speed whatever its gradient's
# scale:
#
# $$s_t = \rho\, s_{t-1} + (1-\rho)\, g_t^2, \qquad u_t = -\alpha\, \frac{g_t}{\sqrt{s_t + \epsilon}}.$$
#
# optax's defaults are $\rho = 0.9$ (`decay`) and $\epsilon = 10^{-8}$ *inside* the square root
# (PyTorch puts it outside; `docs/optimizers.md` lists such differences). **What to look for:**
# `PASS`. Try moving `eps` outside the root and run the cell again: the leaves with gradients of
# 1e-6 fail at the first step.

# %%
class RMSpropState(NamedTuple):
    nu: optax.Updates  # like params: running mean of g^2


def rmsprop(learning_rate, decay=0.9, eps=1e-8):
    """RMSprop: s = decay s + (1 - decay) g^2; u = -lr g / sqrt(s + eps)."""
    def init(params):
        return RMSpropState(jax.tree.map(jnp.zeros_like, params))

    def update(grads, state, params=None):
        del params
        nu = jax.tree.map(lambda s, g: decay * s + (1 - decay) * g**2, state.nu, grads)
        updates = jax.tree.map(lambda g, s: -learning_rate * g / jnp.sqrt(s + eps), grads, nu)
        return updates, RMSpropState(nu)

    return optax.GradientTransformation(init, update)


report = check(rmsprop, "rmsprop", {"learning_rate": 1e-3})

# %% [markdown]
# ## Adam
#
# Adam (Kingma & Ba, 2015) keeps a moving average of the gradient (momentum, $m$) and of its square
# (RMSprop's $s$, here $v$), and corrects both for starting at zero:
#
# $$m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t, \quad v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2, \quad
#   \hat m_t = \frac{m_t}{1-\beta_1^t}, \quad \hat v_t = \frac{v_t}{1-\beta_2^t}, \quad
#   u_t = -\alpha\, \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}.$$
#
# The bias correction needs the step number $t$, so the state holds a step count (an int32 scalar)
# beside the two moments. Without the correction the first steps would be about $1-\beta_1 = 0.1$
# times too small. **What to look for:** `PASS`.

# %%
class AdamState(NamedTuple):
    count: jax.Array  # int32 scalar: steps taken so far
    mu: optax.Updates  # like params: moving average of g
    nu: optax.Updates  # like params: moving average of g^2


def adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
    """Adam: u = -lr m_hat / (sqrt(v_hat) + eps), with bias-corrected moving averages m and v."""
    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return AdamState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update(grads, state, params=None):
        del params
        t = state.count + 1
        mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, state.nu, grads)
        c1, c2 = 1 - b1**t, 1 - b2**t  # bias corrections, float32 scalars

        def step(m, v):
            return -learning_rate * (m / c1.astype(m.dtype)) / (jnp.sqrt(v / c2.astype(v.dtype)) + eps)

        return jax.tree.map(step, mu, nu), AdamState(t, mu, nu)

    return optax.GradientTransformation(init, update)


report = check(adam, "adam", {"learning_rate": 1e-3})

# %% [markdown]
# ## On Rosenbrock
#
# The Rosenbrock function $f(x, y) = (1-x)^2 + 100\,(y - x^2)^2$ has its minimum at $(1, 1)$, at the
# bottom of a long, curved, flat-bottomed valley with steep walls: gradient descent bounces between
# the walls and crawls along the floor. The lab keeps it, with a standard starting point
# $(-1.5, 2)$, among its 2D test surfaces (`lab.data.TEST_FUNCTIONS`).
#
# `lab.analysis.surface_paths` runs an optimizer from that start for every learning rate of a grid
# at once (the optimizer is passed as a function of the learning rate), and `best_paths` keeps, for
# each optimizer, the learning rate whose path has the lowest mean $f$. This is what the lab's
# trajectory figure does for its own optimizers; here it runs ours. **What to look for:** how each
# path gets into the valley and how far along it towards (1, 1) it gets in the same number of steps
# (the legend gives the final $f$); SGD's steps shrink with the gradient on the flat valley floor,
# while RMSprop's and Adam's keep about the size of the learning rate.

# %%
surface = TEST_FUNCTIONS["rosenbrock"]
path_steps = 100 if QUICK else 1000
learning_rates = jnp.logspace(-4, 0, 9 if QUICK else 17)
optimizers = {
    "SGD": sgd,
    "momentum (heavy ball)": functools.partial(momentum, beta=0.9),
    "Nesterov": functools.partial(momentum, beta=0.9, nesterov=True),
    "RMSprop": rmsprop,
    "Adam": adam,
}

xs = np.linspace(*surface.xlim, 200)
ys = np.linspace(*surface.ylim, 200)
zs = np.asarray(surface.fn(jnp.asarray(np.stack(np.meshgrid(xs, ys), axis=-1))))
plt.figure(figsize=(8, 6))
plt.contour(xs, ys, zs, levels=np.logspace(-1, 3.5, 20), cmap="Greys", norm=matplotlib.colors.LogNorm(),
            linewidths=0.6)
plt.plot(*surface.minimum, "k*", markersize=14, label="minimum (1, 1)")
plt.plot(*surface.start, "ko", label="start")
for name, factory in optimizers.items():
    points, values = surface_paths(learning_rates, optimizer=factory, surfaces=("rosenbrock",),
                                   steps=path_steps)
    best = best_paths(np.asarray(learning_rates), np.asarray(points), np.asarray(values), ("rosenbrock",))
    path, lr = best["points"][0], best["learning_rate"][0]
    plt.plot(path[:, 0], path[:, 1], ".-", markersize=2, linewidth=1,
             label=f"{name}, lr {lr:.0e}: f = {best['values'][0, -1]:.2g} after {path_steps} steps")
plt.xlim(surface.xlim)
plt.ylim(surface.ylim)
plt.xlabel("x (parameter 1)")
plt.ylabel("y (parameter 2)")
plt.title("Our optimizers on Rosenbrock, each at its best learning rate")
plt.legend(fontsize=8, loc="upper right")
plt.show()

# %% [markdown]
# ## On a network: a sweep over learning rates
#
# Finally a real training task: the lab's digits network (8x8 images, a 64-128-10 ReLU MLP,
# cross-entropy, batches of 64). `SweepConfig.make(problem, optimizer, grid, ...)` takes our factory
# itself as the optimizer and a grid of its keyword arguments; `run_sweep` compiles every learning
# rate and seed into one program (`store_dir=None`: keep the results in memory, write nothing).
# The learning rate reaches our factory as a JAX array rather than a Python number, which is why the
# factories above compute with it only through `jnp` arithmetic.
#
# We sweep the heavy ball and Adam over the same grid of learning rates. **What to look for:** each
# optimizer has its own range of good learning rates and its own best one (in the legend on the
# right), so when comparing optimizers each needs its own tuning; too large a rate sends the loss
# back up, or to NaN (*diverged*, left out of the left panel).

# %%
sweep_lrs = [1e-4, 1e-3, 1e-2, 1e-1, 1.0] if QUICK else list(np.logspace(-4, 0, 9))
sweeps = {}
for name, factory in (("momentum (heavy ball)", momentum), ("Adam", adam)):
    config = SweepConfig.make(Problem("digits"), factory, {"learning_rate": sweep_lrs}, seeds=2,
                              steps=20 if QUICK else 500, batch_size=64, eval_every=10 if QUICK else 50)
    sweeps[name] = run_sweep(config, store_dir=None, quiet=True)

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2))
for (name, result), color in zip(sweeps.items(), ("#117733", "#332288"), strict=True):
    lrs = np.asarray(result.hparams["learning_rate"])
    final = np.where(result.diverged, np.nan, result.train_loss_eval[:, -1])
    order = np.argsort(lrs, kind="stable")
    ax1.plot(lrs[order], final[order], "o", color=color, alpha=0.6)
    ax1.plot(sorted(set(lrs)), [np.nanmean(final[lrs == lr]) for lr in sorted(set(lrs))], "-", color=color,
             label=name)
    best_lr = result.best("train_loss_eval")["learning_rate"]
    runs = result.select(learning_rate=best_lr)
    ax2.semilogy(result.eval_steps, result.train_loss_eval[runs].mean(axis=0), color=color,
                 label=f"{name}, lr {best_lr:.1e}")
ax1.set(xscale="log", yscale="log", xlabel="learning rate", ylabel="final training loss (nats, log scale)",
        title="Final training loss against learning rate (dots: seeds)")
ax2.set(xlabel="step (updates, batches of 64)", ylabel="training loss (nats, log scale)",
        title="Training loss at each one's best learning rate")
for ax in (ax1, ax2):
    ax.grid(alpha=0.3)
    ax.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What to take away
#
# - An optax optimizer is `init` and `update`: the state goes in, the updates and a new state come
#   out. SGD, momentum, RMSprop and Adam each fit in a dozen lines.
# - `lab.verify.compare` checks one against optax step by step, on gradients chosen to expose the
#   usual bugs, and says where they part if they do.
# - The same factory drops into the lab's sweeps unchanged; the lab's own optimizers
#   (`lab.optim`) are written the same way, from small shared blocks.

# %% [markdown]
# ## Exercises
#
# **1.** Plant a bug: put `eps` inside the square root in `adam` (`jnp.sqrt(v / c2 + eps)`), and
# verify it again. At which step does it fail, and on which leaves? Why those?
#
# <details><summary>Solution</summary>
#
# ```python
# def adam_eps_inside(learning_rate, b1=0.9, b2=0.999, eps=1e-8):
#     def init(params):
#         zeros = jax.tree.map(jnp.zeros_like, params)
#         return AdamState(jnp.zeros([], jnp.int32), zeros, zeros)
#
#     def update(grads, state, params=None):
#         t = state.count + 1
#         mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, grads)
#         nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g**2, state.nu, grads)
#         c1, c2 = 1 - b1**t, 1 - b2**t
#         step = lambda m, v: -learning_rate * (m / c1) / jnp.sqrt(v / c2 + eps)  # the bug
#         return jax.tree.map(step, mu, nu), AdamState(t, mu, nu)
#
#     return optax.GradientTransformation(init, update)
#
# report = check(adam_eps_inside, "adam", {"learning_rate": 1e-3})
# print(report.failure)
# ```
#
# It fails at step 0. The report names the first leaf where the two part, in one run `b`, whose
# gradients are about 1e-3, at an element with a gradient of a few 1e-4: there $\sqrt{\hat v}$ is
# comparable with $\sqrt{\epsilon} = 10^{-4}$, so $\sqrt{\hat v + \epsilon}$ is markedly larger.
# The largest error (0.99) is on the leaves with gradients of 1e-6, where $\sqrt{\hat v+\epsilon}
# \approx 10^{-4}$ is a hundred times $\sqrt{\hat v}$ and the step a hundred times too small. On
# leaves with gradients of order 1, $\epsilon$ is negligible either way, which is why the default
# stream mixes scales.
#
# </details>

# %% [markdown]
# **2.** Verify the moving-average form of momentum against optax directly: which optax optimizer
# and learning rate should it equal?
#
# <details><summary>Solution</summary>
#
# ```python
# report = check(momentum, "sgd", {"learning_rate": 0.1, "beta": 0.9, "ema": True},
#                {"learning_rate": 0.1 * (1 - 0.9), "momentum": 0.9})
# ```
#
# `optax.sgd` with `momentum=0.9` and the learning rate times $1-\beta = 0.1$: it passes (the
# difference is float32 rounding of $\alpha(1-\beta)$, far inside the tolerance).
#
# </details>

# %% [markdown]
# **3.** Add Adam's sweep with `b1=0.0` fixed (no momentum, which makes it RMSprop with bias
# correction): `SweepConfig.make(Problem("digits"), adam, {"learning_rate": sweep_lrs}, {"b1": 0.0},
# ...)`. Is the best final training loss better or worse than with `b1=0.9`?
#
# <details><summary>Solution</summary>
#
# ```python
# config = SweepConfig.make(Problem("digits"), adam, {"learning_rate": sweep_lrs}, {"b1": 0.0}, seeds=2,
#                           steps=500, batch_size=64, eval_every=50)
# no_momentum = run_sweep(config, store_dir=None, quiet=True)
# for name, result in (("b1 = 0.9", sweeps["Adam"]), ("b1 = 0", no_momentum)):
#     best = result.best("train_loss_eval")
#     runs = result.select(**best)
#     print(name, best, result.train_loss_eval[runs, -1].mean())
# ```
#
# Without momentum the best final training loss is several times higher (in one run 3e-3 against
# 5e-4): the moving average of the gradient smooths the noise of the mini-batches.
#
# </details>
