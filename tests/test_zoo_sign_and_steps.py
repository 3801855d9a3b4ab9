"""Sign SGD, Signum, Lion, noisy SGD, Rprop (lab.optim.sign_and_steps) and Polyak SGD, Fromage,
Adadelta, optimistic gradient descent and optimistic Adam (lab.optim.steps).

optax's own convergence check (its alias tests' targets and hyperparameters, all optimizers in one
compiled program), first steps computed by hand from each paper's formula, and the two places where
the lab departs from optax on purpose, each measured: optax's Rprop emits every step one update late,
and optax's Adadelta ascends when ``learning_rate=None``. Verification against optax in three dtypes
is the catalogue-wide test's job (tests/test_optim.py).
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab.optim import catalogue, sign_and_steps, steps

STANDARD = "standard"  # optax itself is not clean under strict dtype promotion
FAMILY = ("sign_sgd", "signum", "lion", "noisy_sgd", "rprop", "polyak_sgd", "fromage", "adadelta",
          "optimistic_gradient_descent", "optimistic_adam_v2")
FACTORIES = {**{n: getattr(sign_and_steps, n) for n in FAMILY if hasattr(sign_and_steps, n)},
             **{n: getattr(steps, n) for n in FAMILY if hasattr(steps, n)}}

# ----------------------------------------------------------------------------- optax's convergence check

# optax/_src/alias_test.py, _OPTIMIZERS_UNDER_TEST (optimistic Adam: its _v2 row).
OPTAX_ROWS = [
    ("adadelta", {"learning_rate": 0.1}),
    ("fromage", {"learning_rate": 5e-3}),
    ("lion", {"learning_rate": 1e-2, "weight_decay": 1e-4}),
    ("noisy_sgd", {"learning_rate": 1e-3, "eta": 1e-4, "key": 0}),
    ("optimistic_adam_v2", {"learning_rate": 2e-3}),
    ("optimistic_gradient_descent", {"learning_rate": 2e-3, "alpha": 0.7, "beta": 0.1}),
    ("polyak_sgd", {"max_learning_rate": 1.0}),
    ("rprop", {"learning_rate": 1e-1}),
    ("sign_sgd", {"learning_rate": 1e-1}),
    ("signum", {"learning_rate": 1e-2}),
]
# As in optax: sign SGD and Signum need a schedule for Rosenbrock; only optimistic Adam runs on complex64.
CASES = [(name, kw, target, dtype) for name, kw in OPTAX_ROWS for target in ("parabola", "rosenbrock")
         for dtype in ("float32", "complex64")
         if not (name in ("sign_sgd", "signum") and target == "rosenbrock")
         and (dtype == "float32" or catalogue.get(name).complex_params)]
IDS = [f"{n}-{t}-{d}" for n, _, t, d in CASES]


def _abs_sq(x):
    return jnp.real(x * jnp.conj(x))


def _target(name, dtype):
    """optax's _setup_parabola and _setup_rosenbrock: (objective, start, minimum)."""
    c = 1 + 1j if dtype == "complex64" else 1.0
    if name == "parabola":
        final = jnp.asarray(np.array([1.0, -1.0, 1.0]) * c, dtype)
        return (lambda p: jnp.sum(_abs_sq(p - final))), jnp.array([-1.0, 10.0, 1.0], dtype), final
    a = jnp.asarray(c, dtype)
    objective = lambda p: _abs_sq(a - p[0]) + 100.0 * _abs_sq(p[1] - p[0] ** 2)  # noqa: E731
    return objective, jnp.zeros(2, dtype), jnp.stack([a, a * a])


def _step_all(opts, objectives):
    """One step of every case: value and gradient (conjugated, as optax's tests do), update, apply."""

    def step(carry):
        out = []
        for (name, *_), opt, objective, (params, state) in zip(CASES, opts, objectives, carry, strict=True):
            value, grad = jax.value_and_grad(objective)(params)
            extra = {"value": value} if catalogue.get(name).needs_value else {}
            updates, state = opt.update(jnp.conj(grad), state, params, **extra)
            out.append((optax.apply_updates(params, updates), state))
        return out

    return step


@pytest.fixture(scope="module")
def converged():
    """Every case for 10,000 steps in one compiled scan; and whether a second step call recompiled."""
    opts = [FACTORIES[name](**kw) for name, kw, _, _ in CASES]
    targets = [_target(t, d) for _, _, t, d in CASES]
    step = _step_all(opts, [obj for obj, _, _ in targets])
    carry = [(start, opt.init(start)) for opt, (_, start, _) in zip(opts, targets, strict=True)]

    jitted_step = jax.jit(step)
    jitted_step(jitted_step(carry))
    recompiled = jitted_step._cache_size() != 1

    run = jax.jit(lambda c: jax.lax.scan(lambda c, _: (step(c), None), c, None, length=10_000)[0])
    finals = run(carry)
    return {i: (params, minimum) for i, ((params, _), (_, _, minimum)) in
            enumerate(zip(finals, targets, strict=True))}, recompiled


@pytest.mark.parametrize("case", range(len(CASES)), ids=IDS)
def test_converges_like_optax_alias_tests(converged, case):
    """optax's test_optimization: within rtol = atol = 3e-2 of the minimum after 10,000 steps."""
    finals, _ = converged
    params, minimum = finals[case]
    np.testing.assert_allclose(np.asarray(params), np.asarray(minimum), rtol=3e-2, atol=3e-2)


def test_second_update_does_not_recompile(converged):
    assert not converged[1]


@pytest.mark.parametrize("name", [n for n in FAMILY if not catalogue.get(n).complex_params])
def test_complex_parameters_are_refused_where_optax_has_no_complex_support(name):
    kw = dict(catalogue.get(name).verify[0])
    with pytest.raises(TypeError, match=rf"lab\.optim\.{name} supports real floating-point leaves only.*"
                                        r"leaf \['z'\] has dtype complex64"):
        FACTORIES[name](**kw).init({"x": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)})


def test_optimistic_adam_on_complex_parameters_equals_optax():
    kw = {"learning_rate": 1e-2, "alpha": 0.5, "beta": 2.0}
    lab_tx, ref_tx = steps.optimistic_adam_v2(**kw), optax.optimistic_adam_v2(**kw)
    p = jnp.array([1 + 2j, -0.5j, 3.0], jnp.complex64)
    ls, rs = lab_tx.init(p), ref_tx.init(p)
    for t in range(20):
        g = jnp.asarray(np.exp(1j * (t + np.arange(3))) * (1 + t % 3), jnp.complex64)
        lu, ls = lab_tx.update(g, ls, p)
        with jax.numpy_dtype_promotion(STANDARD):
            ru, rs = ref_tx.update(g, rs, p)
        assert lu.dtype == jnp.complex64
        np.testing.assert_allclose(np.asarray(lu), np.asarray(ru), rtol=1e-5, atol=1e-9)


# ----------------------------------------------------------------------------- first steps by hand

G1 = jnp.array([0.5, -2.0, 0.0, 1e-3])
G2 = jnp.array([-0.025, 0.5, 1.0, 1e-3])  # coordinate 1: Signum's average keeps G1's sign, Lion's turns
THETA = jnp.array([1.0, -1.0, 2.0, 0.5])


def _two_updates(tx, **extra):
    state = tx.init(THETA)
    u1, state = tx.update(G1, state, THETA, **extra)
    u2, _ = tx.update(G2, state, THETA, **extra)
    return np.asarray(u1, np.float64), np.asarray(u2, np.float64)


def test_sign_methods_first_two_steps():
    lr, wd = 0.1, 0.3
    sign = np.sign(np.asarray(G1))
    u1, u2 = _two_updates(sign_and_steps.sign_sgd(lr))
    np.testing.assert_array_equal(u1, -lr * sign)  # 0 where the gradient is 0
    np.testing.assert_array_equal(u2, -lr * np.sign(np.asarray(G2)))
    u1, u2 = _two_updates(sign_and_steps.signum(lr, beta=0.9))
    m2 = 0.9 * 0.1 * np.asarray(G1) + 0.1 * np.asarray(G2)
    np.testing.assert_array_equal(u1, -lr * sign)
    np.testing.assert_array_equal(u2, -lr * np.sign(m2))
    u1, u2 = _two_updates(sign_and_steps.lion(lr, b1=0.9, b2=0.99, weight_decay=wd))
    theta = np.asarray(THETA)
    c2 = 0.9 * (0.01 * np.asarray(G1)) + 0.1 * np.asarray(G2)  # m_1 = (1 - b2) g_1
    np.testing.assert_allclose(u1, -lr * (sign + wd * theta), rtol=1e-6)
    np.testing.assert_allclose(u2, -lr * (np.sign(c2) + wd * theta), rtol=1e-6)
    assert np.sign(c2[1]) != np.sign(m2[1])  # Lion interpolates with a slower momentum than Signum's


def test_optimistic_first_two_steps():
    lr, alpha, beta = 0.1, 0.7, 0.2
    u1, u2 = _two_updates(steps.optimistic_gradient_descent(lr, alpha, beta))
    g1, g2 = np.asarray(G1, np.float64), np.asarray(G2, np.float64)
    np.testing.assert_allclose(u1, -lr * alpha * g1, rtol=1e-6)  # g_0 = g_1
    np.testing.assert_allclose(u2, -lr * ((alpha + beta) * g2 - beta * g1), rtol=1e-6)
    # Optimistic Adam's first direction: Nesterov's m_hat_1 = g (1 + b1 / (1 + b1)), v_hat_1 = g^2.
    b1, eps = 0.9, 1e-8
    for nesterov, factor in ((True, 1 + b1 / (1 + b1)), (False, 1.0)):
        u1, _ = _two_updates(steps.optimistic_adam_v2(lr, alpha=alpha, beta=beta, nesterov=nesterov))
        np.testing.assert_allclose(u1, -lr * alpha * factor * g1 / (np.abs(g1) + eps), rtol=1e-5)


def test_adadelta_first_step_and_learning_rate_none():
    rho, eps, wd = 0.9, 1e-6, 0.01
    g = np.asarray(G1, np.float64) + wd * np.asarray(THETA, np.float64)
    u1, _ = _two_updates(steps.adadelta(0.5, rho, eps, wd))
    np.testing.assert_allclose(u1, -0.5 * math.sqrt(eps) / np.sqrt((1 - rho) * g * g + eps) * g, rtol=1e-5)
    # learning_rate=None is a step of 1, a descent direction; optax 0.2.8 skips the scaling and so
    # returns exactly the ascent direction.
    none, one = _two_updates(steps.adadelta()), _two_updates(steps.adadelta(1.0))
    with jax.numpy_dtype_promotion(STANDARD):
        ref = _two_updates(optax.adadelta())
    for a, b, r, g in zip(none, one, ref, (G1, G2), strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, -r)
        assert np.all(a * np.asarray(g) <= 0) and np.any(a != 0)


def test_fromage_first_step_is_relative_and_keeps_the_norm_for_orthogonal_gradients():
    lr = 0.1
    w, g = np.array([[3.0, 4.0]]), np.array([[8.0, -6.0]])  # g orthogonal to w, |g| = 10, |w| = 5
    params = {"w": jnp.asarray(w, jnp.float32), "tiny": jnp.zeros(2)}
    grads = {"w": jnp.asarray(g, jnp.float32), "tiny": jnp.array([1e-9, 0.0])}
    tx = steps.fromage(lr, min_norm=1e-6)
    u, _ = tx.update(grads, tx.init(params), params)
    new_w = (w - lr * 5.0 / 10.0 * g) / math.sqrt(1 + lr**2)
    np.testing.assert_allclose(np.asarray(u["w"]) + w, new_w, rtol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(u["w"]) + w), 5.0, rtol=1e-6)
    # Both norms below min_norm are floored: a ratio of 1e-6 / 1e-6.
    np.testing.assert_allclose(np.asarray(u["tiny"]), -lr / math.sqrt(1 + lr**2) * np.array([1e-9, 0.0]))


def test_fromage_schedule_in_bfloat16_keeps_the_dtype_where_optax_returns_float32():
    """optax.fromage with a schedule returns float32 updates for bfloat16 params (its shrink factor is
    a float32 array); the lab keeps bfloat16. The values differ by bfloat16 rounding only."""
    sched = lambda c: 0.1 / (1.0 + c.astype(jnp.float32))  # noqa: E731
    p = jnp.linspace(-2.0, 2.0, 64, dtype=jnp.float32).astype(jnp.bfloat16)
    g = jnp.cos(jnp.arange(64, dtype=jnp.float32)).astype(jnp.bfloat16)
    lab_tx, ref_tx = steps.fromage(sched), optax.fromage(sched)
    ls, rs = lab_tx.init(p), ref_tx.init(p)
    worst = 0.0
    for _ in range(3):
        lu, ls = lab_tx.update(g, ls, p)
        with jax.numpy_dtype_promotion(STANDARD):
            ru, rs = ref_tx.update(g, rs, p)
        assert lu.dtype == jnp.bfloat16 and ru.dtype == jnp.float32
        r = np.asarray(ru, np.float64)
        worst = max(worst, float(np.max(np.abs(np.asarray(lu, np.float64) - r)) / np.max(np.abs(r))))
    assert 0 < worst <= 2.0**-8  # within one bfloat16 ulp of the largest update


def test_polyak_step_from_the_loss_value():
    g, value = np.asarray(G1, np.float64), 2.0
    sq = float(np.sum(g * g))
    u, _ = _polyak(steps.polyak_sgd(max_learning_rate=10.0), value)
    np.testing.assert_allclose(u, -(value / sq) * g, rtol=1e-6)
    u, _ = _polyak(steps.polyak_sgd(max_learning_rate=0.1), value)  # capped
    np.testing.assert_allclose(u, -0.1 * g, rtol=1e-6)
    # optax applies the scaling s before computing the step from the scaled gradient.
    s, f_min, eps = 0.5, -1.0, 1e-3
    u, _ = _polyak(steps.polyak_sgd(10.0, scaling=s, f_min=f_min, eps=eps), value)
    np.testing.assert_allclose(u, -min((value - f_min) / (s * s * sq + eps), 10.0) * s * g, rtol=1e-6)
    u, _ = _polyak(steps.polyak_sgd(10.0, f_min=3.0, variant="sps+"), value)  # negative gap: no step
    np.testing.assert_array_equal(u, 0.0)
    # Chained again, the loss still reaches it.
    u, _ = _polyak(optax.chain(steps.polyak_sgd(max_learning_rate=10.0)), value)
    np.testing.assert_allclose(u, -(value / sq) * g, rtol=1e-6)
    with pytest.raises(ValueError, match="polyak_sgd needs the loss"):
        tx = steps.polyak_sgd()
        tx.update(G1, tx.init(THETA), THETA)


def _polyak(tx, value):
    u, state = tx.update(G1, tx.init(THETA), THETA, value=jnp.float32(value))
    return np.asarray(u, np.float64), state


def test_polyak_scaling_schedule_equals_optax():
    kw = {"max_learning_rate": 0.5, "scaling": lambda c: 1.0 / (1.0 + c.astype(jnp.float32))}
    lab_tx, ref_tx = steps.polyak_sgd(**kw), optax.polyak_sgd(**kw)
    ls, rs = lab_tx.init(THETA), ref_tx.init(THETA)
    for t in range(4):
        g, value = G1 * (1.0 + t), jnp.float32(1.0 + 0.5 * t)
        lu, ls = lab_tx.update(g, ls, THETA, value=value)
        with jax.numpy_dtype_promotion(STANDARD):
            ru, rs = ref_tx.update(g, rs, THETA, value=value)
        np.testing.assert_allclose(np.asarray(lu), np.asarray(ru), rtol=1e-6)


def test_noisy_sgd_noise_has_the_annealed_variance():
    """With zero gradients the update is -lr sigma_t xi_t, sigma_t^2 = eta / t^gamma: the sample
    standard deviation over 20,000 coordinates is within 3% of it at t = 1 and t = 50."""
    lr, eta, gamma = 0.5, 0.04, 0.55
    tx = sign_and_steps.noisy_sgd(lr, eta, gamma, key=3)
    zeros = jnp.zeros(20_000)
    state = tx.init(zeros)
    update = jax.jit(tx.update)
    for t in range(1, 51):
        u, state = update(zeros, state)
        if t in (1, 50):
            assert abs(float(jnp.std(u)) / (lr * math.sqrt(eta / t**gamma)) - 1) < 0.03


def test_noisy_sgd_key_forms_give_optax_noise():
    int_key, typed, raw = 7, jax.random.key(7), jax.random.PRNGKey(7)
    outs = []
    for key in (int_key, typed, raw):
        tx = sign_and_steps.noisy_sgd(0.1, key=key)
        outs.append(np.asarray(tx.update(G1, tx.init(THETA))[0]))
    ref = optax.noisy_sgd(0.1, key=7)
    with jax.numpy_dtype_promotion(STANDARD):
        outs.append(np.asarray(ref.update(G1, ref.init(THETA))[0]))
    for o in outs[1:]:
        np.testing.assert_array_equal(outs[0], o)
    other = sign_and_steps.noisy_sgd(0.1, key=8)
    assert not np.allclose(outs[0], np.asarray(other.update(G1, other.init(THETA))[0]))


# ----------------------------------------------------------------------------- Rprop


def test_rprop_moves_by_the_step_it_computes_where_optax_lags_one_step():
    """Gradients 1, 1, 1, -1, 1 from Delta_0 = 0.1: the paper's (and torch's) steps are 0.1, 0.12, 0.144,
    then 0 (the sign flipped: Delta shrinks to 0.072), then 0.072. optax.rprop (0.2.8) returns 0, 0.1,
    0.12, 0, 0: each update one step late."""
    grads = [1.0, 1.0, 1.0, -1.0, 1.0]
    lab = _run_rprop(sign_and_steps.rprop(0.1), grads)
    with jax.numpy_dtype_promotion(STANDARD):
        ref = _run_rprop(optax.rprop(0.1), grads)
        fixed = _run_rprop(sign_and_steps.optax_rprop(0.1), grads)
    np.testing.assert_allclose(lab, [-0.1, -0.12, -0.144, 0.0, -0.072], rtol=1e-6)
    np.testing.assert_allclose(ref, [0.0, -0.1, -0.12, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(lab, fixed)  # the catalogue's reference
    # Clipping to [min_step_size, max_step_size]: 0.1 * 1.5 -> 0.12, then held; 0.12 * 0.3 -> 0.05.
    clipped = _run_rprop(sign_and_steps.rprop(0.1, 0.3, 1.5, 0.05, 0.12), grads)
    np.testing.assert_allclose(clipped, [-0.1, -0.12, -0.12, 0.0, -0.05], rtol=1e-6)


def test_rprop_difference_from_optax_is_a_one_step_delay():
    """On a random stream, optax's update at step t + 1 is the lab's at step t, except where the sign
    flips at t + 1 (then optax's is 0), and its first update is 0."""
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((60, 16)).astype(np.float32) + 0.3
    lab = _run_rprop(sign_and_steps.rprop(0.01), grads)
    with jax.numpy_dtype_promotion(STANDARD):
        ref = _run_rprop(optax.rprop(0.01), grads)
    flip = grads[1:] * np.sign(lab[:-1]) > 0  # lab's step is -d: a flip is g_{t+1} d_t < 0
    np.testing.assert_array_equal(ref[0], 0.0)
    np.testing.assert_array_equal(ref[1:], np.where(flip, 0.0, lab[:-1]))
    assert np.max(np.abs(ref - lab)) >= np.max(np.abs(lab)) * 0.5  # not a rounding difference


def _run_rprop(tx, grads):
    grads = jnp.asarray(np.asarray(grads, np.float32))
    params = jnp.zeros(grads.shape[1:])
    state, out = tx.init(params), []
    for g in grads:
        u, state = tx.update(g, state, params)
        out.append(np.asarray(u))
    return np.stack(out)


# ----------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: sign_and_steps.rprop(lambda c: 0.1), TypeError, "rprop.s learning_rate is the initial step"),
    (lambda: sign_and_steps.rprop(0.1, eta_plus=-1.0), ValueError, "eta_plus must be finite and in"),
    (lambda: sign_and_steps.noisy_sgd(0.1), ValueError, "noisy_sgd needs key"),
    (lambda: sign_and_steps.noisy_sgd(0.1, key="0"), TypeError, "key must be an int seed"),
    (lambda: sign_and_steps.noisy_sgd(0.1, eta=-1.0, key=0), ValueError, "eta must be finite"),
    (lambda: sign_and_steps.signum(0.1, beta=1.5), ValueError, "beta must be finite and in"),
    (lambda: sign_and_steps.lion(0.1, weight_decay=-1.0), ValueError, "weight_decay must be"),
    (lambda: steps.polyak_sgd(variant="sps-"), ValueError, "variant must be 'sps' or 'sps\\+'"),
    (lambda: steps.polyak_sgd(scaling=-1.0), ValueError, "scaling must be finite"),
    (lambda: steps.optimistic_gradient_descent(0.1, alpha=-1.0), ValueError, "alpha must be"),
    (lambda: steps.optimistic_adam_v2(0.1, nesterov=1), TypeError, "nesterov must be a Python bool"),
    (lambda: steps.adadelta(0.1, rho=2.0), ValueError, "rho must be finite and in"),
    (lambda: steps.fromage(0.1, min_norm=-1.0), ValueError, "min_norm must be"),
])
def test_bad_arguments_name_the_argument(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_traced_hyperparameters_match_python_floats():
    """Each optimizer with its learning rate (and a second hyperparameter) traced under vmap, in one
    program, equals the same optimizer built from Python floats."""
    settings = {
        "sign_sgd": ({"learning_rate": 0.1}, ()), "signum": ({"learning_rate": 0.1, "beta": 0.5}, ("beta",)),
        "lion": ({"learning_rate": 0.1, "weight_decay": 0.1}, ("weight_decay",)),
        "noisy_sgd": ({"learning_rate": 0.1, "eta": 0.1, "key": 0}, ("eta",)),
        "rprop": ({"learning_rate": 0.1, "eta_plus": 1.5}, ("eta_plus",)),
        "polyak_sgd": ({"max_learning_rate": 0.1, "scaling": 0.5}, ("scaling",)),
        "fromage": ({"learning_rate": 0.1}, ()), "adadelta": ({"learning_rate": 0.1, "rho": 0.8}, ("rho",)),
        "optimistic_gradient_descent": ({"learning_rate": 0.1, "beta": 0.5}, ("beta",)),
        "optimistic_adam_v2": ({"learning_rate": 0.1, "b1": 0.5}, ("b1",)),
    }
    lead = {n: "max_learning_rate" if n == "polyak_sgd" else "learning_rate" for n in settings}

    def run(name, kw):
        tx = FACTORIES[name](**kw)
        extra = {"value": jnp.float32(1.5)} if catalogue.get(name).needs_value else {}
        state, out = tx.init(THETA), []
        for g in (G1, G2, G1):
            u, state = tx.update(g, state, THETA, **extra)
            out.append(u)
        return jnp.stack(out)

    def traced(scales):
        return [run(n, {**kw, **{k: kw[k] * scales for k in (lead[n], *more)}})
                for n, (kw, more) in settings.items()]

    scales = jnp.array([1.0, 0.5], jnp.float32)
    swept = jax.jit(jax.vmap(traced))(scales)
    for i, scale in enumerate((1.0, 0.5)):
        for j, (n, (kw, more)) in enumerate(settings.items()):
            plain = run(n, {**kw, **{k: kw[k] * scale for k in (lead[n], *more)}})
            np.testing.assert_allclose(np.asarray(swept[j][i]), np.asarray(plain), rtol=2e-6, atol=1e-9,
                                       err_msg=n)
