"""lab.verify catches planted bugs with its defaults, and passes correct, differently ordered code.

Each planted bug is a realistic mistake of a hand-written optimizer; each is caught by
``compare``'s defaults (``fail_fast`` only stops after the first failing case). Where a bug shows
only under some condition (small gradients, many steps, one dtype, a schedule, a leaf shape), a
second check shows that without that condition it would have slipped through.
"""

import functools
import json
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab import optim, verify
from lab.optim import catalogue
from lab.verify import conventions as verify_conventions

# ----------------------------------------------------------------------------- hand-written variants


class _AdamState(NamedTuple):
    count: jax.Array  # () in count_dtype
    mu: optax.Updates
    nu: optax.Updates


def _adam(learning_rate, b1=0.9, b2=0.999, eps=1e-8, *, form="optax", count_dtype=jnp.int32,
          correction_in_leaf_dtype=False, factor=1.0):
    """Adam written by hand with knobs for planting bugs.

    form "optax": u = -lr m_hat / (sqrt(v_hat) + eps); form "paper": the Adam paper's efficient
    ordering, step = lr sqrt(1 - b2^t) / (1 - b1^t), u = -step m / (sqrt(v) + eps sqrt(1 - b2^t)),
    the same function of exact arithmetic, rounded differently; form "lerp": moments updated as
    m + (1 - b1)(g - m), as PyTorch's lerp_ does.
    """

    def init(params):
        zeros = jax.tree.map(jnp.zeros_like, params)
        return _AdamState(jnp.zeros((), count_dtype), zeros, zeros)

    def update(grads, state, params=None):
        del params
        count = state.count + jnp.ones((), count_dtype)
        lr = learning_rate(state.count.astype(jnp.int32)) if callable(learning_rate) else learning_rate

        def leaf(g, m, v):
            if form == "lerp":
                m = m + jnp.asarray(1 - b1, g.dtype) * (g - m)
                v = v + jnp.asarray(1 - b2, g.dtype) * (g * g - v)
            else:
                m = jnp.asarray(1 - b1, g.dtype) * g + jnp.asarray(b1, g.dtype) * m
                v = jnp.asarray(1 - b2, g.dtype) * g * g + jnp.asarray(b2, g.dtype) * v
            wide = g.dtype if correction_in_leaf_dtype or g.dtype == jnp.float64 else jnp.float32
            t = count.astype(wide)
            bc1 = (1 - jnp.asarray(b1, wide) ** t)
            bc2 = (1 - jnp.asarray(b2, wide) ** t)
            if form == "paper":
                step = (lr * jnp.sqrt(bc2) / bc1).astype(g.dtype)
                u = -step * m / (jnp.sqrt(v) + (eps * jnp.sqrt(bc2)).astype(g.dtype))
            else:
                m_hat, v_hat = m / bc1.astype(g.dtype), v / bc2.astype(g.dtype)
                u = -jnp.asarray(lr).astype(g.dtype) * m_hat / (jnp.sqrt(v_hat) + jnp.asarray(eps, g.dtype))
            return jnp.asarray(factor, g.dtype) * u, m, v

        out = jax.tree.map(leaf, grads, state.mu, state.nu)
        is_triple = lambda x: isinstance(x, tuple)  # noqa: E731
        pick = lambda i: jax.tree.map(lambda o: o[i], out, is_leaf=is_triple)  # noqa: E731
        return pick(0), _AdamState(count, pick(1), pick(2))

    return optax.GradientTransformation(init, update)


def _stateless(fn):
    """A transformation ``u -> fn(u, params)`` leaf by leaf."""
    return optax.GradientTransformation(
        lambda params: optax.EmptyState(),
        lambda updates, state, params=None: (jax.tree.map(fn, updates, params), state))


class _CountState(NamedTuple):
    count: jax.Array  # () int32


def _schedule_read_one_step_late(learning_rate):
    def update(updates, state, params=None):
        lr = jnp.asarray(learning_rate(state.count + 1))  # BUG: it should see the current count
        return jax.tree.map(lambda g: -lr.astype(g.dtype) * g, updates), _CountState(state.count + 1)

    return optax.GradientTransformation(lambda p: _CountState(jnp.zeros((), jnp.int32)), update)


def _momentum_with_leaf_bug(learning_rate, momentum=0.9, *, broken):
    """Heavy-ball momentum with a special case for some leaves that forgets the buffer."""

    def update(updates, state, params=None):
        def leaf(g, m):
            new = g + jnp.asarray(momentum, g.dtype) * m
            if broken(g):
                new = broken(g)(g, new)
            return new

        new = jax.tree.map(leaf, updates, state.trace)
        lr = jnp.asarray(learning_rate)
        return jax.tree.map(lambda m: -lr.astype(m.dtype) * m, new), optim.TraceState(new)

    return optax.GradientTransformation(lambda p: optim.TraceState(jax.tree.map(jnp.zeros_like, p)), update)


def _scalar_bug(g):
    # BUG: a "fast path" for scalar leaves that returns the gradient and drops the buffer.
    return (lambda g, new: g) if g.ndim == 0 else None


def _odd_tail_bug(g):
    # BUG: a vectorized kernel in blocks of 4 whose remainder gets the raw gradient.
    tail = g.size % 4
    if tail == 0:
        return None

    def fix(g, new):
        flat_g, flat_new = g.reshape(-1), new.reshape(-1)
        return flat_new.at[-tail:].set(flat_g[-tail:]).reshape(g.shape)

    return fix


ADAM = {"learning_rate": 1e-3}


def _assert_caught(report, **where):
    assert not report.passed, report.summary()
    failure = report.failure
    assert failure is not None and np.isfinite(failure.tolerance)
    for key, allowed in where.items():
        value = getattr(failure, key)
        assert value in allowed if isinstance(allowed, set) else value == allowed, (
            f"{key}={value!r}, expected {allowed!r}: {failure}")
    return failure


# ----------------------------------------------------------------------------- planted bugs


def test_eps_inside_the_square_root_is_caught_at_small_gradient_scale():
    def eps_in_sqrt(learning_rate):  # BUG: eps moved inside the square root
        return optim.adam(learning_rate, eps=0.0, eps_root=1e-8)

    report = verify.compare(eps_in_sqrt, "adam", ADAM, fail_fast=True)
    failure = _assert_caught(report, step=0, dtype="float32")
    assert verify.DEFAULT_SCALES[failure.leaf[2:-2]] <= 1e-3  # a leaf with small gradients
    assert abs(failure.candidate) < abs(failure.reference)  # the floor sqrt(1e-8) shrinks the step
    # With every gradient of order 1 it is a small error (it shows only at the rare gradients near
    # zero); the small-gradient leaves make it an O(1) error. (The 16512-element leaf is left out here:
    # among so many unit gradients some are below 1e-4 at every step.)
    small = {k: v for k, v in verify.DEFAULT_TREE.items() if k != "big"}
    at_unit_scale = verify.compare(eps_in_sqrt, "adam", ADAM, scales={k: 1.0 for k in small}, tree=small,
                                   dtypes=("float32",), schedule=False)
    assert at_unit_scale.max_rel_error < 1e-2 < 0.5 < report.max_rel_error


def test_a_step_count_that_stalls_after_256_steps_is_caught():
    def bf16_count(learning_rate):  # BUG: bfloat16 holds integers exactly only up to 256
        return _adam(learning_rate, count_dtype=jnp.bfloat16)

    failure = _assert_caught(verify.compare(bf16_count, "adam", ADAM, fail_fast=True))
    assert failure.step > 256
    assert verify.compare(bf16_count, "adam", ADAM, steps=250, dtypes=("float32",), schedule=False).passed


def test_a_bias_correction_rounded_in_bfloat16_is_caught_only_in_bfloat16():
    def corrected_in_leaf_dtype(learning_rate):  # BUG: 0.999 rounds to 1 in bfloat16: 1 - 1^t = 0
        return _adam(learning_rate, correction_in_leaf_dtype=True)

    report = verify.compare(corrected_in_leaf_dtype, "adam", ADAM, schedule=False, conventions=False)
    assert [c.dtype for c in report.ran if not c.passed] == ["bfloat16"]
    _assert_caught(report, dtype="bfloat16")


def test_a_schedule_read_one_step_late_is_caught_only_with_a_schedule():
    def late(learning_rate):
        return optax.chain(optim.scale_by_adam(), _schedule_read_one_step_late(
            learning_rate if callable(learning_rate) else optax.constant_schedule(learning_rate)))

    report = verify.compare(late, "adam", ADAM, dtypes=("float32",), conventions=False)
    assert [c.setting for c in report.cases if not c.passed] == ["schedule"]
    _assert_caught(report, case="schedule, float32")


def test_a_bug_only_on_scalar_leaves_is_caught_there():
    def scalar_fast_path(learning_rate, momentum=0.9):
        return _momentum_with_leaf_bug(learning_rate, momentum, broken=_scalar_bug)

    kwargs = {"learning_rate": 0.1, "momentum": 0.9}
    _assert_caught(verify.compare(scalar_fast_path, "sgd", kwargs, fail_fast=True), leaf="['scalar']",
                   shape=(), step=1)


def test_a_bug_only_on_odd_sized_leaves_is_caught_there():
    def blocks_of_four(learning_rate, momentum=0.9):
        return _momentum_with_leaf_bug(learning_rate, momentum, broken=_odd_tail_bug)

    kwargs = {"learning_rate": 0.1, "momentum": 0.9}
    failure = _assert_caught(verify.compare(blocks_of_four, "sgd", kwargs, fail_fast=True), step=1)
    assert int(np.prod(failure.shape)) % 4 != 0
    assert verify.compare(blocks_of_four, "sgd", kwargs, tree={"w": (4, 2), "b": (8,)},
                          dtypes=("float32",), schedule=False).passed


@pytest.mark.parametrize("factor", [2.0, 1.001])
def test_a_constant_factor_is_caught(factor):
    def scaled(learning_rate):
        return _adam(learning_rate, factor=factor)

    _assert_caught(verify.compare(scaled, "adam", ADAM, fail_fast=True), step=0)


def test_the_moving_average_momentum_is_not_heavy_ball():
    # The seed's v = beta v + (1 - beta) g against optax's heavy ball: a factor 1 - beta apart.
    def ema_form(learning_rate, momentum):
        return optim.momentum(learning_rate, beta=momentum, ema=True)

    _assert_caught(verify.compare(ema_form, "sgd", {"learning_rate": 0.1, "momentum": 0.9}, fail_fast=True))


@pytest.mark.parametrize("where", ["l2_before_adam", "not_scaled_by_lr"])
def test_weight_decay_in_the_wrong_place_is_caught(where):
    def misplaced(learning_rate, weight_decay=1e-4):
        lr = optim.scale_by_learning_rate(learning_rate)
        if where == "l2_before_adam":  # BUG: an L2 penalty, rescaled by Adam, instead of decoupled
            return optax.chain(optim.add_decayed_weights(weight_decay), optim.scale_by_adam(), lr)
        # BUG: decoupled, but not multiplied by the learning rate
        return optax.chain(optim.scale_by_adam(), lr, _stateless(lambda u, p: u - weight_decay * p))

    _assert_caught(verify.compare(misplaced, "adamw", {"learning_rate": 1e-3}, fail_fast=True))


# ----------------------------------------------------------------------------- no false alarms


def test_adam_in_the_papers_ordering_passes_in_every_dtype():
    def paper(learning_rate):
        return _adam(learning_rate, form="paper")

    report = verify.compare(paper, "adam", ADAM)
    assert report.passed, report.summary()
    assert report.max_rel_error > 0  # it really is rounded differently
    assert {c.dtype for c in report.cases} == {"float32", "bfloat16", "float64"}


def test_lerp_moments_pass_in_float32_and_float64():
    def lerp(learning_rate):
        return _adam(learning_rate, form="lerp")

    report = verify.compare(lerp, "adam", ADAM, dtypes=("float32", "float64"), schedule=False)
    assert report.passed, report.summary()


def test_lerp_moments_in_bfloat16_part_from_optax_convention_of_rounding_b2_to_one():
    """A documented convention difference, not a bug of the lerp form. In bfloat16, optax casts
    b2 = 0.999 to the leaf's dtype, where it is exactly 1.0, so optax's (and lab.optim's, which
    follows optax) second moment is a running sum ``nu + 0.001 g^2``; the lerp form
    ``nu + (1 - b2)(g^2 - nu)`` (PyTorch's ``lerp_``) keeps a true moving average, arguably the
    more faithful Adam. ``compare`` checks against optax's convention, so it reports the two as
    different; this test records that (see lab.optim's dtype policy and docs/optimizers.md), it
    does not claim that the lerp form is wrong."""
    assert float(jnp.asarray(0.999, jnp.bfloat16)) == 1.0

    def lerp(learning_rate):
        return _adam(learning_rate, form="lerp")

    report = verify.compare(lerp, "adam", ADAM, dtypes=("bfloat16",), schedule=False, conventions=False)
    _assert_caught(report, dtype="bfloat16")


def test_reordered_momentum_and_rmsprop_pass_in_bfloat16():
    # lab's EMA Nesterov momentum is (1 - b) g + b v; the reference is (g + b m) (1 - b) lr; and lab's
    # rmsprop divides by sqrt(nu) + eps where optax multiplies by its reciprocal. bfloat16 is where
    # reordering shows most (float32 and float64 are covered by `lab verify` and test_optim).
    for name, kwargs in [("momentum", {"learning_rate": 0.1, "beta": 0.8, "ema": True, "nesterov": True}),
                         ("rmsprop", {"learning_rate": 1e-3, "decay": 0.99, "eps_in_sqrt": False,
                                      "momentum": 0.9})]:
        report = verify.compare(optim.OPTIMIZERS[name], name, kwargs, dtypes=("bfloat16",))
        assert report.passed, report.summary()
        assert report.max_rel_error > 0


# ----------------------------------------------------------------------------- the report


def test_report_shape_for_figures_and_json():
    report = verify.compare(optim.sgd, "sgd", {"learning_rate": 0.1}, steps=30,
                            dtypes=("float32", "bfloat16"))
    assert report.passed and report.failure is None
    assert report.step_errors.shape == (4, 30) and report.tolerances.shape == (4,)
    assert report.labels == ["constant lr, float32", "constant lr, bfloat16", "schedule, float32",
                             "schedule, bfloat16"]
    np.testing.assert_allclose(report.tolerances, [verify.default_rtol(d) for d in
                                                   ("float32", "bfloat16") * 2])
    d = report.to_dict()
    assert d["passed"] and len(d["cases"]) == 4


def test_default_tolerances_follow_the_rule():
    for dtype in ("float32", "float64", "bfloat16"):
        eps = float(jnp.finfo(dtype).eps)
        assert verify.default_rtol(dtype) == max(eps ** (2 / 3), 8 * eps)
    assert 1e-5 < verify.default_rtol("float32") < 1e-4
    assert verify.default_rtol("bfloat16") == 8 * float(jnp.finfo(jnp.bfloat16).eps)


class _Count(NamedTuple):
    count: jax.Array  # () int32


def test_nan_where_the_reference_is_finite_fails():
    def nan_on_step_5(learning_rate):  # BUG: e.g. a 0/0 that appears at one step
        def update(updates, state, params=None):
            updates = jax.tree.map(
                lambda g: jnp.where(state.count == 5, jnp.full_like(g, jnp.nan), -learning_rate * g), updates)
            return updates, _Count(state.count + 1)

        return optax.GradientTransformation(lambda p: _Count(jnp.zeros((), jnp.int32)), update)

    _assert_caught(verify.compare(nan_on_step_5, "sgd", {"learning_rate": 0.1}, steps=20, fail_fast=True,
                                  schedule=False), step=5)


def test_empty_tree_and_custom_tree():
    assert verify.compare(optim.adam, "adam", ADAM, tree={}, steps=5).passed
    report = verify.compare(optim.adam, "adam", ADAM, tree={"a": (2, 3), "s": ()},
                            scales={"a": 1e-6, "s": 1.0}, steps=50, dtypes=("float32",), schedule=False)
    assert report.passed and report.step_errors.shape == (1, 50)


def test_unknown_reference_name_raises():
    with pytest.raises(ValueError, match="no optimizer named 'adamz'"):
        verify.compare(optim.adam, "adamz", ADAM)


# ----------------------------------------------------------------------------- trajectories


def test_trajectories_of_lab_and_optax_agree():
    # (on the MLP: see the reordered Adam below, which checks a harder case there)
    report = verify.compare_trajectories(optim.adam, "adam", {"learning_rate": 1e-2}, objective="rosenbrock")
    assert report.passed, report.max_rel_error
    assert report.reference_loss[-1] < 0.5 * report.reference_loss[0]  # it did optimize


def test_trajectories_report_where_a_bug_parts():
    def scaled(learning_rate):
        return _adam(learning_rate, factor=1.01)

    report = verify.compare_trajectories(scaled, "adam", {"learning_rate": 1e-2}, objective="rosenbrock")
    assert not report.passed and report.parted_at is not None
    assert np.all(report.step_errors[: report.parted_at] <= report.tolerance)


def test_reordered_adam_passes_trajectories_on_the_mlp_in_every_accepted_dtype():
    # The paper's ordering of Adam is correct; on the MLP its bfloat16 path drifted 27% from optax's
    # (rounding compounds along a trajectory), a false alarm: bfloat16 is now refused, and the
    # dtypes compare_trajectories accepts must pass.
    def paper(learning_rate):
        return _adam(learning_rate, form="paper")

    for dtype in ("float32", "float64"):
        report = verify.compare_trajectories(paper, "adam", {"learning_rate": 1e-2}, objective="mlp",
                                             dtype=dtype)
        assert report.passed, (dtype, report.max_rel_error, report.parted_at)
        assert 0 < report.max_rel_error < 0.1 * report.tolerance  # rounded differently, far inside
        assert report.reference_loss[-1] < 0.5 * report.reference_loss[0]  # it did optimize
    with pytest.raises(ValueError, match="float32 or float64, got bfloat16"):
        verify.compare_trajectories(paper, "adam", {"learning_rate": 1e-2}, objective="mlp",
                                    dtype="bfloat16")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_trajectories_catch_a_constant_factor_and_a_misplaced_eps(dtype):
    def scaled(learning_rate):  # BUG: a step 1% too large
        return _adam(learning_rate, factor=1.01)

    def eps_in_sqrt(learning_rate, eps):  # BUG: eps inside the square root
        return optim.adam(learning_rate, eps=0.0, eps_root=eps)

    for candidate, kwargs in [(scaled, {"learning_rate": 1e-2}),
                              (eps_in_sqrt, {"learning_rate": 1e-2, "eps": 0.1})]:
        report = verify.compare_trajectories(candidate, "adam", kwargs, objective="rosenbrock", dtype=dtype)
        assert not report.passed and report.parted_at is not None, (candidate, dtype)
        assert report.parted_at < 500
        assert np.all(report.step_errors[: report.parted_at] <= report.tolerance)


def _to_float32(learning_rate):
    """SGD whose updates come back in float32 whatever the params' dtype (a dtype bug)."""
    return optax.chain(optim.sgd(learning_rate), _stateless(lambda u, p: u.astype(jnp.float32)))


def test_a_wrong_update_dtype_is_reported_as_such():
    report = verify.compare(_to_float32, "sgd", {"learning_rate": 0.1}, dtypes=("bfloat16",), steps=5,
                            schedule=False)
    failure = _assert_caught(report, step=0, dtype="bfloat16", candidate_dtype="float32",
                             reference_dtype="bfloat16")
    assert failure.dtype_mismatch and failure.error == np.inf
    assert "candidate update dtype float32 != reference bfloat16" in str(failure)
    assert "candidate update dtype float32 != reference bfloat16" in report.summary()
    # Same dtypes: no mismatch is claimed.
    ok = verify.compare(_to_float32, "sgd", {"learning_rate": 0.1}, dtypes=("float32",), steps=5,
                        schedule=False)
    assert ok.passed


def _raise_on_constant(name):
    raise ValueError(f"non-finite number {name} in strict JSON")


def test_to_dict_is_strict_json_when_errors_are_infinite_or_nan():
    report = verify.compare(_to_float32, "sgd", {"learning_rate": 0.1}, dtypes=("bfloat16",), steps=5,
                            schedule=False)
    assert report.max_rel_error == np.inf
    text = json.dumps(report.to_dict(), allow_nan=False)
    data = json.loads(text, parse_constant=_raise_on_constant)
    assert data["passed"] is False and data["max_rel_error"] is None
    assert data["cases"][0]["failure"]["error"] is None
    assert data["cases"][0]["failure"]["candidate_dtype"] == "float32"
    assert verify.json_safe({"a": [np.float32(np.nan), -np.inf, 1.5, (2, np.float64(3.0))]}) == {
        "a": [None, None, 1.5, [2, 3.0]]}


def _side_by_side(txs):
    """One transformation running ``txs[k]`` on subtree ``k`` of the params (so several optimizers
    share one compiled program)."""
    keys = list(txs)

    def init(params):
        return tuple(txs[k].init(params[k]) for k in keys)

    def update(updates, state, params=None, **extra):
        out, new_state = {}, []
        for k, st in zip(keys, state, strict=True):
            more = extra if verify.accepts_value(txs[k]) else {}  # the loss value, where it is taken
            out[k], st = txs[k].update(updates[k], st, None if params is None else params[k], **more)
            new_state.append(st)
        return out, tuple(new_state)

    return optax.GradientTransformation(init, update)


CLASSIC = ("sgd", "momentum", "rmsprop", "adam", "adamw", "adagrad")


def test_the_classic_six_pass_side_by_side_and_a_planted_error_is_named():
    # What `lab verify` checks for the classic six, shortened to stay cheap: every setting against its
    # optax reference in float32, bfloat16 and float64, 200 steps, one seed, each on its own subtree of
    # an odd-shaped leaf of unit gradients and a scalar of 1e-6 gradients (where eps matters), all in
    # one program per 64-bit-ness. (The whole catalogue's equivalence is tests/test_optim.py's.)
    settings = [(e.name, kw) for e in catalogue.entries() if e.name in CLASSIC for kw in e.verify]
    names = [f"{i}_{name}" for i, (name, _) in enumerate(settings)]
    tree = {k: {"w": (3, 2), "s": ()} for k in names}
    scales = {k: {"w": 1.0, "s": 1e-6} for k in names}
    reference = _side_by_side({k: catalogue.get(name).reference(**kw)
                               for k, (name, kw) in zip(names, settings, strict=True)})
    candidate = _side_by_side({k: catalogue.get(name).factory(**kw)
                               for k, (name, kw) in zip(names, settings, strict=True)})
    report = verify.compare(candidate, reference, steps=200, seeds=(0,), tree=tree, scales=scales)
    assert report.passed, report.summary()
    assert [c.dtype for c in report.cases] == ["float32", "bfloat16", "float64"]
    assert report.max_rel_error > 0  # the reordered ones (e.g. EMA Nesterov) do round differently
    # And the side-by-side run does see a bug in one setting, naming it.
    broken = dict(zip(names, (catalogue.get(n).factory(**kw) for n, kw in settings), strict=True))
    key = next(k for k in names if k.endswith("_adam"))
    broken[key] = optim.adam(1.01 * settings[names.index(key)][1]["learning_rate"])
    failure = _assert_caught(verify.compare(_side_by_side(broken), reference, steps=5, seeds=(0,),
                                            dtypes=("float32",), tree=tree, scales=scales))
    assert failure.leaf.startswith(f"['{key}']")


# ----------------------------------------------------------------------------- references and the tree


@pytest.mark.parametrize(("name", "found"), [
    ("nadam", "optax.nadam"), ("adam", "optax.adam"), ("scale_by_adam", "optax.scale_by_adam"),
    ("muon", "optax.contrib.muon"), ("contrib.muon", "optax.contrib.muon"),
    ("schedule_free_adamw", "optax.contrib.schedule_free_adamw"), ("contrib.adopt", "optax.contrib.adopt"),
    ("ademamix", "optax.contrib.ademamix"), ("prodigy", "optax.contrib.prodigy"),
])
def test_references_resolve_partials_and_contrib_by_name(name, found):
    label, factory = verify.resolve_reference(name)
    assert factory is getattr(optax.contrib if "contrib" in found else optax, found.rsplit(".", 1)[1])
    assert label == found or name in catalogue.names()


@pytest.mark.parametrize(("name", "message"), [
    ("chain", "optax.chain is not an optimizer factory"), ("contrib.sam", "optax.contrib.sam is not an"),
    ("schedule_free_eval_params", "is not an optimizer factory"), ("ScaleByAdamState", "not an optimizer"),
    ("contrib.nope", "no optimizer named 'contrib.nope'"), ("_private", "no optimizer named"),
])
def test_other_optax_names_are_refused_by_name(name, message):
    with pytest.raises(ValueError, match=message):
        verify.resolve_reference(name)


def _standard(factory):
    """``factory`` whose transformations run under standard dtype promotion, as optax needs (the tests
    run under strict promotion; ``compare`` gives it to the reference only)."""

    def build(*args, **kwargs):
        tx = factory(*args, **kwargs)

        def init(params):
            with jax.numpy_dtype_promotion("standard"):
                return tx.init(params)

        def update(updates, state, params=None, **extra):
            with jax.numpy_dtype_promotion("standard"):
                return tx.update(updates, state, params, **extra)

        return optax.GradientTransformationExtraArgs(init, update)

    return build


def test_a_partial_reference_is_what_optax_calls_by_that_name():
    # optax.nadam is functools.partial(adam, nesterov=True): the same partial passes against "nadam",
    # plain Adam does not.
    kw = {"learning_rate": 1e-2}
    small = {"tree": {"w": (7, 5), "s": ()}, "scales": {"w": 1.0, "s": 1e-6}, "steps": 20, "seeds": (0,),
             "dtypes": ("float32",), "schedule": False}
    nesterov_adam = _standard(functools.partial(optax.adam, nesterov=True))
    assert verify.compare(nesterov_adam, "nadam", kw, **small).passed
    report = verify.compare(_standard(optax.adam), "nadam", kw, conventions=False, **small)
    assert not report.passed and report.reference == "optax.nadam"


def test_the_default_tree_exercises_factored_second_moments_and_matrices():
    big = {k: v for k, v in verify.DEFAULT_TREE.items() if min(v, default=0) >= 128}
    assert big and any(len(s) == 2 for s in verify.DEFAULT_TREE.values())
    one = {"steps": 5, "seeds": (0,), "dtypes": ("float32",), "schedule": False, "conventions": False}
    unfactored = _standard(functools.partial(optax.adafactor, factored=False))
    # Adafactor factors only dimensions of 128 and more: on the small leaves the two agree, on the
    # large one they part at once.
    small = {k: v for k, v in verify.DEFAULT_TREE.items() if k not in big}
    assert verify.compare(unfactored, "adafactor", {"learning_rate": 1e-2}, tree=small, **one).passed
    _assert_caught(verify.compare(unfactored, "adafactor", {"learning_rate": 1e-2}, tree=big,
                                  scales={k: 1.0 for k in big}, **one), step=0, leaf=f"['{next(iter(big))}']")


# ----------------------------------------------------------------------------- what a candidate can take


def _polyak_ignoring_the_loss(max_learning_rate=1.0):
    """Polyak's step with the loss fixed at 1: wrong unless the loss values reach the optimizer."""
    inner = _standard(optax.polyak_sgd)(max_learning_rate)
    return optax.GradientTransformation(
        inner.init, lambda u, s, p=None, **extra: inner.update(u, s, p, value=jnp.ones((), u["w"].dtype)))


def test_the_loss_value_stream_reaches_both_sides():
    kw = {"max_learning_rate": 1.0}
    small = {"tree": {"w": (7, 5)}, "steps": 20, "seeds": (0,), "dtypes": ("float32",), "schedule": False}
    polyak = _standard(optax.polyak_sgd)
    assert verify.compare(polyak, "polyak_sgd", kw, **small).passed  # value= by signature
    assert verify.compare(polyak, "polyak_sgd", kw, needs_value=True, **small).passed
    # The values vary (uniform in [0.5, 1.5)): a fixed loss parts at once.
    _assert_caught(verify.compare(_polyak_ignoring_the_loss, "polyak_sgd", kw, conventions=False, **small),
                   step=0)
    with pytest.raises(TypeError, match="value"):  # told not to pass it, Polyak's step cannot run
        verify.compare(polyak, "polyak_sgd", kw, needs_value=False, **small)


def lion_by_hand(learning_rate: float, b1: float = 0.9, b2: float = 0.99, weight_decay: float = 1e-3):
    """Lion as a user writes it from the paper: ``learning_rate`` must be a float."""

    def init(params):
        return jax.tree.map(jnp.zeros_like, params)

    def update(grads, mu, params=None):
        step = jax.tree.map(lambda g, m: jnp.sign(b1 * m + (1 - b1) * g), grads, mu)
        updates = jax.tree.map(lambda u, p: -learning_rate * (u + weight_decay * p), step, params)
        return updates, jax.tree.map(lambda g, m: b2 * m + (1 - b2) * g, grads, mu)

    return optax.GradientTransformation(init, update)


def test_a_float_only_factory_gets_verdicts_and_its_schedule_cases_are_skipped():
    kw = {"learning_rate": 1e-3}
    report = verify.compare(lion_by_hand, "lion", kw, steps=100, seeds=(0,), dtypes=("float32", "bfloat16"))
    assert report.passed, report.summary()
    assert [c.label for c in report.ran] == ["constant lr, float32", "constant lr, bfloat16"]
    assert [c.verdict for c in report.skipped] == ["SKIP"] * 2
    reason = report.skipped[0].skipped
    assert "cannot take a schedule as learning_rate (TypeError: bad operand type for unary -" in reason
    assert "schedule=False" in reason and "\n" not in reason  # one line, with the hint
    assert "skipped schedule (float32, bfloat16): the candidate" in report.summary()
    assert report.to_dict()["cases"][2]["skipped"] == reason
    # A float-only factory with a bug still fails in the cases that run.
    wrong = functools.partial(lion_by_hand, b1=0.8)
    assert not verify.compare(wrong, "lion", kw, steps=20, seeds=(0,), dtypes=("float32",),
                              conventions=False).passed
    # Told so, the schedule cases are skipped with the reason given.
    told = verify.compare(_standard(optax.lion), "lion", kw, steps=5, seeds=(0,), dtypes=("float32",),
                          schedule="the reference takes no schedule")
    assert told.passed and told.skipped[0].skipped == "the reference takes no schedule"


def adam_torch_names(lr, betas=(0.9, 0.999), eps=1e-8):
    """Adam with PyTorch's argument names."""
    return optim.adam(lr, b1=betas[0], b2=betas[1], eps=eps)


def test_each_side_gets_its_own_arguments_and_the_learning_rate_is_named():
    cand = {"lr": 1e-3, "betas": (0.8, 0.99)}
    ref = {"learning_rate": 1e-3, "b1": 0.8, "b2": 0.99}
    one = {"steps": 100, "seeds": (0,), "dtypes": ("float32",)}
    report = verify.compare(adam_torch_names, "adam", candidate_kwargs=cand, reference_kwargs=ref,
                            lr_arg="lr", **one)
    assert report.passed and [c.setting for c in report.ran] == ["constant lr", "schedule"]
    # Without lr_arg there is no learning_rate to replace: the schedule case says so.
    report = verify.compare(adam_torch_names, "adam", candidate_kwargs=cand, reference_kwargs=ref, **one)
    assert report.passed and "no numeric 'learning_rate'" in report.skipped[0].skipped
    # kwargs goes to both sides; candidate_kwargs replaces it for the candidate.
    other = {"learning_rate": 1e-3, "b1": 0.8}
    assert not verify.compare(optim.adam, "adam", {"learning_rate": 1e-3}, candidate_kwargs=other,
                              conventions=False, **one).passed


# ----------------------------------------------------------------------------- conventions


def _conventions_case(candidate, reference, kwargs):
    return verify.compare(candidate, reference, kwargs, steps=50, seeds=(0,), dtypes=("float64",),
                          schedule=False)


@pytest.mark.parametrize(("candidate", "reference", "kwargs", "name", "matches"), [
    (functools.partial(optim.rmsprop, eps_in_sqrt=False), "rmsprop", {"learning_rate": 1e-3},
     "RMSProp's ε outside the square root", "optax.rmsprop(learning_rate=0.001, eps_in_sqrt=False)"),
    (lambda learning_rate, momentum: optim.momentum(learning_rate, momentum, ema=True), "sgd",
     {"learning_rate": 0.1, "momentum": 0.9}, "momentum form: a moving average",
     "optax.sgd(learning_rate=0.01, momentum=0.9)"),
    (lambda learning_rate, weight_decay: optax.chain(optim.add_decayed_weights(weight_decay),
                                                    optim.adam(learning_rate)),
     "adamw", {"learning_rate": 1e-3, "weight_decay": 0.1}, "coupled L2 instead of AdamW's decoupled decay",
     "optax.chain(optax.add_decayed_weights(0.1), optax.adam(learning_rate=0.001))"),
])
def test_a_failure_that_a_documented_convention_explains_is_named(candidate, reference, kwargs, name,
                                                                  matches):
    report = _conventions_case(candidate, reference, kwargs)
    assert not report.passed and report.convention is not None, report.summary()
    assert name in report.convention.name and report.convention.matches == matches
    assert report.convention.optax_setting
    assert f"known convention: {report.convention}" in report.summary()


def test_a_convention_without_an_optax_setting_is_named_by_its_model():
    def no_bias_correction(learning_rate):
        return verify_conventions.adam_without_bias_correction(learning_rate)

    report = _conventions_case(no_bias_correction, "adam", {"learning_rate": 1e-3})
    assert report.convention is not None and report.convention.name == "Adam's bias correction off"
    assert not report.convention.optax_setting and "no optax setting has it" in str(report.convention)
    # A bug that no convention explains is reported as such.
    assert _conventions_case(lambda learning_rate: _adam(learning_rate, factor=1.01), "adam",
                             {"learning_rate": 1e-3}).convention is None


def test_complex_parameters():
    small = {"tree": {"w": (7, 5), "s": ()}, "scales": {"w": 1.0, "s": 1e-6}, "steps": 50, "seeds": (0,),
             "dtypes": ("complex64",), "schedule": False, "conventions": False}
    report = verify.compare(optim.adam, "adam", {"learning_rate": 1e-2}, **small)
    assert report.passed and report.max_rel_error < 1e-5

    def squares_without_conjugate(learning_rate):  # BUG: |g|^2 written g*g, complex and wrong
        def update(updates, state, params=None):
            return jax.tree.map(lambda g: -learning_rate * g / (jnp.sqrt(g * g) + 1e-8), updates), state

        return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

    report = verify.compare(squares_without_conjugate, "adam", {"learning_rate": 1e-2}, **small)
    failure = _assert_caught(report, step=0, dtype="complex64")
    assert isinstance(failure.candidate, complex)


def test_the_program_and_the_torch_path_compute_the_same_statistics():
    # compare computes its per-step statistics in the compiled program over the leaves laid end to end
    # (segment reductions); a torch candidate's, leaf by leaf in NumPy. Both on the same updates, with
    # NaN, infinities, exact zeros, an empty leaf and a scalar:
    from lab.verify import program, stream

    tree = {"a": (3, 4), "e": (0,), "s": (), "v": (5,)}
    lay = stream.layout(tree, {k: 1.0 for k in tree})
    rng = np.random.default_rng(0)
    c, r = rng.standard_normal((2, lay.size)).astype(np.float32)
    c[[0, 1, 2]] = [np.nan, np.inf, 0.0]
    r[[0, 1, 2, 3]] = [np.nan, np.inf, 0.0, np.inf]
    c_leaves, r_leaves = lay.split(c), lay.split(r)
    flat = program.flat_stats([jnp.asarray(x) for x in c_leaves], [jnp.asarray(x) for x in r_leaves], lay,
                              jnp.float32)
    for i, (cl, rl) in enumerate(zip(c_leaves, r_leaves, strict=True)):
        leaf = program.leaf_stats(np, cl, rl)
        for name, a, b in zip(stream.STAT_NAMES, flat, leaf, strict=True):
            np.testing.assert_array_equal(np.asarray(a)[i], np.asarray(b), err_msg=f"{name} of leaf {i}")
    assert np.asarray(flat[0])[0] == np.inf  # leaf "a": an infinity where the reference is finite
