"""torch.optim's counterparts of the optimizer zoo, replayed from recorded float64 trajectories.

scripts/record_torch_trajectories.py records each row of the fixture's ``"zoo"`` with torch 2.13 in
float64: 100 steps on Rosenbrock plus a quadratic whose gradients are of order 1e-6, or on two
least-squares problems in a tall and a wide matrix. ``LAB`` holds the ``lab.optim`` call that
docs/optimizers.md gives for each row. Where the conventions agree, lab replays torch's path to
1e-10. Where they differ, the docs state how; here lab is fed the gradients at torch's recorded
points, torch's recorded steps are predicted from that convention alone, and the docs' figures are
checked. Every run is part of one compiled program (float64).
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab import optim

FIXTURE = json.loads((pathlib.Path(__file__).parent / "fixtures" / "torch_trajectories.json").read_text())
ZOO = {r["name"]: r for r in FIXTURE["zoo"]["rows"]}
STEPS = FIXTURE["steps"]
W_SCALE = np.asarray(FIXTURE["w_scale"])
MATRIX_DATA = {k: np.asarray(v) for k, v in FIXTURE["zoo"]["matrix"]["data"].items()}
F64 = jnp.float64


# ----------------------------------------------------------------------------- the two problems


def _rosenbrock(p):
    """scripts/record_torch_trajectories.py's objective: Rosenbrock, a 1e-6-gradient quadratic, a scalar."""
    x, y = p["xy"][0], p["xy"][1]
    c = jnp.asarray(W_SCALE, F64)
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2 + 0.5 * jnp.sum(c * p["w"] * p["w"]) + 0.5 * (p["s"] - 1) ** 2


def _matrix(p):
    """Its matrix_objective: least squares in W (4, 3) and V (2, 5), torch's (out, in) layout."""
    d = {k: jnp.asarray(v, F64) for k, v in MATRIX_DATA.items()}
    return (0.5 * jnp.sum((d["X"] @ p["W"] - d["Y"]) ** 2) / 6
            + 0.5 * jnp.sum((p["V"] @ d["B"] - d["C"]) ** 2) / 2)


OBJECTIVES = {"rosenbrock": _rosenbrock, "matrix": _matrix}


# ----------------------------------------------------------------------------- lab's side of each row


def _relative_step(lr):
    """torch's Adafactor step size min(lr, 1/sqrt(t)) as a schedule of lab's count (t - 1)."""
    return lambda count: jnp.minimum(lr, 1 / jnp.sqrt(count.astype(F64) + 1))


def _transposed(tx):
    """``tx`` on the transposed matrices: torch lays a weight out as (out, in), optax as (in, out)."""
    t = lambda tree: jax.tree.map(lambda x: x.T, tree)  # noqa: E731

    def update_fn(updates, state, params=None):
        updates, state = tx.update(t(updates), state, None if params is None else t(params))
        return t(updates), state

    return optax.GradientTransformation(lambda params: tx.init(t(params)), update_fn)


# The lab.optim call of each row, as docs/optimizers.md gives it.
LAB = {
    "nadam": lambda: optim.nadam(1e-2),
    "nadam_momentum_decay_1e4": lambda: optim.nadam(1e-2),
    "nadam_decoupled": lambda: optim.nadamw(1e-2, weight_decay=1e-2),
    "radam": lambda: optim.radam(1e-2),
    "radam_eps_0": lambda: optim.radam(1e-2, eps=0.0),
    "radam_decoupled": lambda: optax.chain(optim.scale_by_radam(eps=0.0), optim.add_decayed_weights(1e-2),
                                           optim.scale_by_learning_rate(1e-2)),
    "adamax": lambda: optim.adamax(1e-2),
    "adam_amsgrad": lambda: optim.amsgrad(1e-2),
    "adadelta": lambda: optim.adadelta(1.0),
    "adadelta_weight_decay": lambda: optim.adadelta(1.0, weight_decay=0.1),
    "rprop": lambda: optim.rprop(1e-3),
    "rprop_lr_above_max": lambda: optim.rprop(1e-2, max_step_size=1e-2),  # torch's lr 0.1, clipped
    "adafactor": lambda: optim.adafactor(_relative_step(1e-2), min_dim_size_to_factor=1),
    "adafactor_matrix": lambda: optim.adafactor(_relative_step(0.2), min_dim_size_to_factor=1,
                                                weight_decay_rate=0.2 * 0.1),
    "muon": lambda: _transposed(optim.muon(1e-2, weight_decay=0.1)),
    "muon_no_nesterov": lambda: _transposed(optim.muon(1e-2, nesterov=False)),
    "muon_match_rms_adamw": lambda: _transposed(optim.muon(1e-2, weight_decay=0.1, consistent_rms=0.2)),
}
EXACT = ("nadam_momentum_decay_1e4", "nadam_decoupled", "radam_eps_0", "radam_decoupled", "adamax",
         "adadelta", "adadelta_weight_decay", "rprop", "rprop_lr_above_max")
DIFFERS = tuple(name for name in LAB if name not in EXACT)


# ----------------------------------------------------------------------------- torch's rules, in JAX


def _lerp(a, b, w):
    """torch.lerp(a, b, w) as its CPU kernel rounds it."""
    return jnp.where(w < 0.5, a + w * (b - a), b - (b - a) * (1 - w))


def _torch_adafactor(lr, weight_decay=0.0, decay_dtype=F64):
    """torch.optim.Adafactor(lr, weight_decay) (torch/optim/_adafactor.py: eps=(None, 1e-3), d=1,
    beta2_decay=-0.8) for a dict of float64 leaves, with 1 - t^-0.8 formed in ``decay_dtype``: torch
    forms it in Python floats; float32 is optax's (and lab's) rounding of it."""
    eps1 = float(jnp.finfo(F64).eps)

    def init_fn(params):
        def zeros(p):
            return jnp.zeros(p.shape) if p.ndim < 2 else (jnp.zeros((*p.shape[:-1], 1)),
                                                           jnp.zeros((*p.shape[:-2], 1, p.shape[-1])))
        return jnp.zeros([], jnp.int32), {k: zeros(p) for k, p in params.items()}

    def update_fn(grads, state, params):
        count, acc = state
        t = (count + 1).astype(decay_dtype)
        # 1 - beta2_t: torch's t^-0.8 in Python floats, or optax's 1 - (1 - t^-0.8) in float32
        w = (t**-0.8 if decay_dtype == F64 else 1 - (1 - t**-0.8)).astype(F64)
        rho = jnp.minimum(lr, 1 / jnp.sqrt((count + 1).astype(F64)))
        out, new = {}, {}
        for k, g in grads.items():
            p = params[k]
            alpha = jnp.maximum(1e-3, jnp.sqrt(jnp.mean(p * p))) * rho
            if g.ndim > 1:
                row = _lerp(acc[k][0], jnp.mean(g * g, axis=-1, keepdims=True), w)
                col = _lerp(acc[k][1], jnp.mean(g * g, axis=-2, keepdims=True), w)
                v = row @ col / jnp.maximum(jnp.mean(row, axis=-2, keepdims=True), eps1)
                new[k] = (row, col)
            else:
                v = new[k] = _lerp(acc[k], g * g, w)
            u = g / jnp.sqrt(jnp.maximum(v, eps1 * eps1))
            out[k] = -alpha * u / jnp.maximum(1.0, jnp.sqrt(jnp.mean(u * u))) - lr * weight_decay * p
        return out, (count + 1, new)

    return optax.GradientTransformation(init_fn, update_fn)


NS_COEFFS = (3.4445, -4.7750, 2.0315)  # torch's and optax's defaults (Jordan's)


def _newton_schulz_like_torch(x, dtype):
    """torch/optim/_muon.py's _zeropower_via_newtonschulz (5 steps) in ``dtype`` (torch: always
    bfloat16) as torch's CPU kernels round it: products accumulated in float32, ``addmm(C, A, B,
    beta, alpha)`` as the float32 fma(beta, C, alpha (A @ B)), each result rounded to ``dtype``; with
    float64, no rounding at all."""
    a, b, c = NS_COEFFS
    tall = x.shape[0] > x.shape[1]
    if dtype == F64:
        y = (x.T if tall else x) / jnp.maximum(jnp.linalg.norm(x), 1e-7)
        for _ in range(5):
            gram = y @ y.T
            y = a * y + (b * gram + c * gram @ gram) @ y
        return y.T if tall else y

    f32 = jnp.float32
    mm = lambda p, q: jnp.matmul(p, q, preferred_element_type=f32)  # noqa: E731
    # fma(beta, C, D) in float32: the float64 sum of exact products, rounded once (to float32, then dtype)
    fma = lambda beta, c_, d: (np.float32(beta).astype(np.float64) * c_.astype(F64)  # noqa: E731
                               + d.astype(F64)).astype(f32).astype(dtype)
    y = x.astype(f32).astype(dtype)  # torch: float64 -> float -> bfloat16
    y = y.T if tall else y
    norm = jnp.sqrt(jnp.sum(y.astype(f32) ** 2)).astype(dtype)
    y = (y.astype(f32) / jnp.maximum(norm, 1e-7).astype(f32)).astype(dtype)
    for _ in range(5):
        gram = mm(y, y.T).astype(dtype)
        poly = fma(b, gram, np.float32(c) * mm(gram, gram))
        y = fma(a, y, mm(poly, y))
    return (y.T if tall else y).astype(F64)


def _torch_muon(lr, weight_decay=0.1, nesterov=True, match_rms_adamw=False, ns_dtype=jnp.bfloat16,
                bias_corrected=False, momentum=0.95):
    """torch.optim.Muon (torch/optim/_muon.py) on (out, in) matrices, Newton–Schulz in ``ns_dtype``;
    ``match_rms_adamw``: its adjust_lr_fn="match_rms_adamw"; ``bias_corrected``: optax's
    bias-corrected momentum instead of torch's plain one. ``lr``, ``weight_decay``, ``nesterov`` and
    ``match_rms_adamw`` may be arrays (the rows run side by side under vmap)."""

    def init_fn(params):
        return jnp.zeros([], jnp.int32), jax.tree.map(jnp.zeros_like, params)

    def update_fn(grads, state, params):
        count, bufs = state
        t = (count + 1).astype(F64)

        def one(g, buf, p):
            buf = _lerp(buf, g, 1 - momentum)
            if bias_corrected:
                x = jnp.where(nesterov, momentum * buf / (1 - momentum ** (t + 1)) + (1 - momentum) * g
                              / (1 - momentum**t), buf / (1 - momentum**t))
            else:
                x = jnp.where(nesterov, _lerp(g, buf, momentum), buf)
            rows, cols = p.shape
            scale = jnp.where(match_rms_adamw, 0.2 * max(rows, cols) ** 0.5, max(1, rows / cols) ** 0.5)
            return -lr * scale * _newton_schulz_like_torch(x, ns_dtype) - lr * weight_decay * p, buf

        pairs = {k: one(grads[k], bufs[k], params[k]) for k in grads}
        return {k: u for k, (u, _) in pairs.items()}, (count + 1, {k: b for k, (_, b) in pairs.items()})

    return optax.GradientTransformation(init_fn, update_fn)


def _torch_muon_hyperparameters(name):
    kw = ZOO[name]["torch"]["kwargs"]
    return {"lr": kw["lr"], "weight_decay": kw.get("weight_decay", 0.1), "nesterov": kw.get("nesterov", True),
            "match_rms_adamw": kw.get("adjust_lr_fn") == "match_rms_adamw"}


# ----------------------------------------------------------------------------- the one program

MUON_ROWS = ("muon", "muon_no_nesterov", "muon_match_rms_adamw")
REPLAYED = tuple(n for n in LAB if n not in MUON_ROWS[1:])  # Muon's paths: the default's stands for all
# Teacher-forced runs (name, variant): each fed the gradients at torch's recorded points.
FORCED = {
    ("nadam", "lab"): lambda: optim.nadam(1e-2),
    ("nadam", "adam"): lambda: optim.adam(1e-2),
    ("nadam", "adam_b1_0"): lambda: optim.adam(1e-2, b1=0.0),
    ("radam", "lab"): LAB["radam"],
    ("adam_amsgrad", "lab"): LAB["adam_amsgrad"],
    ("rprop_lr_above_max", "unclipped"): lambda: optim.rprop(0.1, max_step_size=1e-2),
    **{(n, "lab"): LAB[n] for n in ("adafactor", "adafactor_matrix", *MUON_ROWS)},
    ("adafactor", "torch"): lambda: _torch_adafactor(1e-2),
    ("adafactor", "torch_float32_decay"): lambda: _torch_adafactor(1e-2, decay_dtype=jnp.float32),
    ("adafactor_matrix", "torch"): lambda: _torch_adafactor(0.2, 0.1),
    ("adafactor_matrix", "torch_float32_decay"): lambda: _torch_adafactor(0.2, 0.1, decay_dtype=jnp.float32),
    ("muon", "torch_float64_bias_corrected"): lambda: _torch_muon(
        **_torch_muon_hyperparameters("muon"), ns_dtype=F64, bias_corrected=True),
    ("muon", "lab_eps_0"): lambda: _transposed(optim.muon(1e-2, weight_decay=0.1, eps=0.0)),
}
# torch's Muon for every Muon row side by side (vmap over the rows): variant -> Newton–Schulz dtype.
MUON_VMAPPED = {"torch": jnp.bfloat16, "torch_float64": F64}


def _replay(tx, f, start):
    def step(carry, _):
        params, state = carry
        updates, state = tx.update(jax.grad(f)(params), state, params)
        params = optax.apply_updates(params, updates)
        return (params, state), params

    return jax.lax.scan(step, (start, tx.init(start)), None, length=STEPS)[1]


def _forced(tx, f, path):
    thetas = jax.tree.map(lambda x: x[:-1], path)
    grads = jax.vmap(jax.grad(f))(thetas)

    def step(state, gp):
        grad, theta = gp
        updates, state = tx.update(grad, state, theta)
        return state, updates

    return jax.lax.scan(step, tx.init(jax.tree.map(lambda x: x[0], thetas)), (grads, thetas))[1], grads


def _torch_muon_rows(recorded, ns_dtype, variant):
    """``_torch_muon`` teacher-forced on every Muon row at once: {(name, variant): steps}."""
    paths = jax.tree.map(lambda *x: jnp.stack(x), *(recorded[n] for n in MUON_ROWS))
    hyper = {k: jnp.asarray([_torch_muon_hyperparameters(n)[k] for n in MUON_ROWS])
             for k in _torch_muon_hyperparameters("muon")}
    run = lambda path, h: _forced(_torch_muon(**h, ns_dtype=ns_dtype), _matrix, path)[0]  # noqa: E731
    steps = jax.vmap(run)(paths, hyper)
    return {(n, variant): jax.tree.map(lambda x, i=i: x[i], steps) for i, n in enumerate(MUON_ROWS)}


@pytest.fixture(scope="module")
def runs():
    """Every replay and teacher-forced run in one compiled float64 program, as numpy: ``paths[name]``
    (steps + 1, n) per leaf from the recorded start; ``steps[name, variant]`` and ``grads[name]``
    (steps, n) per leaf at torch's recorded points; ``torch[name]`` torch's recorded steps."""
    @jax.jit
    def program(recorded):
        paths = {n: _replay(tx, OBJECTIVES[ZOO[n]["problem"]], jax.tree.map(lambda x: x[0], recorded[n]))
                 for n, tx in txs.items()}
        out = {key: _forced(tx, OBJECTIVES[ZOO[key[0]]["problem"]], recorded[key[0]])
               for key, tx in forced.items()}
        steps = {k: u for k, (u, _) in out.items()}
        for variant, dtype in MUON_VMAPPED.items():
            steps.update(_torch_muon_rows(recorded, dtype, variant))
        return paths, steps, {k[0]: g for k, (_, g) in out.items()}

    flat = lambda tree, n: {k: np.asarray(v).reshape(n, -1) for k, v in tree.items()}  # noqa: E731
    with jax.enable_x64(True):  # also while building: a factory's constants are then float64
        txs = {name: LAB[name]() for name in REPLAYED}
        forced = {key: make() for key, make in FORCED.items()}
        recorded = {n: {k: jnp.asarray(v, F64) for k, v in ZOO[n]["path"].items()} for n in LAB}
        paths, steps, grads = program(recorded)
        paths = {n: flat({k: jnp.concatenate([recorded[n][k][:1], v]) for k, v in p.items()}, STEPS + 1)
                 for n, p in paths.items()}
        torch_steps = {n: flat(jax.tree.map(lambda x: x[1:] - x[:-1], recorded[n]), STEPS) for n in LAB}
    return {"paths": paths, "steps": {k: flat(v, STEPS) for k, v in steps.items()},
            "grads": {k: flat(v, STEPS) for k, v in grads.items()}, "torch": torch_steps}


def _path_error(runs, name):
    """(steps + 1,) relative error per step of lab's replay against torch's recorded path (the
    coordinates' |theta| floored at 1e-3, as in tests/test_optim.py)."""
    errors = []
    for k, ours in runs["paths"][name].items():
        theirs = np.asarray(ZOO[name]["path"][k], np.float64).reshape(STEPS + 1, -1)
        errors.append(np.max(np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-3), axis=1))
    return np.max(errors, axis=0)


def _max_error(actual, predicted):
    """Largest error over leaves and steps, relative to each leaf's largest step."""
    return max(np.max(np.abs(actual[k] - predicted[k])) / np.max(np.abs(actual[k])) for k in actual)


def _frobenius_error(actual, predicted):
    """(steps,) relative Frobenius distance per step, the largest over the leaves."""
    return np.max([np.linalg.norm(actual[k] - predicted[k], axis=1) / np.linalg.norm(actual[k], axis=1)
                   for k in actual], axis=0)


# ----------------------------------------------------------------------------- the rows


def test_every_recorded_row_has_its_lab_counterpart():
    assert set(ZOO) == set(LAB), set(ZOO) ^ set(LAB)
    assert set(EXACT) <= set(LAB)


@pytest.mark.parametrize("name", EXACT)
def test_reproduces_recorded_torch_trajectory(runs, name):
    """The "exact" rows of docs/optimizers.md: lab's call replays torch's float64 path."""
    error = _path_error(runs, name)
    print(f"{name}: max relative error {np.max(error):.2e}")
    assert error[0] == 0
    assert np.max(error) < 1e-10, f"{name}: parts from torch at step {np.argmax(error > 1e-10)}"


@pytest.mark.parametrize("name", [n for n in DIFFERS if n in REPLAYED])
def test_documented_differences_show_in_the_paths(runs, name):
    """The "differs" rows: the difference is there in the replay (quantified by the tests below)."""
    error = _path_error(runs, name)
    print(f"{name}: max relative error {np.max(error):.2e}")
    assert np.max(error) > 1e-6, f"{name}: expected to differ from torch"


def test_torch_nadam_momentum_warm_up(runs):
    """NAdam: torch's step with mu_t = b1 (1 - 0.5 * 0.96^(t psi)) and Pi_t = mu_1 ... mu_t is
    -lr [(1 - mu_t) / (1 - Pi_t) g + mu_{t+1} / (1 - Pi_t mu_{t+1}) m_t] / (sqrt(v_hat) + eps): from
    lab's Adam steps on the same gradients (A_t = adam(b1=0): -lr g / d; M_t = adam: -lr m_t / ((1 -
    b1^t) d)) it is (1 - mu_t) / (1 - Pi_t) A_t + mu_{t+1} (1 - b1^t) / (1 - Pi_t mu_{t+1}) M_t, and
    mu_t = b1 gives lab's nadam. The docs' figures: the first step 0.72x lab's, mu_t from 0.450 to
    0.457 over the 100 steps (0.75 b1 = 0.675 after about 4,250), the paths part by 120%."""
    b1, psi = 0.9, ZOO["nadam"]["torch"]["kwargs"].get("momentum_decay", 4e-3)
    assert psi == 4e-3  # torch's default
    t = np.arange(1, STEPS + 2)[:, None]

    def nesterov_mix(mu):
        prod = np.cumprod(mu[:-1], axis=0)
        a = runs["steps"]["nadam", "adam_b1_0"]
        m = runs["steps"]["nadam", "adam"]
        return {k: (1 - mu[:-1]) / (1 - prod) * a[k]
                + mu[1:] * (1 - b1 ** t[:-1]) / (1 - prod * mu[1:]) * m[k] for k in a}

    mu = b1 * (1 - 0.5 * 0.96 ** (t * psi))
    torch_steps, lab_steps = runs["torch"]["nadam"], runs["steps"]["nadam", "lab"]
    assert _max_error(torch_steps, nesterov_mix(mu)) < 1e-8
    assert _max_error(lab_steps, nesterov_mix(np.full_like(mu, b1))) < 1e-12
    ratio = torch_steps["xy"][0] / lab_steps["xy"][0]
    np.testing.assert_allclose(ratio, 0.7169, atol=1e-4)
    assert 0.4500 < mu[0, 0] < 0.4501 and 0.4572 < mu[STEPS - 1, 0] < 0.4573
    half = np.log(0.5) / (psi * np.log(0.96))  # 0.96^(t psi) = 1/2: mu_t = 0.75 b1
    assert 4240 < half < 4260, half
    assert 1.1 < np.max(_path_error(runs, "nadam")) < 1.3


def test_torch_radam_adds_eps_before_the_bias_correction(runs):
    """RAdam: torch divides by sqrt(v_t) + eps and multiplies by sqrt(1 - b2^t), i.e. its eps is
    lab's eps / sqrt(1 - b2^t): once rectified (rho_t > 5, from step 6) torch's step is lab's times
    (sqrt(v_hat) + eps) / (sqrt(v_hat) + eps / sqrt(1 - b2^t)), before it the same (m_hat alone).
    The docs' figures: on the 1e-6 gradients of w 0.89x-0.98x at step 6 (the largest difference) and
    0.97x-0.99x in the median, on Rosenbrock's 1 (to 1e-9); the paths part by 0.5%."""
    b2, eps = 0.999, 1e-8
    t = np.arange(1, STEPS + 1)[:, None]
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    assert np.argmax(rho[:, 0] > 5) + 1 == 6
    ratios = {}
    for k, g in runs["grads"]["radam"].items():
        v = np.zeros_like(g)
        for i in range(STEPS):
            v[i] = b2 * (v[i - 1] if i else 0) + (1 - b2) * g[i] ** 2
        root = np.sqrt(v / (1 - b2**t))
        ratios[k] = np.where(rho > 5, (root + eps) / (root + eps / np.sqrt(1 - b2**t)), 1.0)
    lab_steps = runs["steps"]["radam", "lab"]
    assert _max_error(runs["torch"]["radam"], {k: lab_steps[k] * ratios[k] for k in ratios}) < 1e-6
    assert 0.89 < np.min(ratios["w"][5]) < np.max(ratios["w"][5]) < 0.99, ratios["w"][5]
    assert np.argmin(np.min(ratios["w"], axis=1)) == 5  # the largest difference: the first rectified step
    medians = np.median(ratios["w"], axis=0)
    assert 0.96 < np.min(medians) < np.max(medians) < 0.995, medians
    assert np.max(np.abs(ratios["xy"] - 1)) < 1e-9
    assert 3e-3 < np.max(_path_error(runs, "radam")) < 7e-3


def test_torch_amsgrad_keeps_the_maximum_of_the_raw_second_moment(runs):
    """Adam(amsgrad=True): torch divides by sqrt(max_s v_s / (1 - b2^t)) + eps, lab (as optax) by
    sqrt(max_s v_hat_s) + eps; torch's step is lab's times their ratio. The docs' figures: equal at
    the first step, 3.5x-3.7x in the median step of Rosenbrock's (x, y) and up to 5.2x, the paths
    part by up to 58x."""
    b2, eps = 0.999, 1e-8
    t = np.arange(1, STEPS + 1)[:, None]
    ratios = {}
    for k, g in runs["grads"]["adam_amsgrad"].items():
        v = np.zeros_like(g)
        for i in range(STEPS):
            v[i] = b2 * (v[i - 1] if i else 0) + (1 - b2) * g[i] ** 2
        torch_max = np.maximum.accumulate(v, axis=0) / (1 - b2**t)
        lab_max = np.maximum.accumulate(v / (1 - b2**t), axis=0)
        ratios[k] = (np.sqrt(lab_max) + eps) / (np.sqrt(torch_max) + eps)
    lab_steps = runs["steps"]["adam_amsgrad", "lab"]
    assert _max_error(runs["torch"]["adam_amsgrad"], {k: lab_steps[k] * ratios[k] for k in ratios}) < 1e-6
    assert all(np.allclose(r[0], 1, rtol=1e-15, atol=0) for r in ratios.values())
    medians = np.median(ratios["xy"], axis=0)
    assert 3.5 < np.min(medians) < np.max(medians) < 3.75, medians
    assert 5.1 < np.max(ratios["xy"]) < 5.2
    assert 50 < np.max(_path_error(runs, "adam_amsgrad")) < 65


def test_torch_rprop_clips_its_first_step_size(runs):
    """Rprop(lr, step_sizes=(lo, hi)) clips lr into [lo, hi] at the first step; lab (as optax) starts
    from lr itself, so rprop(clip(lr)) replays torch (test above) and rprop(lr) takes a first step
    lr / hi = 10x torch's, then the same steps."""
    torch_steps = runs["torch"]["rprop_lr_above_max"]
    unclipped = runs["steps"]["rprop_lr_above_max", "unclipped"]
    for k in torch_steps:
        np.testing.assert_allclose(unclipped[k][0], 10 * torch_steps[k][0], rtol=1e-8)
        np.testing.assert_allclose(unclipped[k][1:], torch_steps[k][1:], rtol=1e-8, atol=1e-13)


@pytest.mark.parametrize("name", ["adafactor", "adafactor_matrix"])
def test_torch_adafactor_is_lab_up_to_optax_float32_decay(runs, name):
    """Adafactor(lr, weight_decay=lambda) is adafactor(min(lr, 1/sqrt(t)), min_dim_size_to_factor=1,
    weight_decay_rate=lr lambda) but for the decay 1 - t^-0.8, which optax (and lab) form in
    float32: torch's rule written out in JAX reproduces torch's recorded steps with the decay in
    float64 and lab's with it in float32, to 1e-10. The docs' figures: on the same gradients the
    steps differ by at most 5e-8 (relative to the leaf's largest step); the paths part by 1.6% on
    Rosenbrock (whose valley amplifies any difference), 1.3e-5 on the matrices."""
    steps = runs["steps"]
    assert _max_error(runs["torch"][name], steps[name, "torch"]) < 1e-10
    assert _max_error(steps[name, "lab"], steps[name, "torch_float32_decay"]) < 1e-10
    difference = _max_error(runs["torch"][name], steps[name, "lab"])
    print(f"{name}: steps differ by {difference:.2e}, paths by {np.max(_path_error(runs, name)):.2e}")
    assert 1e-9 < difference < 5e-8
    low, high = {"adafactor": (0.012, 0.02), "adafactor_matrix": (1e-5, 1.6e-5)}[name]
    assert low < np.max(_path_error(runs, name)) < high


@pytest.mark.parametrize("name", MUON_ROWS)
def test_torch_muon_orthogonalizes_in_bfloat16(runs, name):
    """Muon: torch's rule written out in JAX with its bfloat16 Newton–Schulz reproduces torch's
    recorded steps; in float64 and with optax's bias-corrected momentum it is lab's step on the
    transposed matrices with eps=0. The docs' figures, each step's relative Frobenius difference:
    bfloat16 against float64 0.5%-6.5% (median about 2%); torch's Nesterov momentum without bias
    correction against optax's at most 6e-4 (in the first steps), below 6e-5 after 60; optax's
    default eps (norm + 1e-8 instead of max(norm, 1e-7)) 2e-8; Muon(lr)'s paths part by 71%."""
    steps = runs["steps"]
    assert _max_error(runs["torch"][name], steps[name, "torch"]) < 1e-12
    if name == "muon":  # the rest is the momentum's bias correction and eps
        assert _max_error(steps[name, "lab_eps_0"], steps[name, "torch_float64_bias_corrected"]) < 1e-12
        assert 1.5e-8 < _max_error(steps[name, "lab"], steps[name, "torch_float64_bias_corrected"]) < 3e-8
    bfloat16 = _frobenius_error(runs["torch"][name], steps[name, "torch_float64"])
    momentum = _frobenius_error(steps[name, "torch_float64"], steps[name, "lab"])
    print(f"{name}: bfloat16 {np.min(bfloat16):.3f}-{np.max(bfloat16):.3f} (median "
          f"{np.median(bfloat16):.4f}), momentum {np.max(momentum):.2e} at step {np.argmax(momentum) + 1} "
          f"({np.max(momentum[60:]):.2e} after 60)")
    assert 0.005 < np.min(bfloat16) and np.max(bfloat16) < 0.065
    assert 0.018 < np.median(bfloat16) < 0.022
    if ZOO[name]["torch"]["kwargs"].get("nesterov", True):
        assert 1e-4 < np.max(momentum) < 6e-4 and 1 <= np.argmax(momentum) <= 4
        assert np.max(momentum[60:]) < 6e-5
    else:  # the momentum's scale cancels in the normalization: nothing is left but eps's 2e-8
        assert np.max(momentum) < 3e-8
    if name in REPLAYED:
        assert 0.65 < np.max(_path_error(runs, name)) < 0.75
