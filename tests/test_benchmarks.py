"""The benchmarks time what they say and write the JSON the docs and the speed figure read: the
update-step benchmark (lab's and optax's updates of each optimizer, quick mode), the sweep
benchmark's scaling points (blocks and their memory), the compile-cache benchmark (two fresh
processes with their own empty results), the step profile (its full variant is the engine's step, each
other variant lacks the part it names), and the speed figure's throughput panel. No timing is asserted."""

import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

from lab import memory
from lab.experiments import speed
from lab.experiments.record import Record
from lab.optim import catalogue
from lab.sweep import clear_compile_cache, program, run_sweep

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


update_step = _load("update_step")
sweep_bench = _load("sweep")
compile_cache_bench = _load("compile_cache")
profile_step = _load("profile_step")

# One elementwise optimizer, and the structured ones the catalogue has (factored moments, matrices).
ELEMENTWISE = "adam"
STRUCTURED = [n for n in ("adafactor", "muon") if n in catalogue.names()]
NAMES = [ELEMENTWISE, *STRUCTURED]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """The quick run's exit status and JSON, and the cases it timed (by optimizer name)."""
    path = tmp_path_factory.mktemp("bench") / "update_step.json"
    cases = {}

    def recording_prepare(*args, **kwargs):
        case = prepare(*args, **kwargs)
        cases[case.name] = case
        return case

    prepare = update_step.prepare
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(update_step, "prepare", recording_prepare)
        rc = update_step.main(["--quick", "--optimizers", ",".join(NAMES), "--out", str(path)])
    return rc, json.loads(path.read_text()), cases


def _size(shapes: dict) -> int:
    return sum(int(np.prod(s)) for s in shapes.values())


def test_quick_run_writes_every_optimizer_with_its_spread(quick_run):
    rc, out, _ = quick_run
    assert rc == 0
    assert out["quick"] is True and out["repeats"] == update_step.QUICK["repeats"]
    assert out["backend"] == jax.default_backend()
    assert out["copy_bandwidth_GBps"] == max(out["copy_bandwidth_runs_GBps"]) > 0
    assert out["params"] == _size(out["shapes"]["elementwise"])
    assert out["structured_params"] == _size(out["shapes"]["structured"])
    assert [r["optimizer"] for r in out["results"]] == NAMES
    for r in out["results"]:
        entry = catalogue.get(r["optimizer"])
        assert "error" not in r, r
        assert r["reference"] == entry.reference_name and r["settings"] == dict(entry.verify[0])
        assert r["params"] == _size(out["shapes"][r["kind"]])
        for who in ("lab", "optax"):
            low, median, high = r[f"{who}_ms"]
            q1, q3 = r[f"{who}_quartiles_ms"]
            assert 0 < low <= q1 <= median <= q3 <= high
        q1, median, q3 = r["ratio_paired"]
        assert 0 < q1 <= median <= q3
        assert r["ratio_median"] == pytest.approx(r["lab_ms"][1] / r["optax_ms"][1])
        assert r["verdict"] in ("slower", "within 10%", "unclear")
        assert r["max_rel_diff"] < 1e-4  # the two timed calls computed the same update


def test_elementwise_rows_carry_the_bandwidth_bound_and_structured_rows_do_not(quick_run):
    _, out, _ = quick_run
    rows = {r["optimizer"]: r for r in out["results"]}
    adam = rows[ELEMENTWISE]
    assert adam["kind"] == "elementwise"
    # Adam reads g, mu, nu and writes u, mu, nu: six float32 arrays, plus a few bytes of step count.
    assert 0 <= adam["bytes"] - 6 * 4 * adam["params"] < 64
    assert adam["bound_ms"] == pytest.approx(1e3 * adam["bytes"] / (1e9 * out["copy_bandwidth_GBps"]))
    assert adam["lab_fraction_of_bound"] == pytest.approx(adam["bound_ms"] / adam["lab_ms"][0])
    for name in STRUCTURED:
        assert rows[name]["kind"] == "structured"
        assert "bound_ms" not in rows[name] and "bytes" not in rows[name]


@pytest.mark.parametrize(("name", "arrays"), [("sgd", 2), ("momentum", 4), ("adamw", 7)])
def test_traffic_counts_the_arrays_an_update_reads_and_writes(name, arrays):
    # sgd: g -> u; momentum: g, m -> u, m; adamw: g, mu, nu, params -> u, mu, nu (hand counts).
    entry = catalogue.get(name)
    params = update_step.make_tree(update_step.QUICK["params"])
    grads = update_step.gradients(params)
    n = sum(p.size for p in jax.tree.leaves(params))
    for who, tx in update_step.build(entry).items():
        state = tx.init(params)
        fn = update_step.update_fn(entry, tx, who)
        assert 0 <= update_step.traffic(fn, grads, state, params, np.float32(1.0)) - arrays * 4 * n < 64


def test_classify_tells_elementwise_from_structured():
    assert update_step.classify(catalogue.get("adam"))[0] == "elementwise"
    if "lamb" in catalogue.names():  # per-leaf norms (dot products of vectors) are no matrix product
        assert update_step.classify(catalogue.get("lamb"))[0] == "elementwise"
    for name in STRUCTURED:
        assert update_step.classify(catalogue.get(name))[0] == "structured"


@pytest.mark.parametrize("name", NAMES)
def test_timed_calls_are_lab_and_optax_on_the_reported_parameters(name, quick_run):
    _, out, cases = quick_run
    entry, case = catalogue.get(name), cases[name]
    params = case.args["lab"][2]
    assert {k: list(p.shape) for k, p in params.items()} == out["shapes"][case.kind]
    outs = {who: fn(*case.args[who]) for who, fn in case.fns.items()}
    timed = {who: jax.tree.leaves(out[0]) for who, out in outs.items()}
    # Each timed call is its own library's update, rebuilt here from the catalogue entry: the same
    # state types (lab's and optax's differ) and the same numbers.
    kw = dict(entry.verify[0])
    for who, make in (("lab", entry.factory), ("optax", entry.reference)):
        grads, state, p, value = case.args[who]
        assert p is params
        tx, extra = make(**kw), {"value": value} if entry.needs_value else {}
        with jax.numpy_dtype_promotion("standard"):
            assert jax.tree.structure(state) == jax.tree.structure(tx.init(params))
            expected = jax.jit(lambda *a, tx=tx, extra=extra: tx.update(*a, **extra))(grads, state, p)
        assert jax.tree.structure(outs[who]) == jax.tree.structure(expected)
        for t, e in zip(timed[who], jax.tree.leaves(expected[0]), strict=True):
            np.testing.assert_allclose(t, e, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(e))))
    # And lab's update is optax's: the same numbers, leaf by leaf, to float32 rounding.
    for lab, ref in zip(timed["lab"], timed["optax"], strict=True):
        assert lab.shape == ref.shape and np.all(np.isfinite(lab)) and np.max(np.abs(ref)) > 0
        np.testing.assert_allclose(lab, ref, rtol=0, atol=1e-5 * float(np.max(np.abs(ref))))


def test_an_unknown_optimizer_is_refused_in_one_line(capsys):
    with pytest.raises(SystemExit) as exit_info:
        update_step.main(["--quick", "--optimizers", "adam,nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "'nope'" in err and "valid names" in err and "adam" in err


# ----------------------------------------------------------------------------- the sweep benchmark


def test_a_scaling_point_reports_its_blocks_and_their_program_within_the_budget():
    # 8 runs whose program (about 1.7 MB of evaluation temporaries a run) does not fit in 6 MB.
    budget = 6 << 20
    point = sweep_bench.time_lab(8, 4, repeats=0, budget=budget)
    assert point["runs"] == 8 and point["blocks"] >= 2 and point["block_runs"] < 8
    assert point["blocks"] == -(-8 // point["block_runs"])
    assert point["program_bytes"] <= budget < point["unsplit_program_bytes"]
    # XLA's own count for a program of block_runs runs, compiled afresh here.
    config = sweep_bench.workload(8, 4)
    clear_compile_cache()
    compiled = program.compile_program(program.program_key(config), program.default_chunk_steps(4),
                                       point["block_runs"], tuple(jax.devices()[:1]), False)
    assert memory.program_bytes(*compiled[:2]) == point["program_bytes"]
    assert point["peak_rss_bytes"] is None or point["peak_rss_bytes"] > point["program_bytes"]


# ----------------------------------------------------------------------------- the compile-cache benchmark


def test_the_compile_cache_benchmark_runs_two_fresh_processes_with_empty_results_and_one_cache(
        tmp_path, monkeypatch):
    calls = []

    def fake_run(argv, env, **kwargs):  # a lab process: fills its results and, first, the cache
        results = argv[argv.index("--results") + 1]
        calls.append({"argv": argv, "cache": env["LAB_COMPILE_CACHE"], "results": results,
                      "empty": not os.listdir(results)})
        os.makedirs(env["LAB_COMPILE_CACHE"], exist_ok=True)
        if len(calls) == 1:
            for i in range(3):
                (pathlib.Path(env["LAB_COMPILE_CACHE"]) / f"jit_{i}-cache").write_bytes(b"x" * 1000)
        (pathlib.Path(results) / "record.json").write_text("{}")
        time.sleep(0.2 / len(calls))  # the second is faster
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(compile_cache_bench.subprocess, "run", fake_run)
    out = tmp_path / "cc.json"
    assert compile_cache_bench.main(["--command", "figures --quick", "--json", "--out", str(out)]) == 0
    first, second = calls
    assert first["argv"][0] == second["argv"][0] == sys.executable
    for call in calls:
        assert call["argv"][1:6] == ["-c", compile_cache_bench.LAUNCH, "figures", "--quick", "--results"]
        assert call["empty"]
    assert first["results"] != second["results"] and first["cache"] == second["cache"]
    report = json.loads(out.read_text())
    assert report["command"] == "lab figures --quick" and report["cache_entries"] == 3
    assert report["first_seconds"] > report["second_seconds"] > 0
    assert report["speedup"] == pytest.approx(report["first_seconds"] / report["second_seconds"], rel=0.01)


# ----------------------------------------------------------------------------- the step profile


def test_the_profiled_full_step_is_the_engines_step():
    runs, steps = 8, 6
    chunk = program.default_chunk_steps(steps)
    full = profile_step.run_variant(profile_step.FULL, runs, 4, steps, chunk)()
    lab = profile_step.run_lab(runs, 4, steps, chunk)()
    result = run_sweep(sweep_bench.workload(runs, steps), store_dir=None, quiet=True)
    np.testing.assert_array_equal(np.asarray(full[0]), result.train_loss)
    np.testing.assert_array_equal(np.asarray(lab[0]), result.train_loss)
    final = np.asarray(full[1])[:, -1]  # the last chunk's evaluation: train loss, test loss, accuracy
    np.testing.assert_array_equal(final[:, 1], result.test_loss[:, -1])
    np.testing.assert_array_equal(final[:, 2], result.test_accuracy[:, -1])


@pytest.mark.parametrize("change", ["finiteness by sum(leaf * 0) (same answer)",
                                    "batch sliced per seed, then picked per run"])
def test_a_change_proposed_as_the_same_step_gives_the_same_numbers_with_diverged_runs(change, monkeypatch):
    def diverging(runs, steps, seeds=4):  # learning rate 1e30: those runs blow up at once
        return sweep_bench.SweepConfig.make(sweep_bench.PROBLEM, "adam", {"learning_rate": [1e-3, 1e30]},
                                            seeds=seeds, steps=steps, batch_size=64, eval_every=steps)

    monkeypatch.setattr(profile_step.bench, "workload", diverging)
    lab = [np.asarray(a) for a in profile_step.run_lab(8, 4, 6, 2)()]
    changed = [np.asarray(a) for a in profile_step.run_variant(profile_step.TRIED[change], 8, 4, 6, 2)()]
    losses = lab[0]
    assert np.isfinite(losses[:4]).all() and np.isnan(losses[4:, -1]).all()  # the last four diverged
    for a, b in zip(lab, changed, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_the_proposed_finiteness_check_finds_every_non_finite_entry(bad):
    rng = np.random.default_rng(0)
    tree = {"w": rng.normal(size=(64, 9, 33)).astype(np.float32),
            "b": rng.normal(size=(64, 33)).astype(np.float32)}
    # One bad entry in some runs, anywhere in a leaf (a vectorized max can miss a NaN that is not last).
    for run in (3, 17, 40):
        leaf = tree["w" if run != 17 else "b"][run]
        leaf.flat[rng.integers(leaf.size)] = bad
    tree["w"][50].flat[-1] = bad
    expected = np.array([all(np.isfinite(leaf[r]).all() for leaf in tree.values()) for r in range(64)])
    for how in ("isfinite", "sum_zero"):
        found = jax.jit(jax.vmap(lambda t, how=how: profile_step.all_finite(t, how)))(tree)
        np.testing.assert_array_equal(np.asarray(found), expected)
    assert (~expected).sum() == 4


def _ops(parts) -> str:
    """The variant's chunk program, as StableHLO text (lowered, not compiled)."""
    chunk, init, _ = profile_step.make_chunk(parts, 8, 4, 6, 2)
    lr, seeds, fixed = profile_step.inputs(8, 4, 6)
    data = profile_step.load_data(profile_step.bench.PROBLEM)
    state = jax.eval_shape(init, lr, seeds, data)[0]
    return chunk.lower(state, np.int32(0), lr, seeds, fixed, data).as_text()


@pytest.mark.parametrize(("removed", "op"), [
    ("batch gather", "sort"), ("softmax", "exponential"), ("softmax + label pick", "scatter"),
    ("Adam update (beyond SGD)", "sqrt"), ("divergence check + tree_where", "is_finite"),
    ("evaluation", "case")])
def test_each_profile_variant_lacks_the_part_it_removes(removed, op):
    # Without the evaluation (which has its own softmax), so that only the step is compared.
    keep = {} if removed == "evaluation" else {"evaluation": False}
    with_part = dataclasses.replace(profile_step.FULL, **keep)
    without = dataclasses.replace(profile_step.REMOVED[removed], **keep)
    assert f"stablehlo.{op}" in _ops(with_part)
    assert f"stablehlo.{op}" not in _ops(without)


# ----------------------------------------------------------------------------- the speed figure


def _bench(device: str) -> dict:
    seconds = {1: 0.05, 4: 0.1, 16: 0.3, 64: 1.0, 256: 4.0, 1024: 16.5, 4096: 70.0}
    blocks = {1024: 2, 4096: 5}
    scaling = [{"runs": r, "seconds": s, "compile_seconds": 2.0, "run_steps_per_second": r * 100 / s,
                "blocks": blocks.get(r, 1), "block_runs": r if r not in blocks else 900}
               for r, s in seconds.items()]
    return {"runs": 128, "steps": 100, "lab_seconds": 1.5, "optax_loop_seconds": 30.0, "torch_seconds": 31.0,
            "matmul_rate_fraction": 0.7, "memory_budget_bytes": 2 << 30, "device": device, "scaling": scaling,
            "versions": {"jax": "0.10.2"}, "command": "python benchmarks/sweep.py --steps 100",
            "notes": "baselines timed on 8 runs"}


def test_the_speed_figure_draws_throughput_against_runs_with_split_points_marked():
    bench = _bench("cpu (2 cores, x86_64)")
    record = Record(meta={"path": "x.json", "measured": True, "benchmarks": [bench]})
    fig = speed.draw(record)["12_speed.png"]
    ax_time, ax_rate, ax_base = fig.axes
    assert ax_rate.get_xscale() == ax_rate.get_yscale() == "log"
    assert "run-steps per second" in ax_rate.get_ylabel() and "runs" in ax_rate.get_xlabel()
    line, rings = ax_rate.get_lines()
    runs = [1, 4, 16, 64, 256, 1024, 4096]
    np.testing.assert_array_equal(line.get_xdata(), runs)
    seconds = [0.05, 0.1, 0.3, 1.0, 4.0, 16.5, 70.0]
    np.testing.assert_allclose(line.get_ydata(), [r * 100 / s for r, s in zip(runs, seconds, strict=True)])
    np.testing.assert_array_equal(rings.get_xdata(), [1024, 4096])  # only the points split into blocks
    assert "blocks within 2.0 GiB" in rings.get_label()
    assert sorted(t.get_text() for t in ax_rate.texts) == ["2", "5"]
    caption = fig.get_supxlabel()
    assert "cpu (2 cores, x86_64)" in caption and "python benchmarks/sweep.py --steps 100" in caption
    # The earlier panels are still there: time against runs, and the baselines.
    assert ax_time.get_lines()[0].get_ydata().tolist() == seconds
    assert len(ax_base.patches) == 3


def test_the_throughput_panel_reads_files_without_the_newer_keys():
    bench = _bench("cpu")
    for point in bench["scaling"]:
        del point["run_steps_per_second"], point["blocks"]
    del bench["command"], bench["versions"]
    fig = speed.draw(Record(meta={"path": "x", "measured": True, "benchmarks": [bench]}))["12_speed.png"]
    (line,) = fig.axes[1].get_lines()  # no ringed points: one block each
    np.testing.assert_allclose(line.get_ydata()[-1], 4096 * 100 / 70.0)
