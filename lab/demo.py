"""``lab demo``: the digits MLP trained with the lab's Adam, printed as it goes.

The whole loop is a ``lax.scan`` compiled once; it runs in chunks so progress can be printed.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from lab.data import batch_indices, digits
from lab.losses import accuracy, cross_entropy
from lab.models import init_mlp, mlp


def _loss(params, x, y):
    return cross_entropy(mlp(params, x, "relu"), y)


def run_demo(steps: int = 1000, learning_rate: float = 1e-3, seed: int = 0, batch_size: int = 64,
             chunk: int = 100, print_fn=print) -> dict[str, float]:
    """Train 64-128-10 ReLU on digits with Adam; return the final train loss and test accuracy."""
    from lab.optim import adam

    key = jax.random.key(seed)
    k_data, k_init, k_batch = jax.random.split(key, 3)
    data = digits(k_data)
    params = init_mlp(k_init, (64, 128, 10), init="he_normal")
    opt = adam(learning_rate)
    n = data.x_train.shape[0]

    def step(carry, t):
        params, opt_state = carry
        idx = batch_indices(k_batch, t, n, batch_size)
        loss, grads = jax.value_and_grad(_loss)(params, data.x_train[idx], data.y_train[idx])
        updates, opt_state = opt.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state), loss

    @functools.partial(jax.jit, static_argnums=2)  # at most two lengths: chunk and the remainder
    def run_chunk(carry, start, length):
        return jax.lax.scan(step, carry, start + jnp.arange(length))

    carry = (params, opt.init(params))
    print_fn(f"digits MLP 64-128-10 (ReLU, He init), Adam lr={learning_rate:g}, batch {batch_size}, "
             f"{n} train / {data.x_test.shape[0]} test images")
    print_fn(f"{'step':>6}  {'train loss':>10}  {'test acc':>8}")
    for start in range(0, steps, chunk):
        carry, losses = run_chunk(carry, jnp.int32(start), min(chunk, steps - start))
        test_acc = float(accuracy(mlp(carry[0], data.x_test), data.y_test))
        print_fn(f"{min(start + chunk, steps):>6}  {float(jnp.mean(losses)):>10.4f}  {test_acc:>8.3f}")
    final = {"train_loss": float(_loss(carry[0], data.x_train, data.y_train)), "test_accuracy": test_acc}
    print_fn(f"final: train loss {final['train_loss']:.4f}, test accuracy {final['test_accuracy']:.3f}")
    return final
