"""lab.bench.protocol, summaries and suite: selection, sweeps per search space, a candidate that is the
built-in Adam under another name, stale summaries, and the test metric kept out of selection."""

import dataclasses
import importlib
import json
import os
import sys

import jax
import numpy as np
import pytest

from lab.bench import profiles, protocol, search, suite, summaries
from lab.bench.protocol import Settings
from lab.bench.workloads import WORKLOADS

# The quick softmax regression (8 steps): a target the good trials reach within them.
WORKLOAD = dataclasses.replace(WORKLOADS["digits_softmax"].quick(), target=0.3)
SETTINGS = Settings(budget=3, seeds=2)


# ----------------------------------------------------------------------------- selection


def test_select_fewest_steps_then_best_final():
    inf = np.inf
    assert protocol.select([40, 20, 30], [0.9, 0.5, 0.99], True) == 1  # steps first, final ignored
    assert protocol.select([20, 20, inf], [0.8, 0.9, 0.99], True) == 1  # tie on steps: better final
    assert protocol.select([inf, inf, inf], [0.3, 0.7, 0.5], True) == 1  # none reaches: best final
    assert protocol.select([inf, inf, inf], [0.3, 0.7, 0.5], False) == 0  # a loss: lowest final
    assert protocol.select([inf, inf], [np.nan, 0.1], True) == 1  # diverged is worst
    assert protocol.select([inf, inf], [np.nan, 5.0], False) == 1
    assert protocol.select([10, 10], [0.5, 0.5], True) == 0  # full tie: the first drawn


def test_one_sweep_per_static_choice():
    space = search.parse({"learning_rate": {"low": 1e-3, "high": 1e-1, "scale": "log"},
                          "schedule": ["constant", "warmup_cosine"],
                          "schedule.warmup_steps": {"low": 0, "high": 4, "scale": "linear"}})
    trials = protocol.draw(space, Settings(budget=6))
    for t in trials:  # whole steps, and none for a constant schedule
        warmup = t.get("schedule.warmup_steps")
        assert warmup is None if t["schedule"] == "constant" else warmup == round(warmup)
    sweeps = protocol.trial_sweeps("sgd", WORKLOAD, trials)
    assert sorted(c.schedule for c, _ in sweeps) == ["constant", "warmup_cosine"]
    assert sorted(i for _, idx in sweeps for i in idx) == list(range(6))
    for config, indices in sweeps:
        names = {k for k, _ in config.points}
        assert names == ({"learning_rate"} if config.schedule == "constant" else
                         {"learning_rate", "schedule.warmup_steps"})
        lrs = [trials[i]["learning_rate"] for i in indices]
        assert list(dict(config.points)["learning_rate"]) == lrs
    plain = protocol.trial_sweeps("adam", WORKLOAD, search.sample(search.search_space("adam"), 5, 0))
    assert len(plain) == 1 and plain[0][0].grid_size == 5 and plain[0][0].seeds == 1
    # Trials run on seed 0; the selected one is rerun on fresh seeds 1..S, never on its own run again.
    assert set(plain[0][0].run_seeds()) == {0}
    rerun = protocol.winner_sweep("adam", WORKLOAD, search.sample(search.search_space("adam"), 5, 0)[2], 3)
    assert list(rerun.run_seeds()) == [1, 2, 3]


# ----------------------------------------------------------------------------- a small benchmark


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """adam and optax:adam (with adam's search space) on the quick softmax workload. (optax's Adam
    takes powers of its betas by the int32 step count, which strict promotion refuses.)"""
    out = str(tmp_path_factory.mktemp("bench"))
    space = search.search_space("adam")
    with jax.numpy_dtype_promotion("standard"):
        cells = suite.plan(["adam", "optax:adam"], [WORKLOAD], SETTINGS, {}, out=out,
                           spaces={"optax:adam": space}, baselines=None)
        assert [c.summary for c in cells] == [None, None]
        return out, cells, suite.run(cells, SETTINGS, out=out)


def test_optax_adam_is_adam_again(bench):
    _, _, (lab_adam, optax_adam) = bench
    assert optax_adam["optimizer"] == "optax:adam" and lab_adam["optimizer"] == "adam"
    for key in ("trials", "selected_trial", "best_hyperparameters", "steps_to_target", "validation", "test",
                "fraction_trials_reaching", "expected_best_validation", "median_steps_to_target"):
        assert optax_adam[key] == lab_adam[key], key


def test_summary_is_consistent(bench):
    _, _, (summary, _) = bench
    finals = np.array([t["final_validation"] for t in summary["trials"]], np.float64)
    steps = np.array([np.inf if t["steps_to_target"] is None else t["steps_to_target"]
                      for t in summary["trials"]])
    assert summary["selected_trial"] == protocol.select(steps, finals, True)
    assert summary["fraction_trials_reaching"] == np.isfinite(steps).mean()
    if np.isfinite(finals).all():
        np.testing.assert_allclose(summary["expected_best_validation"], profiles.expected_max(finals))
    assert len(summary["steps_to_target"]) == SETTINGS.seeds
    assert summary["step_seconds"] > 0
    median = summary["median_steps_to_target"]
    assert summary["time_to_target_seconds"] == (None if median is None else median * summary["step_seconds"])
    assert 0 <= summary["test"]["mean"] <= 1
    assert summary["test"]["per_seed"] != summary["validation"]["per_seed"]  # two data sets


def test_stored_summaries_are_reused_and_scored(bench):
    out, cells, done = bench
    with jax.numpy_dtype_promotion("standard"):
        again = suite.plan(["adam", "optax:adam"], [WORKLOAD], SETTINGS, {}, out=out,
                           spaces={"optax:adam": search.search_space("adam")}, baselines=None)
    assert [c.summary for c in again] == done
    assert suite.run_steps(again, SETTINGS) == 0
    result = suite.scores(again, done)
    assert result["adam"]["score"] == result["optax:adam"]["score"]
    assert result["adam"]["rank"] == result["optax:adam"]["rank"] == 1.5


def test_selection_planted_and_test_metric_kept_out(monkeypatch):
    """Planted trials: Adam at learning rates 1e-6, 0.05 and 1e-5; only 0.05 learns in 8 steps. The
    test metric is a spy: called once, on the selected trial's seeds only, after selection. (Adam's
    names, budget and seeds as in the fixture, so that the compiled programs are shared.)"""
    planted = [{"learning_rate": lr, "b1": 0.9, "b2": 0.999, "eps": 1e-8} for lr in (1e-6, 0.05, 1e-5)]
    monkeypatch.setattr(protocol, "draw", lambda space, settings: planted[:settings.budget])
    calls = []

    def spy(workload, params):
        runs = jax.tree.leaves(params)[0].shape[0]
        calls.append(runs)
        return np.linspace(0.0, 1.0, runs)  # planted: nothing like the validation accuracy

    monkeypatch.setattr(protocol, "test_metric", spy)
    workload = dataclasses.replace(WORKLOAD, target=1.01)  # unreachable: selection by final validation
    summary = protocol.evaluate("adam", workload, SETTINGS, target=1.01, store_dir=None)
    finals = [t["final_validation"] for t in summary["trials"]]
    assert summary["selected_trial"] == 1 == int(np.argmax(finals))
    assert summary["best_hyperparameters"] == planted[1]
    assert calls == [SETTINGS.seeds]
    assert summary["test"]["per_seed"] == [0.0, 1.0]
    assert summary["fraction_trials_reaching"] == 0.0 and summary["median_steps_to_target"] is None


# ----------------------------------------------------------------------------- stale summaries


def _fake_evaluate(calls):
    def evaluate(optimizer, workload, settings, *, target, space, **_):
        calls.append((str(optimizer), workload.name))
        return {"optimizer": str(optimizer), "workload": workload.name, "target": target,
                "identity": summaries.identity(optimizer.source, workload),
                "settings": protocol.settings_dict(settings, space), "steps_to_target": [4.0, 5.0]}
    return evaluate


def test_edited_optimizer_or_workload_is_stale(tmp_path, monkeypatch):
    module = tmp_path / "bench_stale_opt.py"
    module.write_text("import optax\n\ndef opt(learning_rate=0.1):\n    return optax.sgd(learning_rate)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    calls = []
    monkeypatch.setattr(protocol, "evaluate", _fake_evaluate(calls))
    out = str(tmp_path / "out")

    def plan(workload=WORKLOAD, recompute=False):
        return suite.plan(["bench_stale_opt:opt"], [workload], SETTINGS, {}, out=out, baselines=None,
                          recompute=recompute)

    suite.run(plan(), SETTINGS, out=out)
    assert len(calls) == 1
    stored = plan()[0].summary
    assert stored is not None and suite.run(plan(), SETTINGS, out=out) == [stored] and len(calls) == 1
    module.write_text(module.read_text() + "\n# edited: the same optimizer, another source\n")
    del sys.modules["bench_stale_opt"]
    importlib.invalidate_caches()
    with pytest.raises(summaries.StaleSummary, match=r"stale: the optimizer changed.*--recompute"):
        plan()
    cells = plan(recompute=True)
    assert cells[0].summary is None
    suite.run(cells, SETTINGS, out=out)
    assert len(calls) == 2 and plan()[0].summary["identity"]["optimizer"] == cells[0].optimizer.source
    with open(cells[0].path) as f:
        assert json.load(f)["identity"]["optimizer"] == cells[0].optimizer.source
    changed = dataclasses.replace(WORKLOAD, batch_size=WORKLOAD.batch_size // 2)  # same name, other identity
    with pytest.raises(summaries.StaleSummary, match="the workload changed"):
        plan(changed)
    other = dataclasses.replace(SETTINGS, budget=2)  # other settings: another summary, not a stale one
    elsewhere = suite.plan(["bench_stale_opt:opt"], [WORKLOAD], other, {}, out=out, baselines=None)
    assert elsewhere[0].summary is None
    assert os.path.isfile(cells[0].path)


def test_no_target_is_one_line():
    with pytest.raises(ValueError, match="workload digits_softmax_quick has no validation target"):
        suite.plan(["sgd"], [WORKLOADS["digits_softmax"].quick()], SETTINGS, {}, out="unused", baselines=None)


def test_quick_targets_tied_to_the_workload(tmp_path, monkeypatch):
    from lab.bench import baselines, targets

    quick = WORKLOADS["digits_softmax"].quick()
    path = str(tmp_path / "targets_quick.json")
    monkeypatch.setattr(baselines, "QUICK_TARGETS_JSON", path)
    assert baselines.load_targets([quick]) == {}
    entry = targets.target_entry(quick, 0.5, ["adam"], 4, 2, 0.25, "2026-01-01")
    baselines.save_quick_targets({quick.name: entry})
    assert baselines.load_targets([quick]) == {quick.name: 0.5}
    other = dataclasses.replace(quick, steps=quick.steps + 1)  # same name, another workload
    with pytest.raises(ValueError, match="digits_softmax_quick: the target was set for workload identity"):
        baselines.load_targets([other])
