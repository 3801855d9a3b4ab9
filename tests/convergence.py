"""optax's convergence check, shared by the zoo's test files: several optimizers descending their
targets side by side in one compiled program."""

import jax
import jax.numpy as jnp
import optax


def descend(setups, steps: int):
    """``setups``: ``((params0, minimum, objective), optimizer)`` pairs. Returns each pair's
    ``(params, state)`` after ``steps`` updates, with gradients conjugated as optax expects for
    complex parameters; one jitted ``lax.scan`` runs them all."""

    def run():
        def step(carry, _):
            new = []
            for ((_, _, objective), opt), (p, s) in zip(setups, carry, strict=True):
                g = jax.tree.map(jnp.conj, jax.grad(objective)(p))  # optax's convention for complex
                u, s = opt.update(g, s, p)
                new.append((optax.apply_updates(p, u), s))
            return new, None

        carry = [(p0, opt.init(p0)) for (p0, _, _), opt in setups]
        return jax.lax.scan(step, carry, None, length=steps)[0]

    return jax.jit(run)()
