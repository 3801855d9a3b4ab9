"""Adan, LAMB, LARS, NovoGrad, ADOPT, AdEMAMix and Prodigy: optax's own convergence tests (float32 and,
where optax runs them, complex64), first steps from the papers' formulas, optax's masks and schedules
of AdEMAMix's b3 and alpha against optax, compilation and bad input. Step-by-step agreement with
optax in three dtypes is checked for the whole catalogue by tests/test_optim.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from convergence import descend

from lab import verify
from lab.optim import adaptive, adaptive_contrib, catalogue

FAMILY = ("adan", "lamb", "lars", "novograd", "adopt", "ademamix", "prodigy")
FACTORIES = {name: getattr(adaptive, name, None) or getattr(adaptive_contrib, name) for name in FAMILY}
COMPLEX = ("lamb", "lars", "novograd")  # those optax's alias_test runs on complex64
STANDARD = "standard"  # optax itself is not clean under strict dtype promotion

# optax's hyperparameters for its convergence tests: alias_test.py _OPTIMIZERS_UNDER_TEST for the core
# four, contrib/_common_test.py _MAIN_OPTIMIZERS_UNDER_TEST for the contrib three.
OPTAX_KWARGS = {"adan": {"learning_rate": 1e-1}, "lamb": {"learning_rate": 1e-3},
                "lars": {"learning_rate": 1.0}, "novograd": {"learning_rate": 1e-3},
                "adopt": {"learning_rate": 1e-2}, "ademamix": {"learning_rate": 1e-3},
                "prodigy": {"learning_rate": 1e-1}}


def _abs_sq(x):
    return (jnp.conj(x) * x).real


def _complex(dtype) -> bool:
    return jnp.iscomplexobj(jnp.zeros((), dtype))


# optax's targets, (initial params, minimum, objective); complex targets move the minimum (alias_test).
def _parabola(dtype):
    final = jnp.array([1.0, -1.0, 1.0], dtype) * (1 + 1j if _complex(dtype) else 1)
    return jnp.array([-1.0, 10.0, 1.0], dtype), final, lambda p: jnp.sum(_abs_sq(p - final))


def _rosenbrock(dtype):
    a = 1.0 * (1 + 1j if _complex(dtype) else 1)
    objective = lambda p: _abs_sq(a - p[0]) + 100.0 * _abs_sq(p[1] - p[0] ** 2)  # noqa: E731
    return jnp.zeros(2, dtype), jnp.array([a, a ** 2], dtype), objective


def _matrix_parabola(dtype):  # contrib/_common_test.py
    final = jnp.array([[3.0, -2.0], [1.0, 4.0]], dtype)
    return jnp.zeros((2, 2), dtype), final, lambda p: jnp.sum(_abs_sq(p - final))


def _mixed_tensors(dtype):  # contrib/_common_test.py: a vector and a matrix
    final = (jnp.array([1.0, -1.0, 2.0], dtype), jnp.array([[1.0, 0.0], [-1.0, 1.0]], dtype))
    objective = lambda p: jnp.sum(_abs_sq(p[0] - final[0])) + jnp.sum(_abs_sq(p[1] - final[1]))  # noqa: E731
    return (jnp.zeros(3, dtype), jnp.zeros((2, 2), dtype)), final, objective


TARGETS = {"parabola": _parabola, "rosenbrock": _rosenbrock, "matrix_parabola": _matrix_parabola,
           "mixed_tensors": _mixed_tensors}
CORE_CASES = [(name, target, dtype) for name in ("adan", "lamb", "lars", "novograd")
              for target in ("parabola", "rosenbrock")
              for dtype in (("float32", "complex64") if name in COMPLEX else ("float32",))]
CONTRIB_CASES = [(name, target, "float32") for name in ("adopt", "ademamix", "prodigy") for target in TARGETS]


@functools.cache
def _converged(cases: tuple, steps: int):
    """Every case's parameters after ``steps`` steps, all in one compiled program."""
    setups = [(TARGETS[t](jnp.dtype(d)), FACTORIES[n](**OPTAX_KWARGS[n])) for n, t, d in cases]

    finals = [p for p, _ in descend(setups, steps)]
    return {case: (jax.tree.map(np.asarray, p), jax.tree.map(np.asarray, minimum))
            for case, p, ((_, minimum, _), _) in zip(cases, finals, setups, strict=True)}


@pytest.mark.parametrize("case", CORE_CASES + CONTRIB_CASES,
                         ids=["-".join(c) for c in CORE_CASES + CONTRIB_CASES])
def test_converges_like_optax_tests(case):
    """optax's convergence tests: within rtol = atol = 3e-2 of the minimum after 10,000 steps (alias_test)
    or 30,000 (contrib's _common_test; AdEMAMix at 1e-3 is still 4 away from the parabola's minimum
    after 10,000)."""
    cases, steps = (CORE_CASES, 10_000) if case in CORE_CASES else (CONTRIB_CASES, 30_000)
    final, minimum = _converged(tuple(cases), steps)[case]
    jax.tree.map(lambda f, m: np.testing.assert_allclose(f, m, rtol=3e-2, atol=3e-2), final, minimum)


def test_second_update_does_not_recompile_and_keeps_the_parameter_dtype():
    """One jitted update of all seven on float32 and on bfloat16 leaves (and of the complex-capable three
    on complex64 ones) is compiled once: no state changes its dtype, weak type or shape after the
    first step. Updates and state keep each parameter's dtype (step counts: int32)."""
    trees = [{"w": jnp.ones((3, 2), dt), "b": jnp.full((2,), 0.5, dt)} for dt in (jnp.float32, jnp.bfloat16)]
    trees.append({"w": jnp.ones((3, 2), jnp.complex64), "b": jnp.full((2,), 1 - 2j, jnp.complex64)})
    cases = [(n, FACTORIES[n](**OPTAX_KWARGS[n]), params) for params in trees[:2] for n in FAMILY]
    cases += [(n, FACTORIES[n](**OPTAX_KWARGS[n]), trees[2]) for n in COMPLEX]

    @jax.jit
    def update(states, scale):
        outs = [opt.update(jax.tree.map(lambda p: scale.astype(p.dtype) * p, params), s, params)  # noqa: B023
                for (_, opt, params), s in zip(cases, states, strict=True)]
        return [u for u, _ in outs], [s for _, s in outs]

    states = [opt.init(params) for _, opt, params in cases]
    _, states = update(states, jnp.float32(0.5))
    updates, states = update(states, jnp.float32(0.25))
    assert update._cache_size() == 1
    for (name, _, params), u, state in zip(cases, updates, states, strict=True):
        dtype = params["w"].dtype
        assert all(u[k].dtype == dtype and u[k].shape == p.shape for k, p in params.items()), name
        assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(u)), name
        for leaf in jax.tree.leaves(state):
            is_count = leaf.ndim == 0 and leaf.dtype.kind == "i"
            assert leaf.dtype == (jnp.int32 if is_count else dtype), (name, leaf.dtype)


@pytest.mark.parametrize("name", [n for n in FAMILY if n not in COMPLEX])
def test_complex_leaves_are_refused_where_optax_has_no_complex_support(name):
    opt = FACTORIES[name](**OPTAX_KWARGS[name])
    with pytest.raises(TypeError, match=rf"lab.optim.{name} supports real floating-point leaves only "
                                        r"\(as in optax\); leaf \['z'\] has dtype complex64"):
        opt.init({"w": jnp.ones(2), "z": jnp.ones(2, jnp.complex64)})


def test_catalogue_entries():
    for name in FAMILY:
        e = catalogue.get(name)
        assert e.factory is FACTORIES[name] and e.torch is None and not e.featured
        assert e.complex_params == (name in COMPLEX)
        contrib = name in ("adopt", "ademamix", "prodigy")
        assert e.reference is getattr(optax.contrib if contrib else optax, name)
        assert e.reference_name == ("optax.contrib." if contrib else "optax.") + name
        assert len(e.verify) == 2 and e.schedule  # every reference takes a learning-rate schedule


# ----------------------------------------------------------------------------- first steps (float64)

G1 = np.array([3.0, -0.5, 2e-3, 0.0])  # a gradient below eps, an exact zero
G2 = np.array([1.0, -2.0, 1e-3, 0.5])
P = np.array([1.0, -2.0, 0.5, 0.25])


def _steps(opt, grads, params):
    """The updates of len(grads) steps at fixed params (or one params per step); float64 arrays."""
    params = params if isinstance(params, list) else [params] * len(grads)
    state = opt.init(jax.tree.map(jnp.asarray, params[0]))
    out = []
    for g, p in zip(grads, params, strict=True):
        u, state = opt.update(jax.tree.map(jnp.asarray, g), state, jax.tree.map(jnp.asarray, p))
        out.append(jax.tree.map(np.asarray, u))
    return out, state


def test_adan_first_two_steps(x64):
    """Step 1: d = 0, m̂ = g, n̂ = g². Step 2: d = g2 - g1 enters m's partner v and the look-ahead in n."""
    lr, b1, b2, b3, eps, eps_root, wd = 0.1, 0.9, 0.8, 0.95, 1e-8, 1e-10, 0.1
    (u1, u2), _ = _steps(adaptive.adan(lr, b1, b2, b3, eps, eps_root, wd), [G1, G2], P)
    np.testing.assert_allclose(u1, -lr * (G1 / (np.sqrt(G1 ** 2 + eps_root) + eps) + wd * P), rtol=1e-12)
    d = G2 - G1
    m_hat = (b1 * (1 - b1) * G1 + (1 - b1) * G2) / (1 - b1 ** 2)
    v_hat = (1 - b2) * d / (1 - b2 ** 2)
    n_hat = (b3 * (1 - b3) * G1 ** 2 + (1 - b3) * (G2 + (1 - b2) * d) ** 2) / (1 - b3 ** 2)
    expected = -lr * ((m_hat + (1 - b2) * v_hat) / (np.sqrt(n_hat + eps_root) + eps) + wd * P)
    np.testing.assert_allclose(u2, expected, rtol=1e-12)


def test_lamb_first_step_is_scaled_to_the_leaf_norm(x64):
    """r = m̂/(sqrt(v̂)+eps) + wd θ = g/(|g|+eps) + wd θ; u = -lr ||θ||/||r|| r per leaf, and -lr r on a
    leaf of zeros (ratio 1 where a norm is 0)."""
    lr, eps, wd = 0.1, 1e-6, 0.1
    params, grads = {"a": P, "zero": np.zeros(2)}, {"a": G1, "zero": np.array([2.0, -1.0])}
    (u,), _ = _steps(adaptive.lamb(lr, eps=eps, weight_decay=wd), [grads], params)
    r = {k: grads[k] / (np.abs(grads[k]) + eps) + wd * params[k] for k in params}
    np.testing.assert_allclose(u["a"], -lr * np.linalg.norm(P) / np.linalg.norm(r["a"]) * r["a"], rtol=1e-12)
    np.testing.assert_allclose(u["zero"], -lr * r["zero"], rtol=1e-12)


def test_lars_first_two_steps(x64):
    """s_t = -lr c ||θ||/(||g + wd θ|| + eps) (g + wd θ); heavy ball m_2 = s_2 + μ s_1."""
    lr, wd, c, eps, mu = 0.5, 0.01, 0.01, 1e-8, 0.8
    (u1, u2), _ = _steps(adaptive.lars(lr, wd, trust_coefficient=c, eps=eps, momentum=mu), [G1, G2], P)
    s = [-lr * c * np.linalg.norm(P) / (np.linalg.norm(g + wd * P) + eps) * (g + wd * P) for g in (G1, G2)]
    np.testing.assert_allclose(u1, s[0], rtol=1e-12)
    np.testing.assert_allclose(u2, s[1] + mu * s[0], rtol=1e-12)


def test_novograd_first_two_steps(x64):
    """ν_1 = ||g_1||², ν_2 = b2 ν_1 + (1-b2) ||g_2||²; m_t = b1 m_{t-1} + g_t/(sqrt(ν_t)+eps) + wd θ."""
    lr, b1, b2, eps, wd = 0.1, 0.8, 0.5, 1e-6, 0.01
    (u1, u2), _ = _steps(adaptive.novograd(lr, b1, b2, eps, weight_decay=wd), [G1, G2], P)
    m1 = G1 / (np.linalg.norm(G1) + eps) + wd * P
    nu2 = b2 * np.sum(G1 ** 2) + (1 - b2) * np.sum(G2 ** 2)
    np.testing.assert_allclose(u1, -lr * m1, rtol=1e-12)
    np.testing.assert_allclose(u2, -lr * (b1 * m1 + G2 / (np.sqrt(nu2) + eps) + wd * P), rtol=1e-12)


@pytest.mark.parametrize("nesterov", [False, True])
def test_adopt_moves_nothing_first_then_normalizes_by_the_previous_moment(x64, nesterov):
    """Step 0 records v_0 = g_0² only; step 1: x = clip(g_1 / max(|g_0|, eps), ±1**0.25 = ±1)."""
    lr, b1, eps = 0.1, 0.8, 1e-6
    (u0, u1), _ = _steps(adaptive_contrib.adopt(lr, b1, eps=eps, nesterov=nesterov), [G1, G2], P)
    np.testing.assert_array_equal(u0, np.zeros(4))
    x = np.clip(G2 / np.maximum(np.abs(G1), eps), -1.0, 1.0)  # clipped in 3 of 4 coordinates
    m = (1 - b1) * x
    np.testing.assert_allclose(u1, -lr * (b1 * m + (1 - b1) * x if nesterov else m), rtol=1e-12)


def test_ademamix_first_step(x64):
    """m̂_1 = g, slow m'_1 = (1-b3) g (not bias-corrected), v̂_1 = g²."""
    lr, b3, alpha, eps, wd = 0.1, 0.999, 8.0, 1e-8, 0.1
    (u,), _ = _steps(adaptive_contrib.ademamix(lr, b3=b3, alpha=alpha, eps=eps, weight_decay=wd), [G1], P)
    expected = -lr * ((G1 + alpha * (1 - b3) * G1) / (np.abs(G1) + eps) + wd * P)
    np.testing.assert_allclose(u, expected, rtol=1e-12)


def test_prodigy_first_two_steps_and_the_distance_estimate(x64):
    """From the paper's update with d_0: step 1 cannot raise d (x_0 - x_1 is 0 when g_1 is seen);
    step 2 raises it to c r_2 / ||s_2||_1 > d_0."""
    lr, b1, b2, eps, d0, c, wd = 1.0, 0.9, 0.999, 1e-8, 1e-6, 10.0, 0.01
    b3 = np.sqrt(b2)
    opt = adaptive_contrib.prodigy(lr, (b1, b2), eps=eps, estim_lr0=d0, estim_lr_coef=c, weight_decay=wd)
    a1 = d0 * lr * np.sqrt(1 - b2) / (1 - b1)
    m1, v1 = (1 - b1) * d0 * G1, (1 - b2) * (d0 * G1) ** 2
    u1 = -a1 * (m1 / (np.sqrt(v1) + d0 * eps) + wd * P)
    P1 = P + u1
    (r1, r2), state = _steps(opt, [G1, G2], [P, P1])
    np.testing.assert_allclose(r1, u1, rtol=1e-12)
    d1 = d0
    a2 = d1 * lr * np.sqrt(1 - b2 ** 2) / (1 - b1 ** 2)
    r = (d1 / d0) * a2 * np.dot(G2, P - P1)
    s = b3 * (a1 / d0) * d0 * G1 + (a2 / d0) * d1 * G2
    d2 = max(d1, c * r / np.sum(np.abs(s)))
    assert d2 > d0
    np.testing.assert_allclose(float(state[0].estim_lr), d2, rtol=1e-12)
    m2, v2 = b1 * m1 + (1 - b1) * d1 * G2, b2 * v1 + (1 - b2) * (d1 * G2) ** 2
    np.testing.assert_allclose(r2, -a2 * (m2 / (np.sqrt(v2) + d2 * eps) + wd * P1), rtol=1e-12)


# ----------------------------------------------------------------------------- optax's masks and schedules

MASK_TREE = {"w": (3, 2), "b": (4,), "nested": {"x": (2,), "y": ()}}
PREFIX_MASK = {"w": True, "b": False, "nested": True}  # a prefix: True selects the whole subtree


def _matrices(params):
    return jax.tree.map(lambda p: p.ndim > 1, params)


@pytest.mark.parametrize("name, kwargs", [
    ("adan", {"learning_rate": 1e-2, "weight_decay": 0.5, "mask": PREFIX_MASK}),
    ("lamb", {"learning_rate": 1e-2, "weight_decay": 0.5, "mask": _matrices}),
    ("lars", {"learning_rate": 0.1, "weight_decay": 0.5, "weight_decay_mask": _matrices,
              "trust_ratio_mask": PREFIX_MASK}),
    ("ademamix", {"learning_rate": 1e-2, "weight_decay": 0.5, "mask": PREFIX_MASK}),
], ids=["adan", "lamb", "lars", "ademamix"])
def test_masks_select_leaves_as_in_optax(name, kwargs):
    """A mask as a prefix tree or as a function of the params, against optax (which is given the same);
    a mask ignored or inverted changes the masked leaves' updates by the weight decay or trust ratio."""
    e = catalogue.get(name)
    report = verify.compare(e.factory, e.reference, kwargs, steps=50, dtypes=("float32",), seeds=(0,),
                            tree=MASK_TREE, schedule=False)
    assert report.passed, report


def test_ademamix_b3_and_alpha_schedules_match_optax():
    """b3 and alpha may be functions of the step count (the paper warms both up), as in optax."""
    b3 = lambda c: 0.9 + 0.099 * jnp.minimum(c, 50).astype(jnp.float32) / 50  # noqa: E731
    alpha = lambda c: 8.0 * jnp.minimum(c, 50).astype(jnp.float32) / 50  # noqa: E731
    report = verify.compare(adaptive_contrib.ademamix, optax.contrib.ademamix,
                            {"learning_rate": 1e-2, "b3": b3, "alpha": alpha}, steps=100,
                            dtypes=("float32",), seeds=(0,), schedule=False)
    assert report.passed, report


def test_adopt_clip_value_fn_matches_optax():
    clip = lambda c: 0.1 + 0.05 * c.astype(jnp.float32)  # noqa: E731
    report = verify.compare(adaptive_contrib.adopt, optax.contrib.adopt,
                            {"learning_rate": 1e-2, "clip_value_fn": clip}, steps=100, dtypes=("float32",),
                            seeds=(0,), schedule=False)
    assert report.passed, report


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("make, error, message", [
    (lambda: adaptive_contrib.prodigy(betas=0.9), TypeError, r"betas must be a pair \(beta1, beta2\)"),
    (lambda: adaptive_contrib.prodigy(estim_lr0=0.0), ValueError, "estim_lr0 must be finite and in"),
    (lambda: adaptive_contrib.adopt(1e-3, clip_value_fn=0.5), TypeError, "clip_value_fn must be a function"),
    (lambda: adaptive_contrib.ademamix(1e-3, b3=1.5), ValueError, r"b3 must be finite and in \[0, 1\]"),
    (lambda: adaptive.lars(1.0, momentum=1.5), ValueError, r"momentum must be finite and in \[0, 1\]"),
    (lambda: adaptive.lamb(-1.0), ValueError, "learning_rate must be finite"),
    (lambda: adaptive.adan(1e-3, b3=-0.1), ValueError, r"b3 must be finite and in \[0, 1\]"),
])
def test_bad_hyperparameters_are_named(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_bad_mask_and_missing_params_are_named():
    params = {"w": jnp.ones(2), "b": jnp.ones(3)}
    with pytest.raises(ValueError, match="mask must be a tree of concrete bools with the params' structure"):
        adaptive.lamb(1e-3, weight_decay=0.1, mask={"nope": True}).init(params)
    with pytest.raises(ValueError, match="needs params"):
        opt = adaptive.novograd(1e-3)
        opt.update(params, opt.init(params))
