"""Where the time of a sweep step goes: the reference workload's compiled step, timed with parts removed.

The sweep step of ``benchmarks/sweep.py``'s workload (Adam, digits 64-128-10, batch 64, vmapped over
runs and scanned over steps in chunks, as in :mod:`lab.sweep.program`) is rebuilt here from the same
pieces with switches (:class:`Parts`), and each variant is compiled and timed on the same shapes:

- ``gather``: the batch drawn from the seed's epoch permutations (one sort per seed and epoch per
  chunk, then a row gather per run and step); off: every run reads a fixed batch of its own;
- ``loss``: ``cross_entropy`` (log-softmax and the label's entry), ``label`` (the label's entry of
  the raw logits: no softmax), ``square`` (half the mean square of the logits: neither);
- ``adam``: the catalogue's Adam; off: its plain SGD (``params - lr * grads``);
- ``divergence``: the finiteness check of the objective and new params and the select that freezes
  a diverged run (``tree_where``); off: the new params are taken as they are;
- ``evaluation``: the whole-data-set evaluation at the end of the sweep (one ``lax.cond`` per
  segment); off: none.

Every variant keeps the matrix products of the forward and backward pass, and each keeps a
dependence from step to step, so nothing is hoisted out of the scan. A part's cost is the full
step's time less the time without it; ``lab`` is the engine's own compiled program (which ``full``
must match), ``matmul`` the batched products alone (``benchmarks/sweep.py``'s matmul rate). The
variants run round-robin, ``--repeats`` times each, and the minimum counts, so that a load that
comes and goes affects them alike. ``--try`` adds the candidate changes measured for the engine.

    python benchmarks/profile_step.py                      # 128 runs x 500 steps, 5 repeats
    python benchmarks/profile_step.py --runs 32 --steps 100 --repeats 2   # a smoke run
    python benchmarks/profile_step.py --json --out profile.json
    python benchmarks/profile_step.py --only "evaluation;bare"  # some variants (and lab, full, matmul)
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab import compile_cache
from lab.activations import log_softmax
from lab.losses import cross_entropy
from lab.optim import catalogue
from lab.problems import init_params, load_data, metrics, predict
from lab.sweep import program

_here = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_sweep", os.path.join(_here, "sweep.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


@dataclass(frozen=True)
class Parts:
    """Which parts of the step a variant keeps (the defaults: all of them, as the engine's step)."""

    gather: bool = True
    loss: str = "cross_entropy"  # or "label" (no softmax), "square" (neither softmax nor label),
    # "one_hot" (cross_entropy with the label's entry picked by a one-hot product: no scatter in its gradient)
    adam: bool = True
    divergence: bool = True
    evaluation: bool = True
    # Candidate changes (off in the engine's step):
    finite: str = "isfinite"  # how new params are checked: see all_finite; "update_norm": isfinite of the
    # updates' global norm instead (not quite the same: params + updates may still overflow)
    slice_first: bool = False  # slice the step's batch of each seed's permutation, then pick the run's seed
    seed_major: bool = False  # runs of one seed share their batch: vmap over seeds, then runs (x unbatched)


FULL = Parts()
# Each part's cost: the full step less the step without it.
REMOVED = {
    "batch gather": Parts(gather=False),
    "softmax": Parts(loss="label"),
    "softmax + label pick": Parts(loss="square"),
    "Adam update (beyond SGD)": Parts(adam=False),
    "divergence check + tree_where": Parts(divergence=False),
    "evaluation": Parts(evaluation=False),
}
BARE = Parts(gather=False, loss="square", adam=False, divergence=False, evaluation=False)
TRIED = {
    "finiteness by sum(leaf * 0) (same answer)": Parts(finite="sum_zero"),
    "finiteness of the updates' norm": Parts(finite="update_norm"),
    "batch sliced per seed, then picked per run": Parts(slice_first=True),
    "seed-major: a batch per seed, runs of a seed in one product": Parts(seed_major=True),
    "label picked by a one-hot product (no gather/scatter)": Parts(loss="one_hot"),
    "both changes that keep the answer (sum(leaf * 0), batch sliced first)": Parts(finite="sum_zero",
                                                                                  slice_first=True),
    "sum(leaf * 0) + batch sliced first + one-hot label": Parts(finite="sum_zero", slice_first=True,
                                                                loss="one_hot"),
}


def all_finite(tree, how: str = "isfinite") -> jax.Array:
    """Whether every entry of ``tree`` is finite: ``all(isfinite(leaf))`` for every leaf (the engine's
    check), or ``"sum_zero"``: ``isfinite(sum(leaf * 0))``, the same answer (``0 * x`` is 0 for a
    finite ``x`` and NaN for inf or NaN, and a sum propagates NaN) from one float reduction per leaf.
    (A max does not do: XLA's CPU reductions can drop a NaN from ``max``.)"""
    if how == "sum_zero":
        leaves = [jnp.isfinite(jnp.sum(x * 0)) for x in jax.tree.leaves(tree)]
    else:
        leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves))


def make_chunk(parts: Parts, runs: int, seeds: int, steps: int, chunk_steps: int):
    """The compiled ``chunk(state, start, lr, run_seeds, batches) -> (state, losses, evals)`` of a
    variant, its ``init(lr, run_seeds) -> state``, and the chunk length; the shapes and the scan and
    vmap structure of :func:`lab.sweep.program.build_program` for the reference workload."""
    problem = bench.PROBLEM
    n, batch = load_data(problem).x_train.shape[0], bench.BATCH
    chunk_steps, segment_steps = program.chunk_layout(chunk_steps, steps, steps)
    segments = chunk_steps // segment_steps
    steps_per_epoch = n // batch
    epochs_per_chunk = (chunk_steps - 1) // steps_per_epoch + 2

    def optimizer(lr):  # the catalogue's, as the engine builds them
        return catalogue.get("adam" if parts.adam else "sgd").factory(learning_rate=lr)

    def loss_fn(params, x, y):
        logits = predict(problem, params, x)  # (batch, 10)
        if parts.loss == "cross_entropy":
            return cross_entropy(logits, y)
        if parts.loss == "one_hot":  # cross_entropy, the label's entry picked by a product, not a gather
            logp = log_softmax(logits)
            return -jnp.mean(jnp.sum(logp * jax.nn.one_hot(y, logp.shape[1], dtype=logp.dtype), axis=1))
        if parts.loss == "label":
            return -jnp.mean(jnp.take_along_axis(logits, y[:, None], axis=1))
        return 0.5 * jnp.mean(logits * logits)

    def evaluate(params, data):
        train_loss, _ = metrics(problem, params, data.x_train, data.y_train)
        test_loss, test_acc = metrics(problem, params, data.x_test, data.y_test)
        return jnp.stack([train_loss, test_loss, test_acc])

    def init_run(lr, seed, data):
        params = init_params(problem, jax.random.split(jax.random.key(seed))[0])
        state = program.RunState(params, optimizer(lr).init(params), jnp.int32(-1))
        return state, (evaluate(params, data) if parts.evaluation else jnp.zeros(3, jnp.float32))

    def epoch_perms(seed, first_epoch):
        k_batch = jax.random.split(jax.random.key(seed))[1]
        epochs = first_epoch + jnp.arange(epochs_per_chunk, dtype=jnp.int32)
        return jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(k_batch, e), n))(epochs)

    def batch_of(perms, seed, t, first_epoch, fixed, data):
        if not parts.gather:
            return fixed
        if parts.slice_first:  # perms is (seeds, batch): this step's indices of every seed
            idx = perms[seed]
            return data.x_train[idx], data.y_train[idx]
        perm = perms[seed, t // steps_per_epoch - first_epoch]
        idx = jax.lax.dynamic_slice(perm, ((t % steps_per_epoch) * batch,), (batch,))
        return data.x_train[idx], data.y_train[idx]

    def update(state, x, y, t, lr):
        params, opt_state, diverged_step = state
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, new_opt_state = optimizer(lr).update(grads, opt_state, params)
        new_params = optax.apply_updates(params, updates)
        if not parts.divergence:
            return program.RunState(new_params, new_opt_state, diverged_step), loss
        active = (t < steps) & (diverged_step < 0)
        if parts.finite == "update_norm":
            finite = jnp.isfinite(loss) & jnp.isfinite(optax.global_norm(updates))
        else:
            finite = jnp.isfinite(loss) & all_finite(new_params, parts.finite)
        ok = active & finite
        params = jax.tree.map(lambda a, b: jnp.where(ok, a, b), new_params, params)
        diverged_step = jnp.where(active & ~finite, t, diverged_step)
        return program.RunState(params, new_opt_state, diverged_step), jnp.where(active, loss, jnp.nan)

    def step_run(state, perms, seed, t, first_epoch, lr, fixed, data):
        x, y = batch_of(perms, seed, t, first_epoch, fixed, data)
        return update(state, x, y, t, lr)

    def chunk(state, start, lr, run_seeds, fixed, data):
        first_epoch = start // steps_per_epoch
        perms = jax.vmap(epoch_perms, in_axes=(0, None))(jnp.arange(seeds, dtype=jnp.int32), first_epoch) \
            if parts.gather else None

        def step(state, t):
            if parts.slice_first and parts.gather:  # (seeds, epochs, n) -> (seeds, batch)
                epoch = t // steps_per_epoch - first_epoch
                step_perms = jax.lax.dynamic_slice_in_dim(perms, epoch, 1, axis=1)[:, 0]
                offset = (t % steps_per_epoch) * batch
                step_perms = jax.lax.dynamic_slice_in_dim(step_perms, offset, batch, axis=1)
            else:
                step_perms = perms
            if not parts.seed_major:
                return jax.vmap(step_run, in_axes=(0, None, 0, None, None, 0, 0, None))(
                    state, step_perms, run_seeds, t, first_epoch, lr, fixed, data)
            # Runs are seed-minor (grid point, seed): as (points, seeds), the batch depends on the seed
            # axis only, so the inner vmap over grid points sees it unbatched and its products are
            # (batch x d_in) @ (d_in x points * d_out) per seed.
            split = jax.tree.map(lambda a: a.reshape(runs // seeds, seeds, *a.shape[1:]), (state, lr))
            batches = jax.vmap(lambda s, f: batch_of(step_perms, s, t, first_epoch, f, data))(
                jnp.arange(seeds, dtype=jnp.int32), jax.tree.map(lambda a: a[:seeds], fixed))
            inner = jax.vmap(update, in_axes=(0, None, None, None, 0))  # over grid points
            state, loss = jax.vmap(inner, in_axes=(1, 0, 0, None, 1), out_axes=1)(
                split[0], *batches, t, split[1])
            return jax.tree.map(lambda a: a.reshape(runs, *a.shape[2:]), (state, loss))

        def segment(state, seg_start):
            state, losses = jax.lax.scan(step, state, seg_start + jnp.arange(segment_steps, dtype=jnp.int32))
            end = seg_start + segment_steps
            if not parts.evaluation:
                return state, (losses, jnp.zeros((runs, 3), jnp.float32))
            due = (end >= steps) & (seg_start < steps)
            evals = jax.lax.cond(due, lambda p: jax.vmap(evaluate, in_axes=(0, None))(p, data),
                                 lambda p: jnp.full((runs, 3), jnp.nan, jnp.float32), state.params)
            evals = jnp.where(state.diverged_step[:, None] >= 0, jnp.nan, evals)
            return state, (losses, evals)

        starts = start + segment_steps * jnp.arange(segments, dtype=jnp.int32)
        state, (losses, evals) = jax.lax.scan(segment, state, starts)
        return state, losses.reshape(chunk_steps, runs).T, jnp.swapaxes(evals, 0, 1)

    return jax.jit(chunk, donate_argnums=0), jax.jit(jax.vmap(init_run, in_axes=(0, 0, None))), chunk_steps


def inputs(runs: int, seeds: int, steps: int) -> tuple:
    """``(lr, run_seeds, fixed batches)`` of the reference workload with ``runs`` runs."""
    config = bench.workload(runs, steps, seeds)
    data = load_data(bench.PROBLEM)
    rng = np.random.default_rng(0)
    idx = np.stack([rng.permutation(data.x_train.shape[0])[:bench.BATCH] for _ in range(runs)])
    fixed = (jnp.asarray(np.asarray(data.x_train)[idx]), jnp.asarray(np.asarray(data.y_train)[idx]))
    return (jnp.asarray(config.run_hparams()["learning_rate"]), jnp.asarray(config.run_seeds()), fixed)


def run_variant(parts: Parts, runs: int, seeds: int, steps: int, chunk_steps: int):
    """A function that runs the whole sweep (every chunk) of a variant and returns its losses and
    evaluations (compiled on the first call)."""
    chunk, init, chunk_steps = make_chunk(parts, runs, seeds, steps, chunk_steps)
    lr, run_seeds, fixed = inputs(runs, seeds, steps)

    data = load_data(bench.PROBLEM)

    def go():
        state, _ = init(lr, run_seeds, data)
        losses, evals = [], []
        for start in range(0, steps, chunk_steps):
            state, loss, ev = chunk(state, np.int32(start), lr, run_seeds, fixed, data)
            losses.append(loss)
            evals.append(ev)
        losses = jnp.concatenate(losses, axis=1)[:, :steps]
        return jax.block_until_ready((losses, jnp.concatenate(evals, axis=1)))

    return go


def run_lab(runs: int, seeds: int, steps: int, chunk_steps: int):
    """The engine's own program, called chunk by chunk as :func:`lab.sweep.run_sweep` does (without
    the records, checkpoints and progress bar)."""
    config = bench.workload(runs, steps, seeds)
    init_fn, chunk_fn, _ = program.compile_program(program.program_key(config), chunk_steps, runs,
                                                   tuple(jax.devices()[:1]), False)
    hparams = {k: jnp.asarray(v) for k, v in program.program_hparams(config).items()}
    run_seeds = jnp.asarray(config.run_seeds())
    data = load_data(config.problem)

    def go():
        state, _ = init_fn(hparams, run_seeds, data)
        losses, evals = [], []
        for start in range(0, steps, chunk_steps):
            state, loss, ev = chunk_fn(state, np.int32(start), hparams, run_seeds, data)
            losses.append(loss)
            evals.append(ev)
        losses = jnp.concatenate(losses, axis=1)[:, :steps]
        return jax.block_until_ready((losses, jnp.concatenate(evals, axis=1)))

    return go


def run_matmul(runs: int, steps: int):
    """The batched matrix products of the step alone (``benchmarks/sweep.py``'s matmul rate)."""
    body = bench.matmul_body
    x = jnp.ones((runs, bench.BATCH, bench.SIZES[0]), jnp.float32)
    w1 = 0.01 * jnp.ones((runs, bench.SIZES[0], bench.SIZES[1]), jnp.float32)
    w2 = 0.01 * jnp.ones((runs, bench.SIZES[1], bench.SIZES[2]), jnp.float32)
    fn = jax.jit(lambda c: jax.lax.scan(body, c, None, length=steps)[0])
    return lambda: jax.block_until_ready(fn((x, w1, w2)))


def profile(runs: int, steps: int, repeats: int, seeds: int = 4, tried: bool = False, only=None,
            log=print) -> dict:
    """Seconds (minimum over ``repeats`` round-robin calls) of every variant (``only``: of these,
    beside ``lab``, ``full`` and ``matmul``), and each part's share."""
    chunk_steps = program.default_chunk_steps(steps)
    variants = {"lab": None, "full": FULL, **REMOVED, "bare": BARE, "matmul": None}
    if tried:
        variants.update(TRIED)
    if only is not None:
        variants = {k: v for k, v in variants.items() if k in ("lab", "full", "matmul") or k in only}
    fns = {}
    for name, parts in variants.items():
        if name == "lab":
            fns[name] = run_lab(runs, seeds, steps, chunk_steps)
        elif name == "matmul":
            fns[name] = run_matmul(runs, steps)
        else:
            fns[name] = run_variant(parts, runs, seeds, steps, chunk_steps)
        t0 = time.perf_counter()
        fns[name]()  # compile
        log(f"compiled {name!r} in {time.perf_counter() - t0:.1f} s")
    best = dict.fromkeys(fns, math.inf)
    best_cpu = dict.fromkeys(fns, math.inf)
    for r in range(repeats):
        for name, fn in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
            best_cpu[name] = min(best_cpu[name], time.process_time() - c0)
        log(f"repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v:.3f}" for k, v in best.items()))

    def summary(t: dict) -> dict:
        full = t["full"]
        return {"seconds": {k: round(v, 4) for k, v in t.items()},
                "share_of_full_step": {k: round((full - t[k]) / full, 4)
                                       for k in (*REMOVED, *TRIED) if k in t},
                "bare_share": round(t["bare"] / full, 4) if "bare" in t else None,
                "matmul_rate_fraction": {k: round(t["matmul"] / v, 4) for k, v in t.items()}}

    return {"runs": runs, "steps": steps, "seeds": seeds, "chunk_steps": chunk_steps, "repeats": repeats,
            "variants": {k: dataclasses.asdict(v) for k, v in variants.items() if v is not None},
            "wall": summary(best), "cpu": summary(best_cpu)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=128, help="runs (default 128 = 32 lrs x 4 seeds)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=5, help="round-robin repeats; the minimum counts")
    parser.add_argument("--try", dest="tried", action="store_true", help="also time the candidate changes")
    parser.add_argument("--only", help="variants to time, separated by ';' (beside lab, full and matmul)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.add_argument("--out", help="also save the JSON object to this file")
    args = parser.parse_args(argv)
    if args.runs < 4 or args.runs % 4 or args.steps < 1 or args.repeats < 1:
        parser.error(f"--runs must be a positive multiple of 4 (the seeds), --steps and --repeats positive; "
                     f"got {args.runs}, {args.steps}, {args.repeats}")
    compile_cache.configure("off")
    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    names = [*REMOVED, "bare", *TRIED]
    only = None if args.only is None else [v.strip() for v in args.only.split(";")]
    if only is not None and set(only) - set(names):
        parser.error(f"--only: unknown variant(s) {sorted(set(only) - set(names))}; valid: {names}")
    report = profile(args.runs, args.steps, args.repeats, tried=args.tried or bool(only), only=only, log=log)
    report["device"] = bench.device_description()
    args_used = sys.argv[1:] if argv is None else argv
    report["command"] = "python benchmarks/profile_step.py " + " ".join(args_used)
    report["notes"] = ("wall, cpu: wall-clock and process CPU seconds, each the minimum over round-robin "
                       "repeats of a whole sweep (init and every chunk) per variant; share_of_full_step: "
                       "(full - the variant without the part, or with the change tried) / full; "
                       "matmul_rate_fraction: the matmul-only time / the variant's time")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)
            f.write("\n")
    if args.json:
        print(json.dumps(report))
        return 0
    wall, cpu = report["wall"], report["cpu"]
    print(f"\nStep profile on {report['device']}: {args.runs} runs x {args.steps} steps, "
          f"min of {args.repeats} repeats (wall clock; process CPU time)")
    print(f"{'variant':60}{'wall s':>8}{'of matmul':>10}{'CPU s':>8}{'of matmul':>10}")
    for name, s in wall["seconds"].items():
        print(f"{name:60}{s:>8.3f}{wall['matmul_rate_fraction'][name]:>10.0%}"
              f"{cpu['seconds'][name]:>8.3f}{cpu['matmul_rate_fraction'][name]:>10.0%}")
    print(f"\n{'part: (full - without it) / full':60}{'wall':>8}{'':>10}{'CPU':>8}")
    for name, share in wall["share_of_full_step"].items():
        print(f"{name:60}{share:>8.1%}{'':>10}{cpu['share_of_full_step'][name]:>8.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
