"""PyTorch optimizers as candidates: driven step by step on the reference's parameters and the shared
gradient stream; the parameter change of each ``step()`` is the candidate's update. torch is imported
only here, and only when a torch candidate is given. docs/verify.md derives the rounding allowance.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lab.verify.program import (
    SCHEDULE,
    Run,
    accepts_value,
    as_leaves,
    compiler_options,
    leaf_stats,
    needs_x64,
    oscillating_schedule,
    real_dtype,
)
from lab.verify.report import first_line
from lab.verify.stream import IMAG_SEED, STAT_NAMES, Layout, stream

TORCH_HINT = "verifying a PyTorch optimizer needs PyTorch: pip install -e '.[torch]'"
# torch's float dtypes by name; bfloat16 runs are reported but do not decide the verdict (the two
# libraries round their moments differently there).
_TORCH_DTYPES = ("float32", "float64", "bfloat16", "complex64", "complex128")
# The parameters' own rounding allowed per element, in ulps of max(|old|, |new|): two roundings to the
# parameter's dtype (half an ulp each) and one constant rounded to it (up to an ulp of the parameter),
# as in AdamW's p(1 - lr wd) followed by the step (docs/verify.md).
ROUNDING_ULPS = 2.0


def import_torch():
    """torch, or an ImportError whose message says how to install it."""
    try:
        import torch
    except ImportError:
        raise ImportError(TORCH_HINT) from None
    return torch


def is_torch(obj: Any) -> bool:
    """A ``torch.optim.Optimizer`` subclass, or a function whose first argument is ``params``."""
    if isinstance(obj, type):
        torch = sys.modules.get("torch")  # a torch subclass means its module imported torch
        return torch is not None and issubclass(obj, torch.optim.Optimizer)
    if isinstance(obj, optax.GradientTransformation) or not callable(obj):
        return False
    try:
        first = next(iter(inspect.signature(obj).parameters), "")
    except (TypeError, ValueError):
        return False
    return first == "params"


def name(obj: Any) -> str:
    module = getattr(obj, "__module__", "") or ""
    qual = getattr(obj, "__qualname__", None) or type(obj).__name__
    return f"{module}.{qual}" if module.startswith("torch.") else qual


def ulp(x: np.ndarray, dtype) -> np.ndarray:
    """The spacing of ``dtype``'s numbers at ``|x|`` (float64; per part, combined, for complex)."""
    if np.iscomplexobj(x):
        return np.hypot(ulp(x.real, dtype), ulp(x.imag, dtype))
    info = jnp.finfo(real_dtype(dtype))
    m = np.maximum(np.abs(x.astype(np.float64)), float(info.smallest_normal))
    return np.ldexp(1.0, np.frexp(m)[1] - 1 - int(info.nmant))


def _host(t) -> np.ndarray:
    torch = sys.modules["torch"]
    t = t.detach()
    return (t.float() if t.dtype == torch.bfloat16 else t).numpy().copy()


def _tensor(x: np.ndarray, tdtype):
    torch = sys.modules["torch"]
    x = np.array(x, np.float32 if np.asarray(x).dtype.name == "bfloat16" else None)  # a writable copy
    return torch.from_numpy(x).to(tdtype)


def make(obj: Any, params: list, kwargs: Mapping[str, Any]):
    """The torch optimizer ``obj(params, **kwargs)`` (a class or a function returning one)."""
    opt = obj(params, **kwargs)
    if not callable(getattr(opt, "step", None)) or not hasattr(opt, "param_groups"):
        raise TypeError(f"{name(obj)}(params, **kwargs) returned {type(opt).__name__}, not a "
                        "torch.optim.Optimizer")
    return opt


@dataclasses.dataclass
class _Job:
    """One case against one reference: the reference transformation and the torch optimizers (one per
    seed) with their parameter tensors."""

    key: Any  # (reference index, case)
    reference: optax.GradientTransformation
    dtype: Any
    schedule: Callable | None
    pass_value: bool
    tensors: list = dataclasses.field(default_factory=list)  # per seed, the parameter tensors
    opts: list = dataclasses.field(default_factory=list)  # per seed, the optimizer
    out: dict = dataclasses.field(default_factory=dict)  # statistic name -> per step, (seeds, leaves)


def _reference_stepper(jobs: Sequence[_Job], lay: Layout):
    """Jitted and vmapped over seeds, every job's reference: ``init(p0, p0_imag)`` and
    ``step(carry, g, g_imag, v) -> (carry, updates)`` over all of them."""

    def init(p0, p0_imag):
        carry = []
        for job in jobs:
            params = lay.unflatten(as_leaves(p0, p0_imag, lay, job.dtype))
            with jax.numpy_dtype_promotion("standard"):
                carry.append((params, job.reference.init(params)))
        return carry

    def step(carry, g, g_imag, v):
        new, updates = [], []
        for job, (params, state) in zip(jobs, carry, strict=True):
            grads = lay.unflatten(as_leaves(g, g_imag, lay, job.dtype))
            extra = {"value": v.astype(real_dtype(job.dtype))} if job.pass_value else {}
            with jax.numpy_dtype_promotion("standard"):
                upd, state = job.reference.update(grads, state, params, **extra)
                new.append((optax.apply_updates(params, upd), state))
            updates.append(jax.tree.leaves(upd))
        return new, updates

    # Each is compiled once (unoptimized unless 64-bit: each call is small, and the torch side
    # dominates the time); init runs once, the step at every step.
    options = compiler_options(0, any(needs_x64(j.dtype) for j in jobs))
    return (jax.jit(jax.vmap(init), compiler_options=options),
            jax.jit(jax.vmap(step), compiler_options=options))


def _prepare(torch, obj, kwargs, lr_arg: str, job: _Job, lay: Layout, n_seeds: int) -> str:
    """Build ``job``'s tensors and optimizers; the reason it is skipped, or ""."""
    dtype = jnp.dtype(job.dtype)
    if dtype.name not in _TORCH_DTYPES:
        return f"torch has no {dtype.name} tensors"
    tdtype = getattr(torch, dtype.name)
    job.tensors = [[torch.nn.Parameter(torch.zeros(shape, dtype=tdtype)) for shape in lay.shapes]
                   for _ in range(n_seeds)]
    try:
        job.opts = [make(obj, ts, kwargs) for ts in job.tensors]
    except TypeError as err:
        if dtype.name == "bfloat16" or dtype.kind == "c":
            return f"{name(obj)} does not support {dtype.name} ({first_line(err)})"
        raise
    if job.schedule is not None and any(lr_arg not in g for o in job.opts for g in o.param_groups):
        raise ValueError(f"{name(obj)}'s param groups have no {lr_arg!r} to set from the schedule; "
                         f"lr_arg names it (its groups' keys: {', '.join(job.opts[0].param_groups[0])})")
    job.out = {k: [] for k in (*STAT_NAMES, "rounding")}
    return ""


def _run_group(torch, jobs: Sequence[_Job], lr_arg: str, lay: Layout, seeds: tuple, steps: int) -> dict:
    """Run jobs of one 64-bit-ness: the references in one program, each torch optimizer in step."""
    p0, grads, values = stream(lay, seeds, steps)
    complex_ = any(jnp.dtype(j.dtype).kind == "c" for j in jobs)
    imag = stream(lay, tuple(s + IMAG_SEED for s in seeds), steps)[:2] if complex_ else (None, None)
    init, step = _reference_stepper(jobs, lay)
    carry = init(p0, imag[0])
    closures = [[_needs_closure(opt) for opt in job.opts] for job in jobs]
    # The learning rate of every step, as the reference's schedule computes it (one call, not one per step).
    rates = [None if j.schedule is None else np.asarray(j.schedule(jnp.arange(steps)), np.float64).tolist()
             for j in jobs]
    ref_dtypes: list[list[str]] = []
    for t in range(steps):
        olds = [[np.asarray(x) for x in jax.tree.leaves(params)] for params, _ in carry]  # (seeds, *shape)
        g_t = None if imag[1] is None else imag[1][:, t]
        carry, updates = step(carry, grads[:, t], g_t, values[:, t])
        ref_dtypes = [[np.asarray(x).dtype.name for x in upd] for upd in updates]
        for job, old, upd, needs, rate in zip(jobs, olds, updates, closures, rates, strict=True):
            real = jnp.dtype(job.dtype).kind != "c"
            g_leaves = lay.split(grads[:, t] if real else grads[:, t] + 1j * g_t)
            upd = [np.asarray(x) for x in upd]
            rows = []
            for s, (opt, ts) in enumerate(zip(job.opts, job.tensors, strict=True)):
                with torch.no_grad():
                    for p, x, g in zip(ts, old, g_leaves, strict=True):
                        p.copy_(_tensor(x[s], p.dtype))
                        p.grad = _tensor(g[s], p.dtype)
                if rate is not None:
                    for group in opt.param_groups:
                        group[lr_arg] = rate[t]
                if needs[s]:
                    value = float(values[s, t])
                    opt.step(lambda value=value: torch.tensor(value))
                else:
                    opt.step()
                rows.append([_leaf(_host(p), x[s], r[s], job.dtype)
                             for p, x, r in zip(ts, old, upd, strict=True)])
            for k, stat in enumerate((*STAT_NAMES, "rounding")):
                job.out[stat].append([[leaf[k] for leaf in row] for row in rows])
    results = {}
    for job, dtypes in zip(jobs, ref_dtypes, strict=True):
        stats = {k: np.moveaxis(np.asarray(v), 0, 1) for k, v in job.out.items()}  # (seeds, steps, leaves)
        rounding = stats.pop("rounding").astype(np.float64)
        name_ = jnp.dtype(job.dtype).name
        results[job.key] = Run(stats, [(name_, r) for r in dtypes], rounding, decides=name_ != "bfloat16")
    return results


def _needs_closure(opt) -> bool:
    """Whether ``opt.step`` requires a closure (then it gets one returning the loss value)."""
    try:
        closure = inspect.signature(opt.step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return closure is not None and closure.default is inspect.Parameter.empty


def _leaf(new: np.ndarray, old: np.ndarray, r: np.ndarray, dtype) -> tuple:
    """The statistics of one leaf's step: the candidate's update is ``new - old`` (exact in float64),
    allowed :data:`ROUNDING_ULPS` of the parameters' own rounding per element."""
    wide = np.complex128 if np.iscomplexobj(new) else np.float64
    old = np.asarray(old, np.float32) if old.dtype.name == "bfloat16" else old
    c = new.astype(wide) - old.astype(wide)
    allowance = ROUNDING_ULPS * ulp(np.maximum(np.abs(new), np.abs(old)), dtype)
    r = np.asarray(r, np.float32) if r.dtype.name == "bfloat16" else r
    stats = leaf_stats(np, c.reshape(-1), r.reshape(-1).astype(wide), allowance.reshape(-1))
    at = allowance.reshape(-1)[int(stats[1])] if allowance.size else 0.0
    return (*stats, at)


def run(obj: Any, kwargs: Mapping[str, Any], lr_arg: str, references: Sequence[Mapping[str, Any]], cases,
        lay: Layout, seeds: Sequence[int], steps: int, needs_value: bool | None) -> dict:
    """Every case of torch candidate ``obj`` against each reference (``references[i][setting]`` is a
    transformation): ``(i, case) -> Run`` or the reason the case was skipped."""
    torch = import_torch()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # these tensors are small: threads only add synchronisation
    results: dict = {}
    try:
        for x64 in (False, True):
            jobs = []
            for i, built in enumerate(references):
                for case in (c for c in cases if needs_x64(c.dtype) == x64):
                    tx = built[case.setting]
                    lr = float(kwargs[lr_arg]) if case.setting == SCHEDULE else None
                    schedule = None if lr is None else oscillating_schedule(lr)
                    pass_value = accepts_value(tx) if needs_value is None else bool(needs_value)
                    jobs.append(_Job((i, case), tx, jnp.dtype(case.dtype), schedule, pass_value))
            with jax.enable_x64(True) if x64 else contextlib.nullcontext():
                for job in jobs:
                    why = _prepare(torch, obj, kwargs, lr_arg, job, lay, len(seeds))
                    if why:
                        results[job.key] = why
                runnable = [j for j in jobs if j.key not in results]
                if runnable:
                    results.update(_run_group(torch, runnable, lr_arg, lay, tuple(seeds), steps))
    finally:
        torch.set_num_threads(threads)
    return results
