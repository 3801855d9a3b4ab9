"""How fast is a sweep? The reference workload, timed against the ways people usually run it.

The workload: Adam on the digits MLP (64-128-10, ReLU, He init), mini-batches of 64, 500 steps,
32 learning rates x 4 seeds = 128 runs. In one process it times:

- the lab: :func:`lab.sweep.run_sweep` (one compiled program; compile time reported apart, and the
  run time measured on a second call that reuses the compiled program);
- a Python loop over a jitted optax step, one run after another (batch indices drawn inside the
  jitted step, losses kept on the device, no per-step host sync: the loop at its best);
- PyTorch eager with ``torch.optim.Adam``, one run after another (if torch is installed);
- the machine's own rate for the sweep's batched matrix products (forward + backward of every run,
  ``[runs, 64, 64] @ [runs, 64, 128]`` and friends) in a compiled scan with nothing else in it.

The baselines are timed on ``--baseline-runs`` runs (default 8) and scaled linearly to all runs,
since each run is independent and costs the same; the output says so. It also times the compile of
the program from JAX's persistent compile cache (what a second process pays), and the sweep with its
results store, checkpointed every 30 s and after every chunk. Then the lab alone is timed for 1, 4,
16, ..., 4096 runs: the throughput curve, in run-steps per second; counts whose program exceeds the
memory budget (``--memory-budget``, default :func:`lab.memory.budget_bytes`) run in blocks, and
each point records its blocks, XLA's count of their program against the budget and the process's
peak resident memory. The table is printed last.

    python benchmarks/sweep.py                         # full benchmark (about 15 minutes on 2 CPU cores)
    python benchmarks/sweep.py --quick                 # smoke run: 50 steps, 3 scaling points
    python benchmarks/sweep.py --json --out benchmarks/results/sweep_cpu.json
    python benchmarks/sweep.py --json --out benchmarks/results/sweep_gpu.json \
        --scaling 1,4,16,64,256,1024,4096,16384,65536     # on a GPU
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import compile_cache, distributed, memory
from lab.data import batch_indices
from lab.problems import Problem, data_loss, init_params, load_data
from lab.sweep import SweepConfig, clear_compile_cache, program, run_sweep

PROBLEM = Problem(dataset="digits", hidden=(128,), activation="relu", init="he_normal", loss="cross_entropy")
SIZES = (64, 128, 10)
BATCH = 64


def workload(runs: int, steps: int, seeds: int = 4) -> SweepConfig:
    """``runs // seeds`` learning rates (log-spaced in [1e-4, 1e-1]) x ``seeds`` seeds."""
    seeds = min(seeds, runs)
    lrs = np.logspace(-4, -1, runs // seeds)
    return SweepConfig.make(PROBLEM, "adam", {"learning_rate": lrs}, seeds=seeds, steps=steps,
                            batch_size=BATCH, eval_every=steps, name=f"bench{runs}")


def train_flops_per_step() -> float:
    """Matrix-product FLOPs of one run's step: forward 2*B*(64*128 + 128*10), weight gradients the
    same again, and the input gradient of the second layer 2*B*128*10 (the first layer's input
    gradient is not needed)."""
    fwd = 2 * BATCH * (SIZES[0] * SIZES[1] + SIZES[1] * SIZES[2])
    return 2 * fwd + 2 * BATCH * SIZES[1] * SIZES[2]


# ----------------------------------------------------------------------------- the lab


def reset_peak_rss() -> None:
    """Start a new high-water mark of the process's resident memory (Linux; elsewhere nothing)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_rss_bytes() -> int | None:
    """The process's peak resident memory since :func:`reset_peak_rss` (Linux), else None."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    except (OSError, StopIteration, ValueError):
        return None


def block_program_bytes(config: SweepConfig, meta: dict) -> tuple[int | None, int | None]:
    """Bytes per device of the program that ran a sweep's blocks, and of the one for all its runs
    at once, by XLA's count (:func:`lab.memory.program_bytes`): what the memory budget bounds. Both
    programs are in the in-process compile cache after the sweep, so nothing compiles here."""
    key, devices = program.program_key(config), tuple(distributed.mesh().devices.flat)
    x64 = bool(jax.config.read("jax_enable_x64"))
    n_dev = len(devices)

    def need(padded):
        compiled = program.compile_program(key, meta["chunk_steps"], padded, devices, x64)
        return memory.program_bytes(*compiled[:2])

    block = need(meta["runs_padded"])
    return block, block if meta["blocks"] == 1 else need(math.ceil(config.runs / n_dev) * n_dev)


def time_lab(runs: int, steps: int, repeats: int = 2, budget: int | None = None) -> dict:
    """Compile and run once, then the best of ``repeats`` calls that reuse the compiled program
    (``repeats=0``: the first call's time less its compile time), and two calls that save results
    and checkpoints: every 30 s, and after every chunk. Also the blocks the runs were split into,
    the memory of their program against the budget and the process's peak resident memory."""
    config = workload(runs, steps)
    clear_compile_cache()  # so that every point reports its compile time
    reset_peak_rss()
    first = run_sweep(config, store_dir=None, quiet=True, memory_budget=budget)
    peak = peak_rss_bytes()
    seconds = [run_sweep(config, store_dir=None, quiet=True, memory_budget=budget).wall_seconds
               for _ in range(repeats)]
    program_bytes, unsplit_bytes = block_program_bytes(config, first.meta)
    out = {"runs": config.runs, "seconds": min(seconds, default=first.wall_seconds - first.compile_seconds),
           "compile_seconds": first.compile_seconds, "blocks": first.meta["blocks"],
           "block_runs": first.meta["block_runs"], "program_bytes": program_bytes,
           "unsplit_program_bytes": unsplit_bytes, "peak_rss_bytes": peak,
           "final_test_accuracy_median": float(np.nanmedian(first.test_accuracy[:, -1]))}
    if repeats:
        for key, interval in (("with_store_seconds", 30), ("checkpoint_every_chunk_seconds", 0)):
            with tempfile.TemporaryDirectory() as tmp:
                out[key] = run_sweep(config, store_dir=tmp, quiet=True, checkpoint_seconds=interval,
                                     memory_budget=budget).wall_seconds
    return out


def time_cached_compile(runs: int, steps: int) -> tuple[float, float]:
    """Seconds to compile the sweep's program with an empty persistent compile cache, then again
    with every in-memory cache cleared, so that it is loaded from the persistent one (as a new
    process would). The cache lives in a temporary directory; it is turned off afterwards."""
    config = workload(runs, steps)
    key, chunk = program.program_key(config), program.default_chunk_steps(steps)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        compile_cache.configure(tmp)
        for _ in range(2):
            clear_compile_cache()
            jax.clear_caches()
            t0 = time.perf_counter()
            program.compile_program(key, chunk, runs, tuple(jax.devices()), False)
            times.append(time.perf_counter() - t0)
        compile_cache.configure("off")
    return times[0], times[1]


# ----------------------------------------------------------------------------- baselines


def time_optax_loop(config: SweepConfig, n_runs: int) -> float:
    """Seconds for ``n_runs`` runs of a Python loop over a jitted optax step (compile excluded)."""
    data = load_data(PROBLEM)
    n = data.x_train.shape[0]

    @jax.jit
    def step(params, opt_state, k_batch, t, lr):
        idx = batch_indices(k_batch, t, n, BATCH)
        x, y = data.x_train[idx], data.y_train[idx]
        loss, grads = jax.value_and_grad(lambda p: data_loss(PROBLEM, p, x, y))(params)
        updates, opt_state = optax.adam(lr).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    lrs, seeds = config.run_hparams()["learning_rate"], config.run_seeds()

    def one_run(r):
        k_init, k_batch = jax.random.split(jax.random.key(int(seeds[r])))
        params = init_params(PROBLEM, k_init)
        opt_state = optax.adam(lrs[r]).init(params)
        lr = jnp.float32(lrs[r])
        losses = []
        for t in range(config.steps):
            params, opt_state, loss = step(params, opt_state, k_batch, jnp.int32(t), lr)
            losses.append(loss)
        return jax.block_until_ready((params, jnp.stack(losses)))

    one_run(0)  # compile
    t0 = time.perf_counter()
    for r in range(n_runs):
        one_run(r % config.runs)
    return time.perf_counter() - t0


def time_torch(config: SweepConfig, n_runs: int) -> float | None:
    """Seconds for ``n_runs`` runs of PyTorch eager with torch.optim.Adam, or None without torch."""
    try:
        import torch
    except ModuleNotFoundError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        # One thread: for a model this small it is torch's fastest setting, and with two threads
        # on a busy 2-core machine OpenMP's spinning made steps up to 30x slower.
        torch.set_num_threads(1)
    data = load_data(PROBLEM)
    x = torch.as_tensor(np.array(data.x_train), device=device)
    y = torch.as_tensor(np.array(data.y_train), device=device).long()
    n = x.shape[0]
    per_epoch = n // BATCH
    lrs, seeds = config.run_hparams()["learning_rate"], config.run_seeds()

    def one_run(r):
        gen = torch.Generator(device="cpu").manual_seed(int(seeds[r]))
        torch.manual_seed(int(seeds[r]))
        model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10))
        for layer in (model[0], model[2]):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
        model.to(device)
        opt = torch.optim.Adam(model.parameters(), lr=float(lrs[r]))
        losses = []
        for t in range(config.steps):
            if t % per_epoch == 0:
                perm = torch.randperm(n, generator=gen).to(device)
            idx = perm[(t % per_epoch) * BATCH:(t % per_epoch + 1) * BATCH]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        torch.stack(losses).cpu()

    one_run(0)  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for r in range(n_runs):
        one_run(r % config.runs)
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def matmul_body(carry, _):
    """One step of the sweep's batched matrix products alone: the forward and backward products of
    every run, ``x`` (runs, 64, 64), ``w1`` (runs, 64, 128), ``w2`` (runs, 128, 10)."""
    x, w1, w2 = carry
    h = jnp.einsum("rbi,rio->rbo", x, w1)  # forward
    o = jnp.einsum("rbi,rio->rbo", h, w2)
    dw2 = jnp.einsum("rbi,rbo->rio", h, o)  # backward: weight gradients and dh
    dh = jnp.einsum("rbo,rio->rbi", o, w2)
    dw1 = jnp.einsum("rbi,rbo->rio", x, dh)
    return (x, w1 - 1e-6 * dw1, w2 - 1e-6 * dw2), None  # a dependence, so nothing is hoisted


def matmul_rate(runs: int, steps: int = 100) -> float:
    """FLOP/s of the sweep's batched matrix products alone (forward and backward of every run)."""
    key = jax.random.key(0)
    kx, k1, k2 = jax.random.split(key, 3)
    x = jax.random.normal(kx, (runs, BATCH, SIZES[0]), jnp.float32)
    w1 = 0.1 * jax.random.normal(k1, (runs, SIZES[0], SIZES[1]), jnp.float32)
    w2 = 0.1 * jax.random.normal(k2, (runs, SIZES[1], SIZES[2]), jnp.float32)
    run = jax.jit(lambda c: jax.lax.scan(matmul_body, c, None, length=steps)[0])
    carry = jax.block_until_ready(run((x, w1, w2)))
    best = math.inf
    for _ in range(3):
        t0 = time.perf_counter()
        carry = jax.block_until_ready(run(carry))
        best = min(best, time.perf_counter() - t0)
    return runs * steps * train_flops_per_step() / best


# ----------------------------------------------------------------------------- main


def device_description() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu ({os.cpu_count()} cores, {platform.machine()}), {jax.device_count()} device(s)"
    return f"{d.device_kind} x{jax.device_count()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=128, help="runs (default 128 = 32 lrs x 4 seeds)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--baseline-runs", type=int, default=8, help="runs timed per baseline, then scaled")
    parser.add_argument("--scaling", default="1,4,16,64,256,1024,4096", help="run counts to time alone")
    parser.add_argument("--memory-budget", default=None,
                        help="bytes per device for the scaling points (e.g. 4G; default: lab's budget)")
    parser.add_argument("--quick", action="store_true", help="50 steps, scaling 1,16,128 (a smoke run)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", help="also save the JSON object to this file")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.scaling = 50, "1,16,128"
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    compile_cache.configure("off")  # every compile time below is a cold one, unless said otherwise
    budget = memory.budget_bytes(args.memory_budget)

    config = workload(args.runs, args.steps)
    flops = config.runs * config.steps * train_flops_per_step()
    log(f"device: {device_description()}; jax {jax.__version__}")
    log(f"workload: {config.runs} runs x {config.steps} steps (Adam, digits 64-128-10, batch {BATCH})")

    lab = time_lab(config.runs, config.steps)
    log(f"lab: {lab['seconds']:.2f} s run, {lab['compile_seconds']:.2f} s compile, "
        f"{lab['with_store_seconds']:.2f} s with results store (checkpoint every 30 s), "
        f"{lab['checkpoint_every_chunk_seconds']:.2f} s with a checkpoint after every chunk")
    cold_compile, cached_compile = time_cached_compile(config.runs, config.steps)
    log(f"compile of the sweep's program: {cold_compile:.2f} s into an empty persistent cache, "
        f"{cached_compile:.2f} s from it")
    n_base = min(args.baseline_runs, config.runs)
    optax_seconds = time_optax_loop(config, n_base) * config.runs / n_base
    log(f"optax loop: {optax_seconds:.2f} s (timed {n_base} runs, scaled x{config.runs / n_base:g})")
    torch_seconds = None if args.no_torch else time_torch(config, n_base)
    if torch_seconds is not None:
        torch_seconds *= config.runs / n_base
        log(f"torch eager: {torch_seconds:.2f} s (timed {n_base} runs, scaled)")
    rate = matmul_rate(config.runs)
    lab_rate = flops / lab["seconds"]
    log(f"matmul-only rate {rate / 1e9:.1f} GFLOP/s; lab {lab_rate / 1e9:.1f} GFLOP/s")

    scaling = []
    for runs in (int(r) for r in args.scaling.split(",")):
        point = time_lab(runs, config.steps, repeats=0, budget=budget)
        throughput = point["runs"] * config.steps / point["seconds"]
        fraction = None if point["program_bytes"] is None else round(point["program_bytes"] / budget, 4)
        scaling.append({"runs": point["runs"], "seconds": round(point["seconds"], 4),
                        "compile_seconds": round(point["compile_seconds"], 4),
                        "run_steps_per_second": round(throughput, 1), "blocks": point["blocks"],
                        "block_runs": point["block_runs"], "program_bytes": point["program_bytes"],
                        "unsplit_program_bytes": point["unsplit_program_bytes"],
                        "program_budget_fraction": fraction, "peak_rss_bytes": point["peak_rss_bytes"]})
        memory_text = "" if fraction is None else f"  program {fraction:.0%} of the budget"
        log(f"  scaling: {point['runs']:5d} runs  {point['seconds']:8.3f} s  {throughput:10.0f} run-steps/s  "
            f"compile {point['compile_seconds']:.2f} s  blocks {point['blocks']} of {point['block_runs']}"
            f"{memory_text}")

    try:
        import torch

        torch_version = torch.__version__
    except ModuleNotFoundError:
        torch_version = None
    report = {
        "runs": config.runs,
        "steps": config.steps,
        "lab_seconds": round(lab["seconds"], 4),
        "lab_compile_seconds": round(lab["compile_seconds"], 4),
        "lab_with_store_seconds": round(lab["with_store_seconds"], 4),
        "lab_checkpoint_every_chunk_seconds": round(lab["checkpoint_every_chunk_seconds"], 4),
        "lab_cached_compile_seconds": round(cached_compile, 4),
        "lab_cold_compile_seconds": round(cold_compile, 4),
        "memory_budget_bytes": budget,
        "optax_loop_seconds": round(optax_seconds, 4),
        "torch_seconds": None if torch_seconds is None else round(torch_seconds, 4),
        "matmul_rate_fraction": round(lab_rate / rate, 4),
        "speedup_vs_optax_loop": round(optax_seconds / lab["seconds"], 2),
        "speedup_vs_torch": None if torch_seconds is None else round(torch_seconds / lab["seconds"], 2),
        "lab_gflops": round(lab_rate / 1e9, 2),
        "matmul_gflops": round(rate / 1e9, 2),
        "baseline_runs_timed": n_base,
        "scaling": scaling,
        "device": device_description(),
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "torch": torch_version,
                     "python": platform.python_version()},
        "command": "python benchmarks/sweep.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "notes": f"baselines timed on {n_base} runs and scaled linearly to {config.runs}; lab_seconds: best "
                 "of 2 calls reusing the compiled program, store_dir=None; scaling seconds: first call less "
                 "its compile time, run_steps_per_second = runs x steps / seconds, blocks of block_runs "
                 "runs within memory_budget_bytes per device: program_bytes is XLA's count for the program "
                 "that ran the blocks (unsplit_program_bytes: for all runs at once), peak_rss_bytes the "
                 "process's peak resident memory during the first call, compile included; "
                 "lab_cached_compile_seconds: the program "
                 "loaded from JAX's persistent compile cache with in-memory caches cleared; "
                 "matmul_rate_fraction = lab FLOP/s (matrix-product FLOPs of training "
                 "only) / FLOP/s of the same batched products alone (best of 3)",
    }
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.json:
        print(json.dumps(report))
        return 0
    print()
    print(f"Sweep benchmark on {report['device']}: {config.runs} runs x {config.steps} steps")
    print(f"{'':34}{'seconds':>10}{'lab is x faster':>18}")
    print(f"{'lab (one compiled program)':34}{lab['seconds']:>10.2f}{'':>18}")
    print(f"{'  its compile time':34}{lab['compile_seconds']:>10.2f}{'':>18}")
    print(f"{'  its compile time, cached':34}{cached_compile:>10.2f}{'':>18}")
    print(f"{'  with store, checkpoint per 30 s':34}{lab['with_store_seconds']:>10.2f}{'':>18}")
    print(f"{'  with a checkpoint per chunk':34}{lab['checkpoint_every_chunk_seconds']:>10.2f}{'':>18}")
    print(f"{'optax step in a Python loop':34}{optax_seconds:>10.2f}{optax_seconds / lab['seconds']:>17.1f}x")
    if torch_seconds is not None:
        speedup = torch_seconds / lab["seconds"]
        print(f"{'PyTorch eager, torch.optim.Adam':34}{torch_seconds:>10.2f}{speedup:>17.1f}x")
    else:
        print(f"{'PyTorch eager':34}{'n/a (not installed or --no-torch)':>36}")
    print(f"{'matmul rate reached':34}{100 * lab_rate / rate:>9.0f}%  "
          f"({lab_rate / 1e9:.1f} of {rate / 1e9:.1f} GFLOP/s)")
    print(f"(baselines timed on {n_base} runs and scaled to {config.runs})")
    print()
    print(f"{'runs':>6}{'run s':>10}{'compile s':>11}{'ms per run':>12}{'run-steps/s':>13}{'blocks':>8}"
          f"{'program MB':>12}{'of budget':>11}{'peak RSS MB':>13}")
    def mb(b):
        return "n/a" if b is None else f"{b / 2**20:.0f}"

    for point in scaling:
        fraction = point["program_budget_fraction"]
        print(f"{point['runs']:>6}{point['seconds']:>10.3f}{point['compile_seconds']:>11.2f}"
              f"{1000 * point['seconds'] / point['runs']:>12.2f}{point['run_steps_per_second']:>13.0f}"
              f"{point['blocks']:>8}{mb(point['program_bytes']):>12}"
              f"{'n/a' if fraction is None else f'{fraction:.0%}':>11}{mb(point['peak_rss_bytes']):>13}")
    print(f"(memory budget {budget / 2**20:.0f} MiB per device)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
