"""How fast is one jitted ``update`` of each optimizer of the catalogue, against optax and the hardware?

    python benchmarks/update_step.py --out benchmarks/results/update_step_cpu.json   # all, 20 repeats
    python benchmarks/update_step.py --optimizers adam,muon --repeats 5
    python benchmarks/update_step.py --quick               # tiny sizes, 3 repeats: a smoke run

Every optimizer of :mod:`lab.optim.catalogue` is built with its first verify setting, as is its optax
reference, and both ``update(grads, state, params)`` (with ``value=`` for those that take the loss)
are jitted and timed on the same parameters, gradients and state (the state after two warm-up
updates), alternately and in alternating order, so both see the same machine state. Before timing,
the two updates are compared (``max_rel_diff``: the largest difference per leaf, as a fraction of
optax's largest update of the leaf), so the timings are known to be of the same computation.
Reported: min / quartiles / median / max milliseconds over the repeats, the ratio lab / optax of
the medians, and the quartiles of the paired ratios (the two timings of one repeat share its
noise): "slower" means their lower quartile exceeds 1.10, "within 10%" that their upper quartile
does not, "unclear" anything between.

Elementwise optimizers (each parameter's update reads only its own statistics, plus at most
per-leaf norms) run on about 16 million float32 parameters in four leaves, and are also measured
against the copy-bandwidth bound: the bytes an update must read and write, over the machine's copy
bandwidth (a jitted ``x + 1``, see :func:`copy_bandwidth`, measured before and after the
optimizers; the better of the two is kept). The bytes are read off the update's program
(:func:`traffic`): the inputs its outputs depend on and the outputs it computes, the fewer of lab's
and optax's. Structured optimizers (:func:`classify`: factored or per-dimension statistics such as
Adafactor's and SM3's, matrix products such as Muon's Newton-Schulz iterations) run on two
1024 x 1024 matrices and their biases, against optax only. On an accelerator each timed repeat
dispatches 20 calls back to back and waits once. An optimizer that fails is recorded with its error
(exit status 1), and the others still run.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
import numpy as np
import optax

from lab.optim import catalogue

WARMUP_STEPS = 2  # updates applied before timing, so moments and counts are past their first step
SLOWER = 1.10  # the goal: no optimizer slower than optax's by more than 10%
# Shapes on which classify() inspects an optimizer: matrices whose dimensions Adafactor factors
# (>= 128), every dimension distinct, so a factored statistic never looks like a parameter.
PROBE = {"w1": (384, 272), "b1": (200,), "w2": (272, 144), "b2": (56,)}
MATRIX_PRIMITIVES = ("dot_general", "eigh", "svd", "cholesky", "qr", "lu", "triangular_solve",
                     "conv_general_dilated")
FULL = {"params": 16e6, "matrix": 1024, "repeats": 20}
QUICK = {"params": 2e4, "matrix": 160, "repeats": 3}  # 160 >= 128: Adafactor still factors


# ----------------------------------------------------------------------------- parameters


def make_tree(n_params: float, seed: int = 0) -> dict[str, jax.Array]:
    """An MLP-like tree: two square-ish matrices and two biases, about ``n_params`` floats."""
    width = int((n_params / 2) ** 0.5)
    return _normal({"w1": (width, width), "b1": (width,), "w2": (width, width), "b2": (width,)}, seed)


def matrix_tree(side: int, seed: int = 0) -> dict[str, jax.Array]:
    """Two ``side`` x ``side`` matrices and two biases: the structured optimizers' parameters."""
    return _normal({"w1": (side, side), "b1": (side,), "w2": (side, side), "b2": (side,)}, seed)


def _normal(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, jax.Array]:
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {k: jax.random.normal(key, shape, jnp.float32)
            for key, (k, shape) in zip(keys, shapes.items(), strict=True)}


def gradients(params: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Gradients of scale 0.01, drawn independently of the parameters."""
    return jax.tree.map(lambda p: 0.01 * p, _normal({k: p.shape for k, p in params.items()}, seed=1))


# ----------------------------------------------------------------------------- building


def settings(entry: catalogue.Entry) -> dict[str, Any]:
    """The keyword arguments both are built with: the entry's first verify setting."""
    return dict(entry.verify[0]) if entry.verify else {}


def build(entry: catalogue.Entry) -> dict[str, optax.GradientTransformation]:
    """``{"lab": factory(**kw), "optax": reference(**kw)}``."""
    kw = settings(entry)
    return {"lab": entry.factory(**kw), "optax": entry.reference(**kw)}


def update_fn(entry: catalogue.Entry, tx: optax.GradientTransformation, who: str) -> Callable:
    """``tx.update`` as ``f(grads, state, params, value)``; optax's traced under standard dtype
    promotion (optax is not strict-promotion clean; the setting is read when tracing)."""

    def update(grads, state, params, value):
        kwargs = {"value": value} if entry.needs_value else {}
        if who == "optax":
            with jax.numpy_dtype_promotion("standard"):
                return tx.update(grads, state, params, **kwargs)
        return tx.update(grads, state, params, **kwargs)

    return update


# ----------------------------------------------------------------------------- reading programs


def _is_float(x) -> bool:
    return jnp.issubdtype(x.dtype, jnp.floating) or jnp.issubdtype(x.dtype, jnp.complexfloating)


def _matrix_products(jaxpr: jcore.Jaxpr) -> list[str]:
    """Names of the matrix operations in ``jaxpr`` and its sub-programs; a ``dot_general`` counts
    only when it both contracts and outputs more than one element (a dot product of two vectors,
    as in a norm, does not)."""
    found = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            (contract, _), _ = eqn.params["dimension_numbers"]
            size = int(np.prod([eqn.invars[0].aval.shape[d] for d in contract]))
            if size > 1 and eqn.outvars[0].aval.size > 1:
                found.append(f"dot_general {tuple(eqn.invars[0].aval.shape)} x "
                             f"{tuple(eqn.invars[1].aval.shape)}")
        elif name in MATRIX_PRIMITIVES:
            found.append(name)
        for sub in jcore.jaxprs_in_params(eqn.params):
            found.extend(_matrix_products(sub))
    return found


def classify(entry: catalogue.Entry) -> tuple[str, str]:
    """``("elementwise" | "structured", why)``, from both implementations on :data:`PROBE` (abstract
    shapes, nothing is computed): structured if a state holds a statistic shaped like no parameter
    (factored or per-dimension) or the update multiplies matrices."""
    params = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in PROBE.items()}
    shapes = {tuple(s) for s in PROBE.values()}
    smallest = min(int(np.prod(s)) for s in PROBE.values())
    value = jnp.ones((), jnp.float32)
    for who, tx in build(entry).items():
        with jax.numpy_dtype_promotion("standard"):
            state = jax.eval_shape(tx.init, params)
        for leaf in jax.tree.leaves(state):
            if _is_float(leaf) and leaf.size >= smallest and tuple(leaf.shape) not in shapes:
                return "structured", (f"{who}'s state holds a {tuple(leaf.shape)} statistic for parameters "
                                      f"of shapes {sorted(shapes)}")
        jaxpr = jax.make_jaxpr(update_fn(entry, tx, who))(params, state, params, value)
        products = _matrix_products(jaxpr.jaxpr)
        if products:
            return "structured", f"{who}'s update multiplies matrices ({products[0]})"
    return "elementwise", "every state array shaped like a parameter, no matrix products"


def _live_inputs(jaxpr: jcore.Jaxpr, live_out: list[bool]) -> list[bool]:
    """Which inputs of ``jaxpr`` the live outputs depend on, looking inside nested ``jit`` calls
    (any other eqn with a live output is taken to read all its inputs)."""
    live = {v for v, keep in zip(jaxpr.outvars, live_out, strict=True) if keep and isinstance(v, jcore.Var)}
    for eqn in reversed(jaxpr.eqns):
        outs = [v in live for v in eqn.outvars]
        if not any(outs) and not eqn.effects:
            continue
        subs = list(jcore.jaxprs_in_params(eqn.params))
        if (len(subs) == 1 and len(subs[0].invars) == len(eqn.invars)
                and len(subs[0].outvars) == len(eqn.outvars) and not subs[0].constvars):
            ins = _live_inputs(subs[0], outs)
        else:
            ins = [True] * len(eqn.invars)
        live |= {v for v, keep in zip(eqn.invars, ins, strict=True) if keep and isinstance(v, jcore.Var)}
    return [v in live for v in jaxpr.invars]


def traffic(fn: Callable, *args) -> int:
    """Bytes ``fn(*args)`` must move at least: every input an output depends on, read once, and every
    output that is not an input passed through, written once."""
    closed = jax.make_jaxpr(fn)(*args)
    jaxpr = closed.jaxpr
    read = _live_inputs(jaxpr, [True] * len(jaxpr.outvars))
    inputs = set(jaxpr.invars)

    def nbytes(v) -> int:
        return int(v.aval.size) * v.aval.dtype.itemsize

    written = {v for v in jaxpr.outvars if isinstance(v, jcore.Var) and v not in inputs}
    return sum(nbytes(v) for v, r in zip(jaxpr.invars, read, strict=True) if r) + sum(map(nbytes, written))


# ----------------------------------------------------------------------------- timing


@dataclasses.dataclass
class Case:
    """One optimizer ready to time: ``fns[who](*args[who])`` is the jitted update of ``who``
    ("lab" or "optax") on the benchmark's gradients, its state after the warm-up, and params."""

    name: str
    kind: str
    why: str
    fns: dict[str, Callable]
    args: dict[str, tuple]
    bytes: dict[str, int]


def prepare(entry: catalogue.Entry, params: Any, grads: Any, kind: str = "elementwise", why: str = ""
            ) -> Case:
    """Build, jit, warm up (compile and :data:`WARMUP_STEPS` updates) both implementations."""
    value = jnp.asarray(1.0, jnp.float32)  # the loss, for optimizers whose update takes it
    fns, args, traffic_bytes = {}, {}, {}
    for who, tx in build(entry).items():
        update = update_fn(entry, tx, who)
        fn = jax.jit(update)
        with jax.numpy_dtype_promotion("standard") if who == "optax" else contextlib.nullcontext():
            state = tx.init(params)
        for _ in range(WARMUP_STEPS):
            _, state = fn(grads, state, params, value)
        jax.block_until_ready(state)
        fns[who], args[who] = fn, (grads, state, params, value)
        if kind == "elementwise":
            traffic_bytes[who] = traffic(update, *args[who])
    return Case(entry.name, kind, why, fns, args, traffic_bytes)


def agreement(case: Case) -> float:
    """The largest difference between lab's and optax's updates of the timed call, per leaf as a
    fraction of optax's largest update of that leaf (0 for identical updates)."""
    outs = {who: [np.asarray(u) for u in jax.tree.leaves(fn(*case.args[who])[0])]
            for who, fn in case.fns.items()}
    return max((float(np.max(np.abs(lab - ref)) / max(float(np.max(np.abs(ref))), 1e-30))
                for lab, ref in zip(outs["lab"], outs["optax"], strict=True)), default=0.0)


def _time(fn: Callable, args: tuple, inner: int) -> float:
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


def measure(case: Case, repeats: int, inner: int) -> dict[str, list[float]]:
    """Seconds per update of each, ``repeats`` times, alternating which goes first."""
    times: dict[str, list[float]] = {"lab": [], "optax": []}
    for r in range(repeats):
        for who in ("lab", "optax") if r % 2 == 0 else ("optax", "lab"):
            times[who].append(_time(case.fns[who], case.args[who], inner))
    return times


def summarize(case: Case, times: dict[str, list[float]]) -> dict[str, Any]:
    """One optimizer's row of the JSON (the bandwidth bound is added by :func:`add_bound`)."""
    ms = {who: 1e3 * np.asarray(t) for who, t in times.items()}
    med = {who: float(np.median(t)) for who, t in ms.items()}
    paired = np.percentile(ms["lab"] / ms["optax"], [25, 50, 75])
    verdict = "slower" if paired[0] > SLOWER else "within 10%" if paired[2] <= SLOWER else "unclear"
    params = case.args["lab"][2]
    out = {"optimizer": case.name, "kind": case.kind, "why": case.why,
           "params": int(sum(p.size for p in jax.tree.leaves(params))),
           "lab_ms": [float(ms["lab"].min()), med["lab"], float(ms["lab"].max())],
           "optax_ms": [float(ms["optax"].min()), med["optax"], float(ms["optax"].max())],
           "lab_quartiles_ms": [float(q) for q in np.percentile(ms["lab"], [25, 75])],
           "optax_quartiles_ms": [float(q) for q in np.percentile(ms["optax"], [25, 75])],
           "ratio_median": med["lab"] / med["optax"],
           "ratio_min": float(ms["lab"].min() / ms["optax"].min()),
           "ratio_paired": [float(q) for q in paired],
           "verdict": verdict}
    if case.kind == "elementwise":
        out.update({"bytes": min(case.bytes.values()), "lab_bytes": case.bytes["lab"],
                    "optax_bytes": case.bytes["optax"]})
    return out


def add_bound(row: dict[str, Any], bandwidth: float) -> None:
    """Add the copy-bandwidth bound of an elementwise row and each one's fraction of it."""
    if "bytes" not in row:
        return
    bound = 1e3 * row["bytes"] / bandwidth
    row.update({
        "bound_ms": bound,
        # bound / time: from the fastest repeat, and from the median one (less flattering)
        "lab_fraction_of_bound": bound / row["lab_ms"][0],
        "optax_fraction_of_bound": bound / row["optax_ms"][0],
        "lab_fraction_of_bound_median": bound / row["lab_ms"][1],
        "optax_fraction_of_bound_median": bound / row["optax_ms"][1]})


def _json_value(v: Any) -> Any:
    return v if isinstance(v, (bool, int, float, str, type(None))) else repr(v)


def bench(names: list[str] | None = None, repeats: int | None = None, quick: bool = False,
          params: float | None = None, matrix: int | None = None, inner: int | None = None,
          log: Callable[[str], None] = lambda line: None) -> dict[str, Any]:
    """Time every optimizer ``names`` (default: the whole catalogue); returns the JSON's dict. An
    optimizer that fails to build or run is recorded with its error, and the others still run."""
    sizes = QUICK if quick else FULL
    repeats = sizes["repeats"] if repeats is None else repeats
    if inner is None:  # amortize dispatch on an accelerator; on a CPU one call is long enough
        inner = 1 if jax.default_backend() == "cpu" else 20
    entries = [catalogue.get(n) for n in names] if names else list(catalogue.entries())
    trees = {"elementwise": make_tree(sizes["params"] if params is None else params),
             "structured": matrix_tree(sizes["matrix"] if matrix is None else matrix)}
    grads = {kind: gradients(tree) for kind, tree in trees.items()}
    bandwidths = [copy_bandwidth(trees["elementwise"], repeats, inner)]
    log(f"copy bandwidth {bandwidths[0] / 1e9:.1f} GB/s")
    results = []
    for entry in entries:
        start = time.perf_counter()
        try:
            kind, why = classify(entry)
            case = prepare(entry, trees[kind], grads[kind], kind, why)
            diff = agreement(case)
            row = {**summarize(case, measure(case, repeats, inner)), "max_rel_diff": diff}
            del case
        except Exception as err:  # noqa: BLE001 - one broken optimizer must not lose the others' timings
            first = str(err).strip().splitlines()[0] if str(err).strip() else ""
            row = {"optimizer": entry.name, "error": f"{type(err).__name__}: {first}".rstrip(": ")}
        results.append({"optimizer": entry.name, "reference": entry.reference_name,
                        "settings": {k: _json_value(v) for k, v in settings(entry).items()}, **row})
        log(f"{entry.name:<14} " + (f"error: {row['error']}" if "error" in row else
                                     f"lab / optax {row['ratio_median']:.3f} ({row['kind']})")
            + f"  [{time.perf_counter() - start:.1f} s]")
    # Measured again at the end, and the better of the two kept: load on a shared machine only
    # ever lowers it.
    bandwidths.append(copy_bandwidth(trees["elementwise"], repeats, inner))
    for row in results:
        add_bound(row, max(bandwidths))
    count = {kind: int(sum(p.size for p in jax.tree.leaves(t))) for kind, t in trees.items()}
    return {"device": str(jax.devices()[0].device_kind), "backend": jax.default_backend(),
            "params": count["elementwise"], "structured_params": count["structured"],
            "shapes": {kind: {k: list(p.shape) for k, p in t.items()} for kind, t in trees.items()},
            "repeats": repeats, "inner": inner, "warmup_steps": WARMUP_STEPS, "quick": quick,
            "versions": {"jax": jax.__version__, "optax": optax.__version__},
            "copy_bandwidth_GBps": max(bandwidths) / 1e9,
            "copy_bandwidth_runs_GBps": [b / 1e9 for b in bandwidths], "results": results}


HEADER = (f"{'optimizer':<14} {'kind':<11} {'lab ms q1/med/q3':>20} {'optax ms q1/med/q3':>20} "
          f"{'lab/optax':>9} {'paired q1-q3':>12} {'verdict':<10} {'lab % bound min/med':>19}")


def _row_text(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['optimizer']:<14} error: {r['error']}"

    def three(who):
        q1, q3 = r[f"{who}_quartiles_ms"]
        return f"{q1:.2f}/{r[f'{who}_ms'][1]:.2f}/{q3:.2f}"

    bound = (f"{r['lab_fraction_of_bound']:.0%}/{r['lab_fraction_of_bound_median']:.0%}"
             if "bound_ms" in r else "-")
    q1, _, q3 = r["ratio_paired"]
    return (f"{r['optimizer']:<14} {r['kind']:<11} {three('lab'):>20} {three('optax'):>20} "
            f"{r['ratio_median']:>9.3f} {f'{q1:.2f}-{q3:.2f}':>12} {r['verdict']:<10} {bound:>19}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--optimizers", help="comma-separated names (default: every optimizer of the catalogue)")
    ap.add_argument("--repeats", type=int, help="timed calls of each (default 20; 3 with --quick)")
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes (2e4 parameters, 160 x 160 matrices), 3 repeats: a smoke run")
    ap.add_argument("--params", type=float, help="elementwise optimizers' float32 parameters (default 16e6)")
    ap.add_argument("--matrix", type=int, help="side of the structured optimizers' matrices (default 1024)")
    ap.add_argument("--inner", type=int,
                    help="calls per timed repeat (default 1 on CPU, 20 on an accelerator)")
    ap.add_argument("--out", metavar="PATH",
                    help="write the JSON here, e.g. benchmarks/results/update_step_cpu.json")
    args = ap.parse_args(argv)
    names = [n.strip() for n in args.optimizers.split(",") if n.strip()] if args.optimizers else None
    for name in names or ():
        if name not in catalogue.names():
            ap.error(f"--optimizers: unknown optimizer {name!r}; valid names: {', '.join(catalogue.names())}")
    for flag in ("repeats", "matrix", "inner"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            ap.error(f"--{flag} must be a positive integer, got {getattr(args, flag)}")
    if args.params is not None and not args.params >= 2:
        ap.error(f"--params must be at least 2, got {args.params}")
    out = bench(names, args.repeats, args.quick, args.params, args.matrix, args.inner,
                log=lambda line: print(line, flush=True))
    print(f"\n{out['backend']} ({out['device']}), copy bandwidth {out['copy_bandwidth_GBps']:.1f} GB/s "
          f"(runs: {', '.join(f'{b:.1f}' for b in out['copy_bandwidth_runs_GBps'])})")
    print(HEADER)
    for row in out["results"]:
        print(_row_text(row))
    print(f"{out['params'] / 1e6:.2f}M float32 parameters (elementwise), "
          f"{out['structured_params'] / 1e6:.2f}M (structured); "
          f"{out['repeats']} repeats x {out['inner']} calls")
    if args.out:
        path = pathlib.Path(args.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2) + "\n")
    failed = [r["optimizer"] for r in out["results"] if "error" in r]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
