"""Sweeps past the memory budget, and checkpoints on a wall-clock interval.

A sweep whose compiled program needs more memory than the budget runs in blocks of runs that reuse
one compiled program; its results equal the whole sweep's (within float32 rounding: the
evaluation's batched products may sum in another order), and Ctrl-C and resuming work across
blocks. Configs are tiny (two moons, a 16-unit MLP, 20-40 steps).
"""

from __future__ import annotations

import json
import os
import signal

import jax
import numpy as np
import pytest

from lab import memory
from lab.sweep import Problem, SweepConfig, SweepInterrupted, program, run, run_sweep, store

MOONS = Problem(dataset="moons", hidden=(16,), n_train=100)
ARRAYS = ("train_loss", "train_loss_eval", "test_loss", "test_accuracy", "diverged_step", "weight_norm",
          "near_zero_fraction", "weight_hist", "hist_edges")


def assert_same(a, b, exact=True):
    for name in ARRAYS:
        x, y = getattr(a, name), getattr(b, name)
        if exact:
            np.testing.assert_array_equal(x, y, err_msg=name)
        else:
            np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6, err_msg=name)
    for x, y in zip(jax.tree.leaves(a.final_params), jax.tree.leaves(b.final_params), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=2e-6)


@pytest.fixture(scope="module")
def ten_runs():
    """5 learning rates x 2 seeds (one of them diverges), the whole sweep, and a budget that fits
    4 of its runs: blocks of 4, 4 and 2 (the last one padded)."""
    config = SweepConfig.make(MOONS, "sgd", {"learning_rate": [0.1, 0.3, 1.0, 3.0, 1e4]}, seeds=2, steps=20,
                              batch_size=16, eval_every=10, name="blocks")
    whole = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5, keep_params=True)
    compiled = program.compile_program(program.program_key(config), 5, 10, tuple(jax.devices()), False)
    need = memory.program_bytes(*compiled[:2])  # XLA's count for all 10 runs, one device
    return config, whole, need * 4 // 10 + 1


def count_builds(monkeypatch):
    builds, build = [], program.build_program
    monkeypatch.setattr(program, "build_program", lambda *args: builds.append(args) or build(*args))
    return builds


def test_a_sweep_over_its_memory_budget_runs_in_blocks_of_one_program(ten_runs, monkeypatch):
    config, whole, budget = ten_runs
    assert whole.meta["blocks"] == 1 and whole.diverged.sum() == 2
    builds = count_builds(monkeypatch)
    split = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5, keep_params=True,
                      memory_budget=budget)
    assert (split.meta["blocks"], split.meta["block_runs"], split.meta["runs_padded"]) == (3, 4, 4)
    assert len(builds) == 1, "each block must reuse one compiled program"  # the whole one was cached
    assert_same(whole, split, exact=False)
    np.testing.assert_array_equal(whole.diverged_step, split.diverged_step)
    # The budget can come from the environment too, in bytes or with a unit.
    monkeypatch.setenv("LAB_SWEEP_MEMORY", f"{-(-budget // 1024)}K")  # rounded up: still 4 runs
    again = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5, keep_params=True)
    assert again.meta["blocks"] == 3 and len(builds) == 1
    assert_same(split, again)


def test_ctrl_c_between_and_inside_blocks_resumes_to_the_same_result(ten_runs, tmp_path, monkeypatch):
    config, whole, budget = ten_runs
    uninterrupted = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5, keep_params=True,
                              memory_budget=budget)
    original, saved = store.save_npz, []

    def save_then_ctrl_c_at(n):
        def save_npz(path, arrays, **kwargs):
            digest = original(path, arrays, **kwargs)
            if os.path.basename(path) == "checkpoint.npz":
                meta = json.loads(str(arrays["meta"]))
                saved.append((meta["block"], meta["done"]))
                if len(saved) == n:
                    os.kill(os.getpid(), signal.SIGINT)
            return digest
        return save_npz

    def run():
        return run_sweep(config, store_dir=str(tmp_path), quiet=True, chunk_steps=5, keep_params=True,
                         memory_budget=budget, checkpoint_seconds=0)

    monkeypatch.setattr(store, "save_npz", save_then_ctrl_c_at(4))  # block 0 done, block 1 not begun
    with pytest.raises(SweepInterrupted, match=r"at step 0/20 of block 2/3; saved in .*resume$"):
        run()
    assert saved == [(0, 5), (0, 10), (0, 15), (1, 0)]
    monkeypatch.setattr(store, "save_npz", save_then_ctrl_c_at(6))  # inside block 1
    with pytest.raises(SweepInterrupted, match=r"at step 10/20 of block 2/3"):
        run()
    assert saved[4:] == [(1, 5), (1, 10)]
    builds = count_builds(monkeypatch)
    monkeypatch.setattr(store, "save_npz", original)
    resumed = run()
    assert resumed.meta["blocks"] == 3 and builds == []
    assert_same(uninterrupted, resumed)  # bit for bit
    assert_same(uninterrupted, store.load(store.result_dir(config, str(tmp_path))))
    assert_same(whole, resumed, exact=False)


def test_checkpoints_on_a_wall_clock_interval_and_always_at_ctrl_c(tmp_path, monkeypatch):
    # The default interval (30 s) is far longer than this sweep's 8 chunks: only Ctrl-C saves one.
    assert run.CHECKPOINT_SECONDS == 30
    config = SweepConfig.make(MOONS, "adam", {"learning_rate": [1e-2, 3e-2]}, seeds=2, steps=40,
                              batch_size=16, eval_every=10, name="interval")
    plain = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5)
    original, saved = store.save_npz, []

    def save_npz(path, arrays, **kwargs):
        saved.append(os.path.basename(path))
        return original(path, arrays, **kwargs)

    monkeypatch.setattr(store, "save_npz", save_npz)
    hour = run_sweep(config, store_dir=str(tmp_path / "hour"), quiet=True, chunk_steps=5,
                     checkpoint_seconds=3600)
    assert saved == ["results.npz"]  # no chunk took an hour: no checkpoint
    assert_same(plain, hour)
    saved.clear()
    every = run_sweep(config, store_dir=str(tmp_path / "every"), quiet=True, chunk_steps=5,
                      checkpoint_seconds=0)
    assert saved == ["checkpoint.npz"] * 7 + ["results.npz"]  # after each chunk but the last
    assert_same(plain, every)

    compile_program = program.compile_program

    def ctrl_c_at_third_chunk(*args):
        init_fn, chunk_fn, state_shape = compile_program(*args)
        calls = []

        def chunk(*a):
            calls.append(1)
            if len(calls) == 3:
                os.kill(os.getpid(), signal.SIGINT)  # arrives while the third chunk runs
            return chunk_fn(*a)

        return init_fn, chunk, state_shape

    saved.clear()
    with monkeypatch.context() as m:
        m.setattr(program, "compile_program", ctrl_c_at_third_chunk)
        with pytest.raises(SweepInterrupted, match=r"at step 15/40; saved in"):
            run_sweep(config, store_dir=str(tmp_path), quiet=True, chunk_steps=5)  # the default interval
    assert saved == ["checkpoint.npz"]  # written at Ctrl-C only
    resumed = run_sweep(config, store_dir=str(tmp_path), quiet=True, chunk_steps=5)
    assert saved == ["checkpoint.npz", "results.npz"]
    assert_same(plain, resumed)


@pytest.mark.parametrize("value, message", [
    ("lots", r"memory_budget: expected a positive number of bytes .*got 'lots'"),
    (0, r"memory_budget: .*got 0"),
    (-5, r"memory_budget: .*got -5"),
    (True, r"memory_budget: .*got True"),
    (2.5e9, r"memory_budget: .*got 2500000000\.0"),
])
def test_a_bad_memory_budget_is_refused_before_anything_runs(value, message, tmp_path, monkeypatch):
    monkeypatch.setattr(program, "compile_program", None)  # nothing may be compiled
    config = SweepConfig.make(MOONS, "sgd", {"learning_rate": [0.1]}, steps=5, batch_size=16)
    with pytest.raises(ValueError, match=message) as info:
        run_sweep(config, store_dir=str(tmp_path), memory_budget=value)
    assert "\n" not in str(info.value) and os.listdir(tmp_path) == []
    monkeypatch.setenv("LAB_SWEEP_MEMORY", "12 apples")
    with pytest.raises(ValueError, match=r"^LAB_SWEEP_MEMORY: .*got '12 apples'$"):
        run_sweep(config, store_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"^run_sweep: checkpoint_seconds must be a number >= 0, got -1$"):
        run_sweep(config, store_dir=str(tmp_path), checkpoint_seconds=-1, memory_budget="1G")


def test_budget_units_and_runs_per_block():
    assert memory.budget_bytes(1000) == 1000 and memory.budget_bytes("1000") == 1000
    assert memory.budget_bytes("512M") == 512 << 20 and memory.budget_bytes("1.5 GiB") == 3 << 29
    assert memory.budget_bytes("4g") == 4 << 30 and memory.budget_bytes("2KB") == 2048
    assert memory.budget_bytes() > 0
    # 10 runs on 4 devices are padded to 12: 100 bytes per run.
    assert memory.runs_per_block(10, 4, need=1200, budget=1200) == 10  # fits
    assert memory.runs_per_block(10, 4, need=1200, budget=799) == 4  # 7 fit, a multiple of 4
    assert memory.runs_per_block(10, 4, need=1200, budget=10) == 4  # at least one per device
    assert memory.runs_per_block(10, 1, need=1000, budget=350) == 3
    assert memory.runs_per_block(10, 1, need=None, budget=1) == 10  # no analysis: no split
