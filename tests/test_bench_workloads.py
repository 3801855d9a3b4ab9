"""The benchmark's workloads: the registry, one tiny sweep per quick workload scored on the real test
set, validation data held out of training and apart from the test set, identities, targets, and the
noisy quadratic model's sweep against its closed-form expected loss."""

import dataclasses
import json

import jax
import numpy as np
import pytest

from lab.bench import baselines, nqm, targets
from lab.bench import workloads as wl
from lab.problems import Problem, init_params, load_data, metrics
from lab.sweep import run_sweep

SUITE = ("digits_softmax", "digits_mlp", "mnist1d_mlp", "mnist1d_cnn", "nqm", "deep_narrow_mlp")


NQM_SEEDS, NQM_LR, NQM_MOMENTUM = 64, (0.5, 1.5), (0.0, 0.9)


@pytest.fixture(scope="module")
def quick_results():
    """One tiny sweep of every quick workload, one program each: Adam at two learning rates, one seed;
    for the NQM, SGD at two learning rates x momentum 0 and 0.9 x 64 seeds (its closed-form test)."""
    out = {}
    for name, w in wl.WORKLOADS.items():
        q = w.quick()
        config = q.sweep("sgd", {"learning_rate": NQM_LR, "momentum": NQM_MOMENTUM}, seeds=NQM_SEEDS) \
            if name == "nqm" else q.sweep("adam", {"learning_rate": [1e-3, 1e-2]})
        out[name] = q, run_sweep(config, store_dir=None, quiet=True, keep_params=True)
    return out


def test_the_registry_holds_the_suite_of_different_kinds():
    assert set(SUITE) <= set(wl.WORKLOADS) and len(wl.WORKLOADS) >= 6
    kinds = {(str(w.problem.dataset), str(w.problem.model), w.problem.hidden) for w in wl.WORKLOADS.values()}
    assert len(kinds) == len(wl.WORKLOADS)  # no two workloads train the same thing
    for name, w in wl.WORKLOADS.items():
        assert w.name == name and w.problem.validation and w.target is None
        assert w.eval_every * 100 <= w.steps  # evaluated at least every 1% of the budget
        assert w.metric == ("loss" if name == "nqm" else "accuracy")
    assert wl.WORKLOADS["digits_softmax"].problem.model == "linear"  # convex
    assert str(wl.WORKLOADS["mnist1d_cnn"].problem.model) == "cnn1d"


def test_the_deep_narrow_mlp_has_at_least_ten_narrow_layers():
    w = wl.WORKLOADS["deep_narrow_mlp"]
    params = init_params(w.problem, jax.random.key(0))
    widths = [layer["w"].shape[1] for layer in params]
    assert len(widths) >= 11 and max(widths[:-1]) <= 32  # >= 10 hidden layers, then the output layer


def test_each_quick_workload_runs_one_tiny_sweep(quick_results):
    for name, (q, result) in quick_results.items():
        assert q.steps == wl.QUICK_STEPS and q.name == f"{name}_quick"
        assert q.problem == wl.WORKLOADS[name].problem
        curves = q.validation_curves(result)
        assert curves.shape == (result.config.runs, wl.QUICK_STEPS + 1) and np.all(np.isfinite(curves)), name
        assert np.all(result.eval_steps == np.arange(wl.QUICK_STEPS + 1))
        assert all(leaf.shape[0] == result.config.runs for leaf in jax.tree.leaves(result.final_params))


def test_the_validation_set_is_held_out_of_training_and_apart_from_the_test_set():
    def rows(x, y):
        x, y = np.asarray(x).reshape(len(x), -1), np.asarray(y).reshape(len(y), -1)
        return [a.tobytes() + b.tobytes() for a, b in zip(x, y, strict=True)]

    for name, w in wl.WORKLOADS.items():
        split = load_data(w.problem)
        full = load_data(dataclasses.replace(w.problem, validation=False))
        train, val, test = rows(split.x_train, split.y_train), rows(split.x_test, split.y_test), \
            rows(full.x_test, full.y_test)
        assert sorted(train + val) == sorted(rows(full.x_train, full.y_train)), name  # carved from train
        assert not set(val) & set(train), name
        assert not set(val) & set(test), name
        assert len(val) == pytest.approx(0.2 * len(rows(full.x_train, full.y_train)), abs=10)


def test_the_test_metric_is_computed_on_the_real_test_set(quick_results):
    for name, (q, result) in quick_results.items():
        got = wl.test_metric(q, result.final_params)
        plain = dataclasses.replace(q.problem, validation=False)
        test, val = load_data(plain), load_data(q.problem)
        index = 1 if q.metric == "accuracy" else 0
        for run in (0, result.config.runs - 1):
            params = jax.tree.map(lambda a, r=run: a[r], result.final_params)
            expected = metrics(plain, params, test.x_test, test.y_test)[index]
            np.testing.assert_allclose(got[run], expected, rtol=2e-5, err_msg=name)
            # The sweep's own final value is the validation set's, not the test set's.
            on_val = metrics(q.problem, params, val.x_test, val.y_test)
            np.testing.assert_allclose(q.validation_curves(result)[run, -1], on_val[index], rtol=2e-5,
                                       err_msg=name)
            # ... and the two sets tell apart: the test loss is not the validation loss.
            assert not np.isclose(metrics(plain, params, test.x_test, test.y_test)[0], on_val[0], rtol=1e-4)


def test_the_test_metric_of_params_that_are_not_finite_is_nan(quick_results):
    q, result = quick_results["digits_mlp"]
    params = jax.tree.map(np.array, result.final_params)  # writable copies
    params[0]["w"][1, 0, 0] = np.nan  # run 1's first weight
    got = wl.test_metric(q, params)
    assert np.isfinite(got[0]) and np.isnan(got[1])


def test_a_workload_validates_itself():
    problem = wl.WORKLOADS["digits_mlp"].problem
    base = dict(name="w", problem=problem, steps=100, batch_size=8, eval_every=1, metric="accuracy")
    for change, message in [({"problem": Problem("digits")}, "validation=True"),
                            ({"eval_every": 2}, "coarser than 1% of the 100 steps; at most 1"),
                            ({"metric": "error"}, "Workload.metric: expected one of accuracy, loss"),
                            ({"name": "a b"}, "Workload.name"), ({"steps": 0}, "Workload.steps"),
                            ({"target": float("nan")}, "Workload.target"),
                            ({"problem": wl.WORKLOADS["nqm"].problem}, "no accuracy")]:
        with pytest.raises(ValueError, match=message):
            wl.Workload(**{**base, **change})


def test_the_identity_is_stable_and_changes_with_the_definition():
    w = wl.WORKLOADS["digits_mlp"]
    same = wl.Workload(**{f.name: getattr(w, f.name) for f in dataclasses.fields(w)})
    assert same.identity() == w.identity() and len(w.identity()) == 12
    assert dataclasses.replace(w, target=0.5, description="other words").identity() == w.identity()
    changed = [dataclasses.replace(w, steps=500), dataclasses.replace(w, batch_size=32),
               dataclasses.replace(w, eval_every=2), w.quick(),
               dataclasses.replace(w, problem=dataclasses.replace(w.problem, hidden=(64,)))]
    assert len({w.identity(), *(c.identity() for c in changed)}) == 1 + len(changed)
    assert len({w.identity() for w in wl.WORKLOADS.values()}) == len(wl.WORKLOADS)
    assert w.to_dict()["sources"] == w.problem.sources()  # tied to the model's and data's source


# ----------------------------------------------------------------------------- targets


def test_set_target_takes_the_best_optimizers_median_seed():
    best = {"adam": [0.90, 0.95, 0.97], "sgd": [0.99, 0.93, 0.94], "lion": [0.99, np.nan, np.nan]}
    assert targets.set_target(best, "accuracy") == pytest.approx(0.95)  # adam's median; lion's diverged
    assert targets.set_target({"a": [2.0, 1.0, 3.0], "b": [1.5, 1.6, 9.0]}, "loss") == pytest.approx(1.6)
    assert targets.set_target({"a": [0.9]}, "accuracy", initial=0.1, slack=0.25) == pytest.approx(0.7)
    assert targets.set_target({"a": [1.0]}, "loss", initial=5.0, slack=0.5) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="median seed diverged"):
        targets.set_target({"a": [np.nan, np.nan, 0.9]}, "accuracy")
    with pytest.raises(ValueError, match="needs the finite initial metric"):
        targets.set_target({"a": [0.9]}, "accuracy", slack=0.1)


def test_best_validation_is_the_best_evaluation_of_each_run(quick_results):
    q, result = quick_results["nqm"]
    np.testing.assert_array_equal(targets.best_validation(q, result), np.min(result.test_loss, axis=1))
    q, result = quick_results["digits_mlp"]
    np.testing.assert_array_equal(targets.best_validation(q, result), np.max(result.test_accuracy, axis=1))
    # Within a window: only the evaluations at steps <= within count (steps 0..3 of the quick variant).
    early = np.asarray(result.eval_steps) <= 3
    assert 1 < early.sum() < early.size
    np.testing.assert_array_equal(targets.best_validation(q, result, within=3),
                                  np.max(np.asarray(result.test_accuracy)[:, early], axis=1))


def test_the_target_window_ends_on_an_evaluation_step():
    w = wl.WORKLOADS["digits_mlp"]  # 400 steps, evaluated every 4
    assert baselines.within_steps(w, 1 / 3) == 132 and baselines.within_steps(w, 1.0) == 400
    assert baselines.within_steps(w, 1e-6) == 4  # at least the first evaluation
    odd = dataclasses.replace(w, steps=203, eval_every=2)  # evaluated at 0, 2, ..., 202 and 203
    assert baselines.within_steps(odd, 1.0) == 203 and baselines.within_steps(odd, 0.999) == 202
    with pytest.raises(ValueError, match="within: expected a fraction in"):
        baselines.within_steps(w, 0)


def test_committed_targets_round_trip_and_are_refused_once_the_workload_changed(tmp_path):
    path = str(tmp_path / "targets.json")
    assert targets.load_targets(path) == {}
    w = wl.WORKLOADS["digits_mlp"]
    entry = targets.target_entry(w, 0.97, ["adam", "sgd"], trials=16, seeds=5, slack=0.0,
                                 created="2025-01-01")
    targets.save_targets({"digits_mlp": entry}, path)
    assert targets.load_targets(path) == {"digits_mlp": 0.97}
    loaded = targets.with_targets(path=path)
    assert loaded["digits_mlp"].target == 0.97 and loaded["nqm"].target is None
    moved = {**wl.WORKLOADS, "digits_mlp": dataclasses.replace(w, steps=800, eval_every=8)}
    with pytest.raises(ValueError, match="digits_mlp: the target was set for workload identity"):
        targets.load_targets(path, moved)
    others = {k: v for k, v in moved.items() if k != "digits_mlp"}  # the stale entry is not asked for
    assert targets.load_targets(path, others) == {}
    for bad, message in [({**entry, "metric": "loss"}, "metric 'loss', but it is 'accuracy'"),
                         ({k: v for k, v in entry.items() if k != "seeds"}, "field 'seeds' must be a int"),
                         ({**entry, "target": "high"}, "field 'target' must be a float"),
                         ({**entry, "within_steps": 401}, "'within_steps' must be 1 to the workload's 400"),
                         ({**entry, "protocol": 1}, "the target was set under protocol version 1, it is")]:
        with open(path, "w") as f:
            json.dump({"format": 1, "targets": {"digits_mlp": bad}}, f)
        with pytest.raises(ValueError, match=message):
            targets.load_targets(path)
    with open(path, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="cannot be read as JSON"):
        targets.load_targets(path)


# ----------------------------------------------------------------------------- the noisy quadratic model


def test_the_nqm_closed_form_is_zhangs_recursion_without_momentum():
    lr, batch, steps = 0.7, 4, 30
    h = nqm.curvatures()
    decay = (1 - lr * h) ** 2
    t = np.arange(steps + 1)[:, None]
    second = decay**t * nqm.INIT_STD**2 + lr**2 * h / batch * (1 - decay**t) / (1 - decay)
    np.testing.assert_allclose(nqm.expected_loss(lr, batch, steps), 0.5 * second @ h, rtol=1e-12)


def test_a_sweep_of_the_nqm_follows_its_expected_loss(quick_results):
    """Each seed's final loss ``½ Σ h θ²`` of the quick NQM sweep against the closed form. A seed
    draws its 8 batches of 16 from the same 8000 noise vectors, so two seeds share about 128² / 8000
    = 2 of their 128 vectors: their θ correlate by at most 2/128, their losses (squares of Gaussians)
    by at most (2/128)², which inflates the variance of the mean over 64 seeds by at most
    1 + 63 (2/128)². Within 4.5 such standard errors (a false alarm about once in 10^5 per case), and
    the same test rejects the closed form at half the batch size."""
    q, result = quick_results["nqm"]
    steps, batch = q.steps, q.batch_size
    losses = nqm.loss(result.final_params)
    n_train = load_data(q.problem).x_train.shape[0]
    inflation = 1 + (NQM_SEEDS - 1) * (steps * batch / n_train) ** 2
    wrong_batch_rejected = 0
    for lr in NQM_LR:
        for mu in NQM_MOMENTUM:
            hp = result.hparams
            sample = losses[(hp["learning_rate"] == np.float32(lr)) & (hp["momentum"] == np.float32(mu))]
            assert sample.size == NQM_SEEDS
            error = sample.std(ddof=1) / np.sqrt(NQM_SEEDS) * np.sqrt(inflation)
            z = {b: (sample.mean() - nqm.expected_loss(lr, b, steps, mu)[-1]) / error
                 for b in (batch, batch // 2)}
            assert abs(z[batch]) < 4.5, (lr, mu, sample.mean(), nqm.expected_loss(lr, batch, steps, mu)[-1])
            wrong_batch_rejected += abs(z[batch // 2]) > 4.5
    assert wrong_batch_rejected >= 2
