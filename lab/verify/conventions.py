"""The documented convention differences (docs/optimizers.md) that ``compare`` tries when a candidate
fails: each is an optax setting or, where optax has none, a small model of the convention written
with optax's tree utilities. :func:`probes` lists those that apply to a reference.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

Factory = Callable[..., optax.GradientTransformation]


@dataclasses.dataclass(frozen=True)
class Probe:
    """A reference that differs from the original by one documented convention."""

    name: str  # the convention, as docs/optimizers.md and docs/verify.md name it
    matches: str  # the reference written out, e.g. "optax.rmsprop(learning_rate=0.001, eps_in_sqrt=False)"
    optax_setting: bool  # False: no optax setting has it; ``reference`` models it
    reference: Factory
    kwargs: dict[str, Any]


# ----------------------------------------------------------------------------- models


class _CountState(NamedTuple):
    count: jax.Array  # () int32: steps taken
    mu: optax.Updates
    nu: optax.Updates


class _NadamState(NamedTuple):
    count: jax.Array  # () int32
    mu_product: jax.Array  # () default float holding a float32 value: the product of the mu_t so far
    mu: optax.Updates
    nu: optax.Updates


def _lr(learning_rate) -> optax.GradientTransformation:
    return optax.scale_by_learning_rate(learning_rate)


def _moments(b1: float, b2: float, update) -> optax.GradientTransformation:
    """A transformation with first and second moments, ``update(g, m, v, t) -> u`` per leaf."""

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return _CountState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        t = count.astype(jnp.result_type(float))  # float64 under x64, as optax's corrections
        out = jax.tree.map(lambda g, m, v: update(g, m, v, t), updates, mu, nu)
        return out, _CountState(count, mu, nu)

    return optax.GradientTransformation(init, update_fn)


def adam_without_bias_correction(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0):
    r"""Adam with the bias correction off: :math:`u = -\alpha m / (\sqrt{v + \bar\epsilon} + \epsilon)`."""
    moments = _moments(b1, b2, lambda g, m, v, t: m / (jnp.sqrt(v + eps_root) + eps))
    return optax.chain(moments, _lr(learning_rate))


def adagrad_eps_outside(learning_rate, initial_accumulator_value=0.1, eps=1e-7):
    r"""Adagrad as ``torch.optim.Adagrad``, :math:`\epsilon` outside the root:
    :math:`s_t = s_{t-1} + g^2,\; u = -\alpha g / (\sqrt{s_t} + \epsilon)`."""

    def init(params):
        return optax.ScaleByRssState(optax.tree.full_like(params, initial_accumulator_value))

    def update_fn(updates, state, params=None):
        del params
        s = jax.tree.map(lambda g, s: s + g * g, updates, state.sum_of_squares)
        return jax.tree.map(lambda g, s: g / (jnp.sqrt(s) + eps), updates, s), optax.ScaleByRssState(s)

    return optax.chain(optax.GradientTransformation(init, update_fn), _lr(learning_rate))


def _host(fn: Callable[..., tuple[float, ...]], n: int, *args: jax.Array) -> tuple[jax.Array, ...]:
    """``fn(*args)`` evaluated on the host in Python floats (double precision, as torch computes its
    step's scalars), returned as ``n`` scalars of the default float type."""
    dtype = jnp.result_type(float)
    shapes = tuple(jax.ShapeDtypeStruct((), dtype) for _ in range(n))

    def host(*xs):
        return tuple(np.asarray(v, dtype) for v in fn(*(x.item() for x in xs)))

    return jax.pure_callback(host, shapes, *args, vmap_method="sequential")


def radam_eps_before_correction(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, threshold=5.0):
    r"""RAdam as ``torch.optim.RAdam``: :math:`\epsilon` is added to :math:`\sqrt{v_t}` before the bias
    correction, :math:`r_t \hat m_t \sqrt{1 - \beta_2^t} / (\sqrt{v_t} + \epsilon)` (the Adam paper's
    efficient form) where optax has :math:`r_t \hat m_t / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)`;
    the step's scalars in double precision, as torch computes them."""
    rho_inf = 2 / (1 - b2) - 1

    def scalars(t):
        bc2 = 1 - b2**t
        rho = rho_inf - 2 * t * b2**t / bc2
        ratio = (rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho)
        rect = ratio**0.5 if rho > 4 else 0.0
        return 1 - b1**t, rect * bc2**0.5, float(rho > threshold)

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return _CountState(jnp.zeros([], jnp.int32), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
        count = optax.safe_increment(state.count)
        bc1, adaptive, rectified = _host(scalars, 3, count)

        def leaf(m, v):
            m_hat = m / bc1.astype(m.dtype)
            return jnp.where(rectified > 0, adaptive.astype(m.dtype) * m_hat / (jnp.sqrt(v + eps_root) + eps),
                             m_hat)

        return jax.tree.map(leaf, mu, nu), _CountState(count, mu, nu)

    return optax.chain(optax.GradientTransformation(init, update_fn), _lr(learning_rate))


def torch_nadam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, eps_root=0.0, momentum_decay=4e-3):
    r"""NAdam as ``torch.optim.NAdam``, with the momentum schedule
    :math:`\mu_t = \beta_1 (1 - \tfrac12 \cdot 0.96^{t\psi})` (``momentum_decay`` :math:`\psi`):
    :math:`u = -\alpha \big(\frac{1 - \mu_t}{1 - \prod_{i \le t} \mu_i} g_t
    + \frac{\mu_{t+1}}{1 - \prod_{i \le t+1} \mu_i} m_t\big) / (\sqrt{\hat v_t + \bar\epsilon} + \epsilon)`.
    As :math:`\psi \to \infty` it becomes ``optax.nadam``. The scalars are computed as torch does: in
    double precision, with the running product kept in float32."""

    def scalars(t, product):
        mu_t = b1 * (1 - 0.5 * 0.96 ** (t * momentum_decay))
        mu_next = b1 * (1 - 0.5 * 0.96 ** ((t + 1) * momentum_decay))
        product = float(np.float32(product) * np.float32(mu_t))
        return product, (1 - mu_t) / (1 - product), mu_next / (1 - product * mu_next), 1 - b2**t

    def init(params):
        zeros = optax.tree.zeros_like(params)
        return _NadamState(jnp.zeros([], jnp.int32), jnp.ones([], jnp.result_type(float)), zeros, zeros)

    def update_fn(updates, state, params=None):
        del params
        count = optax.safe_increment(state.count)
        product, c_g, c_m, bc2 = _host(scalars, 4, count, state.mu_product)
        mu = optax.tree.update_moment(updates, state.mu, b1, 1)
        nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)

        def leaf(g, m, v):
            denom = jnp.sqrt(v / bc2.astype(v.dtype) + eps_root) + eps
            return (c_g.astype(g.dtype) * g + c_m.astype(m.dtype) * m) / denom

        return jax.tree.map(leaf, updates, mu, nu), _NadamState(count, product, mu, nu)

    return optax.chain(optax.GradientTransformation(init, update_fn), _lr(learning_rate))


class _BufferState(NamedTuple):
    count: jax.Array  # () int32
    buffer: optax.Updates


def sgd_with_dampening(learning_rate, momentum=0.9, dampening=0.9, nesterov=False):
    r"""SGD as ``torch.optim.SGD(momentum=μ, dampening=d)``: :math:`b_1 = g_1`,
    :math:`b_t = \mu b_{t-1} + (1 - d) g_t`, :math:`u = -\alpha b_t` (Nesterov: :math:`g_t + \mu b_t`)."""

    def init(params):
        return _BufferState(jnp.zeros([], jnp.int32), optax.tree.zeros_like(params))

    def update_fn(updates, state, params=None):
        del params
        first = state.count == 0
        buf = jax.tree.map(lambda g, b: jnp.where(first, g, momentum * b + (1 - dampening) * g),
                           updates, state.buffer)
        out = jax.tree.map(lambda g, b: g + momentum * b, updates, buf) if nesterov else buf
        return out, _BufferState(optax.safe_increment(state.count), buf)

    return optax.chain(optax.GradientTransformation(init, update_fn), _lr(learning_rate))


def rmsprop_lr_after_momentum(learning_rate, decay=0.9, eps=1e-8, initial_scale=0.0, eps_in_sqrt=True,
                              centered=False, momentum=None, nesterov=False):
    """RMSprop with the learning rate applied after the momentum buffer, as ``torch.optim.RMSprop``
    does (optax applies it before); the two differ only under a schedule."""
    scaler = optax.scale_by_stddev if centered else optax.scale_by_rms
    blocks = [scaler(decay=decay, eps=eps, initial_scale=initial_scale, eps_in_sqrt=eps_in_sqrt)]
    if momentum is not None:
        blocks.append(optax.trace(decay=momentum, nesterov=nesterov))
    return optax.chain(*blocks, _lr(learning_rate))


# ----------------------------------------------------------------------------- the table


def _written(name: str, kwargs: Mapping[str, Any]) -> str:
    def value(v):  # 12 significant digits: 0.1 * (1 - 0.9) is written 0.01
        return f"{v:.12g}" if isinstance(v, float) else repr(v)

    return f"{name}({', '.join(f'{k}={value(v)}' for k, v in kwargs.items())})"


def _coupled(factory: Factory, name: str, weight_decay: float) -> tuple[Factory, str]:
    def coupled(**kw):
        return optax.chain(optax.add_decayed_weights(weight_decay), factory(**kw))

    return coupled, f"optax.chain(optax.add_decayed_weights({weight_decay!r}), {name})"


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def probes(reference_label: str, reference: Any, kwargs: Mapping[str, Any],
           candidate_kwargs: Mapping[str, Any]) -> list[Probe]:
    """The documented conventions that could explain a candidate's failure against ``reference``
    with ``kwargs``, in the order they are tried (single differences before combinations)."""
    kw = dict(kwargs)
    out: list[Probe] = []

    def setting(label: str, **changes):
        new = {**kw, **changes}
        out.append(Probe(label, _written(reference_label, new), True, reference, new))

    def model(label: str, factory: Factory, written: str | None = None, optax_setting=False, **changes):
        new = {**kw, **changes}
        out.append(Probe(label, written or _written(f"lab.verify.conventions.{factory.__name__}", new),
                         optax_setting, factory, new))

    weight_decay = candidate_kwargs.get("weight_decay", kw.get("weight_decay"))
    lr = kw.get("learning_rate")
    if reference is optax.rmsprop:
        changes = {"eps_in_sqrt": ("RMSProp's ε outside the square root", False)}
        if "decay" not in kw:
            changes["decay"] = ("RMSProp's decay: torch's default alpha=0.99", 0.99)
        if "initial_scale" not in kw:
            changes["initial_scale"] = ("RMSProp's start: ν₀ = 1 (TF1's)", 1.0)
        for n in (1, 2):
            for combo in itertools.combinations(changes, n):
                setting(" and ".join(changes[c][0] for c in combo), **{c: changes[c][1] for c in combo})
        if kw.get("momentum") is not None:
            model("momentum and the learning rate: the learning rate after the momentum buffer (torch's)",
                  rmsprop_lr_after_momentum)
            model("momentum and the learning rate after the buffer, and RMSProp's ε outside the square root",
                  rmsprop_lr_after_momentum, eps_in_sqrt=False, **({} if "decay" in kw else {"decay": 0.99}))
    elif reference is optax.sgd and _number(kw.get("momentum")) and _number(lr):
        mu = kw["momentum"]
        setting("momentum form: a moving average v = βv + (1−β)g", learning_rate=lr * (1 - mu))
        damp = candidate_kwargs.get("dampening", mu)
        model(f"SGD's dampening: torch's first buffer is g₁, not (1−d)g₁ (d={damp})", sgd_with_dampening,
              dampening=damp)
    elif reference is optax.adam:
        if _number(weight_decay) and weight_decay > 0:
            factory, written = _coupled(optax.adam, _written("optax.adam", kw), weight_decay)
            model(f"weight decay in Adam: coupled L2 (torch's Adam weight_decay={weight_decay})", factory,
                  written, optax_setting=True)
            decoupled = {**kw, "weight_decay": weight_decay}
            written = _written("optax.adamw", decoupled)
            out.append(Probe("AdamW's decay: decoupled weight decay", written, True, optax.adamw, decoupled))
        model("Adam's bias correction off", adam_without_bias_correction)
    elif reference is optax.adamw:
        if "weight_decay" not in kw:
            setting("AdamW's decay: torch's default weight_decay=1e-2", weight_decay=1e-2)
        wd = kw.get("weight_decay", 1e-4)
        plain = {k: v for k, v in kw.items() if k not in ("weight_decay", "mask")}
        factory, written = _coupled(optax.adam, _written("optax.adam", plain), wd)
        out.append(Probe("weight decay: coupled L2 instead of AdamW's decoupled decay", written, True,
                         factory, plain))
    elif reference is optax.adagrad:
        start = {} if "initial_accumulator_value" in kw else {"initial_accumulator_value": 0.0}
        if start:
            setting("Adagrad's start: torch's s₀ = 0", **start)
        model("Adagrad's ε outside the square root", adagrad_eps_outside)
        if start or "eps" not in kw:
            model("Adagrad as torch.optim.Adagrad: ε outside the square root, s₀ = 0 and ε = 1e-10",
                  adagrad_eps_outside, **start, **({} if "eps" in kw else {"eps": 1e-10}))
    elif reference is optax.nadam:
        psi = candidate_kwargs.get("momentum_decay", 4e-3)
        model(f"NAdam's momentum schedule: torch's momentum_decay={psi}", torch_nadam, momentum_decay=psi)
    elif reference is optax.radam:
        model("RAdam's ε added to √v before the bias correction (torch's)", radam_eps_before_correction)
    return out
