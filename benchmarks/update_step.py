"""How fast is one jitted ``update`` of each hand-written optimizer, against optax and the hardware?

    python benchmarks/update_step.py                  # 16M float32 params, 20 repeats (about a minute)
    python benchmarks/update_step.py --params 1e6 --repeats 5 --json
    python benchmarks/update_step.py --repeats 5 --out benchmarks/results/update_step_cpu.json

For each optimizer, the jitted ``update(grads, state, params)`` of ``lab.optim`` and of its optax
namesake run on the same tree of about 16 million float32 parameters, timed alternately so both see
the same machine state. Reported: min / median / max milliseconds over the repeats, the ratio
lab / optax of the medians (goal: <= 1.00 within noise), and the fraction of the copy bandwidth
bound: the bytes an update must read and write (gradients, state, params where used; updates and new
state) divided by the machine's measured copy bandwidth (a jitted ``x + 1``, read plus write, see
:func:`copy_bandwidth`), over the measured time (goal: >= 90%), from the fastest repeat and from
the median one. On an accelerator each
timed repeat dispatches 20 calls back to back and waits once, so launch overhead is amortized.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import jax
import jax.numpy as jnp
import optax

from lab import optim

# name, lab factory kwargs, optax reference, arrays read + written per parameter
CASES = [
    ("sgd", {"learning_rate": 0.1}, lambda: optax.sgd(0.1), 2),  # g -> u
    ("momentum", {"learning_rate": 0.1, "beta": 0.9}, lambda: optax.sgd(0.1, momentum=0.9),
     4),  # g, m -> u, m
    ("rmsprop", {"learning_rate": 1e-3}, lambda: optax.rmsprop(1e-3), 4),  # g, nu -> u, nu
    ("adam", {"learning_rate": 1e-3}, lambda: optax.adam(1e-3), 6),  # g, mu, nu -> u, mu, nu
    ("adamw", {"learning_rate": 1e-3}, lambda: optax.adamw(1e-3), 7),  # g, mu, nu, p -> u, mu, nu
    ("adagrad", {"learning_rate": 0.1}, lambda: optax.adagrad(0.1), 4),  # g, s -> u, s
]


def make_tree(n_params: int) -> dict[str, jax.Array]:
    """An MLP-like tree: two square-ish matrices and two biases, about ``n_params`` floats."""
    width = int((n_params / 2) ** 0.5)
    shapes = {"w1": (width, width), "b1": (width,), "w2": (width, width), "b2": (width,)}
    keys = jax.random.split(jax.random.key(0), len(shapes))
    return {k: jax.random.normal(key, s, jnp.float32)
            for key, (k, s) in zip(keys, shapes.items(), strict=True)}


def _time(fn, args, inner: int) -> float:
    """Seconds per call of ``fn(*args)``: ``inner`` calls dispatched back to back, then one wait."""
    start = time.perf_counter()
    out = [fn(*args) for _ in range(inner)]
    jax.block_until_ready(out)
    return (time.perf_counter() - start) / inner


def copy_bandwidth(tree, repeats: int, inner: int) -> float:
    """Bytes per second of a jitted ``x + 1`` (read plus write), the best of two measurements.

    One runs over the leaves of ``tree`` itself (so a CPU's allocation pattern matches the updates');
    the other over one flat array 8x the tree's size, large enough to saturate an accelerator's
    memory bandwidth, which 64 MB in four kernels does not.
    """
    f = jax.jit(lambda t: jax.tree.map(lambda x: x + 1, t))
    n_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(tree))
    big = jnp.zeros((8 * n_bytes // 4,), jnp.float32)
    best = 0.0
    for arg, size in ((tree, n_bytes), (big, 8 * n_bytes)):
        jax.block_until_ready(f(arg))
        best = max(best, 2 * size / min(_time(f, (arg,), inner) for _ in range(max(repeats, 5))))
    del big
    return best


def bench(n_params: float, repeats: int, names: list[str] | None, inner: int | None = None) -> dict:
    if inner is None:  # amortize dispatch on an accelerator; on a CPU one call is long enough
        inner = 1 if jax.default_backend() == "cpu" else 20
    params = make_tree(int(n_params))
    n = sum(p.size for p in jax.tree.leaves(params))
    grads = jax.tree.map(lambda p: 0.01 * p, params)
    bandwidth = copy_bandwidth(params, repeats, inner)
    results = []
    for name, kwargs, make_ref, arrays in CASES:
        if names and name not in names:
            continue
        fns, states = {}, {}
        for who, opt in (("lab", optim.OPTIMIZERS[name](**kwargs)), ("optax", make_ref())):
            fns[who] = jax.jit(opt.update)
            states[who] = opt.init(params)
            jax.block_until_ready(fns[who](grads, states[who], params))  # compile and warm up
        times = {"lab": [], "optax": []}
        for _ in range(repeats):
            for who in ("lab", "optax"):  # alternate, so drift in machine load hits both alike
                times[who].append(_time(fns[who], (grads, states[who], params), inner))
        bytes_moved = arrays * 4 * n
        med = {who: statistics.median(t) for who, t in times.items()}
        results.append({
            "optimizer": name,
            "lab_ms": [1e3 * min(times["lab"]), 1e3 * med["lab"], 1e3 * max(times["lab"])],
            "optax_ms": [1e3 * min(times["optax"]), 1e3 * med["optax"], 1e3 * max(times["optax"])],
            "ratio_median": med["lab"] / med["optax"],
            "ratio_min": min(times["lab"]) / min(times["optax"]),
            "bytes": bytes_moved,
            "bound_ms": 1e3 * bytes_moved / bandwidth,
            # bound / time: from the fastest repeat, and from the median one (less flattering)
            "lab_fraction_of_bound": (bytes_moved / bandwidth) / min(times["lab"]),
            "optax_fraction_of_bound": (bytes_moved / bandwidth) / min(times["optax"]),
            "lab_fraction_of_bound_median": (bytes_moved / bandwidth) / med["lab"],
            "optax_fraction_of_bound_median": (bytes_moved / bandwidth) / med["optax"],
        })
    return {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(), "params": n,
            "repeats": repeats, "inner": inner, "copy_bandwidth_GBps": bandwidth / 1e9, "results": results}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", type=float, default=16e6, help="number of float32 parameters (default 16e6)")
    ap.add_argument("--repeats", type=int, default=20, help="timed calls per optimizer (default 20)")
    ap.add_argument("--optimizer", action="append", help="only these (repeatable)")
    ap.add_argument("--inner", type=int, default=None,
                    help="calls per timed repeat (default 1 on CPU, 20 on an accelerator)")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ap.add_argument("--out", "--json-out", dest="out", metavar="PATH",
                    help="also write the JSON here, e.g. benchmarks/results/update_step_cpu.json")
    args = ap.parse_args(argv)
    out = bench(args.params, args.repeats, args.optimizer, args.inner)
    if args.out:
        path = pathlib.Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return
    print(f"{out['backend']} ({out['device']}), {out['params'] / 1e6:.1f}M float32 params, "
          f"{out['repeats']} repeats x {out['inner']} calls; "
          f"copy bandwidth {out['copy_bandwidth_GBps']:.1f} GB/s")
    print(f"{'optimizer':<9} {'lab ms min/med/max':>22} {'optax ms min/med/max':>22} {'lab/optax':>9} "
          f"{'(min)':>6} {'bound ms':>8} {'lab % bound min/med':>19} {'optax % bound min/med':>21}")
    for r in out["results"]:
        lab = "/".join(f"{v:.2f}" for v in r["lab_ms"])
        ref = "/".join(f"{v:.2f}" for v in r["optax_ms"])
        lab_pct = f"{r['lab_fraction_of_bound']:.0%}/{r['lab_fraction_of_bound_median']:.0%}"
        ref_pct = f"{r['optax_fraction_of_bound']:.0%}/{r['optax_fraction_of_bound_median']:.0%}"
        print(f"{r['optimizer']:<9} {lab:>22} {ref:>22} {r['ratio_median']:>9.3f} {r['ratio_min']:>6.3f} "
              f"{r['bound_ms']:>8.2f} {lab_pct:>19} {ref_pct:>21}")


if __name__ == "__main__":
    main()
