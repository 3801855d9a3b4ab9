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
# # 1. Backpropagation by hand
#
# Training a neural network means nudging its weights against the gradient of a loss. This notebook
# computes that gradient three ways for a small two-layer network, and checks that they agree:
#
# 1. **by hand**, with the chain rule (backpropagation), written out line by line;
# 2. **by automatic differentiation**, with `jax.grad`;
# 3. **by finite differences**, nudging one weight at a time and watching the loss move.
#
# You need to know Python and a little NumPy; the JAX you need is explained as it comes. The first
# cell is a switch used by the lab's tests: they set `LAB_NOTEBOOK_QUICK=1` to run every notebook
# with small sizes. Leave it alone when you read.

# %%
import os

QUICK = os.environ.get("LAB_NOTEBOOK_QUICK") == "1"  # small configurations (the test suite sets this)

# %% [markdown]
# The imports: `jax` and `jax.numpy` (written `jnp`), matplotlib for the figures, and from the lab the
# data set (`two_moons`: two interleaved half-circles, two classes), the model (`init_mlp` and `mlp`),
# the loss (`cross_entropy`), the activation derivatives and the hand-written backprop
# (`lab.backprop.mlp_value_and_grad`).

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

from lab import cross_entropy, init_mlp, mlp, mlp_value_and_grad, two_moons
from lab.activations import relu, relu_grad

# %% [markdown]
# ## JAX in three ideas
#
# **1. `jax.numpy` is NumPy.** `jnp.array`, `jnp.exp`, `@` for matrix products, broadcasting,
# slicing: everything works as in NumPy. Two differences matter here: JAX arrays are *immutable*
# (`x.at[0].set(5.0)` returns a new array instead of changing `x`), and JAX computes in `float32`
# unless told otherwise.

# %%
x = jnp.array([1.0, 2.0, 3.0])
y = x.at[0].set(5.0)  # a new array; x is unchanged
print("x =", x, " y =", y, " dtype:", x.dtype)
print("x @ x =", x @ x, " exp(x) =", jnp.exp(x))

# %% [markdown]
# **2. `jax.grad` turns a function into its gradient.** Give it a Python function that returns one
# number; it returns a new function computing the derivative with respect to the first argument.
# Here $f(x) = x^3 + \sin x$, whose derivative we know: $f'(x) = 3x^2 + \cos x$. The two printed
# numbers should be equal.

# %%
def f(x):
    return x**3 + jnp.sin(x)


df = jax.grad(f)
print("jax.grad:", df(2.0), "  by hand:", 3 * 2.0**2 + jnp.cos(2.0))

# %% [markdown]
# **3. Parameters are pytrees.** A network has many weight matrices; JAX lets the first argument of
# the function be any nesting of lists, tuples and dicts of arrays (a *pytree*), and `jax.grad`
# returns a gradient with the same nesting. The lab stores an MLP as a list with one dict per layer,
# `{"w": weight matrix, "b": bias vector}`. `jax.tree_util.tree_map(fn, tree)` applies `fn` to every
# array in a tree. Below, a network with 2 inputs, 8 hidden units and 2 outputs (its shapes are
# printed: `w` is (inputs, outputs) of each layer).

# %%
key = jax.random.key(0)  # JAX's random numbers take an explicit key; the same key gives the same numbers
params = init_mlp(key, (2, 8, 2), init="he_normal")
print(jax.tree_util.tree_map(jnp.shape, params))

# %% [markdown]
# ## The forward pass
#
# For a batch of inputs $X$ (one row per example) and labels $y$, the two-layer network computes
#
# $$z_0 = X W_0 + b_0, \qquad h = \mathrm{relu}(z_0), \qquad o = h W_1 + b_1,$$
#
# and the loss is the mean cross-entropy of the outputs ("logits") $o$: with $p = \mathrm{softmax}(o)$
# row by row, $L = -\frac{1}{B}\sum_i \log p_{i, y_i}$ over the $B$ examples. Below we write this out
# and check that it gives what the lab's `mlp` gives (the difference printed should be 0).

# %%
data = two_moons(jax.random.key(1), n_train=200)
X, Y = data.x_train, data.y_train  # (200, 2) float32 points, (200,) integer labels 0 or 1
W0, b0, W1, b1 = params[0]["w"], params[0]["b"], params[1]["w"], params[1]["b"]

z0 = X @ W0 + b0  # (B, 8) pre-activations
h = relu(z0)      # (B, 8) hidden outputs
o = h @ W1 + b1   # (B, 2) logits
loss = cross_entropy(o, Y)
print("loss:", loss, "  largest difference from lab.mlp:", jnp.max(jnp.abs(o - mlp(params, X, "relu"))))

# %% [markdown]
# ## The backward pass, by the chain rule
#
# Backpropagation runs the chain rule from the loss back to every weight, reusing the forward pass's
# intermediate values. Write $\delta = \partial L / \partial o$ for the gradient at the output.
#
# * **Output.** For softmax followed by cross-entropy the derivative is famously simple:
#   $\delta = (p - \mathrm{onehot}(y)) / B$ (the $1/B$ comes from the mean).
# * **Last layer.** $o = h W_1 + b_1$, so $\partial L/\partial W_1 = h^\top \delta$ and
#   $\partial L / \partial b_1 = \sum_i \delta_i$ (sum over the batch).
# * **Back through the layer.** $\partial L / \partial h = \delta W_1^\top$.
# * **Back through ReLU.** $h = \mathrm{relu}(z_0)$ acts element by element, so
#   $\delta_0 = \partial L / \partial z_0 = (\delta W_1^\top) \odot \mathrm{relu}'(z_0)$, where
#   $\mathrm{relu}'(z) = 1$ for $z > 0$ and $0$ otherwise.
# * **First layer.** $\partial L/\partial W_0 = X^\top \delta_0$ and
#   $\partial L/\partial b_0 = \sum_i \delta_{0,i}$.
#
# Each line below is one bullet. The shapes in the comments are worth checking: every gradient has its
# parameter's shape.

# %%
B = X.shape[0]
p = jax.nn.softmax(o, axis=1)                 # (B, 2) class probabilities
delta = (p - jax.nn.one_hot(Y, 2)) / B       # (B, 2)  dL/do
dW1 = h.T @ delta                            # (8, 2)
db1 = delta.sum(axis=0)                      # (2,)
delta0 = (delta @ W1.T) * relu_grad(z0)      # (B, 8)  dL/dz0
dW0 = X.T @ delta0                           # (2, 8)
db0 = delta0.sum(axis=0)                     # (8,)
by_hand = [{"w": dW0, "b": db0}, {"w": dW1, "b": db1}]
print(jax.tree_util.tree_map(jnp.shape, by_hand))

# %% [markdown]
# ## The same gradient from `jax.grad`
#
# `jax.grad` needs the loss as a function of the parameters. It traces the forward computation and
# applies the chain rule for us (reverse-mode automatic differentiation, which *is* backpropagation,
# done by a program). `jax.jit` compiles a function into one fast program the first time it is
# called; we use it from now on, and it changes no result. We compare the two gradients leaf by leaf:
# the printed numbers are the largest absolute differences, and should be at the level of float32
# rounding (about $10^{-7}$ times the gradient's size) or exactly 0.

# %%
def loss_fn(params):
    return cross_entropy(mlp(params, X, "relu"), Y)


by_jax = jax.jit(jax.grad(loss_fn))(params)
print("largest |gradient|:", max(float(jnp.max(jnp.abs(g))) for g in jax.tree_util.tree_leaves(by_jax)))
print(jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), by_hand, by_jax))

# %% [markdown]
# ## Any depth: `lab.backprop`
#
# The lab's `mlp_value_and_grad` runs the same delta rule for any number of layers, any activation in
# the lab, three losses and L1/L2 penalties. Here a deeper network (2-16-16-16-2) with `tanh` and an L2
# penalty, against `jax.grad` of the same objective (the penalty is $\frac{l_2}{2}\sum W^2$ over the
# weight matrices, not the biases). Again the differences should be float32 rounding.

# %%
deep = init_mlp(jax.random.key(2), (2, 16, 16, 16, 2), init="xavier_normal")
l2 = 1e-2


def objective(params):
    penalty = sum(jnp.sum(layer["w"] ** 2) for layer in params)
    return cross_entropy(mlp(params, X, "tanh"), Y) + l2 / 2 * penalty


hand_grad = jax.jit(lambda p: mlp_value_and_grad(p, X, Y, activation="tanh", loss="cross_entropy", l2=l2))
value, hand = hand_grad(deep)
auto = jax.jit(jax.grad(objective))(deep)
print("objective:", value, "vs", objective(deep))
for layer, (gh, ga) in enumerate(zip(hand, auto, strict=True)):
    print(f"layer {layer}: largest difference in dW {float(jnp.max(jnp.abs(gh['w'] - ga['w']))):.1e}, "
          f"in db {float(jnp.max(jnp.abs(gh['b'] - ga['b']))):.1e}")

# %% [markdown]
# ## A third, independent check: finite differences
#
# `jax.grad` and our hand-written rule could share a mistake in our understanding. Finite differences
# need no calculus at all: nudge one weight by $\pm\epsilon$ and measure the slope,
#
# $$\frac{\partial L}{\partial w} \approx \frac{L(w + \epsilon) - L(w - \epsilon)}{2\epsilon}.$$
#
# The error of this estimate has two parts: the formula's own error, which shrinks like $\epsilon^2$,
# and rounding error in the two losses, which grows like (machine precision)$/\epsilon$. So there is a
# best $\epsilon$, and it depends on the precision. The figure shows the relative error of the
# finite-difference slope for one weight, in float32 and in float64 (`jax.enable_x64` switches JAX to
# 64-bit floats inside the `with` block). Look for the V shape, and for how much lower float64's valley
# is: this is why gradient checks are done in float64.

# %%
def finite_difference(loss, params, layer, i, j, eps):
    """Central-difference slope of `loss` along weight params[layer]["w"][i, j]."""
    def moved(sign):
        w = params[layer]["w"].at[i, j].add(sign * eps)
        return loss([dict(lp, w=w) if k == layer else lp for k, lp in enumerate(params)])
    return (moved(+1) - moved(-1)) / (2 * eps)


def slope_errors(dtype, epsilons):
    """Relative error of the finite-difference slope along weight [1]["w"][3, 5], in `dtype`."""
    with jax.enable_x64(dtype == jnp.float64):
        p = jax.tree_util.tree_map(lambda a: a.astype(dtype), deep)
        xs = X.astype(dtype)

        def loss(p):
            return cross_entropy(mlp(p, xs, "tanh"), Y)

        exact = float(jax.jit(jax.grad(loss))(p)[1]["w"][3, 5])
        slope = jax.jit(lambda p, eps: finite_difference(loss, p, 1, 3, 5, eps))
        return [abs(float(slope(p, eps)) - exact) / abs(exact) for eps in epsilons]


epsilons = np.logspace(-8, -1, 15)
errors = {dtype.__name__: slope_errors(dtype, epsilons) for dtype in (jnp.float32, jnp.float64)}

fig, ax = plt.subplots(figsize=(6, 4))
for name, err in errors.items():
    ax.loglog(epsilons, np.maximum(err, 1e-17), "o-", label=name)
ax.set_xlabel("step size epsilon (weight units)")
ax.set_ylabel("relative error of the slope (dimensionless)")
ax.set_title("Finite-difference error against step size")
ax.legend()
plt.show()

# %% [markdown]
# In float64 with $\epsilon = 10^{-5}$ the estimate is good to about 9 digits, so we can check *every*
# weight of the deep network's first layer against `lab.backprop`'s gradient. The largest relative
# difference printed should be below about $10^{-6}$. (In quick mode only a few weights are checked.)

# %%
with jax.enable_x64(True):
    p64 = jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), deep)
    xs = X.astype(jnp.float64)
    _, hand64 = mlp_value_and_grad(p64, xs, Y, activation="tanh", loss="cross_entropy")
    loss64 = lambda p: cross_entropy(mlp(p, xs, "tanh"), Y)  # noqa: E731
    slope = jax.jit(lambda p, i, j: finite_difference(loss64, p, 0, i, j, 1e-5))
    rows, cols = p64[0]["w"].shape
    entries = [(i, j) for i in range(rows) for j in range(cols)][: 4 if QUICK else None]
    worst = 0.0
    for i, j in entries:
        fd = slope(p64, i, j)
        g = hand64[0]["w"][i, j]
        worst = max(worst, abs(float(fd - g)) / max(abs(float(g)), 1e-8))
print(f"checked {len(entries)} weights; largest relative difference {worst:.1e}")

# %% [markdown]
# ## The gradient trains the network
#
# Finally, gradients are for descending. Plain gradient descent,
# $W \leftarrow W - \eta\,\partial L/\partial W$, with the hand-written gradient from `lab.backprop`,
# on the two moons. `jax.jit` compiles the step function once into fast machine code;
# `jax.tree_util.tree_map` applies the update to every leaf.
# The loss should fall steadily towards 0, and the test accuracy end well above what a straight
# boundary between the two half-moons can reach.

# %%
@jax.jit
def step(params, lr):
    loss, grads = mlp_value_and_grad(params, X, Y, activation="relu", loss="cross_entropy")
    return jax.tree_util.tree_map(lambda w, g: w - lr * g, params, grads), loss


net = init_mlp(jax.random.key(3), (2, 32, 32, 2), init="he_normal")
steps = 200 if QUICK else 3000
losses = []
for _ in range(steps):
    net, loss = step(net, 0.5)
    losses.append(float(loss))
accuracy = jnp.mean(jnp.argmax(mlp(net, data.x_test, "relu"), axis=1) == data.y_test)
print(f"final training loss {losses[-1]:.3f}, test accuracy {float(accuracy):.3f}")

fig, ax = plt.subplots(figsize=(6, 4))
ax.semilogy(losses)
ax.set_xlabel("step (full-batch gradient descent updates)")
ax.set_ylabel("training loss (cross-entropy, nats)")
ax.set_title("Gradient descent with the hand-written gradient")
plt.show()

# %% [markdown]
# ## Exercises
#
# **1.** Replace ReLU by the sigmoid $\sigma(z) = 1/(1+e^{-z})$ in the two-layer network and write its
# backward pass by hand, using $\sigma'(z) = \sigma(z)(1 - \sigma(z))$. Check your gradient against
# `jax.grad`.
#
# **2.** Add an L2 penalty $\frac{\lambda}{2}(\lVert W_0\rVert^2 + \lVert W_1 \rVert^2)$ to the loss.
# Which lines of the hand-written backward pass change? Check against
# `mlp_value_and_grad(..., l2=lam)`.
#
# **3.** `jax.grad` can be applied twice. Compute $f''(x)$ for $f(x) = x^3 + \sin x$ at $x = 2$ and
# compare with the closed form $6x - \sin x$.

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# s = jax.nn.sigmoid(z0)                       # hidden outputs with the sigmoid
# o_s = s @ W1 + b1
# delta = (jax.nn.softmax(o_s, axis=1) - jax.nn.one_hot(Y, 2)) / B
# delta0 = (delta @ W1.T) * s * (1 - s)        # sigma'(z0) = s (1 - s)
# mine = [{"w": X.T @ delta0, "b": delta0.sum(0)}, {"w": s.T @ delta, "b": delta.sum(0)}]
# auto = jax.grad(lambda p: cross_entropy(mlp(p, X, "sigmoid"), Y))(params)
# print(jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), mine, auto))  # 1e-7 or less
# ```
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# Only the weight gradients change: each gains $\lambda W$ (the derivative of $\frac{\lambda}{2} W^2$).
# The deltas, and the bias gradients, are unchanged.
#
# ```python
# lam = 0.1
# mine = [{"w": dW0 + lam * W0, "b": db0}, {"w": dW1 + lam * W1, "b": db1}]
# _, lab_grads = mlp_value_and_grad(params, X, Y, activation="relu", loss="cross_entropy", l2=lam)
# print(jax.tree_util.tree_map(lambda a, b: float(jnp.max(jnp.abs(a - b))), mine, lab_grads))  # 0 or rounding
# ```
#
# </details>

# %% [markdown]
# <details><summary>Solution</summary>
#
# ```python
# d2f = jax.grad(jax.grad(f))
# print(d2f(2.0), 6 * 2.0 - jnp.sin(2.0))      # both 11.0907...
# ```
#
# </details>
