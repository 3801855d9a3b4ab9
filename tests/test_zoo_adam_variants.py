"""Adam's variants (NAdam, NAdamW, AMSGrad, Adamax, AdamaxW, AdaBelief, RAdam, Yogi): optax's own
convergence test in float32 and complex64, closed forms from the papers, traced hyperparameters,
compilation and bad input. Step-by-step agreement with optax in three dtypes is checked for the whole
catalogue by tests/test_optim.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from convergence import descend

from lab.optim import adam_maxima, adam_variants, catalogue
from lab.optim.adam_maxima import adamax, amsgrad
from lab.optim.adam_variants import adabelief, nadam, radam, yogi

FAMILY = ("nadam", "nadamw", "amsgrad", "adamax", "adamaxw", "adabelief", "radam", "yogi")
FACTORIES = {name: getattr(adam_variants, name, None) or getattr(adam_maxima, name) for name in FAMILY}
STANDARD = "standard"  # optax itself is not clean under strict dtype promotion

# optax's alias_test.py _OPTIMIZERS_UNDER_TEST rows for the family.
OPTAX_KWARGS = {"nadam": {"learning_rate": 1e-2}, "nadamw": {"learning_rate": 1e-2},
                "amsgrad": {"learning_rate": 1e-1}, "adamax": {"learning_rate": 1e-1},
                "adamaxw": {"learning_rate": 1e-1}, "adabelief": {"learning_rate": 1e-2},
                "radam": {"learning_rate": 5e-3}, "yogi": {"learning_rate": 1e-1}}


def _abs_sq(x):
    return (jnp.conj(x) * x).real


# optax's alias_test.py targets: (initial params, minimum, objective); complex targets move the minimum.
def _parabola(dtype):
    final = jnp.array([1.0, -1.0, 1.0], dtype) * (1 + 1j if jnp.iscomplexobj(jnp.zeros((), dtype)) else 1)
    return jnp.array([-1.0, 10.0, 1.0], dtype), final, lambda p: jnp.sum(_abs_sq(p - final))


def _rosenbrock(dtype):
    a = 1.0 * (1 + 1j if jnp.iscomplexobj(jnp.zeros((), dtype)) else 1)
    objective = lambda p: _abs_sq(a - p[0]) + 100.0 * _abs_sq(p[1] - p[0] ** 2)  # noqa: E731
    return jnp.zeros(2, dtype), jnp.array([a, a ** 2], dtype), objective


CASES = [(name, target, dtype) for name in FAMILY for target in ("parabola", "rosenbrock")
         for dtype in ("float32", "complex64")]


@functools.cache
def _converged():
    """Every case's parameters after optax's 10,000 steps, all in one compiled program."""
    setups = [({"parabola": _parabola, "rosenbrock": _rosenbrock}[t](jnp.dtype(d)),
               FACTORIES[n](**OPTAX_KWARGS[n])) for n, t, d in CASES]

    finals = [p for p, _ in descend(setups, 10_000)]
    return {case: (np.asarray(p), np.asarray(minimum))
            for case, p, ((_, minimum, _), _) in zip(CASES, finals, setups, strict=True)}


@pytest.mark.parametrize("case", CASES, ids=["-".join(c) for c in CASES])
def test_converges_like_optax_alias_test(case):
    """optax's test_optimization: within rtol = atol = 3e-2 of the minimum after 10,000 steps."""
    final, minimum = _converged()[case]
    np.testing.assert_allclose(final, minimum, rtol=3e-2, atol=3e-2)


def test_second_update_does_not_recompile():
    """One jitted update of all eight, on float32 and complex64 leaves, is compiled once."""
    params = {"w": jnp.ones((3, 2)), "z": jnp.full((2,), 1 - 2j, jnp.complex64)}
    opts = [FACTORIES[n](1e-2) for n in FAMILY]

    @jax.jit
    def update(grads, states, params):
        outs = [opt.update(grads, s, params) for opt, s in zip(opts, states, strict=True)]
        return [u for u, _ in outs], [s for _, s in outs]

    states = [opt.init(params) for opt in opts]
    updates, states = update(params, states, params)
    updates, states = update(updates[0], states, params)
    assert update._cache_size() == 1


def test_complex_updates_match_optax():
    """optax runs all eight on complex parameters (gradients conjugated by the caller, second moments
    of |g|²); the verifier checks real dtypes only. Every catalogue setting, 300 steps on complex64
    gradients (10% exact zeros, a leaf of scale 1e-6), all in one program: the largest difference per
    leaf within float32's verification tolerance of the leaf's largest update."""
    steps, rng = 300, np.random.default_rng(0)
    shapes, scales = {"w": (3, 4), "tiny": (5,)}, {"w": 1.0, "tiny": 1e-6}

    def draw(shape, scale):
        z = rng.standard_normal(shape) + 1j * rng.standard_normal(shape)
        return (scale * np.where(rng.random(shape) < 0.1, 0, z + (1 - 2j))).astype(np.complex64)

    grads = {k: draw((steps, *s), scales[k]) for k, s in shapes.items()}
    params0 = {k: draw(s, 1.0) for k, s in shapes.items()}
    settings = [(n, kw) for n in FAMILY for kw in catalogue.get(n).verify]
    pairs = [(FACTORIES[n](**kw), catalogue.get(n).reference(**kw)) for n, kw in settings]

    def run(grads):
        def step(carry, g):
            new, out = [], []
            for (lab_opt, ref_opt), (p, lab_s, ref_s) in zip(pairs, carry, strict=True):
                lab_u, lab_s = lab_opt.update(g, lab_s, p)
                with jax.numpy_dtype_promotion(STANDARD):
                    ref_u, ref_s = ref_opt.update(g, ref_s, p)
                    new.append((optax.apply_updates(p, ref_u), lab_s, ref_s))
                out.append((lab_u, ref_u))
            return new, out

        with jax.numpy_dtype_promotion(STANDARD):
            carry = [(params0, lab_opt.init(params0), ref_opt.init(params0)) for lab_opt, ref_opt in pairs]
        return jax.lax.scan(step, carry, grads)[1]

    for (lab_u, ref_u), setting in zip(jax.jit(run)(grads), settings, strict=True):
        for k in shapes:
            lab_k, ref_k = np.asarray(lab_u[k]), np.asarray(ref_u[k])
            assert lab_k.dtype == np.complex64 and np.all(np.isfinite(ref_k)), setting
            assert np.max(np.abs(lab_k - ref_k)) <= 2.4e-5 * np.max(np.abs(ref_k)), (setting, k)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "complex64"])
def test_state_and_updates_keep_the_parameter_dtype(dtype):
    params = {"s": jnp.asarray(1.5, dtype), "m": jnp.ones((2, 3), dtype)}
    for name in FAMILY:
        opt = FACTORIES[name](0.1)
        updates, state = opt.update(jax.tree.map(lambda p: 0.5 * p, params), opt.init(params), params)
        assert all(updates[k].dtype == p.dtype and updates[k].shape == p.shape for k, p in params.items())
        for leaf in jax.tree.leaves(state):
            is_count = leaf.ndim == 0 and leaf.dtype.kind == "i"
            assert leaf.dtype == (jnp.int32 if is_count else jnp.dtype(dtype)), name
        assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates)), name


# ----------------------------------------------------------------------------- closed forms (float64)

G = np.array([3.0, -0.5, 2e-3, 0.0])  # includes a gradient below eps and an exact zero


def _updates(opt, grads, params=None):
    """The updates of ``len(grads)`` steps from ``params`` (zeros), fed ``grads``; (steps, n) float64."""
    p = jnp.zeros(G.shape) if params is None else jnp.asarray(params)
    state, out = opt.init(p), []
    for g in grads:
        u, state = opt.update(jnp.asarray(g), state, p)
        out.append(np.asarray(u))
    return np.array(out), state


def test_nadam_first_step_is_dozats_look_ahead(x64):
    """m_1 = (1-b1) g: m̂_1 = b1 m_1 / (1-b1²) + (1-b1) g / (1-b1) = (1 + b1/(1+b1)) g, v̂_1 = g²."""
    lr, b1, eps = 0.1, 0.8, 1e-8
    u, _ = _updates(nadam(lr, b1=b1, eps=eps), [G])
    np.testing.assert_allclose(u[0], -lr * (1 + b1 / (1 + b1)) * G / (np.abs(G) + eps), rtol=1e-12)


def test_adabelief_first_step_divides_by_b1_times_the_gradient(x64):
    """s_1 = (1-b2) (g - (1-b1) g)² + eps_root, so ŝ_1 = b1² g² + eps_root / (1-b2) and m̂_1 = g."""
    lr, b1, b2, eps, eps_root = 0.1, 0.8, 0.99, 1e-8, 1e-10
    u, _ = _updates(adabelief(lr, b1, b2, eps, eps_root), [G])
    expected = -lr * G / (np.sqrt(b1 ** 2 * G ** 2 + eps_root / (1 - b2)) + eps)
    np.testing.assert_allclose(u[0], expected, rtol=1e-12)


def test_amsgrad_keeps_the_denominator_of_a_large_first_gradient(x64):
    """After g_1 = G and zeros, v̂_t = (1-b2) b2^(t-1) G² / (1-b2^t) < G²: the maximum stays G²
    (corrected), or (1-b2) G² with both corrections off (the paper's rule)."""
    lr, b1, b2, eps, steps = 0.1, 0.9, 0.99, 1e-8, 6
    grads = [G] + [np.zeros_like(G)] * (steps - 1)
    t = np.arange(1, steps + 1)[:, None]
    m = (1 - b1) * b1 ** (t - 1) * G
    u, _ = _updates(amsgrad(lr, b1, b2, eps), grads)
    np.testing.assert_allclose(u, -lr * m / (1 - b1 ** t) / (np.abs(G) + eps), rtol=1e-12)
    u, _ = _updates(amsgrad(lr, b1, b2, eps, bias_correction_mu=False, bias_correction_nu=False), grads)
    np.testing.assert_allclose(u, -lr * m / (np.sqrt(1 - b2) * np.abs(G) + eps), rtol=1e-12)


def test_adamax_maximum_decays_by_b2_after_a_large_gradient(x64):
    """v_t = max(|g_t| + eps, b2 v_(t-1)): after g_1 = G and zeros, v_t = b2^(t-1) (|G| + eps)."""
    lr, b1, b2, eps, steps = 0.1, 0.9, 0.5, 1e-8, 6
    grads = [G] + [np.zeros_like(G)] * (steps - 1)
    t = np.arange(1, steps + 1)[:, None]
    m_hat = (1 - b1) * b1 ** (t - 1) * G / (1 - b1 ** t)
    v = np.maximum(b2 ** (t - 1) * (np.abs(G) + eps), eps)
    u, _ = _updates(adamax(lr, b1, b2, eps), grads)
    np.testing.assert_allclose(u, -lr * m_hat / v, rtol=1e-12)


@pytest.mark.parametrize("threshold", [5.0, 8.0])
def test_radam_is_momentum_sgd_until_rho_reaches_the_threshold(threshold, x64):
    """With a constant gradient m̂_t = g and v̂_t = g²: u_t = -lr g while rho_t < threshold, then
    -lr r_t g / (|g| + eps) with the paper's rho_t and r_t."""
    lr, b2, eps, steps = 0.1, 0.999, 1e-8, 12
    g = G[:3]  # a constant nonzero gradient
    t = np.arange(1, steps + 1)
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2 ** t / (1 - b2 ** t)
    r = np.sqrt(np.clip((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho), 0, None))
    expected = np.where((rho >= threshold)[:, None], -lr * r[:, None] * g / (np.abs(g) + eps), -lr * g)
    assert 2 < np.argmax(rho >= threshold) < steps - 2  # both regimes are exercised
    u, _ = _updates(radam(lr, b2=b2, eps=eps, threshold=threshold), [g] * steps, np.zeros(3))
    np.testing.assert_allclose(u, expected, rtol=1e-10)


def test_yogi_moves_the_second_moment_additively_from_one_in_a_million(x64):
    """m_0 = v_0 = 1e-6 (optax's start); v_t = v_(t-1) - (1-b2) sign(v_(t-1) - g²) g²."""
    lr, b1, b2, eps = 0.1, 0.9, 0.99, 1e-3
    big, small = G, 0.1 * G
    v1 = 1e-6 - (1 - b2) * np.sign(1e-6 - big ** 2) * big ** 2  # grows by (1-b2) g² where g² > v_0
    v2 = v1 - (1 - b2) * np.sign(v1 - small ** 2) * small ** 2  # shrinks by (1-b2) g², not by a factor b2
    assert np.all(v2[:3] < v1[:3])
    m1 = b1 * 1e-6 + (1 - b1) * big
    u, state = _updates(yogi(lr, b1, b2, eps), [big, small])
    np.testing.assert_allclose(np.asarray(state[0].nu), v2, rtol=1e-12)
    np.testing.assert_allclose(u[0], -lr * (m1 / (1 - b1)) / (np.sqrt(v1 / (1 - b2)) + eps), rtol=1e-12)


@pytest.mark.parametrize("name", ["nadamw", "adamaxw"])
def test_decoupled_weight_decay_alone_when_gradients_are_zero(name, x64):
    """A zero gradient gives a zero rescaled step, so u_1 = -lr * weight_decay * theta exactly."""
    theta = np.array([1.0, -2.0, 0.5, 3.0])
    u, _ = _updates(FACTORIES[name](0.1, weight_decay=0.3), [np.zeros(4)], theta)
    np.testing.assert_allclose(u[0], -0.1 * 0.3 * theta, rtol=1e-15)


# ----------------------------------------------------------------------------- traced hyperparameters


def _rosenbrock_2d(p):
    return jnp.square(1.0 - p[0]) + 100.0 * jnp.square(p[1] - p[0] ** 2)


def _five_steps(lr, b1, b2):
    """Five steps of each optimizer on Rosenbrock: (8, 2) parameters."""
    finals = []
    for name in FAMILY:
        kw = {"threshold": 5 * b1 + 2} if name == "radam" else {}  # a traced threshold too
        opt, p = FACTORIES[name](lr, b1=b1, b2=b2, **kw), jnp.array([-1.0, 1.5])
        state = opt.init(p)
        for _ in range(5):
            u, state = opt.update(jax.grad(_rosenbrock_2d)(p), state, p)
            p = optax.apply_updates(p, u)
        finals.append(p)
    return jnp.stack(finals)


def test_vmapped_hyperparameters_match_separate_runs():
    """Hyperparameters traced under vmap (a sweep) give the concrete values' results; with b2 = 0.9
    RAdam's rectification starts within the five steps."""
    lrs, b1s, b2s = (jnp.array(v, jnp.float32) for v in ([1e-3, 3e-3], [0.5, 0.9], [0.9, 0.999]))
    swept = np.asarray(jax.jit(jax.vmap(_five_steps))(lrs, b1s, b2s))
    assert np.all(np.isfinite(swept))
    for i in range(2):
        separate = _five_steps(float(lrs[i]), float(b1s[i]), float(b2s[i]))
        np.testing.assert_allclose(swept[i], np.asarray(separate), rtol=1e-5)


# ----------------------------------------------------------------------------- bad input


BAD_VALUES = [("nadam", {"b1": 1.5}, "b1"), ("nadamw", {"weight_decay": -1.0}, "weight_decay"),
              ("amsgrad", {"eps_root": -1e-8}, "eps_root"), ("adamax", {"b2": -0.1}, "b2"),
              ("adamaxw", {"eps": float("nan")}, "eps"), ("adabelief", {"eps": -1.0}, "eps"),
              ("radam", {"threshold": -5.0}, "threshold"), ("radam", {"b2": 1.0}, "b2"),
              ("yogi", {"b1": 2.0}, "b1"), ("yogi", {"learning_rate": -1.0}, "learning_rate")]


@pytest.mark.parametrize(("name", "kwargs", "arg"), BAD_VALUES, ids=[f"{n}-{a}" for n, _, a in BAD_VALUES])
def test_bad_values_raise_value_error_naming_the_argument(name, kwargs, arg):
    with pytest.raises(ValueError, match=arg):
        FACTORIES[name](**{"learning_rate": 0.1, **kwargs})


FLAGS = [("amsgrad", "bias_correction_mu"), ("amsgrad", "bias_correction_nu"), ("adabelief", "nesterov"),
         ("radam", "nesterov")]


@pytest.mark.parametrize(("name", "arg"), FLAGS, ids=[f"{n}-{a}" for n, a in FLAGS])
def test_flags_must_be_python_bools(name, arg):
    with pytest.raises(TypeError, match=arg):
        FACTORIES[name](0.1, **{arg: "yes"})


@pytest.mark.parametrize("name", FAMILY)
def test_integer_leaves_are_refused_and_complex_ones_accepted(name):
    opt = FACTORIES[name](0.1)
    with pytest.raises(TypeError, match=r"\['n'\] has dtype int32"):
        opt.init({"w": jnp.ones(2), "n": jnp.ones(2, jnp.int32)})
    opt.init({"z": jnp.ones(2, jnp.complex64)})


def test_catalogue_entries_name_optax_and_torch_counterparts():
    torch_names = {"nadam": "NAdam", "nadamw": "NAdam", "amsgrad": "Adam", "adamax": "Adamax",
                   "radam": "RAdam"}
    for name in FAMILY:
        entry = catalogue.get(name)
        assert entry.factory is FACTORIES[name] and entry.reference is getattr(optax, name)
        assert entry.complex_params and entry.schedule and not entry.featured
        assert (entry.torch.name if entry.torch else None) == torch_names.get(name)
        assert any(set(kw) - {"learning_rate", "weight_decay"} for kw in entry.verify), name
