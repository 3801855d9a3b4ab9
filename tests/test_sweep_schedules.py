"""Learning-rate schedules, gradient clipping, explicit lists of points and evaluation at an
optimizer's ``eval_params`` in sweeps, each against a plain Python loop over an optax step built
from optax's own schedule (``warmup_cosine_decay_schedule``, ``exponential_decay``), clipping
(``clip_by_global_norm``) and evaluation point (``contrib.schedule_free_eval_params``).

Tiny configs (two moons, an 8-unit MLP, 20 steps); several cases share one compiled program.
"""

from __future__ import annotations

import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from lab.data import batch_indices
from lab.losses import accuracy, cross_entropy
from lab.models import init_mlp, mlp
from lab.problems import load_data
from lab.sweep import Problem, SweepConfig, program, run_sweep, store

MOONS = Problem(dataset="moons", hidden=(8,), n_train=100)
STEPS, BATCH, EVAL_EVERY = 20, 16, 10
RUN = dict(seeds=2, steps=STEPS, batch_size=BATCH, eval_every=EVAL_EVERY, log_every=1)


def reference_run(make_opt, seed: int, eval_at=None):
    """One run in a Python loop over a jitted optax step (``make_opt()``, compiled once for every
    seed): per-step batch losses, (test loss, test accuracy) at steps 0, 10, 20 (at
    ``eval_at(state, params)`` if given) and the evaluated params."""
    data = load_data(MOONS)
    n = data.x_train.shape[0]
    step, evaluate = _reference_step(make_opt), _reference_evaluate(eval_at)
    k_init, k_batch = jax.random.split(jax.random.key(seed))
    params = init_mlp(k_init, (2, 8, 2), init=MOONS.init)
    state = make_opt().init(params)
    losses, evals = [], [evaluate(params, state)[1:]]
    with jax.numpy_dtype_promotion("standard"):  # optax's schedules mix int32 counts and floats
        for t in range(STEPS):
            params, state, loss = step(params, state, batch_indices(k_batch, t, n, BATCH))
            losses.append(float(loss))
            if (t + 1) % EVAL_EVERY == 0:
                evals.append(evaluate(params, state)[1:])
        final = evaluate(params, state)[0]
    return np.float32(losses), np.float32(evals), final


@functools.lru_cache
def _reference_step(make_opt):
    data, opt = load_data(MOONS), make_opt()

    def loss_fn(p, x, y):
        return cross_entropy(mlp(p, x, MOONS.activation), y)

    @jax.jit
    def step(params, state, idx):
        loss, grads = jax.value_and_grad(loss_fn)(params, data.x_train[idx], data.y_train[idx])
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    return step


@functools.lru_cache
def _reference_evaluate(eval_at):
    data = load_data(MOONS)

    @jax.jit
    def evaluate(params, state):
        p = params if eval_at is None else eval_at(state, params)
        out = mlp(p, data.x_test, MOONS.activation)
        return p, cross_entropy(out, data.y_test), accuracy(out, data.y_test)

    return evaluate


def assert_run_matches(result, r, make_opt, eval_at=None, rtol=2e-5):
    """Run ``r`` of a sweep equals the reference run of ``make_opt()`` (a hashable callable)."""
    losses, evals, params = reference_run(make_opt, int(result.seed[r]), eval_at)
    np.testing.assert_allclose(result.train_loss[r], losses, rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(result.test_loss[r], evals[:, 0], rtol=rtol, atol=1e-6)
    np.testing.assert_allclose(result.test_accuracy[r], evals[:, 1], atol=1e-6)
    for got, want in zip(jax.tree.leaves(result.final_params), jax.tree.leaves(params), strict=True):
        np.testing.assert_allclose(got[r], want, rtol=1e-4, atol=1e-6)


def cosine_adam(lr, warmup, decay, end, max_norm):
    schedule = optax.warmup_cosine_decay_schedule(0.0, lr, warmup, decay, end * lr)
    return optax.chain(optax.clip_by_global_norm(max_norm), optax.adam(schedule))


def step_decay_sgd(rate):
    return optax.sgd(optax.exponential_decay(0.3, 6, rate, staircase=True), momentum=0.9)


def schedule_free(lr):
    return optax.contrib.schedule_free_adamw(lr, b1=0.8)


COSINE = ("learning_rate", "schedule.warmup_steps", "schedule.end_value", "clip.max_norm")


def cosine_points(*rows):
    return [dict(zip(COSINE, row, strict=True)) for row in rows]


@pytest.fixture(scope="module")
def cosine_points_sweep():
    """Adam over three points of (learning rate, warm-up, end value, gradient clipping norm), decay
    over 16 of 20 steps (the last 4 at the end value): one compiled program. A norm of 100 clips
    nothing here, 0.05 most steps."""
    config = SweepConfig.make(MOONS, "adam", schedule="warmup_cosine", name="cosine",
                              points=cosine_points((1e-2, 0, 0.0, 100.0), (3e-2, 6, 0.1, 0.05),
                                                   (2e-2, 6, 0.5, 100.0)),
                              fixed={"schedule.decay_steps": 16}, **RUN)
    return config, run_sweep(config, store_dir=None, quiet=True, keep_params=True, chunk_steps=7)


def test_warmup_cosine_and_clipping_points_equal_optax_adam_with_optax_schedule(cosine_points_sweep):
    config, result = cosine_points_sweep
    assert result.runs == 6 and config.grid == () and config.grid_shape == (3,)
    for r in range(result.runs):
        lr, w, e, c = (float(result.hparams[k][r]) for k in COSINE)
        assert_run_matches(result, r, functools.partial(cosine_adam, lr, int(w), 16, e, c))
    # Clipping to 0.05 matters: without it the same run is another one.
    losses = reference_run(functools.partial(cosine_adam, 3e-2, 6, 16, 0.1, 1e9), int(result.seed[2]))[0]
    assert np.abs(result.train_loss[2] - losses).max() > 1e-3


def test_other_schedule_values_reuse_the_compiled_program(cosine_points_sweep, monkeypatch):
    builds, build = [], program.build_program
    monkeypatch.setattr(program, "build_program", lambda *args: builds.append(args) or build(*args))
    other = SweepConfig.make(MOONS, "adam", schedule="warmup_cosine", name="cosine",
                             points=cosine_points((5e-3, 3, 0.2, 1.0), (1e-2, 12, 0.0, 0.02),
                                                  (4e-2, 1, 1.0, 3.0)),
                             fixed={"schedule.decay_steps": 18}, **RUN)
    result = run_sweep(other, store_dir=None, quiet=True, keep_params=True, chunk_steps=7)
    assert builds == [], "a sweep differing only in schedule values compiled a new program"
    r = 3  # lr 1e-2, warm-up over 12 steps, decayed to 0 by step 18, clipped to norm 0.02
    assert_run_matches(result, r, functools.partial(cosine_adam, 1e-2, 12, 18, 0.0, 0.02))


def test_sgd_with_momentum_and_step_decay_equals_optax_exponential_decay():
    config = SweepConfig.make(MOONS, "sgd", {"learning_rate": [0.3], "schedule.decay_rate": [0.5, 0.9]},
                              {"momentum": 0.9, "schedule.transition_steps": 6}, schedule="step_decay", **RUN)
    result = run_sweep(config, store_dir=None, quiet=True, keep_params=True, chunk_steps=7)
    for r in range(result.runs):
        rate = float(result.hparams["schedule.decay_rate"][r])
        assert_run_matches(result, r, functools.partial(step_decay_sgd, rate))


def test_schedule_free_runs_are_evaluated_and_saved_at_optax_eval_params():
    config = SweepConfig.make(MOONS, "schedule_free_adamw", {"learning_rate": [2e-2]}, {"b1": 0.8}, **RUN)
    assert config.to_dict()["eval_params"] is True
    result = run_sweep(config, store_dir=None, quiet=True, keep_params=True, chunk_steps=7)
    for r in range(result.runs):
        assert_run_matches(result, r, functools.partial(schedule_free, 2e-2),
                           eval_at=optax.contrib.schedule_free_eval_params, rtol=1e-4)
    # Evaluated at the iterate instead, the test losses would differ.
    _, evals, _ = reference_run(functools.partial(schedule_free, 2e-2), 0)
    assert not np.allclose(result.test_loss[0], evals[:, 0], rtol=1e-4)


# ----------------------------------------------------------------------------- points: results, store


def test_a_point_sweep_through_select_grid_view_best_and_the_store(cosine_points_sweep, tmp_path):
    config, result = cosine_points_sweep
    test_loss = result.grid_view("test_loss")
    assert test_loss.shape == (3, 2, 3)  # (points, seeds, evaluations)
    np.testing.assert_array_equal(test_loss[1, 0], result.test_loss[2])
    mask = result.select(learning_rate=3e-2, **{"schedule.warmup_steps": 6})
    assert mask.tolist() == [False, False, True, True, False, False]
    means = result.test_loss[:, -1].reshape(3, 2).mean(axis=1)
    assert result.best("test_loss") == config.grid_points()[int(np.argmin(means))]
    assert config.grid_points()[1] == dict(zip(COSINE, (3e-2, 6.0, 0.1, 0.05), strict=True))
    directory = str(tmp_path / "saved")
    store.save(directory, result)
    loaded = store.load(directory)
    assert loaded.config == config and loaded.config.hash() == config.hash()
    np.testing.assert_array_equal(loaded.grid_view("test_loss"), test_loss)
    assert loaded.best("test_loss") == result.best("test_loss")
    assert SweepConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_new_fields_leave_old_configs_hash_alone_and_change_it_when_set():
    plain = SweepConfig.make(MOONS, "adam", {"learning_rate": [1e-2, 3e-2]}, **RUN)
    assert set(plain.to_dict()) == {"problem", "optimizer", "grid", "fixed", "seeds", "steps", "batch_size",
                                    "eval_every", "log_every", "name"}
    scheduled = SweepConfig.make(MOONS, "adam", {"learning_rate": [1e-2, 3e-2]}, schedule="warmup_cosine",
                                 **RUN)
    points = SweepConfig.make(MOONS, "adam", points=[{"learning_rate": 1e-2}, {"learning_rate": 3e-2}],
                              **RUN)
    assert len({plain.hash(), scheduled.hash(), points.hash()}) == 3
    np.testing.assert_array_equal(points.run_hparams()["learning_rate"], plain.run_hparams()["learning_rate"])


# ----------------------------------------------------------------------------- checks


def make(grid=None, fixed=None, **kw):
    kw = {"seeds": 1, "steps": 20, **kw}
    return SweepConfig.make(MOONS, kw.pop("optimizer", "adam"), grid, fixed, **kw)


@pytest.mark.parametrize("kw, message", [
    (dict(grid={"learning_rate": [0.1]}, schedule="cosine"),
     r"^SweepConfig\.schedule: unknown schedule 'cosine'; valid: constant, warmup_cosine, step_decay$"),
    (dict(grid={"learning_rate": [0.1], "schedule.warmup_steps": [0, 5]}),
     r"^SweepConfig\.grid: 'schedule\.warmup_steps' is a parameter of schedule 'warmup_cosine', not of "
     r"'constant'"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"schedule.decay_rate": 0.5}, schedule="warmup_cosine"),
     r"^SweepConfig\.fixed: 'schedule\.decay_rate' is a parameter of schedule 'step_decay'"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"schedule.warmup": 5}, schedule="warmup_cosine"),
     r"^SweepConfig\.fixed: 'schedule\.warmup' is not a schedule or clipping parameter; valid: "),
    (dict(grid={"learning_rate": [0.1]}, fixed={"schedule.transition_steps": 5}, schedule="step_decay"),
     r"^SweepConfig\.schedule: 'step_decay' needs 'schedule\.decay_rate'; sweep it or fix it$"),
    (dict(grid={"learning_rate": [0.1], "schedule.warmup_steps": [-1.0]}, schedule="warmup_cosine"),
     r"^SweepConfig\.grid: schedule\.warmup_steps=-1\.0: must be a whole number of steps >= 0$"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"schedule.warmup_steps": 2.5}, schedule="warmup_cosine"),
     r"^SweepConfig\.fixed: schedule\.warmup_steps=2\.5: must be a whole number of steps >= 0$"),
    (dict(grid={"learning_rate": [0.1], "schedule.decay_rate": [0.5, 0.0]},
          fixed={"schedule.transition_steps": 5}, schedule="step_decay"),
     r"^SweepConfig\.grid: schedule\.decay_rate=0\.0: must be a number > 0$"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"schedule.transition_steps": 0, "schedule.decay_rate": 0.5},
          schedule="step_decay"),
     r"^SweepConfig\.fixed: schedule\.transition_steps=0: must be a whole number of steps >= 1$"),
    (dict(grid={"learning_rate": [0.1], "schedule.warmup_steps": [5, 20]}, schedule="warmup_cosine"),
     r"^SweepConfig\.grid: schedule\.decay_steps=20 must be larger than schedule\.warmup_steps=20"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"clip.max_norm": 0.0}),
     r"^SweepConfig\.fixed: clip\.max_norm=0\.0: must be a number > 0$"),
    (dict(grid={"learning_rate": [0.1]}, fixed={"clip.max_norm": True}),
     r"^SweepConfig\.fixed: clip\.max_norm=True: must be a number > 0$"),
    (dict(grid={"learning_rate": [0.1]}, points=[{"learning_rate": 0.1}]),
     r"^SweepConfig\.points: give a grid or a list of points, not both$"),
    (dict(points=[]), r"^SweepConfig\.points: empty; give at least one point$"),
    (dict(points=[{"learning_rate": 0.1}, {"learning_rate": 0.2, "b1": 0.9}]),
     r"^SweepConfig\.points: point 1 names b1, learning_rate; point 0 names learning_rate \(every point"),
    (dict(points=[{"learning_rate": 0.1}, {"learning_rate": "x"}]),
     r"^SweepConfig\.points: point 1: 'learning_rate' must be a finite number, got 'x'$"),
    (dict(points=[{"learning_rate": 0.1, "b1": 0.9}, {"learning_rate": 0.2, "b1": 1.5}]),
     r"^SweepConfig\.points: point 1: b1=1\.5: b1 must be"),
    (dict(points=[{"learning_rate": 0.1, "b1": 0.9}, {"learning_rate": 0.1, "b1": 0.9}]),
     r"^SweepConfig\.points: point 1 repeats point 0 \(in float32\)$"),
    (dict(points=[{"learning_rate": 0.1, "lr": 0.9}]),
     r"^SweepConfig\.points: 'lr' is not a hyperparameter of 'adam'; valid: learning_rate, "),
    (dict(points=[{"learning_rate": 0.1}], fixed={"learning_rate": 0.1}),
     r"^SweepConfig\.fixed: learning_rate also swept in points$"),
    (dict(points=[{"learning_rate": 0.1, "schedule.warmup_steps": 30}], schedule="warmup_cosine"),
     r"^SweepConfig\.points: schedule\.decay_steps=20 must be larger than schedule\.warmup_steps=30"),
])
def test_bad_schedules_clipping_and_points_are_one_line_naming_the_field(kw, message):
    with pytest.raises(ValueError, match=message) as info:
        make(**kw)
    assert "\n" not in str(info.value)


def test_the_schedule_is_a_factor_on_the_update_from_step_zero():
    # Closed forms at a few steps, against optax's schedules divided by their peak.
    from lab.sweep import schedules

    t = jnp.arange(30, dtype=jnp.int32)
    hp = {"schedule.warmup_steps": jnp.float32(5), "schedule.decay_steps": jnp.float32(25),
          "schedule.end_value": jnp.float32(0.2)}
    got = schedules.multiplier("warmup_cosine", hp, t)
    with jax.numpy_dtype_promotion("standard"):
        want = optax.warmup_cosine_decay_schedule(0.0, 1.0, 5, 25, 0.2)(np.arange(30))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
        hp = {"schedule.transition_steps": jnp.float32(4), "schedule.decay_rate": jnp.float32(0.7)}
        got = schedules.multiplier("step_decay", hp, t)
        np.testing.assert_allclose(got, optax.exponential_decay(1.0, 4, 0.7, staircase=True)(np.arange(30)),
                                   rtol=1e-6)
    assert float(got[0]) == 1.0 and float(got[4]) == pytest.approx(0.7)
