"""Adafactor, SM3, Muon and Schedule-Free AdamW: optax's own convergence tests (alias_test.py for
Adafactor and SM3, contrib's _common_test.py for Muon and Schedule-Free AdamW), closed forms from
the papers, what optax does that the verifier's default tree does not reach (factored second moments,
momentum kept in float32, wide and tall matrices, the evaluation parameters), compilation and bad
input. Step-by-step agreement with optax on the catalogue's settings, in three dtypes, is checked for
the whole catalogue by tests/test_optim.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from convergence import descend

from lab import verify
from lab.optim import catalogue
from lab.optim.covers import optax_sm3, sm3
from lab.optim.orthogonal import muon, orthogonalize_via_newton_schulz
from lab.optim.schedule_free import schedule_free_adamw, schedule_free_eval_params
from lab.optim.structured import adafactor
from lab.verify import program as verify_program

FAMILY = ("adafactor", "sm3", "muon", "schedule_free_adamw")
FACTORIES = {"adafactor": adafactor, "sm3": sm3, "muon": muon, "schedule_free_adamw": schedule_free_adamw}
STANDARD = "standard"  # optax itself is not clean under strict dtype promotion


def _abs_sq(x):
    return (jnp.conj(x) * x).real


def _is_complex(dtype):
    return jnp.issubdtype(dtype, jnp.complexfloating)


# optax's targets: (initial params, minimum, objective); complex targets move the minimum (alias_test).
def _parabola(dtype):
    final = jnp.array([1.0, -1.0, 1.0], dtype) * (1 + 1j if _is_complex(dtype) else 1)
    return jnp.array([-1.0, 10.0, 1.0], dtype), final, lambda p: jnp.sum(_abs_sq(p - final))


def _rosenbrock(dtype):
    a = 1.0 * (1 + 1j if _is_complex(dtype) else 1)
    objective = lambda p: _abs_sq(a - p[0]) + 100.0 * _abs_sq(p[1] - p[0] ** 2)  # noqa: E731
    return jnp.zeros(2, dtype), jnp.array([a, a ** 2], dtype), objective


def _matrix_parabola(dtype):
    final = jnp.array([[3.0, -2.0], [1.0, 4.0]], dtype)
    return jnp.zeros((2, 2), dtype), final, lambda p: jnp.sum(_abs_sq(p - final))


def _mixed(dtype):
    final = (jnp.array([1.0, -1.0, 2.0], dtype), jnp.array([[1.0, 0.0], [-1.0, 1.0]], dtype))
    objective = lambda p: jnp.sum(_abs_sq(p[0] - final[0])) + jnp.sum(_abs_sq(p[1] - final[1]))  # noqa: E731
    return (jnp.zeros(3, dtype), jnp.zeros((2, 2), dtype)), final, objective


TARGETS = {"parabola": _parabola, "rosenbrock": _rosenbrock, "matrix_parabola": _matrix_parabola,
           "mixed": _mixed}

def _side_by_side(lab_opt, ref_opt, params, grads):
    """Both optimizers' updates on the same gradient stream (leading axis) and the reference's params."""
    def step(carry, g):
        p, lab_s, ref_s = carry
        lab_u, lab_s = lab_opt.update(g, lab_s, p)
        with jax.numpy_dtype_promotion(STANDARD):
            ref_u, ref_s = ref_opt.update(g, ref_s, p)
            p = optax.apply_updates(p, ref_u)
        return (p, lab_s, ref_s), (lab_u, ref_u)

    with jax.numpy_dtype_promotion(STANDARD):
        carry = (params, lab_opt.init(params), ref_opt.init(params))
    # Compiled once and run once: XLA's backend optimizations cost more than they save (as in verify).
    run = jax.jit(lambda c, g: jax.lax.scan(step, c, g)).lower(carry, grads)
    return run.compile(compiler_options={"xla_backend_optimization_level": 0})(carry, grads)


def _standard(tx):
    """``tx`` run under standard dtype promotion (optax as a candidate of the verifier)."""
    def init(params):
        with jax.numpy_dtype_promotion(STANDARD):
            return tx.init(params)

    def update(updates, state, params=None):
        with jax.numpy_dtype_promotion(STANDARD):
            return tx.update(updates, state, params)

    return optax.GradientTransformation(init, update)


def _each(opts):
    """Several optimizers as one, each on its own element of a list of parameter trees."""
    def update(grads, states, params):
        outs = [o.update(g, s, p) for o, g, s, p in zip(opts, grads, states, params, strict=True)]
        return [u for u, _ in outs], [s for _, s in outs]

    return optax.GradientTransformation(lambda ps: [o.init(p) for o, p in zip(opts, ps, strict=True)], update)


# optax's rows for the family: alias_test.py (10,000 steps, float32 and complex64 where optax runs
# it: SM3 is on its skip list) and contrib/_common_test.py (30,000 steps, float32, four targets).
ALIAS_CASES = [("adafactor", {"learning_rate": 5e-3}, t, d) for t in ("parabola", "rosenbrock")
               for d in ("float32", "complex64")] + [
              ("sm3", {"learning_rate": 1.0}, t, "float32") for t in ("parabola", "rosenbrock")]
CONTRIB_CASES = [(n, kw, t, "float32") for n, kw in
                 (("muon", {"learning_rate": 1e-2}),
                  ("schedule_free_adamw", {"learning_rate": 1e-2, "warmup_steps": 5000}))
                 for t in TARGETS]


@functools.cache
def _converged(contrib: bool):
    """Every case's (evaluation) parameters after optax's number of steps, in one compiled program."""
    cases, steps = (CONTRIB_CASES, 30_000) if contrib else (ALIAS_CASES, 10_000)
    setups = [(TARGETS[t](jnp.dtype(d)), FACTORIES[n](**kw)) for n, kw, t, d in cases]

    finals = [catalogue.get(n).eval_params(s, p) if catalogue.get(n).eval_params else p
              for (n, _, _, _), (p, s) in zip(cases, descend(setups, steps), strict=True)]
    return [(jax.tree.map(np.asarray, p), jax.tree.map(np.asarray, minimum))
            for p, ((_, minimum, _), _) in zip(finals, setups, strict=True)]


@pytest.mark.parametrize("contrib", [False, True], ids=["alias_test", "contrib_common_test"])
def test_converges_like_optax_tests(contrib):
    """optax's test_optimization / test_optimizers: within rtol = atol = 3e-2 of the minimum (the
    schedule-free optimizer at its evaluation parameters, as optax's test does)."""
    cases = CONTRIB_CASES if contrib else ALIAS_CASES
    for case, (final, minimum) in zip(cases, _converged(contrib), strict=True):
        for f, m in zip(jax.tree.leaves(final), jax.tree.leaves(minimum), strict=True):
            np.testing.assert_allclose(f, m, rtol=3e-2, atol=3e-2, err_msg=str(case))


def test_second_update_does_not_recompile():
    """One jitted update of all four, on a matrix, a vector and a scalar, is compiled once."""
    params = {"w": jnp.ones((3, 2)), "b": jnp.ones((2,)), "s": jnp.asarray(0.5, jnp.float32)}
    opts = [adafactor(1e-2, momentum=0.9, weight_decay_rate=1e-3), sm3(1e-2), muon(1e-2),
            schedule_free_adamw(1e-2, warmup_steps=10)]

    @jax.jit
    def update(grads, states, params):
        outs = [opt.update(grads, s, params) for opt, s in zip(opts, states, strict=True)]
        return [u for u, _ in outs], [s for _, s in outs]

    states = [opt.init(params) for opt in opts]
    updates, states = update(params, states, params)
    updates, states = update(updates[0], states, params)
    assert update._cache_size() == 1


@pytest.mark.parametrize("name", ["sm3", "muon", "schedule_free_adamw"])
def test_complex_leaves_are_refused_where_optax_has_no_complex_support(name):
    params = {"w": jnp.ones((2, 2), jnp.complex64)}
    with pytest.raises(TypeError, match=rf"lab.optim.{name} supports real floating-point leaves only.*'w'"):
        FACTORIES[name](0.1).init(params)


def test_adafactor_on_complex_parameters_matches_optax():
    """optax runs Adafactor on complex64 (second moments of |g|²; the verifier checks real dtypes
    only): 100 steps on a factored (128, 130) leaf and an unfactored one. Without momentum: optax
    keeps it in a float32 buffer (dtype_momentum) and so drops its imaginary part."""
    rng = np.random.default_rng(0)
    draw = lambda *s: (rng.standard_normal(s) + 1j * rng.standard_normal(s)).astype(np.complex64)  # noqa: E731
    params = {"big": draw(128, 130), "v": draw(5)}
    grads = {"big": draw(100, 128, 130), "v": draw(100, 5)}
    kw = {"learning_rate": 1e-2, "weight_decay_rate": 1e-3}
    _, (lab_u, ref_u) = _side_by_side(adafactor(**kw), optax.adafactor(**kw), params, grads)
    for k in params:
        assert lab_u[k].dtype == np.complex64
        assert np.max(np.abs(lab_u[k] - ref_u[k])) <= 2.4e-5 * np.max(np.abs(ref_u[k])), k


# ----------------------------------------------------------------------------- Adafactor


# Leaves the verifier's default tree lacks: a 3-D leaf factored over its last two axes, and one
# with a single dimension >= 128 (not factored).
BIG_TREE = {"cube": (2, 128, 129), "wide": (5, 200), "w": (7, 5), "b": (33,)}
BIG_SCALES = {"cube": 0.1, "wide": 1e-3, "w": 1.0, "b": 1e-6}


def test_adafactor_factors_the_two_largest_axes_of_large_leaves():
    """State shapes: a leaf is factored over its largest axis (rows R) and its second largest
    (columns C) when both are >= min_dim_size_to_factor; otherwise it keeps the full V."""
    params = {k: jnp.zeros(s) for k, s in {**BIG_TREE, "big": (130, 128)}.items()}
    state = adafactor(1e-2).init(params)[0]
    assert {k: v.shape for k, v in state.v_row.items()} == {
        "big": (128,), "cube": (2, 128), "wide": (1,), "w": (1,), "b": (1,)}
    assert {k: v.shape for k, v in state.v_col.items()} == {
        "big": (130,), "cube": (2, 129), "wide": (1,), "w": (1,), "b": (1,)}
    assert state.v["wide"].shape == (5, 200) and state.v["big"].shape == (1,)


def test_adafactor_first_step_is_the_papers_rank_one_estimate():
    """Step 1 (beta2_1 = 0) from Shazeer and Stern's Algorithm 4 with clipping and the relative
    step, in NumPy: V = R C / mean(R) with R, C the row and column means of g² + eps1."""
    rng = np.random.default_rng(1)
    theta, g = rng.standard_normal((2, 130, 128)) * np.array([[[0.3]], [[2.0]]])
    with jax.enable_x64(True):
        u, _ = adafactor(learning_rate=0.05, clipping_threshold=1.0).update(
            jnp.asarray(g), adafactor(0.05).init(jnp.asarray(theta)), jnp.asarray(theta))
    g2 = g ** 2 + 1e-30
    row, col = g2.mean(axis=0), g2.mean(axis=1)  # over the largest axis (130), then over the 128 one
    v_hat = np.outer(col, row) / col.mean()
    step = g / np.sqrt(v_hat)
    step /= max(1.0, np.sqrt(np.mean(step ** 2)) / 1.0)
    expected = -0.05 * max(np.sqrt(np.mean(theta ** 2)), 1e-3) * step
    np.testing.assert_allclose(np.asarray(u), expected, rtol=1e-12)


def test_adafactor_with_momentum_matches_optax_on_large_leaves():
    """The factored path (a 3-D leaf; one with only one dimension >= 128 is not) with momentum,
    kept in float32 as optax's dtype_momentum default also for float64 parameters: 50 steps in
    float64 (float32 is the catalogue's dtype too; bfloat16: next test)."""
    kw = {"learning_rate": 1e-2, "momentum": 0.9, "weight_decay_rate": 1e-3, "decay_rate": 0.7}
    report = verify.compare(adafactor, optax.adafactor, kw, steps=50, seeds=(0,), dtypes=("float64",),
                            tree=BIG_TREE, scales=BIG_SCALES, schedule=False)
    assert report.passed and sum(c.ran for c in report.cases) == 1, report.summary()


def test_adafactor_momentum_in_bfloat16_differs_only_by_the_update_dtype():
    """With momentum, optax's float32 buffer turns the updates of bfloat16 parameters into float32
    (so the verifier, which requires equal dtypes, cannot compare them); lab.optim keeps the
    parameters' dtype, rounding the momentum to bfloat16 before the weight decay is added. Over 20
    steps the two differ by at most those two bfloat16 roundings, 2 * 2**-8 of the leaf's largest
    update (measured: 1.3 * 2**-8)."""
    rng = np.random.default_rng(2)
    params = {"big": jnp.asarray(rng.standard_normal((128, 130)), jnp.bfloat16),
              "b": jnp.asarray(rng.standard_normal(7), jnp.bfloat16)}
    grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal((20, *p.shape)), jnp.bfloat16), params)
    kw = {"learning_rate": 1e-2, "momentum": 0.9, "weight_decay_rate": 1e-3}
    _, (lab_u, ref_u) = _side_by_side(adafactor(**kw), optax.adafactor(**kw), params, grads)
    for k in params:
        assert lab_u[k].dtype == jnp.bfloat16 and ref_u[k].dtype == jnp.float32
        ref = np.asarray(ref_u[k])
        diff = np.abs(np.asarray(lab_u[k], np.float32) - ref)
        assert np.all(np.max(diff, axis=tuple(range(1, ref.ndim))) <= 2 * 2 ** -8 * np.max(
            np.abs(ref), axis=tuple(range(1, ref.ndim)))), k


# ----------------------------------------------------------------------------- SM3


def test_sm3_two_steps_by_hand():
    """SM3-II on a 2x3 matrix: step 1's accumulators are g1²; step 2 covers each entry by the
    smaller of its row's and its column's maximum of g1², plus g2²."""
    g1 = np.array([[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]])
    g2 = np.array([[0.5, 1.0, -1.0], [2.0, 0.0, 1.5]])
    lr, b1, eps = 0.1, 0.5, 1e-8
    opt = sm3(lr, momentum=b1)
    with jax.enable_x64(True):
        p = jnp.zeros((2, 3))
        state = opt.init(p)
        u1, state = opt.update(jnp.asarray(g1), state, p)
        u2, state = opt.update(jnp.asarray(g2), state, p)
    nu1 = g1 ** 2
    m1 = (1 - b1) * np.where(nu1 > 0, g1 / np.sqrt(nu1 + eps), 0.0)
    nu2 = g2 ** 2 + np.minimum(nu1.max(axis=1, keepdims=True), nu1.max(axis=0, keepdims=True))
    m2 = (1 - b1) * np.where(nu2 > 0, g2 / np.sqrt(nu2 + eps), 0.0) + b1 * m1
    np.testing.assert_allclose(np.asarray(u1), -lr * m1, rtol=1e-14)
    np.testing.assert_allclose(np.asarray(u2), -lr * m2, rtol=1e-14)


def test_sm3_scalar_leaf_is_a_vector_of_one_where_optax_fails():
    """optax.sm3 raises IndexError on a scalar leaf; lab.optim.sm3 treats it as the length-1 vector
    it is (the catalogue's reference, optax_sm3, views scalars that way for the verifier)."""
    with pytest.raises(IndexError):
        tx = optax.sm3(0.1)
        tx.update(jnp.asarray(1.0), tx.init(jnp.asarray(1.0)))
    report = verify.compare(sm3, optax_sm3, {"learning_rate": 0.3, "momentum": 0.5}, steps=50, seeds=(0,),
                            dtypes=("float32",), tree={"s": (), "v": (1,)}, scales={"s": 2.0, "v": 2.0},
                            schedule=False)
    assert report.passed, report.summary()
    opt, g = sm3(0.3), [jnp.asarray(x) for x in (1.0, -0.5, 2.0)]
    s_scalar, s_vector = opt.init(g[0]), opt.init(g[0][None])
    for x in g:
        u_scalar, s_scalar = opt.update(x, s_scalar)
        u_vector, s_vector = opt.update(x[None], s_vector)
        assert u_scalar.shape == () and float(u_scalar) == float(u_vector[0])


# ----------------------------------------------------------------------------- Muon


def test_newton_schulz_gives_singular_values_near_one():
    """Jordan's quintic does not converge to U V^T but leaves every singular value within roughly
    [0.7, 1.2] after five steps, with the singular vectors of X (checked against NumPy's SVD)."""
    x = np.random.default_rng(4).standard_normal((8, 20))
    with jax.enable_x64(True):
        o = np.asarray(orthogonalize_via_newton_schulz(jnp.asarray(x)))
    u, _, vt = np.linalg.svd(x, full_matrices=False)
    s = np.diag(u.T @ o @ vt.T)
    assert np.all((s > 0.6) & (s < 1.25)), s
    np.testing.assert_allclose(u @ np.diag(s) @ vt, o, atol=1e-10)  # the same singular vectors


def test_muon_on_wide_tall_and_other_leaves_matches_optax():
    """Wide, tall and one-row matrices go to Newton–Schulz (the catalogue's settings cover the
    Frobenius preconditioning; here the other three, with Jordan's and Dion's coefficients); vectors,
    scalars and 3-D leaves to (N)AdamW. Three settings side by side for 100 steps in float32: each
    leaf within float32's verification tolerance of its largest update."""
    settings = [{"learning_rate": 1e-2, "preconditioning": "aol", "adaptive": True},
                {"learning_rate": 1e-2, "preconditioning": "schatten", "ns_steps": 3, "nesterov": False},
                {"learning_rate": 1e-2, "preconditioning": "spectral", "ns_coeffs": "dion", "ns_steps": 6,
                 "weight_decay": 0.1, "adam_weight_decay": 0.1, "consistent_rms": 0.2}]
    rng = np.random.default_rng(7)
    shapes = {"wide": (5, 7), "tall": (9, 4), "row": (1, 6), "v": (4,), "s": (),
              "cube": (2, 3, 2)}
    params = {k: jnp.asarray(rng.standard_normal(s), jnp.float32) for k, s in shapes.items()}
    grads = {k: jnp.asarray(rng.standard_normal((100, *s)) + 0.5, jnp.float32) for k, s in shapes.items()}
    lab_opt = _each([muon(**kw) for kw in settings])
    ref_opt = _each([optax.contrib.muon(**kw) for kw in settings])
    _, (lab_u, ref_u) = _side_by_side(lab_opt, ref_opt, [params] * len(settings), [grads] * len(settings))
    for kw, lab_i, ref_i in zip(settings, lab_u, ref_u, strict=True):
        for k in shapes:
            lab_k, ref_k = np.asarray(lab_i[k]), np.asarray(ref_i[k])  # (steps, *shape)
            assert np.all(np.isfinite(ref_k)), (k, kw)
            assert np.max(np.abs(lab_k - ref_k)) <= 2.4e-5 * np.max(np.abs(ref_k)), (k, kw)


# ----------------------------------------------------------------------------- Schedule-Free AdamW


def test_schedule_free_evaluation_parameters_are_the_average_of_z():
    """With weight_lr_power = 0 every weight is 1, so the evaluation parameters x_T are the plain
    average of the base iterates z_1..z_T (the paper's uniform averaging), read from the state."""
    rng = np.random.default_rng(5)
    opt = schedule_free_adamw(0.1, b1=0.8, weight_lr_power=0.0)
    with jax.enable_x64(True):
        params = jnp.asarray(rng.standard_normal(4))
        state, zs = opt.init(params), []
        for _ in range(30):
            u, state = opt.update(jnp.asarray(rng.standard_normal(4)), state, params)
            params = optax.apply_updates(params, u)
            zs.append(np.asarray(state[0].z))
        x = np.asarray(schedule_free_eval_params(state, params))
    np.testing.assert_allclose(x, np.mean(zs, axis=0), rtol=1e-12)


def test_schedule_free_float32_updates_differ_from_optax_as_optax_differs_from_itself(monkeypatch):
    """A schedule-free update is a difference of parameters, y_{t+1} - y_t, so its rounding error is
    an ulp of the parameters, not of the update: 1.2e-7 * |y| against updates of about the learning
    rate. When XLA optimizes the verifier's program (above 10M element-updates, as with the default
    1000 steps and two seeds) it rounds the two copies' fused arithmetic differently, and on the
    default tree's (129, 128) leaf optax's float32 update differs from optax's own by 3.1e-4 of the
    update (1.3e-4 with the second catalogue setting), over the 2.4e-5 tolerance; lab.optim's
    differs from optax's by exactly as much, step by step (checked here on 5 steps of that program;
    bfloat16 and float64 pass)."""
    monkeypatch.setattr(verify_program, "OPTIMIZE_ABOVE", 0)
    ref, kw = optax.contrib.schedule_free_adamw, {"learning_rate": 2.5e-3}
    run = functools.partial(verify.compare, steps=5, seeds=(0,), dtypes=("float32",), schedule=False)
    ours, itself = run(schedule_free_adamw, ref, kw).cases[0], run(_standard(ref(**kw)), ref, kw).cases[0]
    np.testing.assert_array_equal(ours.step_errors, itself.step_errors)
    assert ours.max_rel_error < 1e-3  # a few ulps of O(1) parameters, against steps of about 2e-3


def test_schedule_free_eval_params_match_optax():
    """The catalogue's eval_params(state, params) against optax.contrib.schedule_free_eval_params
    after 200 steps of both on the same gradients and params, in float32 and
    bfloat16 (where both use beta_1 as stored, rounded to bfloat16)."""
    rng = np.random.default_rng(6)
    kw = {"learning_rate": 1e-2, "warmup_steps": 20, "b1": 0.9, "weight_decay": 1e-2}
    for dtype in (jnp.float32, jnp.bfloat16):
        params = {"w": jnp.asarray(rng.standard_normal((3, 4)), dtype),
                  "b": jnp.asarray(rng.standard_normal(3), dtype)}
        grads = jax.tree.map(lambda p: jnp.asarray(rng.standard_normal((200, *p.shape)), p.dtype), params)
        lab_opt, ref_opt = schedule_free_adamw(**kw), optax.contrib.schedule_free_adamw(**kw)
        (p, lab_s, ref_s), _ = _side_by_side(lab_opt, ref_opt, params, grads)
        ours = catalogue.get("schedule_free_adamw").eval_params(lab_s, p)
        with jax.numpy_dtype_promotion(STANDARD):
            theirs = optax.contrib.schedule_free_eval_params(ref_s, p)
        for k in params:
            assert ours[k].dtype == dtype
            np.testing.assert_array_equal(np.asarray(ours[k], np.float32), np.asarray(theirs[k], np.float32))


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("build, error, match", [
    (lambda: adafactor(clipping_threshold=0.5), ValueError, r"clipping_threshold must be .* in \[1, inf\)"),
    (lambda: adafactor(min_dim_size_to_factor=128.0), TypeError, "min_dim_size_to_factor must be a .* int"),
    (lambda: adafactor(momentum=1.5), ValueError, r"momentum must be finite and in \[0, 1\]"),
    (lambda: adafactor(weight_decay_mask={"w": True}), ValueError, "weight_decay_mask must be None"),
    (lambda: sm3(optax.constant_schedule(0.1)), TypeError, "learning_rate must be a real number"),
    (lambda: sm3(0.1, momentum=-0.1), ValueError, r"momentum must be finite and in \[0, 1\]"),
    (lambda: muon(0.1, ns_coeffs="fast"), ValueError, "unknown ns_coeffs preset 'fast'; valid: standard"),
    (lambda: muon(0.1, ns_coeffs=(1.0, 2.0)), ValueError, r"ns_coeffs must be finite with shape \(3,\)"),
    (lambda: muon(0.1, ns_coeffs="dion", ns_steps=4), ValueError, "has 5 rows, more than ns_steps=4"),
    (lambda: muon(0.1, preconditioning="polar"), ValueError, "preconditioning must be one of frobenius"),
    (lambda: muon(0.1, ns_steps=2.5), TypeError, "ns_steps must be a Python int"),
    (lambda: muon(0.1, mu_dtype=jnp.bfloat16), ValueError, "supports only mu_dtype=None"),
    (lambda: schedule_free_adamw(b1=0.0), ValueError, "b1 must be > 0"),
    (lambda: schedule_free_adamw(warmup_steps=0), ValueError, "warmup_steps must be None or a Python int"),
    (lambda: schedule_free_adamw(optax.constant_schedule(0.1)), TypeError, "learning_rate must be a real"),
])
def test_bad_hyperparameters_are_named(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_schedule_free_eval_params_needs_a_schedule_free_state():
    with pytest.raises(ValueError, match="needs the state of a schedule-free optimizer, got tuple"):
        schedule_free_eval_params(sm3(0.1).init(jnp.ones(2)), jnp.ones(2))
