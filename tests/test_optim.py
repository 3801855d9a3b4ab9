"""lab.optim against optax (the independent reference), closed forms, and its own contracts.

One table, read from the optimizer catalogue (every entry's verify settings, with a constant learning
rate and, where the reference takes one, a schedule), drives equivalence: 1000 steps in every dtype
on a tree with a scalar, odd shapes and a leaf whose gradients are below every eps, all optimizers in
one compiled program per dtype. Convergence uses optax's own targets and hyperparameters.
"""

import json
import math
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab import optim
from lab.optim import catalogue

STANDARD = "standard"  # optax itself is not clean under strict dtype promotion
CLASSIC = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad")


def _decaying(lr):
    """``lr * 0.99**t`` in the default float dtype when called (float64 under x64), so that a
    reference which scales the schedule's value does not round it to float32."""
    return lambda count: lr * 0.99 ** count.astype(jnp.asarray(lr).dtype)


def _rows():
    """(id, entry, kwargs): every catalogue entry's settings, and its first with a schedule where the
    reference takes one (a schedule read at the wrong step shows in any setting)."""
    rows = []
    for e in catalogue.entries():
        for i, kw in enumerate(e.verify):
            rows.append((f"{e.name}-{i}", e, dict(kw)))
            lr = kw.get("learning_rate")
            if i == 0 and e.schedule and isinstance(lr, int | float) and not isinstance(lr, bool):
                rows.append((f"{e.name}-{i}-schedule", e, {**kw, "learning_rate": _decaying(lr)}))
    return rows


# Two leaves keep the program (one update per row and leaf) small enough to compile quickly: an odd
# matrix whose rows have their own gradient scales, and a scalar.
TREE = {"w": (7, 5), "scalar": ()}
# Row 3 of "w" gets gradients below every eps of the catalogue (1e-8 in Adam and RMSProp; Adagrad's
# 1e-7 inside the root), so eps, not the gradient, sets the step size there; other rows span 1e-3..30.
ROW_SCALES = (1.0, 1e-3, 30.0, 1e-9, 0.1, 1.0, 3.0)


def _rtol(dtype) -> float:
    """Two thirds of the dtype's significant bits, never fewer than 8 ulps."""
    eps = float(jnp.finfo(jnp.dtype(dtype)).eps)
    return max(eps ** (2 / 3), 8 * eps)


def _params(dtype):
    keys = jax.random.split(jax.random.key(0), len(TREE))
    return {k: jax.random.normal(key, s, jnp.float32).astype(dtype)
            for key, (k, s) in zip(keys, TREE.items(), strict=True)}


def _update(tx, entry, grads, state, params, value):
    if entry.needs_value:
        return tx.update(grads, state, params, value=value)
    return tx.update(grads, state, params)


@pytest.mark.parametrize("dtype", ["float32", "float64", "bfloat16"])
def test_matches_optax_for_1000_steps(dtype):
    """Every catalogue row, on the same gradient stream and params as optax, for 1000 steps."""
    steps, rows = 1000, _rows()
    ctx = jax.enable_x64(True) if dtype == "float64" else jax.enable_x64(False)
    with ctx:
        dt = jnp.dtype(dtype)
        params0 = _params(dt)
        labs = [e.factory(**kw) for _, e, kw in rows]
        with jax.numpy_dtype_promotion(STANDARD):
            refs = [e.reference(**kw) for _, e, kw in rows]

        def run(params0):
            def step(carry, t):
                params, lab_states, ref_states = carry
                key = jax.random.fold_in(jax.random.key(1), t)
                grads = {k: jax.random.normal(jax.random.fold_in(key, i), p.shape, jnp.float32) + 0.3
                         for i, (k, p) in enumerate(params.items())}
                scales = jnp.asarray(ROW_SCALES, jnp.float32)[:, None]
                grads = {"w": (grads["w"] * scales).astype(dt), "scalar": grads["scalar"].astype(dt)}
                value = (1.0 + jax.random.uniform(jax.random.fold_in(key, 99), (), jnp.float32)).astype(dt)
                lab_out, ref_out, new_lab, new_ref = [], [], [], []
                for (_, e, _), opt, ref, ls, rs in zip(rows, labs, refs, lab_states, ref_states, strict=True):
                    lu, ls = _update(opt, e, grads, ls, params, value)
                    with jax.numpy_dtype_promotion(STANDARD):
                        ru, rs = _update(ref, e, grads, rs, params, value)
                    lab_out.append(lu)
                    ref_out.append(ru)
                    new_lab.append(ls)
                    new_ref.append(rs)
                with jax.numpy_dtype_promotion(STANDARD):
                    params = optax.apply_updates(params, ref_out[0])
                return (params, new_lab, new_ref), (lab_out, ref_out)

            with jax.numpy_dtype_promotion(STANDARD):
                ref_states = [r.init(params0) for r in refs]
            lab_states = [o.init(params0) for o in labs]
            return jax.lax.scan(step, (params0, lab_states, ref_states), jnp.arange(steps))

        # Run once: in float32 and bfloat16, XLA's backend optimizations would cost more than they
        # save; in float64 they are kept (without them XLA's CPU rsqrt differs by 2e-7 between two
        # identical computations, far above float64's tolerance).
        options = {} if dtype == "float64" else {"xla_backend_optimization_level": 0}
        compiled = jax.jit(run).lower(params0).compile(compiler_options=options)
        (_, lab_states, _), (lab_out, ref_out) = compiled(params0)
    for i, (row_id, _, _) in enumerate(rows):
        for k in TREE:
            lu = np.asarray(lab_out[i][k].astype(jnp.float32), np.float64)
            ru = np.asarray(ref_out[i][k].astype(jnp.float32), np.float64)
            assert lab_out[i][k].dtype == dt and lab_out[i][k].shape == (steps, *TREE[k])
            # Each row of the matrix (the scalar is one row) against its own scale at that step: its
            # largest update, or its RMS update over the run if larger (a Nesterov look-ahead can
            # cancel to almost nothing).
            row = TREE[k][-1] if TREE[k] else 1
            lu, ru = lu.reshape(steps, -1, row), ru.reshape(steps, -1, row)
            scale = np.maximum(np.max(np.abs(ru), axis=2, keepdims=True),
                               np.sqrt(np.mean(ru**2, axis=(0, 2), keepdims=True)))
            err = np.max(np.abs(lu - ru) / np.maximum(scale, 1e-30))
            assert err <= _rtol(dtype), f"{row_id} leaf {k} {dtype}: relative error {err:.3g}"
        for leaf in jax.tree.leaves(lab_states[i]):
            if jnp.issubdtype(leaf.dtype, jnp.inexact):
                assert bool(jnp.all(jnp.isfinite(leaf.astype(jnp.float32)))), f"{row_id}: non-finite state"


def test_table_covers_the_whole_catalogue_and_can_fail():
    """Every entry has settings to verify, and a planted 1% error in one optimizer breaks its rows."""
    assert {e.name for _, e, _ in _rows()} == set(catalogue.names())
    e = catalogue.get("adam")
    wrong = optax.chain(optim.adam(1e-3), optax.scale(1.01))
    params = _params(jnp.float32)
    grads = jax.tree.map(lambda p: p + 0.3, params)
    lu, _ = wrong.update(grads, wrong.init(params), params)
    with jax.numpy_dtype_promotion(STANDARD):
        ref = e.reference(learning_rate=1e-3)
        ru, _ = ref.update(grads, ref.init(params), params)
    err = max(float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b))) for a, b in
              zip(jax.tree.leaves(lu), jax.tree.leaves(ru), strict=True))
    assert err > _rtol("float32")


def _run(opt, objective, params, steps):
    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(objective)(params), state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, opt.init(params)), None, length=steps)[0][0]

    return run(params)


def _parabola(p):
    return jnp.sum(jnp.square(p - jnp.array([1.0, -1.0, 1.0])))


def _rosenbrock(p):
    return jnp.square(1.0 - p[0]) + 100.0 * jnp.square(p[1] - p[0] ** 2)


# optax's alias_test hyperparameters; the heavy-ball "momentum" as optax's sgd row, its EMA form with
# the equivalent learning rate (lr / (1 - beta)).
CONVERGENCE = [
    ("sgd", {"learning_rate": 1e-3, "momentum": 0.9}),
    ("momentum", {"learning_rate": 1e-3, "beta": 0.9}),
    ("momentum", {"learning_rate": 1e-2, "beta": 0.9, "ema": True}),
    ("rmsprop", {"learning_rate": 5e-3}),
    ("rmsprop", {"learning_rate": 5e-3, "momentum": 0.9}),
    ("adam", {"learning_rate": 1e-1}),
    ("adamw", {"learning_rate": 1e-1}),
    ("adagrad", {"learning_rate": 1.0}),
]


@pytest.mark.parametrize(("name", "kwargs"), CONVERGENCE, ids=[f"{n}-{len(k)}" for n, k in CONVERGENCE])
@pytest.mark.parametrize("target", ["parabola", "rosenbrock"])
def test_converges_like_optax_tests(name, kwargs, target):
    """optax's own convergence test: 10000 steps, within 3e-2 of the minimum."""
    objective, start, minimum = {
        "parabola": (_parabola, jnp.array([-1.0, 10.0, 1.0]), np.array([1.0, -1.0, 1.0])),
        "rosenbrock": (_rosenbrock, jnp.array([0.0, 0.0]), np.array([1.0, 1.0])),
    }[target]
    final = _run(optim.OPTIMIZERS[name](**kwargs), objective, start, 10_000)
    np.testing.assert_allclose(np.asarray(final), minimum, rtol=3e-2, atol=3e-2)


def test_plain_sgd_is_the_closed_form():
    """On 0.5 * a * x^2, SGD gives x_t = (1 - lr a)^t x_0 exactly (up to float32 rounding)."""
    a, lr, x0 = 2.0, 0.1, 3.0
    final = _run(optim.sgd(lr), lambda x: 0.5 * a * x * x, jnp.float32(x0), 20)
    np.testing.assert_allclose(float(final), (1 - lr * a) ** 20 * x0, rtol=1e-5)


def test_ema_momentum_is_heavy_ball_with_scaled_learning_rate():
    beta, lr = 0.8, 0.05
    ema = _run(optim.momentum(lr, beta, ema=True), _rosenbrock, jnp.array([-1.0, 1.0]), 300)
    heavy = _run(optim.momentum(lr * (1 - beta), beta), _rosenbrock, jnp.array([-1.0, 1.0]), 300)
    np.testing.assert_allclose(np.asarray(ema), np.asarray(heavy), rtol=1e-4)


# ----------------------------------------------------------------------------- dtypes and trees


@pytest.mark.parametrize("name", CLASSIC)
@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float64"])
def test_shapes_dtypes_and_state_policy(name, dtype, x64):
    dt = jnp.dtype(dtype)
    params = {"s": jnp.asarray(1.5, dt), "v": jnp.ones((3,), dt), "m": jnp.ones((2, 3), dt)}
    opt = optim.OPTIMIZERS[name](0.1)
    state = opt.init(params)
    updates, state = jax.jit(opt.update)(jax.tree.map(lambda p: 0.5 * p, params), state, params)
    for k, p in params.items():
        assert updates[k].shape == p.shape and updates[k].dtype == dt
    for leaf in jax.tree.leaves(state):
        if leaf.ndim == 0 and jnp.issubdtype(leaf.dtype, jnp.integer):
            assert leaf.dtype == jnp.int32  # the step count
        else:
            assert leaf.dtype == dt and leaf.shape in {p.shape for p in params.values()}


@pytest.mark.parametrize("name", CLASSIC)
def test_empty_tree_and_scalar_params(name):
    opt = optim.OPTIMIZERS[name](0.1)
    updates, _ = opt.update({}, opt.init({}), {})
    assert updates == {}
    x = jnp.float32(2.0)
    updates, _ = jax.jit(opt.update)(x, opt.init(x), x)
    assert updates.shape == () and float(updates) < 0


def test_integer_params_are_rejected():
    with pytest.raises(TypeError, match="floating"):
        optim.adam(1e-3).init({"w": jnp.ones(3, jnp.int32)})


def test_step_count_saturates_instead_of_wrapping():
    opt = optim.adam(1e-3)
    params = jnp.ones(3)
    state = opt.init(params)
    adam_state = state[0]._replace(count=jnp.int32(np.iinfo(np.int32).max - 1))
    state = (adam_state, *state[1:])
    update = jax.jit(opt.update)
    for _ in range(3):
        updates, state = update(jnp.ones(3), state, params)
    assert int(state[0].count) == np.iinfo(np.int32).max
    assert bool(jnp.all(jnp.isfinite(updates)))
    # Bias corrections are 1 at a saturated count: the update is m_3 / sqrt(v_3) of three unit grads.
    expected = -1e-3 * (1 - 0.9**3) / (math.sqrt(1 - 0.999**3) + 1e-8)
    np.testing.assert_allclose(np.asarray(updates), expected * np.ones(3), rtol=1e-5)
    sched = optim.sgd(lambda c: 0.1 * jnp.ones((), jnp.float32))
    s = sched.init(params)
    s = (s[0]._replace(count=jnp.int32(np.iinfo(np.int32).max)),)
    _, s = sched.update(jnp.ones(3), s)
    assert int(s[0].count) == np.iinfo(np.int32).max


# ----------------------------------------------------------------------------- compilation


@pytest.mark.parametrize("name", CLASSIC)
def test_second_update_does_not_recompile(name):
    opt = optim.OPTIMIZERS[name](0.1)
    params = {"w": jnp.ones((3, 2)), "b": jnp.zeros(())}
    update = jax.jit(opt.update)
    state = opt.init(params)
    u, state = update(params, state, params)
    u, state = update(u, state, params)
    assert update._cache_size() == 1


def _sweep_run(lr, beta, decay):
    """Three optimizers whose hyperparameters are traced values; 50 steps on Rosenbrock."""
    p0 = jnp.array([-1.0, 1.5])
    finals = []
    for opt in (optim.sgd(lr, momentum=beta), optim.rmsprop(lr, decay=decay, momentum=beta),
                optim.adamw(lr, b1=beta, b2=decay, weight_decay=lr)):
        state, p = opt.init(p0), p0
        for _ in range(5):
            u, state = opt.update(jax.grad(_rosenbrock)(p), state, p)
            p = optax.apply_updates(p, u)
        finals.append(p)
    return jnp.stack(finals)


def test_vmap_over_16_learning_rates_compiles_once_and_matches_separate_runs():
    traces = []

    def run(lr, beta, decay):
        traces.append(1)
        return _sweep_run(lr, beta, decay)

    sweep = jax.jit(jax.vmap(run))
    lrs = jnp.logspace(-5, -3, 16, dtype=jnp.float32)
    betas = jnp.linspace(0.0, 0.95, 16, dtype=jnp.float32)  # includes a traced momentum of exactly 0
    decays = jnp.linspace(0.9, 0.999, 16, dtype=jnp.float32)
    out = sweep(lrs, betas, decays)
    sweep(lrs * 2, betas, decays)
    assert len(traces) == 1 and sweep._cache_size() == 1
    for i in range(16):
        separate = _sweep_run(float(lrs[i]), float(betas[i]), float(decays[i]))
        np.testing.assert_allclose(np.asarray(out[i]), np.asarray(separate), rtol=2e-6, atol=1e-7)


def test_traced_zero_momentum_still_builds_a_buffer():
    state = jax.jit(lambda m: optim.sgd(0.1, momentum=m).init(jnp.ones(2)))(jnp.float32(0.0))
    assert isinstance(state[0], optim.TraceState)
    assert isinstance(optim.sgd(0.1).init(jnp.ones(2))[0], optax.EmptyState)


# ----------------------------------------------------------------------------- validation


BAD_VALUES = [
    ("sgd", {"learning_rate": -0.1}, "learning_rate"),
    ("sgd", {"learning_rate": math.nan}, "learning_rate"),
    ("sgd", {"learning_rate": math.inf}, "learning_rate"),
    ("sgd", {"learning_rate": jnp.float32(-1.0)}, "learning_rate"),
    ("sgd", {"learning_rate": 0.1, "momentum": 1.5}, "momentum"),
    ("sgd", {"learning_rate": 0.1, "momentum": -0.1}, "momentum"),
    ("momentum", {"learning_rate": 0.1, "beta": 1.01}, "beta"),
    ("momentum", {"learning_rate": 0.1, "beta": -1.0, "ema": True}, "beta"),
    ("rmsprop", {"learning_rate": 0.1, "decay": 2.0}, "decay"),
    ("rmsprop", {"learning_rate": 0.1, "eps": -1e-8}, "eps"),
    ("rmsprop", {"learning_rate": 0.1, "momentum": math.nan}, "momentum"),
    ("adam", {"learning_rate": 0.1, "b1": 1.1}, "b1"),
    ("adam", {"learning_rate": 0.1, "b2": -0.5}, "b2"),
    ("adam", {"learning_rate": 0.1, "eps": -1.0}, "eps"),
    ("adamw", {"learning_rate": 0.1, "weight_decay": -1e-4}, "weight_decay"),
    ("adamw", {"learning_rate": 0.1, "b2": math.nan}, "b2"),
    ("adagrad", {"learning_rate": 0.1, "eps": -1e-7}, "eps"),
    ("adagrad", {"learning_rate": 0.1, "initial_accumulator_value": -1.0}, "initial_accumulator_value"),
    ("adam", {"learning_rate": jnp.ones(3)}, "learning_rate"),
]


@pytest.mark.parametrize(("name", "kwargs", "arg"), BAD_VALUES)
def test_bad_values_raise_value_error_naming_argument_and_range(name, kwargs, arg):
    with pytest.raises(ValueError, match=arg) as info:
        optim.OPTIMIZERS[name](**kwargs)
    assert "[" in str(info.value) or "scalar" in str(info.value)


@pytest.mark.parametrize(("name", "kwargs", "arg"), [
    ("adam", {"learning_rate": "0.1"}, "learning_rate"),
    ("adam", {"learning_rate": 0.1, "b1": "0.9"}, "b1"),
    ("sgd", {"learning_rate": 0.1, "momentum": "0.9"}, "momentum"),
    ("rmsprop", {"learning_rate": 0.1, "centered": "yes"}, "centered"),
    ("adamw", {"learning_rate": 0.1, "weight_decay": None}, "weight_decay"),
])
def test_wrong_types_raise_type_error_naming_argument(name, kwargs, arg):
    with pytest.raises(TypeError, match=arg):
        optim.OPTIMIZERS[name](**kwargs)


def test_building_blocks_and_optimizers_name_their_own_argument():
    # The blocks call their coefficient decay (as optax does); the optimizers name theirs.
    for block in (optim.trace, optim.ema, optim.scale_by_rms, optim.scale_by_stddev):
        with pytest.raises(ValueError, match=r"^decay must be finite and in \[0, 1\], got 1.5"):
            block(1.5)
    with pytest.raises(TypeError, match="^decay must be a real number"):
        optim.trace("0.9")
    for make, arg in [(lambda: optim.sgd(0.1, momentum=1.5), "momentum"),
                      (lambda: optim.sgd(0.1, momentum=1.5, nesterov=True), "momentum"),
                      (lambda: optim.momentum(0.1, beta=1.5), "beta"),
                      (lambda: optim.momentum(0.1, beta=1.5, ema=True), "beta"),
                      (lambda: optim.momentum(0.1, beta=1.5, ema=True, nesterov=True), "beta"),
                      (lambda: optim.rmsprop(0.1, momentum=1.5), "momentum"),
                      (lambda: optim.rmsprop(0.1, decay=1.5), "decay")]:
        with pytest.raises(ValueError, match=rf"^{arg} must be finite and in \[0, 1\], got 1.5"):
            make()
    with pytest.raises(TypeError, match="^beta must be a real number"):
        optim.momentum(0.1, beta="0.9", ema=True)


EDGE = {"sgd": {"momentum": 0.0}, "momentum": {"beta": 0.0}, "rmsprop": {"decay": 0.0, "momentum": 1.0},
        "adam": {"b1": 0.0, "b2": 0.0}, "adamw": {"b1": 0.0, "weight_decay": 0.0},
        "adagrad": {"initial_accumulator_value": 0.0, "eps": 0.0}}


@pytest.mark.parametrize("name", CLASSIC)
def test_edge_values_and_schedules_give_optax_updates(name):
    """Interval ends (a decay of 0 or 1, a zero learning rate), a schedule and a scalar array are
    accepted, and three updates with each equal optax's with the same arguments."""
    entry = catalogue.get(name)
    params = {"w": jnp.asarray([[0.5, -1.0], [2.0, 0.25]]), "b": jnp.asarray([0.1, -0.3])}
    for kwargs in ({"learning_rate": 0.0, **EDGE[name]}, {"learning_rate": 0.1, **EDGE[name]},
                   {"learning_rate": optax.exponential_decay(0.1, 10, 0.5)},
                   {"learning_rate": jnp.float32(0.1)}):
        lab, state = entry.factory(**kwargs), None
        with jax.numpy_dtype_promotion(STANDARD):
            ref = entry.reference(**kwargs)
            ref_state = ref.init(params)
        state = lab.init(params)
        for t in range(3):
            grads = jax.tree.map(lambda p, t=t: (t + 1.0) * p - 0.2, params)
            lu, state = lab.update(grads, state, params)
            with jax.numpy_dtype_promotion(STANDARD):
                ru, ref_state = ref.update(grads, ref_state, params)
            for a, b in zip(jax.tree.leaves(lu), jax.tree.leaves(ru), strict=True):
                np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=0,
                                           err_msg=f"{name} {kwargs} step {t}")
        if kwargs["learning_rate"] == 0.0:
            assert all(float(jnp.max(jnp.abs(u))) == 0.0 for u in jax.tree.leaves(lu))


def test_get_optimizer_lists_valid_names():
    assert optim.get_optimizer("adam") is optim.adam
    with pytest.raises(ValueError, match=r"unknown optimizer 'adamm'; valid names: sgd, momentum, rmsprop"):
        optim.get_optimizer("adamm")


# ----------------------------------------------------------------------------- complex parameters


def _complex_target(target):
    """optax's alias-test targets for complex64 parameters: the parabola's minimum times 1 + 1j, and
    Rosenbrock with a = 1 + 1j (minimum at (a, a**2))."""
    if target == "parabola":
        final = jnp.array([1.0, -1.0, 1.0], jnp.complex64) * (1 + 1j)
        return (lambda p: jnp.sum(optim.base.abs_sq(p - final)), jnp.array([-1.0, 10.0, 1.0], jnp.complex64),
                final)
    a = jnp.complex64(1 + 1j)
    final = jnp.stack([a, a**2])
    return (lambda p: optim.base.abs_sq(a - p[0]) + 100.0 * optim.base.abs_sq(p[1] - p[0] ** 2),
            jnp.zeros(2, jnp.complex64), final)


@pytest.mark.parametrize("target", ["parabola", "rosenbrock"])
def test_converges_on_complex_parameters_like_optax_tests(target):
    """optax's alias test on complex64: gradients conjugated by the caller, 10000 steps, within 3e-2;
    every classic optimizer of CONVERGENCE in one compiled program."""
    objective, start, final = _complex_target(target)
    opts = [optim.OPTIMIZERS[n](**kw) for n, kw in CONVERGENCE]

    @jax.jit
    def run(start):
        def step(carry, _):
            out = []
            for opt, (p, s) in zip(opts, carry, strict=True):
                g = jax.tree.map(jnp.conj, jax.grad(objective)(p))
                u, s = opt.update(g, s, p)
                out.append((optax.apply_updates(p, u), s))
            return out, None

        return jax.lax.scan(step, [(start, opt.init(start)) for opt in opts], None, length=10_000)[0]

    for (name, kw), (p, _) in zip(CONVERGENCE, run(start), strict=True):
        assert p.dtype == jnp.complex64
        np.testing.assert_allclose(np.asarray(p), np.asarray(final), rtol=3e-2, atol=3e-2,
                                   err_msg=f"{name} {kw}")


def test_complex_updates_equal_optax_and_real_only_optimizers_refuse_them():
    """Complex64 updates of every classic setting equal optax's over 20 steps, with optax's
    second moments of |g|^2 (a real-valued state in the parameter's complex dtype)."""
    rng = np.random.default_rng(0)
    p0 = {"w": jnp.asarray(rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)), jnp.complex64)}
    for name in CLASSIC:
        e = catalogue.get(name)
        for kw in e.verify:
            lab, ref = e.factory(**kw), e.reference(**kw)
            with jax.numpy_dtype_promotion(STANDARD):
                rs = ref.init(p0)
            ls = lab.init(p0)
            for _ in range(20):
                g = {"w": jnp.asarray(rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)),
                                      jnp.complex64)}
                lu, ls = lab.update(g, ls, p0)
                with jax.numpy_dtype_promotion(STANDARD):
                    ru, rs = ref.update(g, rs, p0)
                assert lu["w"].dtype == jnp.complex64
                scale = float(jnp.max(jnp.abs(ru["w"])))
                np.testing.assert_allclose(np.asarray(lu["w"]), np.asarray(ru["w"]), rtol=2e-5,
                                           atol=2e-6 * scale, err_msg=f"{name} {kw}")
    not_complex = optim.base.checked_chain(optim.scale_by_learning_rate(0.1), name="lab.optim.toy")
    with pytest.raises(TypeError, match=r"lab.optim.toy supports real floating-point leaves only.*\['w'\]"):
        not_complex.init(p0)


# ----------------------------------------------------------------------------- PyTorch conventions

TORCH_FIXTURE = pathlib.Path(__file__).parent / "fixtures" / "torch_trajectories.json"
TORCH = json.loads(TORCH_FIXTURE.read_text())


def _torch_objective(p):
    """The objective of scripts/record_torch_trajectories.py."""
    x, y = p["xy"][0], p["xy"][1]
    c = jnp.asarray(TORCH["w_scale"], p["w"].dtype)
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2 + 0.5 * jnp.sum(c * p["w"] * p["w"]) + 0.5 * (p["s"] - 1) ** 2


def _replay(opt):
    """A jitted run of ``opt`` from the recorded start on the recorded objective, and the start."""
    params = {k: jnp.asarray(v, jnp.float64) for k, v in TORCH["start"].items()}

    @jax.jit
    def run(params):
        def step(carry, _):
            params, state = carry
            updates, state = opt.update(jax.grad(_torch_objective)(params), state, params)
            params = optax.apply_updates(params, updates)
            return (params, state), params

        return jax.lax.scan(step, (params, opt.init(params)), None, length=TORCH["steps"])[1]

    return run, params


def _path_error(row, opt):
    """(steps + 1,) relative error per step between ``opt``'s path and the recorded torch path of
    ``row`` (run it under x64)."""
    run, params = _replay(opt)
    path = run(params)
    errors = []
    for k in params:
        ours = np.concatenate([np.asarray(params[k])[None], np.asarray(path[k])])
        ours = ours.reshape(TORCH["steps"] + 1, -1)
        theirs = np.asarray(row["path"][k], np.float64).reshape(TORCH["steps"] + 1, -1)
        errors.append(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3), axis=1))
    return np.max(errors, axis=0)  # (steps + 1,) relative error per step


def _row(name):
    return next(r for r in TORCH["rows"] if r["name"] == name)


@pytest.mark.parametrize("row", TORCH["rows"], ids=[r["name"] for r in TORCH["rows"]])
def test_reproduces_recorded_torch_trajectory(row, x64):
    """Each row of docs/optimizers.md: the lab.optim arguments given there replay torch.optim (float64)."""
    lab = row["lab"]
    opt = optim.OPTIMIZERS[lab["factory"]](**lab["kwargs"])
    if lab["l2_before"] is not None:  # PyTorch's weight_decay in SGD/Adam: an L2 term in the gradient
        opt = optax.chain(optim.add_decayed_weights(lab["l2_before"]), opt)
    error = _path_error(row, opt)
    print(f"{row['name']}: max relative error {np.max(error):.2e}")
    assert error[0] == 0
    if row["exact"]:
        assert np.max(error) < 1e-10, f"{row['name']}: parts from torch at step {np.argmax(error > 1e-10)}"
    else:  # a documented convention difference: it must show, and early (quantified below)
        assert np.max(error[:10]) > 1e-6, f"{row['name']}: expected to differ from torch"


def test_momentum_replays_torch_sgd_momentum_exactly(x64):
    """docs/optimizers.md: torch's SGD(lr, momentum=mu) is momentum(lr, beta=mu) (heavy ball), exactly."""
    row = _row("sgd_momentum")
    kwargs = row["lab"]["kwargs"]
    error = _path_error(row, optim.momentum(kwargs["learning_rate"], beta=kwargs["momentum"]))
    assert np.max(error) < 1e-10, np.max(error)


def _teacher_forced(row, opt):
    """Torch's recorded path theta_0..theta_T, its updates theta_{t+1} - theta_t, and ``opt``'s updates
    on the same gradients (grad of the objective at torch's theta_t), each leaf (T, n) float64."""
    path = {k: jnp.asarray(v, jnp.float64) for k, v in row["path"].items()}

    @jax.jit
    def run(path):
        thetas = jax.tree.map(lambda x: x[:-1], path)
        grads = jax.vmap(jax.grad(_torch_objective))(thetas)

        def step(state, gp):
            g, p = gp
            u, state = opt.update(g, state, p)
            return state, u

        first = jax.tree.map(lambda x: x[0], thetas)
        return jax.lax.scan(step, opt.init(first), (grads, thetas))[1], grads

    lab_u, grads = run(path)
    flat = lambda t: {k: np.asarray(v).reshape(TORCH["steps"], -1) for k, v in t.items()}  # noqa: E731
    torch_u = flat(jax.tree.map(lambda x: x[1:] - x[:-1], path))
    return torch_u, flat(lab_u), flat(grads)


def _assert_close_per_leaf(actual, predicted, rtol=1e-6):
    for k in actual:
        scale = np.max(np.abs(actual[k]))
        err = np.max(np.abs(actual[k] - predicted[k])) / scale
        assert err < rtol, f"leaf {k}: relative error {err:.3g}"


def test_torch_dampening_is_ema_momentum_plus_a_decaying_first_gradient(x64):
    """docs/optimizers.md, SGD(lr, momentum=mu, dampening=mu): torch's buffer is b_1 = g_1,
    b_t = mu b_{t-1} + (1 - mu) g_t, and momentum(lr, beta=mu, ema=True)'s is v_1 = (1 - mu) g_1, so
    b_t - v_t = mu^t g_1: on the same gradients torch's step is lab's minus lr mu^t g_1 (t = 1, 2, ...)."""
    row = _row("sgd_dampening")
    lr, mu = row["torch"]["kwargs"]["lr"], row["torch"]["kwargs"]["momentum"]
    assert row["torch"]["kwargs"]["dampening"] == mu
    torch_u, lab_u, grads = _teacher_forced(row, optim.momentum(lr, beta=mu, ema=True))
    t = np.arange(1, TORCH["steps"] + 1)[:, None]
    predicted = {k: lab_u[k] - lr * mu**t * grads[k][:1] for k in lab_u}
    _assert_close_per_leaf(torch_u, predicted)
    # The surplus is all of the difference: at the first step torch's step is 1 / (1 - mu) = 10x lab's.
    np.testing.assert_allclose(torch_u["xy"][0], lab_u["xy"][0] / (1 - mu), rtol=1e-12)
    # On the trajectories themselves, the paths part by up to 28% (the figure in the docs).
    error = _path_error(row, optim.momentum(lr, beta=mu, ema=True))
    assert 0.25 < np.max(error) < 0.31, np.max(error)


@pytest.mark.parametrize("name", ["rmsprop_eps_in_sqrt", "adagrad_default_eps"])
def test_eps_inside_the_root_scales_torch_steps_by_the_documented_ratio(name, x64):
    """docs/optimizers.md: with eps inside the root (lab) instead of outside (torch), and everything
    else equal, each step is torch's times (sqrt(s) + eps) / sqrt(s + eps), where s is RMSprop's
    moving average (decay 0.99, from 0) or Adagrad's sum (from 0) of squared gradients."""
    row = _row(name)
    kw = row["torch"]["kwargs"]
    eps = kw.get("eps", 1e-10 if name.startswith("adagrad") else 1e-8)
    lab = row["lab"]
    torch_u, lab_u, grads = _teacher_forced(row, optim.OPTIMIZERS[lab["factory"]](**lab["kwargs"]))
    ratios = {}
    for k, g in grads.items():
        if name.startswith("adagrad"):
            s = np.cumsum(g * g, axis=0)
        else:
            s = np.zeros_like(g)
            acc = np.zeros(g.shape[1])
            for i in range(g.shape[0]):
                acc = 0.99 * acc + 0.01 * g[i] * g[i]
                s[i] = acc
        ratios[k] = np.sqrt(s + eps) / (np.sqrt(s) + eps)
    _assert_close_per_leaf(torch_u, {k: lab_u[k] * ratios[k] for k in lab_u})
    # How far apart (the figures in the docs): on the 1e-6-scale gradients of w, the ratio of
    # torch's step to lab's at the first step and its median over the run; on Rosenbrock's large
    # gradients the two are the same; and how far the paths part.
    first, median, path_error = {"rmsprop_eps_in_sqrt": ((850, 950), (35, 55), (0.5, 0.65)),
                                 "adagrad_default_eps": ((9.5, 10.5), (1.3, 1.6), (12, 17))}[name]
    assert first[0] < np.max(ratios["w"][0]) < first[1], ratios["w"][0]
    assert median[0] < np.median(ratios["w"]) < median[1], np.median(ratios["w"])
    assert np.max(np.abs(ratios["xy"] - 1)) < 1e-6
    error = np.max(_path_error(row, optim.OPTIMIZERS[lab["factory"]](**lab["kwargs"])))
    assert path_error[0] < error < path_error[1], error


# ----------------------------------------------------------------------------- the docs' table


def test_docs_optimizer_table_is_the_catalogues():
    """docs/optimizers.md holds exactly the table the catalogue generates (every entry, one row)."""
    import importlib.util

    path = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "optimizer_table.py"
    spec = importlib.util.spec_from_file_location("optimizer_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.DOC.read_text()
    assert module.render(text) == text, "docs/optimizers.md is stale: run python scripts/optimizer_table.py"
    table = catalogue.markdown_table()
    assert all(f"| `{name}` |" in table for name in catalogue.names())
    catalogue.register(catalogue.Entry("toy_sgd", optim.sgd, optax.sgd, verify=({"learning_rate": 0.1},)))
    try:
        assert module.render(text) != text  # a new entry makes the docs stale
    finally:
        catalogue.unregister("toy_sgd")
