"""How fast is a sweep of a CNN? Adam on MNIST-1D with the ``cnn1d`` model, timed against the usual ways.

The workload: the ``cnn1d`` model at its defaults (three convolutions of 32 channels, kernel 5,
stride 2, padding 1, ReLU, global mean pooling, a dense head; 10,826 params) on MNIST-1D (4000
signals of length 40), cross-entropy, Adam, mini-batches of 128, ``--runs`` learning rates
(log-spaced in [1e-4, 1e-2], one seed) x ``--steps`` steps. In one process it times:

- the lab: :func:`lab.sweep.run_sweep` (one compiled program; compile time reported apart, the run
  time measured on further calls that reuse the compiled program);
- a Python loop over a jitted ``optax.adam`` step, one run after another (batch indices drawn inside
  the jitted step, losses kept on the device, no per-step host sync: the loop at its best);
- PyTorch eager: ``torch.nn.Conv1d`` layers of the same architecture and ``torch.optim.Adam``, one
  run after another, with 1 thread or with all cores, whichever a short trial finds faster;
- the machine's own rate for the same convolutions alone: the three layers' ``conv_patches``
  (im2col, then one batched matrix product), ``vmap``-ped over the runs, forward and backward (the
  gradients of the kernels and of the inputs of layers 2 and 3) in a compiled scan with nothing
  else in it; and, for comparison, the matrix products alone on gathered patches.

The baselines are timed on ``--baseline-runs`` runs (default 4) and scaled linearly to all runs,
since each run is independent and costs the same; the output says so. Before timing, the three
implementations are checked to train the same model: equal parameter counts, and the first losses
of run 0 from the same initial params and batches agree.

FLOPs are counted analytically (:func:`train_flops_per_step`): for every convolution and the dense
head, the forward matrix product, the weight gradient (the same count) and the input gradient (the
same again; not for the first convolution, whose input is the data). Bias, ReLU, pooling,
softmax and Adam are not counted. The lab's rate is these FLOPs over its run time.

    python benchmarks/cnn.py                      # 64 runs x 500 steps (4 to 9 minutes on 2 CPU cores)
    python benchmarks/cnn.py --runs 4 --steps 20  # smoke run
    python benchmarks/cnn.py --json --out benchmarks/results/sweep_cnn_cpu.json
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import platform
import shlex
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import compile_cache
from lab.data import batch_indices
from lab.models import cnn1d_model, conv_patches, count_params
from lab.problems import Problem, data_loss, init_params, load_data
from lab.sweep import SweepConfig, clear_compile_cache, run_sweep

PROBLEM = Problem(dataset="mnist1d", model="cnn1d")
BATCH = 128
LOSS_TOLERANCE = 1e-4  # relative; the first losses of the three implementations from the same start


def architecture() -> dict:
    """The ``cnn1d`` model's settings in effect (its defaults, updated by the problem's model_kwargs)."""
    defaults = {k: p.default for k, p in inspect.signature(cnn1d_model).parameters.items()}
    return {**defaults, **dict(PROBLEM.model_kwargs)}


def conv_layers() -> list[dict]:
    """Per convolution: input length and channels, output length and channels, kernel size."""
    arch = architecture()
    length, c_in = load_data(PROBLEM).x_train.shape[1], 1
    layers = []
    for c_out in arch["channels"]:
        out = (length + 2 * arch["padding"] - arch["kernel"]) // arch["stride"] + 1
        layers.append({"length_in": length, "c_in": c_in, "length_out": out, "c_out": c_out,
                       "kernel": arch["kernel"]})
        length, c_in = out, c_out
    return layers


def train_flops_per_step(batch: int = BATCH) -> dict:
    """Matrix-product FLOPs of one run's training step, ``{"conv": ..., "head": ..., "total": ...}``.

    A convolution as im2col is ``[batch * length_out, kernel * c_in] @ [kernel * c_in, c_out]``:
    ``2 M K N`` FLOPs forward, the same for the kernel's gradient and again for the gradient of the
    patches (the input gradient), which the first layer does not need. The head is ``[batch, c] @
    [c, 10]``: forward, weight gradient and input gradient.
    """
    conv = 0
    for i, layer in enumerate(conv_layers()):
        fwd = 2 * batch * layer["length_out"] * layer["kernel"] * layer["c_in"] * layer["c_out"]
        conv += (2 if i == 0 else 3) * fwd
    head = 3 * 2 * batch * architecture()["channels"][-1] * 10
    return {"conv": conv, "head": head, "total": conv + head}


def workload(runs: int, steps: int, batch: int = BATCH) -> SweepConfig:
    """``runs`` learning rates, log-spaced in [1e-4, 1e-2], one seed; evaluated at the end only."""
    lrs = np.logspace(-4, -2, runs) if runs > 1 else np.array([1e-3])
    return SweepConfig.make(PROBLEM, "adam", {"learning_rate": lrs}, seeds=1, steps=steps, batch_size=batch,
                            eval_every=steps, name=f"cnn{runs}")


def _timed(fn):
    """``(result, wall seconds, process CPU seconds)`` of ``fn()``."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


# ----------------------------------------------------------------------------- the lab


def time_lab(config: SweepConfig, repeats: int = 1) -> dict:
    """Compile and run once, then ``repeats`` (at least 1) calls that reuse the compiled program. The
    run time is the best of those calls and of the first call less its compile time; the CPU time
    the least of the repeated calls'."""
    clear_compile_cache()
    first = run_sweep(config, store_dir=None, quiet=True)
    best, cpu = first.wall_seconds - first.compile_seconds, math.inf
    for _ in range(max(repeats, 1)):
        result, _, cpu_seconds = _timed(lambda: run_sweep(config, store_dir=None, quiet=True))
        best, cpu = min(best, result.wall_seconds), min(cpu, cpu_seconds)
    return {"seconds": best, "cpu_seconds": cpu, "compile_seconds": first.compile_seconds,
            "first_losses": np.asarray(first.train_loss[0, :3]),
            "final_test_accuracy_median": float(np.nanmedian(first.test_accuracy[:, -1])),
            "final_test_accuracy_max": float(np.nanmax(first.test_accuracy[:, -1]))}


# ----------------------------------------------------------------------------- baselines


def _run_keys(config: SweepConfig, r: int):
    seeds = config.run_seeds()
    return jax.random.split(jax.random.key(int(seeds[r])))  # k_init, k_batch: as the lab's runs


def optax_loop(config: SweepConfig):
    """``one_run(r) -> losses`` of run ``r``: a Python loop over a jitted optax.adam step."""
    data = load_data(PROBLEM)
    n, batch = data.x_train.shape[0], config.batch_size

    @jax.jit
    def step(params, opt_state, k_batch, t, lr):
        idx = batch_indices(k_batch, t, n, batch)
        x, y = data.x_train[idx], data.y_train[idx]
        loss, grads = jax.value_and_grad(lambda p: data_loss(PROBLEM, p, x, y))(params)
        updates, opt_state = optax.adam(lr).update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    lrs = config.run_hparams()["learning_rate"]

    def one_run(r, steps=config.steps):
        k_init, k_batch = _run_keys(config, r)
        params = init_params(PROBLEM, k_init)
        opt_state = optax.adam(lrs[r]).init(params)
        lr = jnp.float32(lrs[r])
        losses = []
        for t in range(steps):
            params, opt_state, loss = step(params, opt_state, k_batch, jnp.int32(t), lr)
            losses.append(loss)
        return np.asarray(jax.block_until_ready(jnp.stack(losses)))

    return one_run


def torch_model(torch, params=None):
    """``torch.nn`` layers of the ``cnn1d`` architecture, with the lab's ``params`` copied in if given
    (a kernel (k, c_in, c_out) is torch's (c_out, c_in, k); the head's (c, 10) is Linear's (10, c))."""
    arch = architecture()
    convs = [torch.nn.Conv1d(layer["c_in"], layer["c_out"], layer["kernel"], stride=arch["stride"],
                             padding=arch["padding"]) for layer in conv_layers()]
    head = torch.nn.Linear(arch["channels"][-1], 10)
    if params is not None:
        with torch.no_grad():
            for conv, p in zip(convs, params["conv"], strict=True):
                conv.weight.copy_(torch.as_tensor(np.asarray(p["w"]).transpose(2, 1, 0).copy()))
                conv.bias.copy_(torch.as_tensor(np.array(p["b"])))
            head.weight.copy_(torch.as_tensor(np.asarray(params["head"]["w"]).T.copy()))
            head.bias.copy_(torch.as_tensor(np.array(params["head"]["b"])))
    else:
        for layer in (*convs, head):
            torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
            torch.nn.init.zeros_(layer.bias)
    act = {"relu": torch.nn.ReLU}[arch["activation"]]
    layers = [m for conv in convs for m in (conv, act())]
    return torch.nn.Sequential(*layers, torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), head)


def torch_loop(config: SweepConfig):
    """``one_run(r, steps, lab_start=False) -> losses``: PyTorch eager, torch.optim.Adam. With
    ``lab_start`` the run starts from the lab's initial params and takes the lab's batches (for the
    check); otherwise it initializes itself (He, as the lab) and draws its own permutations."""
    import torch

    data = load_data(PROBLEM)
    x = torch.as_tensor(np.array(data.x_train))[:, None, :]  # (n, 1, length): channels first
    y = torch.as_tensor(np.array(data.y_train)).long()
    n, batch = x.shape[0], config.batch_size
    per_epoch = n // batch
    lrs, seeds = config.run_hparams()["learning_rate"], config.run_seeds()

    def one_run(r, steps=config.steps, lab_start=False):
        torch.manual_seed(int(seeds[r]))
        gen = torch.Generator().manual_seed(int(seeds[r]))
        if lab_start:
            k_init, k_batch = _run_keys(config, r)
            model = torch_model(torch, init_params(PROBLEM, k_init))
            order = torch.as_tensor(np.stack([np.asarray(batch_indices(k_batch, t, n, batch))
                                              for t in range(steps)]))
        else:
            model = torch_model(torch)
        opt = torch.optim.Adam(model.parameters(), lr=float(lrs[r]))
        losses = []
        for t in range(steps):
            if lab_start:
                idx = order[t]
            else:
                if t % per_epoch == 0:
                    perm = torch.randperm(n, generator=gen)
                idx = perm[(t % per_epoch) * batch:(t % per_epoch + 1) * batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return torch.stack(losses).numpy()

    return one_run, model_params_count(torch)


def model_params_count(torch) -> int:
    return sum(p.numel() for p in torch_model(torch).parameters())


def time_runs(one_run, n_runs: int, total_runs: int) -> dict:
    """Seconds for ``n_runs`` runs (after a warm-up run), scaled to ``total_runs``."""
    one_run(0, steps=2)  # compile / warm up
    _, wall, cpu = _timed(lambda: [one_run(r % total_runs) for r in range(n_runs)])
    scale = total_runs / n_runs
    return {"seconds": wall * scale, "cpu_seconds": cpu * scale, "runs_timed": n_runs}


def choose_torch_threads(one_run, steps: int = 30) -> tuple[int, dict]:
    """The faster of 1 thread and all cores for a short run (seconds per step for each)."""
    import torch

    per_step = {}
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        one_run(0, steps=3)
        _, wall, _ = _timed(lambda: one_run(0, steps=steps))
        per_step[threads] = wall / steps
    best = min(per_step, key=per_step.get)
    torch.set_num_threads(best)
    return best, per_step


# ----------------------------------------------------------------------------- the convolutions alone


def conv_rate(runs: int, batch: int = BATCH, steps: int = 20, repeats: int = 3) -> dict:
    """FLOP/s of the CNN's convolutions alone, as the lab computes them: ``{"conv", "matmul",
    "conv_one_run"}``, each ``{"flops_per_second", "cpu_seconds_per_run_step"}``.

    ``"conv"``: the three ``conv_patches`` layers chained (no bias, activation, pooling or head),
    ``vmap``-ped over ``runs`` runs, forward and backward to the kernels (so also to the inputs of
    layers 2 and 3): the im2col gathers, their transposes (pads and adds) and the batched products.
    ``"matmul"``: the same batched products alone, on patches gathered once. ``"conv_one_run"``:
    ``"conv"`` for one run, without ``vmap``. Each is a compiled scan of ``steps`` steps (its inputs
    and kernels change every step, so nothing is hoisted out of the loop), best of ``repeats``.
    """
    arch, layers = architecture(), conv_layers()
    keys = iter(jax.random.split(jax.random.key(0), 3 * len(layers) + 2))
    x = jax.random.normal(next(keys), (runs, batch, layers[0]["length_in"], 1), jnp.float32)
    ws = [0.1 * jax.random.normal(next(keys), (runs, layer["kernel"], layer["c_in"], layer["c_out"]),
                                  jnp.float32) for layer in layers]
    last = layers[-1]
    g = jax.random.normal(next(keys), (runs, batch, last["length_out"], last["c_out"]), jnp.float32)

    def convs(ws, x):  # one run: (batch, length, 1) -> (batch, length_out, c_out)
        h = x
        for w in ws:
            h = conv_patches(h, w, arch["stride"], arch["padding"])
        return h

    def conv_body(carry, _, apply=None):
        apply = apply or jax.vmap(convs)
        ws, x, g = carry
        grads = jax.grad(lambda ws: jnp.sum(apply(ws, x) * g))(ws)
        return ([w - 1e-6 * d for w, d in zip(ws, grads, strict=True)], 0.999 * x + 1e-3, g), None

    # The products alone: patches (runs, batch * length_out, kernel * c_in), gathered once.
    rows = [batch * layer["length_out"] for layer in layers]
    cols = [jax.random.normal(next(keys), (runs, m, layer["kernel"] * layer["c_in"]), jnp.float32)
            for m, layer in zip(rows, layers, strict=True)]
    douts = [jax.random.normal(next(keys), (runs, m, layer["c_out"]), jnp.float32)
             for m, layer in zip(rows, layers, strict=True)]
    mats = [w.reshape(runs, -1, w.shape[-1]) for w in ws]

    def matmul_body(carry, _):
        mats, cols, douts = carry
        new = []
        for i, (c, m, d) in enumerate(zip(cols, mats, douts, strict=True)):
            out = jnp.einsum("rmk,rkn->rmn", c, m)  # forward
            dw = jnp.einsum("rmk,rmn->rkn", c, d + 1e-6 * out)  # kernel gradient
            if i > 0:  # patch (input) gradient; the first layer's input is the data
                dc = jnp.einsum("rmn,rkn->rmk", d, m)
                dw = dw + 1e-6 * jnp.sum(dc, axis=1, keepdims=True).reshape(runs, -1, 1)
            new.append(m - 1e-9 * dw)
        return (new, cols, douts), None

    one = [a[0] for a in (x, g)]
    cases = {"conv": (conv_body, (ws, x, g), runs),
             "matmul": (matmul_body, (mats, cols, douts), runs),
             "conv_one_run": (functools.partial(conv_body, apply=convs), ([w[0] for w in ws], *one), 1)}
    out = {}
    for name, (body, carry, n_runs) in cases.items():
        run = jax.jit(lambda c, body=body: jax.lax.scan(body, c, None, length=steps)[0])
        carry = jax.block_until_ready(run(carry))
        best, cpu = math.inf, math.inf
        for _ in range(repeats):
            carry, wall, cpu_seconds = _timed(lambda run=run, carry=carry: jax.block_until_ready(run(carry)))
            best, cpu = min(best, wall), min(cpu, cpu_seconds)
        out[name] = {"flops_per_second": n_runs * steps * train_flops_per_step(batch)["conv"] / best,
                     "cpu_seconds_per_run_step": cpu / (n_runs * steps)}
    return out


# ----------------------------------------------------------------------------- all of it


def check_same_training(config: SweepConfig, lab_losses, optax_run, torch_run, steps: int = 3) -> dict:
    """The first ``steps`` losses of run 0 from the lab's initial params and batches, in each
    implementation; ``ValueError`` if they differ by more than :data:`LOSS_TOLERANCE` (relative)."""
    losses = {"lab": np.asarray(lab_losses[:steps], np.float64),
              "optax_loop": np.asarray(optax_run(0, steps=steps), np.float64)}
    if torch_run is not None:
        losses["torch"] = np.asarray(torch_run(0, steps=steps, lab_start=True), np.float64)
    worst = max(float(np.max(np.abs(v / losses["lab"] - 1))) for v in losses.values())
    if not worst <= LOSS_TOLERANCE:
        raise ValueError(f"the implementations do not train the same model: first losses {losses}")
    return {"first_losses": {k: [round(float(v), 6) for v in vs] for k, vs in losses.items()},
            "max_relative_difference": worst}


def measure_cnn(runs: int = 64, steps: int = 500, batch: int = BATCH, baseline_runs: int = 4,
                torch: bool = True, log=lambda *a: None) -> dict:
    """Time the lab's sweep, the optax loop, PyTorch eager and the convolutions alone; see the module
    docstring. Returns a JSON-ready dict of seconds, rates and ratios (``speedup_vs_*`` are baseline
    seconds over the lab's, ``conv_rate_fraction`` the lab's FLOP/s over the convolutions')."""
    for name, value in (("runs", runs), ("steps", steps), ("batch", batch), ("baseline_runs", baseline_runs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    config = workload(runs, steps, batch)
    flops = train_flops_per_step(batch)
    total_flops = runs * steps * flops["total"]

    lab_params = count_params(init_params(PROBLEM, jax.random.key(0)))
    optax_run = optax_loop(config)
    torch_run, torch_params = (None, None)
    if torch:
        try:
            torch_run, torch_params = torch_loop(config)
        except ModuleNotFoundError:
            pass
    if torch_params is not None and torch_params != lab_params:
        raise ValueError(f"torch's model has {torch_params} params, the lab's {lab_params}")

    lab = time_lab(config)
    log(f"lab: {lab['seconds']:.2f} s run ({lab['cpu_seconds']:.2f} s CPU), "
        f"{lab['compile_seconds']:.2f} s compile")
    check = check_same_training(config, lab["first_losses"], optax_run, torch_run)
    log(f"first losses agree within {check['max_relative_difference']:.1e}: {check['first_losses']}")
    n_base = min(baseline_runs, runs)
    opt = time_runs(optax_run, n_base, runs)
    log(f"optax loop: {opt['seconds']:.2f} s (timed {n_base} runs, scaled x{runs / n_base:g})")
    tor, threads, per_step = None, None, None
    if torch_run is not None:
        threads, per_step = choose_torch_threads(torch_run)
        tor = time_runs(torch_run, n_base, runs)
        log(f"torch eager ({threads} thread(s)): {tor['seconds']:.2f} s (timed {n_base} runs, scaled)")
    rates = conv_rate(runs, batch)
    gflops = {k: v["flops_per_second"] / 1e9 for k, v in rates.items()}
    lab_rate = total_flops / lab["seconds"]
    lab_cpu = lab["cpu_seconds"] / (runs * steps)  # per run-step
    log(f"lab {lab_rate / 1e9:.1f} GFLOP/s; convolutions alone {gflops['conv']:.1f} GFLOP/s, their matrix "
        f"products alone {gflops['matmul']:.1f}, one run's convolutions alone {gflops['conv_one_run']:.1f}")

    try:
        import torch as torch_module

        torch_version = torch_module.__version__
    except ModuleNotFoundError:
        torch_version = None
    r4 = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
    return {
        "runs": runs, "steps": steps, "batch": batch,
        "model": {"name": "cnn1d", **{k: v for k, v in architecture().items() if k != "init"},
                  "params": lab_params, "torch_params": torch_params, "conv_layers": conv_layers()},
        "flops_per_run_step": flops,
        "lab_seconds": r4(lab["seconds"]),
        "lab_cpu_seconds": r4(lab["cpu_seconds"]),
        "lab_compile_seconds": r4(lab["compile_seconds"]),
        "optax_loop_seconds": r4(opt["seconds"]),
        "optax_loop_cpu_seconds": r4(opt["cpu_seconds"]),
        "torch_seconds": r4(tor and tor["seconds"]),
        "torch_cpu_seconds": r4(tor and tor["cpu_seconds"]),
        "torch_threads": threads,
        "torch_seconds_per_step_by_threads": per_step and {str(k): r4(v) for k, v in per_step.items()},
        "speedup_vs_optax_loop": round(opt["seconds"] / lab["seconds"], 2),
        "speedup_vs_torch": None if tor is None else round(tor["seconds"] / lab["seconds"], 2),
        "lab_gflops": round(lab_rate / 1e9, 4),
        "conv_gflops": round(gflops["conv"], 4),
        "conv_matmul_gflops": round(gflops["matmul"], 4),
        "conv_one_run_gflops": round(gflops["conv_one_run"], 4),
        "conv_rate_fraction": round(lab_rate / rates["conv"]["flops_per_second"], 4),
        "conv_matmul_rate_fraction": round(lab_rate / rates["matmul"]["flops_per_second"], 4),
        "cpu_microseconds_per_run_step": {
            "lab": round(1e6 * lab_cpu, 1), "optax_loop": round(1e6 * opt["cpu_seconds"] / (runs * steps), 1),
            "torch": tor and round(1e6 * tor["cpu_seconds"] / (runs * steps), 1),
            **{k: round(1e6 * v["cpu_seconds_per_run_step"], 1) for k, v in rates.items()}},
        "conv_rate_fraction_cpu": round(rates["conv"]["cpu_seconds_per_run_step"] / lab_cpu, 4),
        "optax_loop_gflops": round(total_flops / opt["seconds"] / 1e9, 4),
        "torch_gflops": None if tor is None else round(total_flops / tor["seconds"] / 1e9, 4),
        "baseline_runs_timed": n_base,
        "same_training": check,
        "final_test_accuracy": {"median": r4(lab["final_test_accuracy_median"]),
                                "max": r4(lab["final_test_accuracy_max"])},
        "device": device_description(),
        "versions": {"jax": jax.__version__, "optax": optax.__version__, "torch": torch_version,
                     "numpy": np.__version__, "python": platform.python_version()},
    }


def device_description() -> str:
    d = jax.devices()[0]
    if d.platform == "cpu":
        return f"cpu ({os.cpu_count()} cores, {platform.machine()}, {platform.processor() or 'unknown'}), " \
               f"{jax.device_count()} device(s)"
    return f"{d.device_kind} x{jax.device_count()}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=64, help="learning rates, one run each (default 64)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--baseline-runs", type=int, default=4, help="runs timed per baseline, then scaled")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--note", default="", help="a note saved with the results (e.g. the machine's load)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", help="also save the JSON object to this file")
    args = parser.parse_args(argv)
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    compile_cache.configure("off")  # the compile time below is a cold one
    log(f"device: {device_description()}; jax {jax.__version__}")
    log(f"workload: {args.runs} runs x {args.steps} steps (Adam, MNIST-1D cnn1d, batch {args.batch})")
    load_before = os.getloadavg()[0]
    try:
        report = measure_cnn(args.runs, args.steps, args.batch, args.baseline_runs, not args.no_torch, log)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    # Other processes' load on the machine (1-minute average) before and after: timings on a busy
    # machine are slower, and the lab's most, since its threads wait for each other.
    report["load_average"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2),
                              "cores": os.cpu_count()}
    report["command"] = shlex.join(["python", "benchmarks/cnn.py", *(sys.argv[1:] if argv is None else argv)])
    report["notes"] = (
        f"baselines timed on {report['baseline_runs_timed']} runs and scaled linearly to {args.runs}; "
        "lab_seconds: the best of the first call less its compile time and a second call reusing "
        "the compiled program, store_dir=None, evaluated at the start and the end only; "
        "*_cpu_seconds: CPU time of the process (all threads) over the same "
        "interval; FLOPs: matrix products of training only (flops_per_run_step, see train_flops_per_step); "
        "conv_rate_fraction = lab FLOP/s / FLOP/s of the three conv_patches layers alone, vmapped over "
        "the runs, forward and backward (best of 3); conv_matmul_rate_fraction: the same against their "
        "matrix products alone." + (f" {args.note}" if args.note else ""))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.json:
        print(json.dumps(report))
        return 0
    lab = report["lab_seconds"]
    print()
    print(f"CNN sweep benchmark on {report['device']}: {args.runs} runs x {args.steps} steps, "
          f"batch {args.batch}")
    print(f"{'':36}{'seconds':>10}{'lab is x faster':>18}")
    print(f"{'lab (one compiled program)':36}{lab:>10.2f}")
    print(f"{'  its compile time':36}{report['lab_compile_seconds']:>10.2f}")
    print(f"{'optax step in a Python loop':36}{report['optax_loop_seconds']:>10.2f}"
          f"{report['speedup_vs_optax_loop']:>17.1f}x")
    if report["torch_seconds"] is not None:
        print(f"{'PyTorch eager, nn.Conv1d + Adam':36}{report['torch_seconds']:>10.2f}"
              f"{report['speedup_vs_torch']:>17.1f}x")
    print(f"{'convolutions-alone rate reached':36}{100 * report['conv_rate_fraction']:>9.0f}%  "
          f"({report['lab_gflops']:.1f} of {report['conv_gflops']:.1f} GFLOP/s; "
          f"their products alone {report['conv_matmul_gflops']:.1f})")
    print(f"(baselines timed on {report['baseline_runs_timed']} runs and scaled to {args.runs})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
