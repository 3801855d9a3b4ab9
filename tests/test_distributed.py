"""One sweep across two processes on this machine, as ``--distributed`` runs it on a cluster.

Two processes on 127.0.0.1, each with two simulated CPU devices, join through
:func:`lab.distributed.initialize` (JAX's distributed runtime, gloo for the CPU collectives) and
run one sweep of 6 runs padded to 8 over the 4 devices. Process 1 is killed in the middle: process 0
must stop within the heartbeat timeout instead of hanging. Started again, both resume from the last
checkpoint, finish, and match the same sweep run in this single process; only process 0 wrote the
store; run again, they load it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from lab import distributed
from lab.sweep import Problem, SweepConfig, run_sweep, store

MOONS = Problem(dataset="moons", hidden=(16,), n_train=100)
ARRAYS = ("train_loss", "train_loss_eval", "test_loss", "test_accuracy", "diverged_step", "weight_norm",
          "near_zero_fraction", "weight_hist", "hist_edges")
HEARTBEAT_SECONDS = 5  # how long process 0 waits for a dead peer before JAX ends it
HANG = 300  # seconds after which a child counts as hung (only a guard: they take well under a minute)

CHILD = textwrap.dedent("""
    import json, os, signal, sys
    from lab import distributed
    distributed.initialize()  # from the environment, as `lab run NAME --distributed` does
    from lab.sweep import SweepConfig, program, run_sweep, store

    config, store_dir, kill_at = SweepConfig.from_dict(json.loads(sys.argv[1])), sys.argv[2], int(sys.argv[3])
    writes, chunks, compile_program, write_all = [], [], program.compile_program, store.atomic_write_all

    def counted(*args):  # counts the chunks this process runs; SIGKILLs itself at chunk kill_at
        init_fn, chunk_fn, state_shape = compile_program(*args)
        def chunk(*a):
            chunks.append(int(a[1]))
            if len(chunks) == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return chunk_fn(*a)
        return init_fn, chunk, state_shape

    def recorded(files):  # every file the store writes goes through atomic_write_all
        writes.extend(os.path.basename(path) for path in files)
        return write_all(files)

    program.compile_program, store.atomic_write_all = counted, recorded
    run_sweep(config, store_dir=store_dir, quiet=True, chunk_steps=5, checkpoint_seconds=0)
    first = list(chunks)
    again = run_sweep(config, store_dir=store_dir, quiet=True, chunk_steps=5)
    print(json.dumps({"chunks": first, "rerun_chunks": chunks[len(first):], "writes": writes,
                      "rerun_path": again.path}))
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_both(config, store_dir, kill_at):
    """Start processes 0 and 1; process 1 kills itself at its chunk ``kill_at`` (0: never)."""
    port, children = free_port(), []
    for pid in (0, 1):
        env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_PLATFORMS": "cpu",
               "JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "LAB_NUM_PROCESSES": "2",
               "LAB_PROCESS_ID": str(pid), "LAB_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
               "LAB_SHUTDOWN_SECONDS": "30", "LAB_COMPILE_CACHE": "off"}
        args = [sys.executable, "-c", CHILD, json.dumps(config.to_dict()), store_dir,
                str(kill_at if pid == 1 else 0)]
        children.append(subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         text=True))
    outputs = []
    for child in children:
        try:
            outputs.append(child.communicate(timeout=HANG))
        except subprocess.TimeoutExpired:
            for c in children:
                c.kill()
            pytest.fail(f"a process hung for {HANG} s: {[c.args[-1] for c in children]}")
    return [(c.returncode, out, err) for c, (out, err) in zip(children, outputs, strict=True)]


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="simulates 2 devices per process with the CPU")
def test_a_sweep_across_two_processes_survives_a_killed_process_and_equals_one_process(tmp_path):
    config = SweepConfig.make(MOONS, "sgd", {"learning_rate": [0.3, 1.0, 1e4]}, seeds=2, steps=40,
                              batch_size=16, eval_every=10, name="two-processes")
    directory = store.result_dir(config, str(tmp_path))

    (rc0, _, err0), (rc1, _, err1) = start_both(config, str(tmp_path), kill_at=4)
    assert rc1 == -signal.SIGKILL, err1
    # Process 0 either sees the broken connection at once (a one-line RuntimeError, then JAX ends it
    # at exit) or is ended by JAX when the heartbeat times out; it never finishes or hangs.
    assert rc0 != 0, err0
    assert "another process died" in err0 or "distributed service detected fatal errors" in err0, err0
    assert os.listdir(directory) == ["checkpoint.npz"]
    assert json.loads(str(store.load_npz(os.path.join(directory, "checkpoint.npz"))["meta"]))["done"] == 15

    (rc0, out0, err0), (rc1, out1, err1) = start_both(config, str(tmp_path), kill_at=0)
    assert rc0 == 0 and rc1 == 0, err0 + err1
    report = [json.loads(out.strip().splitlines()[-1]) for out in (out0, out1)]
    for r in report:
        assert r["chunks"] == [15, 20, 25, 30, 35], r  # resumed from the checkpoint at step 15
        assert r["rerun_chunks"] == [] and r["rerun_path"] == directory  # the rerun loaded the store
    assert report[0]["writes"] == ["checkpoint.npz"] * 4 + ["results.npz", "results.json"]
    assert report[1]["writes"] == []  # only process 0 writes
    assert sorted(os.listdir(directory)) == ["results.json", "results.npz"]

    two = store.load(directory)
    device = two.meta["device"]
    assert (device["count"], device["processes"], two.meta["runs_padded"]) == (4, 2, 8)
    one = run_sweep(config, store_dir=None, quiet=True, chunk_steps=5)
    assert one.diverged.sum() == 2
    np.testing.assert_array_equal(two.diverged_step, one.diverged_step)
    for name in ARRAYS:
        np.testing.assert_allclose(getattr(two, name), getattr(one, name), rtol=2e-5, atol=2e-6, err_msg=name)


@pytest.mark.parametrize("env, kwargs, message", [
    ({"LAB_NUM_PROCESSES": "two"}, {}, r"^LAB_NUM_PROCESSES: expected an integer, got 'two'$"),
    ({"LAB_PROCESS_ID": "-1"}, {}, r"^LAB_PROCESS_ID: expected an integer >= 0, got -1$"),
    ({"LAB_HEARTBEAT_SECONDS": "0"}, {}, r"^LAB_HEARTBEAT_SECONDS: expected an integer >= 1, got 0$"),
    ({}, {"num_processes": 2, "process_id": 2}, r"^process_id: 2 is not below num_processes=2$"),
    ({}, {"num_processes": 1.5}, r"^num_processes: expected an integer >= 1, got 1\.5$"),
    ({}, {"shutdown_seconds": True}, r"^shutdown_seconds: expected an integer >= 1, got True$"),
])
def test_initialize_names_a_bad_setting_before_starting_anything(env, kwargs, message, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    def not_started(*args, **kwargs):
        raise AssertionError("jax.distributed.initialize was called")

    monkeypatch.setattr(jax.distributed, "initialize", not_started)
    with pytest.raises(ValueError, match=message):
        distributed.initialize(**kwargs)
